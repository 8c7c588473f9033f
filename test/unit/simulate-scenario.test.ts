// anubis simulate: the --backends grammar, the YAML scenario schema and its key-path errors.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, UsageError } from '../../src/errors.js';
import { builtinStrategies } from '../../src/strategies/registry.js';
import {
  DEFAULT_BACKENDS,
  defaultStrategies,
  parseBackendsFlag,
  validateScenario,
  type Scenario,
} from '../../src/simulate/scenario.js';
import { describeProfile } from '../../src/simulate/table.js';

function fromFlag(spec: string, extra: Record<string, unknown> = {}): Scenario {
  return validateScenario({ backends: parseBackendsFlag(spec), ...extra }, '--backends');
}

/** The issues of the ConfigError that `fn` throws, as `path: message` lines. */
function issuesOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error.issues.map((i) => `${i.path}: ${i.message}`);
  }
  assert.fail('expected an error');
}

void test('the default backends: numbered duplicate names, fixed and normal latencies', () => {
  const scenario = fromFlag(DEFAULT_BACKENDS);
  assert.deepEqual(
    scenario.backends.map((b) => b.id),
    ['fast-1', 'fast-2', 'slow'],
  );
  assert.deepEqual(scenario.backends[0]?.phases, [{ atMs: 0, latency: { kind: 'fixed', ms: 20 } }]);
  assert.deepEqual(scenario.backends[2]?.phases, [
    { atMs: 0, latency: { kind: 'normal', meanMs: 200, sdMs: 50 } },
  ]);
  assert.equal(scenario.seed, 1);
  assert.equal(scenario.requests, 3000);
  assert.equal(scenario.concurrency, 32);
  assert.equal(scenario.timeLimitMs, 30_000);
});

void test('the grammar: +- for ±, log-normal, changes over time, death, unnamed backends', () => {
  const scenario = fromFlag(
    '200ms+-50ms, tail:50ms~400ms, aging:20ms>200ms@10s>1s~3s@20s, dying:20ms>down@1.5s',
  );
  assert.deepEqual(
    scenario.backends.map((b) => b.id),
    ['b1', 'tail', 'aging', 'dying'],
  );
  assert.deepEqual(scenario.backends[1]?.phases[0], {
    atMs: 0,
    latency: { kind: 'lognormal', medianMs: 50, p99Ms: 400 },
  });
  assert.deepEqual(scenario.backends[2]?.phases, [
    { atMs: 0, latency: { kind: 'fixed', ms: 20 } },
    { atMs: 10_000, latency: { kind: 'fixed', ms: 200 } },
    { atMs: 20_000, latency: { kind: 'lognormal', medianMs: 1000, p99Ms: 3000 } },
  ]);
  assert.deepEqual(scenario.backends[3]?.phases[1], { atMs: 1500, down: true });
  // The description is the grammar again.
  assert.deepEqual(scenario.backends.map(describeProfile), [
    'b1:200ms±50ms',
    'tail:50ms~400ms',
    'aging:20ms>200ms@10s>1s~3s@20s',
    'dying:20ms>down@1.5s',
  ]);
});

void test('the YAML object forms mean the same as the text forms', () => {
  const scenario = validateScenario(
    {
      seed: 9,
      requests: 100,
      concurrency: 4,
      timeLimit: '5s',
      strategies: ['round-robin'],
      backends: [
        { name: 'a', latency: { fixed: '20ms' } },
        { name: 'b', latency: { normal: { mean: '200ms', sd: 50 } }, weight: 3 },
        {
          name: 'c',
          latency: { lognormal: { median: '50ms', p99: '400ms' } },
          changes: [
            { at: '2s', latency: '10ms' },
            { at: '3s', down: true },
          ],
        },
      ],
    },
    'scenario.yaml',
  );
  assert.deepEqual(scenario.backends.map(describeProfile), [
    'a:20ms',
    'b:200ms±50ms (weight 3)',
    'c:50ms~400ms>10ms@2s>down@3s',
  ]);
  assert.equal(scenario.timeLimitMs, 5000);
  assert.deepEqual(scenario.strategies, [
    { name: 'round-robin', options: {}, label: 'round-robin' },
  ]);
  if (builtinStrategies.has('hash')) {
    const hashed = validateScenario(
      { strategies: ['hash', { name: 'hash', key: 'path' }], backends: [{ latency: '1ms' }] },
      's.yaml',
    );
    assert.deepEqual(
      hashed.strategies.map((s) => s.label),
      ['hash', 'hash(key=path)'],
    );
    assert.equal(hashed.strategies[1]?.options.key, 'path');
  }
});

