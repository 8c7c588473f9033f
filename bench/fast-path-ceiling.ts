/**
 * How much would a dedicated HTTP/1.1 fast path gain, and with which parser? Measures the
 * CPU time per request of minimal proxies (bench/children/fast-path-proxy.ts: experiments,
 * not product code) next to nginx and anubis, all forwarding small GETs to the same nginx
 * `return 200` backend with keep-alive on both sides and X-Forwarded-For:
 *
 *   nginx               1 worker, upstream keep-alive (the reference)
 *   anubis              workers: 1, compiled (the product, its own llhttp upstream client)
 *   anubis-node-http    the same with `fastPath: false` (node:http serves every request)
 *   anubis-undici       the same with `client: undici` in its pool
 *   node-http-undici    node:http server + undici Pool (anubis with undici, minus anubis)
 *   node-http-anubis-client  node:http server + anubis's own client (anubis minus its logic)
 *   llhttp-undici       net.Server parsed by Node's llhttp binding + undici Pool
 *   llhttp-llhttp       llhttp server side + raw backend sockets parsed by llhttp (RESPONSE)
 *   raw                 no parsing, no validation: a deliberately incorrect ceiling
 *
 * Each proxy runs in its own process pinned to CPU 0; wrk (one thread), the backend and this
 * process run on CPU 1. CPU per request = (utime + stime of the proxy, and its child
 * processes, from /proc/PID/stat) ÷ responses wrk counted. Peers run interleaved, rounds
 * rotate the order; the table shows medians (min–max). Before measuring, every peer is
 * checked: two GETs on one connection answered 200 with the right body, and the backend saw
 * X-Forwarded-For: 127.0.0.1. After, each experiment's own count of 2xx responses is compared
 * with wrk's.
 *
 *   node --import tsx bench/fast-path-ceiling.ts [--seconds 5] [--rounds 3] [--connections 50]
 *       [--node PATH] [--ref HEAD|worktree] [--no-anubis]
 *
 * anubis and the children are compiled into .cache/fast-path-build (src/ as of --ref, HEAD by
 * default; `worktree` for the working tree). Needs nginx and wrk (autocannon otherwise).
 */
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from 'undici';
import { buildForBench } from './lib/build.js';
import { runLoad, WRK, type LoadResult } from './lib/load.js';
import {
  benchCpus,
  NGINX,
  startAnubis,
  startNginxBackend,
  startNginxProxy,
  type BenchContext,
  type RunningPeer,
} from './lib/peers.js';
import {
  childPids,
  freePort,
  spawnProcess,
  stopAllProcesses,
  TASKSET,
  waitForPort,
} from './lib/procs.js';
import { median } from './lib/stats.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

const EXPERIMENTS = [
  'node-http-undici',
  'node-http-anubis-client',
  'llhttp-undici',
  'llhttp-llhttp',
  'raw',
] as const;

interface Options {
  seconds: number;
  rounds: number;
  connections: number;
  node: string;
  ref: string | undefined;
  anubis: boolean;
}

