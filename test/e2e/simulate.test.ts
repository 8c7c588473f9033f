// anubis simulate end to end: simulated backends on loopback, the real proxy per strategy,
// the closed-loop load, and the CLI (table on stdout, report file, errors with key paths).
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { test } from 'node:test';
import { request } from 'undici';
import { SimulatedBackend } from '../../src/simulate/backends.js';
import { runSimulation } from '../../src/simulate/run.js';
import { parseBackendsFlag, validateScenario } from '../../src/simulate/scenario.js';
import { builtinStrategies } from '../../src/strategies/registry.js';
import { runCli } from '../helpers/anubis.js';
import { LAST_BACKEND_STRATEGY } from '../helpers/strategy-sources.js';

function scenario(backends: string, extra: Record<string, unknown> = {}) {
  return validateScenario({ backends: parseBackendsFlag(backends), ...extra }, 'test');
}

void test('round robin splits evenly; least-connections starves the slow backend', async () => {
  const strategies = ['round-robin', 'least-connections'].filter((s) => builtinStrategies.has(s));
  const result = await runSimulation(
    scenario('a:5ms,b:5ms,slow:80ms', { requests: 600, concurrency: 12, seed: 3, strategies }),
  );
  assert.equal(result.runs.length, strategies.length);
  for (const run of result.runs) {
    assert.equal(run.completed, 600, run.strategy);
    assert.equal(run.errors, 0, run.strategy);
    assert.equal(
      run.answers.reduce((s, a) => s + a, 0),
      600,
    );
    assert.ok(Math.abs(run.shares.reduce((s, x) => s + x, 0) - 1) < 1e-9);
    assert.ok(run.p50Ms <= run.p90Ms && run.p90Ms <= run.p99Ms && run.p99Ms <= run.maxMs);
    // Every answer waited about the backend's fixed latency at least (Node's timers count from
    // the event loop's cached clock, so they may fire up to ~1 ms early).
    assert.ok((run.cdf[0]?.[0] ?? 0) >= 4, `fastest ${run.cdf[0]?.[0]}`);
    assert.ok(run.throughput > 0 && !run.timeLimited);
  }
  const roundRobin = result.runs[0]!;
  // Smooth round robin over three equal weights: 200 answers each (±1 for the order of completion).
  for (const answers of roundRobin.answers) assert.ok(Math.abs(answers - 200) <= 1, `${answers}`);
  assert.ok(roundRobin.maxMs >= 80);
  const leastConnections = result.runs[1];
  if (leastConnections !== undefined) {
    // The slow backend holds its connections 16× longer, so it gets far fewer requests.
    assert.ok(
      leastConnections.shares[2]! < 0.2,
      `slow share under least-connections ${leastConnections.shares[2]}`,
    );
  }
});

void test('hash strategies see many clients: by client address and by path', async (t) => {
  if (!builtinStrategies.has('hash')) {
    t.skip('no hash strategy in the registry');
    return;
  }
  const result = await runSimulation(
    scenario('a:1ms,b:1ms,c:1ms', {
      requests: 600,
      concurrency: 8,
      strategies: ['hash', { name: 'hash', key: 'path' }],
    }),
  );
  for (const run of result.runs) {
    // 1000 simulated clients hashed onto 3 backends: no backend far from a third.
    for (const share of run.shares)
      assert.ok(share > 0.15 && share < 0.55, `${run.strategy} ${share}`);
  }
});

void test('a backend that dies stops answering from then on; the time limit bounds the run', async () => {
  const started = performance.now();
  const result = await runSimulation(
    scenario('a:2ms,dying:2ms>down@600ms', {
      requests: 1_000_000,
      concurrency: 4,
      timeLimit: '1500ms',
      strategies: ['round-robin'],
    }),
  );
  const elapsed = performance.now() - started;
  const run = result.runs[0]!;
  assert.ok(run.timeLimited, 'stopped by the time limit');
  assert.ok(run.completed < 1_000_000);
  assert.ok(elapsed < 10_000, `run took ${elapsed} ms`);
  assert.ok(run.answers[1]! > 0, 'the dying backend answered before it died');
  // Answers ending well after the death (slices ending after 800 ms) never come from it.
  const late = run.sharesOverTime.filter((s) => s.atMs > 800 && s.shares[0]! > 0);
  assert.ok(late.length > 0);
  for (const slice of late) assert.equal(slice.shares[1], 0, `at ${slice.atMs} ms`);
});

void test('a slow-down starts at its time', async (t) => {
  const profile = validateScenario({ backends: parseBackendsFlag('x:2ms>60ms@300ms') }, 'test')
    .backends[0]!;
  const backend = new SimulatedBackend(profile, 1, 1);
  t.after(() => backend.close());
  await backend.listen();
  backend.begin();
  const timed = async (): Promise<number> => {
    const start = performance.now();
    const response = await request(backend.url);
    await response.body.text();
    return performance.now() - start;
  };
  await timed();
  const before = performance.now();
  await new Promise((resolve) => setTimeout(resolve, 350 - (performance.now() - before)));
  assert.ok((await timed()) >= 58, 'slow after 300 ms');
  assert.equal(backend.received, 2);
  assert.equal(backend.answered, 2);
});

