/**
 * Hot reload under load: a stream of requests keeps flowing while the configuration file is
 * rewritten and reloaded again and again (weights, a backend added, a slow backend removed
 * with requests in flight, the strategy changed, a listener added then removed, an invalid
 * file rejected). Not one request may fail; backends that stay keep their objects and
 * counters; a WebSocket to a kept backend stays open, one to a removed backend is cut after
 * the drain timeout.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Agent, request } from 'undici';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { loadConfigFile } from '../../src/config/load.js';
import { LoadBalancer } from '../../src/load-balancer.js';
import { freePort, startNamedBackend, type TestServer } from '../helpers/servers.js';

function textOf(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString();
  return Array.isArray(data) ? Buffer.concat(data).toString() : Buffer.from(data).toString();
}

/** An HTTP backend that also echoes WebSocket messages as `<name>:<message>`. */
async function startWsBackend(name: string): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    req.resume();
    res.end(name);
  });
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('message', (data) => ws.send(`${name}:${textOf(data)}`));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      for (const client of wss.clients) client.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function echo(ws: WebSocket, text: string): Promise<string> {
  const reply = once(ws, 'message') as Promise<[RawData]>;
  ws.send(text);
  return textOf((await reply)[0]);
}

interface Urls {
  a: string;
  b: string;
  c: string;
  slow: string;
  wsKeep: string;
  wsGone: string;
}

function yaml(
  urls: Urls,
  ports: { main: number; ws1: number; ws2: number; extra: number },
  step: number,
): string {
  const web = [
    `      - { url: ${urls.a}, name: a, weight: ${step >= 1 ? 3 : 1} }`,
    `      - { url: ${urls.b}, name: b }`,
    ...(step >= 2 ? [`      - { url: ${urls.c}, name: c }`] : []),
    ...(step < 3 ? [`      - { url: ${urls.slow}, name: slow }`] : []),
  ];
  return [
    'workers: 1',
    'log: { level: silent }',
    'drainTimeout: 400ms',
    'listeners:',
    `  - { address: 127.0.0.1:${ports.main}, pool: web }`,
    `  - { address: 127.0.0.1:${ports.ws1}, pool: ws1 }`,
    ...(step < 3 ? [`  - { address: 127.0.0.1:${ports.ws2}, pool: ws2 }`] : []),
    ...(step === 5 ? [`  - { address: 127.0.0.1:${ports.extra}, pool: web }`] : []),
    'pools:',
    '  web:',
    `    strategy: ${step >= 4 ? 'least-connections' : 'round-robin'}`,
    '    backends:',
    ...web,
    '  ws1:',
    `    backends: [{ url: ${urls.wsKeep}, name: wskeep }]`,
    ...(step < 3 ? ['  ws2:', `    backends: [{ url: ${urls.wsGone}, name: wsgone }]`] : []),
    '',
  ].join('\n');
}

