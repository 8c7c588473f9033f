/**
 * Takes a snapshot of the pools once a second (off the hot path) and keeps the last minute,
 * so the admin API can report rates and recent latency quantiles from the difference between
 * the newest snapshot and the one `windowMs` earlier:
 *
 *   requests/s   = Δrequests / Δt
 *   error rate   = Δ5xx responses / Δresponses      (anubis' own 502/504 included)
 *   share        = Δrequests(backend) / Δrequests(pool)
 *   p50, p99     = quantiles of Δ(latency bucket counts), interpolated inside a bucket
 *
 * Counters only grow while a backend exists; a backend re-created (removed and added again)
 * starts from zero, so a negative difference is read as "everything since it came back".
 */
import { quantileFromBuckets } from '../upstream/latency-histogram.js';
import type { BackendSnapshot, ListenerSnapshot, PoolSnapshot, Snapshot } from './snapshot.js';

export interface BackendView {
  readonly id: string;
  readonly url: string;
  readonly weight: number;
  readonly effectiveWeight: number;
  readonly healthy: boolean;
  /** Workers that see this backend healthy, out of `workers`. */
  readonly healthyWorkers: number;
  readonly workers: number;
  /** enabled, draining or disabled. */
  readonly state: string;
  readonly active: number;
  readonly requests: number;
  readonly failures: number;
  readonly requestsPerSecond: number;
  /** Share of 5xx among responses in the window (0..1), null without responses. */
  readonly errorRate: number | null;
  /** Share of the pool's requests in the window (0..1), null without requests. */
  readonly share: number | null;
  readonly latency: {
    readonly ewmaMs: number;
    readonly p50Ms: number | null;
    readonly p99Ms: number | null;
  };
  readonly retries: number;
  readonly ejections: number;
  readonly backup: boolean;
  /** TCP mode: bytes received from / sent to the backend, cumulative (0 for http backends). */
  readonly bytesIn: number;
  readonly bytesOut: number;
}

export interface PoolView {
  readonly name: string;
  readonly strategy: string;
  readonly requestsPerSecond: number;
  readonly unrouted: number;
  readonly strategyErrors: number;
  readonly queueLength: number;
  readonly mode: string;
  readonly backends: readonly BackendView[];
}

export interface PoolsView {
  /** ISO time of the newest snapshot. */
  readonly at: string;
  readonly workers: number;
  /** Length of the window the rates and quantiles cover, in seconds. */
  readonly windowSeconds: number;
  readonly pools: readonly PoolView[];
  /** Open connections per listener; `mode: tcp` ones also carry cumulative TCP counters. */
  readonly listeners: readonly ListenerSnapshot[];
}

/** API reads take a fresh snapshot (shared by concurrent callers): they must see the latest change. */
const FRESH_MS = 0;

export interface SamplerOptions {
  readonly intervalMs?: number;
  readonly windowMs?: number;
  /** Snapshots kept (default: one minute at one per second). */
  readonly keep?: number;
}

export class Sampler {
  private readonly take: () => Promise<Snapshot>;
  private readonly intervalMs: number;
  private readonly windowMs: number;
  private readonly keep: number;
  private readonly ring: Snapshot[] = [];
  private timer: NodeJS.Timeout | undefined;
  private pending: Promise<Snapshot> | undefined;

