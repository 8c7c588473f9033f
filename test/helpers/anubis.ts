/**
 * Starting anubis in tests: in-process through the library API (fast, port 0), or as the real
 * CLI in a child process (through tsx, from source).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { createLoadBalancer, type LoadBalancer } from '../../src/load-balancer.js';
import type { ConfigInput } from '../../src/config/schema.js';

export const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface RunningAnubis {
  readonly balancer: LoadBalancer;
  /** `http://127.0.0.1:PORT` of the first listener. */
  readonly url: string;
  close(): Promise<void>;
}

/** Starts an in-process load balancer with one pool in front of `backends`. */
export async function startAnubis(
  backends: readonly (string | Record<string, unknown>)[],
  pool: Record<string, unknown> = {},
  extra: Record<string, unknown> = {},
): Promise<RunningAnubis> {
  const config = {
    workers: 1,
    log: { level: 'silent' },
    listeners: [{ address: '127.0.0.1:0', pool: 'test' }],
    pools: {
      test: {
        backends: backends.map((b) => (typeof b === 'string' ? { url: b } : b)),
        ...pool,
      },
    },
    ...extra,
  } as unknown as ConfigInput;
  const balancer = await createLoadBalancer(config);
  const address = balancer.addresses()[0];
  if (address === undefined) throw new Error('no listener');
  return {
    balancer,
    url: `http://127.0.0.1:${address.port}`,
    close: () => balancer.close(1_000),
  };
}

export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the CLI to completion (for commands that exit by themselves). */
export async function runCli(args: readonly string[], timeoutMs = 20_000): Promise<CliRun> {
  const child = spawnCli(args);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** Spawns the CLI (from source, through tsx). The caller must stop it. */
export function spawnCli(args: readonly string[]): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Waits until the child's stdout+stderr contain a match for `pattern`; returns the match. */
export function waitForOutput(
  child: ChildProcess,
  pattern: RegExp,
  timeoutMs = 15_000,
): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const onData = (d: Buffer): void => {
      seen += d.toString();
      const match = seen.match(pattern);
      if (match !== null) {
        cleanup();
        resolve(match);
      }
    };
    const onExit = (code: number | null): void => {
      cleanup();
      reject(
        new Error(`process exited (${String(code)}) before ${String(pattern)}; output:\n${seen}`),
      );
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out waiting for ${String(pattern)}; output:\n${seen}`));
    }, timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onData);
      child.off('exit', onExit);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.on('exit', onExit);
  });
}

/** Sends SIGTERM and waits for exit; SIGKILL after `graceMs`. Returns the exit code. */
export async function stopChild(child: ChildProcess, graceMs = 10_000): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = once(child, 'exit') as Promise<[number | null]>;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  const [code] = await exited;
  clearTimeout(timer);
  return code;
}
