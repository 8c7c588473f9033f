// Strategies end to end: real backends and a real anubis on ephemeral loopback ports. Loads
// are bounded in request count; assertions are bounds with margins (the machine is shared).
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { createLoadBalancer } from '../../src/load-balancer.js';
import { createLogger } from '../../src/logging/logger.js';
import { freePort, startBackend, type TestServer } from '../helpers/servers.js';
import { ROOT, spawnCli, startAnubis, stopChild, waitForOutput } from '../helpers/anubis.js';
import { LAST_BACKEND_STRATEGY, STRATEGY_TYPES } from '../helpers/strategy-sources.js';

const EXAMPLE = fileURLToPath(
  new URL('../../examples/custom-strategy/prefer-zone.ts', import.meta.url),
);

/** A backend answering its name after `delay.ms` (mutable, so a test can slow it down). */
async function delayedBackend(name: string, delay: { ms: number }): Promise<TestServer> {
  return startBackend((req, res) => {
    req.resume();
    req.on('end', () => {
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(name);
      }, delay.ms);
    });
  });
}

interface Hit {
  readonly name: string;
  readonly at: number;
}

/** `total` GET requests over `concurrency` keep-alive clients; returns who answered when. */
async function load(
  url: string,
  total: number,
  concurrency: number,
  headers: (i: number) => Record<string, string> = () => ({}),
): Promise<Hit[]> {
  const agent = new Agent({ connections: concurrency });
  const hits: Hit[] = [];
  let next = 0;
  const client = async (): Promise<void> => {
    while (next < total) {
      const i = next++;
      const response = await request(`${url}/`, { dispatcher: agent, headers: headers(i) });
      hits.push({ name: await response.body.text(), at: performance.now() });
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, client));
  } finally {
    await agent.close();
  }
  return hits;
}

function share(hits: readonly Hit[], name: string): number {
  return hits.filter((h) => h.name === name).length / hits.length;
}

async function withBackends(
  count: number,
  delays: { ms: number }[],
  run: (servers: TestServer[]) => Promise<void>,
): Promise<void> {
  const servers = await Promise.all(
    Array.from({ length: count }, (_, i) => delayedBackend(`s${i}`, delays[i] as { ms: number })),
  );
  try {
    await run(servers);
  } finally {
    await Promise.all(servers.map((s) => s.close()));
  }
}

void test('a 10x slower backend: least-time and least-connections send it far less than round robin', async () => {
  const delays = [{ ms: 10 }, { ms: 10 }, { ms: 100 }];
  await withBackends(3, delays, async (servers) => {
    const slowShare = new Map<string, number>();
    for (const strategy of ['round-robin', 'least-connections', 'least-time']) {
      const lb = await startAnubis(
        servers.map((s) => s.url),
        { strategy },
      );
      try {
        await load(lb.url, 60, 6); // every backend gets samples
        slowShare.set(strategy, share(await load(lb.url, 600, 12), 's2'));
      } finally {
        await lb.close();
      }
    }
    const rr = slowShare.get('round-robin') as number;
    const lc = slowShare.get('least-connections') as number;
    const lt = slowShare.get('least-time') as number;
    assert.ok(rr > 0.3, `round robin gave the slow backend ${rr}`);
    assert.ok(lc < 0.2 && lc < rr / 1.5, `least-connections gave the slow backend ${lc}`);
    assert.ok(lt < 0.15, `least-time gave the slow backend ${lt}`);
  });
});

void test('least-time and least-connections resume sending to a backend once it is fast again', async () => {
  // Bounds of the slow phase: as in the test above (least-time < 15%, least-connections < 20%).
  const slowPhaseBound: [string, number][] = [
    ['least-time', 0.15],
    ['least-connections', 0.2],
  ];
  for (const [strategy, bound] of slowPhaseBound) {
    const slow = { ms: 100 };
    await withBackends(3, [{ ms: 10 }, { ms: 10 }, slow], async (servers) => {
      const lb = await startAnubis(
        servers.map((s) => s.url),
        { strategy },
      );
      try {
        const before = share(await load(lb.url, 500, 12), 's2');
        assert.ok(before < bound, `${strategy}: slow phase: ${before}`);
        slow.ms = 10;
        const started = performance.now();
        const hits = await load(lb.url, 2_500, 12);
        const elapsed = performance.now() - started;
        // The last third of the run (least-time's estimate has decayed and re-formed by then).
        const tail = hits.filter((h) => h.at - started > (elapsed * 2) / 3);
        const after = share(tail, 's2');
        assert.ok(
          after > 0.2,
          `${strategy}: after recovery: ${after} over ${tail.length} requests`,
        );
      } finally {
        await lb.close();
      }
    });
  }
});

