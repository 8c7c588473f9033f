/**
 * random-two: the power of two random choices (Envoy's least_request, nginx's
 * `random two least_conn`). Draw two backends at random, each with probability
 * weight_i / Σ weight, and keep the one with fewer requests in flight relative to its weight:
 *
 *   winner = argmin over {a, b} of active / weight     (tie: the first draw)
 *
 * O(1) per pick and no shared ordering, so it avoids the herd behaviour of a strict
 * least-connections when many balancers (or workers) share backends, while still steering
 * away from a backend that piles up in-flight requests. With every backend idle the first
 * draw wins, so long-run shares follow the weights exactly.
 */
import { RandomStrategy } from './random.js';
import type { BackendExplanation, BackendView, PickContext, Strategy } from './types.js';

export class RandomTwoStrategy extends RandomStrategy {
  override readonly name: string = 'random-two';

  override pick(context: PickContext): BackendView | undefined {
    const first = this.draw(context);
    if (first < 0) return undefined;
    const second = this.draw(context);
    if (second === first) return this.backends[first];
    const a = this.backends[first] as BackendView;
    const b = this.backends[second] as BackendView;
    // a.active / wa <= b.active / wb, without division.
    return a.active * (this.weights[second] as number) <= b.active * (this.weights[first] as number)
      ? a
      : b;
  }

  override explain(): BackendExplanation[] {
    return this.backends.map((backend, slot) => {
      const weight = this.weights[slot] as number;
      return {
        backend: backend.id,
        score: backend.active / weight,
        inputs: { active: backend.active, weight },
      };
    });
  }
}

export function createRandomTwo(): Strategy {
  return new RandomTwoStrategy();
}
