import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { MetricsRenderer } from '../../src/admin/metrics.js';
import { buildView } from '../../src/admin/sampler.js';
import { restartOnlyChanges } from '../../src/reload/restart-only.js';
import { SerialQueue } from '../../src/reload/serial.js';
import {
  mergeSnapshots,
  retireSnapshot,
  withRetired,
  type BackendSnapshot,
  type Snapshot,
} from '../../src/admin/snapshot.js';
import {
  bucketIndex,
  LATENCY_BOUNDS_MS,
  LatencyHistogram,
  quantileFromBuckets,
} from '../../src/upstream/latency-histogram.js';

function backend(id: string, over: Partial<BackendSnapshot> = {}): BackendSnapshot {
  return {
    id,
    url: `http://127.0.0.1:1/${id}`,
    weight: 1,
    effectiveWeight: 1,
    healthy: true,
    adminState: 'enabled',
    active: 0,
    latencyEwmaMs: 10,
    requests: 0,
    failures: 0,
    statusClasses: [0, 0, 0, 0, 0, 0],
    latencyBuckets: new Array<number>(LATENCY_BOUNDS_MS.length + 1).fill(0),
    latencyCount: 0,
    latencySumMs: 0,
    retries: 0,
    ejections: 0,
    backup: false,
    bytesIn: 0,
    bytesOut: 0,
    workers: 1,
    healthyWorkers: 1,
    ...over,
  };
}

function snapshot(at: number, backends: BackendSnapshot[]): Snapshot {
  return {
    at,
    workers: 1,
    listeners: [{ address: '127.0.0.1:8080', connections: 2 }],
    pools: [
      {
        name: 'p',
        strategy: 'round-robin',
        unrouted: 0,
        strategyErrors: 0,
        queueLength: 0,
        mode: 'normal',
        backends,
      },
    ],
  };
}

void test('latency histogram: bucket search and interpolated quantiles', () => {
  assert.equal(bucketIndex(0.1), 0);
  assert.equal(bucketIndex(0.5), 0);
  assert.equal(bucketIndex(0.51), 1);
  assert.equal(bucketIndex(1e9), LATENCY_BOUNDS_MS.length);
  const histogram = new LatencyHistogram();
  for (let i = 1; i <= 100; i++) histogram.record(i);
  const p50 = quantileFromBuckets(histogram.counts, 0.5) as number;
  const p99 = quantileFromBuckets(histogram.counts, 0.99) as number;
  // True values 50 and 99; buckets are at most 1.5x wide.
  assert.ok(p50 >= 40 && p50 <= 60, `p50 ${p50}`);
  assert.ok(p99 >= 75 && p99 <= 100, `p99 ${p99}`);
  assert.equal(histogram.count, 100);
  assert.equal(histogram.sumMs, 5050);
  assert.equal(quantileFromBuckets(new Float64Array(5), 0.5), undefined);
});

void test('merging workers: counters add, health needs every worker, EWMA is request-weighted', () => {
  const merged = mergeSnapshots([
    snapshot(1, [backend('a', { requests: 30, active: 2, latencyEwmaMs: 10 })]),
    snapshot(1, [
      backend('a', {
        requests: 10,
        active: 1,
        latencyEwmaMs: 50,
        healthy: false,
        healthyWorkers: 0,
      }),
    ]),
  ]);
  const a = merged.pools[0]?.backends[0];
  assert.ok(a);
  assert.equal(merged.workers, 2);
  assert.equal(a.requests, 40);
  assert.equal(a.active, 3);
  assert.equal(a.healthy, false);
  assert.equal(a.healthyWorkers, 1);
  assert.equal(a.workers, 2);
  assert.equal(a.latencyEwmaMs, 20);
  assert.deepEqual(merged.listeners, [{ address: '127.0.0.1:8080', connections: 4 }]);
});

void test('a restarted worker does not make counters go backwards', () => {
  const last = snapshot(1, [backend('a', { requests: 100, retries: 3, active: 5 })]);
  const retired = retireSnapshot(undefined, last);
  const fresh = snapshot(2, [backend('a', { requests: 4, active: 1 }), backend('new')]);
  const combined = withRetired(fresh, retired);
  const [a, added] = combined.pools[0]?.backends ?? [];
  assert.equal(a?.requests, 104);
  assert.equal(a?.retries, 3);
  assert.equal(a?.active, 1, 'gauges come from live workers only');
  assert.equal(added?.requests, 0);
});

