/**
 * The open-loop Poisson load generator (bench/tools/poisson-load.c): compiled with gcc into
 * .cache/poisson-load on first use (again only when the source is newer than the binary), and
 * its one-line result parsed into a LoadResult.
 *
 * Why not wrk for Poisson arrivals: wrk's Lua `delay()` is in whole milliseconds and its event
 * loop fires timers on millisecond ticks, so random pauses end together and the requests
 * arrive in clumps (measured: 59% of the gaps under 10 µs at ≈ 4,900 req/s over 50
 * connections, where Poisson gives 4.8%; clumps of up to 15–20 requests).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadResultFromJson, type LatencyJson } from './latency-json.js';
import type { LoadResult } from './load.js';
import { which } from './procs.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const POISSON_SOURCE = join(ROOT, 'bench/tools/poisson-load.c');
export const POISSON_BINARY = join(ROOT, '.cache/poisson-load');

function mtimeMs(path: string): number | undefined {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return undefined;
  }
}

/**
 * Path of the compiled tool, compiling it when the binary is missing or older than its
 * source; undefined when gcc is not installed. A compile error throws (with gcc's output):
 * the source is ours, so a failure is a bug to see, not a reason to fall back quietly.
 */
export function poissonLoadBinary(gcc: string | undefined = which('gcc')): string | undefined {
  const built = mtimeMs(POISSON_BINARY);
  const source = mtimeMs(POISSON_SOURCE);
  if (source === undefined) throw new Error(`${POISSON_SOURCE} is missing`);
  if (built !== undefined && built >= source) return POISSON_BINARY;
  if (gcc === undefined) return undefined;
  mkdirSync(join(ROOT, '.cache'), { recursive: true });
  // Compiled under a name of its own, then renamed: a test and a bench compiling at the same
  // time never run a half-written binary.
  const temp = `${POISSON_BINARY}.${process.pid}.tmp`;
  const out = spawnSync(
    gcc,
    ['-std=c11', '-O2', '-Wall', '-Wextra', '-o', temp, POISSON_SOURCE, '-lm'],
    { encoding: 'utf8' },
  );
  if (out.status !== 0) {
    rmSync(temp, { force: true });
    throw new Error(`gcc failed on ${POISSON_SOURCE}:\n${out.stderr}${out.stdout}`);
  }
  renameSync(temp, POISSON_BINARY);
  return POISSON_BINARY;
}

/** Command-line arguments of the tool for a run. */
export function poissonArgs(options: {
  readonly url: string;
  readonly connections: number;
  readonly rate: number;
  readonly durationS: number;
  readonly timeoutS?: number;
  readonly warmupS?: number;
  readonly seed?: number;
  /** Arm the timer this many µs early and poll until the arrival is due (-S). */
  readonly spinUs?: number;
  /** Write each measured response's scheduled time and latency (ns) to this file (-o). */
  readonly dumpFile?: string;
}): string[] {
  return [
    '-c',
    String(options.connections),
    '-r',
    String(options.rate),
    '-d',
    String(options.durationS),
    '-t',
    String(options.timeoutS ?? 5),
    '-w',
    String(options.warmupS ?? 0),
    '-s',
    String(options.seed ?? 1),
    '-S',
    String(options.spinUs ?? 0),
    ...(options.dumpFile === undefined ? [] : ['-o', options.dumpFile]),
    options.url,
  ];
}

/** The tool's `POISSON_JSON {…}` line, as printed. */
export interface PoissonJson extends LatencyJson {
  /** How late the tool wrote the requests that found an idle connection (its own lag). */
  lateUs: { p99: number; max: number };
  /** Arrivals that found every connection busy and waited in the FIFO backlog. */
  backlog: { waited: number; max: number };
  /** Fraction of consecutive measured writes less than 10 µs apart. */
  gapsBelow10Us: number;
}

/** Extracts the JSON of the tool's output; throws with the output's end when there is none. */
export function parsePoissonJson(output: string): PoissonJson {
  const line = /^POISSON_JSON (\{.*\})\s*$/m.exec(output);
  if (line === null) throw new Error(`poisson-load printed no result:\n${output.slice(-2_000)}`);
  return JSON.parse(line[1] as string) as PoissonJson;
}

/** The tool's result as a LoadResult (µs → ms; connect, read, write and timeout summed). */
export function parsePoissonOutput(output: string): LoadResult {
  const json = parsePoissonJson(output);
  const ms = (v: number): number => v / 1_000;
  return {
    ...loadResultFromJson('poisson-load', json),
    arrivals: {
      lateP99Ms: ms(json.lateUs.p99),
      lateMaxMs: ms(json.lateUs.max),
      backlogWaited: json.backlog.waited,
      backlogMax: json.backlog.max,
      gapsBelow10Us: json.gapsBelow10Us,
    },
  };
}
