/**
 * A burst of new connections: how long N connections opened at once wait for their first
 * response, with the proxy idle and with it saturated by 50 keep-alive connections (wrk). A
 * client pool reconnecting after a deploy, or another balancer in front failing over, looks
 * like this. One anubis process accepts one connection per event-loop iteration per listening
 * socket (libuv >= 1.45), so its `acceptSockets` (SO_REUSEPORT, src/server/accept-sockets.ts)
 * is what this measures: anubis with one socket and with `auto` (8 on Node >= 22.12), next to
 * nginx (one worker, multi_accept) and HAProxy (one thread), in front of the same backend.
 * Proxies on CPU 0, wrk, the burst tool (bench/tools/connect-burst.c) and the backend on CPU 1
 * (taskset). Runs are interleaved (A B C D A B C D …); medians and min–max are reported.
 *
 *   node --import tsx bench/connect-burst.ts [--rounds 3] [--connections 256] [--bursts 3]
 *     [--sockets 1,auto]  the anubis variants (acceptSockets values, comma-separated)
 *     [--node PATH]       Node for anubis (>= 22.12 for SO_REUSEPORT; Node 20 binds one socket)
 *
 * Writes bench/results/connect-burst-<timestamp>.json. Loopback only; every run bounded.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import type { AcceptSocketsSetting } from '../src/server/accept-sockets.js';
import { buildForBench } from './lib/build.js';
import { runBurst, type BurstResult } from './lib/burst.js';
import { compiledTool } from './lib/c-tool.js';
import { runLoad, WRK, type LoadResult } from './lib/load.js';
import {
  HAPROXY,
  NGINX,
  startAnubis,
  startFastBackend,
  startHaproxy,
  startNginxProxy,
  benchCpus,
  type BenchContext,
  type RunningPeer,
} from './lib/peers.js';
import { stopAllProcesses, TASKSET } from './lib/procs.js';
import { formatSpread, formatTable, interleave, spread, type Spread } from './lib/stats.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const WARMUP_BURSTS = 5;

interface BurstOptions {
  readonly rounds: number;
  readonly connections: number;
  readonly bursts: number;
  readonly node: string;
  readonly sockets: readonly AcceptSocketsSetting[];
}

/** A whole number from 1 to `max` given to --name (`fallback` when absent). */
function wholeNumber(name: string, value: string | undefined, max: number, fallback: number) {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max)
    throw new Error(`--${name}: a whole number from 1 to ${max}, found ${JSON.stringify(value)}`);
  return n;
}

/** The command line (node:util parseArgs, strict: an unknown flag is an error). */
function parseBurstArgs(argv: readonly string[]): BurstOptions {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      rounds: { type: 'string' },
      connections: { type: 'string' },
      bursts: { type: 'string' },
      sockets: { type: 'string' },
      node: { type: 'string' },
    },
  });
  const sockets = (values.sockets ?? '1,auto')
    .split(',')
    .map((v): AcceptSocketsSetting => (v === 'auto' ? 'auto' : wholeNumber('sockets', v, 64, 1)));
  return {
    rounds: wholeNumber('rounds', values.rounds, 20, 3),
    connections: wholeNumber('connections', values.connections, 4_000, 256),
    bursts: wholeNumber('bursts', values.bursts, 10, 3),
    node: values.node ?? process.execPath,
    sockets,
  };
}

interface PeerSpec {
  readonly name: string;
  readonly start: (ctx: BenchContext, backend: string) => Promise<RunningPeer>;
}

interface RunRecord {
  readonly peer: string;
  readonly idle: BurstResult;
  readonly loaded: BurstResult[];
  readonly load: LoadResult;
}

async function measure(
  ctx: BenchContext,
  tool: string,
  peer: PeerSpec,
  backend: string,
  connections: number,
  bursts: number,
): Promise<RunRecord> {
  const running = await peer.start(ctx, backend);
  try {
    const url = `${running.url}/small`;
    // Warm-up, not measured: 1 s of load and five bursts (the JIT compiles the accept path
    // over the first bursts: 50–70 ms for 256 connections, then 12–20 ms; and the upstream
    // keep-alive connections a burst needs, as nginx's `keepalive 512` gets them too).
    await runLoad({ url, connections: 50, durationS: 1 }, ctx.loadCpus, '');
    for (let i = 0; i < WARMUP_BURSTS; i++) {
      await runBurst(tool, ctx.loadCpus, connections, url);
      await sleep(100);
    }
    await sleep(300);
    const idle = await runBurst(tool, ctx.loadCpus, connections, url);
    await sleep(300);
    // wrk saturates the proxy for 1 s before the first burst and 1 s after the last.
    const load = runLoad({ url, connections: 50, durationS: bursts + 2 }, ctx.loadCpus, '');
    await sleep(1_000);
    const loaded: BurstResult[] = [];
    for (let i = 0; i < bursts; i++) {
      loaded.push(await runBurst(tool, ctx.loadCpus, connections, url));
      await sleep(1_000);
    }
    return { peer: peer.name, idle, loaded, load: await load };
  } finally {
    await running.proc.stop(3_000);
  }
}

