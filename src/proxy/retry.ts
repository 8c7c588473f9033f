/**
 * When a failed attempt may be sent again to a backend (the pool's `retry` settings; the
 * exchange goes back through the strategy with the failed backend excluded). The rules, in
 * order (docs/health.md):
 *
 *   1. never once the client has seen response headers, after `attempts` attempts, after
 *      `deadline`, or when the request body outgrew the replay buffer;
 *   2. a *stale pooled connection* — the failure hit a reused keep-alive connection before
 *      any byte of response (`reusedSocket`, src/upstream/upstream-client.ts) — is always
 *      retried: the backend closed the connection before it read the request. Not charged to
 *      the budget;
 *   3. otherwise the failure must be listed in `retry.on` (`connect`, `reset`, `timeout`,
 *      `502`/`503`/`504`), like nginx's proxy_next_upstream;
 *   4. a connect failure sent nothing, so any method is retried; after anything else the
 *      request may have reached a backend: only methods in `retry.methods` (idempotent ones),
 *      or any method with an `Idempotency-Key` header when `retry.idempotencyKey` is on;
 *   5. the retry budget must allow it.
 *
 * Retry budget (Envoy's retry_budget, Finagle's RetryBudget): over a sliding `window`,
 *
 *   retries ≤ min + ratio · requests
 *
 * so when a whole pool fails, retries add at most `ratio` to the load instead of multiplying
 * it by `attempts`. The window is kept as BUCKETS counters that rotate with time, O(1) per call.
 */
import type { RetryConfig } from '../config/health-schema.js';
import type { AnubisError } from '../errors.js';

/** Why an attempt failed, in retry terms. */
export type RetryCause = 'connect' | 'reset' | 'stale' | 'timeout' | '502' | '503' | '504';

const BUCKETS = 10;

/** Sliding-window counts of requests and retries for one pool. */
export class RetryBudget {
  private readonly requests = new Float64Array(BUCKETS);
  private readonly retries = new Float64Array(BUCKETS);
  private bucket = 0;
  private bucketStart = 0;
  /** Retries sent (all causes) and retries refused by the budget, cumulative. */
  retried = 0;
  refused = 0;

  private rotate(now: number, window: number): void {
    const width = window / BUCKETS;
    if (now - this.bucketStart < width) return;
    const steps = Math.min(BUCKETS, Math.floor((now - this.bucketStart) / width));
    for (let i = 0; i < steps; i++) {
      this.bucket = (this.bucket + 1) % BUCKETS;
      this.requests[this.bucket] = 0;
      this.retries[this.bucket] = 0;
    }
    this.bucketStart = now;
  }

  /** A new client request arrived. */
  recordRequest(now: number, config: RetryConfig): void {
    this.rotate(now, config.budget.window);
    this.requests[this.bucket] = (this.requests[this.bucket] as number) + 1;
  }

  /** Takes one retry from the budget; false (and counted) if none is left. */
  tryRetry(now: number, config: RetryConfig): boolean {
    this.rotate(now, config.budget.window);
    let requests = 0;
    let retries = 0;
    for (let i = 0; i < BUCKETS; i++) {
      requests += this.requests[i] as number;
      retries += this.retries[i] as number;
    }
    if (retries >= config.budget.min + config.budget.ratio * requests) {
      this.refused++;
      return false;
    }
    this.retries[this.bucket] = (this.retries[this.bucket] as number) + 1;
    this.retried++;
    return true;
  }

  /** A retry outside the budget (stale pooled connection): only counted. */
  recordFreeRetry(): void {
    this.retried++;
  }
}

const budgets = new WeakMap<object, RetryBudget>();

/** The retry budget of a pool (created on first use). */
export function retryBudgetOf(pool: object): RetryBudget {
  let budget = budgets.get(pool);
  if (budget === undefined) {
    budget = new RetryBudget();
    budgets.set(pool, budget);
  }
  return budget;
}

/**
 * The retry cause of an upstream error, or undefined if it is never retried. `reusedSocket`
 * and `responseStarted` describe the failed attempt.
 */
export function retryCause(
  error: AnubisError,
  reusedSocket: boolean,
  responseStarted: boolean,
): RetryCause | undefined {
  if (error.retry === 'always') return 'connect';
  if (error.code === 'ANUBIS_UPSTREAM_RESET') {
    return reusedSocket && !responseStarted ? 'stale' : 'reset';
  }
  if (error.code === 'ANUBIS_UPSTREAM_HEADERS_TIMEOUT') return 'timeout';
  return undefined;
}

/** What the policy needs to know about the request. */
export interface RetryRequest {
  readonly method: string;
  /** Value of the Idempotency-Key header, if any. */
  readonly idempotencyKey: string | string[] | undefined;
  /** Attempts made so far (the failed one included). */
  readonly attempts: number;
  /** performance.now() when the client request arrived. */
  readonly arrivedAt: number;
  /** False once the request body outgrew the replay buffer. */
  readonly bodyReplayable: boolean;
}

/** Rules 1–5 above, budget included. `now` is performance.now(). */
export function mayRetry(
  cause: RetryCause | undefined,
  request: RetryRequest,
  config: RetryConfig,
  budget: RetryBudget,
  now: number,
): boolean {
  if (cause === undefined) return false;
  if (request.attempts >= config.attempts) return false;
  if (config.deadline > 0 && now - request.arrivedAt >= config.deadline) return false;
  if (!request.bodyReplayable) return false;
  if (cause === 'stale') {
    budget.recordFreeRetry();
    return true;
  }
  if (!config.on.includes(cause)) return false;
  if (cause !== 'connect' && !config.methods.includes(request.method)) {
    if (!config.idempotencyKey || request.idempotencyKey === undefined) return false;
  }
  return budget.tryRetry(now, config);
}
