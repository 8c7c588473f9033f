// DNS discovery end to end: a DNS server we control (test/helpers/dns-server.ts) changes its
// answers while requests flow through anubis; backends follow the answers and no request fails.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createTestPki } from '../helpers/certs.js';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { test, type TestContext } from 'node:test';
import { Agent, request } from 'undici';
import { pino } from 'pino';
import { createLoadBalancer, type LoadBalancer } from '../../src/load-balancer.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { validateConfig } from '../../src/config/load.js';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.js';
import { freePort, startNamedBackend, type TestServer } from '../helpers/servers.js';
import { spawnCli, stopChild, waitForOutput } from '../helpers/anubis.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Polls `condition` every 20 ms until it holds (fails the test after `timeoutMs`). */
async function waitFor(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

interface Load {
  /** Answers per body (backend name) since the last reset(). */
  readonly seen: Map<string, number>;
  readonly failures: string[];
  /** Requests sent since the start. */
  sent(): number;
  total(): number;
  reset(): void;
  stop(): Promise<void>;
}

/** `concurrency` clients sending requests back to back (at most 50 000 in all). */
function startLoad(url: string, concurrency: number): Load {
  const agent = new Agent({ keepAliveTimeout: 10_000 });
  const seen = new Map<string, number>();
  const failures: string[] = [];
  let stopped = false;
  let sent = 0;
  const worker = async (): Promise<void> => {
    while (!stopped && sent < 50_000) {
      sent++;
      try {
        const response = await request(url, { dispatcher: agent });
        const body = await response.body.text();
        if (response.statusCode !== 200) failures.push(`${response.statusCode} ${body.trim()}`);
        else seen.set(body, (seen.get(body) ?? 0) + 1);
      } catch (error) {
        failures.push(String(error));
      }
    }
  };
  const workers = Array.from({ length: concurrency }, () => worker());
  return {
    seen,
    failures,
    sent: () => sent,
    total: () => [...seen.values()].reduce((a, b) => a + b, 0),
    reset: () => seen.clear(),
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await Promise.all(workers);
      await agent.close();
    },
  };
}

function discoveryConfig(
  url: string,
  dns: TestDnsServer,
  discovery: Record<string, unknown> = {},
): ConfigInput {
  return {
    workers: 1,
    listeners: [{ address: '127.0.0.1:0', pool: 'web' }],
    pools: {
      web: {
        backends: [
          {
            url,
            discovery: {
              servers: [dns.address],
              interval: '500ms',
              minInterval: '100ms',
              ...discovery,
            },
          },
        ],
      },
    },
  };
}

async function startLb(
  t: TestContext,
  config: ConfigInput,
  logger?: pino.Logger,
): Promise<{ lb: LoadBalancer; url: string }> {
  const lb = await createLoadBalancer(config, logger === undefined ? {} : { logger });
  t.after(() => lb.close(1_000));
  const address = lb.addresses()[0] as AddressInfo;
  return { lb, url: `http://127.0.0.1:${address.port}/` };
}

function backendIds(lb: LoadBalancer): string[] {
  return (lb.pools.get('web')?.backends ?? []).map((b) => b.id).sort();
}

/** A named backend on exactly host:port. */
async function listenNamed(name: string, host: string, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end(name));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

void test('A and AAAA records each become a backend; answers that change add and drain backends with no failed request', async (t) => {
  const dns = await startDnsServer();
  t.after(() => dns.close());
  // The same port on 127.0.0.1 and ::1: the two addresses of one name.
  const v4 = await listenNamed('v4', '127.0.0.1', 0);
  const port = (v4.address() as AddressInfo).port;
  const v6 = await listenNamed('v6', '::1', port);
  t.after(() => Promise.all([closeServer(v4), closeServer(v6)]));

  dns.setA('hello.test', ['127.0.0.1']);
  const { lb, url } = await startLb(t, discoveryConfig(`http://hello.test:${port}`, dns));
  // The first answer is in before the listener accepts: the configured entry is gone already.
  assert.deepEqual(backendIds(lb), [`hello.test@127.0.0.1:${port}`]);

  const load = startLoad(url, 4);
  t.after(() => load.stop());
  await waitFor('requests to v4', () => (load.seen.get('v4') ?? 0) > 20);

  dns.setAAAA('hello.test', ['::1']);
  await waitFor('the AAAA backend', () => backendIds(lb).length === 2);
  await waitFor('requests to v6', () => (load.seen.get('v6') ?? 0) > 20);
  assert.deepEqual(backendIds(lb), [`hello.test@127.0.0.1:${port}`, `hello.test@[::1]:${port}`]);

  dns.setA('hello.test', []);
  await waitFor('the A backend to leave', () => backendIds(lb).length === 1);
  // Requests picked before the change may still complete on v4 (they drain): skip past them.
  load.reset();
  await waitFor('in-flight requests to complete', () => load.total() > 8);
  load.reset();
  await waitFor('requests after the change', () => load.total() > 50);
  await load.stop();
  assert.deepEqual(backendIds(lb), [`hello.test@[::1]:${port}`]);
  assert.equal(load.seen.get('v4'), undefined, 'no request reaches a backend that left DNS');
  assert.deepEqual(load.failures, []);
  t.diagnostic(`${load.sent()} requests through anubis while DNS changed, none failed`);
});

