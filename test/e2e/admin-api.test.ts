import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { request } from 'undici';
import { startAnubis } from '../helpers/anubis.js';
import { startNamedBackend } from '../helpers/servers.js';

interface BackendJson {
  id: string;
  state: string;
  weight: number;
  effectiveWeight: number;
  healthy: boolean;
  active: number;
  requests: number;
  requestsPerSecond: number;
  errorRate: number | null;
  share: number | null;
  latency: { ewmaMs: number; p50Ms: number | null; p99Ms: number | null };
}
interface PoolsJson {
  workers: number;
  pools: { name: string; backends: BackendJson[] }[];
}

async function call(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  token?: string,
): Promise<{ status: number; json: unknown; text: string }> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const res = await request(`${base}${path}`, {
    method: method as 'GET',
    headers,
    body: body === undefined ? null : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, json, text };
}

async function fire(url: string, n: number): Promise<string[]> {
  const bodies: string[] = [];
  for (let i = 0; i < n; i++) {
    const res = await request(url);
    bodies.push(await res.body.text());
  }
  return bodies;
}

async function setup(t: TestContext, adminExtra: Record<string, unknown> = {}) {
  const a = await startNamedBackend('a');
  const b = await startNamedBackend('b');
  const lb = await startAnubis(
    [
      { url: a.url, name: 'a' },
      { url: b.url, name: 'b' },
    ],
    {},
    { admin: { address: '127.0.0.1:0', ...adminExtra } },
  );
  t.after(async () => {
    await lb.close();
    await a.close();
    await b.close();
  });
  const admin = lb.balancer.admin;
  assert.ok(admin, 'admin listener started');
  return { lb, a, b, admin: `http://127.0.0.1:${admin.boundAddress().port}` };
}

void test('GET /api/pools reports live per-backend state', async (t) => {
  const { lb, admin } = await setup(t);
  await fire(lb.url, 20);
  const { status, json } = await call(admin, 'GET', '/api/pools');
  assert.equal(status, 200);
  const view = json as PoolsJson;
  assert.equal(view.workers, 1);
  const pool = view.pools[0];
  assert.ok(pool);
  assert.equal(pool.name, 'test');
  assert.deepEqual(
    pool.backends.map((b) => b.id),
    ['a', 'b'],
  );
  for (const backend of pool.backends) {
    assert.equal(backend.requests, 10);
    assert.equal(backend.healthy, true);
    assert.equal(backend.state, 'enabled');
    assert.equal(backend.weight, 1);
    assert.equal(backend.active, 0);
    assert.ok(backend.latency.ewmaMs > 0);
  }
});

void test('drain, enable, weight, add and remove through the API change the traffic', async (t) => {
  const { lb, admin } = await setup(t);
  let res = await call(admin, 'POST', '/api/pools/test/backends/a/drain');
  assert.equal(res.status, 200);
  assert.equal((res.json as BackendJson).state, 'draining');
  assert.deepEqual(new Set(await fire(lb.url, 6)), new Set(['b']));

  res = await call(admin, 'POST', '/api/pools/test/backends/a/enable');
  assert.equal((res.json as BackendJson).state, 'enabled');
  res = await call(admin, 'PUT', '/api/pools/test/backends/a', { weight: 3 });
  assert.equal(res.status, 200);
  assert.equal((res.json as BackendJson).weight, 3);
  const bodies = await fire(lb.url, 40);
  assert.equal(bodies.filter((x) => x === 'a').length, 30);

  const c = await startNamedBackend('c');
  t.after(() => c.close());
  res = await call(admin, 'POST', '/api/pools/test/backends', { url: c.url, name: 'c' });
  assert.equal(res.status, 201, res.text);
  assert.ok((await fire(lb.url, 10)).includes('c'));

  res = await call(admin, 'DELETE', '/api/pools/test/backends/a');
  assert.equal(res.status, 200, res.text);
  assert.ok(!(await fire(lb.url, 10)).includes('a'));
  res = await call(admin, 'PUT', '/api/pools/test/backends/b', { state: 'disabled' });
  assert.equal((res.json as BackendJson).state, 'disabled');
  assert.deepEqual(new Set(await fire(lb.url, 4)), new Set(['c']));
});

