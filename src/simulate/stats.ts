/**
 * Figures of one strategy's run, computed from the load generator's samples: throughput,
 * latency percentiles (of successful answers; errors are counted apart, since a fast 502
 * would otherwise flatter a strategy), each backend's share, the latency CDF and the share
 * of each backend over time, for the report's charts.
 */
import type { LoadResult } from './load-generator.js';

/** Points of the CDF kept for charts (quantiles on an even grid). */
export const CDF_POINTS = 200;
/** Time slices of the share-over-time chart. */
export const SHARE_SLICES = 30;

export interface RunSummary {
  readonly strategy: string;
  readonly completed: number;
  readonly errors: number;
  readonly durationMs: number;
  /** Completed requests per second. */
  readonly throughput: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Answers per backend, in scenario order. */
  readonly answers: readonly number[];
  /** Share of successful answers per backend (0..1), in scenario order. */
  readonly shares: readonly number[];
  /** [latency ms, cumulative fraction] pairs, increasing. */
  readonly cdf: readonly (readonly [number, number])[];
  /** Per time slice: end of slice (ms) and share of each backend among that slice's answers. */
  readonly sharesOverTime: readonly { readonly atMs: number; readonly shares: readonly number[] }[];
  readonly timeLimited: boolean;
}

/** Nearest-rank percentile of sorted values: the smallest value ≥ p of the samples. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.max(1, Math.ceil(p * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1] as number;
}

export function summarize(strategy: string, result: LoadResult, backendCount: number): RunSummary {
  const answers = new Array<number>(backendCount).fill(0);
  const successful = new Float64Array(result.completed - result.errors);
  let n = 0;
  for (let i = 0; i < result.completed; i++) {
    const b = result.backend[i] as number;
    if (b < 0) continue;
    answers[b] = (answers[b] as number) + 1;
    successful[n++] = result.latencyMs[i] as number;
  }
  successful.sort();
  const ok = successful.length;
  const cdf: [number, number][] = [];
  for (let q = 0; q < CDF_POINTS && ok > 0; q++) {
    const fraction = (q + 1) / CDF_POINTS;
    cdf.push([percentile(successful, fraction), fraction]);
  }
  return {
    strategy,
    completed: result.completed,
    errors: result.errors,
    durationMs: result.durationMs,
    throughput: result.durationMs > 0 ? (result.completed * 1000) / result.durationMs : 0,
    p50Ms: percentile(successful, 0.5),
    p90Ms: percentile(successful, 0.9),
    p99Ms: percentile(successful, 0.99),
    maxMs: ok === 0 ? 0 : (successful[ok - 1] as number),
    answers,
    shares: answers.map((a) => (ok === 0 ? 0 : a / ok)),
    cdf,
    sharesOverTime: sharesOverTime(result, backendCount),
    timeLimited: result.timeLimited,
  };
}

/** Splits the run into SHARE_SLICES equal slices and gives each backend's share in each. */
function sharesOverTime(result: LoadResult, backendCount: number): RunSummary['sharesOverTime'] {
  const slice = result.durationMs / SHARE_SLICES;
  if (!(slice > 0)) return [];
  const counts = Array.from({ length: SHARE_SLICES }, () =>
    new Array<number>(backendCount).fill(0),
  );
  for (let i = 0; i < result.completed; i++) {
    const b = result.backend[i] as number;
    if (b < 0) continue;
    const s = Math.min(SHARE_SLICES - 1, Math.floor((result.endedAtMs[i] as number) / slice));
    const row = counts[s] as number[];
    row[b] = (row[b] as number) + 1;
  }
  return counts.map((row, s) => {
    const total = row.reduce((sum, c) => sum + c, 0);
    return { atMs: (s + 1) * slice, shares: row.map((c) => (total === 0 ? 0 : c / total)) };
  });
}
