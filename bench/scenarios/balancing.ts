/**
 * Balancing quality: 4 Node backends answering after BASE_DELAY_MS, one of them degraded
 * (10× the latency; in the second phase it also stalls for 300 ms of every 2 s). The same
 * closed-loop load goes through anubis with each built-in strategy, nginx and HAProxy with
 * their balancing methods, and the latency percentiles the clients see are compared.
 *
 * The request rate is kept low (16 connections, 10 ms answers: at most 1,600 req/s) so that no
 * proxy is CPU-bound: the latencies then reflect balancing decisions, not proxy queueing.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { builtinStrategies } from '../../src/strategies/registry.js';
import { runLoad, type LoadResult } from '../lib/load.js';
import {
  HAPROXY,
  NGINX,
  startAnubis,
  startFastifyPeer,
  startHaproxy,
  startNginxProxy,
  startNodeBackends,
  type BenchContext,
  type RunningPeer,
} from '../lib/peers.js';
import { interleave, spread, type Spread } from '../lib/stats.js';

export const BASE_DELAY_MS = 10;
export const DEGRADED_FACTOR = 10;

export interface BalancingPeerResult {
  readonly peer: string;
  readonly p50Ms: Spread;
  readonly p99Ms: Spread;
  readonly p999Ms: Spread;
  readonly rps: Spread;
  readonly errors: number;
  readonly runs: readonly LoadResult[];
}

export interface BalancingPhase {
  readonly phase: 'slow' | 'stalls';
  readonly title: string;
  readonly peers: readonly BalancingPeerResult[];
}

export interface BalancingResult {
  readonly baseDelayMs: number;
  readonly degradedFactor: number;
  readonly connections: number;
  readonly nginxLeastTime: boolean;
  readonly phases: readonly BalancingPhase[];
}

export interface BalancingOptions {
  readonly durationS: number;
  readonly repeats: number;
  readonly connections: number;
  /** Unmeasured seconds per peer before the runs (0: none). */
  readonly warmupS: number;
  /** Only the peers the targets compare (quick runs). */
  readonly essential: boolean;
  readonly autocannonScript: string;
  readonly log: (line: string) => void;
}

/** Whether the installed nginx accepts `least_time` (NGINX Plus, or open-source nginx ≥ 1.29). */
function nginxHasLeastTime(ctx: BenchContext): boolean {
  if (NGINX === undefined) return false;
  const file = join(ctx.dir, 'nginx-least-time-test.conf');
  writeFileSync(
    file,
    `error_log ${ctx.dir}/nginx-test.log;\npid ${ctx.dir}/nginx-test.pid;\nevents {}\nhttp { upstream u { least_time header; server 127.0.0.1:1; } }\n`,
  );
  const test = spawnSync(
    NGINX,
    ['-t', '-e', join(ctx.dir, 'nginx-test.log'), '-p', ctx.dir, '-c', file],
    {
      encoding: 'utf8',
    },
  );
  return test.status === 0;
}

/**
 * Starts into `peers` (stopped by the caller, even after a failure) anubis with every
 * built-in strategy, nginx, HAProxy and reply-from. `essential` (quick
 * runs) keeps only what the targets compare: anubis's load-aware strategies, nginx
 * least_conn, HAProxy leastconn and random(2).
 */