interface PeerSummary {
  readonly idleMaxMs: Spread;
  readonly loadedP99Ms: Spread;
  readonly loadedMaxMs: Spread;
  readonly loadRps: Spread;
  /** Burst connections not answered 2xx (errors, bad status, timeouts), over every burst. */
  readonly failed: number;
}

function summarise(records: readonly RunRecord[]): PeerSummary {
  const loaded = records.flatMap((r) => r.loaded);
  const failed = [...records.map((r) => r.idle), ...loaded].reduce(
    (sum, b) => sum + b.errors + b.bad + b.timeouts,
    0,
  );
  return {
    idleMaxMs: spread(records.map((r) => r.idle.maxMs)),
    loadedP99Ms: spread(loaded.map((b) => b.p99Ms)),
    loadedMaxMs: spread(loaded.map((b) => b.maxMs)),
    loadRps: spread(records.map((r) => r.load.rps)),
    failed,
  };
}

async function main(): Promise<number> {
  let options: BurstOptions;
  try {
    options = parseBurstArgs(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    return 2;
  }
  const { rounds, connections, bursts, node } = options;
  const startedAt = new Date().toISOString();
  if (WRK === undefined) {
    process.stderr.write('wrk is not installed (apt-get install wrk): it makes the load\n');
    return 2;
  }
  const tool = compiledTool('connect-burst');
  if (tool === undefined) {
    process.stderr.write('gcc is not installed: bench/tools/connect-burst.c cannot be built\n');
    return 2;
  }
  const pinned = TASKSET !== undefined && availableParallelism() >= 2;
  const nodeVersion = spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim();
  process.stderr.write(`building anubis (tsc)… node ${nodeVersion}\n`);
  const built = buildForBench(ROOT, undefined, 'connect-burst');
  const dir = mkdtempSync(join(tmpdir(), 'anubis-burst-'));
  const ctx: BenchContext = { dir, buildDir: built.dir, node, ...benchCpus(pinned) };
  const peers: PeerSpec[] = options.sockets.map((setting) => ({
    name: setting === 'auto' ? 'anubis, acceptSockets auto' : `anubis, acceptSockets ${setting}`,
    start: (c, b) =>
      startAnubis(c, `anubis-${setting}`, [b], { workers: 1, acceptSockets: setting }),
  }));
  if (NGINX !== undefined) {
    peers.push({ name: 'nginx (1 worker)', start: (c, b) => startNginxProxy(c, 'nginx', [b], '') });
  }
  if (HAPROXY !== undefined) {
    peers.push({
      name: 'haproxy (1 thread)',
      start: (c, b) => startHaproxy(c, 'haproxy', [b], 'roundrobin'),
    });
  }
  const backend = await startFastBackend(ctx);
  const records: RunRecord[] = [];
  try {
    for (const peer of interleave(peers, rounds)) {
      const record = await measure(ctx, tool, peer, backend.urls[0] as string, connections, bursts);
      process.stderr.write(
        `${peer.name}: idle max ${record.idle.maxMs} ms; loaded max ` +
          `${record.loaded.map((b) => b.maxMs).join('/')} ms; wrk ${Math.round(record.load.rps)} req/s\n`,
      );
      records.push(record);
    }
  } finally {
    await backend.proc.stop(3_000);
    await stopAllProcesses();
    rmSync(dir, { recursive: true, force: true });
  }
  const summaries = new Map(
    peers.map((p) => [p.name, summarise(records.filter((r) => r.peer === p.name))]),
  );
  const table = formatTable(
    [
      `${connections} new connections at once`,
      'idle: max ms',
      'under load: p99 ms',
      'under load: max ms',
      'load req/s',
      'not 2xx',
    ],
    peers.map((p) => {
      const s = summaries.get(p.name) as PeerSummary;
      return [
        p.name,
        formatSpread(s.idleMaxMs, 1),
        formatSpread(s.loadedP99Ms, 1),
        formatSpread(s.loadedMaxMs, 1),
        formatSpread(s.loadRps),
        String(s.failed),
      ];
    }),
  );
  const header =
    `node ${nodeVersion}; ${rounds} rounds, ${bursts} bursts under load per round; ` +
    `${pinned ? 'proxies on CPU 0, load on CPU 1' : 'not pinned'}; backend ${backend.kind}`;
  process.stdout.write(`${header}\n${table}\n`);
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  const file = join(ROOT, `bench/results/connect-burst-${startedAt.replace(/[:.]/g, '-')}.json`);
  writeFileSync(
    file,
    `${JSON.stringify({ startedAt, node: nodeVersion, connections, rounds, bursts, pinned, summaries: Object.fromEntries(summaries), records }, null, 2)}\n`,
  );
  process.stderr.write(`results: ${file}\n`);
  return 0;
}

process.on('SIGINT', () => {
  void stopAllProcesses().then(() => process.exit(130));
});
process.exitCode = await main();
