import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RoundRobinStrategy, smoothWeightedSchedule } from '../../src/strategies/round-robin.js';
import type { BackendView, PickContext } from '../../src/strategies/types.js';

function backend(id: string, weight: number): BackendView {
  return {
    id,
    url: `http://${id}`,
    weight,
    effectiveWeight: weight,
    active: 0,
    latencyEwmaMs: 0,
    latencySamples: 0,
    lastSampleAt: 0,
    requests: 0,
    failures: 0,
  };
}

function context(excluded?: Set<BackendView>): PickContext {
  return { clientAddress: '127.0.0.1', method: 'GET', url: '/', headers: {}, excluded };
}

test('weights 5,1,1 interleave as nginx does: a a b a c a a', () => {
  const strategy = new RoundRobinStrategy();
  strategy.setBackends([backend('a', 5), backend('b', 1), backend('c', 1)]);
  const order = Array.from({ length: 14 }, () => strategy.pick(context())?.id).join(' ');
  assert.equal(order, 'a a b a c a a a a b a c a a');
});

test('equal weights rotate in order', () => {
  const strategy = new RoundRobinStrategy();
  strategy.setBackends([backend('a', 1), backend('b', 1), backend('c', 1)]);
  const order = Array.from({ length: 6 }, () => strategy.pick(context())?.id).join('');
  assert.equal(order, 'abcabc');
});

test('shares follow weights 1,2,3 exactly over whole periods', () => {
  const strategy = new RoundRobinStrategy();
  strategy.setBackends([backend('a', 1), backend('b', 2), backend('c', 3)]);
  const counts: Record<string, number> = {};
  for (let i = 0; i < 6000; i++) {
    const id = strategy.pick(context())?.id as string;
    counts[id] = (counts[id] ?? 0) + 1;
  }
  assert.deepEqual(counts, { a: 1000, b: 2000, c: 3000 });
});

test('excluded backends are skipped; all excluded gives undefined', () => {
  const a = backend('a', 1);
  const b = backend('b', 1);
  const strategy = new RoundRobinStrategy();
  strategy.setBackends([a, b]);
  for (let i = 0; i < 5; i++) assert.equal(strategy.pick(context(new Set([a]))), b);
  assert.equal(strategy.pick(context(new Set([a, b]))), undefined);
});

test('an empty set picks nothing', () => {
  const strategy = new RoundRobinStrategy();
  strategy.setBackends([]);
  assert.equal(strategy.pick(context()), undefined);
});

test('huge total weights are scaled to a bounded schedule with proportional shares', () => {
  const schedule = smoothWeightedSchedule([
    10_000,
    10_000,
    5_000,
    ...Array.from({ length: 20 }, () => 10_000),
  ]);
  assert.ok(schedule.length <= 65_536 + 23);
  const first = schedule.filter((i) => i === 0).length;
  const third = schedule.filter((i) => i === 2).length;
  assert.ok(Math.abs(first / third - 2) < 0.01, `ratio ${first / third}`);
});
