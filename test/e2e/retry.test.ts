// Retries through real sockets: a POST whose body reached a backend that then dies is not
// replayed (502) while the same GET is retried; a request that hits a pooled keep-alive
// connection the backend had closed is resent (body included) and never fails; a POST with
// an Idempotency-Key is retried when the pool opts in; a retryable 503 is replaced by another
// backend's answer.
import assert from 'node:assert/strict';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import { startAnubis } from '../helpers/anubis.js';
import {
  startBackend,
  startRawBackend,
  type RawBackend,
  type TestServer,
} from '../helpers/servers.js';

/** Counts of complete requests ("METHOD path body") a backend received, in order. */
function requestLog(raw: RawBackend): string[] {
  const out: string[] = [];
  for (const chunks of raw.received) {
    const text = Buffer.concat(chunks).toString('latin1');
    for (const match of text.matchAll(/^([A-Z]+) (\S+) HTTP\/1\.1\r\n/gm)) {
      out.push(`${match[1]} ${match[2]}`);
    }
  }
  return out;
}

/** Index of the end of the first complete request (headers + Content-Length body), or -1. */
function requestEnd(data: Buffer, from = 0): number {
  const headerEnd = data.indexOf('\r\n\r\n', from);
  if (headerEnd === -1) return -1;
  const head = data.subarray(from, headerEnd).toString('latin1');
  const length = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
  const end = headerEnd + 4 + length;
  return data.length >= end ? end : -1;
}

/** A backend that reads each whole request and then dies: closes the connection, no answer. */
function startDyingBackend(): Promise<RawBackend> {
  return startRawBackend((data, socket) => {
    if (requestEnd(data) !== -1) socket.destroy();
  });
}

/** A backend that reads each request's body, pushes `describe(req, body)` to `seen`, answers 200. */
function startBodyRecorder(
  seen: string[],
  describe: (req: IncomingMessage, body: string) => string,
): Promise<TestServer> {
  return startBackend((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      seen.push(describe(req, body));
      res.end('served by healthy');
    });
  });
}

