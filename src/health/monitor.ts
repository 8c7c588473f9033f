/**
 * The health monitor of one pool: runs the active checks of every backend, turns the proxy's
 * reports into passive ejections, drives slow start, and writes `Backend.healthy` (the only
 * writer). Every state change is announced on the pool (`backend-health` events, with the
 * reason) and followed by `pool.refresh()`, which recomputes the eligible set off the hot path.
 *
 * `sync(backends)` makes the checks follow the pool's membership: backends added at runtime
 * (admin API, DNS discovery, reload) get a check loop, removed ones lose theirs. State lives
 * on the Backend object (backend.health), so a backend kept across a reload keeps it. A change
 * of `health.active` in the pool's configuration restarts the loops with the new settings.
 *
 * `checkSoon(backend, up)` takes a hint from elsewhere (another worker's checks saw the
 * backend go up or down): if this monitor's verdict differs, it checks the backend at once and
 * then at a short delay, `rise` (up) or `fall` (down) times at most, so the workers converge
 * within a few probes instead of up to an interval apart. Its own counters still decide.
 */
import { performance } from 'node:perf_hooks';
import type { ActiveCheckConfig, HealthConfig } from '../config/health-schema.js';
import type { AnubisError } from '../errors.js';
import type { Backend } from '../upstream/backend.js';
import { probe, type ProbeResult } from './active-probe.js';
import { failureKind, recordFailure, recordSuccess, type FailureKind } from './outlier.js';
import { advanceSlowStart, beginSlowStart } from './slow-start.js';

/** What the monitor needs of its pool (UpstreamPool implements it). */
export interface MonitoredPool {
  readonly name: string;
  readonly config: { readonly health: HealthConfig };
  readonly backends: readonly Backend[];
  refresh(): void;
  emit(event: 'backend-health', change: BackendHealthChange): boolean;
}

/** Payload of the pool's `backend-health` event. */
export interface BackendHealthChange {
  readonly backend: Backend;
  readonly healthy: boolean;
  /** Why, e.g. `check: ECONNREFUSED (3 in a row)` or `passive: 3 × connect; ejected for 10000 ms`. */
  readonly reason: string;
}

/** How often effective weights are updated during a slow start (at most). */
const SLOW_START_TICK_MS = 250;

/** Delay between hinted checks (or the interval, when shorter). */
const HINTED_CHECK_DELAY_MS = 100;

/** Prefix of the reason of a change made by an active check (`check: status 200 (2 in a row)`). */
const CHECK_REASON = 'check: ';

/** The change was made by an active check (not passive health, not a configuration change). */
export function isCheckReason(reason: string): boolean {
  return reason.startsWith(CHECK_REASON);
}

interface CheckLoop {
  timer: NodeJS.Timeout | undefined;
  stopped: boolean;
  /**
   * Hinted checks still to start (checkSoon); while > 0 and the verdict is not yet
   * `hintedUp`, the next check comes after min(interval, 100 ms) instead of the interval.
   */
  hinted: number;
  hintedUp: boolean;
}

export class HealthMonitor {
  private readonly pool: MonitoredPool;
  private readonly loops = new Map<Backend, CheckLoop>();
  private readonly ejectionTimers = new Map<Backend, NodeJS.Timeout>();
  private activeConfig: ActiveCheckConfig | undefined = undefined;
  private rampTimer: NodeJS.Timeout | undefined = undefined;
  private closed = false;

  constructor(pool: MonitoredPool) {
    this.pool = pool;
  }

