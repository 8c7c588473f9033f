// anubis simulate: the seeded generator, the latency distributions and the run statistics.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  MAX_LATENCY_MS,
  parseLatency,
  sampleLatency,
  type Latency,
} from '../../src/simulate/latency.js';
import { KEY_SPACE, requestPaths, type LoadResult } from '../../src/simulate/load-generator.js';
import { createRandom, deriveSeed } from '../../src/simulate/prng.js';
import { percentile, SHARE_SLICES, summarize } from '../../src/simulate/stats.js';

function samples(latency: Latency, n: number, seed = 42): Float64Array {
  const random = createRandom(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = sampleLatency(latency, random);
  return out.sort();
}

function latency(text: string): Latency {
  const parsed = parseLatency(text);
  assert.notEqual(typeof parsed, 'string', typeof parsed === 'string' ? parsed : '');
  return parsed as Latency;
}

void test('the generator is deterministic per seed and per stream, and uniform', () => {
  const a = createRandom(deriveSeed(7, 1));
  const b = createRandom(deriveSeed(7, 1));
  const c = createRandom(deriveSeed(7, 2));
  const d = createRandom(deriveSeed(8, 1));
  const first = Array.from({ length: 5 }, () => a());
  assert.deepEqual(
    Array.from({ length: 5 }, () => b()),
    first,
  );
  assert.notDeepEqual(
    Array.from({ length: 5 }, () => c()),
    first,
  );
  assert.notDeepEqual(
    Array.from({ length: 5 }, () => d()),
    first,
  );
  // 10 buckets of 100k draws: each within 3% of 10k (σ ≈ 95, so ±300 is > 3σ).
  const random = createRandom(123);
  const buckets = new Array<number>(10).fill(0);
  for (let i = 0; i < 100_000; i++) {
    const u = random();
    assert.ok(u >= 0 && u < 1);
    buckets[Math.floor(u * 10)]! += 1;
  }
  for (const count of buckets) assert.ok(Math.abs(count - 10_000) < 300, `bucket ${count}`);
});

void test('fixed latency is exact', () => {
  const s = samples(latency('20ms'), 100);
  assert.equal(s[0], 20);
  assert.equal(s[99], 20);
});

void test('normal latency has the given mean and standard deviation, never below 0', () => {
  const s = samples(latency('200ms±50ms'), 50_000);
  const mean = s.reduce((sum, x) => sum + x, 0) / s.length;
  const sd = Math.sqrt(s.reduce((sum, x) => sum + (x - mean) ** 2, 0) / s.length);
  assert.ok(Math.abs(mean - 200) < 2, `mean ${mean}`);
  assert.ok(Math.abs(sd - 50) < 2, `sd ${sd}`);
  const wide = samples(latency('10ms+-50ms'), 10_000);
  assert.equal(wide[0], 0, 'clamped at 0');
});

void test('log-normal latency has the given median and 99th percentile, capped at the maximum', () => {
  const s = samples(latency('50ms~400ms'), 100_000);
  const median = percentile(s, 0.5);
  const p99 = percentile(s, 0.99);
  assert.ok(Math.abs(median - 50) < 1.5, `median ${median}`);
  assert.ok(Math.abs(p99 - 400) < 25, `p99 ${p99}`);
  const huge = samples(latency('30s~60s'), 10_000);
  assert.equal(huge[huge.length - 1], MAX_LATENCY_MS);
});

void test('request paths are the same for the same seed and cover the key space', () => {
  const a = requestPaths(5, 5000);
  assert.deepEqual(requestPaths(5, 5000), a);
  assert.notDeepEqual(requestPaths(6, 5000), a);
  assert.ok(a.every((p) => /^\/key\/\d+$/.test(p) && Number(p.slice(5)) < KEY_SPACE));
  assert.ok(new Set(a).size > KEY_SPACE * 0.9);
});

void test('percentile is nearest rank', () => {
  const s = Float64Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.equal(percentile(s, 0.5), 5);
  assert.equal(percentile(s, 0.9), 9);
  assert.equal(percentile(s, 0.99), 10);
  assert.equal(percentile(s, 0), 1);
  assert.equal(percentile(new Float64Array(0), 0.5), 0);
});

void test('summarize: latencies of successful answers only, shares, CDF and shares over time', () => {
  // 3 backends; 9 answers over 900 ms (3 per backend, backend 2 only in the first third)
  // and one error.
  const backend = Int16Array.from([0, 1, 2, 0, 1, 2, 0, 1, 0, -1]);
  const latencyMs = Float64Array.from([10, 20, 30, 10, 20, 30, 10, 20, 40, 1]);
  const endedAtMs = Float64Array.from([50, 100, 150, 400, 450, 500, 700, 800, 900, 905]);
  const result: LoadResult = {
    completed: 10,
    durationMs: 1000,
    latencyMs,
    endedAtMs,
    backend,
    errors: 1,
    timeLimited: false,
  };
  const summary = summarize('x', result, 3);
  assert.equal(summary.throughput, 10);
  assert.equal(summary.errors, 1);
  assert.deepEqual(summary.answers, [4, 3, 2]);
  assert.deepEqual(
    summary.shares.map((s) => s.toFixed(3)),
    ['0.444', '0.333', '0.222'],
  );
  assert.equal(summary.p50Ms, 20);
  assert.equal(summary.maxMs, 40);
  assert.equal(summary.cdf.at(-1)?.[0], 40);
  for (let i = 1; i < summary.cdf.length; i++) {
    assert.ok(summary.cdf[i]![0] >= summary.cdf[i - 1]![0]);
    assert.ok(summary.cdf[i]![1] > summary.cdf[i - 1]![1]);
  }
  assert.equal(summary.sharesOverTime.length, SHARE_SLICES);
  for (const slice of summary.sharesOverTime) {
    const total = slice.shares.reduce((s, x) => s + x, 0);
    assert.ok(total === 0 || Math.abs(total - 1) < 1e-9);
  }
  const late = summary.sharesOverTime.filter((s) => s.atMs > 600);
  assert.ok(late.every((s) => s.shares[2] === 0));
});
