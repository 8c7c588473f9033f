// The latency estimate strategies read (on the Backend) and the pool's wiring of stats changes
// to a strategy's ordered index.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { LeastConnectionsStrategy } from '../../src/strategies/least-connections.js';
import { RoundRobinStrategy } from '../../src/strategies/round-robin.js';
import type { BackendView, Strategy } from '../../src/strategies/types.js';
import {
  Backend,
  FAILURE_PENALTY_MIN_MS,
  failurePenalty,
  foldLatency,
  LATENCY_EWMA_ALPHA,
  LATENCY_HALF_LIFE_MS,
} from '../../src/upstream/backend.js';
import { UpstreamPool } from '../../src/upstream/pool.js';
import { context } from '../helpers/strategy-harness.js';

void test('foldLatency: first sample is taken as is; an idle estimate halves per half-life', () => {
  assert.equal(foldLatency(0, 0, 0, 42, 1_000), 42);
  const fresh = foldLatency(100, 5, 1_000, 100, 1_000);
  assert.equal(fresh, 100);
  const afterOneHalfLife = foldLatency(100, 5, 1_000, 0, 1_000 + LATENCY_HALF_LIFE_MS);
  assert.ok(Math.abs(afterOneHalfLife - (1 - LATENCY_EWMA_ALPHA) * 50) < 1e-9);
});

void test('failurePenalty: at least FAILURE_PENALTY_MIN_MS, else 4x the decayed estimate', () => {
  assert.equal(failurePenalty(0, 0, 0, 10), FAILURE_PENALTY_MIN_MS);
  assert.equal(failurePenalty(5, 3, 10, 10), FAILURE_PENALTY_MIN_MS);
  assert.equal(failurePenalty(2_000, 3, 10, 10), 8_000);
});

function poolConfig() {
  const config = validateConfig(
    {
      listeners: [{ address: '127.0.0.1:0', pool: 'web' }],
      pools: {
        web: {
          backends: [
            { url: 'http://127.0.0.1:9001' },
            { url: 'http://127.0.0.1:9002' },
            { url: 'http://127.0.0.1:9003' },
          ],
        },
      },
    },
    'test',
  );
  return config.pools.web as NonNullable<typeof config.pools.web>;
}

void test('pool: a heap strategy sees every request start and end through the backends', async () => {
  const pool = new UpstreamPool('web', poolConfig(), new LeastConnectionsStrategy());
  try {
    const [a, b, c] = pool.backends;
    assert.ok(a !== undefined && b !== undefined && c !== undefined);
    for (const backend of [a, a, b, b, c]) backend.requestStarted();
    assert.equal(pool.pick(context()), c);
    c.requestStarted();
    c.requestStarted();
    a.requestEnded(false);
    assert.equal(pool.pick(context()), a);
    // Switching to a strategy without statsChanged unhooks the backends.
    pool.strategy = new RoundRobinStrategy();
    pool.refresh();
    assert.equal(a.statsListener, undefined);
  } finally {
    await pool.close();
  }
});

void test('pool: a statsChanged that throws is counted, never thrown into the proxy', async () => {
  let backends: readonly BackendView[] = [];
  const throwing: Strategy = {
    name: 'throws-on-stats',
    setBackends(eligible) {
      backends = eligible;
    },
    pick() {
      return backends[0];
    },
    statsChanged() {
      throw new Error('boom');
    },
  };
  const pool = new UpstreamPool('web', poolConfig(), throwing);
  const errors: unknown[] = [];
  pool.on('strategy-error', (error) => errors.push(error));
  try {
    const backend = pool.pick(context());
    assert.ok(backend !== undefined);
    backend.requestStarted();
    backend.requestEnded(false);
    assert.equal(pool.strategyErrors, 2);
    assert.equal(errors.length, 2);
  } finally {
    await pool.close();
  }
});

void test('decision log: the strategy itself when debug is off; one line per pick with scores when on', async () => {
  const { withDecisionLog } = await import('../../src/strategies/decision-log.js');
  const { createLogger } = await import('../../src/logging/logger.js');
  const { Writable } = await import('node:stream');
  let lines = '';
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines += chunk.toString();
      done();
    },
  });
  const strategy = new LeastConnectionsStrategy();
  assert.equal(
    withDecisionLog(strategy, createLogger({ level: 'info', format: 'json' }, sink), 'web'),
    strategy,
  );
  const logged = withDecisionLog(
    strategy,
    createLogger({ level: 'debug', format: 'json' }, sink),
    'web',
  );
  const pool = new UpstreamPool('web', poolConfig(), logged);
  try {
    assert.equal(typeof logged.statsChanged, 'function');
    const chosen = pool.pick(context());
    const line = JSON.parse(lines.trim().split('\n').pop() as string) as Record<string, unknown>;
    assert.equal(line.msg, 'strategy pick');
    assert.equal(line.backend, chosen?.id);
    assert.equal((line.scores as unknown[]).length, 3);
  } finally {
    await pool.close();
  }
});

void test('Backend in-flight age inputs: awaiting counts requests without an answer yet', () => {
  const backend = new Backend({
    id: 'a',
    url: 'tcp://127.0.0.1:1',
    weight: 1,
    connectTimeoutMs: 1_000,
    keepAliveTimeoutMs: 1_000,
  });
  const before = performance.now();
  backend.requestStarted();
  backend.requestStarted();
  assert.equal(backend.awaiting, 2);
  assert.ok(backend.lastProgressAt >= before, 'the first awaited request marks progress');
  backend.recordLatency(5, before + 50); // one answer began: one request left awaiting
  assert.equal(backend.awaiting, 1);
  assert.equal(backend.lastProgressAt, before + 50);
  assert.equal(backend.lastLatencyMs, 5);
  backend.requestEnded(false); // the answered one ends
  assert.equal(backend.awaiting, 1);
  backend.requestEnded(true); // the other fails without an answer: nothing awaits
  assert.equal(backend.awaiting, 0);
  assert.equal(backend.active, 0);
  assert.ok(backend.lastLatencyMs >= FAILURE_PENALTY_MIN_MS, 'a failure is a slow latest sample');
  backend.requestStarted();
  backend.responseStarted(performance.now()); // e.g. a 101: an upgraded connection is not awaited
  assert.equal(backend.awaiting, 0);
  assert.equal(backend.active, 1);
  backend.requestEnded(false);
});