void test('SRV records: targets and ports follow the answers, lowest priority only, zero failed requests', async (t) => {
  const dns = await startDnsServer();
  t.after(() => dns.close());
  const servers: TestServer[] = await Promise.all(
    ['a', 'b', 'c', 'backup'].map((n) => startNamedBackend(n)),
  );
  t.after(() => Promise.all(servers.map((s) => s.close())));
  const [a, b, c, backup] = servers as [TestServer, TestServer, TestServer, TestServer];
  dns.setA('node.test', ['127.0.0.1']);
  const srv = (targets: TestServer[]): void =>
    dns.setSRV('_http._tcp.web.test', [
      ...targets.map((s) => ({ target: 'node.test', port: s.port })),
      { target: 'node.test', port: backup.port, priority: 10 },
    ]);
  srv([a, b]);

  const { lb, url } = await startLb(
    t,
    discoveryConfig('http://web.test', dns, { type: 'srv', name: '_http._tcp.web.test' }),
  );
  const ids = (...list: TestServer[]): string[] =>
    list.map((s) => `web.test@127.0.0.1:${s.port}`).sort();
  assert.deepEqual(backendIds(lb), ids(a, b));

  const load = startLoad(url, 4);
  t.after(() => load.stop());
  await waitFor(
    'requests to a and b',
    () => (load.seen.get('a') ?? 0) > 10 && (load.seen.get('b') ?? 0) > 10,
  );

  srv([b, c]);
  await waitFor('{b, c}', () => backendIds(lb).join() === ids(b, c).join());
  load.reset();
  await waitFor('in-flight requests to complete', () => load.total() > 8);
  load.reset();
  await waitFor('requests after {b, c}', () => load.total() > 60);
  assert.equal(load.seen.get('a'), undefined);
  assert.ok((load.seen.get('c') ?? 0) > 0);

  srv([a, b, c]);
  await waitFor('{a, b, c}', () => backendIds(lb).join() === ids(a, b, c).join());
  load.reset();
  await waitFor('requests to all three', () =>
    ['a', 'b', 'c'].every((n) => (load.seen.get(n) ?? 0) > 5),
  );
  await load.stop();
  assert.equal(load.seen.get('backup'), undefined, 'a higher priority value is not used');
  assert.deepEqual(load.failures, []);
  t.diagnostic(`${load.sent()} requests through anubis while DNS changed, none failed`);
});

void test('a failing resolver keeps the last known backends, logs it, and recovers', async (t) => {
  const dns = await startDnsServer();
  t.after(() => dns.close());
  const server = await startNamedBackend('one');
  t.after(() => server.close());
  dns.setA('one.test', ['127.0.0.1']);
  const lines: string[] = [];
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    }),
  );
  const { lb, url } = await startLb(
    t,
    discoveryConfig(`http://one.test:${server.port}`, dns),
    logger,
  );
  const id = `one.test@127.0.0.1:${server.port}`;
  assert.deepEqual(backendIds(lb), [id]);

  const failures = (code: string): number =>
    lines.filter((l) => l.includes('resolution failed') && l.includes(`"code":"${code}"`)).length;
  dns.failing = true; // SERVFAIL to everything
  await waitFor('three failed rounds', () => failures('ESERVFAIL') >= 3);
  dns.failing = false;
  dns.setA('one.test', []); // the name has no address any more (NODATA): the pool is not emptied
  dns.setAAAA('one.test', []);
  await waitFor('two rounds without records', () => failures('ENODATA') >= 2);
  assert.deepEqual(backendIds(lb), [id]);
  const response = await request(url);
  assert.equal(await response.body.text(), 'one');

  const entry = JSON.parse(lines.find((l) => l.includes('ESERVFAIL')) as string) as Record<
    string,
    unknown
  >;
  assert.equal(entry.level, 40);
  assert.equal(entry.name, 'one.test');
  assert.equal(entry.keeping, 1);

  dns.setA('one.test', ['127.0.0.1']);
  await waitFor('recovery logged', () => lines.some((l) => l.includes('resolving again')));
  assert.deepEqual(backendIds(lb), [id]);
});

