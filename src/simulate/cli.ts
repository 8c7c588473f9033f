/**
 * `anubis simulate`: compares strategies on a latency profile, on this machine, with the real
 * proxy. Flags override the scenario file; the table goes to stdout, progress to stderr (a
 * bar on a terminal, one line per strategy otherwise), the HTML report to `--report FILE`.
 */
import { writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { readConfigFile } from '../config/load.js';
import { parseDuration } from '../config/units.js';
import type { CliArgs } from '../cli/args.js';
import { UsageError } from '../errors.js';
import type { LoadProgress } from './load-generator.js';
import { renderReport } from './report.js';
import { runSimulation, type SimulationObserver } from './run.js';
import { DEFAULT_BACKENDS, parseBackendsFlag, validateScenario } from './scenario.js';
import { describeScenario, formatTable, timeLimitNote } from './table.js';

/** The flags of `anubis simulate`, as parsed by the CLI (raw strings). */
export interface SimulateFlags {
  readonly scenario: string | undefined;
  readonly backends: string | undefined;
  readonly concurrency: string | undefined;
  readonly requests: string | undefined;
  readonly strategies: string | undefined;
  readonly seed: string | undefined;
  readonly timeLimit: string | undefined;
  readonly report: string | undefined;
}

/**
 * Flags of the other commands that `simulate` would otherwise ignore: most are a letter away
 * from a simulate flag (`--backend` for `--backends`), so they are errors that say which.
 */
export function checkSimulateUsage(args: CliArgs): void {
  const misplaced: [boolean, string][] = [
    [args.config !== undefined, '--config (simulate reads --scenario FILE)'],
    [args.backends.length > 0, '--backend (simulate takes --backends "fast:20ms,slow:200ms")'],
    [args.strategy !== undefined, '--strategy (simulate takes --strategies a,b,c)'],
    [args.listen !== undefined, '--listen (simulate listens on loopback ports of its own)'],
    [args.workers !== undefined, '--workers (simulate runs one worker per strategy)'],
    [args.healthCheck !== undefined, '--health-check (set pool.health in a --scenario file)'],
    [args.admin !== undefined, '--admin'],
  ];
  const found = misplaced.filter(([present]) => present).map(([, text]) => text);
  if (found.length > 0) {
    throw new UsageError(`simulate does not take ${found.join(', ')}; run anubis --help`);
  }
}

/** The simulate flags are errors with any other command. */
export function rejectSimulateFlags(command: string, flags: SimulateFlags): void {
  const names: Record<keyof SimulateFlags, string> = {
    scenario: '--scenario',
    backends: '--backends',
    concurrency: '--concurrency',
    requests: '--requests',
    strategies: '--strategies',
    seed: '--seed',
    timeLimit: '--time-limit',
    report: '--report',
  };
  const given = (Object.keys(names) as (keyof SimulateFlags)[]).filter(
    (key) => flags[key] !== undefined,
  );
  if (given.length > 0) {
    const hint = given.includes('backends') ? ' (did you mean --backend URL?)' : '';
    throw new UsageError(
      `${given.map((key) => names[key]).join(', ')} ${given.length === 1 ? 'belongs' : 'belong'} to anubis simulate, not ${command}${hint}`,
    );
  }
}

/** Redraws of the progress bar per second on a terminal. */
const PROGRESS_INTERVAL_MS = 100;
const BAR_WIDTH = 24;

function wholeNumber(flag: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n < min || n > max) {
    throw new UsageError(
      `--${flag} expects a whole number from ${min} to ${max}, found ${JSON.stringify(value)}`,
    );
  }
  return n;
}

