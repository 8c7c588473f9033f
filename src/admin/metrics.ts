/**
 * Prometheus metrics for `GET /metrics`, in the text format written by prom-client.
 *
 * Nothing is counted on the request path for this: the proxy already keeps cumulative
 * counters and a latency histogram on each Backend; a scrape takes one snapshot (merged
 * across workers) and every metric family reads its values from it. The families are
 * prom-client "metric objects" (name, help, type, get()): the registry formats them, label
 * escaping included. A histogram's buckets are re-exposed from the backend's own bucket
 * counts, which is why it is not a prom-client Histogram (that one can only observe()).
 *
 * The catalogue of names is METRIC_NAMES below (docs/operations.md lists the same).
 */
import { Registry, type Metric } from 'prom-client';
import { LATENCY_BOUNDS_MS, PROMETHEUS_BOUNDS_MS } from '../upstream/latency-histogram.js';
import type { BackendSnapshot, PoolSnapshot, Snapshot, TcpListenerCounters } from './snapshot.js';

type Labels = Record<string, string | number>;
interface Sample {
  readonly labels: Labels;
  readonly value: number;
  readonly metricName?: string;
}
type MetricType = 'counter' | 'gauge' | 'histogram';

const STATUS_CLASSES = ['', '1xx', '2xx', '3xx', '4xx', '5xx'] as const;
const STATES = ['enabled', 'draining', 'disabled'] as const;
const POOL_MODES = ['normal', 'backup', 'panic', 'down'] as const;

/** Each family: type, help, and how to read its samples from a snapshot. */
const FAMILIES: readonly [string, MetricType, string, (s: Snapshot) => Sample[]][] = [
  [
    'anubis_requests_total',
    'counter',
    'Responses sent for requests to a backend, by pool, backend and status class.',
    (s) =>
      eachBackend(s, (pool, b) =>
        STATUS_CLASSES.slice(1).map((statusClass, i) => ({
          labels: { pool: pool.name, backend: b.id, class: statusClass },
          value: b.statusClasses[i + 1] ?? 0,
        })),
      ),
  ],
  [
    'anubis_unrouted_requests_total',
    'counter',
    'Requests answered 503 because no backend of the pool was eligible.',
    (s) => s.pools.map((pool) => ({ labels: { pool: pool.name }, value: pool.unrouted })),
  ],
  [
    'anubis_backend_failures_total',
    'counter',
    'Requests to a backend that failed (connection errors, timeouts, resets).',
    (s) => eachBackend(s, (pool, b) => [{ labels: labels(pool, b), value: b.failures }]),
  ],
  [
    'anubis_backend_request_duration_seconds',
    'histogram',
    'Time from sending a request to a backend to its response headers.',
    (s) => eachBackend(s, (pool, b) => histogramSamples(labels(pool, b), b)),
  ],
  [
    'anubis_backend_active_requests',
    'gauge',
    'Requests and upgraded connections in flight to a backend.',
    (s) => eachBackend(s, (pool, b) => [{ labels: labels(pool, b), value: b.active }]),
  ],
  [
    'anubis_backend_up',
    'gauge',
    '1 if the backend is healthy (in every worker), 0 if not.',
    (s) => eachBackend(s, (pool, b) => [{ labels: labels(pool, b), value: b.healthy ? 1 : 0 }]),
  ],
  [
    'anubis_backend_healthy_workers',
    'gauge',
    'Worker processes that see the backend healthy.',
    (s) => eachBackend(s, (pool, b) => [{ labels: labels(pool, b), value: b.healthyWorkers }]),
  ],
  [
    'anubis_backend_state',
    'gauge',
    'Administrative state of the backend: 1 for the current state (enabled, draining, disabled).',
    (s) =>
      eachBackend(s, (pool, b) =>
        STATES.map((state) => ({
          labels: { ...labels(pool, b), state },
          value: b.adminState === state ? 1 : 0,
        })),
      ),
  ],
  [
    'anubis_backend_weight',
    'gauge',
    'Configured (or admin-set) weight of the backend.',
    (s) => eachBackend(s, (pool, b) => [{ labels: labels(pool, b), value: b.weight }]),
  ],
  [
    'anubis_backend_effective_weight',
    'gauge',
    'Weight the strategy uses now (lower during slow start).',
    (s) => eachBackend(s, (pool, b) => [{ labels: labels(pool, b), value: b.effectiveWeight }]),
  ],
  [
    'anubis_backend_latency_ewma_seconds',
    'gauge',
    'Moving average of the backend latency as the strategies see it.',
    (s) =>
      eachBackend(s, (pool, b) => [{ labels: labels(pool, b), value: b.latencyEwmaMs / 1000 }]),
  ],
  [
    'anubis_backend_retries_total',
    'counter',
    'Requests retried away from this backend after it failed.',
    (s) => eachBackend(s, (pool, b) => [{ labels: labels(pool, b), value: b.retries }]),
  ],
  [
    'anubis_backend_ejections_total',
    'counter',
    'Times the backend was ejected by passive health checks (outlier detection).',
    (s) => eachBackend(s, (pool, b) => [{ labels: labels(pool, b), value: b.ejections }]),
  ],
  [
    'anubis_backend_bytes_received_total',
    'counter',
    'TCP mode: bytes received from a tcp:// backend (passed on to clients).',
    (s) => eachTcpBackend(s, (pool, b) => [{ labels: labels(pool, b), value: b.bytesIn }]),
  ],
  [
    'anubis_backend_bytes_sent_total',
    'counter',
    'TCP mode: bytes sent to a tcp:// backend (received from clients).',
    (s) => eachTcpBackend(s, (pool, b) => [{ labels: labels(pool, b), value: b.bytesOut }]),
  ],
  [
    'anubis_pool_queue_length',
    'gauge',
    'Requests waiting for a backend of the pool.',
    (s) => s.pools.map((pool) => ({ labels: { pool: pool.name }, value: pool.queueLength })),
  ],
  [
    'anubis_pool_mode',
    'gauge',
    'Balancing mode of the pool: 1 for the current one (normal, backup, panic, down).',
    (s) =>
      s.pools.flatMap((pool) =>
        POOL_MODES.map((mode) => ({
          labels: { pool: pool.name, mode },
          value: pool.mode === mode ? 1 : 0,
        })),
      ),
  ],
  [
    'anubis_strategy_errors_total',
    'counter',
    'Picks where the strategy failed and round robin stood in.',
    (s) => s.pools.map((pool) => ({ labels: { pool: pool.name }, value: pool.strategyErrors })),
  ],
  [
    'anubis_client_connections',
    'gauge',
    'Open client connections, by listener.',
    (s) => s.listeners.map((l) => ({ labels: { listener: l.address }, value: l.connections })),
  ],
  [
    'anubis_tcp_connections_total',
    'counter',
    'TCP mode: client connections accepted, by listener.',
    (s) => eachTcpListener(s, (l) => l.connections),
  ],
  [
    'anubis_tcp_connect_failures_total',
    'counter',
    'TCP mode: client connections closed because no backend could be connected, by listener.',
    (s) => eachTcpListener(s, (l) => l.connectFailures),
  ],
  [
    'anubis_tcp_refused_connections_total',
    'counter',
    'TCP mode: client connections closed at accept because maxConnections were open, by listener.',
    (s) => eachTcpListener(s, (l) => l.refused),
  ],
  [
    'anubis_workers',
    'gauge',
    'Worker processes that answered the scrape.',
    (s) => [{ labels: {}, value: s.workers }],
  ],
];

