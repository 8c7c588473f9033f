/**
 * A backend: identity (id, url, weight), live stats written only by the proxy (active
 * requests, latency EWMA, counters), and state written by health checks and the admin API.
 * Stats live here, not in strategies, so they survive a strategy rebuild or a config reload
 * that keeps the backend.
 */
import { Pool } from './undici-pool.js';
import type { BackendView } from '../strategies/types.js';
import type { BackendConnectTls } from './backend-tls.js';
import { BackendHealth } from '../health/backend-health.js';
import { LatencyHistogram } from './latency-histogram.js';

/**
 * Latency estimate (time to response headers; the same for time to last byte):
 *
 *   prior = ewma · 2^(−(now − lastSampleAt) / LATENCY_HALF_LIFE_MS)   (time decay)
 *   ewma ← α·sample + (1−α)·prior                                     (first sample: ewma = sample)
 *
 * The decay halves an estimate for every half-life without a sample, so a backend that was
 * slow once and then left alone looks better and better until least-time tries it again (no
 * starvation, unlike Traefik's plain mean), and a backend coming back after a pause starts
 * from a low, quickly corrected estimate. Strategies apply the same decay when they compare
 * estimates (see src/strategies/least-time.ts), so what they see is always the decayed value.
 */
export const LATENCY_EWMA_ALPHA = 0.3;
/** Half-life of an estimate without new samples (ms). */
export const LATENCY_HALF_LIFE_MS = 1_000;

/** A failed request counts as a sample of max(FACTOR × decayed estimate, MIN_MS). */
export const FAILURE_PENALTY_FACTOR = 4;
export const FAILURE_PENALTY_MIN_MS = 1_000;

/** The latency sample a failure counts as (see Backend.requestEnded). */
export function failurePenalty(
  ewma: number,
  samples: number,
  lastSampleAt: number,
  now: number,
): number {
  const idle = now - lastSampleAt;
  const decayed =
    samples === 0 ? 0 : idle > 0 ? ewma * Math.pow(2, -idle / LATENCY_HALF_LIFE_MS) : ewma;
  return Math.max(FAILURE_PENALTY_FACTOR * decayed, FAILURE_PENALTY_MIN_MS);
}

/** The EWMA after one more sample, with the time decay above. */
export function foldLatency(
  ewma: number,
  samples: number,
  lastSampleAt: number,
  ms: number,
  now: number,
): number {
  if (samples === 0) return ms;
  const idle = now - lastSampleAt;
  const prior = idle > 0 ? ewma * Math.pow(2, -idle / LATENCY_HALF_LIFE_MS) : ewma;
  return LATENCY_EWMA_ALPHA * ms + (1 - LATENCY_EWMA_ALPHA) * prior;
}

/** Administrative state, set by the admin API; independent of health. */
export type AdminState = 'enabled' | 'draining' | 'disabled';

export interface BackendOptions {
  readonly id: string;
  readonly url: string;
  readonly weight: number;
  readonly connectTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  /** TLS options for an https:// backend (CA, verification, SNI name); see backend-tls.ts. */
  readonly tls?: BackendConnectTls | undefined;
}

export class Backend implements BackendView {
  readonly id: string;
  readonly url: string;
  weight: number;
  effectiveWeight: number;

  /** Written by health checks: false once a backend is considered down. */
  healthy = true;
  adminState: AdminState = 'enabled';
  /** A backup backend takes requests only when every primary is down (src/health/eligibility.ts). */
  backup = false;
  /** Active-check and passive-health state behind `healthy` (written by the HealthMonitor). */
  readonly health = new BackendHealth();
  /** Failed attempts on this backend that were sent again (to it or another), cumulative. */
  retries = 0;
  /** Times passive health ejected this backend, cumulative. */
  ejections = 0;

  active = 0;
  latencyEwmaMs = 0;
  latencySamples = 0;
  lastSampleAt = 0;
  lastByteEwmaMs = 0;
  lastByteSamples = 0;
  lastByteSampleAt = 0;
  /** The latest raw samples (ms; a failure's penalty counts): least-time's probe results. */
  lastLatencyMs = 0;
  lastLastByteMs = 0;
  requests = 0;
  failures = 0;
  /**
   * In-flight age (least-time): requests started whose response has not begun (no headers,
   * no 101, no TCP connect yet), and the `performance.now()` of the last progress — a response
   * beginning, a request ending, or the first awaited request starting on a backend that
   * awaited none. While `awaiting > 0` every awaited request is at least
   * `now − lastProgressAt` old (nothing left the awaited set since, so the requests awaited
   * right after that moment are still awaited): a lower bound of the oldest one's age, kept
   * with two numbers and no allocation. Requests past their headers (long bodies, upgraded
   * connections) are not awaited, so a long download is not mistaken for a stall.
   */
  awaiting = 0;
  lastProgressAt = 0;
  /** Time to response headers of every request, cumulative (admin API, metrics). */
  readonly latency = new LatencyHistogram();
  /** Responses by status class: index 1..5 for 1xx..5xx (index 0 unused), cumulative. */
  readonly statusClasses = new Float64Array(6);

  /**
   * Told after `active` or a latency estimate changed, so a strategy can keep an ordered
   * index (least-connections, least-time) instead of scanning every backend per pick. Set by
   * the pool; undefined (one comparison per change) when its strategy does not need it.
   */
  statsListener: ((backend: Backend) => void) | undefined = undefined;

