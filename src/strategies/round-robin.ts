/**
 * round-robin: nginx's smooth weighted round robin.
 *
 * On each step every backend's `current` grows by its effective weight w_i; the backend with
 * the largest `current` is chosen and its `current` drops by W = Σ w_i. Over one period of W
 * picks each backend is chosen exactly w_i times, interleaved rather than in bursts: weights
 * 5,1,1 give a a b a c a a.
 *
 * The period is precomputed in `setBackends()` (off the hot path), so `pick()` is O(1): an
 * index into the schedule. When W would exceed MAX_SCHEDULE the schedule is built over
 * weights scaled down proportionally (shares stay within 1/MAX_SCHEDULE of exact). Excluded
 * backends (retries) are skipped by walking forward at most one period.
 */
import {
  isExcluded,
  type BackendExplanation,
  type BackendView,
  type PickContext,
  type Strategy,
} from './types.js';

const MAX_SCHEDULE = 65_536;
/** Steps per unit of weight when some effective weight is fractional (slow start). */
const FRACTION_RESOLUTION = 20;

/** Smooth WRR order of one period for the given weights (indices into `weights`). */
export function smoothWeightedSchedule(weights: readonly number[]): number[] {
  const total = weights.reduce((sum, w) => sum + w, 0);
  // Fractional effective weights (slow start ramps 0.1·w → w) are scaled up by
  // FRACTION_RESOLUTION so that a ramping backend of weight 1 really gets a smaller share.
  const fractional = weights.some((w) => !Number.isInteger(w));
  const scale =
    total > MAX_SCHEDULE
      ? MAX_SCHEDULE / total
      : fractional
        ? Math.min(FRACTION_RESOLUTION, MAX_SCHEDULE / total)
        : 1;
  const scaled = weights.map((w) => Math.max(1, Math.round(w * scale)));
  const period = scaled.reduce((sum, w) => sum + w, 0);
  const current = new Array<number>(scaled.length).fill(0);
  const schedule = new Array<number>(period);
  for (let step = 0; step < period; step++) {
    let best = 0;
    for (let i = 0; i < scaled.length; i++) {
      current[i] = (current[i] as number) + (scaled[i] as number);
      if ((current[i] as number) > (current[best] as number)) best = i;
    }
    current[best] = (current[best] as number) - period;
    schedule[step] = best;
  }
  return schedule;
}

export class RoundRobinStrategy implements Strategy {
  readonly name: string = 'round-robin';
  private backends: readonly BackendView[] = [];
  private schedule: number[] = [];
  private position = 0;

  setBackends(backends: readonly BackendView[]): void {
    this.backends = backends;
    this.schedule = smoothWeightedSchedule(backends.map((b) => b.effectiveWeight));
    if (this.position >= this.schedule.length) this.position = 0;
  }

  pick(context: PickContext): BackendView | undefined {
    const length = this.schedule.length;
    for (let tries = 0; tries < length; tries++) {
      const backend = this.backends[this.schedule[this.position] as number] as BackendView;
      this.position = this.position + 1 === length ? 0 : this.position + 1;
      if (!isExcluded(context, backend)) return backend;
    }
    return undefined;
  }

  /** Score: how many picks until the backend's next turn (0 = the next pick). */
  explain(): BackendExplanation[] {
    const length = this.schedule.length;
    const untilTurn = this.backends.map(() => length);
    for (let ahead = length - 1; ahead >= 0; ahead--) {
      untilTurn[this.schedule[(this.position + ahead) % length] as number] = ahead;
    }
    return this.backends.map((backend, slot) => ({
      backend: backend.id,
      score: untilTurn[slot] as number,
      inputs: {
        weight: backend.weight,
        effectiveWeight: backend.effectiveWeight,
        active: backend.active,
      },
    }));
  }
}

export function createRoundRobin(): Strategy {
  return new RoundRobinStrategy();
}