void test('bad latencies and times name the key path, what was expected and what was found', () => {
  assert.match(
    issuesOf(() => fromFlag('a:20ms,b:20xs'))[0] as string,
    /^backends\[1\]\.latency: expected a latency such as 20ms.*found "20xs"/,
  );
  assert.match(
    issuesOf(() => fromFlag('a:90s'))[0] as string,
    /^backends\[0\]\.latency: expected a latency <= 60s, found 90s/,
  );
  assert.match(
    issuesOf(() => fromFlag('a:50ms~10ms'))[0] as string,
    /^backends\[0\]\.latency: expected a log-normal p99 >= its median/,
  );
  assert.match(
    issuesOf(() => fromFlag('a:20ms>30ms@5s>40ms@4s'))[0] as string,
    /^backends\[0\]\.changes\[1\]\.at: expected a time later than the previous change \(5000ms\), found 4000ms/,
  );
  assert.match(
    issuesOf(() => fromFlag('a:20ms>down@5s>30ms@6s'))[0] as string,
    /^backends\[0\]\.changes\[1\]: expected nothing after down/,
  );
  assert.match(
    issuesOf(() => fromFlag('a:20ms>30ms@soon'))[0] as string,
    /^backends\[0\]\.changes\[0\]\.at: expected a duration.*found "soon"/,
  );
  assert.match(
    issuesOf(() => fromFlag('bad name:20ms'))[0] as string,
    /^backends\[0\]\.name: expected letters/,
  );
});

void test('bad YAML scenarios name the key path', () => {
  const issues = issuesOf(() =>
    validateScenario(
      {
        requests: 0,
        concurrency: 'many',
        speed: 3,
        strategies: ['round-robin', 'no-such-strategy'],
        backends: [
          { name: 'a', latency: { normal: { mean: '20ms' } } },
          { name: 'b' },
          { name: 'c', latency: { gamma: 3 } },
          { name: 'd', latency: '5ms', changes: [{ at: '1s' }] },
        ],
      },
      'scenario.yaml',
    ),
  );
  const text = issues.join('\n');
  assert.match(text, /^requests: expected a number >= 1, found 0$/m);
  assert.match(text, /^concurrency: expected a number, found "many"$/m);
  assert.match(text, /^: unknown key "speed"/m);
  assert.match(text, /^backends\[0\]\.latency\.normal\.sd: expected a duration/m);
  assert.match(text, /^backends\[1\]\.latency: expected a latency such as .* found nothing$/m);
  assert.match(text, /^backends\[2\]\.latency: expected a latency such as .* found a mapping$/m);
  assert.match(text, /^backends\[3\]\.changes\[0\]: expected either latency .* or down: true/m);

  const strategyIssues = issuesOf(() =>
    validateScenario(
      { strategies: ['round-robin', 'no-such-strategy'], backends: [{ latency: '1ms' }] },
      's.yaml',
    ),
  );
  assert.match(
    strategyIssues[0] as string,
    /^strategies\[1\]: expected one of round-robin.* found "no-such-strategy"/,
  );
});

void test('a malformed --backends step is a usage error', () => {
  assert.throws(() => parseBackendsFlag('a:20ms>200ms'), UsageError);
  assert.throws(() => parseBackendsFlag('a:20ms,,b:1ms'), /backend 2 .*found nothing/);
});

void test('the default comparison is the preferred strategies the registry has, round robin first', () => {
  const names = defaultStrategies().map((s) => s.name);
  assert.equal(names[0], 'round-robin');
  for (const name of names) assert.ok(builtinStrategies.has(name));
  for (const name of ['least-connections', 'least-time', 'random-two']) {
    assert.equal(names.includes(name), builtinStrategies.has(name), name);
  }
  assert.deepEqual(fromFlag('a:1ms').strategies, defaultStrategies());
});

void test('examples/simulate.yaml is a valid scenario, its pool keys valid for anubis', async () => {
  const { readConfigFile } = await import('../../src/config/load.js');
  const { checkRunConfig } = await import('../../src/simulate/run.js');
  const file = new URL('../../examples/simulate.yaml', import.meta.url).pathname;
  const scenario = validateScenario(await readConfigFile(file), file);
  assert.deepEqual(scenario.backends.map(describeProfile), [
    'steady:20ms±5ms',
    'tail:20ms~120ms',
    'degrading:20ms>150ms±30ms@2s',
    'crashing:20ms>down@3s',
  ]);
  assert.equal(scenario.timeLimitMs, 5000);
  checkRunConfig(scenario, file);
  assert.throws(
    () => checkRunConfig({ ...scenario, pool: { strategy: 'random' } }, 's.yaml'),
    /s\.yaml: pool\.strategy: set by the simulator/,
  );
});
