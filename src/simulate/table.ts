/**
 * The results table printed by `anubis simulate` (plain text, aligned columns; the same rows
 * appear in the HTML report and, as Markdown, in the docs).
 */
import { describeLatency, formatMs } from './latency.js';
import type { SimulationResult } from './run.js';
import type { BackendProfile, Scenario } from './scenario.js';
import type { RunSummary } from './stats.js';

/** `fast-1 20ms`, `slow 200ms±50ms>down@10s`: a backend's profile in the --backends grammar. */
export function describeProfile(profile: BackendProfile): string {
  const [first, ...changes] = profile.phases;
  const start = first !== undefined && 'latency' in first ? describeLatency(first.latency) : '?';
  const rest = changes.map(
    (p) => `>${'latency' in p ? describeLatency(p.latency) : 'down'}@${formatMs(p.atMs)}`,
  );
  const weight = profile.weight === 1 ? '' : ` (weight ${profile.weight})`;
  return `${profile.id}:${start}${rest.join('')}${weight}`;
}

/** One line describing the scenario. */
export function describeScenario(scenario: Scenario): string {
  return (
    `${scenario.backends.length} backends (${scenario.backends.map(describeProfile).join(', ')}), ` +
    `${scenario.requests} requests per strategy, concurrency ${scenario.concurrency}, seed ${scenario.seed}`
  );
}

function ms(value: number): string {
  if (value >= 1000) return `${(value / 1000).toFixed(2)}s`;
  if (value >= 100) return `${value.toFixed(0)}ms`;
  return `${value.toFixed(1)}ms`;
}

function percent(share: number): string {
  return `${(share * 100).toFixed(1)}%`;
}

/** Header and rows as cells (shared by the text table, the Markdown table and the report). */
export function tableCells(result: SimulationResult): { header: string[]; rows: string[][] } {
  const header = [
    'strategy',
    'req/s',
    'p50',
    'p90',
    'p99',
    'max',
    'errors',
    ...result.scenario.backends.map((b) => b.id),
  ];
  const rows = result.runs.map((run: RunSummary) => [
    run.strategy,
    run.throughput.toFixed(0),
    ms(run.p50Ms),
    ms(run.p90Ms),
    ms(run.p99Ms),
    ms(run.maxMs),
    String(run.errors),
    ...run.shares.map(percent),
  ]);
  return { header, rows };
}

/** A note for runs the time limit stopped (their figures cover the requests that completed). */
export function timeLimitNote(result: SimulationResult): string | undefined {
  const limited = result.runs.filter((r) => r.timeLimited);
  if (limited.length === 0) return undefined;
  return (
    `time limit (${formatMs(result.scenario.timeLimitMs)}) reached by ${limited.map((r) => `${r.strategy} (${r.completed} requests)`).join(', ')}; ` +
    'figures cover the requests that completed'
  );
}

/** Aligned plain-text table; numbers right-aligned, the strategy column left-aligned. */
export function formatTable(result: SimulationResult): string {
  const { header, rows } = tableCells(result);
  const widths = header.map((h, c) =>
    Math.max(h.length, ...rows.map((r) => (r[c] as string).length)),
  );
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, c) =>
        c === 0 ? cell.padEnd(widths[c] as number) : cell.padStart(widths[c] as number),
      )
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** The same table in Markdown (for docs). */
export function formatMarkdownTable(result: SimulationResult): string {
  const { header, rows } = tableCells(result);
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  const rule = `| ${header.map((_, c) => (c === 0 ? '---' : '---:')).join(' | ')} |`;
  return [line(header), rule, ...rows.map(line)].join('\n') + '\n';
}
