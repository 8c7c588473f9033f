/**
 * Load generation: wrk when installed (C, one thread pinned to the load CPU, a Lua script that
 * prints percentiles as JSON), otherwise autocannon in a child process. Both are closed-loop
 * generators with a fixed number of connections, bounded by a duration and a kill timer.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { spawnProcess, which } from './procs.js';

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
   * Pause of each connection between a response and its next request, in ms: the offered
   * load is then at most connections × 1000 / paceMs req/s, so latency is measured below
   * every peer's capacity instead of at saturation. The pause is not part of the latency.
   */
  readonly paceMs?: number;
  /**
   * How the pause is drawn: 'fixed' keeps every connection in step (its requests arrive as
   * a burst, one per connection, every paceMs); 'random' draws each pause from an exponential
   * distribution of mean paceMs, so requests arrive independently (close to Poisson), as
   * from many unrelated users. wrk only; autocannon paces at a fixed rate either way.
   */
  readonly pacing?: 'fixed' | 'random';
}

export interface LoadResult {
  readonly tool: 'wrk' | 'autocannon';
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
}

interface WrkJson {
  requests: number;
  durationUs: number;
  bytes: number;
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
  latencyUs: {
    min: number;
    mean: number;
    max: number;
    p50: number;
    p90: number;
    p99: number;
    p999: number;
  };
}

/** Extracts the result from wrk's output (the `WRK_JSON {…}` line printed by report.lua). */
export function parseWrkOutput(output: string): LoadResult {
  const line = /^WRK_JSON (\{.*\})\s*$/m.exec(output);
  if (line === null) throw new Error(`wrk printed no result:\n${output.slice(-2_000)}`);
  const json = JSON.parse(line[1] as string) as WrkJson;
  const durationS = json.durationUs / 1e6;
  const us = (v: number): number => v / 1_000;
  const e = json.errors;
  return {
    tool: 'wrk',
    requests: json.requests,
    durationS,
    bytes: json.bytes,
    errors: e.connect + e.read + e.write + e.timeout,
    badStatus: e.status,
    rps: durationS > 0 ? json.requests / durationS : 0,
    mbps: durationS > 0 ? json.bytes / durationS / 1e6 : 0,
    latencyMs: {
      mean: us(json.latencyUs.mean),
      p50: us(json.latencyUs.p50),
      p90: us(json.latencyUs.p90),
      p99: us(json.latencyUs.p99),
      p999: us(json.latencyUs.p999),
      max: us(json.latencyUs.max),
    },
  };
}

/** Runs one load test and resolves with its result; the generator is pinned to `cpus`. */
export async function runLoad(
  spec: LoadSpec,
  cpus: string | undefined,
  autocannonScript: string,
): Promise<LoadResult> {
  const killAfterMs = (spec.durationS + (spec.timeoutS ?? 5) + 15) * 1_000;
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
