/**
 * The open-loop Poisson load generator (bench/tools/poisson-load.c): compiled with gcc into
 * .cache/poisson-load on first use (bench/lib/c-tool.ts), and its one-line result parsed into
 * a LoadResult.
 *
 * Why not wrk for Poisson arrivals: wrk's Lua `delay()` is in whole milliseconds and its event
 * loop fires timers on millisecond ticks, so random pauses end together and the requests
 * arrive in clumps (measured: 59% of the gaps under 10 µs at ≈ 4,900 req/s over 50
 * connections, where Poisson gives 4.8%; clumps of up to 15–20 requests).
 */
import { compiledTool } from './c-tool.js';
import { loadResultFromJson, type LatencyJson } from './latency-json.js';
import type { LoadResult } from './load.js';

/** The compiled tool (bench/lib/c-tool.ts); undefined when gcc is not installed. */
export function poissonLoadBinary(gcc?: string): string | undefined {
  return compiledTool('poisson-load', ['-lm'], gcc);
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