  constructor(take: () => Promise<Snapshot>, options: SamplerOptions = {}) {
    this.take = take;
    this.intervalMs = options.intervalMs ?? 1_000;
    this.windowMs = options.windowMs ?? 5_000;
    this.keep = options.keep ?? 61;
  }

  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => {
      this.sample().catch(() => {
        // A failed sample (a worker restarting) is skipped; the next one catches up.
      });
    }, this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * Takes a snapshot and adds it to the ring. Concurrent callers share one; with `fresh`, a
   * snapshot already under way (it may predate the caller's change) is waited for, then a
   * new one is taken.
   */
  sample(fresh = false): Promise<Snapshot> {
    if (this.pending !== undefined) {
      return fresh
        ? this.pending.then(
            () => this.sample(),
            () => this.sample(),
          )
        : this.pending;
    }
    const pending = this.take().then(
      (snapshot) => {
        this.pending = undefined;
        // On-demand samples between two ticks replace the newest one, so the ring keeps
        // roughly one snapshot per interval however often the API is called.
        const newest = this.ring[this.ring.length - 1];
        const previous = this.ring[this.ring.length - 2];
        if (
          newest !== undefined &&
          previous !== undefined &&
          newest.at - previous.at < this.intervalMs / 2
        ) {
          this.ring[this.ring.length - 1] = snapshot;
        } else {
          this.ring.push(snapshot);
        }
        if (this.ring.length > this.keep) this.ring.shift();
        return snapshot;
      },
      (error: unknown) => {
        this.pending = undefined;
        throw error;
      },
    );
    this.pending = pending;
    return pending;
  }

  /** The newest snapshot, taking a new one if it is older than `freshMs`. */
  async latest(freshMs = FRESH_MS): Promise<Snapshot> {
    const newest = this.ring[this.ring.length - 1];
    if (newest !== undefined && Date.now() - newest.at < freshMs) return newest;
    return this.sample(true);
  }

  /** Live view: the newest snapshot with rates over the window. */
  async view(): Promise<PoolsView> {
    const newest = await this.latest();
    let base: Snapshot | undefined;
    for (const snapshot of this.ring) {
      if (snapshot !== newest && newest.at - snapshot.at <= this.windowMs) {
        base = snapshot;
        break;
      }
    }
    return buildView(newest, base);
  }
}

function delta(now: number, then: number | undefined): number {
  if (then === undefined) return 0;
  return now >= then ? now - then : now;
}

function sum(values: readonly number[]): number {
  let total = 0;
  for (const value of values) total += value;
  return total;
}

/** Rates and quantiles of `newest` relative to `base` (no rates without a base). */
export function buildView(newest: Snapshot, base: Snapshot | undefined): PoolsView {
  const seconds = base === undefined ? 0 : (newest.at - base.at) / 1000;
  const basePools = new Map<string, PoolSnapshot>();
  for (const pool of base?.pools ?? []) basePools.set(pool.name, pool);
  return {
    at: new Date(newest.at).toISOString(),
    workers: newest.workers,
    windowSeconds: seconds,
    listeners: newest.listeners,
    pools: newest.pools.map((pool) => {
      const before = new Map<string, BackendSnapshot>();
      for (const b of basePools.get(pool.name)?.backends ?? []) before.set(b.id, b);
      const requestDeltas = pool.backends.map((b) => delta(b.requests, before.get(b.id)?.requests));
      const poolRequests = sum(requestDeltas);
      return {
        name: pool.name,
        strategy: pool.strategy,
        requestsPerSecond: seconds > 0 ? poolRequests / seconds : 0,
        unrouted: pool.unrouted,
        strategyErrors: pool.strategyErrors,
        queueLength: pool.queueLength,
        mode: pool.mode,
        backends: pool.backends.map((backend, index) => {
          const previous = before.get(backend.id);
          const requests = requestDeltas[index] as number;
          const responses = backend.statusClasses.map((n, i) =>
            delta(n, previous === undefined ? undefined : (previous.statusClasses[i] ?? 0)),
          );
          const totalResponses = sum(responses);
          const buckets = backend.latencyBuckets.map((n, i) =>
            delta(n, previous === undefined ? undefined : (previous.latencyBuckets[i] ?? 0)),
          );
          return {
            id: backend.id,
            url: backend.url,
            weight: backend.weight,
            effectiveWeight: backend.effectiveWeight,
            healthy: backend.healthy,
            healthyWorkers: backend.healthyWorkers,
            workers: backend.workers,
            state: backend.adminState,
            active: backend.active,
            requests: backend.requests,
            failures: backend.failures,
            requestsPerSecond: seconds > 0 ? requests / seconds : 0,
            errorRate: totalResponses > 0 ? (responses[5] ?? 0) / totalResponses : null,
            share: poolRequests > 0 ? requests / poolRequests : null,
            latency: {
              ewmaMs: backend.latencyEwmaMs,
              p50Ms: roundOrNull(quantileFromBuckets(buckets, 0.5)),
              p99Ms: roundOrNull(quantileFromBuckets(buckets, 0.99)),
            },
            retries: backend.retries,
            ejections: backend.ejections,
            backup: backend.backup,
            bytesIn: backend.bytesIn,
            bytesOut: backend.bytesOut,
          };
        }),
      };
    }),
  };
}

function roundOrNull(value: number | undefined): number | null {
  return value === undefined ? null : Math.round(value * 100) / 100;
}