void test('weights 1,2,3: round-robin, least-connections, random-two and random shares are close to 1/6, 2/6, 3/6', async () => {
  await withBackends(3, [{ ms: 2 }, { ms: 2 }, { ms: 2 }], async (servers) => {
    for (const strategy of ['round-robin', 'least-connections', 'random-two', 'random']) {
      const lb = await startAnubis(
        servers.map((s, i) => ({ url: s.url, weight: i + 1 })),
        { strategy },
      );
      try {
        // 12 in flight: the weights' ideal split (2, 4, 6) is whole, so least-connections can hold it.
        const hits = await load(lb.url, 1_200, 12);
        [1, 2, 3].forEach((weight, i) => {
          const got = share(hits, `s${i}`);
          assert.ok(
            Math.abs(got - weight / 6) < 0.06,
            `${strategy}: weight ${weight} got ${(got * 100).toFixed(1)}%`,
          );
        });
      } finally {
        await lb.close();
      }
    }
  });
});

void test('hash: a key sticks to one backend; removing 1 of 5 moves only the keys that were on it', async () => {
  await withBackends(
    5,
    Array.from({ length: 5 }, () => ({ ms: 0 })),
    async (servers) => {
      const lb = await startAnubis(
        servers.map((s) => s.url),
        { strategy: { name: 'hash', key: 'header:x-user' } },
      );
      try {
        const users = 200;
        const owner = new Map<string, string>();
        for (let round = 0; round < 3; round++) {
          const hits = await load(lb.url, users, 8, (i) => ({ 'x-user': `user-${i}` }));
          // Requests finish out of order: ask again per user to map user → backend.
          assert.equal(hits.length, users);
        }
        for (let i = 0; i < users; i++) {
          const names = new Set<string>();
          for (let j = 0; j < 3; j++) {
            const r = await request(`${lb.url}/`, { headers: { 'x-user': `user-${i}` } });
            names.add(await r.body.text());
          }
          assert.equal(names.size, 1, `user-${i} reached ${[...names].join(', ')}`);
          owner.set(`user-${i}`, [...names][0] as string);
        }
        const pool = lb.balancer.pools.get('test');
        const removed = pool?.backends[2];
        assert.ok(pool !== undefined && removed !== undefined);
        await pool.removeBackend(removed.id, 1_000);
        let moved = 0;
        for (let i = 0; i < users; i++) {
          const r = await request(`${lb.url}/`, { headers: { 'x-user': `user-${i}` } });
          const name = await r.body.text();
          const before = owner.get(`user-${i}`);
          if (before === 's2') {
            assert.notEqual(name, 's2');
            moved++;
          } else {
            assert.equal(name, before, `user-${i} moved from ${before} to ${name}`);
          }
        }
        assert.ok(
          moved > 10 && moved < 80,
          `${moved} of ${users} users were on the removed backend`,
        );
      } finally {
        await lb.close();
      }
    },
  );
});

void test("explain(): least-time shows each backend's inputs and score after real traffic", async () => {
  await withBackends(2, [{ ms: 1 }, { ms: 150 }], async (servers) => {
    const lb = await startAnubis(
      servers.map((s) => s.url),
      { strategy: { name: 'least-time', measure: 'last-byte' } },
    );
    try {
      await load(lb.url, 60, 4);
      const explanation = lb.balancer.pools.get('test')?.strategy.explain?.() ?? [];
      assert.equal(explanation.length, 2);
      const [fast, slow] = explanation;
      assert.ok(fast !== undefined && slow !== undefined);
      assert.equal(fast.inputs.measure, 'last-byte');
      assert.ok(
        typeof slow.inputs.ewmaMs === 'number' && slow.inputs.ewmaMs >= 100,
        JSON.stringify(slow),
      );
      assert.ok(fast.score < slow.score, JSON.stringify(explanation));
    } finally {
      await lb.close();
    }
  });
});

