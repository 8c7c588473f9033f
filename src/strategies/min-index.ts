/**
 * The smallest of n keys that change one at a time: a binary min-heap over slots 0..n−1 with
 * each slot's heap position, so `set()` moves one slot in O(log n) and `min()` is O(1).
 * least-time keeps the best latency estimate of its pool in one (the reference a degraded
 * backend is measured against). Typed arrays only: no allocation after construction.
 */
export class MinIndex {
  private readonly keys: Float64Array;
  private readonly heap: Int32Array;
  private readonly position: Int32Array;

  /** n slots, every key +∞ until set. */
  constructor(n: number) {
    this.keys = new Float64Array(n).fill(Infinity);
    this.heap = new Int32Array(n);
    this.position = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      this.heap[i] = i;
      this.position[i] = i;
    }
  }

  /** The smallest key (+∞ when empty or every key is +∞). */
  min(): number {
    return this.heap.length === 0 ? Infinity : (this.keys[this.heap[0] as number] as number);
  }

  /** The slot holding the smallest key (−1 when empty). */
  minSlot(): number {
    return this.heap.length === 0 ? -1 : (this.heap[0] as number);
  }

  get(slot: number): number {
    return this.keys[slot] as number;
  }

  /** Sets one slot's key (NaN counts as +∞). */
  set(slot: number, key: number): void {
    const value = key === key ? key : Infinity;
    const old = this.keys[slot] as number;
    if (value === old) return;
    this.keys[slot] = value;
    const at = this.position[slot] as number;
    if (value < old) this.siftUp(at);
    else this.siftDown(at);
  }

  private siftUp(start: number): void {
    const { heap, keys, position } = this;
    const slot = heap[start] as number;
    const key = keys[slot] as number;
    let i = start;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const parentSlot = heap[parent] as number;
      if ((keys[parentSlot] as number) <= key) break;
      heap[i] = parentSlot;
      position[parentSlot] = i;
      i = parent;
    }
    heap[i] = slot;
    position[slot] = i;
  }

  private siftDown(start: number): void {
    const { heap, keys, position } = this;
    const n = heap.length;
    const slot = heap[start] as number;
    const key = keys[slot] as number;
    let i = start;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      const right = child + 1;
      if (
        right < n &&
        (keys[heap[right] as number] as number) < (keys[heap[child] as number] as number)
      )
        child = right;
      const childSlot = heap[child] as number;
      if ((keys[childSlot] as number) >= key) break;
      heap[i] = childSlot;
      position[childSlot] = i;
      i = child;
    }
    heap[i] = slot;
    position[slot] = i;
  }
}
