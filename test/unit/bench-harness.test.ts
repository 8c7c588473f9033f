// The bench harness's parsing and aggregation helpers (the benchmark itself is `npm run bench`,
// never part of `npm test`).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { areaOf, summarizeProfile } from '../../bench/lib/cpu-profile.js';
import { parseWrkOutput, type LoadResult } from '../../bench/lib/load.js';
import { parseBenchArgs } from '../../bench/lib/options.js';
import { parsePoissonOutput } from '../../bench/lib/poisson.js';
import { parseProcStatus } from '../../bench/lib/procs.js';
import { computeTargets, formatSummary, type BenchResults } from '../../bench/lib/report.js';
import {
  addedRatio,
  backToBack,
  formatSpread,
  formatTable,
  interleave,
  median,
  percentileSorted,
  ratio,
  spread,
} from '../../bench/lib/stats.js';
import {
  cpuNumbers,
  parseCpuTimes,
  QUIET_STEAL_SHARE,
  stealBetween,
  type CpuTimes,
} from '../../bench/lib/steal.js';
import { summarizeRuns, type ThroughputResult } from '../../bench/scenarios/throughput.js';

void test('median, spread and percentiles', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.ok(Number.isNaN(median([])));
  assert.deepEqual(backToBack(['a', 'b'], 2), ['a', 'a', 'b', 'b']);
  assert.deepEqual(spread([5, Number.NaN, 1, 3]), { median: 3, min: 1, max: 5, runs: 3 });
  const sorted = Array.from({ length: 1000 }, (_, i) => i + 1);
  assert.equal(percentileSorted(sorted, 50), 500);
  assert.equal(percentileSorted(sorted, 99), 990);
  assert.equal(percentileSorted(sorted, 99.9), 999);
  assert.equal(percentileSorted(sorted, 100), 1000);
  assert.ok(Number.isNaN(ratio(1, 0)));
  assert.equal(ratio(3, 2), 1.5);
  // Added latency: 0.64 − 0.21 over 0.35 − 0.21; no ratio to a reference that adds nothing.
  assert.ok(Math.abs(addedRatio(0.64, 0.35, 0.21) - 0.43 / 0.14) < 1e-9);
  assert.ok(Number.isNaN(addedRatio(1.62, 0.82, 0.82)));
  assert.ok(Number.isNaN(addedRatio(1.62, 0.815, 0.82)));
});

void test('runs are interleaved A B C A B C', () => {
  assert.deepEqual(interleave(['a', 'b', 'c'], 2), ['a', 'b', 'c', 'a', 'b', 'c']);
});

void test('tables and spreads format as Markdown', () => {
  assert.equal(
    formatSpread({ median: 1500, min: 1000, max: 2000, runs: 3 }),
    '1,500 (1,000–2,000)',
  );
  assert.equal(formatSpread({ median: 2, min: 2, max: 2, runs: 1 }, 1), '2.0');
  const table = formatTable(
    ['peer', 'req/s'],
    [
      ['anubis', '10'],
      ['nginx', '200'],
    ],
  );
  assert.equal(
    table,
    '| peer   | req/s |\n|--------|------:|\n| anubis |    10 |\n| nginx  |   200 |',
  );
});

void test("wrk's WRK_JSON line becomes a LoadResult (µs → ms, errors summed)", () => {
  const output = [
    'Running 1s test @ http://127.0.0.1:1/small',
    'WRK_JSON {"requests":20000,"durationUs":2000000,"bytes":4000000,"errors":{"connect":1,"read":2,"write":0,"status":5,"timeout":3},"latencyUs":{"min":50,"mean":120.5,"max":9000,"p50":100,"p90":200,"p99":1500,"p999":4000}}',
  ].join('\n');
  const result = parseWrkOutput(output);
  assert.equal(result.rps, 10_000);
  assert.equal(result.mbps, 2);
  assert.equal(result.errors, 6);
  assert.equal(result.badStatus, 5);
  assert.equal(result.latencyMs.p99, 1.5);
  assert.equal(result.latencyMs.p999, 4);
  assert.throws(() => parseWrkOutput('connection refused'), /wrk printed no result/);
});