function send(
  url: string,
  method: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${url}/item`, { method, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

void test('a POST whose body reached a backend that died is not replayed (502); the same GET is retried', async (t) => {
  const dying = await startDyingBackend();
  const seen: string[] = [];
  const healthy = await startBodyRecorder(seen, (req, body) => `${req.method} ${body}`);
  // Round robin starts with the first backend: every first attempt goes to the dying one.
  const lb = await startAnubis([dying.url, healthy.url], {
    health: { passive: { enabled: false } },
  });
  t.after(async () => {
    await lb.close();
    await dying.close();
    await healthy.close();
  });

  const post = await send(lb.url, 'POST', 'pay 10 euros', { 'content-type': 'text/plain' });
  assert.equal(post.status, 502);
  assert.deepEqual(requestLog(dying), ['POST /item'], 'the POST reached the dying backend');
  assert.deepEqual(seen, [], 'and was not replayed anywhere');

  // Round robin's next pick is the healthy backend: send one request there to line up again.
  assert.equal((await send(lb.url, 'GET')).status, 200);
  const get = await send(lb.url, 'GET');
  assert.equal(get.status, 200);
  assert.equal(get.body, 'served by healthy');
  assert.deepEqual(requestLog(dying), ['POST /item', 'GET /item'], 'the GET reached it first');
  assert.deepEqual(seen, ['GET ', 'GET ']);
});

void test('a POST with an Idempotency-Key is retried when the pool opts in', async (t) => {
  const dying = await startDyingBackend();
  const seen: string[] = [];
  const healthy = await startBodyRecorder(
    seen,
    (req, body) => `${req.method} ${body} ${String(req.headers['idempotency-key'])}`,
  );
  const lb = await startAnubis([dying.url, healthy.url], {
    health: { passive: { enabled: false } },
    retry: { idempotencyKey: true },
  });
  t.after(async () => {
    await lb.close();
    await dying.close();
    await healthy.close();
  });
  const res = await send(lb.url, 'POST', 'order 42', { 'idempotency-key': 'k-42' });
  assert.equal(res.status, 200);
  assert.deepEqual(requestLog(dying), ['POST /item']);
  assert.deepEqual(seen, ['POST order 42 k-42'], 'replayed once, body included');
  // Without the header it is still refused.
  await send(lb.url, 'GET'); // realign round robin onto the dying backend
  const plain = await send(lb.url, 'POST', 'order 43');
  assert.equal(plain.status, 502);
});

/**
 * A keep-alive backend that answers the first request of each connection (advertising
 * keep-alive) and then, when the next request arrives on that connection, closes it without
 * reading or answering: exactly what a backend whose idle timeout fired looks like.
 */
function startOneShotKeepAliveBackend(): Promise<RawBackend & { answered: string[] }> {
  const answered: string[] = [];
  const answeredOn = new WeakSet<Socket>();
  return startRawBackend((data, socket) => {
    if (answeredOn.has(socket)) {
      socket.destroy();
      return;
    }
    const end = requestEnd(data);
    if (end === -1) return;
    answeredOn.add(socket);
    const text = data.subarray(0, end).toString('latin1');
    const body = text.slice(text.indexOf('\r\n\r\n') + 4);
    answered.push(`${text.slice(0, text.indexOf(' '))} ${body}`);
    const reply = `echo:${body}`;
    socket.write(
      `HTTP/1.1 200 OK\r\nconnection: keep-alive\r\ncontent-length: ${reply.length}\r\n\r\n${reply}`,
    );
  }).then((raw) => Object.assign(raw, { answered }));
}

void test('a pooled keep-alive connection the backend had closed: the next request on it does not fail (body replayed)', async (t) => {
  const backend = await startOneShotKeepAliveBackend();
  const lb = await startAnubis([backend.url]);
  t.after(async () => {
    await lb.close();
    await backend.close();
  });
  const pool = lb.balancer.pools.get('test');
  assert.ok(pool);
  for (let i = 0; i < 10; i++) {
    const get = await send(lb.url, 'GET');
    assert.equal(get.status, 200, `GET #${i}`);
    const post = await send(lb.url, 'POST', `payment ${i}`, { 'content-type': 'text/plain' });
    assert.equal(post.status, 200, `POST #${i}`);
    assert.equal(post.body, `echo:payment ${i}`);
  }
  // Every request after the first met a stale pooled connection and was resent on a new one.
  assert.ok(backend.received.length >= 20, `${backend.received.length} connections`);
  assert.equal(
    backend.answered.filter((a) => a.startsWith('POST')).length,
    10,
    'each POST processed once',
  );
  // Not the backend's fault: passive health never ejected it.
  assert.equal(pool.backends[0]?.healthy, true);
  assert.ok((pool.backends[0]?.retries ?? 0) >= 19, 'counted as retries');
});

void test('a backend that closes its keep-alive connection right after each response never fails a request', async (t) => {
  // Advertises keep-alive, then ends the connection just after the response went out.
  const backend = await startRawBackend((data, socket) => {
    if (requestEnd(data) === -1) return;
    socket.write('HTTP/1.1 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nok');
    setImmediate(() => socket.end());
  });
  const lb = await startAnubis([backend.url]);
  t.after(async () => {
    await lb.close();
    await backend.close();
  });
  const statuses = new Map<number, number>();
  for (let i = 0; i < 50; i++) {
    const { status } = await send(
      lb.url,
      i % 2 === 0 ? 'GET' : 'POST',
      i % 2 === 0 ? undefined : 'x',
    );
    statuses.set(status, (statuses.get(status) ?? 0) + 1);
  }
  assert.deepEqual([...statuses], [[200, 50]]);
});

void test('a 503 is retried on another backend when retry.on lists it', async (t) => {
  const busy = await startBackend((_req, res) => {
    res.writeHead(503, { 'content-type': 'text/plain' });
    res.end('busy');
  });
  const fine = await startBackend((_req, res) => res.end('fine'));
  const lb = await startAnubis([busy.url, fine.url], {
    retry: { on: ['connect', 'reset', '503'] },
  });
  t.after(async () => {
    await lb.close();
    await busy.close();
    await fine.close();
  });
  for (let i = 0; i < 6; i++) {
    const res = await send(lb.url, 'GET');
    assert.equal(res.status, 200);
    assert.equal(res.body, 'fine');
  }
  // Not for a POST (it reached the backend).
  const results = new Set<number>();
  for (let i = 0; i < 4; i++) results.add((await send(lb.url, 'POST', 'x')).status);
  assert.deepEqual([...results].sort(), [200, 503]);
});