void test('TCP mode: byte counters and listener counters add up across workers and restarts', () => {
  const tcpSnapshot = (bytesIn: number, connections: number): Snapshot => ({
    ...snapshot(1, [backend('t', { url: 'tcp://127.0.0.1:1', bytesIn, bytesOut: 1 })]),
    listeners: [
      {
        address: '127.0.0.1:9000',
        connections: 1,
        tcp: { connections, connectFailures: 1, refused: 2 },
      },
    ],
  });
  const merged = mergeSnapshots([tcpSnapshot(100, 5), tcpSnapshot(20, 3)]);
  assert.equal(merged.pools[0]?.backends[0]?.bytesIn, 120);
  assert.equal(merged.pools[0]?.backends[0]?.bytesOut, 2);
  assert.deepEqual(merged.listeners, [
    {
      address: '127.0.0.1:9000',
      connections: 2,
      tcp: { connections: 8, connectFailures: 2, refused: 4 },
    },
  ]);
  const combined = withRetired(tcpSnapshot(7, 1), retireSnapshot(undefined, merged));
  assert.equal(combined.pools[0]?.backends[0]?.bytesIn, 127);
  assert.deepEqual(combined.listeners[0]?.tcp, { connections: 9, connectFailures: 3, refused: 6 });
  assert.equal(combined.listeners[0]?.connections, 1, 'open connections come from live workers');
});

void test('view: rates, error rate and share over the window', () => {
  const buckets = new Array<number>(LATENCY_BOUNDS_MS.length + 1).fill(0);
  const later = buckets.slice();
  later[bucketIndex(10)] = 90;
  later[bucketIndex(200)] = 10;
  const view = buildView(
    snapshot(3_000, [
      backend('a', { requests: 130, statusClasses: [0, 0, 120, 0, 0, 10], latencyBuckets: later }),
      backend('b', { requests: 100 }),
    ]),
    snapshot(1_000, [
      backend('a', { requests: 30, statusClasses: [0, 0, 30, 0, 0, 0] }),
      backend('b', { requests: 0 }),
    ]),
  );
  assert.equal(view.windowSeconds, 2);
  const [a, b] = view.pools[0]?.backends ?? [];
  assert.equal(a?.requestsPerSecond, 50);
  assert.equal(b?.requestsPerSecond, 50);
  assert.equal(view.pools[0]?.requestsPerSecond, 100);
  assert.equal(a?.errorRate, 0.1);
  assert.equal(a?.share, 0.5);
  assert.ok((a?.latency.p50Ms ?? 0) <= 10);
  assert.ok((a?.latency.p99Ms ?? 0) > 150);
  assert.equal(b?.latency.p50Ms, null);
  // Without an older snapshot there are no rates yet.
  assert.equal(
    buildView(snapshot(1, [backend('a', { requests: 5 })]), undefined).pools[0]?.backends[0]
      ?.requestsPerSecond,
    0,
  );
});

