// The one suite every strategy passes: each built-in, the least-time variants, and the
// example custom strategy (examples/custom-strategy). Everything runs in virtual time with a
// seeded random source, so results are deterministic and independent of machine load.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { PreferZoneStrategy } from '../../examples/custom-strategy/prefer-zone.js';
import { HashStrategy } from '../../src/strategies/hash.js';
import { LeastConnectionsStrategy } from '../../src/strategies/least-connections.js';
import { LeastTimeChoicesStrategy, LeastTimeStrategy } from '../../src/strategies/least-time.js';
import { RandomTwoStrategy } from '../../src/strategies/random-two.js';
import { RandomStrategy } from '../../src/strategies/random.js';
import { builtinStrategies } from '../../src/strategies/registry.js';
import { RoundRobinStrategy } from '../../src/strategies/round-robin.js';
import type { BackendView, PickContext, Strategy } from '../../src/strategies/types.js';
import {
  attach,
  context,
  fakeBackends,
  seededRandom,
  shares,
  simulate,
  type FakeBackend,
} from '../helpers/strategy-harness.js';

interface Case {
  readonly label: string;
  readonly create: (random: () => number) => Strategy;
  /** Long-run shares follow the weights (within `tolerance`) rather than only their order. */
  readonly proportional: boolean;
  /** Allowed deviation of a proportional share (default 0.03: 3 percentage points). */
  readonly tolerance?: number;
  /** Varies the request key (for hash strategies): request i comes from client i. */
  readonly perClientKeys?: boolean;
}

const cases: Case[] = [
  { label: 'round-robin', create: () => new RoundRobinStrategy(), proportional: true },
  { label: 'least-connections', create: () => new LeastConnectionsStrategy(), proportional: true },
  { label: 'least-time', create: () => new LeastTimeStrategy(), proportional: false },
  {
    label: 'least-time last-byte',
    create: () => new LeastTimeStrategy('last-byte'),
    proportional: false,
  },
  {
    label: 'least-time choices: 2',
    create: (random) => new LeastTimeChoicesStrategy(2, 'headers', random),
    proportional: false,
  },
  { label: 'random', create: (random) => new RandomStrategy(random), proportional: true },
  { label: 'random-two', create: (random) => new RandomTwoStrategy(random), proportional: true },
  {
    label: 'hash (client-ip)',
    create: () => new HashStrategy(),
    proportional: true,
    // A ring's shares vary by about 1/√points around the weights (160 points per weight unit).
    tolerance: 0.06,
    perClientKeys: true,
  },
  {
    label: 'hash (header)',
    create: () => new HashStrategy({ kind: 'header', name: 'x-user' }),
    proportional: true,
    tolerance: 0.06,
    perClientKeys: true,
  },
  {
    label: 'example: prefer-zone (no local backend)',
    create: () => new PreferZoneStrategy({ zone: 'nowhere' }),
    proportional: false,
  },
  {
    label: 'example: prefer-zone (local backends)',
    create: () => new PreferZoneStrategy({ zone: 'b0', spillover: 1 }),
    proportional: false,
  },
];

void test('every registered built-in strategy is covered by this suite', () => {
  for (const name of builtinStrategies.keys()) {
    assert.ok(
      cases.some((c) => c.label.startsWith(name)),
      `no conformance case for ${name}`,
    );
  }
});

function clientContext(i: number): PickContext {
  return context({
    clientAddress: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    headers: { 'x-user': `user-${i}` },
  });
}