async function startBalancers(
  ctx: BenchContext,
  backends: readonly string[],
  essential: boolean,
  peers: RunningPeer[],
): Promise<void> {
  for (const name of builtinStrategies.keys()) {
    // Hash strategies pin a client to one backend: with one load generator they measure
    // stickiness, not balancing.
    if (name.includes('hash')) continue;
    // Quick runs keep the strategies that look at backend load (round robin and random are
    // blind to a degraded backend by design: the full run shows them).
    if (essential && (name === 'round-robin' || name === 'random')) continue;
    peers.push(await startAnubis(ctx, `anubis ${name}`, backends, { workers: 1, strategy: name }));
  }
  if (NGINX !== undefined) {
    if (!essential) peers.push(await startNginxProxy(ctx, 'nginx round-robin', backends, ''));
    peers.push(await startNginxProxy(ctx, 'nginx least_conn', backends, 'least_conn'));
    if (nginxHasLeastTime(ctx)) {
      peers.push(await startNginxProxy(ctx, 'nginx least_time', backends, 'least_time header'));
    }
  }
  if (HAPROXY !== undefined) {
    if (!essential) {
      peers.push(await startHaproxy(ctx, 'haproxy roundrobin', backends, 'roundrobin'));
    }
    peers.push(await startHaproxy(ctx, 'haproxy leastconn', backends, 'leastconn'));
    peers.push(await startHaproxy(ctx, 'haproxy random(2)', backends, 'random(2)'));
  }
  if (!essential) peers.push(await startFastifyPeer(ctx, 'reply-from BalancedPool', backends));
}

export async function runBalancing(
  ctx: BenchContext,
  options: BalancingOptions,
): Promise<BalancingResult> {
  const phases: BalancingPhase[] = [];
  for (const phase of ['slow', 'stalls'] as const) {
    const title =
      phase === 'slow'
        ? `1 of 4 backends ${DEGRADED_FACTOR}x slower (${BASE_DELAY_MS} ms vs ${BASE_DELAY_MS * DEGRADED_FACTOR} ms)`
        : `same, and it stalls 300 ms of every 2 s`;
    options.log(`balancing: ${title}`);
    const backends = await startNodeBackends(
      ctx,
      [0, 1, 2, 3].map((i) => ({
        delayMs: i === 3 ? BASE_DELAY_MS * DEGRADED_FACTOR : BASE_DELAY_MS,
        degraded: i === 3,
      })),
      phase === 'stalls',
    );
    const peers: RunningPeer[] = [];
    try {
      await startBalancers(ctx, backends.urls, options.essential, peers);
      // Warm-up: connection pools open and latency estimates get their first samples. nginx
      // and HAProxy keep no latency state and need no JIT (as in the throughput section).
      const learners = peers.filter((p) => !/^(nginx|haproxy)/.test(p.name));
      for (const peer of options.warmupS > 0 ? learners : []) {
        await runLoad(
          {
            url: `${peer.url}/small`,
            connections: options.connections,
            durationS: options.warmupS,
          },
          ctx.loadCpus,
          options.autocannonScript,
        );
      }
      const runs = new Map<string, LoadResult[]>(peers.map((p) => [p.name, []]));
      for (const peer of interleave(peers, options.repeats)) {
        const result = await runLoad(
          {
            url: `${peer.url}/small`,
            connections: options.connections,
            durationS: options.durationS,
            timeoutS: 10,
          },
          ctx.loadCpus,
          options.autocannonScript,
        );
        runs.get(peer.name)?.push(result);
        options.log(
          `  ${peer.name.padEnd(24)} p50 ${result.latencyMs.p50.toFixed(2).padStart(7)} p99 ${result.latencyMs.p99.toFixed(2).padStart(7)} p99.9 ${result.latencyMs.p999.toFixed(2).padStart(7)} ms  ${result.rps.toFixed(0)} req/s`,
        );
      }
      phases.push({
        phase,
        title,
        peers: peers.map((p) => {
          const list = runs.get(p.name) ?? [];
          return {
            peer: p.name,
            p50Ms: spread(list.map((r) => r.latencyMs.p50)),
            p99Ms: spread(list.map((r) => r.latencyMs.p99)),
            p999Ms: spread(list.map((r) => r.latencyMs.p999)),
            rps: spread(list.map((r) => r.rps)),
            errors: list.reduce((n, r) => n + r.errors + r.badStatus, 0),
            runs: list,
          };
        }),
      });
    } finally {
      for (const peer of peers) await peer.proc.stop();
      await backends.proc.stop();
    }
  }
  return {
    baseDelayMs: BASE_DELAY_MS,
    degradedFactor: DEGRADED_FACTOR,
    connections: options.connections,
    nginxLeastTime: nginxHasLeastTime(ctx),
    phases,
  };
}
