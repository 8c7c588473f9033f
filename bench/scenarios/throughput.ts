/**
 * Throughput and added latency: every peer in front of the same backend (nginx `return 200`
 * when installed, else the Node backend), loaded by wrk (or autocannon) with a fixed number of
 * connections, or for the added-latency case by the open-loop Poisson generator
 * (bench/tools/poisson-load.c). Runs are interleaved across peers (A B C A B C …) and
 * summarised as medians.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { runLoad, type LoadResult, type LoadSpec } from '../lib/load.js';
import {
  HAPROXY,
  NGINX,
  startAnubis,
  startFastifyPeer,
  startHaproxy,
  startHttpProxyPeer,
  startNginxProxy,
  type BenchContext,
  type RunningPeer,
  startFastBackend,
} from '../lib/peers.js';
import { backToBack, interleave, spread, type Spread } from '../lib/stats.js';
import { cpuNumbers, readCpuTimes, stealBetween } from '../lib/steal.js';

export interface ThroughputCase {
  readonly id: string;
  readonly title: string;
  readonly path: string;
  readonly connections: number;
  readonly method?: string;
  readonly bodyBytes?: number;
  readonly close?: boolean;
  /** Pause per connection between requests (LoadSpec.paceMs): latency below saturation. */
  readonly paceMs?: number;
  /**
   * LoadSpec.pacing: fixed wrk pauses (bursts), exponential wrk pauses (ms-quantised:
   * clumps), or open-loop Poisson arrivals at `rate`.
   */
  readonly pacing?: 'fixed' | 'random' | 'poisson';
  /** Arrivals per second over all connections (pacing 'poisson'). */
  readonly rate?: number;
  /**
   * Order of the runs: 'interleaved' (default: A B C A B C …, so machine drift hits every
   * peer alike) or 'consecutive' (each peer's warm-up and runs back to back: A A A B B B …,
   * so no peer sits idle between its runs).
   */
  readonly order?: 'interleaved' | 'consecutive';
  /** The headline figure: requests/s, or response MB/s for large bodies. */
  readonly metric: 'rps' | 'mbps';
}

export const THROUGHPUT_CASES: readonly ThroughputCase[] = [
  {
    id: 'small-ka-50',
    title: 'small GET, keep-alive, 50 conns',
    path: '/small',
    connections: 50,
    metric: 'rps',
  },
  {
    // Added latency as users below saturation see it: requests arrive as one Poisson process
    // at 5,000 req/s (exponential gaps, scheduled to the ns), each on whichever of 50
    // keep-alive connections has been idle longest, and latency runs from each request's
    // scheduled arrival (open loop: bench/tools/poisson-load.c). Without gcc it falls back to
    // wrk's ms pauses (the clumped case below) and the runs' tool says 'wrk-ms-pauses'.
    id: 'small-paced-50',
    title: 'small GET, keep-alive, 50 conns, Poisson arrivals at 5,000 req/s',
    path: '/small',
    connections: 50,
    pacing: 'poisson',
    rate: 5_000,
    metric: 'rps',
  },
  {
    // small-paced-50 in steady state: each peer's warm-up and runs back to back. Interleaved,
    // every peer sits idle ≈ 45 s (the others' runs) before each of its runs, and a JIT peer
    // pays for resuming (a shrunken young generation, recompiles, long stalls:
    // docs/performance.md, "Steady state against resuming after idle"), which nginx and
    // HAProxy do not; at a steady 5,000 req/s a load balancer is never idle that long.
    // Reported next to the target, not instead of it: drift is not spread over the peers.
    id: 'small-paced-50-steady',
    title: "small GET, keep-alive, 50 conns, Poisson at 5,000 req/s, each peer's runs back to back",
    path: '/small',
    connections: 50,
    pacing: 'poisson',
    rate: 5_000,
    order: 'consecutive',
    metric: 'rps',
  },
  {
    // What small-paced-50 was until 2026-11-25 22:30 UTC: each connection pauses an
    // exponential time of mean 10 ms (wrk, WRK_DELAY_RANDOM=1). wrk's delay() is in whole ms
    // and its timers fire on ms ticks, so the pauses that end in the same tick send together:
    // 59% of the gaps between arrivals under 10 µs (Poisson: 4.8%), clumps of up to 15–20
    // requests. Its p99 is mostly the time to serve a clump (a throughput figure). Reported,
    // not a target.
    id: 'small-clumped-50',
    title: 'small GET, keep-alive, 50 conns, wrk random ms pauses (clumped), ≈ 4,900 req/s',
    path: '/small',
    connections: 50,
    paceMs: 10,
    pacing: 'random',
    metric: 'rps',
  },
  {
    // wrk with a fixed 10 ms pause per connection: the connections stay in step and their
    // requests arrive as bursts of 50, so p99 is about the time to serve a whole burst (CPU per
    // request × 50), a throughput figure more than a latency one. Reported, not a target.
    id: 'small-burst-50',
    title: 'small GET, keep-alive, 50 conns in step: bursts of 50 every 10 ms',
    path: '/small',
    connections: 50,
    paceMs: 10,
    pacing: 'fixed',
    metric: 'rps',
  },
  {
    id: 'small-ka-256',
    title: 'small GET, keep-alive, 256 conns',
    path: '/small',
    connections: 256,
    metric: 'rps',
  },
  {
    id: 'no-keepalive',
    title: 'small GET, new connection per request, 50 conns',
    path: '/small',
    connections: 50,
    close: true,
    metric: 'rps',
  },
  {
    id: 'post-64k',
    title: '64 KiB POST, 50 conns',
    path: '/post',
    connections: 50,
    method: 'POST',
    bodyBytes: 64 << 10,
    metric: 'rps',
  },
  {
    id: 'get-1m',
    title: '1 MiB responses, 16 conns',
    path: '/1m',
    connections: 16,
    metric: 'mbps',
  },
];

