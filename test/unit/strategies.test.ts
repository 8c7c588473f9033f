// Behaviour of each built-in strategy beyond the shared conformance suite, in virtual time.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { AliasTable } from '../../src/strategies/alias-table.js';
import { createStrategy } from '../../src/strategies/create.js';
import { HashStrategy, parseHashKey } from '../../src/strategies/hash.js';
import { LeastConnectionsStrategy } from '../../src/strategies/least-connections.js';
import {
  leastTimeKey,
  LeastTimeChoicesStrategy,
  LeastTimeStrategy,
} from '../../src/strategies/least-time.js';
import { RandomTwoStrategy } from '../../src/strategies/random-two.js';
import type { BackendView } from '../../src/strategies/types.js';
import type { FakeBackend } from '../helpers/strategy-harness.js';
import {
  attach,
  context,
  fakeBackends,
  seededRandom,
  shares,
  simulate,
} from '../helpers/strategy-harness.js';

/** Share of `id` in virtual second `second` of a simulation timeline. */
function shareIn(timeline: Map<string, number>[], second: number, id: string): number {
  const bucket = timeline[second] ?? new Map<string, number>();
  const total = [...bucket.values()].reduce((sum, n) => sum + n, 0);
  return total === 0 ? 0 : (bucket.get(id) ?? 0) / total;
}

// ---- least-time ---------------------------------------------------------------------------

for (const [label, create] of [
  ['least-time', () => new LeastTimeStrategy()],
  ['least-time choices: 2', () => new LeastTimeChoicesStrategy(2, 'headers', seededRandom(1))],
] as const) {
  void test(`${label}: shifts away from a backend that turns 10x slower within a second, returns when it recovers`, () => {
    const random = seededRandom(2);
    const backends = fakeBackends([1, 1, 1]);
    // b2 answers in 10 ms, 100 ms from t = 5 s to t = 12 s, then 10 ms again.
    const slow = (b: FakeBackend, now: number): boolean =>
      b.id === 'b2' && now >= 5_000 && now < 12_000;
    const { timeline, picks } = simulate(create(), backends, {
      concurrency: 8,
      requests: 16_000,
      latency: (b, now) => (slow(b, now) ? 100 : 10) * (0.9 + 0.2 * random()),
    });
    assert.ok(timeline.length > 18, `simulation too short: ${timeline.length} s`);
    assert.ok(shareIn(timeline, 3, 'b2') > 0.25, 'before: equal shares');
    // The second after the change: already clearly less.
    const during = shareIn(timeline, 6, 'b2');
    assert.ok(during < 0.12, `b2 share in second 6: ${during}`);
    for (let s = 7; s < 12; s++) {
      assert.ok(shareIn(timeline, s, 'b2') < 0.1, `b2 share in second ${s}`);
      assert.ok(shareIn(timeline, s, 'b2') > 0, `b2 still probed in second ${s}`);
    }
    // Recovery within a few seconds of b2 becoming fast again.
    const after = shareIn(timeline, 15, 'b2');
    assert.ok(after > 0.25, `b2 share in second 15: ${after}`);
    assert.ok((picks.get('b2') as number) > 0);
  });
}

void test('least-time: identical backends share equally even with sequential traffic (no starvation)', () => {
  const random = seededRandom(3);
  const backends = fakeBackends([1, 1, 1, 1]);
  const { picks } = simulate(new LeastTimeStrategy(), backends, {
    concurrency: 1,
    requests: 8_000,
    latency: () => 5 + 10 * random(),
  });
  for (const [id, share] of shares(picks)) {
    assert.ok(Math.abs(share - 0.25) < 0.05, `${id}: ${(share * 100).toFixed(1)}%`);
  }
});

void test('least-time: a backend slow once is tried again as its estimate decays (Traefik #12306)', () => {
  const backends = fakeBackends([1, 1, 1]);
  // b0 had one terrible streak at the start, then is as fast as the others.
  const { timeline } = simulate(new LeastTimeStrategy(), backends, {
    concurrency: 4,
    requests: 12_000,
    latency: (b, now) => (b.id === 'b0' && now < 500 ? 400 : 10),
  });
  const last = timeline.length - 2;
  assert.ok(last > 8);
  assert.ok(
    shareIn(timeline, last, 'b0') > 0.25,
    `b0 share at the end: ${shareIn(timeline, last, 'b0')}`,
  );
});

