// DNS discovery without sockets: which entries are discovered, the re-resolution delay (TTL
// within [minInterval, interval], back-off after failures) and the configuration errors.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { DEFAULT_DISCOVERY, type BackendConfig } from '../../src/config/schema.js';
import { DnsDiscovery, discoveredFrom, type DnsResolver } from '../../src/discovery/dns.js';
import { discoveryFor } from '../../src/discovery/start.js';
import { silentLogger } from '../../src/logging/logger.js';
import { createRoundRobin } from '../../src/strategies/round-robin.js';
import { UpstreamPool } from '../../src/upstream/pool.js';

function entry(url: string, discovery?: unknown): BackendConfig {
  const config = validateConfig(
    {
      listeners: [{ address: '127.0.0.1:0', pool: 'p' }],
      pools: { p: { backends: [discovery === undefined ? { url } : { url, discovery }] } },
    },
    'test',
  );
  return config.pools.p?.backends[0] as BackendConfig;
}

void test('host names are discovered by default; IP literals, localhost and `none` are not', () => {
  assert.deepEqual(discoveryFor(entry('http://hello:8000')), DEFAULT_DISCOVERY);
  assert.equal(discoveryFor(entry('http://127.0.0.1:8000')), undefined);
  assert.equal(discoveryFor(entry('http://[::1]:8000')), undefined);
  assert.equal(discoveryFor(entry('http://localhost:8000')), undefined);
  assert.equal(discoveryFor(entry('http://api.localhost:8000')), undefined);
  assert.equal(discoveryFor(entry('http://hello:8000', 'none')), undefined);
  assert.equal(discoveryFor(entry('http://hello:8000', 'srv'))?.type, 'srv');
  const explicit = discoveryFor(
    entry('http://127.0.0.1:8000', { type: 'dns', name: 'hello.svc', interval: '30s' }),
  );
  assert.equal(explicit?.name, 'hello.svc');
  assert.equal(explicit?.interval, 30_000);
  assert.equal(explicit?.minInterval, 1_000);
});

void test('discovery settings are validated with key paths', () => {
  const check = (discovery: unknown): string => {
    try {
      entry('http://hello:8000', discovery);
    } catch (error) {
      return (error as Error).message;
    }
    return 'valid';
  };
  assert.match(
    check({ interval: '100ms' }),
    /backends\[0\]\.discovery\.interval: expected a duration of at least 500ms/,
  );
  assert.match(
    check({ minInterval: '10s', interval: '5s' }),
    /discovery\.minInterval: expected at most interval/,
  );
  assert.match(
    check({ servers: ['not a server'] }),
    /discovery\.servers\[0\]: expected a DNS server address/,
  );
  assert.match(check({ type: 'mdns' }), /discovery/);
  assert.match(check('consul'), /discovery/);
  assert.match(check({ ttl: 5 }), /unknown key "ttl"/);
  assert.equal(
    check({ servers: ['10.0.0.2', '127.0.0.1:8600', '[fd00::2]:53', 'fd00::3'] }),
    'valid',
  );
  for (const bad of ['cafe', 'dns.example:53', ':53', '10.0.0.300']) {
    assert.match(check({ servers: [bad] }), /expected a DNS server address/, bad);
  }
});

/** A resolver whose answers the test sets; `fail` makes every query reject with that code. */
class FakeResolver implements DnsResolver {
  a: { address: string; ttl: number }[] = [];
  aaaa: { address: string; ttl: number }[] = [];
  fail: string | undefined;
  private answer<T>(value: T): Promise<T> {
    if (this.fail !== undefined) {
      return Promise.reject(Object.assign(new Error(this.fail), { code: this.fail }));
    }
    return Promise.resolve(value);
  }
  resolve4() {
    return this.a.length === 0 && this.fail === undefined
      ? Promise.reject(Object.assign(new Error('ENODATA'), { code: 'ENODATA' }))
      : this.answer(this.a);
  }
  resolve6() {
    return this.aaaa.length === 0 && this.fail === undefined
      ? Promise.reject(Object.assign(new Error('ENODATA'), { code: 'ENODATA' }))
      : this.answer(this.aaaa);
  }
  resolveSrv() {
    return this.answer([]);
  }
}

function discovery(resolver: FakeResolver, interval = 5_000, minInterval = 1_000) {
  const backend = entry('http://hello:8000');
  const pool = new UpstreamPool(
    'p',
    validateConfig(
      { listeners: [{ address: '127.0.0.1:0', pool: 'p' }], pools: { p: { backends: [backend] } } },
      't',
    ).pools.p as never,
    createRoundRobin(),
  );
  const d = new DnsDiscovery({
    pool,
    entry: backend,
    config: { ...DEFAULT_DISCOVERY, interval, minInterval },
    resolver,
    logger: silentLogger(),
  });
  return { d, pool };
}

void test('the next resolution follows the shortest TTL, within [minInterval, interval]', async () => {
  const resolver = new FakeResolver();
  const { d, pool } = discovery(resolver);
  resolver.a = [
    { address: '10.0.0.1', ttl: 2 },
    { address: '10.0.0.2', ttl: 30 },
  ];
  assert.equal(await d.round(), 2_000);
  assert.deepEqual(pool.backends.map((b) => b.id).sort(), [
    'hello@10.0.0.1:8000',
    'hello@10.0.0.2:8000',
  ]);
  assert.equal(discoveredFrom(pool.backends[0]!), 'hello:8000');
  resolver.a = [{ address: '10.0.0.1', ttl: 0 }];
  assert.equal(await d.round(), 1_000, 'TTL 0: never sooner than minInterval');
  resolver.a = [{ address: '10.0.0.1', ttl: 600 }];
  assert.equal(await d.round(), 5_000, "Docker's 600 s TTL: still every interval");
  await pool.close();
});

void test('failures keep the backends and back off from minInterval to interval', async () => {
  const resolver = new FakeResolver();
  const { d, pool } = discovery(resolver, 4_000, 500);
  resolver.a = [{ address: '10.0.0.1', ttl: 60 }];
  resolver.aaaa = [{ address: 'fd00::1', ttl: 60 }];
  await d.round();
  const ids = pool.backends.map((b) => b.id).sort();
  assert.deepEqual(ids, ['hello@10.0.0.1:8000', 'hello@[fd00::1]:8000']);
  resolver.fail = 'ETIMEOUT';
  assert.deepEqual(
    [await d.round(), await d.round(), await d.round(), await d.round(), await d.round()],
    [500, 1_000, 2_000, 4_000, 4_000],
  );
  assert.equal(d.failures, 5);
  assert.deepEqual(pool.backends.map((b) => b.id).sort(), ids);
  resolver.fail = undefined;
  resolver.aaaa = [];
  assert.equal(await d.round(), 4_000);
  assert.equal(d.failures, 0);
  assert.deepEqual(
    pool.backends.map((b) => b.id),
    ['hello@10.0.0.1:8000'],
  );
  await pool.close();
});