void test('a custom strategy that throws or returns nothing falls back to round robin, logged and counted', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'anubis-strategy-'));
  const module = join(dir, 'flaky.ts');
  await writeFile(
    module,
    `import type { BackendView, Strategy } from ${STRATEGY_TYPES};
export default function createStrategy(): Strategy {
  let backends: readonly BackendView[] = [];
  let n = 0;
  return {
    name: 'flaky',
    setBackends(b) { backends = b; },
    pick() {
      n++;
      if (n % 3 === 1) throw new Error('flaky strategy failed on purpose');
      if (n % 3 === 2) return undefined;
      return backends[0];
    },
  };
}
`,
  );
  let logged = '';
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logged += chunk.toString();
      done();
    },
  });
  await withBackends(2, [{ ms: 0 }, { ms: 0 }], async (servers) => {
    const balancer = await createLoadBalancer(
      {
        workers: 1,
        listeners: [{ address: '127.0.0.1:0', pool: 'web' }],
        pools: { web: { strategy: module, backends: servers.map((s) => ({ url: s.url })) } },
      },
      { logger: createLogger({ level: 'error', format: 'json' }, sink) },
    );
    try {
      const url = `http://127.0.0.1:${balancer.addresses()[0]?.port}`;
      const statuses: number[] = [];
      for (let i = 0; i < 9; i++) {
        const r = await request(`${url}/`);
        await r.body.text();
        statuses.push(r.statusCode);
      }
      assert.deepEqual(statuses, Array(9).fill(200), 'every request is served');
      assert.equal(balancer.pools.get('web')?.strategyErrors, 6);
      assert.match(logged, /flaky strategy failed on purpose/);
      assert.match(logged, /returned no backend/);
    } finally {
      await balancer.close(1_000);
      await rm(dir, { recursive: true, force: true });
    }
  });
});

void test('the example custom strategy runs from a config file through the real CLI; --strategy selects built-ins and custom modules', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'anubis-zone-'));
  await withBackends(2, [{ ms: 0 }, { ms: 0 }], async (servers) => {
    const port = await freePort();
    const config = join(dir, 'anubis.yaml');
    await writeFile(
      config,
      [
        'workers: 1',
        'listeners:',
        `  - address: 127.0.0.1:${port}`,
        '    pool: web',
        'pools:',
        '  web:',
        `    strategy: { name: ${JSON.stringify(EXAMPLE)}, zone: eu-west }`,
        '    exposeBackendHeader: true',
        '    backends:',
        `      - { url: ${servers[0]?.url}, name: us-east/app-1 }`,
        `      - { url: ${servers[1]?.url}, name: eu-west/app-1 }`,
        '',
      ].join('\n'),
    );
    const child = spawnCli(['--config', config]);
    try {
      await waitForOutput(child, /listening/);
      for (let i = 0; i < 6; i++) {
        const r = await request(`http://127.0.0.1:${port}/`);
        assert.equal(await r.body.text(), 's1');
        assert.equal(r.headers['x-anubis-backend'], 'eu-west/app-1');
      }
    } finally {
      await stopChild(child);
    }
    const port2 = await freePort();
    const quick = spawnCli([
      '--listen',
      `127.0.0.1:${port2}`,
      '--workers',
      '1',
      '--strategy',
      'least-connections',
      '--backend',
      servers[0]?.url as string,
      '--backend',
      servers[1]?.url as string,
    ]);
    try {
      await waitForOutput(quick, /listening/);
      const names = new Set<string>();
      for (let i = 0; i < 4; i++) {
        const r = await request(`http://127.0.0.1:${port2}/`);
        names.add(await r.body.text());
        assert.equal(r.headers['x-anubis-backend'], undefined, 'the header is off by default');
      }
      assert.deepEqual([...names].sort(), ['s0', 's1'], 'idle ties rotate');
    } finally {
      await stopChild(quick);
    }
    // --strategy ./file: a custom module, its path relative to the working directory.
    const module = join(dir, 'last-backend.ts');
    await writeFile(module, LAST_BACKEND_STRATEGY);
    const relativeModule = relative(ROOT, module); // spawnCli runs in ROOT;
    const port3 = await freePort();
    const custom = spawnCli([
      '--listen',
      `127.0.0.1:${port3}`,
      '--workers',
      '1',
      '--strategy',
      relativeModule.startsWith('.') ? relativeModule : `./${relativeModule}`,
      '--backend',
      servers[0]?.url as string,
      '--backend',
      servers[1]?.url as string,
    ]);
    try {
      await waitForOutput(custom, /listening/);
      for (let i = 0; i < 4; i++) {
        const r = await request(`http://127.0.0.1:${port3}/`);
        assert.equal(await r.body.text(), 's1', 'the custom strategy picks the last backend');
      }
    } finally {
      await stopChild(custom);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
