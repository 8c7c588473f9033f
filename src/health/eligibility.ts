/**
 * The eligible set of a pool: which backends the strategy may pick from, given health, admin
 * state, backup flags and the panic threshold. Computed off the hot path by
 * UpstreamPool.refresh().
 *
 * Only enabled backends count (draining and disabled ones never take new requests). Of
 * those, with P = primary backends, H = healthy primaries:
 *
 *   normal  H ≠ ∅ and |H| ≥ panicThreshold · |P|      → H
 *   panic   H ≠ ∅ and |H| < panicThreshold · |P|      → H ∪ {unhealthy primaries still reachable}
 *   backup  H = ∅ and some backup is healthy           → healthy backups
 *   down    H = ∅ and no healthy backup                → ∅ (the proxy answers 503 at once)
 *
 * Panic exists because health verdicts can be wrong together (a shared dependency of the
 * health endpoint, passive 5xx caused by bad requests): when only a few backends still look
 * healthy, sending them everything would overload them too, so the load is spread again
 * (Envoy's panic threshold, 50 % by default). "Reachable" leaves out backends whose last
 * failure was a connection that could not be made (refused, unreachable, connect timeout): a
 * backend failing its check or answering 5xx may still serve real traffic, a closed port
 * cannot. Unlike Envoy, panic needs one healthy primary: when every backend is down the pool
 * answers 503 with Retry-After at once, rather than trying backends it believes are down.
 */
import type { Backend } from '../upstream/backend.js';

export type PoolMode = 'normal' | 'panic' | 'backup' | 'down';

export interface EligibleSet {
  readonly eligible: Backend[];
  readonly mode: PoolMode;
  /** Healthy primaries / enabled primaries (1 when there is no primary). */
  readonly healthyShare: number;
}

export function computeEligible(backends: readonly Backend[], panicThreshold: number): EligibleSet {
  const healthy: Backend[] = [];
  const reachable: Backend[] = [];
  const healthyBackups: Backend[] = [];
  let primaries = 0;
  for (const backend of backends) {
    if (backend.adminState !== 'enabled') continue;
    if (backend.backup) {
      if (backend.healthy) healthyBackups.push(backend);
      continue;
    }
    primaries++;
    if (backend.healthy) healthy.push(backend);
    else if (!backend.health.unreachable) reachable.push(backend);
  }
  const healthyShare = primaries === 0 ? 1 : healthy.length / primaries;
  if (healthy.length > 0) {
    if (panicThreshold > 0 && healthyShare < panicThreshold && reachable.length > 0) {
      return { eligible: inOrder(backends, healthy, reachable), mode: 'panic', healthyShare };
    }
    return { eligible: healthy, mode: 'normal', healthyShare };
  }
  if (healthyBackups.length > 0) return { eligible: healthyBackups, mode: 'backup', healthyShare };
  return { eligible: [], mode: 'down', healthyShare };
}

/** The union of two subsets of `backends`, in the pool's order (strategies see a stable order). */
function inOrder(backends: readonly Backend[], a: Backend[], b: Backend[]): Backend[] {
  const wanted = new Set([...a, ...b]);
  return backends.filter((backend) => wanted.has(backend));
}

/**
 * For a retry that found every eligible backend already tried: a healthy backup backend not
 * tried yet (the least busy), as nginx's proxy_next_upstream moves on to the backup servers
 * once the primaries are exhausted. Undefined if there is none.
 */
export function untriedBackup(
  backends: readonly Backend[],
  excluded: ReadonlySet<unknown> | undefined,
): Backend | undefined {
  let best: Backend | undefined;
  for (const backend of backends) {
    if (!backend.backup || !backend.healthy || backend.adminState !== 'enabled') continue;
    if (excluded?.has(backend) === true) continue;
    if (best === undefined || backend.active < best.active) best = backend;
  }
  return best;
}