/** Pause before each measured run (longer than busyPolling's 100 ms window). */
const SETTLE_MS = 250;

/** The cases of a quick run: one per kind of work (small, body in, body out). */
export const QUICK_CASE_IDS = ['small-ka-50', 'small-paced-50', 'post-64k', 'get-1m'];

export interface PeerSummary {
  readonly peer: string;
  readonly rps: Spread;
  readonly mbps: Spread;
  readonly p50Ms: Spread;
  readonly p99Ms: Spread;
  readonly errors: number;
  readonly badStatus: number;
  readonly runs: readonly LoadResult[];
}

export interface CaseResult {
  readonly id: string;
  readonly title: string;
  readonly metric: 'rps' | 'mbps';
  readonly connections: number;
  readonly peers: readonly PeerSummary[];
}

export interface ThroughputResult {
  readonly backend: 'nginx' | 'node';
  readonly peers: readonly string[];
  readonly cases: readonly CaseResult[];
}

export interface ThroughputOptions {
  readonly durationS: number;
  readonly warmupS: number;
  readonly repeats: number;
  /** Repetitions of the Poisson case (pacing 'poisson'); `repeats` when absent. */
  readonly pacedRepeats?: number;
  /** Warm-up seconds before the Poisson case; `warmupS` when absent. */
  readonly pacedWarmupS?: number;
  readonly cases: readonly ThroughputCase[];
  readonly autocannonScript: string;
  readonly log: (line: string) => void;
}

/**
 * Starts every peer in front of one backend into `peers`, which the caller stops (also the
 * ones started before a failure).
 */
async function startPeers(ctx: BenchContext, backend: string, peers: RunningPeer[]): Promise<void> {
  peers.push(await startAnubis(ctx, 'anubis-1w', [backend], { workers: 1 }));
  peers.push(await startAnubis(ctx, 'anubis-auto', [backend], { workers: 'auto' }));
  // Opt-in busy polling (docs/performance.md#busy-polling): its window (100 ms) ends between
  // the interleaved runs, so it does not spin while the other peers are measured.
  peers.push(
    await startAnubis(ctx, 'anubis-1w-busy', [backend], { workers: 1, busyPolling: true }),
  );
  if (NGINX !== undefined) peers.push(await startNginxProxy(ctx, 'nginx-1w', [backend], ''));
  if (HAPROXY !== undefined)
    peers.push(await startHaproxy(ctx, 'haproxy-1t', [backend], 'roundrobin'));
  peers.push(await startFastifyPeer(ctx, 'fastify-reply-from', [backend]));
  peers.push(await startHttpProxyPeer(ctx, 'http-proxy', backend));
}

export interface Target {
  readonly name: string;
  readonly url: string;
}

