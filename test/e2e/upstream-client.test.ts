// The two HTTP/1.1 clients towards backends (pool setting `client: anubis | undici`) through
// a real anubis: each scenario runs once per client and the client must see the same status,
// headers (Date aside) and body from both.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startAnubis, type RunningAnubis } from '../helpers/anubis.js';
import { createTestPki } from '../helpers/certs.js';
import { startScriptedBackend } from '../helpers/raw-http.js';
import { startBackend, startRawBackend, streamBytes } from '../helpers/servers.js';
import { Agent, request as undiciRequest } from 'undici';

const CLIENTS = ['anubis', 'undici'] as const;
type ClientKind = (typeof CLIENTS)[number];

interface Seen {
  readonly status: number;
  readonly statusMessage: string;
  /** Raw response headers without Date, as name/value pairs (names lower-cased). */
  readonly headers: string[];
  readonly bodyLength: number;
  readonly bodySha256: string;
  /** The body itself when short (for readable failures). */
  readonly body: string;
  readonly trailers: Record<string, string | undefined>;
}

interface Send {
  readonly method?: string;
  readonly path?: string;
  readonly headers?: OutgoingHttpHeaders;
  /** Written in pieces; the request is chunked unless headers give a content-length. */
  readonly body?: readonly Buffer[];
  /** Stop reading the response for this long after its first chunk (a slow client). */
  readonly pauseMs?: number;
}

/** One request through anubis on a fresh client connection; resolves with what the client saw. */
function send(url: string, options: Send = {}): Promise<Seen> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      `${url}${options.path ?? '/'}`,
      { method: options.method ?? 'GET', headers: options.headers ?? {}, agent: false },
      (res: IncomingMessage) => {
        const hash = createHash('sha256');
        let length = 0;
        let head = '';
        let paused = false;
        res.on('data', (chunk: Buffer) => {
          hash.update(chunk);
          length += chunk.length;
          if (head.length < 2_000) head += chunk.toString('latin1');
          if (options.pauseMs !== undefined && !paused) {
            paused = true;
            res.pause();
            setTimeout(() => res.resume(), options.pauseMs);
          }
        });
        res.on('error', reject);
        res.on('aborted', () => reject(new Error('response aborted')));
        res.on('end', () => {
          const headers: string[] = [];
          for (let i = 0; i < res.rawHeaders.length; i += 2) {
            const name = (res.rawHeaders[i] as string).toLowerCase();
            if (name !== 'date') headers.push(name, res.rawHeaders[i + 1] as string);
          }
          resolve({
            status: res.statusCode ?? 0,
            statusMessage: res.statusMessage ?? '',
            headers,
            bodyLength: length,
            bodySha256: hash.digest('hex'),
            body: head.slice(0, 2_000),
            trailers: { ...res.trailers },
          });
        });
      },
    );
    req.on('error', reject);
    for (const piece of options.body ?? []) req.write(piece);
    req.end();
  });
}

/** Starts one anubis per client kind in front of `backend` (same pool settings otherwise). */
async function startBoth(
  backend: string | Record<string, unknown>,
  pool: Record<string, unknown> = {},
): Promise<Record<ClientKind, RunningAnubis>> {
  const [anubis, undici] = await Promise.all(
    CLIENTS.map((client) => startAnubis([backend], { ...pool, client })),
  );
  return { anubis: anubis as RunningAnubis, undici: undici as RunningAnubis };
}

/** Sends the same request through both, checks they agree, returns what anubis's client gave. */
async function compare(lbs: Record<ClientKind, RunningAnubis>, options: Send = {}): Promise<Seen> {
  const seen = {} as Record<ClientKind, Seen>;
  for (const client of CLIENTS) seen[client] = await send(lbs[client].url, options);
  assert.deepEqual(seen.anubis, seen.undici, 'client: anubis and client: undici differ');
  return seen.anubis;
}

