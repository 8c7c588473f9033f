import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseYaml, validateConfig } from '../../src/config/load.js';
import { ConfigError, ConfigReadError } from '../../src/errors.js';

const valid = `
workers: 2
listeners:
  - address: 127.0.0.1:8080
    pool: hello
pools:
  hello:
    strategy: round-robin
    backends:
      - url: http://127.0.0.1:9001
        weight: 2
      - url: http://127.0.0.1:9002/
`;

function issuesOf(text: string): string[] {
  try {
    validateConfig(parseYaml(text, 'test.yaml'), 'test.yaml');
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${String(error)}`);
    assert.equal(error.code, 'ANUBIS_CONFIG_INVALID');
    return error.issues.map((i) => `${i.path}: ${i.message}`);
  }
  assert.fail('expected the configuration to be rejected');
}

test('a valid configuration gets its defaults filled in', () => {
  const config = validateConfig(parseYaml(valid, 'test.yaml'), 'test.yaml');
  assert.equal(config.workers, 2);
  assert.deepEqual(config.listeners[0]?.address, {
    host: '127.0.0.1',
    port: 8080,
    text: '127.0.0.1:8080',
  });
  const pool = config.pools.hello;
  assert.ok(pool);
  assert.equal(
    pool.backends[1]?.url,
    'http://127.0.0.1:9002',
    'a trailing slash is normalised away',
  );
  assert.equal(pool.backends[1]?.weight, 1);
  assert.deepEqual(pool.strategy, { name: 'round-robin', options: {} });
  assert.deepEqual(pool.timeouts, { connect: 5000, headers: 60000, idle: 60000, total: 0 });
  assert.equal(config.log.level, 'info');
});

test('errors name the key path, what was expected and what was found', () => {
  const issues = issuesOf(valid.replace('weight: 2', 'weight: -3'));
  assert.deepEqual(issues, ['pools.hello.backends[0].weight: expected a number >= 1, found -3']);
});

test('every structural problem is reported at once; cross-checks follow once they are fixed', () => {
  const text = valid
    .replace('pool: hello', 'pool: helo')
    .replace('workers: 2', 'workers: many')
    .replace('strategy: round-robin', 'stratgy: round-robin')
    .replace('url: http://127.0.0.1:9001', 'url: ftp://127.0.0.1:9001');
  const issues = issuesOf(text);
  assert.equal(issues.length, 3, issues.join('\n'));
  assert.ok(
    issues.some((i) => i.startsWith('workers: expected one of "auto" or a number, found "many"')),
    issues.join('\n'),
  );
  assert.ok(
    issues.some((i) => i.startsWith('pools.hello: unknown key "stratgy"')),
    issues.join('\n'),
  );
  assert.ok(
    issues.some((i) => i.startsWith('pools.hello.backends[0].url: expected an http://, https://')),
    issues.join('\n'),
  );
  const crossChecks = issuesOf(valid.replace('pool: hello', 'pool: helo'));
  assert.deepEqual(crossChecks, [
    'listeners[0].pool: expected the name of a pool (hello), found "helo"',
  ]);
});

test('durations, addresses and strategies are checked', () => {
  const issues = issuesOf(
    valid
      .replace('address: 127.0.0.1:8080', 'address: localhost')
      .replace(
        'strategy: round-robin',
        'strategy: fastest-please\n    timeouts: { connect: 5 parsecs }',
      ),
  );
  assert.ok(
    issues.some((i) => i.startsWith('listeners[0].address: expected host:port')),
    issues.join('\n'),
  );
  assert.ok(
    issues.some((i) => i.startsWith('pools.hello.timeouts.connect: expected a duration')),
    issues.join('\n'),
  );
  // Strategy names are checked once the schema itself passes.
  const strategyIssues = issuesOf(
    valid.replace('strategy: round-robin', 'strategy: fastest-please'),
  );
  assert.match(
    strategyIssues[0] ?? '',
    /^pools\.hello\.strategy: expected one of round-robin.* found "fastest-please"/,
  );
});

test('backend URLs must be bare origins and unique', () => {
  const withPath = issuesOf(valid.replace('http://127.0.0.1:9001', 'http://127.0.0.1:9001/api'));
  assert.match(withPath[0] ?? '', /backends\[0\]\.url: expected a URL without path/);
  const duplicate = issuesOf(valid.replace('http://127.0.0.1:9002/', 'http://127.0.0.1:9001'));
  assert.match(duplicate[0] ?? '', /backends\[1\]: expected each backend once/);
});

test('missing required sections are named', () => {
  const issues = issuesOf('workers: 1\n');
  assert.ok(
    issues.some((i) => i.startsWith('listeners: expected a list, found nothing')),
    issues.join('\n'),
  );
  assert.ok(
    issues.some((i) => i.startsWith('pools: expected a mapping, found nothing')),
    issues.join('\n'),
  );
});

test('invalid YAML is a read error naming the source', () => {
  assert.throws(
    () => parseYaml('pools: [unclosed', 'broken.yaml'),
    (error: unknown) => {
      assert.ok(error instanceof ConfigReadError);
      assert.match(error.message, /broken\.yaml: invalid YAML/);
      return true;
    },
  );
  assert.throws(() => parseYaml('a: 1\na: 2\n', 'dup.yaml'), ConfigReadError);
});

test('trustedProxies entries must be IPs or CIDR blocks', () => {
  const issues = issuesOf(valid + 'trustedProxies: [10.0.0.0/8, "::1", 10.0.0.0/33, not-an-ip]\n');
  assert.equal(issues.length, 2, issues.join('\n'));
  assert.match(issues[0] ?? '', /^trustedProxies\[2\]: expected a prefix length from 0 to 32/);
  assert.match(issues[1] ?? '', /^trustedProxies\[3\]: expected an IP address or CIDR block/);
});
