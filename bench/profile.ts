/**
 * `node --import tsx bench/profile.ts [seconds] [connections] [path]`: runs anubis (1 worker,
 * pinned like the bench) under wrk load with `node --cpu-prof`, then prints where the CPU time
 * went: self time by function and by area (node:http, undici, anubis, GC, idle…).
 * The .cpuprofile file is kept in .cache/ for a flame graph (Chrome DevTools, speedscope).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runLoad } from './lib/load.js';
import { startNginxBackend, startNodeBackends, NGINX, type BenchContext } from './lib/peers.js';
import { freePort, spawnProcess, waitForPort } from './lib/procs.js';
import { formatNumber, formatTable } from './lib/stats.js';
import { writeFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Which part of the stack a frame belongs to, from its script URL. */
export function areaOf(url: string, functionName: string): string {
  if (url === '') {
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(idle)') return 'idle';
    if (functionName === '(program)') return 'native/program';
    return 'native';
  }
  if (url.includes('/node_modules/undici/')) return 'undici';
  if (url.includes('/node_modules/'))
    return url.replace(/.*\/node_modules\/((@[^/]+\/)?[^/]+).*/, '$1');
  if (url.includes('/src/')) return 'anubis';
  if (
    url.startsWith('node:internal/http') ||
    url.startsWith('node:_http') ||
    url.startsWith('node:http')
  )
    return 'node:http';
  if (url.startsWith('node:internal/streams') || url.startsWith('node:stream'))
    return 'node:streams';
  if (url.startsWith('node:net') || url.startsWith('node:internal/stream_base')) return 'node:net';
  if (url.startsWith('node:')) return 'node:other';
  return url;
}

/** Self time per function and per area, in ms, from a V8 .cpuprofile. */
export function summarizeProfile(profile: CpuProfile): {
  totalMs: number;
  byArea: Map<string, number>;
  byFunction: Map<string, number>;
} {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const byArea = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let totalMs = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i] as number);
    const ms = (profile.timeDeltas[i] ?? 0) / 1_000;
    if (node === undefined) continue;
    totalMs += ms;
    const { functionName, url, lineNumber } = node.callFrame;
    const area = areaOf(url, functionName);
    byArea.set(area, (byArea.get(area) ?? 0) + ms);
    const short = url.replace(/.*\/(node_modules|src)\//, '$1/');
    const key = `${functionName || '(anonymous)'} ${short}:${lineNumber + 1}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + ms);
  }
  return { totalMs, byArea, byFunction };
}

function top(map: Map<string, number>, total: number, n: number): string[][] {
  return [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => [k, formatNumber(v, 0), `${formatNumber((100 * v) / total, 1)}%`]);
}

async function main(): Promise<void> {
  const seconds = Number(process.argv[2] ?? 8);
  const connections = Number(process.argv[3] ?? 50);
  const path = process.argv[4] ?? '/small';
  const root = fileURLToPath(new URL('..', import.meta.url));
  const buildDir = join(root, '.cache/bench-build');
  const tsc = join(root, 'node_modules/typescript/bin/tsc');
  spawnSync(process.execPath, [tsc, '-p', join(root, 'bench/tsconfig.build.json')]);
  writeFileSync(join(buildDir, 'package.json'), readFileSync(join(root, 'package.json')));
  const dir = mkdtempSync(join(tmpdir(), 'anubis-profile-'));
  const ctx: BenchContext = {
    dir,
    buildDir,
    proxyCpus: '0',
    loadCpus: '1',
    node: process.execPath,
  };
  const backends =
    NGINX !== undefined
      ? await startNginxBackend(ctx)
      : await startNodeBackends(ctx, [{ delayMs: 0, degraded: false }]);
  const port = await freePort();
  const config = join(dir, 'anubis.json');
  writeFileSync(
    config,
    JSON.stringify({
      workers: 1,
      log: { level: 'warn' },
      listeners: [{ address: `127.0.0.1:${port}`, pool: 'p' }],
      pools: { p: { backends: [{ url: backends.urls[0] }] } },
    }),
  );
  const profDir = join(root, '.cache/profiles');
  mkdirSync(profDir, { recursive: true });
  const before = new Set(readdirSync(profDir));
  const anubis = spawnProcess(
    'anubis',
    process.execPath,
    [
      '--cpu-prof',
      '--cpu-prof-dir',
      profDir,
      join(buildDir, 'src/cli/main.js'),
      '--config',
      config,
    ],
    { cpus: '0' },
  );
  try {
    await waitForPort(port, 20_000, anubis);
    await runLoad({ url: `http://127.0.0.1:${port}${path}`, connections, durationS: 2 }, '1', '');
    const result = await runLoad(
      { url: `http://127.0.0.1:${port}${path}`, connections, durationS: seconds },
      '1',
      '',
    );
    process.stdout.write(
      `${formatNumber(result.rps)} req/s, p99 ${result.latencyMs.p99.toFixed(2)} ms\n`,
    );
  } finally {
    await anubis.stop(15_000);
    await backends.proc.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const file = readdirSync(profDir).find((f) => !before.has(f) && f.endsWith('.cpuprofile'));
  if (file === undefined) throw new Error('no profile written');
  const summary = summarizeProfile(
    JSON.parse(readFileSync(join(profDir, file), 'utf8')) as CpuProfile,
  );
  process.stdout.write(`profile: ${join(profDir, file)}\n\n`);
  process.stdout.write(
    `${formatTable(['area (self time)', 'ms', 'share'], top(summary.byArea, summary.totalMs, 20))}\n\n`,
  );
  process.stdout.write(
    `${formatTable(['function (self time)', 'ms', 'share'], top(summary.byFunction, summary.totalMs, 40))}\n`,
  );
}

await main();
