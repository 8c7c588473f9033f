// Health and failover logic without sockets: the eligible set (panic, backup, down), passive
// ejection (window, cool-down doubling, half-open), slow start, the retry rules and budget,
// and the configuration keys with their defaults and errors.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import {
  ConfigError,
  UpstreamConnectError,
  UpstreamHeadersTimeoutError,
  UpstreamResetError,
} from '../../src/errors.js';
import { computeEligible, untriedBackup } from '../../src/health/eligibility.js';
import { recordFailure, recordSuccess } from '../../src/health/outlier.js';
import {
  advanceSlowStart,
  beginSlowStart,
  SLOW_START_MIN_SHARE,
} from '../../src/health/slow-start.js';
import { mayRetry, retryCause, RetryBudget, type RetryRequest } from '../../src/proxy/retry.js';
import { smoothWeightedSchedule } from '../../src/strategies/round-robin.js';
import { Backend } from '../../src/upstream/backend.js';

function backends(n: number, backups = 0): Backend[] {
  return Array.from({ length: n + backups }, (_, i) => {
    const b = new Backend({
      id: `b${i}`,
      url: `http://127.0.0.1:${10_000 + i}`,
      weight: 1,
      connectTimeoutMs: 1_000,
      keepAliveTimeoutMs: 1_000,
    });
    b.backup = i >= n;
    return b;
  });
}

const ids = (list: readonly Backend[]): string[] => list.map((b) => b.id);

void test('eligible set: normal, panic over reachable backends, backup, down', () => {
  const [a, b, c, d] = backends(4);
  assert.ok(a && b && c && d);
  const all = [a, b, c, d];
  assert.deepEqual(ids(computeEligible(all, 0.5).eligible), ['b0', 'b1', 'b2', 'b3']);

  b.healthy = false;
  c.healthy = false; // 2 of 4 healthy = 50 %: not below the threshold
  let set = computeEligible(all, 0.5);
  assert.equal(set.mode, 'normal');
  assert.deepEqual(ids(set.eligible), ['b0', 'b3']);

  d.healthy = false; // 25 % < 50 %: panic over every reachable backend
  d.health.unreachable = true; // …but a refused port stays out
  set = computeEligible(all, 0.5);
  assert.equal(set.mode, 'panic');
  assert.deepEqual(ids(set.eligible), ['b0', 'b1', 'b2']);
  assert.equal(set.healthyShare, 0.25);

  assert.equal(computeEligible(all, 0).mode, 'normal', 'threshold 0 disables panic');

  for (const x of all) {
    x.healthy = false;
    x.health.unreachable = true;
  }
  set = computeEligible(all, 0.5);
  assert.equal(set.mode, 'down');
  assert.deepEqual(set.eligible, []);

  a.adminState = 'draining';
  a.healthy = true;
  assert.equal(computeEligible(all, 0.5).mode, 'down', 'a draining backend takes nothing new');
});

void test('eligible set: backups only when every primary is down', () => {
  const list = backends(2, 2);
  const [p1, p2, b1, b2] = list;
  assert.ok(p1 && p2 && b1 && b2);
  assert.deepEqual(ids(computeEligible(list, 0.5).eligible), ['b0', 'b1']);
  p1.healthy = false;
  p1.health.unreachable = true;
  assert.deepEqual(ids(computeEligible(list, 0.5).eligible), ['b1']);
  p2.healthy = false;
  p2.health.unreachable = true;
  const set = computeEligible(list, 0.5);
  assert.equal(set.mode, 'backup');
  assert.deepEqual(ids(set.eligible), ['b2', 'b3']);
  // A retry that exhausted the primaries moves on to an untried backup.
  b1.active = 3;
  assert.equal(untriedBackup(list, new Set([p1]))?.id, 'b3');
  assert.equal(untriedBackup(list, new Set([b2]))?.id, 'b2');
  assert.equal(untriedBackup(list, new Set([b1, b2])), undefined);
});

