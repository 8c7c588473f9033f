/**
 * prefer-zone: an example custom strategy for anubis.
 *
 * Sends each request to a backend in the balancer's own zone (cheaper, closer) unless every
 * local backend is busy, and otherwise to the best backend anywhere. "Best" is least-time's
 * score, computed from the stats anubis keeps on every backend:
 *
 *   estimate = latencyEwmaMs · 2^(−(now − lastSampleAt) / 1000)   (an old estimate fades)
 *   score    = estimate · (active + 1) / effectiveWeight          (lower wins)
 *
 * A backend without a latency sample yet scores 0 while idle (it gets a probe) and +∞ while
 * its probe is in flight. Local backends are "busy" when each has at least `spillover`
 * requests in flight per unit of weight; then remote backends compete on score too.
 *
 * A backend's zone is the part of its name before the first "/":
 *
 *   pools:
 *     web:
 *       strategy: { name: ./prefer-zone.ts, zone: eu-west, spillover: 8 }
 *       backends:
 *         - { url: http://10.0.0.1:8080, name: eu-west/app-1 }
 *         - { url: http://10.1.0.1:8080, name: us-east/app-1 }
 *
 * In your own project, import the types from the package: `import type { Strategy } from
 * 'anubis'`. (This example lives in the anubis repository, so it imports the sources.)
 *
 * The contract (src/strategies/types.ts): setBackends() runs off the hot path when the set of
 * eligible backends changes; pick() runs per request, is synchronous, must not do I/O and
 * should not allocate; never return a backend in `context.excluded`. If pick() throws or
 * returns nothing while a backend could take the request, anubis logs it, counts it and uses
 * round robin for that request.
 */
import type {
  BackendExplanation,
  BackendView,
  PickContext,
  Strategy,
  StrategyFactory,
} from '../../src/index.js';

export interface PreferZoneOptions {
  /** This balancer's zone. */
  readonly zone: string;
  /** In-flight requests per unit of weight at which a local backend counts as busy. */
  readonly spillover?: number | undefined;
}

/** The zone of a backend: its name up to the first "/" ("" if it has none). */
export function zoneOf(backend: BackendView): string {
  const slash = backend.id.indexOf('/');
  return slash < 0 ? '' : backend.id.slice(0, slash);
}

function score(backend: BackendView, now: number): number {
  if (backend.latencySamples === 0) return backend.active === 0 ? 0 : Infinity;
  const estimate = backend.latencyEwmaMs * 2 ** (-(now - backend.lastSampleAt) / 1000);
  return (estimate * (backend.active + 1)) / backend.effectiveWeight;
}

export class PreferZoneStrategy implements Strategy {
  readonly name = 'prefer-zone';
  readonly zone: string;
  readonly spillover: number;
  private backends: readonly BackendView[] = [];
  /** local[i] = 1 if backend i is in our zone (computed once per set change). */
  private local = new Uint8Array(0);
  /** Where the scan starts; it moves every pick so that equal scores take turns. */
  private offset = 0;

  constructor(options: PreferZoneOptions) {
    this.zone = options.zone;
    this.spillover = options.spillover ?? 8;
  }

  setBackends(backends: readonly BackendView[]): void {
    this.backends = backends;
    this.local = Uint8Array.from(backends, (b) => (zoneOf(b) === this.zone ? 1 : 0));
    this.offset = 0;
  }

  pick(context: PickContext): BackendView | undefined {
    const n = this.backends.length;
    if (n === 0) return undefined;
    const now = performance.now();
    this.offset = this.offset + 1 >= n ? 0 : this.offset + 1;
    let bestLocal: BackendView | undefined;
    let bestLocalScore = Infinity;
    let best: BackendView | undefined;
    let bestScore = Infinity;
    let localBusy = true;
    for (let k = 0; k < n; k++) {
      const i = this.offset + k < n ? this.offset + k : this.offset + k - n;
      const backend = this.backends[i] as BackendView;
      if (context.excluded?.has(backend) === true) continue;
      const s = score(backend, now);
      if (best === undefined || s < bestScore) {
        best = backend;
        bestScore = s;
      }
      if (this.local[i] === 1) {
        if (backend.active / backend.effectiveWeight < this.spillover) localBusy = false;
        if (bestLocal === undefined || s < bestLocalScore) {
          bestLocal = backend;
          bestLocalScore = s;
        }
      }
    }
    return bestLocal !== undefined && !localBusy ? bestLocal : best;
  }

  explain(): BackendExplanation[] {
    const now = performance.now();
    return this.backends.map((backend, i) => ({
      backend: backend.id,
      score: Math.min(score(backend, now), Number.MAX_SAFE_INTEGER),
      inputs: {
        zone: zoneOf(backend),
        local: this.local[i] === 1 ? 'yes' : 'no',
        active: backend.active,
        weight: backend.effectiveWeight,
        latencyEwmaMs: backend.latencyEwmaMs,
      },
    }));
  }
}

/** The factory anubis calls with the options written next to `name` in the configuration. */
const createStrategy: StrategyFactory = (options) => {
  const { zone, spillover } = options;
  if (typeof zone !== 'string' || zone === '') {
    throw new TypeError('prefer-zone: option zone must be a non-empty string');
  }
  if (spillover !== undefined && (typeof spillover !== 'number' || !(spillover > 0))) {
    throw new TypeError('prefer-zone: option spillover must be a number > 0');
  }
  return new PreferZoneStrategy({ zone, spillover });
};

export default createStrategy;
