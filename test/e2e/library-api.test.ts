// The library API end to end (from source): a config object with a Strategy object or a
// factory in it, backend events from health checks and membership changes, close().
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { request } from 'undici';
import {
  createLoadBalancer,
  ConfigError,
  isExcluded,
  type BackendEvent,
  type BackendView,
  type PickContext,
  type Strategy,
} from '../../src/index.js';
import { parseYaml, validateConfig } from '../../src/config/load.js';
import { startNamedBackend, type TestServer } from '../helpers/servers.js';

/** Routes by the `x-backend` request header (a backend id), else to the first eligible one. */
class HeaderStrategy implements Strategy {
  readonly name = 'by-header';
  backends: readonly BackendView[] = [];
  setBackends(backends: readonly BackendView[]): void {
    this.backends = backends;
  }
  pick(context: PickContext): BackendView | undefined {
    const wanted = context.headers['x-backend'];
    const match = this.backends.find((b) => b.id === wanted && !isExcluded(context, b));
    return match ?? this.backends.find((b) => !isExcluded(context, b));
  }
}

async function body(url: string, headers: Record<string, string> = {}): Promise<string> {
  const response = await request(url, { headers });
  return response.body.text();
}

void test('a Strategy object and a factory with options, passed in the config object', async (t) => {
  const servers = await Promise.all(['a', 'b', 'c'].map((n) => startNamedBackend(n)));
  t.after(() => Promise.all(servers.map((s) => s.close())));
  const [a, b, c] = servers as [TestServer, TestServer, TestServer];
  let factoryOptions: Record<string, unknown> | undefined;
  // A factory: called once per pool with the options written next to it.
  const lastOf = (options: Record<string, unknown>): Strategy => {
    factoryOptions = options;
    let backends: readonly BackendView[] = [];
    return {
      name: 'last',
      setBackends: (list) => (backends = list),
      pick: () => backends[backends.length - 1],
    };
  };
  const lb = await createLoadBalancer({
    workers: 1,
    listeners: [
      { address: '127.0.0.1:0', pool: 'routed' },
      { address: '127.0.0.1:0', pool: 'last' },
    ],
    pools: {
      routed: {
        strategy: new HeaderStrategy(),
        backends: [
          { url: a.url, name: 'a' },
          { url: b.url, name: 'b' },
        ],
      },
      last: {
        strategy: { name: 'last-one', factory: lastOf, flavour: 'plain' },
        backends: [{ url: a.url }, { url: c.url }],
      },
    },
  });
  t.after(() => lb.close(1_000));
  const [routed, last] = lb.addresses().map((x) => `http://127.0.0.1:${x.port}/`) as [
    string,
    string,
  ];
  assert.equal(await body(routed, { 'x-backend': 'b' }), 'b');
  assert.equal(await body(routed, { 'x-backend': 'a' }), 'a');
  assert.equal(await body(routed), 'a');
  assert.equal(await body(last), 'c');
  assert.deepEqual(factoryOptions, { flavour: 'plain' });
  assert.equal(lb.pools.get('routed')?.strategy.name, 'by-header');
  assert.equal(lb.pools.get('last')?.strategy.name, 'last');
});

void test('a bare factory function is accepted; YAML cannot smuggle code in', async (t) => {
  const server = await startNamedBackend('only');
  t.after(() => server.close());
  const lb = await createLoadBalancer({
    listeners: [{ address: '127.0.0.1:0', pool: 'p' }],
    pools: {
      p: {
        strategy: function firstEligible(): Strategy {
          let first: BackendView | undefined;
          return { name: 'first', setBackends: (l) => (first = l[0]), pick: () => first };
        },
        backends: [{ url: server.url }],
      },
    },
  });
  t.after(() => lb.close(1_000));
  assert.equal(await body(`http://127.0.0.1:${lb.addresses()[0]?.port}/`), 'only');

  const yaml = `
listeners: [{ address: "127.0.0.1:0", pool: p }]
pools:
  p:
    strategy: { name: mine, pick: "() => backends[0]", setBackends: "() => {}" }
    backends: [{ url: "http://127.0.0.1:1" }]
`;
  assert.throws(
    () => validateConfig(parseYaml(yaml, 'x.yaml'), 'x.yaml'),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /pools\.p\.strategy: expected one of .*found "mine"/);
      return true;
    },
  );
  // A factory returning something that is not a strategy fails start-up with a clear error.
  await assert.rejects(
    createLoadBalancer({
      listeners: [{ address: '127.0.0.1:0', pool: 'p' }],
      pools: { p: { strategy: () => ({}) as Strategy, backends: [{ url: server.url }] } },
    }),
    /did not return a strategy/,
  );
});

void test('backend-down / backend-up from health checks, backend-removed, and close()', async (t) => {
  const server = await startNamedBackend('flaky');
  const steady = await startNamedBackend('steady');
  t.after(() => steady.close());
  const lb = await createLoadBalancer({
    listeners: [{ address: '127.0.0.1:0', pool: 'p' }],
    pools: {
      p: {
        backends: [
          { url: server.url, name: 'flaky' },
          { url: steady.url, name: 'steady' },
        ],
        health: { active: { interval: '100ms', timeout: '500ms', rise: 1, fall: 1, jitter: 0 } },
      },
    },
  });
  let closed = false;
  t.after(() => (closed ? undefined : lb.close(1_000)));
  const events: string[] = [];
  const record = (kind: string) => (event: BackendEvent) =>
    events.push(`${kind} ${event.pool}/${event.backend}`);
  lb.on('backend-down', record('down'))
    .on('backend-up', record('up'))
    .on('backend-removed', record('removed'));

  const down = once(lb.events, 'backend-down') as Promise<[BackendEvent]>;
  await server.close();
  const [downEvent] = await down;
  assert.equal(downEvent.backend, 'flaky');
  assert.equal(downEvent.url, server.url);
  assert.match(downEvent.reason, /\S/);

  const revived = await startNamedBackendOn(server.port);
  t.after(() => revived.close());
  const [upEvent] = (await once(lb.events, 'backend-up')) as [BackendEvent];
  assert.equal(upEvent.backend, 'flaky');

  await lb.pools.get('p')?.removeBackend('flaky', 100);
  assert.deepEqual(events, ['down p/flaky', 'up p/flaky', 'removed p/flaky']);

  const url = `http://127.0.0.1:${lb.addresses()[0]?.port}/`;
  await lb.close(1_000);
  closed = true;
  await assert.rejects(request(url), /ECONNREFUSED/);
});

/** A named backend on a given port (the port a closed one had). */
async function startNamedBackendOn(port: number): Promise<{ close(): Promise<void> }> {
  const { createServer } = await import('node:http');
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('flaky'));
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