void test("poisson-load's POISSON_JSON line becomes a LoadResult with its self-check", () => {
  const output =
    'POISSON_JSON {"requests":25000,"durationUs":5000000,"bytes":1000000,"errors":{"connect":1,"read":2,"write":3,"status":4,"timeout":5},"latencyUs":{"min":20,"mean":150.5,"max":4000,"p50":120,"p90":200,"p99":600,"p999":2000},"lateUs":{"p99":45,"max":3000},"backlog":{"waited":7,"max":3},"gapsBelow10Us":0.0210}\n';
  const result = parsePoissonOutput(output);
  assert.equal(result.tool, 'poisson-load');
  assert.equal(result.rps, 5_000);
  assert.equal(result.errors, 11);
  assert.equal(result.badStatus, 4);
  assert.equal(result.latencyMs.p99, 0.6);
  assert.deepEqual(result.arrivals, {
    lateP99Ms: 0.045,
    lateMaxMs: 3,
    backlogWaited: 7,
    backlogMax: 3,
    gapsBelow10Us: 0.021,
  });
  assert.throws(() => parsePoissonOutput('poisson-load: giving up'), /printed no result/);
});

void test('VmRSS and VmHWM come from /proc/PID/status', () => {
  const status = 'Name:\tnode\nVmHWM:\t  131812 kB\nVmRSS:\t   87332 kB\nThreads:\t11\n';
  assert.deepEqual(parseProcStatus(status), { rssKiB: 87332, hwmKiB: 131812 });
  assert.equal(parseProcStatus('Name:\tnode\n'), undefined);
});

void test('bench options: quick defaults, sections validated', () => {
  const quick = parseBenchArgs(['--quick']);
  assert.equal(quick.durationS, 1);
  assert.equal(quick.repeats, 2);
  assert.equal(quick.pacedRepeats, 2);
  assert.equal(quick.pin, true);
  const full = parseBenchArgs(['--only', 'throughput,idle', '--repeats', '5', '--no-pin']);
  assert.deepEqual(full.sections, ['throughput', 'idle']);
  assert.equal(full.repeats, 5);
  // The Poisson case gets at least 7 repetitions in a full run, more with a larger --repeats.
  assert.equal(full.pacedRepeats, 7);
  assert.equal(parseBenchArgs(['--repeats', '9']).pacedRepeats, 9);
  assert.equal(parseBenchArgs(['--paced-repeats', '4']).pacedRepeats, 4);
  // The Poisson case's warm-up: 12 s in a full run, --warmup's when that is given or quick.
  assert.equal(full.pacedWarmupS, 12);
  assert.equal(quick.pacedWarmupS, 1);
  assert.equal(parseBenchArgs(['--warmup', '3']).pacedWarmupS, 3);
  assert.equal(parseBenchArgs(['--warmup', '3', '--paced-warmup', '20']).pacedWarmupS, 20);
  assert.equal(full.pin, false);
  assert.throws(() => parseBenchArgs(['--only', 'nope']), /unknown section/);
  assert.throws(() => parseBenchArgs(['--duration', 'x']), /expected a number/);
});

/** A run of `rps` requests/s whose latency percentiles are all 1 ms but the p99 (and above). */
function loadRun(rps: number, p99: number, tool: LoadResult['tool'] = 'wrk'): LoadResult {
  return {
    tool,
    requests: rps,
    durationS: 1,
    bytes: 0,
    errors: 0,
    badStatus: 0,
    rps,
    mbps: 0,
    latencyMs: { mean: 1, p50: 1, p90: 1, p99, p999: p99, max: p99 },
  };
}

/** Results of a quick run with only these throughput cases. */
function withCases(cases: ThroughputResult['cases']): BenchResults {
  return {
    startedAt: 'now',
    quick: true,
    machine: {},
    notes: [],
    throughput: { backend: 'nginx', peers: [], cases },
  };
}