void test('a name that does not resolve at start-up stays one backend until it does', async (t) => {
  const dns = await startDnsServer();
  t.after(() => dns.close());
  const server = await startNamedBackend('late');
  t.after(() => server.close());
  const { lb, url } = await startLb(t, discoveryConfig(`http://late.test:${server.port}`, dns));
  // NXDOMAIN: the configured entry stands in (its host resolved per connection).
  assert.deepEqual(backendIds(lb), [`late.test:${server.port}`]);
  dns.setA('late.test', ['127.0.0.1']);
  await waitFor(
    'the discovered backend',
    () => backendIds(lb).join() === `late.test@127.0.0.1:${server.port}`,
  );
  assert.equal(await (await request(url)).body.text(), 'late');
});

void test('a reload keeps discovered backends while their entry stays, and stops discovery when it goes', async (t) => {
  const dns = await startDnsServer();
  t.after(() => dns.close());
  const [found, fixed] = await Promise.all([
    startNamedBackend('found'),
    startNamedBackend('fixed'),
  ]);
  t.after(() => Promise.all([found.close(), fixed.close()]));
  dns.setA('found.test', ['127.0.0.1']);
  const config = discoveryConfig(`http://found.test:${found.port}`, dns) as unknown as {
    pools: { web: { backends: Record<string, unknown>[] } };
  };
  const { lb, url } = await startLb(t, config as unknown as ConfigInput);
  const id = `found.test@127.0.0.1:${found.port}`;
  const before = lb.pools.get('web')?.backend(id);
  assert.ok(before !== undefined);
  const load = startLoad(url, 2);
  t.after(() => load.stop());

  // Same entry, one more static backend: the discovered Backend object (and its stats) stays.
  config.pools.web.backends.push({ url: fixed.url, name: 'fixed' });
  await lb.reload(validateConfig(config, 'reload 1'));
  assert.deepEqual(backendIds(lb), ['fixed', id]);
  assert.equal(lb.pools.get('web')?.backend(id), before);
  await waitFor(
    'requests to both',
    () => (load.seen.get('found') ?? 0) > 5 && (load.seen.get('fixed') ?? 0) > 5,
  );

  // The entry goes: its backends drain away and nobody asks DNS about it any more.
  config.pools.web.backends.shift();
  await lb.reload(validateConfig(config, 'reload 2'));
  assert.deepEqual(backendIds(lb), ['fixed']);
  load.reset();
  await waitFor('in-flight requests to complete', () => load.total() > 8);
  load.reset();
  await waitFor('requests after the reload', () => load.total() > 30);
  const queries = dns.queries.get('A found.test');
  await new Promise((resolve) => setTimeout(resolve, 400));
  await load.stop();
  assert.equal(dns.queries.get('A found.test'), queries, 'discovery stopped');
  assert.equal(load.seen.get('found'), undefined);
  assert.deepEqual(load.failures, []);
  t.diagnostic(`${load.sent()} requests through anubis while DNS changed, none failed`);
});