  /** Starts checks for new backends, stops those of removed ones; idempotent and cheap. */
  sync(backends: readonly Backend[]): void {
    if (this.closed) return;
    const active = this.pool.config.health.active;
    if (active !== this.activeConfig) {
      for (const loop of this.loops.values()) this.stopLoop(loop);
      this.loops.clear();
      this.activeConfig = active;
      if (active === undefined) {
        // Checks switched off: their verdict no longer holds.
        for (const backend of backends) {
          if (!backend.health.activeUp) {
            backend.health.activeUp = true;
            this.update(backend, 'active checks disabled');
          }
        }
      }
    }
    const present = new Set(backends);
    for (const [backend, loop] of this.loops) {
      if (!present.has(backend)) {
        this.stopLoop(loop);
        this.loops.delete(backend);
      }
    }
    for (const [backend, timer] of this.ejectionTimers) {
      if (!present.has(backend)) {
        clearTimeout(timer);
        this.ejectionTimers.delete(backend);
      }
    }
    if (active === undefined) return;
    for (const backend of backends) {
      if (this.loops.has(backend)) continue;
      const loop: CheckLoop = { timer: undefined, stopped: false, hinted: 0, hintedUp: true };
      this.loops.set(backend, loop);
      // First check soon, spread over a fraction of the interval so a large pool is not
      // probed all at once.
      this.schedule(
        backend,
        loop,
        Math.random() * Math.min(active.interval, 1_000) * active.jitter,
      );
    }
  }

  /**
   * A hint that `backend` is now up (`up`) or down: when the active checks say otherwise, check
   * it now, then every min(interval, 100 ms) until they agree or `rise` / `fall` such checks
   * ran; then back to the interval. Ignored without active checks or for an unknown backend.
   * Returns whether hinted checks were started.
   */
  checkSoon(backend: Backend, up: boolean): boolean {
    const config = this.activeConfig;
    const loop = this.loops.get(backend);
    if (config === undefined || loop === undefined || loop.stopped) return false;
    if (backend.health.activeUp === up) return false;
    loop.hinted = up ? config.rise : config.fall;
    loop.hintedUp = up;
    // No timer: a check is in flight, and its result schedules the next one (soon).
    if (loop.timer !== undefined) {
      clearTimeout(loop.timer);
      this.schedule(backend, loop, 0);
    }
    return true;
  }

  /** The proxy got a response (status) from `backend`. Hot path: a few comparisons. */
  reportResponse(backend: Backend, status: number): void {
    const passive = this.pool.config.health.passive;
    if (status >= 500 && passive.enabled && passive.on.includes('5xx')) {
      this.reportFailureKind(backend, '5xx');
      return;
    }
    const health = backend.health;
    if (health.passiveFailures !== 0 || health.halfOpen) recordSuccess(health);
  }

  /** The proxy's request to `backend` failed with `error` (before a complete response). */
  reportError(backend: Backend, error: AnubisError): void {
    const kind = failureKind(error);
    if (kind !== undefined) this.reportFailureKind(backend, kind);
  }

  private reportFailureKind(backend: Backend, kind: FailureKind): void {
    const passive = this.pool.config.health.passive;
    if (!passive.enabled || !passive.on.includes(kind)) return;
    const health = backend.health;
    const wasHalfOpen = health.halfOpen;
    const cooldown = recordFailure(health, passive, performance.now());
    if (cooldown === 0) return;
    health.unreachable = kind === 'connect';
    health.checkSuccesses = 0;
    backend.ejections++;
    const timer = setTimeout(
      () => this.endEjection(backend, 'cool-down over, half-open'),
      cooldown,
    );
    timer.unref();
    const previous = this.ejectionTimers.get(backend);
    if (previous !== undefined) clearTimeout(previous);
    this.ejectionTimers.set(backend, timer);
    const run = wasHalfOpen ? `${kind} while half-open` : `${passive.failures} × ${kind}`;
    this.update(backend, `passive: ${run}; ejected for ${cooldown} ms`);
  }

  private endEjection(backend: Backend, reason: string): void {
    const timer = this.ejectionTimers.get(backend);
    if (timer !== undefined) clearTimeout(timer);
    this.ejectionTimers.delete(backend);
    if (backend.health.ejectedUntil === 0) return;
    backend.health.ejectedUntil = 0;
    backend.health.halfOpen = true;
    this.update(backend, `passive: ${reason}`);
  }

