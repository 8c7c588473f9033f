/**
 * A snapshot of live pool state: what the admin API, the metrics and the dashboard read.
 * Taken off the hot path (on an interval by the sampler, or when a scrape arrives), as plain
 * JSON so a worker can send it to the primary over IPC. Counters are cumulative since the
 * backend was created; rates come from the difference of two snapshots (./sampler.ts).
 *
 * With several workers, the primary merges one snapshot per worker (`mergeSnapshots`):
 * counters and active requests add up; the latency EWMA is the request-weighted mean; a
 * backend is reported healthy only when every worker sees it healthy (`healthyWorkers` says
 * how many do). TCP listeners' counters (connections, connect failures, refused) add up
 * per listener address.
 */
import type { LoadBalancer } from '../load-balancer.js';
import { TcpListener } from '../server/tcp-listener.js';
import type { Backend } from '../upstream/backend.js';
import type { UpstreamPool } from '../upstream/pool.js';

export interface BackendSnapshot {
  readonly id: string;
  readonly url: string;
  readonly weight: number;
  readonly effectiveWeight: number;
  readonly healthy: boolean;
  readonly adminState: string;
  readonly active: number;
  readonly latencyEwmaMs: number;
  readonly requests: number;
  readonly failures: number;
  /** Responses by status class, index 1..5 for 1xx..5xx. */
  readonly statusClasses: readonly number[];
  /** Per-bucket latency counts (LATENCY_BOUNDS_MS, then +Inf). */
  readonly latencyBuckets: readonly number[];
  readonly latencyCount: number;
  readonly latencySumMs: number;
  /** Failed attempts on this backend that were sent again (src/proxy/retry.ts). */
  readonly retries: number;
  /** Times passive health ejected it (src/health/monitor.ts). */
  readonly ejections: number;
  /** A backup backend takes requests only when every primary is down. */
  readonly backup: boolean;
  /** TCP mode: bytes received from / sent to this backend (0 for http backends). */
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** Workers reporting this backend, and how many of them see it healthy. */
  readonly workers: number;
  readonly healthyWorkers: number;
}

export interface PoolSnapshot {
  readonly name: string;
  readonly strategy: string;
  /** Requests answered 503 because no backend was eligible. */
  readonly unrouted: number;
  readonly strategyErrors: number;
  /** Requests waiting for a free backend (concurrency limits). */
  readonly queueLength: number;
  /** normal, panic, backup or down (src/health/eligibility.ts). */
  readonly mode: string;
  readonly backends: readonly BackendSnapshot[];
}

export interface Snapshot {
  /** Date.now() when taken. */
  readonly at: number;
  /** Worker processes merged into this snapshot (1 without cluster). */
  readonly workers: number;
  readonly pools: readonly PoolSnapshot[];
  /** Open client connections per listener address. */
  readonly listeners: readonly ListenerSnapshot[];
}

export interface ListenerSnapshot {
  readonly address: string;
  readonly connections: number;
  /** `mode: tcp` listeners only: cumulative counters (src/proxy/tcp-proxy.ts, tcp-listener.ts). */
  readonly tcp?: TcpListenerCounters;
}

export interface TcpListenerCounters {
  /** Client connections accepted. */
  readonly connections: number;
  /** Client connections closed because no backend could be connected. */
  readonly connectFailures: number;
  /** Client connections closed at accept because `maxConnections` were open. */
  readonly refused: number;
}

function addTcpCounters(
  a: TcpListenerCounters | undefined,
  b: TcpListenerCounters | undefined,
): TcpListenerCounters | undefined {
  if (a === undefined || b === undefined) return a ?? b;
  return {
    connections: a.connections + b.connections,
    connectFailures: a.connectFailures + b.connectFailures,
    refused: a.refused + b.refused,
  };
}

