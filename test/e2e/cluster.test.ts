/**
 * `workers: 2` through the real CLI: the primary serves the admin API with stats merged from
 * both workers; a runtime drain reaches every worker and is replayed to a worker that is
 * killed and restarted; counters never go backwards across the restart; a reload through the
 * API under load fails no request and reaches every worker; SIGTERM exits 0.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { request } from 'undici';
import { spawnCli, stopChild, waitForOutput } from '../helpers/anubis.js';
import { freePort, startNamedBackend, type TestServer } from '../helpers/servers.js';

interface PoolsJson {
  workers: number;
  pools: {
    name: string;
    backends: { id: string; requests: number; workers: number; state: string; weight: number }[];
  }[];
}

function config(port: number, adminPort: number, urls: string[], withC: boolean): string {
  return [
    'workers: 2',
    `admin: { address: 127.0.0.1:${adminPort} }`,
    'listeners:',
    `  - { address: 127.0.0.1:${port}, pool: web }`,
    'pools:',
    '  web:',
    '    backends:',
    `      - { url: ${urls[0]}, name: a${withC ? ', weight: 2' : ''} }`,
    `      - { url: ${urls[1]}, name: b }`,
    ...(withC ? [`      - { url: ${urls[2]}, name: c }`] : []),
    '',
  ].join('\n');
}

void test('cluster: merged stats, runtime changes replayed after a worker restart, reload under load', async (t) => {
  const servers: TestServer[] = [
    await startNamedBackend('a'),
    await startNamedBackend('b'),
    await startNamedBackend('c'),
  ];
  const urls = servers.map((s) => s.url);
  const port = await freePort();
  const adminPort = await freePort();
  const admin = `http://127.0.0.1:${adminPort}`;
  const dir = await mkdtemp(join(tmpdir(), 'anubis-cluster-'));
  const file = join(dir, 'anubis.yaml');
  await writeFile(file, config(port, adminPort, urls, false));
  const child = spawnCli(['--config', file]);
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  t.after(async () => {
    await stopChild(child, 5_000);
    for (const server of servers) await server.close();
    await rm(dir, { recursive: true, force: true });
  });
  await waitForOutput(child, /worker ready[\s\S]*worker ready/, 30_000);

  // Each request on a new connection, so that both workers get some.
  const fire = async (n: number): Promise<Map<string, number>> => {
    const seen = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const res = await request(`http://127.0.0.1:${port}/`, { reset: true });
      const body = await res.body.text();
      assert.equal(res.statusCode, 200, body);
      seen.set(body, (seen.get(body) ?? 0) + 1);
    }
    return seen;
  };
  const pools = async (): Promise<PoolsJson> => {
    const res = await request(`${admin}/api/pools`);
    return (await res.body.json()) as PoolsJson;
  };
  const totals = (view: PoolsJson): number =>
    (view.pools[0]?.backends ?? []).reduce((n, b) => n + b.requests, 0);

  await fire(40);
  let view = await pools();
  assert.equal(view.workers, 2);
  assert.equal(totals(view), 40);
  for (const backend of view.pools[0]?.backends ?? []) assert.equal(backend.workers, 2);

  // Drain a: every worker stops sending it traffic.
  const drain = await request(`${admin}/api/pools/web/backends/a/drain`, { method: 'POST' });
  assert.equal(drain.statusCode, 200, await drain.body.text());
  assert.deepEqual([...(await fire(20)).keys()], ['b']);

  // Kill a worker: it is restarted, gets the drain replayed, and counters do not go back
  // (what a worker counted after the last snapshot before it died is lost: at most 1 s).
  const beforeKill = totals(await pools());
  assert.equal(beforeKill, 60);
  const pids = [...output.matchAll(/"workerPid":(\d+),"msg":"worker ready"/g)].map((m) =>
    Number(m[1]),
  );
  assert.equal(pids.length, 2);
  process.kill(pids[0] as number, 'SIGKILL');
  await waitForOutput(child, /worker died; restarting/, 10_000);
  const readyCount = (): number => (output.match(/worker ready/g) ?? []).length;
  const deadline = Date.now() + 30_000;
  while (readyCount() < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  assert.equal(readyCount(), 3, 'the killed worker came back');
  assert.deepEqual([...(await fire(20)).keys()], ['b'], 'restarted worker replayed the drain');
  view = await pools();
  assert.equal(view.workers, 2);
  assert.ok(totals(view) >= beforeKill + 20, `counters kept across the restart (${totals(view)})`);
  assert.equal(view.pools[0]?.backends.find((b) => b.id === 'a')?.state, 'draining');

  // Reload through the API while 4 clients keep sending requests: none fails.
  await writeFile(file, config(port, adminPort, urls, true));
  let stop = false;
  const failures: string[] = [];
  let ok = 0;
  const hardStop = Date.now() + 20_000;
  const clients = Array.from({ length: 4 }, async () => {
    while (!stop && Date.now() < hardStop) {
      try {
        const res = await request(`http://127.0.0.1:${port}/`, { reset: true });
        const body = await res.body.text();
        if (res.statusCode === 200) ok++;
        else failures.push(`${res.statusCode} ${body}`);
      } catch (error) {
        failures.push(String(error));
      }
    }
  });
  await new Promise((r) => setTimeout(r, 300));
  const reload = await request(`${admin}/api/reload`, { method: 'POST' });
  const reloadBody = await reload.body.text();
  assert.equal(reload.statusCode, 200, reloadBody);
  assert.deepEqual((JSON.parse(reloadBody) as { restartNeeded: string[] }).restartNeeded, []);
  const before = ok;
  while (ok < before + 100 && Date.now() < hardStop) await new Promise((r) => setTimeout(r, 20));
  stop = true;
  await Promise.all(clients);
  assert.deepEqual(failures, []);
  view = await pools();
  const backends = view.pools[0]?.backends ?? [];
  assert.deepEqual(
    backends.map((b) => [b.id, b.workers, b.weight, b.state]),
    [
      ['a', 2, 2, 'enabled'],
      ['b', 2, 1, 'enabled'],
      ['c', 2, 1, 'enabled'],
    ],
  );
  // An invalid file: 400 with the key path, nothing changes.
  await writeFile(file, config(port, adminPort, urls, true).replace('weight: 2', 'weight: -2'));
  const bad = await request(`${admin}/api/reload`, { method: 'POST' });
  const badBody = (await bad.body.json()) as { error: { code: string; message: string } };
  assert.equal(bad.statusCode, 400);
  assert.equal(badBody.error.code, 'ANUBIS_CONFIG_INVALID');
  assert.match(badBody.error.message, /pools\.web\.backends\[0\]\.weight/);
  assert.ok((await fire(30)).has('c'));

  const exited = once(child, 'exit') as Promise<[number | null]>;
  child.kill('SIGTERM');
  const [code] = await exited;
  assert.equal(code, 0);
});
