/**
 * A cumulative latency histogram with fixed bucket bounds, cheap enough for every request:
 * recording is a binary search over ~30 bounds and one increment in a preallocated array (no
 * allocation). Counts only grow; rates and recent quantiles come from the difference of two
 * snapshots taken off the hot path (src/admin/sampler.ts), which is also how Prometheus reads
 * a histogram.
 *
 * Bounds follow a 1-1.5-2-3-5-7.5 series so the Prometheus subset can use round numbers;
 * the widest relative step is 1.5x, so a quantile interpolated inside a bucket is off by at
 * most half a bucket (≤ 25%), usually far less.
 */

/** Upper bounds in milliseconds (inclusive); one more bucket (+Inf) follows the last. */
export const LATENCY_BOUNDS_MS: readonly number[] = [
  0.5, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1_000, 1_500,
  2_000, 3_000, 5_000, 7_500, 10_000, 15_000, 30_000, 60_000,
];

/** The bounds exposed to Prometheus (a subset of LATENCY_BOUNDS_MS, in ms). */
export const PROMETHEUS_BOUNDS_MS: readonly number[] = [
  1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000,
];

const BOUNDS = Float64Array.from(LATENCY_BOUNDS_MS);

/** Index of the first bucket whose bound is ≥ ms (BOUNDS.length for +Inf). */
export function bucketIndex(ms: number): number {
  let low = 0;
  let high = BOUNDS.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if ((BOUNDS[mid] as number) < ms) low = mid + 1;
    else high = mid;
  }
  return low;
}

export class LatencyHistogram {
  /** counts[i]: samples in bucket i (not cumulative); the last entry is +Inf. */
  readonly counts = new Float64Array(BOUNDS.length + 1);
  count = 0;
  sumMs = 0;

  record(ms: number): void {
    (this.counts[bucketIndex(ms)] as number)++;
    this.count++;
    this.sumMs += ms;
  }
}

/**
 * The q-quantile (0..1) of per-bucket counts, interpolated linearly inside the bucket that
 * holds it; undefined without samples. The +Inf bucket reports the last finite bound.
 */
export function quantileFromBuckets(counts: ArrayLike<number>, q: number): number | undefined {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i] as number;
  if (total <= 0) return undefined;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    const inBucket = counts[i] as number;
    if (inBucket <= 0) continue;
    if (seen + inBucket >= rank) {
      if (i >= BOUNDS.length) return BOUNDS[BOUNDS.length - 1];
      const lower = i === 0 ? 0 : (BOUNDS[i - 1] as number);
      const upper = BOUNDS[i] as number;
      return lower + ((upper - lower) * (rank - seen)) / inBucket;
    }
    seen += inBucket;
  }
  return BOUNDS[BOUNDS.length - 1];
}