export function snapshotBackend(backend: Backend): BackendSnapshot {
  return {
    id: backend.id,
    url: backend.url,
    weight: backend.weight,
    effectiveWeight: backend.effectiveWeight,
    healthy: backend.healthy,
    adminState: backend.adminState,
    active: backend.active,
    latencyEwmaMs: backend.latencyEwmaMs,
    requests: backend.requests,
    failures: backend.failures,
    statusClasses: Array.from(backend.statusClasses),
    latencyBuckets: Array.from(backend.latency.counts),
    latencyCount: backend.latency.count,
    latencySumMs: backend.latency.sumMs,
    retries: backend.retries,
    ejections: backend.ejections,
    backup: backend.backup,
    bytesIn: backend.bytesIn,
    bytesOut: backend.bytesOut,
    workers: 1,
    healthyWorkers: backend.healthy ? 1 : 0,
  };
}

export function snapshotPool(pool: UpstreamPool): PoolSnapshot {
  return {
    name: pool.name,
    strategy: pool.strategy.name,
    unrouted: pool.unrouted,
    strategyErrors: pool.strategyErrors,
    queueLength: pool.queueLength,
    mode: pool.mode,
    backends: pool.backends.map(snapshotBackend),
  };
}

/** Snapshot of a load balancer running in this process. */
export async function takeSnapshot(balancer: LoadBalancer): Promise<Snapshot> {
  // TCP byte counters are brought up to date once a second; a snapshot wants them exact.
  for (const l of balancer.listeners) if (l instanceof TcpListener) l.proxy.countBytes();
  const pools = [...balancer.pools.values()].map(snapshotPool);
  const listeners = await Promise.all(
    balancer.listeners.map(async (l): Promise<ListenerSnapshot> => {
      const connections = await l.openConnections();
      if (!(l instanceof TcpListener)) return { address: l.addressText, connections };
      const { connectionsTotal, connectFailures } = l.proxy;
      return {
        address: l.addressText,
        connections,
        tcp: { connections: connectionsTotal, connectFailures, refused: l.refused },
      };
    }),
  );
  return { at: Date.now(), workers: 1, pools, listeners };
}

function addArrays(a: readonly number[], b: readonly number[]): number[] {
  const out = a.slice();
  for (let i = 0; i < b.length; i++) out[i] = (out[i] ?? 0) + (b[i] as number);
  return out;
}

/**
 * The cumulative counters of one backend in two snapshots, added: the same backend in two
 * workers, or a live worker and a retired one. Every counter that only grows belongs here,
 * so merging and carrying a dead worker's totals can never disagree.
 */
function addCumulative(a: BackendSnapshot, b: BackendSnapshot) {
  return {
    requests: a.requests + b.requests,
    failures: a.failures + b.failures,
    statusClasses: addArrays(a.statusClasses, b.statusClasses),
    latencyBuckets: addArrays(a.latencyBuckets, b.latencyBuckets),
    latencyCount: a.latencyCount + b.latencyCount,
    latencySumMs: a.latencySumMs + b.latencySumMs,
    retries: a.retries + b.retries,
    ejections: a.ejections + b.ejections,
    bytesIn: a.bytesIn + b.bytesIn,
    bytesOut: a.bytesOut + b.bytesOut,
  } satisfies Partial<BackendSnapshot>;
}

const MODE_ORDER = ['normal', 'backup', 'panic', 'down'];

function worseMode(a: string, b: string): string {
  return MODE_ORDER.indexOf(b) > MODE_ORDER.indexOf(a) ? b : a;
}

/** Adds the counters of `b` into `a` (same backend in two workers, or a retired worker). */
export function mergeBackend(a: BackendSnapshot, b: BackendSnapshot): BackendSnapshot {
  const requests = a.requests + b.requests;
  return {
    ...a,
    healthy: a.healthy && b.healthy,
    active: a.active + b.active,
    latencyEwmaMs:
      requests === 0
        ? (a.latencyEwmaMs + b.latencyEwmaMs) / 2
        : (a.latencyEwmaMs * a.requests + b.latencyEwmaMs * b.requests) / requests,
    ...addCumulative(a, b),
    workers: a.workers + b.workers,
    healthyWorkers: a.healthyWorkers + b.healthyWorkers,
  };
}

