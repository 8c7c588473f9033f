/**
 * An upstream pool: its backends, which of them are eligible, and the strategy that picks
 * among the eligible ones. Health checks, the admin API and reloads change backend state and
 * then call `refresh()`, which recomputes the eligible set and hands it to the strategy: the
 * request path only calls `pick()`.
 *
 * A strategy that throws or returns a backend outside the eligible set (custom strategies can)
 * never fails the request: the pick falls back to round robin and is counted.
 */
import { EventEmitter } from 'node:events';
import type { PoolConfig } from '../config/schema.js';
import { RoundRobinStrategy } from '../strategies/round-robin.js';
import type { BackendView, PickContext, Strategy } from '../strategies/types.js';
import { Backend, backendIdFromUrl } from './backend.js';
import { backendConnectTls, type BackendTlsFiles } from './backend-tls.js';
import { computeEligible, type PoolMode } from '../health/eligibility.js';
import { HealthMonitor, type BackendHealthChange } from '../health/monitor.js';

export interface PoolEvents {
  /** The strategy failed (threw or returned an ineligible backend); round robin was used. */
  'strategy-error': [error: unknown];
  /** A backend went up or down (active check, passive ejection, half-open), with the reason. */
  'backend-health': [change: BackendHealthChange];
  /** The pool entered or left panic, backup or down mode (src/health/eligibility.ts). */
  mode: [change: { mode: PoolMode; previous: PoolMode; healthyShare: number }];
  /** A backend joined the pool at runtime (DNS discovery, admin API, reload). */
  'backend-added': [backend: Backend];
  /** A backend left the pool at runtime; it drains in the background. */
  'backend-removed': [backend: Backend];
}

export class UpstreamPool extends EventEmitter<PoolEvents> {
  readonly name: string;
  config: PoolConfig;
  backends: Backend[] = [];
  /** Backends the strategy may currently pick from. */
  eligible: readonly Backend[] = [];
  strategy: Strategy;
  /** Picks where the strategy failed and round robin stood in. */
  strategyErrors = 0;
  /** Requests answered 503 because no backend was eligible (admin API, metrics). */
  unrouted = 0;
  /** normal, panic (too few healthy: balancing over all reachable), backup, or down. */
  mode: PoolMode = 'normal';
  /** Requests waiting for a free backend (src/proxy/concurrency-gate.ts; admin gauge). */
  queueLength = 0;
  /** Active checks, passive health, slow start (src/health/monitor.ts). */
  readonly health: HealthMonitor = new HealthMonitor(this);

  private readonly fallback = new RoundRobinStrategy();
  private readonly eligibleSet = new Set<BackendView>();

  /**
   * `tlsFiles`: the CA files named by the pool's `tls` settings, read beforehand
   * (readBackendTlsFiles), so that building backends stays synchronous.
   */
  constructor(
    name: string,
    config: PoolConfig,
    strategy: Strategy,
    tlsFiles: BackendTlsFiles = new Map(),
  ) {
    super();
    this.name = name;
    this.config = config;
    this.strategy = strategy;
    this.backends = config.backends.map((b) => createBackend(b, config, tlsFiles));
    this.refresh();
  }

  /** Recomputes the eligible set and rebuilds the strategy. Call after any state change. */
  refresh(): void {
    const computed = computeEligible(this.backends, this.config.health.panicThreshold);
    const eligible = computed.eligible;
    this.eligible = eligible;
    if (computed.mode !== this.mode) {
      const previous = this.mode;
      this.mode = computed.mode;
      this.emit('mode', { mode: computed.mode, previous, healthyShare: computed.healthyShare });
    }
    this.health.sync(this.backends);
    this.eligibleSet.clear();
    for (const backend of eligible) this.eligibleSet.add(backend);
    this.fallback.setBackends(eligible);
    try {
      this.strategy.setBackends(eligible);
    } catch (error) {
      this.strategyErrors++;
      this.emit('strategy-error', error);
    }
    const listener = this.strategy.statsChanged === undefined ? undefined : this.onStatsChanged;
    for (const backend of this.backends) backend.statsListener = listener;
  }

  /** Forwards a backend's stats change to the strategy; a throw is counted, never fatal. */
  private readonly onStatsChanged = (backend: Backend): void => {
    try {
      this.strategy.statsChanged?.(backend);
    } catch (error) {
      this.strategyErrors++;
      this.emit('strategy-error', error);
    }
  };

  /** Chooses a backend for a request, or undefined if none is eligible. */
  pick(context: PickContext): Backend | undefined {
    if (this.eligible.length === 0) return undefined;
    let chosen: BackendView | undefined;
    try {
      chosen = this.strategy.pick(context);
    } catch (error) {
      return this.fallbackPick(context, error);
    }
    if (chosen !== undefined && this.eligibleSet.has(chosen)) return chosen as Backend;
    if (chosen === undefined && this.eligible.every((b) => context.excluded?.has(b) === true)) {
      return undefined;
    }
    return this.fallbackPick(
      context,
      new Error(
        `strategy ${this.strategy.name} returned ${chosen === undefined ? 'no backend' : 'an ineligible backend'}`,
      ),
    );
  }

  private fallbackPick(context: PickContext, error: unknown): Backend | undefined {
    this.strategyErrors++;
    this.emit('strategy-error', error);
    return this.fallback.pick(context) as Backend | undefined;
  }

  /**
   * Adds a backend at runtime (admin API, DNS discovery, reload). Returns the existing one if
   * a backend with the same id is already in the pool.
   */
  addBackend(backend: Backend): Backend {
    const existing = this.backend(backend.id);
    if (existing !== undefined) return existing;
    this.backends = [...this.backends, backend];
    this.refresh();
    this.emit('backend-added', backend);
    return backend;
  }

  /**
   * Removes a backend at runtime: it leaves the eligible set at once, its in-flight requests
   * finish (at most `drainMs`, then they are cut) and its connection pool is closed.
   * Resolves when it is gone; false if no such backend.
   */
  async removeBackend(id: string, drainMs = 10_000): Promise<boolean> {
    const backend = this.backend(id);
    if (backend === undefined) return false;
    this.backends = this.backends.filter((b) => b !== backend);
    this.refresh();
    this.emit('backend-removed', backend);
    await retireBackend(backend, drainMs);
    return true;
  }

  /** Finds a backend by id. */
  backend(id: string): Backend | undefined {
    return this.backends.find((b) => b.id === id);
  }

  /** Closes every backend's connection pool, letting in-flight requests finish. */
  async close(): Promise<void> {
    this.health.close();
    await Promise.all(this.backends.map((b) => b.close()));
  }
}

export function createBackend(
  config: PoolConfig['backends'][number],
  pool: PoolConfig,
  tlsFiles: BackendTlsFiles = new Map(),
): Backend {
  const backend = new Backend({
    tls: backendConnectTls(config, pool, tlsFiles),
    id: config.name ?? backendIdFromUrl(config.url),
    url: config.url,
    weight: config.weight,
    connectTimeoutMs: pool.timeouts.connect,
    keepAliveTimeoutMs: pool.keepAliveTimeout,
    client: pool.client,
  });
  backend.backup = config.backup;
  return backend;
}

/** Lets a removed backend's in-flight requests finish (at most drainMs), then closes it. */
export async function retireBackend(backend: Backend, drainMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), drainMs);
    timer.unref();
  });
  const outcome = await Promise.race([backend.close().then(() => 'closed' as const), deadline]);
  clearTimeout(timer);
  if (outcome === 'timeout') await backend.destroy();
}
