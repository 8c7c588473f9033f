// Active checks (HTTP status range, body match, Host header; TCP connect), passive ejection on
// 5xx with panic mode, and slow start, through real sockets.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BackendHealthChange } from '../../src/health/monitor.js';
import { startAnubis } from '../helpers/anubis.js';
import { startBackend, startNamedBackend, startRawBackend } from '../helpers/servers.js';

async function until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

void test('HTTP check: status range, body match and Host header decide health; changes carry the reason', async (t) => {
  const state = { status: 200, body: 'READY', hosts: new Set<string>() };
  const backend = await startBackend((req, res) => {
    if (req.url === '/hz') {
      state.hosts.add(req.headers.host ?? '');
      res.writeHead(state.status);
      res.end(state.body);
      return;
    }
    res.end('app');
  });
  const lb = await startAnubis([{ url: backend.url, name: 'app' }], {
    health: {
      active: {
        path: '/hz',
        expectStatus: '200-204',
        bodyContains: 'READY',
        host: 'svc.internal',
        interval: 80,
        timeout: 500,
        rise: 2,
        fall: 2,
      },
    },
  });
  t.after(async () => {
    await lb.close();
    await backend.close();
  });
  const pool = lb.balancer.pools.get('test');
  assert.ok(pool);
  const app = pool.backend('app');
  assert.ok(app);
  const events: BackendHealthChange[] = [];
  pool.on('backend-health', (e) => events.push(e));
  await until(() => state.hosts.size > 0, 2_000, 'a first check');
  assert.deepEqual([...state.hosts], ['svc.internal']);
  assert.equal(app.healthy, true);

  state.body = 'STARTING';
  await until(() => !app.healthy, 2_000, 'down on body mismatch');
  assert.match(events.at(-1)?.reason ?? '', /check: body does not contain "READY" \(2 in a row\)/);
  const res = await fetch(`${lb.url}/`);
  assert.equal(res.status, 503, 'its only backend is down');
  assert.equal(pool.mode, 'down');

  state.body = 'READY';
  state.status = 205; // outside 200-204
  await sleep(400);
  assert.equal(app.healthy, false);
  assert.equal(app.health.reason, 'check: body does not contain "READY" (2 in a row)');

  state.status = 203;
  await until(() => app.healthy, 2_000, 'up again');
  assert.match(events.at(-1)?.reason ?? '', /check: status 203, body matched \(2 in a row\)/);
  assert.equal(await (await fetch(`${lb.url}/`)).text(), 'app');
});

void test('TCP check: a backend that stops accepting connections is marked down (unreachable)', async (t) => {
  const raw = await startRawBackend(() => {});
  const fine = await startNamedBackend('fine');
  const lb = await startAnubis(
    [
      { url: raw.url, name: 'raw' },
      { url: fine.url, name: 'fine' },
    ],
    { health: { active: { type: 'tcp', interval: 80, timeout: 300, rise: 1, fall: 2 } } },
  );
  t.after(async () => {
    await lb.close();
    await fine.close();
  });
  const pool = lb.balancer.pools.get('test');
  const rawBackend = pool?.backend('raw');
  assert.ok(pool && rawBackend);
  await sleep(300);
  assert.equal(rawBackend.healthy, true);
  await raw.close();
  await until(() => !rawBackend.healthy, 2_000, 'down');
  assert.match(rawBackend.health.reason, /check: ECONNREFUSED \(2 in a row\)/);
  assert.equal(rawBackend.health.unreachable, true);
});

void test('passive health on 5xx ejects; when too many are out the pool panics visibly and still serves', async (t) => {
  const failing = await startBackend((_req, res) => {
    res.writeHead(500);
    res.end('broken');
  });
  const alsoFailing = await startBackend((_req, res) => {
    res.writeHead(500);
    res.end('broken too');
  });
  const fine = await startNamedBackend('fine');
  const lb = await startAnubis(
    [
      { url: failing.url, name: 'f1' },
      { url: alsoFailing.url, name: 'f2' },
      { url: fine.url, name: 'fine' },
    ],
    {
      health: {
        passive: { failures: 2, cooldown: '30s', on: ['connect', 'reset', '5xx'] },
        panicThreshold: 0.5,
      },
    },
  );
  t.after(async () => {
    await lb.close();
    await failing.close();
    await alsoFailing.close();
    await fine.close();
  });
  const pool = lb.balancer.pools.get('test');
  assert.ok(pool);
  const modes: string[] = [];
  pool.on('mode', ({ mode }) => modes.push(mode));
  // f1 and f2 each answer 500 twice: ejected; 1 of 3 healthy < 50 % → panic over all three.
  const statuses: number[] = [];
  for (let i = 0; i < 12; i++) statuses.push((await fetch(`${lb.url}/`)).status);
  assert.equal(pool.backend('f1')?.healthy, false);
  assert.equal(pool.backend('f2')?.healthy, false);
  assert.match(pool.backend('f1')?.health.reason ?? '', /passive: 2 × 5xx; ejected for 30000 ms/);
  assert.deepEqual(modes, ['panic']);
  assert.equal(pool.mode, 'panic');
  assert.equal(pool.eligible.length, 3, 'panic balances over every reachable backend');
  assert.ok(statuses.includes(200));
});