/** Merges per-worker snapshots into one, pool by pool and backend by backend. */
export function mergeSnapshots(snapshots: readonly Snapshot[]): Snapshot {
  const pools = new Map<string, { pool: PoolSnapshot; backends: Map<string, BackendSnapshot> }>();
  for (const snapshot of snapshots) {
    for (const pool of snapshot.pools) {
      let entry = pools.get(pool.name);
      if (entry === undefined) {
        entry = { pool: { ...pool, backends: [] }, backends: new Map() };
        pools.set(pool.name, entry);
      } else {
        entry.pool = {
          ...entry.pool,
          unrouted: entry.pool.unrouted + pool.unrouted,
          strategyErrors: entry.pool.strategyErrors + pool.strategyErrors,
          queueLength: entry.pool.queueLength + pool.queueLength,
          // Workers may disagree (each has its own health view): the worst mode wins.
          mode: worseMode(entry.pool.mode, pool.mode),
        };
      }
      for (const backend of pool.backends) {
        const seen = entry.backends.get(backend.id);
        entry.backends.set(backend.id, seen === undefined ? backend : mergeBackend(seen, backend));
      }
    }
  }
  const listeners = new Map<string, ListenerSnapshot>();
  for (const snapshot of snapshots) {
    for (const l of snapshot.listeners)
      listeners.set(l.address, mergeListener(listeners.get(l.address), l));
  }
  return {
    at: Date.now(),
    workers: snapshots.reduce((n, s) => n + s.workers, 0),
    listeners: [...listeners.values()],
    pools: [...pools.values()].map(({ pool, backends }) => ({
      ...pool,
      backends: [...backends.values()],
    })),
  };
}

/** The same listener in two workers: open connections and TCP counters add up. */
function mergeListener(a: ListenerSnapshot | undefined, b: ListenerSnapshot): ListenerSnapshot {
  if (a === undefined) return b;
  const tcp = addTcpCounters(a.tcp, b.tcp);
  return {
    address: a.address,
    connections: a.connections + b.connections,
    ...(tcp === undefined ? {} : { tcp }),
  };
}

/**
 * Keeps the counters of a worker that exited, so cluster-wide counters never go backwards
 * when a worker restarts (Prometheus counters must only grow). Gauges (active requests,
 * health, weights) are not kept: they belong to live workers.
 */
export function retireSnapshot(retired: Snapshot | undefined, last: Snapshot): Snapshot {
  const merged = retired === undefined ? last : mergeSnapshots([retired, last]);
  return { ...merged, workers: 0 };
}

/** Adds retired workers' counters to the backends (and pools) that live workers report. */
export function withRetired(live: Snapshot, retired: Snapshot | undefined): Snapshot {
  if (retired === undefined) return live;
  const retiredPools = new Map(retired.pools.map((p) => [p.name, p]));
  const retiredTcp = new Map(retired.listeners.map((l) => [l.address, l.tcp]));
  return {
    ...live,
    listeners: live.listeners.map((l) => {
      const tcp = retiredTcp.get(l.address);
      return tcp === undefined || l.tcp === undefined
        ? l
        : { ...l, tcp: addTcpCounters(l.tcp, tcp) as TcpListenerCounters };
    }),
    pools: live.pools.map((pool) => {
      const old = retiredPools.get(pool.name);
      if (old === undefined) return pool;
      const oldBackends = new Map(old.backends.map((b) => [b.id, b]));
      return {
        ...pool,
        unrouted: pool.unrouted + old.unrouted,
        strategyErrors: pool.strategyErrors + old.strategyErrors,
        backends: pool.backends.map((backend) => {
          const gone = oldBackends.get(backend.id);
          if (gone === undefined) return backend;
          return { ...backend, ...addCumulative(backend, gone) };
        }),
      };
    }),
  };
}
