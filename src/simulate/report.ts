/**
 * `--report out.html`: one self-contained HTML page (inline CSS and SVG, no script, no
 * network fetch) with the results table and two kinds of chart:
 *
 *   - latency CDF: one line per strategy; x = latency on a log scale, y = fraction of
 *     requests answered within it. Further left is faster; the top edge is the tail.
 *   - traffic share over time: one stacked-area chart per strategy, one band per backend;
 *     the band's height is that backend's share of the answers in each time slice.
 *
 * Every chart is an `<svg data-chart="…">` and every series a `<path data-series="…">`, so a
 * browser test (and a curious reader of the source) can find them.
 */
import { describeScenario, tableCells, timeLimitNote } from './table.js';
import type { SimulationResult } from './run.js';
import type { RunSummary } from './stats.js';

/** Colour-blind-safe palette (Okabe–Ito), then a few more. */
const PALETTE = [
  '#0072B2',
  '#E69F00',
  '#009E73',
  '#CC79A7',
  '#D55E00',
  '#56B4E9',
  '#F0E442',
  '#000000',
  '#999999',
  '#8C564B',
];

function colour(i: number): string {
  return PALETTE[i % PALETTE.length] as string;
}

export function escapeHtml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** Coordinates with two decimals: enough for a screen, short in the file. */
function xy(x: number, y: number): string {
  return `${x.toFixed(2)},${y.toFixed(2)}`;
}

interface Frame {
  readonly width: number;
  readonly height: number;
  readonly left: number;
  readonly right: number;
  readonly top: number;
  readonly bottom: number;
}

function plotWidth(f: Frame): number {
  return f.width - f.left - f.right;
}
function plotHeight(f: Frame): number {
  return f.height - f.top - f.bottom;
}

/** Log-scale ticks 1, 2, 5 × 10^k between lo and hi. */
function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  for (let exp = Math.floor(Math.log10(lo)); exp <= Math.ceil(Math.log10(hi)); exp++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** exp;
      if (v >= lo && v <= hi) ticks.push(v);
    }
  }
  return ticks;
}

/** The largest 1, 2 or 5 × 10^k not above `v`. */
function niceBelow(v: number): number {
  const base = 10 ** Math.floor(Math.log10(v));
  return [5, 2, 1].map((m) => m * base).find((c) => c <= v) ?? base;
}

/** The smallest 1, 2 or 5 × 10^k not below `v`. */
function niceAbove(v: number): number {
  const base = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * base).find((c) => c >= v) ?? 10 * base;
}

function tickLabel(ms: number): string {
  return ms >= 1000 ? `${ms / 1000}s` : `${ms}ms`;
}

function latencyCdfChart(runs: readonly RunSummary[]): string {
  const f: Frame = { width: 760, height: 380, left: 56, right: 28, top: 16, bottom: 44 };
  const all = runs.flatMap((r) => r.cdf.map(([ms]) => ms));
  // The axis spans the samples, widened to 1-2-5 steps: [niceBelow(min), niceAbove(max)].
  const lo = niceBelow(Math.max(0.1, all.length === 0 ? 1 : Math.min(...all)));
  const hi = niceAbove(Math.max(lo * 10, ...all));
  const logLo = Math.log10(lo);
  const logHi = Math.log10(hi);
  const x = (ms: number): number =>
    f.left + ((Math.log10(Math.max(ms, lo)) - logLo) / (logHi - logLo)) * plotWidth(f);
  const y = (fraction: number): number => f.top + (1 - fraction) * plotHeight(f);
  const grid: string[] = [];
  for (const t of logTicks(lo, hi)) {
    grid.push(
      `<line class="grid" x1="${x(t).toFixed(2)}" x2="${x(t).toFixed(2)}" y1="${f.top}" y2="${f.top + plotHeight(f)}"/>`,
      `<text class="tick" x="${x(t).toFixed(2)}" y="${f.top + plotHeight(f) + 16}" text-anchor="middle">${tickLabel(t)}</text>`,
    );
  }
  for (const q of [0, 0.25, 0.5, 0.75, 0.9, 1]) {
    grid.push(
      `<line class="grid" x1="${f.left}" x2="${f.left + plotWidth(f)}" y1="${y(q).toFixed(2)}" y2="${y(q).toFixed(2)}"/>`,
      `<text class="tick" x="${f.left - 6}" y="${(y(q) + 4).toFixed(2)}" text-anchor="end">${q === 0.9 ? 'p90' : `${q * 100}%`}</text>`,
    );
  }
  const series = runs.map((run, i) => {
    const points = run.cdf.map(([ms, fraction]) => xy(x(ms), y(fraction)));
    const d = points.length === 0 ? '' : `M${points.join('L')}`;
    return `<path class="series" data-series="${escapeHtml(run.strategy)}" d="${d}" stroke="${colour(i)}"/>`;
  });
  return `<svg data-chart="latency-cdf" role="img" aria-label="latency CDF per strategy" viewBox="0 0 ${f.width} ${f.height}" width="${f.width}" height="${f.height}">
${grid.join('\n')}
<text class="axis" x="${f.left + plotWidth(f) / 2}" y="${f.height - 6}" text-anchor="middle">latency (log scale)</text>
${series.join('\n')}
</svg>
${legend(runs.map((r) => r.strategy))}`;
}