async function closeAll(
  lbs: Record<ClientKind, RunningAnubis>,
  ...rest: { close(): Promise<void> }[]
): Promise<void> {
  await Promise.all(CLIENTS.map((client) => lbs[client].close()));
  await Promise.all(rest.map((r) => r.close()));
}

test('the pool setting picks the client: anubis by default, undici on request', async (t) => {
  const backend = await startBackend((_req, res) => res.end('ok'));
  const lbs = await startBoth(backend.url);
  const plain = await startAnubis([backend.url]);
  t.after(() => closeAll(lbs, backend, plain));
  const clientOf = (lb: RunningAnubis): string => {
    const backends = lb.balancer.pools.get('test')?.backends ?? [];
    return backends[0]?.dispatcher.constructor.name ?? 'none';
  };
  assert.equal(clientOf(lbs.anubis), 'Http1Pool');
  assert.equal(clientOf(plain), 'Http1Pool');
  assert.equal(clientOf(lbs.undici), 'UndiciClient');
  for (const lb of [lbs.anubis, lbs.undici, plain]) {
    assert.equal((await send(lb.url)).body, 'ok');
  }
});

test('a large body streams both ways (8 MiB), with and without Content-Length', async (t) => {
  const size = 8 * 1024 * 1024;
  const backend = await startBackend((req, res) => {
    if (req.url === '/download') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
      streamBytes(res, size);
      return;
    }
    if (req.url === '/download-chunked') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      streamBytes(res, size);
      return;
    }
    const hash = createHash('sha256');
    let length = 0;
    req.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      length += chunk.length;
    });
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          length,
          sha256: hash.digest('hex'),
          contentLength: req.headers['content-length'] ?? null,
          chunked: req.headers['transfer-encoding'] ?? null,
        }),
      );
    });
  });
  const lbs = await startBoth(backend.url);
  t.after(() => closeAll(lbs, backend));
  const piece = Buffer.alloc(256 * 1024, 98);
  const pieces = Array.from({ length: size / piece.length }, () => piece);
  const expected = createHash('sha256');
  pieces.forEach((p) => expected.update(p));
  const expectedHash = expected.digest('hex');

  const down = await compare(lbs, { path: '/download' });
  assert.equal(down.status, 200);
  assert.equal(down.bodyLength, size);
  const downChunked = await compare(lbs, { path: '/download-chunked' });
  assert.equal(downChunked.bodyLength, size);
  assert.ok(downChunked.headers.includes('transfer-encoding'));

  const up = await compare(lbs, {
    method: 'POST',
    path: '/upload',
    headers: { 'content-length': size },
    body: pieces,
  });
  assert.deepEqual(JSON.parse(up.body), {
    length: size,
    sha256: expectedHash,
    contentLength: String(size),
    chunked: null,
  });
  const upChunked = await compare(lbs, { method: 'PUT', path: '/upload', body: pieces });
  assert.deepEqual(JSON.parse(upChunked.body), {
    length: size,
    sha256: expectedHash,
    contentLength: null,
    chunked: 'chunked',
  });
});

test('HEAD, 204, 304 and a 1xx before the answer look the same through both clients', async (t) => {
  const backend = await startBackend((req, res) => {
    if (req.url === '/204') {
      res.writeHead(204, { 'x-kind': 'no-content' });
      res.end();
    } else if (req.url === '/304') {
      res.writeHead(304, { etag: '"v1"', 'cache-control': 'max-age=60' });
      res.end();
    } else if (req.url === '/early') {
      res.writeEarlyHints({ link: '</style.css>; rel=preload' });
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('after hints');
    } else {
      res.writeHead(200, {
        'content-type': 'text/plain',
        'content-length': 1234,
        'x-multi': ['a', 'b'],
      });
      res.end(req.method === 'HEAD' ? undefined : 'x'.repeat(1234));
    }
  });
  const lbs = await startBoth(backend.url);
  t.after(() => closeAll(lbs, backend));
  const head = await compare(lbs, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.bodyLength, 0);
  assert.ok(head.headers.includes('1234'));
  // The connection the HEAD used still works.
  assert.equal((await compare(lbs)).bodyLength, 1234);
  const noContent = await compare(lbs, { path: '/204' });
  assert.equal(noContent.status, 204);
  assert.equal(noContent.bodyLength, 0);
  const notModified = await compare(lbs, { path: '/304', headers: { 'if-none-match': '"v1"' } });
  assert.equal(notModified.status, 304);
  assert.ok(notModified.headers.includes('"v1"'));
  const early = await compare(lbs, { path: '/early' });
  assert.equal(early.status, 200);
  assert.equal(early.body, 'after hints');
});

