/**
 * least-connections: the backend with the fewest requests in flight relative to its weight.
 *
 *   key_i = active_i / weight_i        (lower wins; nginx least_conn, HAProxy leastconn)
 *
 * Ties (e.g. every backend idle) are broken by a smooth weighted rotation, so with sequential
 * traffic weights 1,2,3 still get 1/6, 2/6, 3/6 and no backend is "always first". Under
 * concurrent load a slow backend accumulates in-flight requests and receives fewer new ones.
 *
 * Backends are kept in a heap updated when a backend's `active` changes: pick() is O(1) and
 * each request start/end is O(log n) (see ./ordered.ts).
 */
import { OrderedStrategy } from './ordered.js';
import type { BackendView, Strategy } from './types.js';

export class LeastConnectionsStrategy extends OrderedStrategy {
  readonly name: string = 'least-connections';

  protected keyOf(backend: BackendView, weight: number): number {
    return backend.active / weight;
  }

  protected describe(slot: number): { score: number; inputs: Record<string, number | string> } {
    const backend = this.backends[slot] as BackendView;
    const weight = this.weights[slot] as number;
    return { score: backend.active / weight, inputs: { active: backend.active, weight } };
  }
}

export function createLeastConnections(): Strategy {
  return new LeastConnectionsStrategy();
}