void test('least-time: tells a 1 ms backend from a 15 ms one (no 20 ms buckets)', () => {
  const backends = fakeBackends([1, 1]);
  const { picks } = simulate(new LeastTimeStrategy(), backends, {
    concurrency: 1,
    requests: 4_000,
    latency: (b) => (b.id === 'b0' ? 1 : 15),
  });
  const s = shares(picks);
  assert.ok((s.get('b0') as number) > 0.8, `1 ms backend got ${s.get('b0')}`);
});

void test('least-time: a backend without samples gets one probe at a time, then competes', () => {
  const strategy = new LeastTimeStrategy();
  const [a, b, fresh] = fakeBackends([1, 1, 1]) as [FakeBackend, FakeBackend, FakeBackend];
  a.ended(10, 0);
  a.active = 0;
  b.ended(10, 0);
  b.active = 0;
  attach(strategy, [a, b, fresh]);
  assert.equal(strategy.pick(context()), fresh, 'the unsampled backend is probed first');
  fresh.started();
  for (let i = 0; i < 20; i++) {
    const chosen = strategy.pick(context()) as FakeBackend;
    assert.notEqual(chosen, fresh, 'no second request while the probe is in flight');
    chosen.started();
  }
  assert.ok(leastTimeKey(fresh, 1, 'headers') === Infinity);
});

void test('least-time: cold start: a blind first wave is split evenly, then a backend still on its first requests gets no more until it answers', () => {
  // The balancing bench without warm-up: 16 connections, four backends without samples, one
  // of them 10x slower (100 ms vs 10 ms). Closed loop in 1 ms steps of virtual time.
  const strategy = new LeastTimeStrategy();
  let now = 0;
  strategy.now = () => now;
  const backends = fakeBackends([1, 1, 1, 1]);
  const slow = backends[3] as FakeBackend;
  attach(strategy, backends);
  const inflight: { backend: FakeBackend; sentAt: number }[] = [];
  const send = (): void => {
    const chosen = strategy.pick(context()) as FakeBackend;
    chosen.started(now);
    inflight.push({ backend: chosen, sentAt: now });
  };
  const runUntil = (end: number): void => {
    for (; now < end; now++) {
      for (let i = inflight.length - 1; i >= 0; i--) {
        const request = inflight[i] as (typeof inflight)[number];
        if (now - request.sentAt < (request.backend === slow ? 100 : 10)) continue;
        inflight.splice(i, 1);
        request.backend.ended(now - request.sentAt, now);
        send();
      }
    }
  };
  // 16 requests before any answer: nothing tells the backends apart, so an even split.
  for (let i = 0; i < 16; i++) send();
  assert.deepEqual(
    backends.map((b) => b.requests),
    [4, 4, 4, 4],
  );
  // From t = 10 ms the fast backends have a 10 ms estimate; the slow one's first requests
  // are outstanding (older than that estimate from then on): it gets nothing new.
  runUntil(100);
  assert.ok(backends.slice(0, 3).every((b) => b.latencySamples > 0));
  assert.equal(slow.latencySamples, 0);
  assert.equal(slow.requests, 4, 'no request to a backend whose first ones are outstanding');
  const waiting = strategy.explain().find((e) => e.backend === slow.id);
  assert.equal(waiting?.inputs.state, 'probe in flight');
  // Its answers (100 ms, 10x the others) make it degraded: probes only, one per second, so
  // a backend that was slow once is still tried again.
  runUntil(2_600);
  assert.ok(slow.requests >= 5, `re-probed: ${slow.requests} requests`);
  assert.ok(slow.requests <= 7, `probes only: ${slow.requests} requests`);
  // The identical fast backends share the rest equally.
  const fast = backends.slice(0, 3).map((b) => b.requests);
  assert.ok(
    Math.max(...fast) - Math.min(...fast) <= 0.05 * Math.min(...fast),
    `fast backends: ${fast.join(', ')}`,
  );
});