test('trailers reach a client that sent TE: trailers', async (t) => {
  const backend = await startBackend((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
    res.write('part one, ');
    res.addTrailers({ 'x-checksum': 'abc123', 'x-count': '2' });
    res.end('part two');
  });
  const lbs = await startBoth(backend.url);
  t.after(() => closeAll(lbs, backend));
  const seen = await compare(lbs, { headers: { te: 'trailers' } });
  assert.equal(seen.body, 'part one, part two');
  assert.equal(seen.trailers['x-checksum'], 'abc123');
  assert.equal(seen.trailers['x-count'], '2');
});

test('a close-delimited backend response (no Content-Length, no chunking) arrives whole', async (t) => {
  const body = 'close-delimited '.repeat(10_000);
  const backend = await startScriptedBackend((_request, socket) => {
    socket.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-framing: none\r\n\r\n');
    socket.end(body);
  });
  const lbs = await startBoth(backend.url);
  t.after(() => closeAll(lbs, backend));
  for (let i = 0; i < 3; i++) {
    const seen = await compare(lbs);
    assert.equal(seen.status, 200);
    assert.equal(seen.bodyLength, body.length);
  }
});

test('a backend closing each keep-alive connection after its response: no client-visible error', async (t) => {
  const ok = 'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok';
  // FIN right behind the response (no Connection: close): the idle connection is stale.
  const closing = await startScriptedBackend((_request, socket) => socket.end(ok));
  // Worse: the backend keeps the connection open but drops it when a second request comes.
  const dropping = await startScriptedBackend((_request, socket, nth) => {
    if (nth === 0) socket.write(ok);
    else socket.destroy();
  });
  const lbs = {
    closing: await startBoth(closing.url),
    dropping: await startBoth(dropping.url),
  };
  t.after(async () => {
    await closeAll(lbs.closing, closing);
    await closeAll(lbs.dropping, dropping);
  });
  for (const [name, pair] of Object.entries(lbs)) {
    for (let i = 0; i < 20; i++) {
      // POST too: a stale pooled connection is retried whatever the method.
      const method = i % 2 === 0 ? 'GET' : 'POST';
      const body = method === 'POST' ? [Buffer.from('payload')] : [];
      const headers = method === 'POST' ? { 'content-length': 7 } : {};
      const seen = await compare(pair, { method, body, headers });
      assert.equal(seen.status, 200, `${name} request ${i}`);
      assert.equal(seen.body, 'ok');
    }
  }
});