export const METRIC_NAMES: readonly string[] = FAMILIES.map(([name]) => name);

function labels(pool: PoolSnapshot, backend: BackendSnapshot): Labels {
  return { pool: pool.name, backend: backend.id };
}

function eachBackend(
  snapshot: Snapshot,
  read: (pool: PoolSnapshot, backend: BackendSnapshot) => Sample[],
): Sample[] {
  return snapshot.pools.flatMap((pool) => pool.backends.flatMap((b) => read(pool, b)));
}

/** Like eachBackend, for tcp:// backends only (byte counters mean nothing for http ones). */
function eachTcpBackend(
  snapshot: Snapshot,
  read: (pool: PoolSnapshot, backend: BackendSnapshot) => Sample[],
): Sample[] {
  return eachBackend(snapshot, (pool, b) => (b.url.startsWith('tcp:') ? read(pool, b) : []));
}

/** One sample per `mode: tcp` listener, labelled by its address. */
function eachTcpListener(
  snapshot: Snapshot,
  read: (counters: TcpListenerCounters) => number,
): Sample[] {
  const samples: Sample[] = [];
  for (const l of snapshot.listeners) {
    if (l.tcp !== undefined) samples.push({ labels: { listener: l.address }, value: read(l.tcp) });
  }
  return samples;
}

/** Cumulative `_bucket` samples at the Prometheus bounds, then `_sum` and `_count`. */
function histogramSamples(base: Labels, backend: BackendSnapshot): Sample[] {
  const samples: Sample[] = [];
  const name = 'anubis_backend_request_duration_seconds';
  let cumulative = 0;
  let next = 0;
  for (const bound of PROMETHEUS_BOUNDS_MS) {
    while (next < LATENCY_BOUNDS_MS.length && (LATENCY_BOUNDS_MS[next] as number) <= bound) {
      cumulative += backend.latencyBuckets[next] ?? 0;
      next++;
    }
    samples.push({
      metricName: `${name}_bucket`,
      labels: { ...base, le: bound / 1000 },
      value: cumulative,
    });
  }
  samples.push({
    metricName: `${name}_bucket`,
    labels: { ...base, le: '+Inf' },
    value: backend.latencyCount,
  });
  samples.push({ metricName: `${name}_sum`, labels: base, value: backend.latencySumMs / 1000 });
  samples.push({ metricName: `${name}_count`, labels: base, value: backend.latencyCount });
  return samples;
}

/** Renders a snapshot in the Prometheus text format. */
export class MetricsRenderer {
  readonly contentType = Registry.PROMETHEUS_CONTENT_TYPE;
  private readonly registry = new Registry();
  private current: Snapshot | undefined;

  constructor() {
    for (const [name, type, help, read] of FAMILIES) {
      const family = {
        name,
        help,
        type,
        aggregator: 'sum',
        get: () => {
          const values = this.current === undefined ? [] : read(this.current);
          return Promise.resolve({ name, help, type, aggregator: 'sum', values });
        },
      };
      // A duck-typed metric object: the registry only calls get() and reads name and type.
      this.registry.registerMetric(family as unknown as Metric);
    }
  }

  async render(snapshot: Snapshot): Promise<string> {
    this.current = snapshot;
    try {
      return await this.registry.metrics();
    } finally {
      this.current = undefined;
    }
  }
}