void test('reload under load: zero failed requests, kept backends keep their state', async (t) => {
  const servers: TestServer[] = [
    await startNamedBackend('a'),
    await startNamedBackend('b'),
    await startNamedBackend('c'),
    await startNamedBackend('slow', 40),
  ];
  const wsKeep = await startWsBackend('keep');
  const wsGone = await startWsBackend('gone');
  const [a, b, c, slow] = servers as [TestServer, TestServer, TestServer, TestServer];
  const urls: Urls = {
    a: a.url,
    b: b.url,
    c: c.url,
    slow: slow.url,
    wsKeep: wsKeep.url,
    wsGone: wsGone.url,
  };
  const ports = {
    main: await freePort(),
    ws1: await freePort(),
    ws2: await freePort(),
    extra: await freePort(),
  };
  const dir = await mkdtemp(join(tmpdir(), 'anubis-reload-'));
  const file = join(dir, 'anubis.yaml');
  await writeFile(file, yaml(urls, ports, 0));
  const balancer = await LoadBalancer.start(await loadConfigFile(file), {
    reloadSource: () => loadConfigFile(file),
  });
  const agent = new Agent({ connections: 16 });
  t.after(async () => {
    await balancer.close(1_000);
    await agent.close();
    for (const server of servers) await server.close();
    await wsKeep.close();
    await wsGone.close();
    await rm(dir, { recursive: true, force: true });
  });

  const web = balancer.pools.get('web');
  assert.ok(web);
  const backendA = web.backend('a');
  assert.ok(backendA);

  // Long-lived connections opened before any reload.
  const keepWs = new WebSocket(`ws://127.0.0.1:${ports.ws1}/`);
  const goneWs = new WebSocket(`ws://127.0.0.1:${ports.ws2}/`);
  await Promise.all([once(keepWs, 'open'), once(goneWs, 'open')]);
  assert.equal(await echo(keepWs, 'hi'), 'keep:hi');
  assert.equal(await echo(goneWs, 'hi'), 'gone:hi');
  let goneClosedAt = 0;
  goneWs.on('close', () => (goneClosedAt = Date.now()));
  keepWs.on('error', () => {});
  goneWs.on('error', () => {});

  // Load: 8 clients in closed loops until told to stop (and at most 20 s).
  const outcome = { ok: 0, failed: [] as string[], byBackend: new Map<string, number>() };
  let stop = false;
  const hardStop = Date.now() + 20_000;
  const client = async (): Promise<void> => {
    while (!stop && Date.now() < hardStop) {
      try {
        const res = await request(`http://127.0.0.1:${ports.main}/`, { dispatcher: agent });
        const body = await res.body.text();
        if (res.statusCode === 200) {
          outcome.ok++;
          outcome.byBackend.set(body, (outcome.byBackend.get(body) ?? 0) + 1);
        } else outcome.failed.push(`${res.statusCode} ${body}`);
      } catch (error) {
        outcome.failed.push(String(error));
      }
    }
  };
  const clients = Array.from({ length: 8 }, client);
  const settle = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

  const requestsBefore = backendA.requests;
  await settle(300);
  const summaries = [];
  let removedAt = 0;
  for (let step = 1; step <= 6; step++) {
    await writeFile(file, yaml(urls, ports, step));
    const countBefore = outcome.ok;
    const next = await loadConfigFile(file);
    if (step === 3) removedAt = Date.now();
    summaries.push(await balancer.reload(next));
    // Keep the load running until requests flowed under the new configuration.
    while (outcome.ok < countBefore + 100 && Date.now() < hardStop) await settle(20);
    if (step === 5) {
      const res = await request(`http://127.0.0.1:${ports.extra}/`);
      assert.equal(res.statusCode, 200);
      await res.body.text();
    }
  }
  // An invalid file is rejected and the running configuration stays.
  await writeFile(file, yaml(urls, ports, 6).replace('weight: 3', 'weight: -3'));
  await assert.rejects(
    async () => balancer.reload(await loadConfigFile(file)),
    /pools\.web\.backends\[0\]\.weight/,
  );
  const countAfterInvalid = outcome.ok;
  while (outcome.ok < countAfterInvalid + 100 && Date.now() < hardStop) await settle(20);
  stop = true;
  await Promise.all(clients);

  assert.deepEqual(outcome.failed, [], 'no request failed during reloads');
  assert.ok(outcome.ok > 700, `requests flowed (${outcome.ok})`);
  // Kept backend: same object, counters carried on, weight from the file.
  assert.equal(web.backend('a'), backendA);
  assert.equal(balancer.pools.get('web'), web);
  assert.ok(backendA.requests > requestsBefore);
  assert.ok(backendA.latencySamples > 0);
  assert.equal(backendA.weight, 3);
  assert.equal(web.strategy.name, 'least-connections');
  assert.deepEqual(
    web.backends.map((x) => x.id),
    ['a', 'b', 'c'],
  );
  assert.ok((outcome.byBackend.get('c') ?? 0) > 0, 'added backend took traffic');
  assert.deepEqual(summaries[2]?.backends.removed, ['web/slow']);
  assert.deepEqual(summaries[2]?.pools.removed, ['ws2']);
  assert.deepEqual(summaries[5]?.listeners.removed, [`127.0.0.1:${ports.extra}`]);
  await assert.rejects(request(`http://127.0.0.1:${ports.extra}/`));

  // The WebSocket to the kept backend survived every reload; the one to the removed backend
  // was cut after the 400 ms drain timeout.
  assert.equal(keepWs.readyState, WebSocket.OPEN);
  assert.equal(await echo(keepWs, 'still here'), 'keep:still here');
  const closeDeadline = Date.now() + 5_000;
  while (goneClosedAt === 0 && Date.now() < closeDeadline) await settle(20);
  assert.ok(goneClosedAt > 0, 'the WebSocket to the removed backend was closed');
  // ... after its drain time, not at once (timers may fire a little early: 100 ms margin).
  assert.ok(goneClosedAt - removedAt >= 300, `closed ${goneClosedAt - removedAt} ms after removal`);
  keepWs.close();
});
