/**
 * The health state of one backend, kept on the Backend object (so it survives a config reload
 * that keeps the backend). Written only by the pool's HealthMonitor; the proxy only reports
 * outcomes to it. `Backend.healthy` is derived from it: up by the active checks (or no active
 * checks) and not ejected by passive health.
 */

export class BackendHealth {
  /** Verdict of the active checks (true when no active checks are configured). */
  activeUp = true;
  /** Consecutive successful / failed active checks (one of them is 0). */
  checkSuccesses = 0;
  checkFailures = 0;

  /** Passive health: current run of failed requests and when it started (performance.now()). */
  passiveFailures = 0;
  passiveRunStart = 0;
  /** Ejected by passive health until this time (performance.now()); 0 when not ejected. */
  ejectedUntil = 0;
  /** Ejections in a row without a success in between (the cool-down doubles with each). */
  ejections = 0;
  /** Back from an ejection, not yet confirmed by a success: one more failure ejects again. */
  halfOpen = false;

  /**
   * The last failure was a connection that could not be made (refused, unreachable, connect
   * timeout). Such a backend is left out even in panic mode: sending to it cannot help.
   */
  unreachable = false;

  /** When the backend last came up (performance.now()); slow start ramps from here. */
  upSince = 0;
  /** Slow start in progress. */
  ramping = false;

  /** Why the backend is in its current state, e.g. `check: status 500` or `passive: 3 × connect`. */
  reason = 'initial';
}
