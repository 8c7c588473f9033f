/**
 * Passive health (outlier ejection), from the outcomes of real requests, as nginx
 * `max_fails`/`fail_timeout` and Envoy's consecutive-errors ejection:
 *
 *   - a run of `failures` consecutive failed requests, all within `window` of the first one,
 *     ejects the backend for cooldown · 2^(k−1) (k = ejections in a row, capped at 8 × cooldown);
 *   - when the cool-down ends it is half-open: it takes traffic again, the next success
 *     closes the episode (k ← 0), the next failure ejects it again at once;
 *   - with active checks configured, `rise` successful checks after the ejection also end it.
 *
 * Which outcomes count is configurable (`health.passive.on`); failures that are not the
 * backend's fault (client aborts, a stale pooled connection the backend had closed) never count.
 */
import type { PassiveHealthConfig } from '../config/health-schema.js';
import type { AnubisError } from '../errors.js';
import type { BackendHealth } from './backend-health.js';

export type FailureKind = 'connect' | 'reset' | 'timeout' | 'protocol' | '5xx';

/** Longest cool-down as a multiple of the configured one. */
export const MAX_COOLDOWN_FACTOR = 8;

/** The passive-health kind of an upstream error, or undefined if it is not the backend's fault. */
export function failureKind(error: AnubisError): FailureKind | undefined {
  switch (error.code) {
    case 'ANUBIS_UPSTREAM_CONNECT':
    case 'ANUBIS_UPSTREAM_CONNECT_TIMEOUT':
      return 'connect';
    case 'ANUBIS_UPSTREAM_RESET':
      return 'reset';
    case 'ANUBIS_UPSTREAM_HEADERS_TIMEOUT':
    case 'ANUBIS_UPSTREAM_BODY_TIMEOUT':
    case 'ANUBIS_UPSTREAM_TOTAL_TIMEOUT':
      return 'timeout';
    case 'ANUBIS_UPSTREAM_PROTOCOL':
      return 'protocol';
    default:
      return undefined;
  }
}

/**
 * Records one failure; returns the cool-down (ms) if the backend must be ejected now, else 0.
 * `now` is performance.now().
 */
export function recordFailure(
  health: BackendHealth,
  config: PassiveHealthConfig,
  now: number,
): number {
  if (health.ejectedUntil !== 0) return 0;
  if (health.passiveFailures === 0 || now - health.passiveRunStart > config.window) {
    health.passiveFailures = 0;
    health.passiveRunStart = now;
  }
  health.passiveFailures++;
  if (!health.halfOpen && health.passiveFailures < config.failures) return 0;
  health.ejections++;
  const factor = Math.min(MAX_COOLDOWN_FACTOR, 2 ** (health.ejections - 1));
  const cooldown = config.cooldown * factor;
  health.ejectedUntil = now + cooldown;
  health.passiveFailures = 0;
  health.halfOpen = false;
  return cooldown;
}

/** Records one success: ends a run of failures and a half-open episode. */
export function recordSuccess(health: BackendHealth): void {
  health.passiveFailures = 0;
  if (health.halfOpen) {
    health.halfOpen = false;
    health.ejections = 0;
  }
}
