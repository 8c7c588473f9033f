/**
 * `node --import tsx bench/profile.ts [seconds] [connections] [path] [close|post=BYTES]`: runs anubis (1 worker,
 * pinned like the bench) under wrk load with `node --cpu-prof`, then prints where the CPU time
 * went: self time by function and by area (node:http, undici, anubis, GC, idle…).
 * BENCH_REF=HEAD profiles src/ as committed. The .cpuprofile file is kept in .cache/ for a flame graph (Chrome DevTools, speedscope).
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildForBench } from './lib/build.js';
import { runLoad } from './lib/load.js';
import { type BenchContext, startFastBackend } from './lib/peers.js';
import { freePort, spawnProcess, waitForPort } from './lib/procs.js';
import { formatNumber, formatTable } from './lib/stats.js';
import { summarizeProfile, type CpuProfile } from './lib/cpu-profile.js';
import { writeFileSync } from 'node:fs';

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
  // `close` as 4th argument: a new connection per request; `post=65536`: POST that many bytes.
  const close = process.argv[5] === 'close';
  const post = /^post=(\d+)$/.exec(process.argv[5] ?? '');
  const body = post === null ? {} : { method: 'POST', bodyBytes: Number(post[1]) };
  const root = fileURLToPath(new URL('..', import.meta.url));
  const buildDir = buildForBench(root, process.env.BENCH_REF).dir;
  const dir = mkdtempSync(join(tmpdir(), 'anubis-profile-'));
  const ctx: BenchContext = {
    dir,
    buildDir,
    proxyCpus: '0',
    loadCpus: '1',
    node: process.execPath,
  };
  const backends = await startFastBackend(ctx);
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
    await runLoad(
      { url: `http://127.0.0.1:${port}${path}`, connections, durationS: 2, close, ...body },
      '1',
      '',
    );
    const result = await runLoad(
      { url: `http://127.0.0.1:${port}${path}`, connections, durationS: seconds, close, ...body },
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
