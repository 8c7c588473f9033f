/**
 * Child processes of the bench: spawned (pinned to CPUs with taskset when available), waited
 * for until their port answers, measured through /proc, and stopped by PID.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';

/** Absolute path of an executable on PATH, or undefined. */
export function which(command: string): string | undefined {
  const found = spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' });
  const path = found.stdout.trim();
  return found.status === 0 && path !== '' ? path : undefined;
}

export const TASKSET = which('taskset');

export interface Pinning {
  /** CPU list (taskset -c syntax) for the process under test (proxy, or backend when direct). */
  readonly proxy: string | undefined;
  /** CPU list for the load generator and the backends. */
  readonly load: string | undefined;
}

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Output collected so far (last 64 KiB), for error messages. */
  output(): string;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/** Spawns `command args` (through `taskset -c cpus` when cpus is set). */
export function spawnProcess(
  name: string,
  command: string,
  args: readonly string[],
  options: { cpus?: string | undefined; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): ManagedProcess {
  const taskset = TASKSET;
  const child =
    options.cpus !== undefined && taskset !== undefined
      ? spawn(taskset, ['-c', options.cpus, command, ...args], {
          env: options.env ?? process.env,
          cwd: options.cwd,
          stdio: ['ignore', 'pipe', 'pipe'],
        })
      : spawn(command, args, {
          env: options.env ?? process.env,
          cwd: options.cwd,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
  if (child.pid === undefined) throw new Error(`cannot start ${name} (${command})`);
  let output = '';
  const collect = (chunk: Buffer): void => {
    output += chunk.toString();
    if (output.length > 65_536) output = output.slice(-65_536);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const managed: ManagedProcess = {
    name,
    pid: child.pid,
    child,
    output: () => output,
    stop: (graceMs = 5_000) => stopChild(child, graceMs),
  };
  running.add(managed);
  child.once('exit', () => running.delete(managed));
  return managed;
}

/** Every process the bench started that has not exited yet. */
const running = new Set<ManagedProcess>();

/** Stops, by PID, every process the bench started and that is still running (Ctrl-C, failure). */
export async function stopAllProcesses(): Promise<void> {
  await Promise.all([...running].map((p) => p.stop(2_000)));
}

/** Stops one child by its PID: SIGTERM, then SIGKILL after graceMs. */
export async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Resolves once 127.0.0.1:port accepts a TCP connection; rejects after timeoutMs. */
export async function waitForPort(
  port: number,
  timeoutMs = 15_000,
  process?: ManagedProcess,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (process !== undefined && process.child.exitCode !== null) {
      throw new Error(`${process.name} exited (${process.child.exitCode}):\n${process.output()}`);
    }
    if (Date.now() > deadline) {
      throw new Error(
        `port ${port} not listening after ${timeoutMs} ms${process ? `:\n${process.output()}` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A free TCP port on 127.0.0.1 (bound to 0, read, released). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** `n` distinct free ports. */
export async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

/** Memory figures of a process from /proc/PID/status, in KiB (undefined if unreadable). */
export interface ProcMemory {
  /** Resident set size now. */
  readonly rssKiB: number;
  /** Peak resident set size (high-water mark) since the process started. */
  readonly hwmKiB: number;
}

/** Parses the VmRSS and VmHWM lines of a /proc/PID/status text. */
export function parseProcStatus(text: string): ProcMemory | undefined {
  const rss = /^VmRSS:\s+(\d+)\s+kB/m.exec(text);
  const hwm = /^VmHWM:\s+(\d+)\s+kB/m.exec(text);
  if (rss === null || hwm === null) return undefined;
  return { rssKiB: Number(rss[1]), hwmKiB: Number(hwm[1]) };
}

export function readProcMemory(pid: number): ProcMemory | undefined {
  try {
    return parseProcStatus(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** PIDs of the direct children of a process (for cluster workers, nginx workers). */
export function childPids(pid: number): number[] {
  try {
    const text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    return text === '' ? [] : text.split(/\s+/).map(Number);
  } catch {
    return [];
  }
}