  /** TCP mode: bytes received from this backend (added as they pass). */
  bytesIn = 0;
  /** TCP mode: bytes sent to this backend (added as they pass). */
  bytesOut = 0;

  /** Keep-alive connection pool (http/https backends only; tcp:// backends have none). */
  private readonly httpPool: Pool | undefined;

  constructor(options: BackendOptions) {
    this.id = options.id;
    this.url = options.url;
    this.weight = options.weight;
    this.effectiveWeight = options.weight;
    if (options.url.startsWith('tcp:')) return;
    this.httpPool = new Pool(options.url, {
      ...(options.tls === undefined ? {} : { connect: options.tls }),
      connections: null,
      pipelining: 1,
      keepAliveTimeout: options.keepAliveTimeoutMs,
      connectTimeout: options.connectTimeoutMs,
      // Per-request timeouts are passed with each dispatch; 0 here disables the defaults.
      headersTimeout: 0,
      bodyTimeout: 0,
    });
  }

  /** Keep-alive connection pool to this backend (http:// and https:// backends). */
  get dispatcher(): Pool {
    if (this.httpPool === undefined)
      throw new Error(`${this.url} is a TCP backend: it has no HTTP dispatcher`);
    return this.httpPool;
  }

  /** Can take new requests: healthy and enabled (draining backends finish what they have). */
  get eligible(): boolean {
    return this.healthy && this.adminState === 'enabled';
  }

  /** The proxy starts a request (or upgraded connection) to this backend. */
  requestStarted(): void {
    if (this.awaiting++ === 0) this.lastProgressAt = performance.now();
    this.active++;
    this.requests++;
    this.statsListener?.(this);
  }

  /** The request ended, successfully or not. Called exactly once per requestStarted(). */
  requestEnded(failed: boolean): void {
    this.active--;
    const now = performance.now();
    // A request that ended without a response (failure, stale retry) leaves the awaited set.
    if (this.awaiting > this.active) this.awaiting = this.active;
    this.lastProgressAt = now;
    if (failed) {
      this.failures++;
      this.penalize(now);
    }
    this.statsListener?.(this);
  }

  /**
   * A failed request counts as one slow latency sample in both estimates, so a backend that
   * fails fast never looks fast to least-time: max(FAILURE_PENALTY_FACTOR × estimate,
   * FAILURE_PENALTY_MIN_MS). It decays like any sample (foldLatency).
   */
  private penalize(now: number): void {
    const headers = failurePenalty(this.latencyEwmaMs, this.latencySamples, this.lastSampleAt, now);
    this.latencyEwmaMs = foldLatency(
      this.latencyEwmaMs,
      this.latencySamples,
      this.lastSampleAt,
      headers,
      now,
    );
    this.latencySamples++;
    this.lastSampleAt = now;
    this.lastLatencyMs = headers;
    const lastByte = failurePenalty(
      this.lastByteEwmaMs,
      this.lastByteSamples,
      this.lastByteSampleAt,
      now,
    );
    this.lastByteEwmaMs = foldLatency(
      this.lastByteEwmaMs,
      this.lastByteSamples,
      this.lastByteSampleAt,
      lastByte,
      now,
    );
    this.lastByteSamples++;
    this.lastByteSampleAt = now;
    this.lastLastByteMs = lastByte;
  }

  /** One awaited response began (headers, 101, TCP connect) at `now` (performance.now()). */
  responseStarted(now: number): void {
    if (this.awaiting > 0) this.awaiting--;
    this.lastProgressAt = now;
  }

  /** Folds one time-to-headers sample (ms) into the estimate; `now` is performance.now(). */
  recordLatency(ms: number, now: number): void {
    this.responseStarted(now);
    this.latencyEwmaMs = foldLatency(
      this.latencyEwmaMs,
      this.latencySamples,
      this.lastSampleAt,
      ms,
      now,
    );
    this.latencySamples++;
    this.lastSampleAt = now;
    this.lastLatencyMs = ms;
    this.latency.record(ms);
    this.statsListener?.(this);
  }

  /** Folds one time-to-last-byte sample (ms) into its estimate; `now` is performance.now(). */
  recordLastByte(ms: number, now: number): void {
    this.lastByteEwmaMs = foldLatency(
      this.lastByteEwmaMs,
      this.lastByteSamples,
      this.lastByteSampleAt,
      ms,
      now,
    );
    this.lastByteSamples++;
    this.lastByteSampleAt = now;
    this.lastLastByteMs = ms;
    this.statsListener?.(this);
  }

  /** Counts the status a client got for a request sent to this backend (its own or anubis' 5xx). */
  recordStatus(status: number): void {
    const statusClass = (status / 100) | 0;
    if (statusClass >= 1 && statusClass <= 5) (this.statusClasses[statusClass] as number)++;
  }

  /** Closes the connection pool, letting in-flight requests finish. */
  async close(): Promise<void> {
    await this.httpPool?.close();
  }

  /** Closes the connection pool at once, failing in-flight requests. */
  async destroy(): Promise<void> {
    await this.httpPool?.destroy();
  }
}

/** Default backend id: the URL's host:port. */
export function backendIdFromUrl(url: string): string {
  const parsed = new URL(url);
  const port = parsed.port === '' ? (parsed.protocol === 'https:' ? '443' : '80') : parsed.port;
  return `${parsed.hostname}:${port}`;
}