void test('metrics: Prometheus text with cumulative histogram buckets in seconds', async () => {
  const buckets = new Array<number>(LATENCY_BOUNDS_MS.length + 1).fill(0);
  buckets[bucketIndex(0.8)] = 2; // <= 1 ms
  buckets[bucketIndex(4)] = 3; // <= 5 ms
  const text = await new MetricsRenderer().render(
    snapshot(1, [
      backend('a"x', {
        requests: 5,
        statusClasses: [0, 0, 5, 0, 0, 0],
        latencyBuckets: buckets,
        latencyCount: 5,
        latencySumMs: 14,
      }),
    ]),
  );
  assert.match(text, /anubis_requests_total\{pool="p",backend="a\\"x",class="2xx"\} 5/);
  assert.match(
    text,
    /anubis_backend_request_duration_seconds_bucket\{pool="p",backend="a\\"x",le="0.001"\} 2/,
  );
  assert.match(
    text,
    /anubis_backend_request_duration_seconds_bucket\{pool="p",backend="a\\"x",le="0.002"\} 2/,
  );
  assert.match(
    text,
    /anubis_backend_request_duration_seconds_bucket\{pool="p",backend="a\\"x",le="0.005"\} 5/,
  );
  assert.match(
    text,
    /anubis_backend_request_duration_seconds_sum\{pool="p",backend="a\\"x"\} 0.014/,
  );
  assert.match(text, /anubis_pool_mode\{pool="p",mode="normal"\} 1/);
  assert.match(text, /anubis_pool_queue_length\{pool="p"\} 0/);
  assert.match(text, /anubis_backend_retries_total\{pool="p",backend="a\\"x"\} 0/);
  assert.doesNotMatch(
    text,
    /^anubis_backend_bytes_\w+\{/m,
    'byte counters are for tcp:// backends',
  );
  assert.doesNotMatch(text, /anubis_tcp_connections_total\{/, 'no TCP listener, no sample');
});

const base = {
  listeners: [{ address: '127.0.0.1:8080', pool: 'p' }],
  pools: { p: { backends: [{ url: 'http://127.0.0.1:9001' }] } },
};

void test('admin config: loopback only unless allowRemote, never a public listener address', () => {
  assert.equal(
    validateConfig({ ...base, admin: { address: '127.0.0.1:9090' } }, 't').admin?.address.port,
    9090,
  );
  assert.equal(
    validateConfig({ ...base, admin: { address: '[::1]:9090' } }, 't').admin?.address.host,
    '::1',
  );
  assert.equal(validateConfig({ ...base }, 't').drainTimeout, 10_000);
  const remote = (): unknown =>
    validateConfig({ ...base, admin: { address: '0.0.0.0:9090' } }, 't');
  assert.throws(remote, (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.equal(error.issues[0]?.path, 'admin.address');
    assert.match(error.issues[0]?.message ?? '', /loopback.*allowRemote/);
    return true;
  });
  assert.equal(
    validateConfig({ ...base, admin: { address: '0.0.0.0:9090', allowRemote: true } }, 't').admin
      ?.allowRemote,
    true,
  );
  assert.throws(
    () => validateConfig({ ...base, admin: { address: '127.0.0.1:8080' } }, 't'),
    /admin\.address: expected an address of its own/,
  );
  assert.throws(
    () => validateConfig({ ...base, admin: { address: '127.0.0.1:9090', token: 'short' } }, 't'),
    /admin\.token/,
  );
  assert.equal(validateConfig({ ...base, drainTimeout: '2s' }, 't').drainTimeout, 2_000);
});

void test('reload names the changed settings that need a restart', () => {
  const current = validateConfig(
    { ...base, workers: 2, admin: { address: '127.0.0.1:9090' } },
    't',
  );
  assert.deepEqual(restartOnlyChanges(current, current), []);
  const next = validateConfig(
    { ...base, workers: 4, admin: { address: '127.0.0.1:9091' }, log: { format: 'pretty' } },
    't',
  );
  assert.deepEqual(restartOnlyChanges(current, next), ['workers', 'admin', 'log.format']);
  const tcp = validateConfig(
    {
      ...base,
      workers: 2,
      admin: { address: '127.0.0.1:9090' },
      listeners: [
        { address: '127.0.0.1:8080', pool: 'p', mode: 'tcp' },
        { address: '127.0.0.1:8081', pool: 'web' },
      ],
      pools: {
        p: { backends: [{ url: 'tcp://127.0.0.1:9001' }] },
        web: { backends: [{ url: 'http://127.0.0.1:9002' }] },
      },
    },
    't',
  );
  assert.deepEqual(
    restartOnlyChanges(current, tcp),
    ['listeners[0] (127.0.0.1:8080: http → tcp)'],
    'a listener kept at its address whose kind changed; a new address is no restart',
  );
  const noFastPath = validateConfig(
    {
      ...base,
      workers: 2,
      admin: { address: '127.0.0.1:9090' },
      listeners: [{ ...base.listeners[0], fastPath: false }],
    },
    't',
  );
  assert.deepEqual(restartOnlyChanges(current, noFastPath), [
    'listeners[0].fastPath (127.0.0.1:8080: true → false)',
  ]);
  const fewerSockets = validateConfig(
    {
      ...base,
      workers: 2,
      admin: { address: '127.0.0.1:9090' },
      listeners: [{ ...base.listeners[0], fastPath: false, acceptSockets: 2 }],
    },
    't',
  );
  assert.deepEqual(restartOnlyChanges(current, fewerSockets), [
    'listeners[0].fastPath (127.0.0.1:8080: true → false)',
    'listeners[0].acceptSockets (127.0.0.1:8080: auto → 2)',
  ]);
});

void test('reloads run one after the other, even when one fails', async () => {
  const queue = new SerialQueue();
  const order: string[] = [];
  const slow = queue.run(async () => {
    await new Promise((resolve) => setTimeout(resolve, 30));
    order.push('first');
    throw new Error('invalid');
  });
  const fast = queue.run(() => {
    order.push('second');
    return Promise.resolve(2);
  });
  await assert.rejects(slow, /invalid/);
  assert.equal(await fast, 2);
  assert.deepEqual(order, ['first', 'second']);
});