void test('the anubis command with workers: 2 discovers backends in every worker', async (t) => {
  const dns = await startDnsServer();
  t.after(() => dns.close());
  const servers = await Promise.all(['one', 'two'].map((n) => startNamedBackend(n)));
  t.after(() => Promise.all(servers.map((s) => s.close())));
  const [one, two] = servers as [TestServer, TestServer];
  dns.setA('node.test', ['127.0.0.1']);
  dns.setSRV('_http._tcp.app.test', [{ target: 'node.test', port: one.port }]);
  const dir = await mkdtemp(join(tmpdir(), 'anubis-dns-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const port = await freePort();
  const file = join(dir, 'anubis.yaml');
  await writeFile(
    file,
    [
      'workers: 2',
      `listeners: [{ address: "127.0.0.1:${port}", pool: app }]`,
      'pools:',
      '  app:',
      '    backends:',
      '      - url: http://app.test',
      '        discovery:',
      '          type: srv',
      '          name: _http._tcp.app.test',
      `          servers: ["${dns.address}"]`,
      '          interval: 500ms',
      '          minInterval: 100ms',
      '',
    ].join('\n'),
  );
  const child = spawnCli(['--config', file]);
  t.after(() => stopChild(child));
  await waitForOutput(child, /listening[\s\S]*listening/); // both workers
  const load = startLoad(`http://127.0.0.1:${port}/`, 4);
  t.after(() => load.stop());
  await waitFor('requests to one', () => (load.seen.get('one') ?? 0) > 20);
  dns.setSRV('_http._tcp.app.test', [{ target: 'node.test', port: two.port }]);
  await waitFor('requests to two', () => (load.seen.get('two') ?? 0) > 20);
  // Each worker re-resolves on its own timer (500 ms), so the second may still send to "one"
  // for a moment after the first has moved. Connections spread over both workers: until
  // both have re-resolved, a window of 100 answers shows "one". Wait for a clean window.
  const deadline = Date.now() + 10_000;
  let clean = false;
  while (!clean && Date.now() < deadline) {
    load.reset();
    await waitFor('requests after the change', () => load.total() > 100);
    clean = load.seen.get('one') === undefined;
  }
  await load.stop();
  assert.ok(clean, `still answered by "one" 10 s after the change: ${[...load.seen].join()}`);
  assert.deepEqual(load.failures, []);
  t.diagnostic(`${load.sent()} requests through anubis while DNS changed, none failed`);
  assert.equal(await stopChild(child), 0);
});

void test('sustained churn: twelve membership changes under load, no failed request', async (t) => {
  const dns = await startDnsServer();
  t.after(() => dns.close());
  const servers = await Promise.all(['p', 'q', 'r', 's'].map((n) => startNamedBackend(n)));
  t.after(() => Promise.all(servers.map((s) => s.close())));
  dns.setA('node.test', ['127.0.0.1']);
  const publish = (members: TestServer[]): void =>
    dns.setSRV(
      '_http._tcp.churn.test',
      members.map((s) => ({ target: 'node.test', port: s.port })),
    );
  // Each step adds or removes backends; every backend leaves and comes back at least once.
  const steps = ['pq', 'pqr', 'qr', 'qrs', 's', 'ps', 'pqrs', 'r', 'pr', 'prs', 'q', 'pqrs'];
  const pick = (names: string): TestServer[] =>
    servers.filter((_, i) => names.includes('pqrs'[i] as string));
  publish(pick('pqrs'));
  const { lb, url } = await startLb(
    t,
    discoveryConfig('http://churn.test', dns, { type: 'srv', name: '_http._tcp.churn.test' }),
  );
  const load = startLoad(url, 6);
  t.after(() => load.stop());
  for (const step of steps) {
    const wanted = pick(step)
      .map((s) => `churn.test@127.0.0.1:${s.port}`)
      .sort();
    publish(pick(step));
    await waitFor(`members ${step}`, () => backendIds(lb).join() === wanted.join());
    const served = load.total();
    await waitFor(`requests with ${step}`, () => load.total() > served + 40);
  }
  await load.stop();
  assert.deepEqual(load.failures, []);
  t.diagnostic(`${load.sent()} requests through anubis over ${steps.length} changes, none failed`);
});

void test('https:// by name: each address is dialled, the certificate is checked against the name', async (t) => {
  const pki = await createTestPki();
  t.after(() => pki.cleanup());
  const leaf = await pki.leaf('secure', ['secure.test']);
  const server = createHttpsServer({ cert: leaf.cert, key: leaf.key }, (req, res) => {
    req.resume();
    req.on('end', () => res.end('tls ok'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => closeServer(server));
  const port = (server.address() as AddressInfo).port;
  const dns = await startDnsServer();
  t.after(() => dns.close());
  dns.setA('secure.test', ['127.0.0.1']);
  const config = discoveryConfig(`https://secure.test:${port}`, dns) as unknown as {
    pools: { web: { backends: Record<string, unknown>[] } };
  };
  (config.pools.web.backends[0] as Record<string, unknown>).tls = { ca: pki.ca.certFile };
  const { lb, url } = await startLb(t, config as unknown as ConfigInput);
  assert.deepEqual(backendIds(lb), [`secure.test@127.0.0.1:${port}`]);
  const response = await request(url);
  assert.equal(response.statusCode, 200);
  assert.equal(await response.body.text(), 'tls ok');
});