const passive = {
  enabled: true,
  failures: 3,
  window: 1_000,
  cooldown: 100,
  on: ['connect', 'reset', 'timeout'] as ('connect' | 'reset' | 'timeout' | 'protocol' | '5xx')[],
};

void test('passive ejection: consecutive failures within the window, doubling cool-down, half-open', () => {
  const [b] = backends(1);
  assert.ok(b);
  const h = b.health;
  assert.equal(recordFailure(h, passive, 0), 0);
  assert.equal(recordFailure(h, passive, 10), 0);
  recordSuccess(h); // a success breaks the run
  assert.equal(recordFailure(h, passive, 20), 0);
  assert.equal(recordFailure(h, passive, 30), 0);
  // Outside the window: the run starts again.
  assert.equal(recordFailure(h, passive, 2_000), 0);
  assert.equal(recordFailure(h, passive, 2_010), 0);
  assert.equal(recordFailure(h, passive, 2_020), 100, 'third failure in the window ejects');
  assert.equal(h.ejectedUntil, 2_120);
  assert.equal(recordFailure(h, passive, 2_030), 0, 'no double ejection');
  // Cool-down over: half-open; one failure ejects again, for twice as long.
  h.ejectedUntil = 0;
  h.halfOpen = true;
  assert.equal(recordFailure(h, passive, 3_000), 200);
  h.ejectedUntil = 0;
  h.halfOpen = true;
  assert.equal(recordFailure(h, passive, 4_000), 400);
  for (let i = 0; i < 5; i++) {
    h.ejectedUntil = 0;
    h.halfOpen = true;
    recordFailure(h, passive, 5_000 + i);
  }
  assert.equal(h.ejectedUntil - 5_004, 800, 'capped at 8 × cooldown');
  // A success in half-open closes the episode.
  h.ejectedUntil = 0;
  h.halfOpen = true;
  recordSuccess(h);
  assert.equal(h.halfOpen, false);
  assert.equal(h.ejections, 0);
  assert.equal(recordFailure(h, passive, 9_000), 0);
});

void test('slow start ramps the effective weight linearly from 10 % to 100 %', () => {
  const [b] = backends(1);
  assert.ok(b);
  b.weight = 10;
  assert.equal(beginSlowStart(b, 1_000, 0), true);
  assert.equal(b.effectiveWeight, 10 * SLOW_START_MIN_SHARE);
  assert.equal(advanceSlowStart(b, 1_000, 50), true);
  assert.equal(b.effectiveWeight, 1, 'never below the minimum share');
  advanceSlowStart(b, 1_000, 500);
  assert.equal(b.effectiveWeight, 5);
  assert.equal(advanceSlowStart(b, 1_000, 1_000), false);
  assert.equal(b.effectiveWeight, 10);
  assert.equal(beginSlowStart(b, 0, 2_000), false, 'slowStart 0: full weight at once');
  assert.equal(b.effectiveWeight, 10);
});

void test('round robin honours fractional effective weights (slow start of weight-1 backends)', () => {
  const schedule = smoothWeightedSchedule([0.1, 1, 1]);
  const share = schedule.filter((i) => i === 0).length / schedule.length;
  assert.ok(Math.abs(share - 0.1 / 2.1) < 0.01, `share ${share}`);
  assert.deepEqual(smoothWeightedSchedule([5, 1, 1]), [0, 0, 1, 0, 2, 0, 0]);
});

const retryConfig = validateConfig(
  {
    listeners: [{ address: '127.0.0.1:0', pool: 'p' }],
    pools: { p: { backends: [{ url: 'http://127.0.0.1:1' }] } },
  },
  'test',
).pools.p!.retry;

function request(overrides: Partial<RetryRequest> = {}): RetryRequest {
  return {
    method: 'GET',
    idempotencyKey: undefined,
    attempts: 1,
    arrivedAt: 0,
    bodyReplayable: true,
    ...overrides,
  };
}