void test('slow start: a backend that comes back gets a ramping share, not its full share at once', async (t) => {
  let hzStatus = 200;
  let served = 0;
  const ramping = await startBackend((req, res) => {
    if (req.url === '/hz') {
      res.writeHead(hzStatus);
      res.end();
      return;
    }
    served++;
    res.end('ramping');
  });
  const steady = await startNamedBackend('steady');
  const lb = await startAnubis(
    [
      { url: ramping.url, name: 'ramping' },
      { url: steady.url, name: 'steady' },
    ],
    {
      health: {
        active: { path: '/hz', interval: 60, timeout: 300, rise: 1, fall: 1 },
        slowStart: '3s',
      },
    },
  );
  t.after(async () => {
    await lb.close();
    await ramping.close();
    await steady.close();
  });
  const pool = lb.balancer.pools.get('test');
  const backend = pool?.backend('ramping');
  assert.ok(pool && backend);
  hzStatus = 500;
  await until(() => !backend.healthy, 2_000, 'down');
  hzStatus = 200;
  await until(() => backend.healthy, 2_000, 'up');
  const upAt = performance.now();
  assert.ok(backend.effectiveWeight < 0.5, `starts low (${backend.effectiveWeight})`);
  const before = served;
  for (let i = 0; i < 60; i++) await (await fetch(`${lb.url}/`)).text();
  const share = (served - before) / 60;
  assert.ok(share > 0 && share < 0.4, `share during the ramp ${share} (full share 0.5)`);
  // Linear ramp over 3 s: about 0.5 at 1.5 s (wide bounds: timers run late on a busy machine).
  await sleep(Math.max(0, 1_500 - (performance.now() - upAt)));
  const weightMidway = backend.effectiveWeight;
  assert.ok(weightMidway > 0.2 && weightMidway < 0.95, `ramping: ${weightMidway}`);
  await until(() => backend.effectiveWeight === 1, 5_000, 'full weight');
  assert.equal(backend.health.ramping, false);
});

void test('reload: health state survives, new active-check settings and backup flags apply, checks follow new backends', async (t) => {
  const checked = new Map<string, number>();
  const start = (name: string) =>
    startBackend((req, res) => {
      if (req.url === '/hz') checked.set(name, (checked.get(name) ?? 0) + 1);
      res.end(name);
    });
  const a = await startBackend((_req, res) => {
    res.writeHead(500);
    res.end('a');
  });
  const b = await start('b');
  const c = await start('c');
  const pools = (backends: Record<string, unknown>[], health: Record<string, unknown>) => ({
    workers: 1,
    log: { level: 'silent' },
    listeners: [{ address: '127.0.0.1:0', pool: 'test' }],
    pools: { test: { backends, health } },
  });
  const lb = await startAnubis(
    [
      { url: a.url, name: 'a' },
      { url: b.url, name: 'b' },
    ],
    { health: { passive: { failures: 1, cooldown: '1m', on: ['5xx'] } } },
  );
  t.after(async () => {
    await lb.close();
    await a.close();
    await b.close();
    await c.close();
  });
  const pool = lb.balancer.pools.get('test');
  assert.ok(pool);
  for (let i = 0; i < 2; i++) await (await fetch(`${lb.url}/`)).text();
  const ejected = pool.backend('a');
  assert.equal(ejected?.healthy, false, 'a answered 500: ejected');

  const { validateConfig } = await import('../../src/config/load.js');
  await lb.balancer.reload(
    validateConfig(
      pools(
        [
          { url: a.url, name: 'a' },
          { url: b.url, name: 'b', backup: true },
          { url: c.url, name: 'c' },
        ],
        {
          passive: { failures: 1, cooldown: '1m', on: ['5xx'] },
          active: { type: 'http', path: '/hz', interval: 50, rise: 5, fall: 5 },
        },
      ),
      'reload',
    ),
  );
  assert.equal(pool.backend('a'), ejected, 'the same backend object is kept');
  assert.equal(ejected?.healthy, false, 'and so is its ejection');
  assert.equal(pool.backend('b')?.backup, true);
  await until(
    () => (checked.get('c') ?? 0) > 0 && (checked.get('b') ?? 0) > 0,
    2_000,
    'checks of b and c',
  );
  assert.deepEqual(
    pool.eligible.map((x) => x.id),
    ['c'],
    'b is a backup now, a is still ejected',
  );
});