/** Runs every case against every target, interleaved, and summarises the runs. */
export async function measureCases(
  ctx: BenchContext,
  targets: readonly Target[],
  options: ThroughputOptions,
  label: string,
): Promise<CaseResult[]> {
  const cases: CaseResult[] = [];
  // Steal is read over the CPUs a run uses: the proxy's and the load's (all when unpinned).
  const proxyCpus = cpuNumbers(ctx.proxyCpus);
  const loadCpus = cpuNumbers(ctx.loadCpus);
  const runCpus =
    proxyCpus === undefined || loadCpus === undefined ? undefined : [...proxyCpus, ...loadCpus];
  for (const testCase of options.cases) {
    options.log(`${label}: ${testCase.title}`);
    const spec = (url: string, durationS: number): LoadSpec => ({
      url: `${url}${testCase.path}`,
      connections: testCase.connections,
      durationS,
      ...(testCase.method !== undefined ? { method: testCase.method } : {}),
      ...(testCase.bodyBytes !== undefined ? { bodyBytes: testCase.bodyBytes } : {}),
      ...(testCase.close === true ? { close: true } : {}),
      ...(testCase.paceMs !== undefined ? { paceMs: testCase.paceMs } : {}),
      ...(testCase.pacing !== undefined ? { pacing: testCase.pacing } : {}),
      ...(testCase.rate !== undefined ? { rate: testCase.rate } : {}),
    });
    // A warm-up per target before each case, with that case's requests (JIT of its code
    // paths: bodies, streaming; connection pools), not measured. Warming up with small GETs
    // only left the first POST and 1 MiB runs with the compiler still at work (p99 64–70 ms
    // against 20–23 ms in the runs after, docs/performance.md). nginx, HAProxy and the
    // backend are C: only the Node processes need a JIT warm-up. The Poisson case gets a
    // longer one: its idle-connection paths are still being re-optimised ≈ 10 s in.
    const warmupS =
      testCase.pacing === 'poisson' ? (options.pacedWarmupS ?? options.warmupS) : options.warmupS;
    const warmed = new Set<string>();
    const warmUp = async (target: Target): Promise<void> => {
      if (warmupS <= 0 || warmed.has(target.name) || /^(direct|nginx|haproxy)/.test(target.name))
        return;
      warmed.add(target.name);
      await runLoad(spec(target.url, warmupS), ctx.loadCpus, options.autocannonScript);
    };
    const consecutive = testCase.order === 'consecutive';
    // Interleaved: every Node peer warms up before the first run. Consecutive: each right
    // before its own runs (warmUp does nothing for a peer already warmed up).
    if (!consecutive) for (const target of targets) await warmUp(target);
    const runs = new Map<string, LoadResult[]>(targets.map((t) => [t.name, []]));
    const repeats =
      testCase.pacing === 'poisson' ? (options.pacedRepeats ?? options.repeats) : options.repeats;
    for (const target of (consecutive ? backToBack : interleave)(targets, repeats)) {
      await warmUp(target);
      // The previous target goes quiet first: anubis-1w-busy polls for 100 ms after its last
      // request, on the CPU the next proxy is pinned to.
      await sleep(SETTLE_MS);
      const timesBefore = await readCpuTimes();
      const measured = await runLoad(
        spec(target.url, options.durationS),
        ctx.loadCpus,
        options.autocannonScript,
      );
      const timesAfter = await readCpuTimes();
      const steal =
        timesBefore === undefined || timesAfter === undefined
          ? undefined
          : stealBetween(timesBefore, timesAfter, runCpus);
      const result: LoadResult = steal === undefined ? measured : { ...measured, steal };
      runs.get(target.name)?.push(result);
      // The open-loop generator's self-check: how late it wrote, how many arrivals waited for
      // a connection, and how many gaps were < 10 µs (Poisson at 5,000 req/s: 4.9%).
      const a = result.arrivals;
      const arrivals =
        a === undefined
          ? ''
          : `  late p99 ${(a.lateP99Ms * 1_000).toFixed(0)} µs max ${(a.lateMaxMs * 1_000).toFixed(0)} µs, backlog ${a.backlogWaited}, gaps < 10 µs ${(a.gapsBelow10Us * 100).toFixed(1)}%`;
      const stolen =
        result.steal === undefined
          ? ''
          : `  steal ${result.steal.ms} ms (${(result.steal.share * 100).toFixed(1)}%)`;
      options.log(
        `  ${target.name.padEnd(20)} ${result.rps.toFixed(0).padStart(8)} req/s ${result.mbps.toFixed(1).padStart(8)} MB/s  p99 ${result.latencyMs.p99.toFixed(2)} ms${stolen}${result.errors + result.badStatus > 0 ? `  errors ${result.errors} bad ${result.badStatus}` : ''}${result.tool === 'wrk-ms-pauses' ? '  (wrk ms pauses: no gcc)' : ''}${arrivals}`,
      );
    }
    cases.push({
      id: testCase.id,
      title: `${label === 'throughput' ? '' : `${label}: `}${testCase.title}`,
      metric: testCase.metric,
      connections: testCase.connections,
      peers: targets.map((t) => summarizeRuns(t.name, runs.get(t.name) ?? [])),
    });
  }
  return cases;
}

export async function runThroughput(
  ctx: BenchContext,
  options: ThroughputOptions,
): Promise<ThroughputResult> {
  const backends = await startFastBackend(ctx);
  const backend = backends.urls[0] as string;
  const peers: RunningPeer[] = [];
  try {
    await startPeers(ctx, backend, peers);
    const targets = [
      { name: 'direct', url: backend },
      ...peers.map((p) => ({ name: p.name, url: p.url })),
    ];
    const cases = await measureCases(ctx, targets, options, 'throughput');
    return { backend: backends.kind, peers: targets.map((t) => t.name), cases };
  } finally {
    for (const peer of peers) await peer.proc.stop();
    await backends.proc.stop();
  }
}

export function summarizeRuns(peer: string, runs: readonly LoadResult[]): PeerSummary {
  return {
    peer,
    rps: spread(runs.map((r) => r.rps)),
    mbps: spread(runs.map((r) => r.mbps)),
    p50Ms: spread(runs.map((r) => r.latencyMs.p50)),
    p99Ms: spread(runs.map((r) => r.latencyMs.p99)),
    errors: runs.reduce((n, r) => n + r.errors, 0),
    badStatus: runs.reduce((n, r) => n + r.badStatus, 0),
    runs,
  };
}