for (const c of cases) {
  void describe(`strategy conformance: ${c.label}`, () => {
    void test('an empty set yields undefined', () => {
      const strategy = c.create(seededRandom(1));
      strategy.setBackends([]);
      assert.equal(strategy.pick(context()), undefined);
    });

    void test('a single backend is returned, and undefined once it is excluded', () => {
      const strategy = c.create(seededRandom(2));
      const [only] = fakeBackends([3]) as [FakeBackend];
      attach(strategy, [only]);
      for (let i = 0; i < 10; i++) assert.equal(strategy.pick(clientContext(i)), only);
      assert.equal(strategy.pick(context({ excluded: new Set<BackendView>([only]) })), undefined);
    });

    void test('never picks an excluded or foreign backend; undefined only when all are excluded', () => {
      const random = seededRandom(3);
      const strategy = c.create(seededRandom(4));
      const all = fakeBackends([1, 2, 3, 4, 5]);
      attach(strategy, all);
      for (let i = 0; i < 3000; i++) {
        // Live stats move between picks as they would under load.
        const b = all[(random() * all.length) | 0] as FakeBackend;
        if (b.active > 0 && random() < 0.5) b.ended(1 + random() * 50, i, random() < 0.05);
        else b.started();
        const excluded = new Set<BackendView>(all.filter(() => random() < 0.4));
        const ctx = context({
          clientAddress: `10.0.0.${i & 255}`,
          headers: { 'x-user': `u${i % 97}` },
          excluded,
        });
        const chosen = strategy.pick(ctx);
        if (excluded.size === all.length) {
          assert.equal(chosen, undefined, 'all excluded must give undefined');
        } else {
          assert.ok(chosen !== undefined, `no pick with ${excluded.size} of 5 excluded`);
          assert.ok(all.includes(chosen as FakeBackend), 'picked a backend outside the set');
          assert.ok(!excluded.has(chosen), `picked excluded backend ${chosen.id}`);
        }
      }
    });

    void test('after the set changes, only backends of the new set are picked', () => {
      const strategy = c.create(seededRandom(5));
      const all = fakeBackends([1, 1, 2, 2]);
      attach(strategy, all);
      for (let i = 0; i < 50; i++) strategy.pick(clientContext(i));
      const kept = all.slice(1, 3);
      attach(strategy, kept);
      for (let i = 0; i < 500; i++) {
        const chosen = strategy.pick(clientContext(i));
        assert.ok(kept.includes(chosen as FakeBackend), `picked ${chosen?.id} after removal`);
      }
    });

    void test('identical backends under concurrent load get equal shares (±6 points)', () => {
      const random = seededRandom(6);
      const backends = fakeBackends([1, 1, 1]);
      const { picks } = simulate(c.create(seededRandom(7)), backends, {
        concurrency: 6,
        requests: 9000,
        latency: () => 9 + random() * 2,
        ...(c.perClientKeys === true ? { contextFor: clientContext } : {}),
      });
      for (const [id, share] of shares(picks)) {
        assert.ok(Math.abs(share - 1 / 3) < 0.06, `${id} got ${(share * 100).toFixed(1)}%`);
      }
    });

    void test('weights 1,2,3: heavier backends get more (proportional strategies: close to 1/6, 2/6, 3/6)', () => {
      const random = seededRandom(8);
      const backends = fakeBackends([1, 2, 3]);
      const { picks } = simulate(c.create(seededRandom(9)), backends, {
        concurrency: 6,
        requests: 12_000,
        latency: () => 9 + random() * 2,
        ...(c.perClientKeys === true ? { contextFor: clientContext } : {}),
      });
      const s = [...shares(picks).values()];
      assert.ok(
        (s[0] as number) < (s[1] as number) && (s[1] as number) < (s[2] as number),
        `shares ${s.map((x) => x.toFixed(3)).join(', ')} do not follow the weights' order`,
      );
      if (c.proportional) {
        s.forEach((share, i) => {
          const expected = (i + 1) / 6;
          assert.ok(
            Math.abs(share - expected) < (c.tolerance ?? 0.03),
            `weight ${i + 1}: ${(share * 100).toFixed(1)}%, expected ${(expected * 100).toFixed(1)}%`,
          );
        });
      }
    });

    void test('slow-start weights (fractional, almost 0) keep picks valid; full weights restore equal shares', () => {
      const random = seededRandom(12);
      const strategy = c.create(seededRandom(13));
      const backends = fakeBackends([1, 1, 1]);
      (backends[0] as FakeBackend).effectiveWeight = Number.MIN_VALUE;
      (backends[1] as FakeBackend).effectiveWeight = 0.1;
      const options = {
        concurrency: 6,
        requests: 3_000,
        latency: () => 9 + random() * 2,
        ...(c.perClientKeys === true ? { contextFor: clientContext } : {}),
      };
      const ramping = shares(simulate(strategy, backends, options).picks);
      if (!c.label.startsWith('example')) {
        // At most one of the six requests in flight (least-connections gives an idle backend
        // one request whatever its weight), far less for the others.
        const b0 = ramping.get('b0') as number;
        assert.ok(b0 < 0.18, `b0 at weight ~0: ${b0}`);
      }
      for (const b of backends) b.effectiveWeight = 1;
      const { picks } = simulate(strategy, backends, { ...options, requests: 9_000 });
      for (const [id, share] of shares(picks)) {
        assert.ok(Math.abs(share - 1 / 3) < 0.06, `${id} after ramp-up: ${share.toFixed(3)}`);
      }
    });

    void test('explain() gives every backend a finite score and its inputs', () => {
      const strategy = c.create(seededRandom(10));
      const backends = fakeBackends([1, 2, 3]);
      attach(strategy, backends);
      backends[0]?.started();
      backends[1]?.ended(5, 1);
      const explanation = strategy.explain?.() ?? [];
      assert.equal(explanation.length, 3);
      for (const entry of explanation) {
        assert.ok(Number.isFinite(entry.score), `${entry.backend}: score ${entry.score}`);
        assert.ok(Object.keys(entry.inputs).length > 0);
      }
      // Explaining must not change what comes next.
      assert.ok(strategy.pick(context()) !== undefined);
    });

    void test('pick() does not allocate per call (heap growth < 48 bytes per pick: boxed numbers at most, no objects per pick)', () => {
      setFlagsFromString('--expose-gc');
      const gc = runInNewContext('gc') as () => void;
      const strategy = c.create(seededRandom(11));
      const backends = fakeBackends(Array.from({ length: 100 }, (_, i) => 1 + (i % 3)));
      attach(strategy, backends);
      const contexts = Array.from({ length: 64 }, (_, i) => clientContext(i));
      const picks = 20_000;
      for (let i = 0; i < picks; i++) strategy.pick(contexts[i & 63] as PickContext); // warm up
      // The least of three rounds: JIT compilation can allocate during one round, while a
      // pick that allocates (an array, a closure, a string) shows up in every round.
      let perPick = Infinity;
      for (let round = 0; round < 3; round++) {
        gc();
        const before = process.memoryUsage().heapUsed;
        for (let i = 0; i < picks; i++) strategy.pick(contexts[i & 63] as PickContext);
        perPick = Math.min(perPick, (process.memoryUsage().heapUsed - before) / picks);
      }
      // A boxed double is 16 bytes: least-time boxes about two per pick on Node 24 (its clock
      // read for the in-flight age), measured at 31-33 bytes. An array, a closure or an object
      // literal per pick adds at least 16-32 more on top and fails this.
      assert.ok(perPick < 48, `${perPick.toFixed(3)} bytes allocated per pick`);
    });
  });
}
