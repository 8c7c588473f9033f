/**
 * `npm run bench`: anubis against direct access, nginx, HAProxy and the Node proxies, in one
 * run, on this machine. Writes bench/results/<timestamp>.json and prints a summary table.
 *
 * Layout on the CPUs (taskset, when available and more than one CPU): the proxy under test on
 * CPU 0; the load generator (wrk, one thread), the backends and this orchestrator on CPU 1.
 * `workers: auto` is left unpinned, since its point is to use every core.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildForBench } from './lib/build.js';
import { poissonTool, WRK } from './lib/load.js';
import { BENCH_HELP, parseBenchArgs, type BenchOptions } from './lib/options.js';
import { HAPROXY, NGINX, type BenchContext } from './lib/peers.js';
import { stopAllProcesses, TASKSET } from './lib/procs.js';
import { computeTargets, formatSummary, type BenchResults } from './lib/report.js';
import { readCpuTimes } from './lib/steal.js';
import { runBalancing } from './scenarios/balancing.js';
import { runIdle, runStream } from './scenarios/memory.js';
import { runTcp } from './scenarios/tcp.js';
import { QUICK_CASE_IDS, THROUGHPUT_CASES, runThroughput } from './scenarios/throughput.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BUILD_DIR = join(ROOT, '.cache/bench-build');

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

function versionOf(command: string | undefined, args: string[]): string {
  if (command === undefined) return 'not installed';
  const out = spawnSync(command, args, { encoding: 'utf8' });
  return `${out.stdout}${out.stderr}`.split('\n')[0]?.trim() ?? '?';
}

/** Pins this process (all its threads) to the load CPUs, so in-process clients stay off the proxy's CPU. */
function pinSelf(cpus: string | undefined): void {
  if (cpus === undefined || TASKSET === undefined) return;
  spawnSync(TASKSET, ['-a', '-p', '-c', cpus, String(process.pid)], { stdio: 'ignore' });
}

async function runPick(options: BenchOptions, notes: string[]): Promise<unknown> {
  const file = join(ROOT, 'bench/pick.ts');
  if (!existsSync(file)) {
    notes.push('pick(): bench/pick.ts does not exist yet; micro-benchmark skipped');
    return undefined;
  }
  const module = (await import(pathToFileURL(file).href)) as {
    runPickBenchmark?: (o: unknown) => unknown;
  };
  if (typeof module.runPickBenchmark !== 'function') {
    notes.push('pick(): bench/pick.ts exports no runPickBenchmark; skipped');
    return undefined;
  }
  log('pick(): strategy micro-benchmark');
  // bench/pick.ts (the strategies' micro-benchmark): pool sizes and CPU time per case.
  return await module.runPickBenchmark({
    sizes: [3, 100, 1_000],
    durationMs: options.quick ? 100 : 300,
  });
}

/** The run's temp directory (configs, logs), removed at the end or on Ctrl-C. */
let tempDir: string | undefined;