function shareChart(run: RunSummary, backendIds: readonly string[]): string {
  const f: Frame = { width: 370, height: 210, left: 44, right: 10, top: 10, bottom: 34 };
  const slices = run.sharesOverTime;
  const end = slices.length === 0 ? 1 : (slices[slices.length - 1] as { atMs: number }).atMs;
  const step = end / Math.max(1, slices.length);
  const x = (ms: number): number => f.left + (ms / end) * plotWidth(f);
  const y = (share: number): number => f.top + (1 - share) * plotHeight(f);
  // Stacked bands: backend b spans [Σ_{j<b} share_j, Σ_{j≤b} share_j] in each slice, drawn
  // as steps (a slice's share holds over the whole slice).
  const below = slices.map(() => 0);
  const bands = backendIds.map((id, b) => {
    const upper: string[] = [];
    const lower: string[] = [];
    slices.forEach((slice, s) => {
      const from = x(s * step);
      const to = x((s + 1) * step);
      const base = below[s] as number;
      const top = base + (slice.shares[b] as number);
      upper.push(xy(from, y(top)), xy(to, y(top)));
      lower.unshift(xy(to, y(base)), xy(from, y(base)));
      below[s] = top;
    });
    const d = upper.length === 0 ? '' : `M${upper.join('L')}L${lower.join('L')}Z`;
    return `<path class="band" data-series="${escapeHtml(id)}" d="${d}" fill="${colour(b)}"/>`;
  });
  const grid: string[] = [];
  for (const q of [0, 0.25, 0.5, 0.75, 1]) {
    grid.push(
      `<text class="tick" x="${f.left - 6}" y="${(y(q) + 4).toFixed(2)}" text-anchor="end">${q * 100}%</text>`,
    );
  }
  const seconds = end / 1000;
  const tickStep = seconds <= 5 ? 1 : seconds <= 20 ? 5 : seconds <= 60 ? 10 : 30;
  for (let t = 0; t <= seconds + 1e-9; t += tickStep) {
    grid.push(
      `<text class="tick" x="${x(t * 1000).toFixed(2)}" y="${f.top + plotHeight(f) + 16}" text-anchor="middle">${t}s</text>`,
    );
  }
  return `<figure class="share">
<figcaption>${escapeHtml(run.strategy)}</figcaption>
<svg data-chart="share-over-time" data-strategy="${escapeHtml(run.strategy)}" role="img" aria-label="traffic share per backend over time, ${escapeHtml(run.strategy)}" viewBox="0 0 ${f.width} ${f.height}" width="${f.width}" height="${f.height}">
${bands.join('\n')}
${grid.join('\n')}
<text class="axis" x="${f.left + plotWidth(f) / 2}" y="${f.height - 4}" text-anchor="middle">time since start</text>
</svg>
</figure>`;
}

function legend(names: readonly string[]): string {
  const items = names.map(
    (name, i) =>
      `<li><span class="swatch" style="background:${colour(i)}"></span>${escapeHtml(name)}</li>`,
  );
  return `<ul class="legend">${items.join('')}</ul>`;
}

function htmlTable(result: SimulationResult): string {
  const { header, rows } = tableCells(result);
  const head = header.map((h) => `<th>${escapeHtml(h)}</th>`).join('');
  const body = rows
    .map((row) => `<tr>${row.map((cell) => `<td>${escapeHtml(cell)}</td>`).join('')}</tr>`)
    .join('\n');
  return `<table><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

const STYLE = `
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 860px; color: #1b1b1b; background: #fff; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
p.scenario { color: #444; margin: 0 0 16px; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
svg { display: block; max-width: 100%; height: auto; }
.grid { stroke: #e4e4e4; stroke-width: 1; }
.tick { font-size: 11px; fill: #666; } .axis { font-size: 12px; fill: #333; }
.series { fill: none; stroke-width: 2; }
.band { stroke: #fff; stroke-width: 0.5; }
.legend { list-style: none; padding: 0; margin: 6px 0 0; display: flex; flex-wrap: wrap; gap: 6px 16px; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 6px; vertical-align: -1px; }
.shares { display: flex; flex-wrap: wrap; gap: 8px 20px; }
figure.share { margin: 0; } figcaption { font-weight: 600; margin-bottom: 2px; }
.note { color: #666; font-size: 12px; }
`;

/** The whole page. */
export function renderReport(result: SimulationResult): string {
  const backendIds = result.scenario.backends.map((b) => b.id);
  const shares = result.runs.map((run) => shareChart(run, backendIds)).join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>anubis simulate: ${escapeHtml(result.runs.map((r) => r.strategy).join(', '))}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>anubis simulate</h1>
<p class="scenario">${escapeHtml(describeScenario(result.scenario))}</p>
${htmlTable(result)}
${timeLimitNote(result) === undefined ? '' : `<p class="note">${escapeHtml(timeLimitNote(result) as string)}</p>`}
<p class="note">Latencies are measured by the load generator (request sent → last byte), successful answers only; errors are counted apart. Shares are of successful answers.</p>
<h2>Latency CDF per strategy</h2>
${latencyCdfChart(result.runs)}
<h2>Traffic share per backend over time</h2>
${legend(backendIds)}
<div class="shares">
${shares}
</div>
</body>
</html>
`;
}
