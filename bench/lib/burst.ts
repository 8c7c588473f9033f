/**
 * The burst tool (bench/tools/connect-burst.c, compiled by bench/lib/c-tool.ts): N
 * connections opened at once, one GET each; its one-line JSON result.
 */
import { execFile } from 'node:child_process';
import { TASKSET } from './procs.js';

/** What connect-burst prints (latencies over the connections answered 2xx). */
export interface BurstResult {
  readonly n: number;
  readonly ok: number;
  readonly errors: number;
  readonly bad: number;
  readonly timeouts: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/** Runs one burst of `n` connections to `url` (pinned to `cpus` when set). */
export function runBurst(
  tool: string,
  cpus: string | undefined,
  n: number,
  url: string,
): Promise<BurstResult> {
  const args = ['-n', String(n), '-t', '10', url];
  const [command, argv] =
    cpus !== undefined && TASKSET !== undefined
      ? [TASKSET, ['-c', cpus, tool, ...args]]
      : [tool, args];
  return new Promise((resolve, reject) => {
    execFile(command, argv, { timeout: 20_000 }, (error, stdout) => {
      if (error !== null) reject(new Error(`connect-burst failed: ${error.message}`));
      else resolve(JSON.parse(stdout.trim()) as BurstResult);
    });
  });
}