void test('least-time: a backend back after being down is probed once, then judged on new samples', () => {
  for (const strategy of [
    new LeastTimeStrategy(),
    new LeastTimeChoicesStrategy(2, 'headers', seededRandom(7)),
  ]) {
    const [a, b, back] = fakeBackends([1, 1, 1]) as [FakeBackend, FakeBackend, FakeBackend];
    for (const x of [a, b]) {
      x.started();
      x.ended(10, 100);
    }
    back.started();
    back.ended(0, 100, true); // failed: a penalty sample of 1 s
    attach(strategy, [a, b]); // it is down
    attach(strategy, [a, b, back]); // and back
    const probe = Array.from({ length: 40 }, () => strategy.pick(context())).filter(
      (x) => x === back,
    ).length;
    assert.ok(probe >= 1, `${strategy.constructor.name}: never probed`);
    back.started();
    for (let i = 0; i < 20; i++) {
      assert.notEqual(strategy.pick(context()), back, 'one probe at a time');
    }
    back.ended(5, 101); // it answers fast now: it competes on that sample
    assert.ok(strategy.explain().some((e) => e.backend === back.id && e.inputs.samples === 2));
  }
});

void test('least-time: a failing backend is avoided (a failure counts as a slow sample)', () => {
  const backends = fakeBackends([1, 1, 1]);
  for (const b of backends) {
    b.started();
    b.ended(10, 0);
  }
  const strategy = new LeastTimeStrategy();
  attach(strategy, backends);
  const broken = backends[0] as FakeBackend;
  broken.started();
  broken.ended(0, 1, true);
  const counts = new Map<string, number>();
  for (let i = 0; i < 300; i++) {
    const chosen = strategy.pick(context()) as FakeBackend;
    counts.set(chosen.id, (counts.get(chosen.id) ?? 0) + 1);
    chosen.started();
    chosen.ended(10, 2 + i * 0.1);
  }
  assert.ok((counts.get('b0') ?? 0) < 10, `failing backend got ${counts.get('b0')}`);
});

void test('least-time: the heap order always equals a full scan of the keys (in-flight age included)', () => {
  const random = seededRandom(4);
  // Degraded state off: this checks the heap and its lazy re-scoring of time-growing keys.
  const strategy = new LeastTimeStrategy({ degradedFactor: 0 });
  let now = 0;
  strategy.now = () => now;
  const backends = fakeBackends(Array.from({ length: 50 }, (_, i) => 1 + (i % 4)));
  attach(strategy, backends);
  for (let step = 0; step < 5_000; step++) {
    now = step;
    const b = backends[(random() * backends.length) | 0] as FakeBackend;
    if (b.active > 0 && random() < 0.6) b.ended(1 + random() * 100, step);
    else b.started(step);
    const chosen = strategy.pick(context()) as FakeBackend;
    const key = (x: FakeBackend): number => leastTimeKey(x, x.effectiveWeight, 'headers', now);
    assert.equal(key(chosen), Math.min(...backends.map(key)), `step ${step}`);
  }
});

void test('least-time: in-flight age: a backend whose request hangs longer than its estimate is avoided', () => {
  for (const degradedFactor of [0, 4]) {
    const strategy = new LeastTimeStrategy({ degradedFactor });
    let now = 0;
    strategy.now = () => now;
    const [a, b, c] = fakeBackends([1, 1, 1]) as [FakeBackend, FakeBackend, FakeBackend];
    for (const x of [a, b, c]) {
      x.started(0);
      x.ended(10, 0);
    }
    attach(strategy, [a, b, c]);
    a.started(0); // a's request hangs from t = 0
    now = 300; // no answer after 300 ms: a is slower than its 10 ms estimate says
    const picks = new Map<string, number>();
    for (let i = 0; i < 30; i++) {
      const x = strategy.pick(context()) as FakeBackend;
      picks.set(x.id, (picks.get(x.id) ?? 0) + 1);
      x.started(now);
    }
    // On its estimate alone a would score (1 + 1) x 10 = 20 and take about a third of these.
    assert.equal(picks.get('b0') ?? 0, 0, `factor ${degradedFactor}: picks of the hanging backend`);
    const aExplained = strategy.explain().find((e) => e.backend === 'b0');
    assert.equal(aExplained?.inputs.inflightAgeMs, 300);
    assert.equal(aExplained?.inputs.effectiveMs, 300);
  }
});