function parseOptions(argv: readonly string[]): Options {
  const value = (name: string): string | undefined => {
    const at = argv.indexOf(`--${name}`);
    return at >= 0 ? argv[at + 1] : undefined;
  };
  const ref = value('ref') ?? 'HEAD';
  return {
    seconds: Number(value('seconds') ?? 5),
    rounds: Math.max(1, Number(value('rounds') ?? 3)),
    connections: Number(value('connections') ?? 50),
    node: value('node') ?? process.execPath,
    ref: ref === 'worktree' ? undefined : ref,
    anubis: !argv.includes('--no-anubis'),
  };
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;

/** utime + stime of a process, in clock ticks (0 when it is gone). */
function cpuTicksOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "(comm)": state is the 3rd field of the line, utime the 14th, stime the 15th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

/** CPU seconds used so far by a process and its children (nginx's worker, cluster workers). */
function cpuSeconds(pid: number): number {
  let ticks = cpuTicksOf(pid);
  for (const child of childPids(pid)) ticks += cpuTicksOf(child);
  return ticks / CLOCK_TICKS;
}

async function startExperiment(
  ctx: BenchContext,
  variant: (typeof EXPERIMENTS)[number],
  backend: string,
): Promise<RunningPeer> {
  const port = await freePort();
  const proc = spawnProcess(
    variant,
    ctx.node,
    [join(ctx.buildDir, 'bench/children/fast-path-proxy.js'), variant, String(port), backend],
    { cpus: ctx.proxyCpus },
  );
  try {
    await waitForPort(port, 15_000, proc);
  } catch (error) {
    await proc.stop(1_000);
    throw error;
  }
  return { name: variant, url: `http://127.0.0.1:${port}`, proc };
}

/** Two GETs of /check on one connection: 200, the right body, X-Forwarded-For seen. */
async function checkPeer(peer: RunningPeer): Promise<void> {
  const client = new Client(peer.url, { pipelining: 1 });
  let connections = 0;
  client.on('connect', () => connections++);
  try {
    for (let i = 0; i < 2; i++) {
      const res = await client.request({ path: '/check', method: 'GET' });
      const body = await res.body.text();
      const seen = res.headers['x-seen-xff'];
      if (res.statusCode !== 200 || body !== 'check\n' || seen !== '127.0.0.1') {
        throw new Error(
          `${peer.name}: GET /check answered ${res.statusCode} ${JSON.stringify(body)}, ` +
            `backend saw X-Forwarded-For ${JSON.stringify(seen)}`,
        );
      }
    }
    if (connections !== 1) throw new Error(`${peer.name}: ${connections} connections for 2 GETs`);
  } finally {
    await client.close();
  }
}

interface Sample {
  readonly rps: number;
  readonly cpuUsPerRequest: number;
  readonly requests: number;
  readonly errors: number;
  readonly badStatus: number;
}

async function measure(
  peer: RunningPeer,
  options: Options,
  ctx: BenchContext,
  autocannon: string,
  seconds: number,
): Promise<Sample> {
  const before = cpuSeconds(peer.proc.pid);
  const load: LoadResult = await runLoad(
    { url: `${peer.url}/`, connections: options.connections, durationS: seconds },
    ctx.loadCpus,
    autocannon,
  );
  const used = cpuSeconds(peer.proc.pid) - before;
  return {
    rps: load.rps,
    cpuUsPerRequest: load.requests > 0 ? (used * 1e6) / load.requests : Number.NaN,
    requests: load.requests,
    errors: load.errors,
    badStatus: load.badStatus,
  };
}

const fmt = (v: number, digits = 1): string => (Number.isFinite(v) ? v.toFixed(digits) : '–');

function summaryTable(
  peers: readonly RunningPeer[],
  samples: ReadonlyMap<string, Sample[]>,
): string {
  const nginx = samples.get('nginx') ?? [];
  const nginxUs = median(nginx.map((s) => s.cpuUsPerRequest));
  const nginxRps = median(nginx.map((s) => s.rps));
  const lines = [
    '| proxy | CPU µs/req, median (min–max) | nginx µs ÷ µs | req/s, median | req/s ÷ nginx | errors, non-2xx |',
    '| ----- | ---------------------------: | ------------: | ------------: | ------------: | --------------: |',
  ];
  for (const peer of peers) {
    const list = samples.get(peer.name) ?? [];
    const us = list.map((s) => s.cpuUsPerRequest);
    const rps = median(list.map((s) => s.rps));
    const errors = list.reduce((n, s) => n + s.errors, 0);
    const bad = list.reduce((n, s) => n + s.badStatus, 0);
    lines.push(
      `| ${peer.name} | ${fmt(median(us))} (${fmt(Math.min(...us))}–${fmt(Math.max(...us))}) ` +
        `| ${fmt(nginxUs / median(us), 2)} | ${Math.round(rps)} | ${fmt(rps / nginxRps, 2)} ` +
        `| ${errors}, ${bad} |`,
    );
  }
  return lines.join('\n');
}

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  if (NGINX === undefined) {
    log('nginx is not installed: it is both the backend and the reference; nothing to measure');
    return 1;
  }
  const pinned = TASKSET !== undefined && availableParallelism() >= 2;
  log(`building anubis (src/ at ${options.ref ?? 'the working tree'}) and the children (tsc)…`);
  const built = buildForBench(ROOT, options.ref, 'fast-path');
  if (built.typeErrors !== '')
    log(`tsc reported errors (output emitted anyway):\n${built.typeErrors.slice(0, 2_000)}`);
  const dir = mkdtempSync(join(tmpdir(), 'anubis-fast-path-'));
  const ctx: BenchContext = { dir, buildDir: built.dir, node: options.node, ...benchCpus(pinned) };
  if (pinned)
    spawnSync(TASKSET as string, ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });
  const autocannon = join(built.dir, 'bench/children/autocannon-load.js');
  const stopAll = async (): Promise<void> => {
    await stopAllProcesses();
    rmSync(dir, { recursive: true, force: true });
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    log(`${signal}: stopping the processes this tool started`);
    void stopAll().then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const backend = await startNginxBackend(ctx);
    const backendUrl = backend.urls[0] as string;
    const peers: RunningPeer[] = [await startNginxProxy(ctx, 'nginx', [backendUrl], '')];
    if (options.anubis) {
      peers.push(await startAnubis(ctx, 'anubis', [backendUrl], { workers: 1 }));
      peers.push(
        await startAnubis(ctx, 'anubis-node-http', [backendUrl], { workers: 1, fastPath: false }),
      );
      peers.push(
        await startAnubis(ctx, 'anubis-undici', [backendUrl], { workers: 1, client: 'undici' }),
      );
    }
    for (const variant of EXPERIMENTS) peers.push(await startExperiment(ctx, variant, backendUrl));
    for (const peer of peers) await checkPeer(peer);
    const nodeVersion = spawnSync(options.node, ['--version'], { encoding: 'utf8' }).stdout.trim();
    log(
      `node ${nodeVersion}, ${pinned ? 'proxies on CPU 0, wrk + backend on CPU 1' : 'NOT pinned'}, ` +
        `${WRK === undefined ? 'autocannon' : 'wrk -t1'} -c${options.connections}, ` +
        `${options.rounds} × ${options.seconds} s, load average ${loadavg()[0]?.toFixed(1)}`,
    );
    const loadRequests = new Map<string, number>();
    const addRequests = (name: string, n: number): void => {
      loadRequests.set(name, (loadRequests.get(name) ?? 0) + n);
    };
    for (const peer of peers) {
      if (peer.name === 'nginx') continue;
      log(`warm-up ${peer.name}`);
      addRequests(peer.name, (await measure(peer, options, ctx, autocannon, 2)).requests);
    }
    const samples = new Map<string, Sample[]>();
    for (let round = 0; round < options.rounds; round++) {
      const order = [...peers.slice(round % peers.length), ...peers.slice(0, round % peers.length)];
      for (const peer of order) {
        const sample = await measure(peer, options, ctx, autocannon, options.seconds);
        addRequests(peer.name, sample.requests);
        samples.set(peer.name, [...(samples.get(peer.name) ?? []), sample]);
        log(
          `round ${round + 1} ${peer.name}: ${Math.round(sample.rps)} req/s, ` +
            `${fmt(sample.cpuUsPerRequest)} µs/req, errors ${sample.errors}, non-2xx ${sample.badStatus}`,
        );
      }
    }
    // The experiments' own count of responses, printed when they stop.
    const counted: string[] = [];
    for (const peer of peers) {
      if (!(EXPERIMENTS as readonly string[]).includes(peer.name)) continue;
      const closed = once(peer.proc.child, 'close'); // stdout read to its end
      await peer.proc.stop();
      await closed;
      const line = /^FAST_PATH_COUNTS (\{.*\})$/m.exec(peer.proc.output());
      const own =
        line === null
          ? undefined
          : (JSON.parse(line[1] as string) as { ok: number; other: number });
      const seen = (loadRequests.get(peer.name) ?? 0) + 2;
      counted.push(
        own === undefined
          ? `${peer.name}: printed no count`
          : `${peer.name}: ${own.ok} 2xx and ${own.other} other responses started; ` +
              `${seen} completed ones counted by the load generator and the check` +
              (own.ok >= seen && own.other === 0 ? '' : '  <-- MISMATCH'),
      );
    }
    process.stdout.write(
      `\nsmall GET keep-alive, ${options.connections} connections, node ${nodeVersion}, ` +
        `median of ${options.rounds} × ${options.seconds} s\n\n` +
        `${summaryTable(peers, samples)}\n\n${counted.join('\n')}\n`,
    );
    return 0;
  } finally {
    await stopAll();
  }
}

process.exitCode = await main();