test('header bytes beyond ASCII, an unusual reason phrase, Expect: 100-continue, head size limits', async (t) => {
  const big = 'v'.repeat(20_000);
  const backend = await startScriptedBackend((request, socket) => {
    const target = request.split(' ', 2)[1];
    if (target === '/bytes') {
      socket.write(
        Buffer.from(
          'HTTP/1.1 200 Tr\xe8s Bien\r\ncontent-disposition: attachment; filename="caf\xc3\xa9.txt"\r\n' +
            'x-latin1: \xe9t\xe9\r\ncontent-length: 2\r\n\r\nok',
          'latin1',
        ),
      );
    } else if (target === '/huge-head') {
      socket.write(`HTTP/1.1 200 OK\r\nx-big: ${big}\r\ncontent-length: 2\r\n\r\nok`);
    } else {
      const expect = /\r\nexpect: ([^\r]*)/i.exec(request)?.[1] ?? 'none';
      const body = request.slice(request.indexOf('\r\n\r\n') + 4);
      const answer = `expect=${expect} body=${body}`;
      socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${answer.length}\r\n\r\n${answer}`);
    }
  });
  const lbs = await startBoth(backend.url);
  t.after(() => closeAll(lbs, backend));
  // Header bytes pass through unchanged with both clients.
  const seen = {
    anubis: await send(lbs.anubis.url, { path: '/bytes' }),
    undici: await send(lbs.undici.url, { path: '/bytes' }),
  };
  for (const client of CLIENTS) {
    const bytes = seen[client];
    assert.equal(bytes.status, 200);
    assert.ok(
      bytes.headers.includes('attachment; filename="caf\xc3\xa9.txt"'),
      `${client}: ${bytes.headers.join('|')}`,
    );
    assert.ok(bytes.headers.includes('\xe9t\xe9'), client);
  }
  assert.deepEqual(seen.anubis.headers, seen.undici.headers);
  // The reason phrase differs: anubis's client relays its bytes (obs-text is valid,
  // RFC 9112 §4); undici decodes it as UTF-8, gets U+FFFD, and anubis falls back to the
  // standard phrase.
  assert.equal(seen.anubis.statusMessage, 'Tr\xe8s Bien');
  assert.equal(seen.undici.statusMessage, 'OK');
  const huge = await compare(lbs, { path: '/huge-head' });
  assert.equal(huge.status, 502);
  const expect = await compare(lbs, {
    method: 'POST',
    path: '/expect',
    headers: { expect: '100-continue', 'content-length': 5 },
    body: [Buffer.from('hello')],
  });
  assert.equal(expect.status, 200);
  assert.match(expect.body, /body=hello$/);
});

test('an https backend (certificate checked against the pool CA)', async (t) => {
  const pki = await createTestPki();
  const leaf = await pki.leaf('backend', ['localhost', '127.0.0.1']);
  const server = createHttpsServer({ cert: leaf.cert, key: leaf.key }, (req, res) => {
    if (req.url === '/big') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      streamBytes(res, 4 * 1024 * 1024);
      return;
    }
    let length = 0;
    req.on('data', (chunk: Buffer) => (length += chunk.length));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain', 'x-tls': 'yes' });
      res.end(`${req.method} ${req.url} ${length}`);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const lbs = await startBoth(`https://127.0.0.1:${port}`, { tls: { ca: pki.ca.certFile } });
  // The SNI name given explicitly: checked against the certificate's DNS name.
  const named = await startBoth(`https://127.0.0.1:${port}`, {
    tls: { ca: pki.ca.certFile, servername: 'localhost' },
  });
  t.after(async () => {
    await closeAll(lbs);
    await closeAll(named);
    server.closeAllConnections();
    server.close();
    await pki.cleanup();
  });
  for (const pair of [lbs, named]) {
    const small = await compare(pair, { path: '/a?b=1' });
    assert.equal(small.status, 200);
    assert.equal(small.body, 'GET /a?b=1 0');
    const post = await compare(pair, { method: 'POST', body: [Buffer.alloc(300_000, 1)] });
    assert.equal(post.body, 'POST / 300000');
    const big = await compare(pair, { path: '/big' });
    assert.equal(big.bodyLength, 4 * 1024 * 1024);
  }
  // An untrusted certificate fails the same way through both.
  const untrusted = await startBoth(`https://127.0.0.1:${port}`);
  t.after(() => closeAll(untrusted));
  const refused = await compare(untrusted);
  assert.equal(refused.status, 502);
});

test('an IPv6 backend on ::1', async (t) => {
  const backend = await startBackend((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`host=${req.headers.host ?? ''} from=${req.socket.remoteAddress ?? ''}`);
  });
  await backend.close();
  const server = backend.server;
  const listening = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(0, '::1', () => resolve(true));
  });
  if (!listening) {
    t.skip('no ::1 on this machine');
    return;
  }
  const { port } = server.address() as AddressInfo;
  const lbs = await startBoth(`http://[::1]:${port}`);
  t.after(async () => {
    await closeAll(lbs);
    server.closeAllConnections();
    server.close();
  });
  for (let i = 0; i < 2; i++) {
    const seen = await compare(lbs, { path: '/v6', headers: { host: 'example.test' } });
    assert.equal(seen.status, 200);
    assert.equal(seen.body, 'host=example.test from=::1');
  }
});