void test('retry rules: causes, methods, attempts, deadline, replay buffer, Idempotency-Key', () => {
  const reset = new UpstreamResetError('b', new Error('x'));
  const connect = new UpstreamConnectError('b', new Error('x'));
  const timeout = new UpstreamHeadersTimeoutError('b', new Error('x'));
  assert.equal(retryCause(connect, false, false), 'connect');
  assert.equal(retryCause(reset, false, false), 'reset');
  assert.equal(retryCause(reset, true, false), 'stale');
  assert.equal(retryCause(reset, true, true), 'reset', 'a response had started: not stale');
  assert.equal(retryCause(timeout, true, false), 'timeout');

  const budget = new RetryBudget();
  const ok = (
    cause: Parameters<typeof mayRetry>[0],
    r: RetryRequest,
    config = retryConfig,
  ): boolean => mayRetry(cause, r, config, budget, 100);
  assert.equal(ok('reset', request()), true);
  assert.equal(ok('reset', request({ method: 'POST' })), false, 'POST reached the backend');
  assert.equal(ok('connect', request({ method: 'POST' })), true, 'nothing was sent');
  assert.equal(ok('stale', request({ method: 'POST' })), true, 'stale pooled connection');
  assert.equal(ok('timeout', request()), false, 'timeouts are not retried by default');
  assert.equal(ok('reset', request({ attempts: 3 })), false, 'attempts exhausted');
  assert.equal(ok('stale', request({ bodyReplayable: false })), false, 'body outgrew the buffer');
  assert.equal(ok('reset', request({ arrivedAt: -20_000 })), false, 'past the deadline');
  assert.equal(
    ok('reset', request({ method: 'POST', idempotencyKey: 'k' })),
    false,
    'pool did not opt in',
  );
  assert.equal(
    ok('reset', request({ method: 'POST', idempotencyKey: 'k' }), {
      ...retryConfig,
      idempotencyKey: true,
    }),
    true,
  );
});

void test('retry budget: at most min + ratio × requests retries per window', () => {
  const budget = new RetryBudget();
  const config = { ...retryConfig, budget: { ratio: 0.2, min: 2, window: 1_000 } };
  for (let i = 0; i < 100; i++) budget.recordRequest(10, config);
  let granted = 0;
  for (let i = 0; i < 100; i++) if (budget.tryRetry(20, config)) granted++;
  assert.equal(granted, 22, '2 + 0.2 × 100');
  assert.equal(budget.refused, 78);
  // A window later the counts have rotated out: only `min` until new requests arrive.
  let later = 0;
  for (let i = 0; i < 10; i++) if (budget.tryRetry(2_000, config)) later++;
  assert.equal(later, 2);
});

void test('configuration: defaults, and clear errors for bad health keys', () => {
  const base = { listeners: [{ address: '127.0.0.1:0', pool: 'p' }] };
  const config = validateConfig(
    { ...base, pools: { p: { backends: [{ url: 'http://127.0.0.1:1' }] } } },
    't',
  );
  const pool = config.pools.p!;
  assert.equal(pool.health.active, undefined, 'active checks only when configured');
  assert.equal(pool.health.passive.enabled, true, 'passive health on by default');
  assert.deepEqual(pool.retry.on, ['connect', 'reset']);
  assert.equal(pool.retry.attempts, 3);
  assert.equal(pool.concurrency.maxPerBackend, 0);
  assert.equal(pool.backends[0]?.backup, false);

  const active = validateConfig(
    {
      ...base,
      pools: {
        p: {
          backends: [{ url: 'http://127.0.0.1:1' }],
          health: { active: { path: '/hz', expectStatus: '200-204', interval: '1s' } },
        },
      },
    },
    't',
  ).pools.p!.health.active;
  assert.deepEqual(active?.expectStatus, { low: 200, high: 204 });
  assert.equal(active?.interval, 1_000);
  assert.equal(active?.fall, 3);

  assert.throws(
    () =>
      validateConfig(
        {
          ...base,
          pools: {
            p: {
              backends: [{ url: 'http://127.0.0.1:1' }],
              health: { active: { expectStatus: '2xx' } },
            },
          },
        },
        't',
      ),
    (error: unknown) =>
      error instanceof ConfigError &&
      /pools\.p\.health\.active\.expectStatus: expected a status or range/.test(error.message),
  );
  assert.throws(
    () =>
      validateConfig(
        {
          ...base,
          pools: { p: { backends: [{ url: 'http://127.0.0.1:1' }], retry: { on: ['sometimes'] } } },
        },
        't',
      ),
    (error: unknown) =>
      error instanceof ConfigError && /pools\.p\.retry\.on\[0\]/.test(error.message),
  );
});

