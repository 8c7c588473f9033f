/**
 * random: each pick chooses backend i with probability weight_i / Σ weight (Vose's alias
 * method, O(1) per pick for any pool size; see ./alias-table.ts).
 *
 * Stateless between picks, so many balancer instances (or worker processes) sharing the same
 * backends do not synchronise on the same one, and weighted shares hold in the long run
 * without any coordination. On a retry the draw is repeated a few times, then the remaining
 * backends are weighed by a scan.
 */
import { AliasTable } from './alias-table.js';
import {
  isExcluded,
  type BackendExplanation,
  type BackendView,
  type PickContext,
  type Strategy,
} from './types.js';
import { weightOf } from './weight.js';

/** Draws before an excluded-heavy retry falls back to scanning. */
const REDRAWS = 4;

export class RandomStrategy implements Strategy {
  readonly name: string = 'random';
  protected backends: readonly BackendView[] = [];
  protected weights: number[] = [];
  protected readonly table = new AliasTable();
  protected readonly random: () => number;

  constructor(random: () => number = Math.random) {
    this.random = random;
  }

  setBackends(backends: readonly BackendView[]): void {
    this.backends = backends;
    this.weights = backends.map(weightOf);
    this.table.build(this.weights);
  }

  pick(context: PickContext): BackendView | undefined {
    const slot = this.draw(context);
    return slot < 0 ? undefined : this.backends[slot];
  }

  explain(): BackendExplanation[] {
    const total = this.weights.reduce((sum, w) => sum + w, 0);
    return this.backends.map((backend, slot) => {
      const weight = this.weights[slot] as number;
      return {
        backend: backend.id,
        // Probability of being picked: higher is more likely (not a cost).
        score: Math.round((weight / total) * 1e6) / 1e6,
        inputs: { weight, active: backend.active },
      };
    });
  }

  /** A weighted random slot not in the excluded set, or -1 if every backend is excluded. */
  protected draw(context: PickContext): number {
    const n = this.backends.length;
    if (n === 0) return -1;
    for (let attempt = 0; attempt < REDRAWS; attempt++) {
      const slot = this.table.draw(this.random());
      if (!isExcluded(context, this.backends[slot] as BackendView)) return slot;
    }
    return this.drawByScan(context);
  }

  /** Weighted draw among the backends that are not excluded (retries only: O(n)). */
  private drawByScan(context: PickContext): number {
    let total = 0;
    for (let slot = 0; slot < this.backends.length; slot++) {
      if (!isExcluded(context, this.backends[slot] as BackendView))
        total += this.weights[slot] as number;
    }
    if (total === 0) return -1;
    let target = this.random() * total;
    let last = -1;
    for (let slot = 0; slot < this.backends.length; slot++) {
      if (isExcluded(context, this.backends[slot] as BackendView)) continue;
      last = slot;
      target -= this.weights[slot] as number;
      if (target < 0) return slot;
    }
    return last;
  }
}

export function createRandom(): Strategy {
  return new RandomStrategy();
}