void test('bad input gets clear JSON errors', async (t) => {
  const { admin } = await setup(t);
  const cases: [string, string, unknown, number, string][] = [
    ['GET', '/api/pools/nope', undefined, 404, 'ANUBIS_ADMIN_NOT_FOUND'],
    ['POST', '/api/pools/test/backends/zz/drain', undefined, 404, 'ANUBIS_ADMIN_NOT_FOUND'],
    ['PUT', '/api/pools/test/backends/a', { weight: 0 }, 400, 'ANUBIS_ADMIN_BAD_REQUEST'],
    ['PUT', '/api/pools/test/backends/a', { colour: 'red' }, 400, 'ANUBIS_ADMIN_BAD_REQUEST'],
    ['PUT', '/api/pools/test/backends/a', '{not json', 400, 'ANUBIS_ADMIN_BAD_REQUEST'],
    ['POST', '/api/pools/test/backends', { url: 'ftp://x' }, 400, 'ANUBIS_ADMIN_BAD_REQUEST'],
    [
      'POST',
      '/api/pools/test/backends',
      { url: 'http://127.0.0.1:1', name: 'a' },
      409,
      'ANUBIS_ADMIN_CONFLICT',
    ],
    ['POST', '/api/reload', undefined, 409, 'ANUBIS_RELOAD_UNAVAILABLE'],
    ['GET', '/api/nothing', undefined, 404, 'ANUBIS_ADMIN_NOT_FOUND'],
  ];
  for (const [method, path, body, status, code] of cases) {
    const res = await call(admin, method, path, body);
    assert.equal(res.status, status, `${method} ${path}: ${res.text}`);
    const error = (res.json as { error: { code: string; message: string } }).error;
    assert.equal(error.code, code, `${method} ${path}`);
    assert.ok(error.message.length > 10);
  }
  const weight = await call(admin, 'PUT', '/api/pools/test/backends/a', { weight: 0 });
  assert.match(weight.text, /weight/);
});

void test('bearer token guards the API but not the static dashboard page', async (t) => {
  const { admin } = await setup(t, { token: 'secret-token-1' });
  assert.equal((await call(admin, 'GET', '/api/pools')).status, 401);
  assert.equal((await call(admin, 'GET', '/metrics')).status, 401);
  assert.equal((await call(admin, 'GET', '/api/pools', undefined, 'wrong-token-1')).status, 401);
  assert.equal((await call(admin, 'GET', '/api/pools', undefined, 'secret-token-1')).status, 200);
  const page = await call(admin, 'GET', '/');
  assert.equal(page.status, 200);
  assert.match(page.text, /<html/i);
});

void test('GET /metrics exposes Prometheus text with per-backend series', async (t) => {
  const { lb, admin } = await setup(t);
  await fire(lb.url, 10);
  const { status, text } = await call(admin, 'GET', '/metrics');
  assert.equal(status, 200);
  assert.match(text, /# TYPE anubis_requests_total counter/);
  assert.match(text, /anubis_requests_total\{pool="test",backend="a",class="2xx"\} 5/);
  assert.match(text, /# TYPE anubis_backend_request_duration_seconds histogram/);
  assert.match(
    text,
    /anubis_backend_request_duration_seconds_bucket\{pool="test",backend="b",le="\+Inf"\} 5/,
  );
  assert.match(text, /anubis_backend_request_duration_seconds_count\{pool="test",backend="b"\} 5/);
  assert.match(text, /anubis_backend_up\{pool="test",backend="a"\} 1/);
  assert.match(text, /anubis_backend_active_requests\{pool="test",backend="a"\} 0/);
  assert.match(text, /anubis_backend_state\{pool="test",backend="a",state="enabled"\} 1/);
  assert.match(text, /anubis_client_connections\{listener="127.0.0.1:0"\} \d+/);
});

void test('GET /api/pools/:pool/explain returns the strategy scores', async (t) => {
  const { admin } = await setup(t);
  const res = await call(admin, 'GET', '/api/pools/test/explain');
  assert.equal(res.status, 200, res.text);
  const body = res.json as { pool: string; strategy: string; backends: { backend: string }[] };
  assert.equal(body.pool, 'test');
  assert.equal(body.strategy, 'round-robin');
  assert.deepEqual(body.backends.map((b) => b.backend).sort(), ['a', 'b']);
});