  private schedule(backend: Backend, loop: CheckLoop, delay: number): void {
    loop.timer = setTimeout(() => {
      loop.timer = undefined;
      const config = this.activeConfig;
      if (loop.stopped || config === undefined) return;
      if (loop.hinted > 0) loop.hinted--;
      probe(backend.url, config).then(
        (result) => {
          if (loop.stopped) return;
          this.applyCheck(backend, config, result);
          if (loop.hinted > 0 && backend.health.activeUp !== loop.hintedUp) {
            this.schedule(backend, loop, Math.min(config.interval, HINTED_CHECK_DELAY_MS));
            return;
          }
          loop.hinted = 0;
          // interval · (1 ± jitter), uniform.
          const spread = 1 + config.jitter * (2 * Math.random() - 1);
          this.schedule(backend, loop, config.interval * spread);
        },
        () => {},
      );
    }, delay);
    loop.timer.unref();
  }

  private applyCheck(backend: Backend, config: ActiveCheckConfig, result: ProbeResult): void {
    const health = backend.health;
    if (result.ok) {
      health.checkFailures = 0;
      health.checkSuccesses++;
      const wasUnreachable = health.unreachable;
      health.unreachable = false;
      if (!health.activeUp && health.checkSuccesses >= config.rise) {
        health.activeUp = true;
        if (health.ejectedUntil !== 0) {
          const timer = this.ejectionTimers.get(backend);
          if (timer !== undefined) clearTimeout(timer);
          this.ejectionTimers.delete(backend);
          health.ejectedUntil = 0;
          health.halfOpen = true;
        }
        this.update(backend, `${CHECK_REASON}${result.reason} (${health.checkSuccesses} in a row)`);
      } else if (health.ejectedUntil !== 0 && health.checkSuccesses >= config.rise) {
        this.endEjection(backend, `${health.checkSuccesses} checks passed (${result.reason})`);
      } else if (wasUnreachable && !backend.healthy) {
        this.pool.refresh(); // reachable again: may count in panic mode
      }
      return;
    }
    health.checkSuccesses = 0;
    health.checkFailures++;
    const unreachableChanged = health.unreachable !== result.unreachable;
    health.unreachable = result.unreachable;
    if (health.activeUp && health.checkFailures >= config.fall) {
      health.activeUp = false;
      this.update(backend, `${CHECK_REASON}${result.reason} (${health.checkFailures} in a row)`);
    } else if (unreachableChanged && !backend.healthy) {
      this.pool.refresh();
    }
  }

  /** Recomputes `healthy` from the state; on a change: slow start, event, refresh. */
  private update(backend: Backend, reason: string): void {
    const health = backend.health;
    const healthy = health.activeUp && health.ejectedUntil === 0;
    health.reason = reason;
    if (healthy === backend.healthy) {
      this.pool.refresh();
      return;
    }
    backend.healthy = healthy;
    if (healthy) {
      if (beginSlowStart(backend, this.pool.config.health.slowStart, performance.now())) {
        this.startRamp();
      }
    }
    this.pool.emit('backend-health', { backend, healthy, reason });
    this.pool.refresh();
  }

  /** Updates ramping backends' effective weights every tick until none ramps. */
  private startRamp(): void {
    if (this.rampTimer !== undefined) return;
    const duration = this.pool.config.health.slowStart;
    const tick = Math.max(SLOW_START_TICK_MS, duration / 50);
    this.rampTimer = setInterval(() => {
      const now = performance.now();
      const slowStart = this.pool.config.health.slowStart;
      let ramping = false;
      for (const backend of this.pool.backends) {
        if (backend.health.ramping && advanceSlowStart(backend, slowStart, now)) ramping = true;
      }
      if (!ramping) {
        clearInterval(this.rampTimer);
        this.rampTimer = undefined;
      }
      this.pool.refresh();
    }, tick);
    this.rampTimer.unref();
  }

  private stopLoop(loop: CheckLoop): void {
    loop.stopped = true;
    if (loop.timer !== undefined) clearTimeout(loop.timer);
  }

  /** Stops every check and timer (the pool is closing). */
  close(): void {
    this.closed = true;
    for (const loop of this.loops.values()) this.stopLoop(loop);
    this.loops.clear();
    for (const timer of this.ejectionTimers.values()) clearTimeout(timer);
    this.ejectionTimers.clear();
    if (this.rampTimer !== undefined) clearInterval(this.rampTimer);
    this.rampTimer = undefined;
  }
}
