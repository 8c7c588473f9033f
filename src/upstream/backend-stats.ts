/**
 * A backend's live stats (the BackendView numbers strategies read) and the transitions that
 * write them: a request starts, its response begins, a time-to-headers or time-to-last-byte
 * sample arrives, the request ends (failed or not). Times are passed in, so the same code runs
 * on `performance.now()` in Backend (src/upstream/backend.ts) and on virtual time in the
 * strategy test harness and the pick() benchmark: what they drive is the real bookkeeping.
 *
 * The transitions do not notify anyone: a subclass tells its strategy (statsChanged) when it
 * sees fit, Backend after each transition as the proxy calls them.
 */
import type { BackendView } from '../strategies/types.js';

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

/** The latency sample a failure counts as (see BackendStats.countEnd). */
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

/**
 * The stat fields of a BackendView and their transitions. A base class (not a member) so the
 * fields stay own properties of the backend: a strategy's `backend.active` is one load, with
 * no getter or second object between.
 */
export abstract class BackendStats implements Omit<
  BackendView,
  'id' | 'url' | 'weight' | 'effectiveWeight'
> {
  /** Requests (or upgraded connections) in flight. */
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
   * no 101, no TCP connect yet), and the time of the last progress — a response beginning, a
   * request ending, or the first awaited request starting on a backend that awaited none.
   * While `awaiting > 0` every awaited request is at least `now − lastProgressAt` old (nothing
   * left the awaited set since, so the requests awaited right after that moment are still
   * awaited): a lower bound of the oldest one's age, kept with two numbers and no allocation.
   * Requests past their headers (long bodies, upgraded connections) are not awaited, so a long
   * download is not mistaken for a stall.
   */
  awaiting = 0;
  lastProgressAt = 0;

  /**
   * A request (or upgraded connection) starts. The time matters only when none was awaited
   * before; without `now`, `performance.now()` is read then, and only then.
   */
  protected countStart(now?: number): void {
    if (this.awaiting++ === 0) this.lastProgressAt = now ?? performance.now();
    this.active++;
    this.requests++;
  }

  /** One awaited response began (headers, 101, TCP connect) at `now`. */
  protected countResponseStart(now: number): void {
    if (this.awaiting > 0) this.awaiting--;
    this.lastProgressAt = now;
  }

  /** The response headers came after `ms`, at `now`: the response began, one sample folds in. */
  protected countHeaders(ms: number, now: number): void {
    this.countResponseStart(now);
    this.foldHeaders(ms, now);
  }

  /** The response's last byte came after `ms`, at `now`: one sample folds into its estimate. */
  protected countLastByte(ms: number, now: number): void {
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
  }

  /** The request ended at `now`, successfully or not; exactly once per countStart(). */
  protected countEnd(failed: boolean, now: number): void {
    this.active--;
    // A request that ended without a response (failure, stale retry) leaves the awaited set.
    if (this.awaiting > this.active) this.awaiting = this.active;
    this.lastProgressAt = now;
    if (failed) {
      this.failures++;
      this.penalize(now);
    }
  }

  /**
   * A failed request counts as one slow latency sample in both estimates, so a backend that
   * fails fast never looks fast to least-time: max(FAILURE_PENALTY_FACTOR × estimate,
   * FAILURE_PENALTY_MIN_MS). It decays like any sample (foldLatency).
   */
  private penalize(now: number): void {
    this.foldHeaders(
      failurePenalty(this.latencyEwmaMs, this.latencySamples, this.lastSampleAt, now),
      now,
    );
    this.countLastByte(
      failurePenalty(this.lastByteEwmaMs, this.lastByteSamples, this.lastByteSampleAt, now),
      now,
    );
  }

  private foldHeaders(ms: number, now: number): void {
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
  }
}
