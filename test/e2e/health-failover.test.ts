// Failover through real sockets: a backend killed under steady load costs no client request,
// is marked down by the active checks within interval × fall (+ one timeout), and gets
// traffic again within interval × rise once restarted; all backends down → 503 at once with
// Retry-After, and recovery without a restart; backup backends only when every primary is down.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { performance } from 'node:perf_hooks';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BackendHealthChange } from '../../src/health/monitor.js';
import { startAnubis } from '../helpers/anubis.js';
import { freePort } from '../helpers/servers.js';

/** A backend answering its name on a fixed port, that can be stopped and started again. */
class RestartableBackend {
  readonly port: number;
  readonly name: string;
  served = 0;
  /** Health checks answered since the last start(). */
  checks = 0;
  private server: Server | undefined;

  constructor(name: string, port: number) {
    this.name = name;
    this.port = port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.checks = 0;
    const server = createServer({ keepAliveTimeout: 5_000 }, (req, res) => {
      req.resume();
      req.on('end', () => {
        if (req.url !== '/health') this.served++;
        else this.checks++;
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(this.name);
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.server = server;
  }

  /** Stops listening and cuts every open connection (a crash, as seen from the network). */
  async kill(): Promise<void> {
    const server = this.server;
    if (server === undefined) return;
    this.server = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }
}

async function startBackends(names: string[]): Promise<RestartableBackend[]> {
  const backends: RestartableBackend[] = [];
  for (const name of names) {
    const backend = new RestartableBackend(name, await freePort());
    await backend.start();
    backends.push(backend);
  }
  return backends;
}

/** Resolves with performance.now() of the first health change matching `want`. */
function nextChange(
  events: BackendHealthChange[],
  want: (change: BackendHealthChange) => boolean,
  timeoutMs: number,
): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const poll = (): void => {
      if (events.some(want)) resolve(performance.now());
      else if (performance.now() - started > timeoutMs) reject(new Error('no such health change'));
      else setTimeout(poll, 5);
    };
    poll();
  });
}

void test('kill one of three under steady GET load: no failed request, down within interval × fall, back within interval × rise', async (t) => {
  const backends = await startBackends(['a', 'b', 'c']);
  const interval = 200;
  const timeout = 400;
  const rise = 2;
  const fall = 2;
  const lb = await startAnubis(
    backends.map((b) => ({ url: b.url, name: b.name })),
    { health: { active: { path: '/health', interval, timeout, rise, fall, jitter: 0.1 } } },
  );
  t.after(async () => {
    await lb.close();
    for (const b of backends) await b.kill();
  });
  const pool = lb.balancer.pools.get('test');
  assert.ok(pool);
  const events: BackendHealthChange[] = [];
  pool.on('backend-health', (change) => events.push(change));
  const victim = backends[1] as RestartableBackend;
  const victimBackend = pool.backend('b');
  assert.ok(victimBackend);

  // Steady load: 4 clients in a loop until told to stop (bounded by count too).
  let running = true;
  const failures: string[] = [];
  let completed = 0;
  const client = async (): Promise<void> => {
    for (let i = 0; running && i < 5_000; i++) {
      try {
        const res = await fetch(`${lb.url}/work`);
        const body = await res.text();
        if (res.status !== 200) failures.push(`${res.status} ${body}`);
        completed++;
      } catch (error) {
        failures.push(String(error));
      }
    }
  };
  const clients = [client(), client(), client(), client()];
  try {
    await sleep(400);
    const killedAt = performance.now();
    await victim.kill();
    // Active checks: down after `fall` failed checks, each at most interval·(1+jitter) apart.
    const activeDownBound = interval * 1.1 * fall + timeout;
    while (victimBackend.health.activeUp && performance.now() - killedAt < activeDownBound * 4) {
      await sleep(5);
    }
    const activeDownAfter = performance.now() - killedAt;
    assert.equal(victimBackend.health.activeUp, false, 'active checks never marked it down');
    assert.equal(victimBackend.healthy, false);
    // Margin for a loaded machine: the timers themselves can run late.
    assert.ok(
      activeDownAfter <= activeDownBound + 1_500,
      `marked down after ${Math.round(activeDownAfter)} ms (bound ${activeDownBound} ms)`,
    );
    const downEvent = events.find((e) => e.backend.id === 'b' && !e.healthy);
    assert.ok(downEvent, 'a backend-health event announced it');
    assert.match(downEvent.reason, /passive|check/);

    await sleep(300);
    const servedBeforeRestart = victim.served;
    const restartedAt = performance.now();
    await victim.start();
    const upAt = await nextChange(
      events,
      (e) => e.backend.id === 'b' && e.healthy,
      interval * rise * 10,
    );
    const upAfter = upAt - restartedAt;
    // Up after `rise` good checks, not more: counted by the backend, so a loaded machine's
    // late timers cannot blur it (one more may arrive between the event and this line).
    const checksWhenUp = victim.checks;
    assert.ok(
      checksWhenUp >= rise && checksWhenUp <= rise + 1,
      `up again after ${checksWhenUp} checks (rise ${rise})`,
    );
    // rise checks, at most interval·(1+jitter) apart, the first one up to one interval away;
    // the wait above already fails past interval · rise · 10.
    t.diagnostic(
      `up again after ${Math.round(upAfter)} ms (ideal bound ${interval * 1.1 * rise} ms)`,
    );
    const deadline = performance.now() + 2_000;
    while (victim.served <= servedBeforeRestart && performance.now() < deadline) await sleep(10);
    assert.ok(victim.served > servedBeforeRestart, 'the restarted backend gets traffic again');
  } finally {
    running = false;
    await Promise.all(clients);
  }
  assert.ok(completed > 50, `load ran (${completed} requests)`);
  assert.deepEqual(failures, [], 'no client request failed');
});

void test('all backends down: 503 at once with Retry-After; recovery without a restart once a check passes', async (t) => {
  const backends = await startBackends(['a', 'b']);
  const lb = await startAnubis(
    backends.map((b) => ({ url: b.url, name: b.name })),
    { health: { active: { path: '/health', interval: 150, timeout: 150, rise: 1, fall: 1 } } },
  );
  t.after(async () => {
    await lb.close();
    for (const b of backends) await b.kill();
  });
  const pool = lb.balancer.pools.get('test');
  assert.ok(pool);
  for (const b of backends) await b.kill();
  const deadline = performance.now() + 5_000;
  while (pool.mode !== 'down' && performance.now() < deadline) await sleep(20);
  assert.equal(pool.mode, 'down');
  const started = performance.now();
  const res = await fetch(`${lb.url}/`);
  const elapsed = performance.now() - started;
  assert.equal(res.status, 503);
  assert.equal(res.headers.get('retry-after'), '1');
  assert.match(await res.text(), /^503 Service Unavailable/);
  assert.ok(elapsed < 2_500, `503 took ${Math.round(elapsed)} ms`);

  await (backends[0] as RestartableBackend).start();
  let status = 0;
  const recoverBy = performance.now() + 5_000;
  while (status !== 200 && performance.now() < recoverBy) {
    await sleep(50);
    status = (await fetch(`${lb.url}/`)).status;
  }
  assert.equal(status, 200, 'serves again without a restart');
  assert.equal(pool.mode, 'normal');
});

void test('backup backends take traffic only while every primary is down', async (t) => {
  const [primary, backup] = await startBackends(['primary', 'backup']);
  assert.ok(primary && backup);
  const lb = await startAnubis(
    [
      { url: primary.url, name: 'primary' },
      { url: backup.url, name: 'backup', backup: true },
    ],
    { health: { active: { path: '/health', interval: 100, timeout: 100, rise: 1, fall: 1 } } },
  );
  t.after(async () => {
    await lb.close();
    await primary.kill();
    await backup.kill();
  });
  const pool = lb.balancer.pools.get('test');
  assert.ok(pool);
  const modes: string[] = [];
  pool.on('mode', ({ mode }) => modes.push(mode));
  for (let i = 0; i < 10; i++) assert.equal(await (await fetch(`${lb.url}/`)).text(), 'primary');
  assert.equal(backup.served, 0);

  await primary.kill();
  // Requests in between are retried onto the backup once the primary is out (no failure).
  for (let i = 0; i < 10; i++) {
    const res = await fetch(`${lb.url}/`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'backup');
  }
  assert.equal(pool.mode, 'backup');

  await primary.start();
  const deadline = performance.now() + 5_000;
  let body = '';
  while (body !== 'primary' && performance.now() < deadline) {
    await sleep(50);
    body = await (await fetch(`${lb.url}/`)).text();
  }
  assert.equal(body, 'primary');
  assert.equal(pool.mode, 'normal');
  assert.deepEqual(modes, ['backup', 'normal']);
});
