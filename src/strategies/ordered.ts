/**
 * The engine shared by least-connections and least-time: backends kept in a binary min-heap
 * ordered by a per-strategy key (lower is better), with ties broken by a weighted rotation.
 *
 * Cost. `pick()` reads the top of the heap: O(1). The key of a backend only changes when its
 * stats do (a request starts or ends, a latency sample arrives); the pool forwards those
 * changes to `statsChanged()`, which moves that one backend in the heap: O(log n). So a pool of
 * 1,000 backends costs about 10 comparisons per change instead of a 1,000-backend scan per
 * pick. On a retry (an excluded set is present) the pick scans: O(n), rare by nature.
 *
 * Ties. Equal keys (every backend idle, identical estimates) go to the backend with the
 * smallest virtual turn; a pick advances the winner's turn to max(turn, now) + 1/weight, where
 * `now` is the largest turn handed out so far (start-time fair queuing); equal turns go to the
 * backend picked longest ago. Among tied backends this is a smooth weighted rotation (weights 1,2,3 share 1/6, 2/6, 3/6), never "always the
 * first backend"; a backend that was not picked for a while does not get a burst to catch up.
 */
import {
  isExcluded,
  type BackendView,
  type BackendExplanation,
  type PickContext,
  type Strategy,
} from './types.js';
import { weightOf } from './weight.js';

export abstract class OrderedStrategy implements Strategy {
  abstract readonly name: string;

  protected backends: readonly BackendView[] = [];
  /** Effective weight of each slot when the set was built. */
  protected weights = new Float64Array(0);
  /** Current key of each slot (lower is better). */
  protected keys = new Float64Array(0);
  /** Virtual turn of each slot (tie-break, see above). */
  protected turns = new Float64Array(0);
  private virtualNow = 0;
  /** Pick order of each slot: equal turns go to the one picked longest ago. */
  private stamps = new Float64Array(0);
  private picks = 0;
  /** heap[i]: slot at heap position i; position[slot]: its heap position. */
  private heap = new Int32Array(0);
  private position = new Int32Array(0);
  protected slots = new Map<BackendView, number>();
  /**
   * Keys that can rise with time alone (least-time's in-flight age) are stored as lower
   * bounds; pick() then re-computes the top's key up to this many times, moving it down while
   * it is stale, so the winner is exact whenever a stale top is found within the budget.
   */
  protected rescoreTop = 0;

  /** The backend's key from its live stats; must never be NaN. */
  protected abstract keyOf(backend: BackendView, weight: number): number;

  /** Strategy-specific inputs and human-readable score of one slot, for explain(). */
  protected abstract describe(slot: number): {
    score: number;
    inputs: Record<string, number | string>;
  };

  setBackends(backends: readonly BackendView[]): void {
    const n = backends.length;
    const previous = this.slots;
    const previousTurns = this.turns;
    this.backends = backends;
    this.weights = new Float64Array(n);
    this.keys = new Float64Array(n);
    this.turns = new Float64Array(n);
    this.stamps = new Float64Array(n);
    this.heap = new Int32Array(n);
    this.position = new Int32Array(n);
    this.slots = new Map();
    for (let slot = 0; slot < n; slot++) {
      const backend = backends[slot] as BackendView;
      const weight = weightOf(backend);
      this.weights[slot] = weight;
      this.keys[slot] = this.keyOf(backend, weight);
      // A backend that stays keeps its place in the rotation; a new one starts now.
      const old = previous.get(backend);
      this.turns[slot] =
        old === undefined ? this.virtualNow + 1 / weight : (previousTurns[old] as number);
      this.stamps[slot] = slot - n;
      this.slots.set(backend, slot);
      this.heap[slot] = slot;
      this.position[slot] = slot;
    }
    for (let i = (n >> 1) - 1; i >= 0; i--) this.siftDown(i);
  }

  statsChanged(backend: BackendView): void {
    const slot = this.slots.get(backend);
    if (slot === undefined) return;
    const key = this.keyOf(backend, this.weights[slot] as number);
    if (key === this.keys[slot]) return;
    this.keys[slot] = key;
    this.fix(this.position[slot] as number);
  }

  pick(context: PickContext): BackendView | undefined {
    if (this.heap.length === 0) return undefined;
    let slot = this.heap[0] as number;
    for (let i = 0; i < this.rescoreTop; i++) {
      const key = this.keyOf(this.backends[slot] as BackendView, this.weights[slot] as number);
      const stored = this.keys[slot] as number;
      if (key === stored) break;
      this.keys[slot] = key;
      // Lower than stored: still the top. Higher: it sinks and the new top is checked.
      if (key < stored) break;
      this.fix(0);
      slot = this.heap[0] as number;
    }
    if (context.excluded !== undefined && context.excluded.size > 0) {
      slot = this.bestNotExcluded(context);
      if (slot < 0) return undefined;
    }
    const turn = this.turns[slot] as number;
    if (turn > this.virtualNow) this.virtualNow = turn;
    this.turns[slot] = this.virtualNow + 1 / (this.weights[slot] as number);
    this.stamps[slot] = ++this.picks;
    this.fix(this.position[slot] as number);
    return this.backends[slot];
  }

  explain(): BackendExplanation[] {
    return this.backends.map((backend, slot) => {
      const { score, inputs } = this.describe(slot);
      return {
        backend: backend.id,
        score,
        inputs: { ...inputs, turn: this.turns[slot] as number },
      };
    });
  }

  /** The best slot whose backend is not excluded (linear scan, retries only); -1 if none. */
  private bestNotExcluded(context: PickContext): number {
    let best = -1;
    for (let slot = 0; slot < this.backends.length; slot++) {
      if (isExcluded(context, this.backends[slot] as BackendView)) continue;
      if (best < 0 || this.less(slot, best)) best = slot;
    }
    return best;
  }

  private less(a: number, b: number): boolean {
    const ka = this.keys[a] as number;
    const kb = this.keys[b] as number;
    if (ka !== kb) return ka < kb;
    const ta = this.turns[a] as number;
    const tb = this.turns[b] as number;
    if (ta !== tb) return ta < tb;
    return (this.stamps[a] as number) < (this.stamps[b] as number);
  }

  private fix(i: number): void {
    if (!this.siftUp(i)) this.siftDown(i);
  }

  private siftUp(start: number): boolean {
    const heap = this.heap;
    const slot = heap[start] as number;
    let i = start;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const parentSlot = heap[parent] as number;
      if (!this.less(slot, parentSlot)) break;
      heap[i] = parentSlot;
      this.position[parentSlot] = i;
      i = parent;
    }
    heap[i] = slot;
    this.position[slot] = i;
    return i !== start;
  }

  private siftDown(start: number): void {
    const heap = this.heap;
    const n = heap.length;
    const slot = heap[start] as number;
    let i = start;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      const right = child + 1;
      if (right < n && this.less(heap[right] as number, heap[child] as number)) child = right;
      const childSlot = heap[child] as number;
      if (!this.less(childSlot, slot)) break;
      heap[i] = childSlot;
      this.position[childSlot] = i;
      i = child;
    }
    heap[i] = slot;
    this.position[slot] = i;
  }
}
