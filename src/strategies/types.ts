/**
 * The public strategy contract. A strategy chooses a backend for a request; it knows nothing
 * of sockets or HTTP beyond what the pick context carries, and it never writes backend stats
 * (the proxy writes them; health checks write state).
 *
 * Lifecycle: the pool calls `setBackends()` off the hot path whenever the set of eligible
 * backends or their effective weights change (health, drain, slow start, reload, admin), so a
 * strategy precomputes there and only reads in `pick()`. `pick()` is synchronous, does no I/O
 * and should not allocate.
 */
import type { IncomingHttpHeaders } from 'node:http';

/** Live, read-only view of a backend as strategies see it. */
export interface BackendView {
  /** Stable identity: the configured name, or the URL's host:port. */
  readonly id: string;
  /** Origin, e.g. `http://127.0.0.1:9001`. */
  readonly url: string;
  /** Configured (or admin-set) weight. */
  readonly weight: number;
  /** Weight after slow start; what strategies should use. Always > 0 for eligible backends. */
  readonly effectiveWeight: number;
  /** Requests (or upgraded connections) in flight to this backend right now. */
  readonly active: number;
  /**
   * Latency estimate in ms (0 with no sample): time-decayed EWMA of the time to response
   * headers; a failed request folds in as one slow penalty sample (src/upstream/backend.ts).
   */
  readonly latencyEwmaMs: number;
  /** Number of latency samples folded into the EWMA since the backend was created. */
  readonly latencySamples: number;
  /** `performance.now()` of the last latency sample (0 if none). */
  readonly lastSampleAt: number;
  /**
   * Like latencyEwmaMs / latencySamples / lastSampleAt, for the time to the response's last
   * byte (absent on views that do not measure it: strategies treat that as no samples).
   */
  readonly lastByteEwmaMs?: number;
  readonly lastByteSamples?: number;
  readonly lastByteSampleAt?: number;
  /**
   * Requests in flight whose response has not begun, and the `performance.now()` of this
   * backend's last progress (src/upstream/backend.ts): while `awaiting > 0`, every awaited
   * request is at least `now − lastProgressAt` old (least-time's in-flight age). Absent on
   * views that do not track it: strategies then use the estimate alone.
   */
  /** The latest raw time-to-headers / time-to-last-byte sample (ms; absent: not tracked). */
  readonly lastLatencyMs?: number;
  readonly lastLastByteMs?: number;
  readonly awaiting?: number;
  readonly lastProgressAt?: number;
  /** Total requests sent to this backend. */
  readonly requests: number;
  /** Total failed requests (connection errors, timeouts, resets). */
  readonly failures: number;
}

/** What a strategy may know about the request being balanced. */
export interface PickContext {
  /** The client's address as anubis believes it (socket, or X-Forwarded-For from a trusted proxy). */
  readonly clientAddress: string;
  readonly method: string;
  /** Request target as received, path and query (e.g. `/a?b=1`). */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  /**
   * Backends already tried for this request (on retry). A strategy must not return one of
   * them; `undefined` when nothing was tried yet.
   */
  readonly excluded: ReadonlySet<BackendView> | undefined;
}

/** One backend's inputs and score as a strategy saw them, for explaining a decision. */
export interface BackendExplanation {
  readonly backend: string;
  /** Lower is better unless the strategy says otherwise in its docs. */
  readonly score: number;
  readonly inputs: Readonly<Record<string, number | string>>;
}

export interface Strategy {
  /** Strategy name as configured, e.g. `round-robin`. */
  readonly name: string;
  /** The eligible backends changed (never called with the same array twice). */
  setBackends(backends: readonly BackendView[]): void;
  /** Chooses a backend, or `undefined` if none of the eligible ones may take the request. */
  pick(context: PickContext): BackendView | undefined;
  /** Per-backend inputs and scores behind the next pick (optional; used by the admin API). */
  explain?(): readonly BackendExplanation[];
  /**
   * Optional: a backend's `active` count or latency estimate just changed (request started or
   * ended, latency sample). A strategy that keeps backends ordered (a heap) updates its order
   * here instead of scanning every backend per pick. Called on the hot path: keep it O(log n)
   * and allocation-free. May be called for backends not (or no longer) in the eligible set.
   */
  statsChanged?(backend: BackendView): void;
}

/** Creates a strategy from its (already validated) options. */
export type StrategyFactory<O = Record<string, unknown>> = (options: O) => Strategy;

/** True if `backend` is in the context's excluded set. */
export function isExcluded(context: PickContext, backend: BackendView): boolean {
  return context.excluded !== undefined && context.excluded.has(backend);
}