void test('least-time: a degraded backend gets probes only (one at a time, one per second), then rejoins when fast', () => {
  const random = seededRandom(11);
  const slowUntil = 8_000;
  const run = (strategy: LeastTimeStrategy) =>
    simulate(strategy, fakeBackends([1, 1, 1, 1]), {
      // 48 connections: the fast backends carry ~16 each (score ~170), more than the slow
      // one's 100 when idle, so on scores alone it always has a request (the bench's case).
      concurrency: 48,
      requests: 56_000,
      latency: (b, now) => (b.id === 'b3' && now < slowUntil ? 100 : 10) * (0.9 + 0.2 * random()),
    });
  const probed = run(new LeastTimeStrategy());
  const scored = run(new LeastTimeStrategy({ degradedFactor: 0 }));
  const slowSeconds = Math.floor(slowUntil / 1000);
  let probes = 0;
  let scoredSlow = 0;
  for (let s = 1; s < slowSeconds; s++) {
    const n = probed.timeline[s]?.get('b3') ?? 0;
    assert.ok(n <= 2, `second ${s}: ${n} requests to the degraded backend`);
    probes += n;
    scoredSlow += scored.timeline[s]?.get('b3') ?? 0;
  }
  assert.ok(probes >= slowSeconds - 2, `probed ${probes} times in ${slowSeconds - 1} s`);
  assert.ok(scoredSlow > 4 * probes, `without the degraded state: ${scoredSlow} vs ${probes}`);
  // Fast again from t = 8 s: back to an equal share within two seconds.
  const back = shareIn(probed.timeline, slowSeconds + 2, 'b3');
  assert.ok(back > 0.15, `share after recovery: ${back}`);
});

void test('least-time: explain() shows the degraded state and the best estimate', () => {
  const strategy = new LeastTimeStrategy();
  let now = 0;
  strategy.now = () => now;
  const backends = fakeBackends([1, 1, 1]);
  for (const x of backends) x.started(0);
  attach(strategy, backends);
  const [a, b, slow] = backends as [FakeBackend, FakeBackend, FakeBackend];
  a.ended(10, 0);
  b.ended(10, 0);
  slow.ended(100, 0);
  now = 1;
  for (let i = 0; i < 10; i++) assert.notEqual(strategy.pick(context()), slow);
  const explained = strategy.explain().find((e) => e.backend === slow.id);
  assert.match(String(explained?.inputs.state), /^degraded: probe only/);
  assert.ok(Math.abs((explained?.inputs.bestEstimateMs as number) - 10) < 0.1);
  now = 1_001; // a probe interval later: one probe, then none while it is in flight
  assert.match(
    String(strategy.explain().find((e) => e.backend === slow.id)?.inputs.state),
    /^degraded/,
  );
  assert.equal(strategy.pick(context()), slow, 'the due probe is sent');
  slow.started(now);
  for (let i = 0; i < 10; i++) assert.notEqual(strategy.pick(context()), slow);
});

void test('least-time: a degraded backend rejoins when the others slow down under load', () => {
  const random = seededRandom(12);
  // b0-b2 queue (5 ms per request in flight); b3 answers in 100 ms whatever its load. At 64
  // connections the queueing ones answer in ~100 ms too: b3 is no longer 4x slower.
  const { picks } = simulate(new LeastTimeStrategy(), fakeBackends([1, 1, 1, 1]), {
    concurrency: 64,
    requests: 20_000,
    latency: (b) => (b.id === 'b3' ? 100 : 5 * b.active) * (0.9 + 0.2 * random()),
  });
  const share = shares(picks).get('b3') as number;
  assert.ok(share > 0.15, `b3 share: ${share}`);
});

void test('least-time: latency noise between identical fast backends never degrades one', () => {
  const random = seededRandom(13);
  const { picks } = simulate(new LeastTimeStrategy(), fakeBackends([1, 1, 1, 1]), {
    concurrency: 8,
    requests: 16_000,
    latency: () => 1 + 8 * random() * random(),
  });
  for (const [id, share] of shares(picks)) {
    assert.ok(Math.abs(share - 0.25) < 0.05, `${id}: ${(share * 100).toFixed(1)}%`);
  }
});

