/**
 * Slow start: a backend that comes (back) up gets a share of traffic that grows linearly over
 * `duration` instead of its full share at once (cold caches, JIT, connection pools):
 *
 *   effectiveWeight = weight · max(MIN_SHARE, (now − upSince) / duration)
 *
 * as in Envoy's slow start with aggression 1 and min_weight_percent 10, or HAProxy's
 * `slowstart`. Backends present at start-up are not ramped (nothing to warm up from), only
 * those that become healthy later.
 */
import type { Backend } from '../upstream/backend.js';

/** Share of its weight a backend gets the moment it comes up. */
export const SLOW_START_MIN_SHARE = 0.1;

/** Starts a ramp for a backend that just came up; returns true if it ramps. */
export function beginSlowStart(backend: Backend, duration: number, now: number): boolean {
  backend.health.upSince = now;
  if (duration <= 0) {
    backend.effectiveWeight = backend.weight;
    backend.health.ramping = false;
    return false;
  }
  backend.health.ramping = true;
  backend.effectiveWeight = backend.weight * SLOW_START_MIN_SHARE;
  return true;
}

/**
 * Updates the effective weight of a ramping backend; returns true while it still ramps.
 * A backend that is not ramping keeps effectiveWeight = weight (the weight may have changed).
 */
export function advanceSlowStart(backend: Backend, duration: number, now: number): boolean {
  const health = backend.health;
  if (!health.ramping || duration <= 0) {
    health.ramping = false;
    backend.effectiveWeight = backend.weight;
    return false;
  }
  const share = (now - health.upSince) / duration;
  if (share >= 1) {
    health.ramping = false;
    backend.effectiveWeight = backend.weight;
    return false;
  }
  backend.effectiveWeight = backend.weight * Math.max(SLOW_START_MIN_SHARE, share);
  return true;
}
