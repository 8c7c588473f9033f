/**
 * CPU time the hypervisor took from this VM's vCPUs ("steal", the 8th number of a cpu line of
 * /proc/stat), read around each measured run. On the shared 2-core VMs the bench runs on, a
 * run during which the host ran something else on our vCPUs has a higher p99 for every peer
 * alike, so a run's steal says how far its tail is the machine's (docs/performance.md,
 * "Steal time"). Linux only: elsewhere there is no /proc/stat and the reading is undefined.
 */
import { readFile } from 'node:fs/promises';

/** /proc/stat counts in USER_HZ ticks, 100 per second on every Linux ABI. */
const MS_PER_TICK = 10;

/**
 * Steal per CPU in ms since boot, from the text of /proc/stat: `cpu0 …` lines only (the
 * summed `cpu ` line is left out). Lines with fewer than 8 counters (kernels before 2.6.11)
 * give no entry.
 */
export function parseSteal(procStat: string): Map<number, number> {
  const steal = new Map<number, number>();
  for (const line of procStat.split('\n')) {
    const match = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (match === null) continue;
    const counters = (match[2] as string).trim().split(/\s+/);
    const ticks = Number(counters[7]);
    if (counters.length >= 8 && Number.isFinite(ticks)) {
      steal.set(Number(match[1]), ticks * MS_PER_TICK);
    }
  }
  return steal;
}

/** The CPU numbers of a taskset list such as "0", "0,1" or "0-3" (undefined: all). */
export function cpuNumbers(list: string | undefined): number[] | undefined {
  if (list === undefined) return undefined;
  const cpus: number[] = [];
  for (const part of list.split(',')) {
    const range = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (range === null) throw new Error(`not a CPU list: ${JSON.stringify(list)}`);
    const from = Number(range[1]);
    const to = range[2] === undefined ? from : Number(range[2]);
    for (let cpu = from; cpu <= to; cpu++) cpus.push(cpu);
  }
  return cpus;
}

/** Steal of the given CPUs (all when undefined) between two readings, and how many CPUs. */
export function stealBetween(
  before: ReadonlyMap<number, number>,
  after: ReadonlyMap<number, number>,
  cpus: readonly number[] | undefined,
): { readonly ms: number; readonly cpus: number } {
  let ms = 0;
  let counted = 0;
  for (const [cpu, total] of after) {
    if (cpus !== undefined && !cpus.includes(cpu)) continue;
    ms += total - (before.get(cpu) ?? total);
    counted++;
  }
  return { ms, cpus: counted };
}

/**
 * Runs in which the hypervisor took at most this share of the CPU time of the run's CPUs are
 * "quiet". Over a 5 s run on 2 CPUs, 0.5% is 50 ms (five ticks). In 6 rounds of nginx at 5,000
 * req/s Poisson on 2026-12-08, the rounds with 10–40 ms of steal had p99s of 0.62–0.92 ms,
 * those with 100–140 ms 2.5–3.8 ms.
 */
export const QUIET_STEAL_SHARE = 0.005;

/** The current reading, or undefined where /proc/stat cannot be read. */
export async function readSteal(): Promise<Map<number, number> | undefined> {
  try {
    return parseSteal(await readFile('/proc/stat', 'latin1'));
  } catch {
    return undefined;
  }
}
