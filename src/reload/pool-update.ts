/**
 * Applying a new pool configuration to a running pool in place, so that backends that stay
 * keep their Backend objects: health, active counters, latency EWMA and histogram, slow-start
 * progress and their keep-alive connections. Only what changed is touched:
 *
 *   - a backend is "the same" when its id (name, or host:port) and URL are unchanged; its
 *     weight is updated (effective weight scaled by the same factor, so a slow start in
 *     progress continues from where it was) and its administrative state goes back to
 *     `enabled`: runtime changes (admin API) not written to the file end with a reload;
 *   - new backends are added, removed ones leave the eligible set at once and drain up to
 *     `drainMs` (src/upstream/pool.ts removeBackend);
 *   - the strategy object is replaced only when its name or options changed, so a smooth
 *     round robin keeps its position otherwise; it is rebuilt (setBackends) either way.
 *
 * Settings of kept backends' connection pools (timeouts.connect, keepAliveTimeout, client, tls) are
 * fixed when the backend is created: a change applies to backends added afterwards.
 */
import type { PoolConfig, StrategyConfig } from '../config/schema.js';
import type { Logger } from '../logging/logger.js';
import type { Strategy } from '../strategies/types.js';
import { backendIdFromUrl, type Backend } from '../upstream/backend.js';
import type { BackendTlsFiles } from '../upstream/backend-tls.js';
import { createBackend, type UpstreamPool } from '../upstream/pool.js';
import { discoveredFrom, stillDiscoveredBy } from '../discovery/dns.js';
import { discoveryFor } from '../discovery/start.js';

export interface PoolUpdate {
  readonly added: string[];
  readonly removed: string[];
  readonly kept: string[];
}

/** True when two strategy settings build the same strategy (name and options). */
export function sameStrategy(a: StrategyConfig, b: StrategyConfig): boolean {
  return a.name === b.name && stableJson(a.options) === stableJson(b.options);
}

function stableJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([x], [y]) => (x < y ? -1 : 1)))
      : v,
  );
}

/** Sets a backend's weight; a slow start in progress keeps its progress ratio. */
export function setBackendWeight(backend: Backend, weight: number): void {
  if (backend.weight === weight) return;
  const progress = backend.weight > 0 ? backend.effectiveWeight / backend.weight : 1;
  backend.weight = weight;
  backend.effectiveWeight = Math.max(progress * weight, Number.MIN_VALUE);
}

/**
 * Updates `pool` to `config`. `strategy` is the new strategy object when the strategy
 * setting changed, undefined to keep the current one.
 */
export function updatePoolInPlace(
  pool: UpstreamPool,
  config: PoolConfig,
  strategy: Strategy | undefined,
  drainMs: number,
  logger: Logger,
  tlsFiles: BackendTlsFiles,
): PoolUpdate {
  const update: PoolUpdate = { added: [], removed: [], kept: [] };
  const wanted = new Map<string, PoolConfig['backends'][number]>();
  for (const backend of config.backends) {
    wanted.set(backend.name ?? backendIdFromUrl(backend.url), backend);
  }
  pool.config = config;
  if (strategy !== undefined) pool.strategy = strategy;
  // Backends found by DNS discovery stay while their entry does (src/discovery/); the entry's
  // discovery, restarted by the load balancer if its settings changed, adopts them.
  const entries = new Map(wanted);
  for (const backend of pool.backends) {
    const discoveredBy = stillDiscoveredBy(backend, entries, (e) => discoveryFor(e) !== undefined);
    if (discoveredBy !== undefined) {
      setBackendWeight(backend, discoveredBy.weight);
      backend.adminState = 'enabled';
      update.kept.push(backend.id);
      wanted.delete(discoveredBy.name ?? backendIdFromUrl(discoveredBy.url));
      continue;
    }
    if (discoveredFrom(backend) !== undefined) {
      update.removed.push(backend.id);
      continue;
    }
    const next = wanted.get(backend.id);
    if (next !== undefined && next.url === backend.url) {
      setBackendWeight(backend, next.weight);
      backend.backup = next.backup;
      // The file is the source of truth: a runtime drain/disable ends with a reload.
      backend.adminState = 'enabled';
      update.kept.push(backend.id);
      wanted.delete(backend.id);
    } else {
      update.removed.push(backend.id);
    }
  }
  for (const id of update.removed) {
    pool.removeBackend(id, drainMs).catch((error: unknown) => {
      logger.error({ pool: pool.name, backend: id, err: error }, 'error while retiring backend');
    });
  }
  for (const [id, backendConfig] of wanted) {
    pool.addBackend(createBackend(backendConfig, config, tlsFiles));
    update.added.push(id);
  }
  pool.refresh();
  return update;
}
