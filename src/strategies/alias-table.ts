/**
 * Weighted random choice in O(1): Vose's alias method. Built in O(n) from the weights (in
 * setBackends, off the hot path); each draw is one uniform number, one table lookup and one
 * comparison, so a pool of 1,000 backends costs the same per pick as a pool of 3.
 *
 * Table: column i keeps probability[i] of landing on i itself, else alias[i]. Drawing u ∈ [0,1):
 *   x = u·n, i = ⌊x⌋, f = x − i  →  f < probability[i] ? i : alias[i]
 * P(i) = (probability[i] + Σ_{j: alias[j]=i} (1 − probability[j])) / n = w_i / Σw.
 */
export class AliasTable {
  private probability = new Float64Array(0);
  private alias = new Int32Array(0);

  get size(): number {
    return this.alias.length;
  }

  /** Rebuilds the table for `weights` (all > 0). */
  build(weights: readonly number[]): void {
    const n = weights.length;
    this.probability = new Float64Array(n);
    this.alias = new Int32Array(n);
    if (n === 0) return;
    const total = weights.reduce((sum, w) => sum + w, 0);
    const scaled = weights.map((w) => (w * n) / total);
    const small: number[] = [];
    const large: number[] = [];
    scaled.forEach((p, i) => (p < 1 ? small : large).push(i));
    while (small.length > 0 && large.length > 0) {
      const s = small.pop() as number;
      const l = large.pop() as number;
      this.probability[s] = scaled[s] as number;
      this.alias[s] = l;
      scaled[l] = (scaled[l] as number) + (scaled[s] as number) - 1;
      (scaled[l] < 1 ? small : large).push(l);
    }
    // Leftovers are 1 up to rounding error.
    for (const i of large) this.probability[i] = 1;
    for (const i of small) this.probability[i] = 1;
  }

  /** Index drawn with probability w_i / Σw, from one uniform number `u` ∈ [0, 1). */
  draw(u: number): number {
    const x = u * this.alias.length;
    const i = x | 0;
    return x - i < (this.probability[i] as number) ? i : (this.alias[i] as number);
  }
}
