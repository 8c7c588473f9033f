/**
 * Load generation: wrk when installed (C, one thread pinned to the load CPU, a Lua script that
 * prints percentiles as JSON), otherwise autocannon in a child process. Both are closed-loop
 * generators with a fixed number of connections, bounded by a duration and a kill timer.
 * Poisson arrivals (`pacing: 'poisson'`) come from bench/tools/poisson-load.c instead, an
 * open-loop generator compiled with gcc (bench/lib/poisson.ts); without gcc, wrk's random
 * millisecond pauses stand in and the result's tool says so.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadResultFromJson, type LatencyJson } from './latency-json.js';
import { parsePoissonOutput, poissonArgs, poissonLoadBinary } from './poisson.js';
import { spawnProcess, which } from './procs.js';
import type { Steal } from './steal.js';

export const WRK = which('wrk');
const WRK_SCRIPT = fileURLToPath(new URL('./report.lua', import.meta.url));

export interface LoadSpec {
  readonly url: string;
  readonly connections: number;
  readonly durationS: number;
  readonly method?: string;
  /** Request body size in bytes (sent with every request). */
  readonly bodyBytes?: number;
  /** Send `Connection: close`: a new TCP connection per request. */
  readonly close?: boolean;
  /** Per-request timeout in seconds (a timed-out request counts as an error). */
  readonly timeoutS?: number;
  /**
   * Pause of each connection between a response and its next request, in ms (pacing 'fixed'
   * and 'random'): the offered load is then at most connections × 1000 / paceMs req/s, so
   * latency is measured below every peer's capacity instead of at saturation. The pause is
   * not part of the latency.
   */
  readonly paceMs?: number;
  /**
   * How requests are paced:
   * - 'fixed' (wrk): every connection pauses paceMs; the connections stay in step and their
   *   requests arrive as a burst, one per connection, every paceMs.
   * - 'random' (wrk): each pause is exponential with mean paceMs. NOT Poisson arrivals: wrk's
   *   delay() is in whole ms and its timers fire on ms ticks, so the pauses that end in the
   *   same tick send together (measured at ≈ 4,900 req/s over 50 connections: 59% of the
   *   gaps under 10 µs, Poisson 4.8%; clumps of up to 15–20 requests).
   * - 'poisson': open loop, one Poisson process of `rate` arrivals/s over the connections,
   *   scheduled to the ns, latency counted from each request's scheduled time
   *   (bench/tools/poisson-load.c). Without gcc: 'random' with the same mean rate, and the
   *   result's tool is 'wrk-ms-pauses'.
   * autocannon (no wrk) paces at a fixed rate per connection whatever is asked.
   */
  readonly pacing?: 'fixed' | 'random' | 'poisson';
  /** Arrivals per second over all connections, for pacing 'poisson'. */
  readonly rate?: number;
}

/** What the open-loop generator says about its own arrivals (poisson-load only). */
export interface ArrivalCheck {
  /** p99 and max of how late requests that found an idle connection were written. */
  readonly lateP99Ms: number;
  readonly lateMaxMs: number;
  /** Arrivals that found every connection busy and waited, and the longest such queue. */
  readonly backlogWaited: number;
  readonly backlogMax: number;
  /** Fraction of consecutive writes < 10 µs apart (Poisson: 1 − exp(−rate × 10 µs)). */
  readonly gapsBelow10Us: number;
}

export interface LoadResult {
  /**
   * 'wrk-ms-pauses': Poisson pacing was asked but gcc is missing, so wrk's random ms pauses
   * generated it (clumped arrivals: its p99 is not an added-latency figure).
   */
  readonly tool: 'wrk' | 'autocannon' | 'poisson-load' | 'wrk-ms-pauses';
  readonly requests: number;
  readonly durationS: number;
  readonly bytes: number;
  /** Socket errors and timeouts. */
  readonly errors: number;
  /** Responses with status >= 400 (wrk counts > 399). */
  readonly badStatus: number;
  readonly rps: number;
  /** Response bytes per second, in MB/s (10^6). */
  readonly mbps: number;
  readonly latencyMs: {
    readonly mean: number;
    readonly p50: number;
    readonly p90: number;
    readonly p99: number;
    readonly p999: number;
    readonly max: number;
  };
  readonly arrivals?: ArrivalCheck;
  /**
   * What the hypervisor took from the proxy's and the load's CPUs during the run
   * (bench/lib/steal.ts); absent where /proc/stat cannot be read.
   */
  readonly steal?: Steal;
}

