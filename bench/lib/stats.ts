/**
 * Aggregation of repeated benchmark runs: each configuration runs several times, interleaved
 * with the others, and is reported as median with min and max (the median resists the odd
 * run disturbed by another process; min/max show how noisy the machine was).
 */

export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly runs: number;
}

/** Median of a list (mean of the two middle values for an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/** Median, min and max of the finite values in a list. */
export function spread(values: readonly number[]): Spread {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, runs: 0 };
  return {
    median: median(finite),
    min: Math.min(...finite),
    max: Math.max(...finite),
    runs: finite.length,
  };
}

/**
 * Nearest-rank percentile (q in 0..100) of an already sorted list: the smallest value with at
 * least q% of the samples at or below it.
 */
export function percentileSorted(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  // The epsilon keeps 99.9% of 1000 at rank 999 despite 0.999 × 1000 = 999.0000000000001.
  const rank = Math.ceil((q / 100) * sorted.length - 1e-9);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number;
}

/** a / b, or NaN when either is not a finite number or b is 0. */
export function ratio(a: number, b: number): number {
  return Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : Number.NaN;
}

/**
 * What `value` adds over `base`, as a multiple of what `reference` adds over it: NaN when the
 * reference adds nothing (or measured below the base), where a ratio would only say how
 * close to zero the reference came (e.g. −159 for a reference 0.005 ms under the base).
 */
export function addedRatio(value: number, reference: number, base: number): number {
  return reference - base > 0 ? ratio(value - base, reference - base) : Number.NaN;
}

/**
 * Order of runs for `configs` repeated `repeats` times, interleaved (A B C A B C …) so slow
 * drifts of the machine (another job starting, thermal limits) hit every configuration alike.
 */
export function interleave<T>(configs: readonly T[], repeats: number): T[] {
  const order: T[] = [];
  for (let round = 0; round < repeats; round++) order.push(...configs);
  return order;
}

/** Order of runs for `configs` repeated `repeats` times, each config's back to back (A A B B …). */
export function backToBack<T>(configs: readonly T[], repeats: number): T[] {
  return configs.flatMap((config) => Array.from({ length: repeats }, () => config));
}

/** Formats a number for a table: thousands separators, `digits` decimals, `-` for NaN. */
export function formatNumber(value: number, digits = 0): string {
  if (!Number.isFinite(value)) return '-';
  return value.toLocaleString('en-US', {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/** `median (min–max)` of a spread. */
export function formatSpread(s: Spread, digits = 0): string {
  if (s.runs === 0) return '-';
  if (s.runs === 1) return formatNumber(s.median, digits);
  return `${formatNumber(s.median, digits)} (${formatNumber(s.min, digits)}–${formatNumber(s.max, digits)})`;
}

/** A plain-text table with right-aligned columns after the first (also valid Markdown). */
export function formatTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    `| ${cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number)))
      .join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? `${'-'.repeat(w + 2)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}