void test('anubis simulate: table on stdout, progress on stderr, report file', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'anubis-sim-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const report = join(dir, 'out.html');
  const run = await runCli(
    [
      'simulate',
      '--backends',
      'a:3ms,b:3ms,c:20ms±5ms',
      '--requests',
      '200',
      '--concurrency',
      '8',
      '--strategies',
      'round-robin',
      '--seed',
      '4',
      '--report',
      report,
    ],
    30_000,
  );
  assert.equal(run.code, 0, run.stderr);
  assert.match(
    run.stdout,
    /3 backends \(a:3ms, b:3ms, c:20ms±5ms\), 200 requests per strategy, concurrency 8, seed 4/,
  );
  assert.match(run.stdout, /^strategy\s+req\/s\s+p50\s+p90\s+p99\s+max\s+errors\s+a\s+b\s+c$/m);
  assert.match(
    run.stdout,
    /^round-robin\s+\d+\s+[\d.]+ms\s+[\d.]+ms\s+[\d.]+ms\s+[\d.]+ms\s+0\s+3\d\.\d%\s+3\d\.\d%\s+3\d\.\d%$/m,
  );
  // stderr is not a terminal here: one plain line per strategy, no bar.
  assert.match(run.stderr, /^simulate: round-robin \(1\/1\) done: 200 requests in [\d.]+s$/m);
  assert.doesNotMatch(run.stderr, /\r/);
  const html = await readFile(report, 'utf8');
  assert.match(html, /^<!doctype html>/);
  assert.equal(html.match(/data-chart="latency-cdf"/g)?.length, 1);
});

void test('anubis simulate --scenario: a YAML file with weights, a custom strategy module and strategy options; flags override its keys', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'anubis-sim-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'last-backend.ts'), LAST_BACKEND_STRATEGY);
  const file = join(dir, 'scenario.yaml');
  await writeFile(
    file,
    [
      'seed: 5',
      'requests: 100000 # overridden by --requests',
      'concurrency: 4',
      'strategies: [round-robin, ./last-backend.ts, { name: hash, key: path }]',
      'backends:',
      '  - { name: a, latency: 2ms }',
      '  - { name: b, latency: 2ms±1ms, weight: 2 }',
      '',
    ].join('\n'),
  );
  const run = await runCli(['simulate', '--scenario', file, '--requests', '120'], 30_000);
  assert.equal(run.code, 0, run.stderr);
  assert.match(
    run.stdout,
    /2 backends \(a:2ms, b:2ms±1ms \(weight 2\)\), 120 requests per strategy, concurrency 4, seed 5/,
  );
  // Round robin follows the weights exactly; the custom module (resolved next to the
  // scenario file) sends everything to the last backend; hash by path spreads the keys.
  assert.match(run.stdout, /^round-robin\s.*\s0\s+33\.3%\s+66\.7%$/m);
  assert.match(run.stdout, /^\.\/last-backend\.ts\s.*\s0\s+0\.0%\s+100\.0%$/m);
  assert.match(run.stdout, /^hash\(key=path\)\s.*\s0\s+\d+\.\d%\s+\d+\.\d%$/m);
});

void test('anubis simulate: bad scenarios exit 2 naming the flag or key path', async (t) => {
  const badLatency = await runCli(['simulate', '--backends', 'a:20ms,b:fast']);
  assert.equal(badLatency.code, 2);
  assert.match(
    badLatency.stderr,
    /backends\[1\]\.latency: expected a latency such as 20ms.*found "fast"/,
  );

  const badStrategy = await runCli([
    'simulate',
    '--backends',
    'a:1ms',
    '--strategies',
    'round-robin,nope',
  ]);
  assert.equal(badStrategy.code, 2);
  assert.match(badStrategy.stderr, /strategies\[1\]: expected one of round-robin/);

  const typo = await runCli(['simulate', '--backend', 'http://127.0.0.1:9']);
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /simulate does not take --backend \(simulate takes --backends/);
  const elsewhere = await runCli(['--backends', 'a:1ms']);
  assert.equal(elsewhere.code, 2);
  assert.match(
    elsewhere.stderr,
    /--backends belongs to anubis simulate, not start \(did you mean --backend URL\?\)/,
  );

  const badNumber = await runCli(['simulate', '--requests', 'lots']);
  assert.equal(badNumber.code, 2);
  assert.match(badNumber.stderr, /--requests expects a whole number/);

  const dir = await mkdtemp(join(tmpdir(), 'anubis-sim-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'scenario.yaml');
  await writeFile(
    file,
    [
      'requests: 100',
      'backends:',
      '  - name: a',
      '    latency: { normal: { mean: 20ms, sd: -1 } }',
      '  - name: b',
      '    latency: 5ms',
      '    changes:',
      '      - { at: 1s, latency: 5ms, down: true }',
      'pool:',
      '  timeouts: { headers: soon }',
    ].join('\n'),
  );
  const badFile = await runCli(['simulate', '--scenario', file]);
  assert.equal(badFile.code, 2);
  assert.match(
    badFile.stderr,
    /scenario\.yaml: backends\[0\]\.latency\.normal\.sd: expected a duration/,
  );
  assert.match(
    badFile.stderr,
    /scenario\.yaml: backends\[1\]\.changes\[0\]: expected either latency/,
  );

  await writeFile(file, 'backends: [{ latency: 1ms }]\npool:\n  timeouts: { headers: soon }\n');
  const badPool = await runCli(['simulate', '--scenario', file]);
  assert.equal(badPool.code, 2);
  assert.match(badPool.stderr, /pool\.timeouts\.headers: expected a duration/);
});