/** The raw scenario: the file (if any), then the flags over it. */
async function rawScenario(
  flags: SimulateFlags,
): Promise<{ raw: Record<string, unknown>; source: string }> {
  let raw: Record<string, unknown> = {};
  let source = 'command line';
  if (flags.scenario !== undefined) {
    const parsed = await readConfigFile(flags.scenario);
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new UsageError(
        `${flags.scenario}: expected a mapping of scenario keys (see docs/simulate.md)`,
      );
    }
    raw = { ...(parsed as Record<string, unknown>) };
    source = flags.scenario;
  }
  if (flags.backends !== undefined) raw.backends = parseBackendsFlag(flags.backends);
  else if (raw.backends === undefined) raw.backends = parseBackendsFlag(DEFAULT_BACKENDS);
  if (flags.concurrency !== undefined)
    raw.concurrency = wholeNumber('concurrency', flags.concurrency, 1, 1024);
  if (flags.requests !== undefined)
    raw.requests = wholeNumber('requests', flags.requests, 1, 1_000_000);
  if (flags.seed !== undefined) raw.seed = wholeNumber('seed', flags.seed, 0, 4_294_967_295);
  if (flags.timeLimit !== undefined) {
    if (parseDuration(flags.timeLimit) === undefined) {
      throw new UsageError(
        `--time-limit expects a duration such as 30s, found ${JSON.stringify(flags.timeLimit)}`,
      );
    }
    raw.timeLimit = flags.timeLimit;
  }
  if (flags.strategies !== undefined) {
    const names = flags.strategies.split(',').map((s) => s.trim());
    if (names.some((n) => n === '')) {
      throw new UsageError(
        `--strategies expects names separated by commas, found ${JSON.stringify(flags.strategies)}`,
      );
    }
    raw.strategies = names;
  }
  return { raw, source };
}

/** Progress on stderr: a redrawn bar on a terminal, one line per strategy otherwise. */
function progressReporter(stream: NodeJS.WriteStream): SimulationObserver & { stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  let startedAt = 0;
  const stop = (): void => {
    if (timer !== undefined) clearInterval(timer);
    timer = undefined;
  };
  return {
    onRunStart(strategy, index, count, progress: LoadProgress) {
      startedAt = performance.now();
      if (!stream.isTTY) return;
      const draw = (): void => {
        const fraction = Math.min(1, progress.completed / progress.total);
        const filled = Math.round(fraction * BAR_WIDTH);
        stream.write(
          `\r[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${String(Math.floor(fraction * 100)).padStart(3)}%  ${strategy} (${index + 1}/${count})  ${progress.completed}/${progress.total}\x1b[K`,
        );
      };
      draw();
      timer = setInterval(draw, PROGRESS_INTERVAL_MS);
    },
    onRunEnd(summary, index, count) {
      stop();
      const seconds = ((performance.now() - startedAt) / 1000).toFixed(1);
      const line = `simulate: ${summary.strategy} (${index + 1}/${count}) done: ${summary.completed} requests in ${seconds}s${summary.timeLimited ? ' (time limit reached)' : ''}`;
      stream.write(stream.isTTY ? `\r${line}\x1b[K\n` : `${line}\n`);
    },
    stop,
  };
}

export async function runSimulateCommand(args: CliArgs): Promise<number> {
  checkSimulateUsage(args);
  const flags = args.simulate;
  const { raw, source } = await rawScenario(flags);
  const scenario = validateScenario(raw, source);
  const baseDir = flags.scenario === undefined ? process.cwd() : dirname(resolve(flags.scenario));
  process.stdout.write(`anubis simulate: ${describeScenario(scenario)}\n`);
  process.stdout.write(`strategies: ${scenario.strategies.map((s) => s.label).join(', ')}\n\n`);
  const reporter = progressReporter(process.stderr);
  let result;
  try {
    result = await runSimulation(scenario, { source, baseDir, observer: reporter });
  } finally {
    reporter.stop();
  }
  process.stdout.write(`\n${formatTable(result)}`);
  const note = timeLimitNote(result);
  if (note !== undefined) process.stdout.write(`${note}\n`);
  if (flags.report !== undefined) {
    await writeFile(flags.report, renderReport(result));
    process.stdout.write(`\nreport written to ${flags.report}\n`);
  }
  return 0;
}
