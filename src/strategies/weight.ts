/**
 * The weight a strategy computes with. Slow start hands out fractional effective weights, down
 * to almost 0 for a backend that just came up; 1/weight must stay finite (turns, scores), so
 * weights are clamped to MIN_WEIGHT. A weight that is not a positive number counts as 1.
 */
import type { BackendView } from './types.js';

export const MIN_WEIGHT = 1e-6;

export function weightOf(backend: BackendView): number {
  const weight = backend.effectiveWeight;
  if (weight > MIN_WEIGHT) return weight;
  return weight > 0 ? MIN_WEIGHT : 1;
}
