/**
 * A backend: identity (id, url, weight), live stats written only by the proxy (active
 * requests, latency EWMA, counters), and state written by health checks and the admin API.
 * Stats live here (their fields and transitions in the base class, src/upstream/backend-stats.ts),
 * not in strategies, so they survive a strategy rebuild or a config reload that keeps the
 * backend.
 */
import { createUndiciClient } from './undici-pool.js';
import { Http1Pool } from './http1/pool.js';
import { loadLlhttp } from './http1/llhttp.js';
import type { UpstreamClient } from './upstream-client.js';
import type { BackendView } from '../strategies/types.js';
import type { BackendConnectTls } from './backend-tls.js';
import { BackendHealth } from '../health/backend-health.js';
import { LatencyHistogram } from './latency-histogram.js';
import { BackendStats } from './backend-stats.js';

// The latency formula lives with the stats it updates; re-exported for existing importers.
export {
  FAILURE_PENALTY_FACTOR,
  FAILURE_PENALTY_MIN_MS,
  failurePenalty,
  foldLatency,
  LATENCY_EWMA_ALPHA,
  LATENCY_HALF_LIFE_MS,
} from './backend-stats.js';

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
  /** HTTP/1.1 client: anubis's own (default) or undici's (src/upstream/upstream-client.ts). */
  readonly client?: 'anubis' | 'undici' | undefined;
}

/** Node's parser class, looked up once; undefined sends every backend to undici. */
const llhttp = loadLlhttp();

/** The HTTP/1.1 client a backend gets for the `client` setting (undici without llhttp). */
export function upstreamClientKind(
  requested: 'anubis' | 'undici' | undefined,
): 'anubis' | 'undici' {
  return requested === 'undici' || llhttp === undefined ? 'undici' : 'anubis';
}

export class Backend extends BackendStats implements BackendView {
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

  // active, latency estimates, counters, in-flight age: see BackendStats.
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
  private readonly httpPool: UpstreamClient | undefined;

  constructor(options: BackendOptions) {
    super();
    this.id = options.id;
    this.url = options.url;
    this.weight = options.weight;
    this.effectiveWeight = options.weight;
    if (options.url.startsWith('tcp:')) return;
    // anubis's own client unless the pool says `client: undici` (or Node's parser is missing).
    if (upstreamClientKind(options.client) !== 'undici') {
      this.httpPool = new Http1Pool(options.url, {
        id: options.id,
        connectTimeoutMs: options.connectTimeoutMs,
        keepAliveTimeoutMs: options.keepAliveTimeoutMs,
        tls: options.tls,
        parserClass: llhttp as NonNullable<typeof llhttp>,
      });
      return;
    }
    this.httpPool = createUndiciClient(options.url, {
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
  get dispatcher(): UpstreamClient {
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
    this.countStart();
    this.statsListener?.(this);
  }

  /** The request ended, successfully or not. Called exactly once per requestStarted(). */
  requestEnded(failed: boolean): void {
    this.countEnd(failed, performance.now());
    this.statsListener?.(this);
  }

  /** One awaited response began (headers, 101, TCP connect) at `now` (performance.now()). */
  responseStarted(now: number): void {
    this.countResponseStart(now);
  }

  /** Folds one time-to-headers sample (ms) into the estimate; `now` is performance.now(). */
  recordLatency(ms: number, now: number): void {
    this.countHeaders(ms, now);
    this.latency.record(ms);
    this.statsListener?.(this);
  }

  /** Folds one time-to-last-byte sample (ms) into its estimate; `now` is performance.now(). */
  recordLastByte(ms: number, now: number): void {
    this.countLastByte(ms, now);
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