async function main(): Promise<number> {
  const options = parseBenchArgs(process.argv.slice(2));
  if (options.help) {
    process.stdout.write(BENCH_HELP);
    return 0;
  }
  const cpus = availableParallelism();
  const pinned = options.pin && TASKSET !== undefined && cpus >= 2;
  const ctxBase = {
    proxyCpus: pinned ? '0' : undefined,
    loadCpus: pinned ? '1' : undefined,
    node: options.node,
    buildDir: BUILD_DIR,
  };
  const notes: string[] = [];
  if (!pinned)
    notes.push(
      options.pin ? 'not pinned: taskset missing or a single CPU' : 'not pinned (--no-pin)',
    );
  if (WRK === undefined)
    notes.push('wrk not installed: autocannon generates the load (slower; lower ceilings)');
  // Compiled here (not in the middle of a case), so a compile error stops the run at once.
  const poisson = poissonTool();
  if (poisson === undefined)
    notes.push(
      "gcc not installed: small-paced-50 uses wrk's random ms pauses (clumped arrivals, not Poisson; its target is only reported)",
    );
  if ((await readCpuTimes()) === undefined)
    notes.push('no /proc/stat: steal time not measured, no quiet-run figure for small-paced-50');
  if (NGINX === undefined) notes.push('nginx not installed: Node backend, no nginx peer');
  if (HAPROXY === undefined) notes.push('haproxy not installed: no HAProxy peer');
  notes.push(
    `warm-up per Node peer: ${options.warmupS} s before each throughput case, ${options.pacedWarmupS} s before small-paced-50 and -steady`,
  );

  log('building anubis and the bench children (tsc)…');
  const built = buildForBench(ROOT, options.ref);
  if (built.typeErrors !== '') {
    log(`build: tsc reported errors (output emitted anyway):\n${built.typeErrors.slice(0, 2_000)}`);
  }
  pinSelf(ctxBase.loadCpus);
  const dir = mkdtempSync(join(tmpdir(), 'anubis-bench-'));
  tempDir = dir;
  const ctx: BenchContext = { ...ctxBase, dir };
  const startedAt = new Date().toISOString();
  const machine = {
    cpus,
    node: spawnSync(options.node, ['--version'], { encoding: 'utf8' }).stdout.trim(),
    nginx: versionOf(NGINX, ['-v']),
    haproxy: versionOf(HAPROXY, ['-v']),
    load: WRK !== undefined ? versionOf(WRK, ['-v']) : 'autocannon',
    arrivals:
      poisson !== undefined
        ? 'small-paced-50: bench/tools/poisson-load.c (open loop, Poisson)'
        : "small-paced-50: wrk's ms pauses (no gcc)",
    // The 1-minute load average when the run started: how busy the machine was.
    loadAverage: loadavg()[0]?.toFixed(1) ?? '?',
    pinning: pinned
      ? 'proxy on CPU 0; wrk or poisson-load, backends, bench on CPU 1; workers auto unpinned'
      : 'none',
  };
  let results: BenchResults = { startedAt, quick: options.quick, machine, notes };
  const autocannonScript = join(BUILD_DIR, 'bench/children/autocannon-load.js');
  // What the throughput and TCP sections share: run length, warm-up, repetitions, load tool.
  const runs = {
    durationS: options.durationS,
    warmupS: options.warmupS,
    repeats: options.repeats,
    autocannonScript,
    log,
  };
  try {
    if (options.sections.includes('throughput')) {
      const cases =
        options.cases.length > 0
          ? THROUGHPUT_CASES.filter((c) => options.cases.includes(c.id))
          : options.quick
            ? THROUGHPUT_CASES.filter((c) => QUICK_CASE_IDS.includes(c.id))
            : THROUGHPUT_CASES;
      results = {
        ...results,
        throughput: await runThroughput(ctx, {
          ...runs,
          pacedRepeats: options.pacedRepeats,
          pacedWarmupS: options.pacedWarmupS,
          cases,
        }),
      };
    }
    if (options.sections.includes('balancing')) {
      results = {
        ...results,
        balancing: await runBalancing(ctx, {
          durationS: options.balancingDurationS,
          repeats: options.balancingRepeats,
          connections: options.balancingConnections,
          // Quick mode too: without it, the 4 blind first requests to the slow backend (no
          // strategy knows it yet) set a 1 s run's p99 (docs/performance.md).
          warmupS: 1,
          essential: options.quick,
          autocannonScript,
          log,
        }),
      };
    }
    if (options.sections.includes('stream'))
      results = { ...results, stream: await runStream(ctx, log) };
    if (options.sections.includes('idle'))
      results = { ...results, idle: await runIdle(ctx, options.idleConnections, log) };
    if (options.sections.includes('pick'))
      results = { ...results, pick: await runPick(options, notes) };
    if (options.sections.includes('tcp')) {
      results = {
        ...results,
        tcp: await runTcp(ctx, { ...runs, quick: options.quick }),
      };
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  results = { ...results, finishedAt: new Date().toISOString() };
  results = { ...results, targets: computeTargets(results) };
  const resultsDir = join(ROOT, 'bench/results');
  mkdirSync(resultsDir, { recursive: true });
  const file = join(
    resultsDir,
    `${startedAt.replace(/[:.]/g, '-')}${options.quick ? '-quick' : ''}.json`,
  );
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`${formatSummary(results)}\n\nresults: ${file}\n`);
  return 0;
}

// Ctrl-C or a failure: stop every process the bench started (by PID) before leaving.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping the bench's processes`);
    void stopAllProcesses().finally(() => {
      if (tempDir !== undefined) rmSync(tempDir, { recursive: true, force: true });
      process.exit(130);
    });
  });
}

main().then(
  (code) => process.exit(code),
  async (error: unknown) => {
    log(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    await stopAllProcesses();
    process.exit(1);
  },
);
