/**
 * CPU time the hypervisor took from this VM's vCPUs ("steal", the 8th number of a cpu line of
 * /proc/stat), read around each measured run. On the shared 2-core VMs the bench runs on, a
 * run during which the host ran something else on our vCPUs has a higher p99 (the more so the
 * busier the proxy keeps its CPU), so a run's steal says how far its tail is the machine's
 * (docs/performance.md, "Steal time"). Linux only: elsewhere there is no /proc/stat and the
 * reading is undefined.
 */
import { readFile } from 'node:fs/promises';

/** /proc/stat counts in USER_HZ ticks, 100 per second on every Linux ABI. */
const MS_PER_TICK = 10;

/** One CPU's counters since boot, in ms. */
export interface CpuTimes {
  /** Time the vCPU was ready to run and the host ran something else. */
  readonly steal: number;
  /** Time it ran: user, nice, system, irq and softirq (idle and iowait left out). */
  readonly busy: number;
}

/**
 * The counters per CPU from the text of /proc/stat: `cpu0 …` lines only (the summed `cpu `
 * line is left out). Lines with fewer than 8 counters (kernels before 2.6.11) give no entry.
 */
export function parseCpuTimes(procStat: string): Map<number, CpuTimes> {
  const times = new Map<number, CpuTimes>();
  for (const line of procStat.split('\n')) {
    const match = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (match === null) continue;
    const ticks = (match[2] as string).trim().split(/\s+/).map(Number);
    if (ticks.length < 8 || ticks.slice(0, 8).some((t) => !Number.isFinite(t))) continue;
    // user nice system idle iowait irq softirq steal …
    const tick = (i: number): number => ticks[i] as number;
    times.set(Number(match[1]), {
      steal: tick(7) * MS_PER_TICK,
      busy: (tick(0) + tick(1) + tick(2) + tick(5) + tick(6)) * MS_PER_TICK,
    });
  }
  return times;
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

/** What the host took from a run's CPUs. */
export interface Steal {
  readonly ms: number;
  /**
   * Steal as a share of the time the CPUs wanted to run (busy + steal). An idle vCPU is not
   * stolen from (it does not ask to run), so a busier process would show more steal in ms
   * under the same contention; the share does not depend on how busy the run kept the CPUs.
   */
  readonly share: number;
}

/** Steal of the given CPUs (all when undefined) between two readings; undefined: no CPU. */
export function stealBetween(
  before: ReadonlyMap<number, CpuTimes>,
  after: ReadonlyMap<number, CpuTimes>,
  cpus: readonly number[] | undefined,
): Steal | undefined {
  let steal = 0;
  let busy = 0;
  let counted = 0;
  for (const [cpu, now] of after) {
    const then = before.get(cpu);
    if (then === undefined || (cpus !== undefined && !cpus.includes(cpu))) continue;
    steal += now.steal - then.steal;
    busy += now.busy - then.busy;
    counted++;
  }
  if (counted === 0) return undefined;
  return { ms: steal, share: steal + busy > 0 ? steal / (steal + busy) : 0 };
}

/**
 * Runs in which the host took at most this share of the time their CPUs wanted to run are
 * "quiet". In 6 rounds of nginx at 5,000 req/s Poisson on 2026-12-08 (2 CPUs busy ≈ 3.5 s
 * of each 4.5 s round), the rounds with 10–40 ms of steal (≤ 1.1%) had p99s of 0.62–0.92 ms,
 * those with 100–140 ms (≈ 3–4%) 2.5–3.8 ms.
 */
export const QUIET_STEAL_SHARE = 0.02;

/** The current reading, or undefined where /proc/stat cannot be read. */
export async function readCpuTimes(): Promise<Map<number, CpuTimes> | undefined> {
  try {
    return parseCpuTimes(await readFile('/proc/stat', 'latin1'));
  } catch {
    return undefined;
  }
}