/** Extracts the result from wrk's output (the `WRK_JSON {…}` line printed by report.lua). */
export function parseWrkOutput(output: string): LoadResult {
  const line = /^WRK_JSON (\{.*\})\s*$/m.exec(output);
  if (line === null) throw new Error(`wrk printed no result:\n${output.slice(-2_000)}`);
  return loadResultFromJson('wrk', JSON.parse(line[1] as string) as LatencyJson);
}

/**
 * How early (µs) poisson-load arms its timer before each arrival, polling the rest of the way
 * (its -S): BENCH_POISSON_SPIN_US, default 0, the timer alone. Polling makes the writes
 * punctual on a CPU of its own (lateness p50 37 → 0 µs), but the load CPU also runs the
 * backends, and next to a busy process a poller loses its turn for milliseconds: the
 * arrivals clumped again (docs/performance.md).
 */
const POISSON_SPIN_US = Number(process.env.BENCH_POISSON_SPIN_US ?? 0) || 0;

/** The compiled Poisson tool (compiled on first use), or undefined without gcc. */
let poissonBinary: string | undefined | null = null;
export function poissonTool(): string | undefined {
  if (poissonBinary === null) poissonBinary = poissonLoadBinary();
  return poissonBinary;
}

/** Runs one load test and resolves with its result; the generator is pinned to `cpus`. */
export async function runLoad(
  spec: LoadSpec,
  cpus: string | undefined,
  autocannonScript: string,
): Promise<LoadResult> {
  const killAfterMs = (spec.durationS + (spec.timeoutS ?? 5) + 15) * 1_000;
  if (spec.pacing === 'poisson') {
    const rate = spec.rate ?? 0;
    if (!(rate > 0)) throw new Error(`pacing 'poisson' needs a rate > 0 (got ${spec.rate})`);
    if (spec.method !== undefined && spec.method !== 'GET')
      throw new Error(`pacing 'poisson' sends GETs only (asked: ${spec.method})`);
    if ((spec.bodyBytes ?? 0) > 0 || spec.close === true)
      throw new Error("pacing 'poisson': no request body, keep-alive connections only");
    const tool = poissonTool();
    if (tool !== undefined) {
      const proc = spawnProcess(
        'poisson-load',
        tool,
        poissonArgs({
          url: spec.url,
          connections: spec.connections,
          rate,
          durationS: spec.durationS,
          timeoutS: spec.timeoutS ?? 5,
          spinUs: POISSON_SPIN_US,
        }),
        { cpus },
      );
      await waitForExit(proc.child, killAfterMs);
      return parsePoissonOutput(proc.output());
    }
    // No gcc: the same mean rate from wrk's exponential ms pauses (clumped; said in `tool`).
    const paced: LoadSpec = {
      ...spec,
      pacing: 'random',
      paceMs: (spec.connections * 1_000) / rate,
    };
    const result = await runLoad(paced, cpus, autocannonScript);
    return result.tool === 'wrk' ? { ...result, tool: 'wrk-ms-pauses' } : result;
  }
  if (WRK !== undefined) {
    const proc = spawnProcess(
      'wrk',
      WRK,
      [
        '-t1',
        `-c${spec.connections}`,
        `-d${spec.durationS}s`,
        `--timeout`,
        `${spec.timeoutS ?? 5}s`,
        '-s',
        WRK_SCRIPT,
        spec.url,
      ],
      {
        cpus,
        env: {
          ...process.env,
          WRK_METHOD: spec.method ?? 'GET',
          WRK_BODY_BYTES: String(spec.bodyBytes ?? 0),
          WRK_CLOSE: spec.close === true ? '1' : '0',
          WRK_DELAY_MS: String(spec.paceMs ?? 0),
          WRK_DELAY_RANDOM: spec.pacing === 'random' ? '1' : '0',
        },
      },
    );
    await waitForExit(proc.child, killAfterMs);
    return parseWrkOutput(proc.output());
  }
  const proc = spawnProcess(
    'autocannon',
    process.execPath,
    [autocannonScript, JSON.stringify(spec)],
    { cpus },
  );
  await waitForExit(proc.child, killAfterMs);
  const line = /^AUTOCANNON_JSON (\{.*\})\s*$/m.exec(proc.output());
  if (line === null)
    throw new Error(`autocannon printed no result:\n${proc.output().slice(-2_000)}`);
  return JSON.parse(line[1] as string) as LoadResult;
}

function waitForExit(child: ChildProcess, killAfterMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) {
      resolve();
      return;
    }
    const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