// ---- least-connections -------------------------------------------------------------------

void test('least-connections: idle ties rotate, never always the first backend', () => {
  const strategy = new LeastConnectionsStrategy();
  attach(strategy, fakeBackends([1, 1, 1]));
  const order = Array.from({ length: 6 }, () => strategy.pick(context())?.id).join(' ');
  assert.equal(order, 'b0 b1 b2 b0 b1 b2');
});

void test('least-connections: sequential ties follow the weights exactly (1,2,3 → 1/6, 2/6, 3/6)', () => {
  const strategy = new LeastConnectionsStrategy();
  attach(strategy, fakeBackends([1, 2, 3]));
  const counts = new Map<string, number>();
  for (let i = 0; i < 600; i++) {
    const id = strategy.pick(context())?.id as string;
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  assert.deepEqual([...counts.entries()].sort(), [
    ['b0', 100],
    ['b1', 200],
    ['b2', 300],
  ]);
});

void test('least-connections: picks the fewest in-flight requests per unit of weight', () => {
  const strategy = new LeastConnectionsStrategy();
  const [a, b, c] = fakeBackends([1, 2, 1]) as [FakeBackend, FakeBackend, FakeBackend];
  attach(strategy, [a, b, c]);
  for (let i = 0; i < 3; i++) a.started(); // 3 / 1
  for (let i = 0; i < 4; i++) b.started(); // 4 / 2
  for (let i = 0; i < 5; i++) c.started(); // 5 / 1
  assert.equal(strategy.pick(context()), b);
  b.ended(5, 1);
  b.ended(5, 1); // 2 / 2
  b.started();
  assert.equal(strategy.pick(context()), b); // 3 / 2 < 3 / 1
  assert.equal(strategy.pick(context({ excluded: new Set<BackendView>([b]) })), a);
});

void test('least-connections: a slow backend gets less traffic under concurrent load', () => {
  const backends = fakeBackends([1, 1, 1]);
  const { picks } = simulate(new LeastConnectionsStrategy(), backends, {
    concurrency: 12,
    requests: 6_000,
    latency: (b) => (b.id === 'b2' ? 100 : 10),
  });
  const s = shares(picks);
  assert.ok((s.get('b2') as number) < 0.15, `slow backend got ${s.get('b2')}`);
});

// ---- random, random-two -------------------------------------------------------------------

void test('alias table: draws follow the weights', () => {
  const table = new AliasTable();
  table.build([1, 2, 3, 10]);
  const random = seededRandom(5);
  const counts = [0, 0, 0, 0];
  const n = 160_000;
  for (let i = 0; i < n; i++) (counts[table.draw(random())] as number)++;
  [1, 2, 3, 10].forEach((w, i) => {
    const share = (counts[i] as number) / n;
    assert.ok(Math.abs(share - w / 16) < 0.005, `weight ${w}: ${share}`);
  });
});

void test('random-two: of two draws, the one with fewer in-flight requests wins', () => {
  const strategy = new RandomTwoStrategy(seededRandom(6));
  const [busy, idle] = fakeBackends([1, 1]) as [FakeBackend, FakeBackend];
  attach(strategy, [busy, idle]);
  for (let i = 0; i < 5; i++) busy.started();
  let idlePicks = 0;
  for (let i = 0; i < 1_000; i++) if (strategy.pick(context()) === idle) idlePicks++;
  // The busy one wins only when both draws land on it: 1/4 of the time.
  assert.ok(idlePicks > 700 && idlePicks < 800, `idle picked ${idlePicks} times of 1000`);
});

// ---- hash ---------------------------------------------------------------------------------

function ipContext(i: number): ReturnType<typeof context> {
  return context({ clientAddress: `192.168.${(i >> 8) & 255}.${i & 255}` });
}

void test('hash: the same key always reaches the same backend', () => {
  const strategy = new HashStrategy();
  attach(strategy, fakeBackends([1, 1, 1, 1, 1]));
  for (let i = 0; i < 500; i++) {
    const first = strategy.pick(ipContext(i));
    for (let j = 0; j < 5; j++) assert.equal(strategy.pick(ipContext(i)), first);
  }
});

void test('hash: removing 1 of 5 backends moves only the keys that were on it; adding it back restores them', () => {
  const strategy = new HashStrategy();
  const all = fakeBackends([1, 1, 1, 1, 1]);
  attach(strategy, all);
  const keys = 20_000;
  const before = Array.from({ length: keys }, (_, i) => strategy.pick(ipContext(i))?.id);
  const removed = all[2] as FakeBackend;
  attach(
    strategy,
    all.filter((b) => b !== removed),
  );
  let moved = 0;
  for (let i = 0; i < keys; i++) {
    const now = strategy.pick(ipContext(i))?.id;
    if (before[i] !== removed.id) assert.equal(now, before[i], `key ${i} moved off a kept backend`);
    else moved++;
  }
  assert.ok(moved / keys > 0.1 && moved / keys < 0.3, `moved ${moved} of ${keys} (≈ 1/5 expected)`);
  attach(strategy, all);
  for (let i = 0; i < keys; i++) assert.equal(strategy.pick(ipContext(i))?.id, before[i]);
});

void test('hash: weights are honoured (1,1,2 → 1/4, 1/4, 1/2 of keys, ±4 points)', () => {
  const strategy = new HashStrategy();
  attach(strategy, fakeBackends([1, 1, 2]));
  const counts = new Map<string, number>();
  const keys = 40_000;
  for (let i = 0; i < keys; i++) {
    const id = strategy.pick(ipContext(i))?.id as string;
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  const expected = new Map([
    ['b0', 0.25],
    ['b1', 0.25],
    ['b2', 0.5],
  ]);
  for (const [id, n] of counts) {
    assert.ok(Math.abs(n / keys - (expected.get(id) as number)) < 0.04, `${id}: ${n / keys}`);
  }
});

void test('hash: an excluded pick falls over to the next backend on the ring, consistently', () => {
  const strategy = new HashStrategy();
  const all = fakeBackends([1, 1, 1, 1, 1]);
  attach(strategy, all);
  const without = new HashStrategy();
  for (let i = 0; i < 2_000; i++) {
    const first = strategy.pick(ipContext(i)) as FakeBackend;
    const excluded = new Set<BackendView>([first]);
    const second = strategy.pick(context({ clientAddress: ipContext(i).clientAddress, excluded }));
    assert.ok(second !== undefined && second !== first);
    // The fail-over target is where the key goes once `first` leaves the ring.
    attach(
      without,
      all.filter((b) => b !== first),
    );
    assert.equal(without.pick(ipContext(i)), second);
  }
});

void test('hash keys: header, cookie and path; missing ones fall back to the client address', () => {
  const header = new HashStrategy({ kind: 'header', name: 'x-user' });
  const cookie = new HashStrategy({ kind: 'cookie', name: 'sid' });
  const path = new HashStrategy({ kind: 'path' });
  const ip = new HashStrategy();
  const h = (s: HashStrategy, ctx: ReturnType<typeof context>): number => s.keyHash(ctx);
  assert.equal(
    h(header, context({ headers: { 'x-user': 'alice' }, clientAddress: '1.1.1.1' })),
    h(header, context({ headers: { 'x-user': 'alice' }, clientAddress: '2.2.2.2' })),
  );
  assert.notEqual(
    h(header, context({ headers: { 'x-user': 'alice' } })),
    h(header, context({ headers: { 'x-user': 'bob' } })),
  );
  assert.equal(
    h(cookie, context({ headers: { cookie: 'a=1; sid=xyz; b=2' } })),
    h(cookie, context({ headers: { cookie: 'sid=xyz' } })),
  );
  assert.notEqual(
    h(cookie, context({ headers: { cookie: 'xsid=1; sid=abc' } })),
    h(cookie, context({ headers: { cookie: 'sid=1' } })),
  );
  assert.equal(h(path, context({ url: '/a/b?x=1' })), h(path, context({ url: '/a/b?y=2' })));
  assert.equal(
    h(cookie, context({ clientAddress: '9.9.9.9' })),
    h(ip, context({ clientAddress: '9.9.9.9' })),
  );
  assert.equal(
    h(header, context({ clientAddress: '9.9.9.9' })),
    h(ip, context({ clientAddress: '9.9.9.9' })),
  );
  assert.equal(parseHashKey('header:'), undefined);
  assert.deepEqual(parseHashKey('header:X-User'), { kind: 'header', name: 'x-user' });
});

// ---- configuration ------------------------------------------------------------------------

function poolWith(strategy: unknown): Record<string, unknown> {
  return {
    listeners: [{ address: '127.0.0.1:0', pool: 'web' }],
    pools: { web: { strategy, backends: [{ url: 'http://127.0.0.1:9001' }] } },
  };
}

void test('strategy options are validated with their key path', () => {
  const cases: [unknown, RegExp][] = [
    [
      { name: 'least-time', choices: 1 },
      /pools\.web\.strategy\.choices: expected a whole number from 2 to 16/,
    ],
    [{ name: 'least-time', measure: 'body' }, /pools\.web\.strategy\.measure/],
    [
      { name: 'least-time', degradedFactor: 1 },
      /pools\.web\.strategy\.degradedFactor: expected 0 \(off\) or a number above 1/,
    ],
    [
      { name: 'least-time', probeInterval: '1ms' },
      /pools\.web\.strategy\.probeInterval: expected a duration of at least 10ms/,
    ],
    [
      { name: 'least-time', degradedMinGap: 'soon' },
      /pools\.web\.strategy\.degradedMinGap: expected a duration/,
    ],
    [
      { name: 'hash', key: 'ip' },
      /pools\.web\.strategy\.key: expected client-ip, path, header:<name> or cookie:<name>/,
    ],
    [{ name: 'random', choices: 2 }, /pools\.web\.strategy: .*choices/],
    [
      'least-tme',
      /pools\.web\.strategy: expected one of round-robin, least-connections, least-time/,
    ],
  ];
  for (const [strategy, message] of cases) {
    assert.throws(() => validateConfig(poolWith(strategy), 'test.yaml'), message);
  }
  const config = validateConfig(poolWith({ name: 'least-time', choices: 2 }), 'test.yaml');
  assert.deepEqual(config.pools.web?.strategy.options, {
    choices: 2,
    measure: 'headers',
    degradedFactor: 4,
    degradedMinGap: 10,
    probeInterval: 1_000,
  });
  const tuned = validateConfig(
    poolWith({
      name: 'least-time',
      degradedFactor: 0,
      degradedMinGap: '20ms',
      probeInterval: '2s',
    }),
    'test.yaml',
  );
  assert.deepEqual(tuned.pools.web?.strategy.options, {
    measure: 'headers',
    degradedFactor: 0,
    degradedMinGap: 20,
    probeInterval: 2_000,
  });
});

void test('least-time: the degraded options reach the strategy', async () => {
  const made = await createStrategy(
    { name: 'least-time', options: { degradedFactor: 6, degradedMinGap: 20, probeInterval: 500 } },
    '.',
  );
  assert.ok(made instanceof LeastTimeStrategy);
  assert.equal(made.degradedFactor, 6);
  assert.equal(made.degradedMinGapMs, 20);
  assert.equal(made.probeIntervalMs, 500);
});

void test('every built-in is created from its configuration', async () => {
  const made = [
    await createStrategy({ name: 'least-time', options: { choices: 2, measure: 'headers' } }, '.'),
    await createStrategy({ name: 'least-time', options: { measure: 'last-byte' } }, '.'),
    await createStrategy({ name: 'hash', options: { key: 'cookie:sid', vnodes: 40 } }, '.'),
    await createStrategy({ name: 'random-two', options: {} }, '.'),
  ];
  assert.ok(made[0] instanceof LeastTimeChoicesStrategy);
  assert.ok(made[1] instanceof LeastTimeStrategy && made[1].measure === 'last-byte');
  assert.ok(made[2] instanceof HashStrategy && made[2].vnodes === 40);
  assert.equal(made[3]?.name, 'random-two');
});