void test('targets are ratios between peers of the same run', () => {
  const run = loadRun;
  /** The added-latency case as generated by `tool`: p99 direct 0.25, anubis 0.5, nginx 0.75. */
  const pacedCase = (tool: LoadResult['tool']) => ({
    id: 'small-paced-50',
    title: 'small, paced',
    metric: 'rps' as const,
    connections: 50,
    peers: [
      summarizeRuns('direct', [run(5_000, 0.25, tool)]),
      summarizeRuns('anubis-1w', [run(5_000, 0.5, tool)]),
      summarizeRuns('nginx-1w', [run(5_000, 0.75, tool)]),
    ],
  });
  const results: BenchResults = {
    startedAt: 'now',
    quick: true,
    machine: {},
    notes: [],
    throughput: {
      backend: 'nginx',
      peers: [],
      cases: [
        {
          id: 'small-ka-50',
          title: 'small',
          metric: 'rps',
          connections: 50,
          peers: [
            summarizeRuns('direct', [run(100_000, 1)]),
            summarizeRuns('anubis-1w', [run(26_000, 3)]),
            summarizeRuns('anubis-auto', [run(39_000, 3)]),
            summarizeRuns('nginx-1w', [run(50_000, 2)]),
            summarizeRuns('fastify-reply-from', [run(20_000, 5)]),
            summarizeRuns('http-proxy', [run(10_000, 9)]),
          ],
        },
        pacedCase('poisson-load'),
        { ...pacedCase('poisson-load'), id: 'small-paced-50-steady' },
        {
          id: 'small-burst-50',
          title: 'small, bursts',
          metric: 'rps',
          connections: 50,
          peers: [
            summarizeRuns('direct', [run(5_000, 0.5)]),
            summarizeRuns('anubis-1w', [run(5_000, 2.5)]),
            summarizeRuns('nginx-1w', [run(5_000, 1)]),
          ],
        },
      ],
    },
    idle: [
      {
        peer: 'anubis 1 worker',
        requested: 10,
        open: 10,
        rssBeforeMiB: 1,
        rssAfterMiB: 2,
        bytesPerConnection: 10_240,
        fdLimit: 100,
        seconds: 1,
      },
    ],
  };
  const targets = new Map(computeTargets(results).map((t) => [t.name, t]));
  const node = targets.get('small GET keep-alive: anubis 1 worker / fastest Node peer (req/s)');
  assert.equal(node?.measured, 1.3);
  assert.equal(node?.pass, true);
  assert.equal(
    targets.get('small GET keep-alive: anubis 1 worker / nginx 1 worker (req/s)')?.measured,
    0.52,
  );
  // At saturation, (3 − 1) / (2 − 1): reported only (it is queueing behind req/s).
  const saturated = targets.get('added p99 over direct at saturation: anubis / nginx');
  assert.equal(saturated?.measured, 2);
  assert.equal(saturated?.pass, undefined);
  // Paced: (0.5 − 0.25) / (0.75 − 0.25) = 0.5, within the target.
  const paced = targets.get('added p99 over direct at ≈ 5,000 req/s: anubis / nginx');
  assert.equal(paced?.measured, 0.5);
  assert.equal(paced.pass, true);
  // The same load with each peer's runs back to back: reported next to it, no verdict.
  const steady = targets.get(
    "added p99 over direct at ≈ 5,000 req/s, steady (each peer's runs back to back): anubis / nginx",
  );
  assert.equal(steady?.measured, 0.5);
  assert.equal(steady.pass, undefined);
  // The same case generated by wrk's ms pauses (no gcc): clumped arrivals, reported only.
  const fallback: BenchResults = {
    ...results,
    throughput: {
      backend: 'nginx',
      peers: [],
      cases: [pacedCase('wrk-ms-pauses')],
    },
  };
  const unjudged = computeTargets(fallback).find((t) =>
    t.name.startsWith('added p99 over direct at ≈ 5,000'),
  );
  assert.equal(
    unjudged?.name,
    'added p99 over direct at ≈ 5,000 req/s: anubis / nginx (NOT Poisson: wrk-ms-pauses generated it)',
  );
  assert.equal(unjudged.pass, undefined);
  // Bursts: (2.5 − 0.5) / (1 − 0.5) = 4, reported only (it restates CPU per request).
  const bursts = targets.get('added p99 over direct, bursts of 50: anubis / nginx');
  assert.equal(bursts?.measured, 4);
  assert.equal(bursts?.pass, undefined);
  assert.equal(
    targets.get('small GET keep-alive: anubis workers auto / 1 worker (req/s)')?.measured,
    1.5,
  );
  assert.equal(targets.get('idle keep-alive connections: RSS per connection (KiB)')?.measured, 10);
  // Each case's table says how many interleaved runs its medians come from.
  const summary = formatSummary({
    ...results,
    throughput: {
      backend: 'nginx',
      peers: [],
      cases: [
        {
          ...pacedCase('poisson-load'),
          peers: [summarizeRuns('direct', [run(5_000, 0.25), run(5_000, 0.3)])],
        },
      ],
    },
  });
  assert.match(summary, /\| small, paced \(2 runs\) +\| +req\/s \|/);
});