test('a slow client holding the response longer than timeouts.idle still gets all of it', async (t) => {
  const size = 32 * 1024 * 1024;
  const backend = await startBackend((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
    streamBytes(res, size);
  });
  const lbs = await startBoth(backend.url, { timeouts: { idle: '500ms' } });
  t.after(() => closeAll(lbs, backend));
  // The client stops reading for 2 s after its first chunk: anubis's buffers fill, the
  // backend is paused, and it is not the backend that is idle.
  const results: Record<string, string> = {};
  for (const client of CLIENTS) {
    try {
      const seen = await send(lbs[client].url, { pauseMs: 2_000 });
      results[client] = `${seen.status} ${seen.bodyLength}`;
    } catch (error) {
      results[client] = `error: ${(error as Error).message}`;
    }
  }
  t.diagnostic(JSON.stringify(results));
  assert.equal(results.undici, `200 ${size}`);
  assert.equal(results.anubis, results.undici);
});

test('a chunked response of many small chunks to a slow client: no listener leak warning', async (t) => {
  const warnings: string[] = [];
  const onWarning = (warning: Error): void => {
    if (warning.name === 'MaxListenersExceededWarning') warnings.push(warning.message);
  };
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));
  // 16 MiB in 64-byte chunks, written in large blocks.
  const block = Buffer.from(`40\r\n${'z'.repeat(64)}\r\n`.repeat(1024), 'latin1');
  const backend = await startScriptedBackend((_request, socket) => {
    socket.write(
      'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n',
    );
    let sent = 0;
    const pump = (): void => {
      while (sent < 256) {
        sent++;
        if (!socket.write(block)) {
          socket.once('drain', pump);
          return;
        }
      }
      socket.write('0\r\n\r\n');
    };
    pump();
  });
  const lbs = await startBoth(backend.url);
  t.after(() => closeAll(lbs, backend));
  const seen = await compare(lbs, { pauseMs: 1_000 });
  assert.equal(seen.bodyLength, 256 * 1024 * 64);
  await sleep(50);
  assert.deepEqual(warnings, []);
});

test('other undici traffic in the process does not make a fresh-connection reset look stale (no duplicate POST)', async (t) => {
  let posts = 0;
  const answered = new WeakSet<object>();
  // Resets each connection 300 ms after its first request, before any response.
  const backend = await startRawBackend((data, socket) => {
    if (!data.includes('\r\n\r\n') || answered.has(socket)) return;
    answered.add(socket);
    posts++;
    setTimeout(() => socket.resetAndDestroy(), 300);
  });
  const other = await startBackend((_req, res) => res.end('x'));
  const lb = await startAnubis([backend.url], { client: 'anubis' });
  const agent = new Agent({ keepAliveTimeout: 10_000 });
  t.after(async () => {
    await lb.close();
    await backend.close();
    await other.close();
    await agent.close();
  });
  await (await undiciRequest(other.url, { dispatcher: agent })).body.text();
  const post = undiciRequest(`${lb.url}/`, { method: 'POST', body: 'hello' });
  await sleep(100);
  // A request on a reused keep-alive socket elsewhere in the process (library embedding).
  await (await undiciRequest(other.url, { dispatcher: agent })).body.text();
  const res = await post;
  await res.body.text();
  assert.equal(res.statusCode, 502);
  assert.equal(posts, 1, 'a POST reset on a fresh connection must not be sent again');
});