void test('CLI quick start: --health-check PATH turns on active checks; backup=true on --backend', async () => {
  const { parseCli, quickStartConfig } = await import('../../src/cli/args.js');
  const args = parseCli([
    '--backend',
    'http://127.0.0.1:9001',
    '--backend',
    'http://127.0.0.1:9002,backup=true',
    '--health-check',
    '/healthz',
  ]);
  const config = validateConfig(quickStartConfig(args), 'command line');
  const pool = config.pools.default;
  assert.ok(pool);
  assert.equal(pool.health.active?.path, '/healthz');
  assert.equal(pool.health.active?.interval, 5_000);
  assert.deepEqual(
    pool.backends.map((b) => b.backup),
    [false, true],
  );
  const without = validateConfig(
    quickStartConfig(parseCli(['--backend', 'http://127.0.0.1:9001'])),
    'command line',
  );
  assert.equal(without.pools.default?.health.active, undefined);
  assert.throws(
    () => quickStartConfig(parseCli(['--backend', 'http://127.0.0.1:9001,backup=yes'])),
    /backup must be true or false/,
  );
});

void test('HealthMonitor: passive ejection, cool-down, half-open, re-ejection for twice as long, events with reasons', async () => {
  const { UpstreamPool } = await import('../../src/upstream/pool.js');
  const { RoundRobinStrategy } = await import('../../src/strategies/round-robin.js');
  const config = validateConfig(
    {
      listeners: [{ address: '127.0.0.1:0', pool: 'p' }],
      pools: {
        p: {
          backends: [
            { url: 'http://127.0.0.1:1', name: 'x' },
            { url: 'http://127.0.0.1:2', name: 'y' },
          ],
          health: { passive: { failures: 2, cooldown: 60 } },
        },
      },
    },
    't',
  );
  const pool = new UpstreamPool('p', config.pools.p!, new RoundRobinStrategy());
  const changes: string[] = [];
  pool.on('backend-health', ({ backend, healthy, reason }) =>
    changes.push(`${backend.id} ${healthy ? 'up' : 'down'}: ${reason}`),
  );
  try {
    const x = pool.backend('x')!;
    const refused = new UpstreamConnectError('x', new Error('ECONNREFUSED'));
    pool.health.reportError(x, refused);
    assert.equal(x.healthy, true);
    pool.health.reportError(x, refused);
    assert.equal(x.healthy, false);
    assert.equal(x.ejections, 1);
    assert.deepEqual(
      pool.eligible.map((b) => b.id),
      ['y'],
    );
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.equal(x.healthy, true, 'half-open after the cool-down');
    assert.equal(x.health.halfOpen, true);
    pool.health.reportError(x, refused);
    assert.equal(x.healthy, false, 'one failure while half-open ejects again');
    assert.ok(x.health.ejectedUntil > 0);
    assert.deepEqual(changes, [
      'x down: passive: 2 × connect; ejected for 60 ms',
      'x up: passive: cool-down over, half-open',
      'x down: passive: connect while half-open; ejected for 120 ms',
    ]);
    await new Promise((resolve) => setTimeout(resolve, 200));
    pool.health.reportResponse(x, 200);
    assert.equal(x.health.halfOpen, false, 'a success closes the episode');
    assert.equal(x.health.ejections, 0);
  } finally {
    await pool.close();
  }
});