void test('steal is read per CPU from /proc/stat and judges which paced runs were quiet', () => {
  // Linux 6.1's layout: user nice system idle iowait irq softirq steal guest guest_nice.
  const at = (busy0: number, steal0: number, steal1: number): Map<number, CpuTimes> =>
    parseCpuTimes(
      `cpu  9 0 9 9 0 0 0 ${steal0 + steal1} 0 0\n` +
        `cpu0 ${busy0} 1 2 50 7 3 4 ${steal0} 0 0\n` +
        `cpu1 10 0 0 50 0 0 0 ${steal1} 0 0\nintr 1 2\n`,
    );
  // busy: user + nice + system + irq + softirq, idle and iowait left out; ticks are 10 ms.
  assert.deepEqual(
    [...at(5, 3, 7)],
    [
      [0, { busy: 150, steal: 30 }],
      [1, { busy: 100, steal: 70 }],
    ],
  );
  // Both CPUs: 30 ms stolen while they ran 170 ms (all of it on CPU 0).
  assert.deepEqual(stealBetween(at(5, 3, 7), at(22, 5, 8), undefined), { ms: 30, share: 0.15 });
  assert.deepEqual(stealBetween(at(5, 3, 7), at(22, 5, 8), [1]), { ms: 10, share: 1 });
  assert.equal(stealBetween(at(5, 3, 7), at(22, 5, 8), [4]), undefined);
  assert.deepEqual(parseCpuTimes('cpu0 1 2 3 4\n'), new Map());
  assert.deepEqual(cpuNumbers('0'), [0]);
  assert.deepEqual(cpuNumbers('0,2-4'), [0, 2, 3, 4]);
  assert.equal(cpuNumbers(undefined), undefined);
  assert.throws(() => cpuNumbers('0;1'), /not a CPU list/);

  // The added-p99 ratio over quiet runs, next to the one over all runs.
  const run = (p99: number, share: number): LoadResult => ({
    ...loadRun(5_000, p99, 'poisson-load'),
    steal: { ms: share * 10_000, share },
  });
  const noisy = QUIET_STEAL_SHARE * 4;
  const results = withCases([
    {
      id: 'small-paced-50',
      title: 'small, paced',
      metric: 'rps',
      connections: 50,
      peers: [
        summarizeRuns('direct', [run(0.2, 0), run(2, noisy), run(0.3, QUIET_STEAL_SHARE)]),
        summarizeRuns('anubis-1w', [run(0.5, 0), run(9, noisy), run(8, noisy)]),
        summarizeRuns('nginx-1w', [run(0.4, 0), run(3, noisy), run(0.6, 0)]),
      ],
    },
  ]);
  const targets = computeTargets(results);
  // All runs: (8 − 0.3) / (0.6 − 0.3).
  const all = targets.find(
    (t) => t.name === 'added p99 over direct at ≈ 5,000 req/s: anubis / nginx',
  );
  assert.ok(Math.abs((all?.measured ?? 0) - 7.7 / 0.3) < 1e-9);
  // Quiet runs: anubis 0.5 (one run), nginx 0.5 (0.4 and 0.6), direct 0.25: (0.25) / (0.25).
  const quiet = targets.find((t) => t.name.includes('quiet runs only'));
  assert.equal(
    quiet?.name,
    'added p99 over direct at ≈ 5,000 req/s, quiet runs only (steal ≤ 2% of busy; anubis 1/3, nginx 2/3, direct 2/3): anubis / nginx',
  );
  assert.ok(Math.abs((quiet?.measured ?? 0) - 1) < 1e-9);
  assert.equal(quiet?.pass, undefined);
});

void test('cpu profiles are summed by area and function', () => {
  assert.equal(areaOf('file:///x/node_modules/undici/lib/a.js', 'f'), 'undici');
  assert.equal(areaOf('file:///x/.cache/bench-build/src/proxy/http-proxy.js', 'f'), 'anubis');
  assert.equal(areaOf('node:_http_server', 'f'), 'node:http');
  assert.equal(areaOf('', '(garbage collector)'), 'GC');
  const summary = summarizeProfile({
    nodes: [
      { id: 1, callFrame: { functionName: '(idle)', url: '', lineNumber: 0 } },
      {
        id: 2,
        callFrame: {
          functionName: 'onHeaders',
          url: 'file:///r/src/proxy/http-proxy.js',
          lineNumber: 9,
        },
      },
    ],
    samples: [1, 2, 2],
    timeDeltas: [1000, 2000, 3000],
  });
  assert.equal(summary.totalMs, 6);
  assert.equal(summary.byArea.get('anubis'), 5);
  assert.equal(summary.byFunction.get('onHeaders src/proxy/http-proxy.js:10'), 5);
});
