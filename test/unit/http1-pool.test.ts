// anubis's HTTP/1.1 client (src/upstream/http1): Http1Pool driven directly with a recording
// handler, against raw loopback backends that write exact bytes.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer as createHttpsServer } from 'node:https';
import { connect, createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TLSSocket } from 'node:tls';
import { loadLlhttp } from '../../src/upstream/http1/llhttp.js';
import { Http1Pool, type Http1PoolOptions } from '../../src/upstream/http1/pool.js';
import type { UpstreamHandler, UpstreamRequest } from '../../src/upstream/upstream-client.js';
import { createTestPki } from '../helpers/certs.js';
import { startRawResponder, startScriptedBackend } from '../helpers/raw-http.js';
import { freePort, startRawBackend } from '../helpers/servers.js';

const parserClass = loadLlhttp();

function makePool(url: string, options: Partial<Http1PoolOptions> = {}): Http1Pool {
  assert.ok(parserClass !== undefined, "Node's llhttp parser is not reachable");
  return new Http1Pool(url, {
    id: 'backend',
    connectTimeoutMs: 5_000,
    keepAliveTimeoutMs: 4_000,
    parserClass,
    ...options,
  });
}

/** Destroys the pool, then closes the backend, when the test ends. */
function closeAfter(t: TestContext, pool: Http1Pool, backend: { close(): Promise<unknown> }): void {
  t.after(async () => {
    await pool.destroy();
    await backend.close();
  });
}

/** Records every call a pool makes on a handler. */
class Recorder implements UpstreamHandler {
  reusedSocket = false;
  readonly events: string[] = [];
  status = 0;
  statusText = '';
  headers: string[] = [];
  readonly chunks: Buffer[] = [];
  trailers: string[] | null | undefined = undefined;
  error: (Error & { code?: string }) | undefined = undefined;
  abort: (reason?: Error) => void = () => {};
  resume: () => void = () => {};
  /** What onData returns (and a hook to act on each chunk). */
  dataResult: (chunk: Buffer) => boolean = () => true;
  headersResult = true;
  readonly done: Promise<void>;
  private finish: () => void = () => {};

  constructor() {
    this.done = new Promise((resolve) => (this.finish = resolve));
  }

  onConnect(abort: (reason?: Error) => void): void {
    this.events.push('connect');
    this.abort = abort;
  }

  onHeaders(
    statusCode: number,
    rawHeaders: (Buffer | string)[],
    resume: () => void,
    statusText: string,
  ): boolean {
    this.events.push('headers');
    this.status = statusCode;
    this.statusText = statusText;
    this.headers = rawHeaders.map((h) => (typeof h === 'string' ? h : h.toString('latin1')));
    this.resume = resume;
    return this.headersResult;
  }

  onData(chunk: Buffer): boolean {
    if (this.events.at(-1) !== 'data') this.events.push('data');
    this.chunks.push(Buffer.from(chunk));
    return this.dataResult(chunk);
  }

  onComplete(trailers: (Buffer | string)[] | null): void {
    this.events.push('complete');
    this.trailers =
      trailers === null
        ? null
        : trailers.map((h) => (typeof h === 'string' ? h : h.toString('latin1')));
    this.finish();
  }

  onError(error: Error): void {
    this.events.push('error');
    this.error = error;
    this.finish();
  }

  get body(): string {
    return Buffer.concat(this.chunks).toString('latin1');
  }

  get received(): number {
    return this.chunks.reduce((n, c) => n + c.length, 0);
  }

  header(name: string): string | undefined {
    for (let i = 0; i < this.headers.length; i += 2) {
      if (this.headers[i]?.toLowerCase() === name) return this.headers[i + 1];
    }
    return undefined;
  }
}

function requestOf(overrides: Partial<UpstreamRequest> = {}): UpstreamRequest {
  return {
    path: '/',
    method: 'GET',
    headers: ['host', 'backend.test'],
    body: null,
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
    ...overrides,
  };
}

function dispatch(pool: Http1Pool, overrides: Partial<UpstreamRequest> = {}): Recorder {
  const handler = new Recorder();
  pool.dispatch(requestOf(overrides), handler);
  return handler;
}

/** Dispatches, waits for the end, and checks the handler got exactly one ending. */
async function run(
  pool: Http1Pool,
  overrides: Partial<UpstreamRequest> = {},
  prepare?: (handler: Recorder) => void,
): Promise<Recorder> {
  const handler = new Recorder();
  prepare?.(handler);
  pool.dispatch(requestOf(overrides), handler);
  await withTimeout(handler.done, 15_000, 'request did not end');
  await sleep(20); // a second ending would show up here
  const endings = handler.events.filter((e) => e === 'complete' || e === 'error');
  assert.equal(endings.length, 1, `one ending, got ${handler.events.join(',')}`);
  return handler;
}

async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function assertOk(handler: Recorder, status = 200): void {
  assert.equal(handler.error, undefined, `unexpected error: ${String(handler.error)}`);
  assert.equal(handler.status, status);
  assert.ok(handler.events.includes('complete'));
}

function assertFailed(handler: Recorder, codes: readonly string[]): void {
  assert.ok(handler.error !== undefined, `expected an error, events ${handler.events.join(',')}`);
  assert.ok(!handler.events.includes('complete'), 'no onComplete after a failure');
  assert.ok(
    codes.includes(handler.error.code ?? ''),
    `error code ${String(handler.error.code)} (${handler.error.message}) not in ${codes.join(', ')}`,
  );
}

/** Waits until `check` holds (polling), up to `ms`. */
async function until(check: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await sleep(10);
  }
}

/** A request, then another once the first connection is gone: the second is not on a reused one. */
async function assertNotReused(
  pool: Http1Pool,
  backend: { readonly received: readonly unknown[] },
): Promise<void> {
  assertOk(await run(pool));
  await until(() => pool.stats.connected === 0);
  const second = await run(pool);
  assertOk(second);
  assert.equal(second.reusedSocket, false);
  assert.equal(backend.received.length, 2);
}

const OK = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok';

function writeParts(socket: Socket, parts: readonly string[], gapMs = 15): void {
  let i = 0;
  const next = (): void => {
    if (socket.destroyed || i >= parts.length) return;
    socket.write(Buffer.from(parts[i++] as string, 'latin1'));
    setTimeout(next, gapMs);
  };
  next();
}

// ---- keep-alive and framing --------------------------------------------------------------------

test('two requests in a row share one keep-alive connection; the second is reusedSocket', async (t) => {
  const backend = await startRawResponder(() => OK);
  const pool = makePool(backend.url);
  closeAfter(t, pool, backend);
  const first = await run(pool);
  assertOk(first);
  assert.equal(first.body, 'ok');
  assert.equal(first.reusedSocket, false);
  assert.deepEqual(first.events, ['connect', 'headers', 'data', 'complete']);
  const second = await run(pool, { path: '/second' });
  assertOk(second);
  assert.equal(second.reusedSocket, true);
  assert.equal(backend.received.length, 1, 'one connection');
  assert.deepEqual(
    backend.requests().map((r) => r.split(' ', 2)[1]),
    ['/', '/second'],
  );
  assert.deepEqual(pool.stats, { connected: 1, free: 1, running: 0, pending: 0 });
});

test('Content-Length, chunked and close-delimited response bodies arrive whole', async (t) => {
  const body = 'x'.repeat(100_000);
  const chunked =
    'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n' +
    '5\r\nhello\r\n6\r\n world\r\n' +
    `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;
  const backend = await startScriptedBackend((request, socket) => {
    const target = request.split(' ', 2)[1];
    if (target === '/cl') {
      socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
    } else if (target === '/chunked') {
      socket.write(chunked);
    } else {
      socket.end(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n${body}`);
    }
  });
  const pool = makePool(backend.url);
  closeAfter(t, pool, backend);
  const cl = await run(pool, { path: '/cl' });
  assertOk(cl);
  assert.equal(cl.body, body);
  assert.equal(cl.trailers, null);
  const ch = await run(pool, { path: '/chunked' });
  assertOk(ch);
  assert.equal(ch.body, `hello world${body}`);
  assert.equal(ch.trailers, null);
  assert.equal(ch.reusedSocket, true);
  const closeDelimited = await run(pool, { path: '/close' });
  assertOk(closeDelimited);
  assert.equal(closeDelimited.body, body);
  assert.equal(closeDelimited.reusedSocket, true);
  // The connection ended with the body: it is not kept.
  await until(() => pool.stats.connected === 0);
  const after = await run(pool, { path: '/cl' });
  assertOk(after);
  assert.equal(after.reusedSocket, false);
  assert.equal(backend.received.length, 2);
});

test('a Content-Length body is whole wherever the reads cut it, and stays intact after later reads', async (t) => {
  // Each path's body is its own (a later read must not turn an earlier body into its bytes),
  // holds CRLFCRLF (the end of a head, to a search for one) and bytes of every value.
  const bodyOf = (path: string): string =>
    Buffer.concat([
      Buffer.from(`${path}\r\n\r\nHTTP/1.1 200 OK\r\n\r\n`, 'latin1'),
      Buffer.from(Array.from({ length: 256 }, (_, i) => (i + path.length) % 256)),
    ]).toString('latin1');
  const headOf = (path: string): string =>
    `HTTP/1.1 200 OK\r\ncontent-length: ${bodyOf(path).length}\r\n\r\n`;
  const cutsOf = (path: string): number[] => {
    const headEnd = headOf(path).length;
    const length = headEnd + bodyOf(path).length;
    switch (path) {
      // Inside the head's CRLFCRLF: the read that ends the head finds no head end of its own.
      case '/straddle':
        return [headEnd - 2];
      case '/straddle-late':
        return [headEnd - 1, headEnd + 3];
      // Head alone, then the body in three reads, one of them a single byte.
      case '/body-parts':
        return [headEnd, headEnd + 10, headEnd + 11];
      case '/every-64':
        return Array.from({ length: Math.floor(length / 64) }, (_, i) => (i + 1) * 64);
      default:
        return [];
    }
  };
  const paths = ['/whole', '/straddle', '/straddle-late', '/body-parts', '/every-64', '/last'];
  const backend = await startScriptedBackend((request, socket) => {
    const path = request.split(' ', 2)[1] as string;
    const response = headOf(path) + bodyOf(path);
    const parts: string[] = [];
    let from = 0;
    for (const cut of [...cutsOf(path), response.length]) {
      parts.push(response.slice(from, cut));
      from = cut;
    }
    writeParts(socket, parts, 5);
  });
  const pool = makePool(backend.url);
  closeAfter(t, pool, backend);
  // The chunks as handed over (the recorder keeps copies of its own).
  const handedOver = new Map<string, Buffer[]>();
  for (const path of paths) {
    const chunks: Buffer[] = [];
    handedOver.set(path, chunks);
    const result = await run(pool, { path }, (handler) => {
      handler.dataResult = (chunk) => chunks.push(chunk) > 0;
    });
    assertOk(result);
    assert.equal(result.body, bodyOf(path), path);
  }
  // One connection carried them all: each response ended where its Content-Length said.
  assert.equal(backend.received.length, 1);
  // The chunks handed over are the handler's to keep: later reads into the connection's read
  // buffer did not change the earlier bodies.
  for (const [path, chunks] of handedOver) {
    assert.equal(Buffer.concat(chunks).toString('latin1'), bodyOf(path), `${path} later`);
  }
});

test('response trailers reach onComplete, in order, also past 32 fields', async (t) => {
  const many = Array.from({ length: 40 }, (_, i) => `x-t${i}: v${i}\r\n`).join('');
  const backend = await startScriptedBackend((request, socket) => {
    const trailers = request.startsWith('GET /many ') ? many : 'x-checksum: abc\r\nx-two: 2\r\n';
    socket.write(
      'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-checksum\r\n\r\n' +
        `4\r\nbody\r\n0\r\n${trailers}\r\n`,
    );
  });
  const pool = makePool(backend.url);
  closeAfter(t, pool, backend);
  const few = await run(pool);
  assertOk(few);
  assert.equal(few.body, 'body');
  assert.deepEqual(few.trailers, ['x-checksum', 'abc', 'x-two', '2']);
  const lots = await run(pool, { path: '/many' });
  assertOk(lots);
  assert.deepEqual(
    lots.trailers,
    Array.from({ length: 40 }, (_, i) => [`x-t${i}`, `v${i}`]).flat(),
  );
  // Trailers do not leak into the next response's headers.
  const next = await run(pool);
  assert.deepEqual(next.headers, ['transfer-encoding', 'chunked', 'trailer', 'x-checksum']);
  assert.equal(backend.received.length, 1);
});

test('a HEAD response with Content-Length (or chunked) has no body, and the connection is reused', async (t) => {
  const backend = await startScriptedBackend((request, socket) => {
    if (request.startsWith('HEAD /chunked ')) {
      socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n');
    } else if (request.startsWith('HEAD ')) {
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n');
    } else {
      socket.write(OK);
    }
  });
  const pool = makePool(backend.url);
  closeAfter(t, pool, backend);
  const head = await run(pool, { method: 'HEAD' });
  assertOk(head);
  assert.equal(head.header('content-length'), '1000');
  assert.equal(head.body, '');
  const headChunked = await run(pool, { method: 'HEAD', path: '/chunked' });
  assertOk(headChunked);
  assert.equal(headChunked.body, '');
  const get = await run(pool);
  assertOk(get);
  assert.equal(get.body, 'ok');
  assert.equal(get.reusedSocket, true);
  assert.equal(backend.received.length, 1);
});

test('204 and 304 have no body (even with a Content-Length) and keep the connection', async (t) => {
  const backend = await startScriptedBackend((request, socket) => {
    if (request.startsWith('GET /204 ')) socket.write('HTTP/1.1 204 No Content\r\nx-a: 1\r\n\r\n');
    else if (request.startsWith('GET /304 ')) {
      socket.write('HTTP/1.1 304 Not Modified\r\netag: "e"\r\ncontent-length: 50\r\n\r\n');
    } else socket.write(OK);
  });
  const pool = makePool(backend.url);
  closeAfter(t, pool, backend);
  const noContent = await run(pool, { path: '/204' });
  assertOk(noContent, 204);
  assert.equal(noContent.statusText, 'No Content');
  assert.equal(noContent.body, '');
  const notModified = await run(pool, { path: '/304' });
  assertOk(notModified, 304);
  assert.equal(notModified.header('etag'), '"e"');
  assert.equal(notModified.body, '');
  const after = await run(pool);
  assertOk(after);
  assert.equal(after.body, 'ok');
  assert.equal(after.reusedSocket, true);
  assert.equal(backend.received.length, 1);
});

test('100 Continue and 103 Early Hints are not relayed; the final response is', async (t) => {
  const backend = await startScriptedBackend((request, socket) => {
    writeParts(socket, [
      'HTTP/1.1 100 Continue\r\n\r\n',
      'HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n',
      'HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-final: yes\r\n\r\nfinal',
    ]);
  });
  const pool = makePool(backend.url);
  closeAfter(t, pool, backend);
  const answer = await run(pool);
  assertOk(answer);
  assert.deepEqual(answer.events, ['connect', 'headers', 'data', 'complete']);
  assert.deepEqual(answer.headers, ['content-length', '5', 'x-final', 'yes']);
  assert.equal(answer.body, 'final');
  const next = await run(pool);
  assertOk(next);
  assert.equal(next.reusedSocket, true);
  assert.equal(backend.received.length, 1);
});

test('many header fields and a head split over many TCP writes arrive complete and in order', async (t) => {
  const fields = Array.from({ length: 100 }, (_, i) => [`x-h${i}`, `value-${i}`]);
  const head =
    'HTTP/1.1 200 Fine Thanks\r\n' +
    fields.map(([n, v]) => `${n}: ${v}\r\n`).join('') +
    'content-length: 4\r\n\r\nbody';
  const backend = await startScriptedBackend((request, socket) => {
    if (request.startsWith('GET /split ')) {
      // Pieces that cut through names, values, and the CRLFs.
      const parts: string[] = [];
      for (let at = 0; at < head.length; at += 37) parts.push(head.slice(at, at + 37));
      writeParts(socket, parts, 2);
    } else {
      socket.write(head);
    }
  });
  const pool = makePool(backend.url);
  closeAfter(t, pool, backend);
  const expected = [...fields.flat(), 'content-length', '4'];
  const whole = await run(pool);
  assertOk(whole);
  assert.equal(whole.statusText, 'Fine Thanks');
  assert.deepEqual(whole.headers, expected);
  assert.equal(whole.body, 'body');
  const split = await run(pool, { path: '/split' });
  assertOk(split);
  assert.equal(split.statusText, 'Fine Thanks');
  assert.deepEqual(split.headers, expected);
  assert.equal(split.body, 'body');
});

test('a Connection: close response is not reused, even if the backend keeps the socket open', async (t) => {
  const backend = await startRawResponder(
    () => 'HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok',
  );
  const pool = makePool(backend.url);
  closeAfter(t, pool, backend);
  await assertNotReused(pool, backend);
});

test('an HTTP/1.0 response without keep-alive is not reused', async (t) => {
  const backend = await startRawResponder(() => 'HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok');
  const pool = makePool(backend.url);
  closeAfter(t, pool, backend);
  await assertNotReused(pool, backend);
});

test('Keep-Alive: timeout=N is honoured with a one-second margin; the pool timeout too', async (t) => {
  const backend = await startScriptedBackend((request, socket) => {
    const timeout = /x-ka: (\d+)/.exec(request)?.[1];
    const extra = timeout === undefined ? '' : `keep-alive: timeout=${timeout}\r\n`;
    socket.write(`HTTP/1.1 200 OK\r\n${extra}content-length: 2\r\n\r\nok`);
  });
  const pool = makePool(backend.url);
  closeAfter(t, pool, backend);
  // timeout=1: 1 s minus the 1 s margin: never reused.
  assertOk(await run(pool, { headers: ['host', 'b', 'x-ka', '1'] }));
  const afterOne = await run(pool, { headers: ['host', 'b', 'x-ka', '30'] });
  assert.equal(afterOne.reusedSocket, false);
  assert.equal(backend.received.length, 2);
  // timeout=30: reused shortly after.
  await sleep(100);
  const reused = await run(pool, { headers: ['host', 'b', 'x-ka', '2'] });
  assert.equal(reused.reusedSocket, true);
  assert.equal(backend.received.length, 2);
  // timeout=2: usable for 1 s only.
  await sleep(1_150);
  const expired = await run(pool);
  assert.equal(expired.reusedSocket, false);
  assert.equal(backend.received.length, 3);

  // The pool's own keepAliveTimeout; idle connections past it are swept (every second).
  const short = makePool(backend.url, { keepAliveTimeoutMs: 200 });
  t.after(() => short.destroy());
  assertOk(await run(short));
  assert.equal(short.stats.connected, 1);
  await sleep(400);
  const fresh = await run(short);
  assert.equal(fresh.reusedSocket, false);
  await until(() => short.stats.connected === 0, 3_000);
});

test('Keep-Alive: timeout=0 means the backend will not keep the connection: it is not reused (as undici)', async (t) => {
  const backend = await startRawResponder(
    () => 'HTTP/1.1 200 OK\r\nkeep-alive: timeout=0\r\ncontent-length: 2\r\n\r\nok',
  );
  const pool = makePool(backend.url);
  closeAfter(t, pool, backend);
  await assertNotReused(pool, backend);
});

test('a connection the backend closed while idle is dropped; the next request opens another', async (t) => {
  const backend = await startScriptedBackend((_request, socket) => {
    socket.write(OK);
    setTimeout(() => socket.end(), 20);
  });
  const pool = makePool(backend.url);
  closeAfter(t, pool, backend);
  await assertNotReused(pool, backend);
});

test('a backend that closes right after the response: the next request gets a new connection or a reset on a reused socket', async (t) => {
  // FIN sent with the response (no Connection: close); the next request is dispatched from
  // onComplete, before the FIN can be read: the race the proxy retries.
  const backend = await startScriptedBackend((_request, socket) => {
    socket.end(OK);
  });
  const pool = makePool(backend.url);
  closeAfter(t, pool, backend);
  const outcomes: string[] = [];
  for (let i = 0; i < 5; i++) {
    const first = new Recorder();
    let second: Recorder | undefined;
    const done = new Promise<void>((resolve) => {
      const onComplete = first.onComplete.bind(first);
      first.onComplete = (trailers) => {
        onComplete(trailers);
        second = dispatch(pool);
        void second.done.then(resolve);
      };
    });
    pool.dispatch(requestOf(), first);
    await withTimeout(done, 10_000, 'second request did not end');
    const s = second as Recorder;
    if (s.error === undefined) {
      assertOk(s);
      outcomes.push(s.reusedSocket ? 'reused-ok' : 'new-connection');
    } else {
      assertFailed(s, ['ANUBIS_UPSTREAM_RESET', 'ECONNRESET', 'EPIPE']);
      assert.equal(s.reusedSocket, true, 'a reset on a reused socket is flagged as such');
      outcomes.push('reset-on-reused');
    }
    await until(() => pool.stats.connected === 0);
  }
  t.diagnostic(`outcomes: ${outcomes.join(', ')}`);
});

// ---- timeouts and connect errors ---------------------------------------------------------------

test('headers timeout and body (idle) timeout fail with their codes and close the connection', async (t) => {
  const backend = await startScriptedBackend((request, socket) => {
    if (request.startsWith('GET /body ')) {
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nsome');
    }
    // /headers: never answered
  });
  const pool = makePool(backend.url);
  closeAfter(t, pool, backend);
  const started = performance.now();
  const headers = await run(pool, { path: '/headers', headersTimeout: 200 });
  assertFailed(headers, ['ANUBIS_UPSTREAM_HEADERS_TIMEOUT']);
  assert.ok(performance.now() - started < 5_000);
  assert.ok(!headers.events.includes('headers'));
  const body = await run(pool, { path: '/body', bodyTimeout: 200 });
  assertFailed(body, ['ANUBIS_UPSTREAM_BODY_TIMEOUT']);
  assert.equal(body.status, 200);
  assert.equal(body.body, 'some');
  await until(() => pool.stats.connected === 0);
});

test('the body timeout does not run while the handler holds the body paused (as undici)', async (t) => {
  const backend = await startRawResponder(
    () => `HTTP/1.1 200 OK\r\ncontent-length: 200000\r\n\r\n${'y'.repeat(200_000)}`,
  );
  const pool = makePool(backend.url);
  closeAfter(t, pool, backend);
  const handler = new Recorder();
  let paused = false;
  handler.dataResult = () => {
    if (paused) return true;
    paused = true;
    // A slow client: anubis holds the backend for longer than the idle timeout.
    setTimeout(() => handler.resume(), 800);
    return false;
  };
  pool.dispatch(requestOf({ bodyTimeout: 300 }), handler);
  await withTimeout(handler.done, 10_000, 'request did not end');
  assertOk(handler);
  assert.equal(handler.received, 200_000);
});

test('connection refused fails with ECONNREFUSED', async (t) => {
  const port = await freePort();
  const pool = makePool(`http://127.0.0.1:${port}`);
  t.after(() => pool.destroy());
  const handler = await run(pool);
  assertFailed(handler, ['ECONNREFUSED']);
  assert.equal(handler.reusedSocket, false);
  assert.deepEqual(pool.stats, { connected: 0, free: 0, running: 0, pending: 0 });
});

test('connect timeout: a backend whose accept queue is full', async (t) => {
  // Node accepts every connection itself; a python listener with backlog 0 that never
  // accepts drops further SYNs once its queue holds one connection.
  const python = spawn(
    'python3',
    [
      '-c',
      "import socket,time\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen(0)\n" +
        'print(s.getsockname()[1], flush=True)\ntime.sleep(60)',
    ],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  const spawned = await Promise.race([
    once(python, 'spawn').then(() => true),
    once(python, 'error').then(() => false),
  ]);
  if (!spawned) {
    t.skip('python3 is not available');
    return;
  }
  t.after(() => python.kill());
  const port = Number(String((await once(python.stdout, 'data'))[0]).trim());
  const fillers: Socket[] = [];
  t.after(() => fillers.forEach((s) => s.destroy()));
  let full = false;
  for (let i = 0; i < 8 && !full; i++) {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => {});
    fillers.push(socket);
    full = !(await Promise.race([once(socket, 'connect').then(() => true), sleep(300, false)]));
  }
  if (!full) {
    t.skip('the accept queue did not fill up on this machine');
    return;
  }
  const pool = makePool(`http://127.0.0.1:${port}`, { connectTimeoutMs: 300 });
  t.after(() => pool.destroy());
  const started = performance.now();
  const handler = await run(pool);
  assertFailed(handler, ['ANUBIS_UPSTREAM_CONNECT_TIMEOUT']);
  assert.ok(performance.now() - started < 5_000);
  await until(() => pool.stats.connected === 0);
});

// ---- invalid responses -------------------------------------------------------------------------

const MALFORMED: readonly [string, string][] = [
  ['garbage', 'garbage\r\n\r\n'],
  ['status 000', 'HTTP/1.1 000 Zero\r\ncontent-length: 0\r\n\r\n'],
  ['status 099', 'HTTP/1.1 099 Low\r\ncontent-length: 0\r\n\r\n'],
  ['two-digit status', 'HTTP/1.1 20 OK\r\ncontent-length: 0\r\n\r\n'],
  [
    'invalid chunk size',
    'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n',
  ],
  [
    'Content-Length and Transfer-Encoding',
    'HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
  ],
  [
    'two different Content-Length',
    'HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!',
  ],
  ['Content-Length not a number', 'HTTP/1.1 200 OK\r\ncontent-length: abc\r\n\r\nabc'],
  ['space before the colon', 'HTTP/1.1 200 OK\r\ncontent-length : 2\r\n\r\nok'],
  ['NUL in a header value', 'HTTP/1.1 200 OK\r\nx-a: a\0b\r\ncontent-length: 2\r\n\r\nok'],
  [
    'unrequested 101',
    'HTTP/1.1 101 Switching Protocols\r\nupgrade: foo\r\nconnection: upgrade\r\n\r\n',
  ],
  ['HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'],
];

for (const [name, bytes] of MALFORMED) {
  test(`invalid response (${name}) fails as a protocol error or reset, never a success`, async (t) => {
    const backend = await startRawResponder(() => bytes);
    const pool = makePool(backend.url);
    t.after(async () => {
      await pool.destroy();
      await backend.close();
    });
    const handler = await run(pool);
    assertFailed(handler, ['ANUBIS_UPSTREAM_PROTOCOL', 'ANUBIS_UPSTREAM_RESET']);
    await until(() => pool.stats.connected === 0);
  });
}

test('a backend closing mid-body fails the request (Content-Length and chunked)', async (t) => {
  const backend = await startScriptedBackend((request, socket) => {
    if (request.startsWith('GET /chunked ')) {
      socket.end('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n');
    } else if (request.startsWith('GET /head ')) {
      socket.end('HTTP/1.1 200 OK\r\ncontent-len');
    } else {
      socket.end('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten!!');
    }
  });
  const pool = makePool(backend.url);
  closeAfter(t, pool, backend);
  for (const path of ['/cl', '/chunked', '/head']) {
    const handler = await run(pool, { path });
    assertFailed(handler, ['ANUBIS_UPSTREAM_RESET', 'ANUBIS_UPSTREAM_PROTOCOL', 'ECONNRESET']);
  }
  await until(() => pool.stats.connected === 0);
});

for (const [name, extra] of [
  ['a whole response', 'HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n'],
  ['garbage', 'junk!'],
  ['the start of a response', 'HTTP/1.1 2'],
] as const) {
  test(`unsolicited bytes on an idle connection (${name}): it is not reused`, async (t) => {
    let extraSent = false;
    const backend = await startScriptedBackend((_request, socket, nth) => {
      socket.write(OK);
      if (nth === 0) {
        setTimeout(() => {
          socket.write(extra);
          extraSent = true;
        }, 30);
      }
    });
    const pool = makePool(backend.url);
    t.after(async () => {
      await pool.destroy();
      await backend.close();
    });
    assertOk(await run(pool));
    // The pool has read the bytes (and dropped the connection) before the next request.
    await until(() => extraSent && pool.stats.connected === 0);
    const second = await run(pool);
    assertOk(second);
    assert.equal(second.body, 'ok');
    assert.equal(second.reusedSocket, false, 'the tainted connection was not used');
    assert.equal(backend.received.length, 2);
  });
}

// ---- request bodies and request heads ----------------------------------------------------------

test('request bodies: Content-Length kept, chunked without it; POST without a body gets content-length: 0', async (t) => {
  const backend = await startRawResponder(() => OK);
  const pool = makePool(backend.url);
  closeAfter(t, pool, backend);
  assertOk(
    await run(pool, {
      method: 'PUT',
      path: '/cl',
      headers: ['host', 'b', 'content-length', '11'],
      body: Readable.from([Buffer.from('hello'), Buffer.from(' world')]),
    }),
  );
  assertOk(
    await run(pool, {
      method: 'POST',
      path: '/chunked',
      headers: ['host', 'b'],
      body: Readable.from([Buffer.from('hello'), Buffer.from(' world')]),
    }),
  );
  assertOk(await run(pool, { method: 'POST', path: '/empty', headers: ['host', 'b'] }));
  assertOk(await run(pool, { method: 'GET', path: '/get', headers: ['x-a', '1'] }));
  const [cl, chunked, empty, get] = backend.requests();
  assert.equal(cl, 'PUT /cl HTTP/1.1\r\nhost: b\r\ncontent-length: 11\r\n\r\nhello world');
  assert.equal(
    chunked,
    'POST /chunked HTTP/1.1\r\nhost: b\r\ntransfer-encoding: chunked\r\n\r\n' +
      '5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n',
  );
  assert.equal(empty, 'POST /empty HTTP/1.1\r\nhost: b\r\ncontent-length: 0\r\n\r\n');
  // No Host given: the backend's authority.
  assert.equal(get, `GET /get HTTP/1.1\r\nx-a: 1\r\nhost: 127.0.0.1:${backend.port}\r\n\r\n`);
  assert.equal(backend.received.length, 1);
});

test('a large request body is streamed whole with back-pressure', async (t) => {
  const size = 8 * 1024 * 1024;
  let received = 0;
  const sink = createTcpServer((socket) => {
    let head = '';
    let bodyStart = -1;
    socket.on('data', (chunk: Buffer) => {
      if (bodyStart < 0) {
        head += chunk.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end === -1) return;
        bodyStart = end + 4;
        received += head.length - bodyStart;
      } else {
        received += chunk.length;
      }
      if (received >= size) socket.write(OK);
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
  const port = (sink.address() as { port: number }).port;
  const pool = makePool(`http://127.0.0.1:${port}`);
  t.after(async () => {
    await pool.destroy();
    sink.close();
  });
  let produced = 0;
  const chunk = Buffer.alloc(64 * 1024, 1);
  const body = new Readable({
    read() {
      if (produced >= size) this.push(null);
      else {
        produced += chunk.length;
        this.push(chunk);
      }
    },
  });
  const handler = await run(pool, {
    method: 'POST',
    headers: ['host', 'b', 'content-length', String(size)],
    body,
  });
  assertOk(handler);
  assert.equal(received, size);
});

test('a request body not matching its Content-Length fails the request', async (t) => {
  const backend = await startRawBackend(() => {});
  const pool = makePool(backend.url);
  closeAfter(t, pool, backend);
  const short = await run(pool, {
    method: 'POST',
    headers: ['host', 'b', 'content-length', '10'],
    body: Readable.from([Buffer.from('short')]),
  });
  assertFailed(short, ['ANUBIS_REQUEST_NOT_FORWARDABLE']);
  const long = await run(pool, {
    method: 'POST',
    headers: ['host', 'b', 'content-length', '3'],
    body: Readable.from([Buffer.from('too long')]),
  });
  assertFailed(long, ['ANUBIS_REQUEST_NOT_FORWARDABLE']);
  await until(() => pool.stats.connected === 0);
});

test('a header value or name with CR/LF, or a bad target, is refused and nothing is written', async (t) => {
  const backend = await startRawResponder(() => OK);
  const pool = makePool(backend.url);
  closeAfter(t, pool, backend);
  const cases: Partial<UpstreamRequest>[] = [
    { headers: ['host', 'b', 'x-bad', 'a\r\nx-injected: 1'] },
    { headers: ['host', 'b', 'x-bad', 'a\nb'] },
    { headers: ['host', 'b', 'x-bad\r\nx-injected', '1'] },
    { path: '/a HTTP/1.1\r\nx-injected: 1\r\n\r\nGET /b' },
  ];
  for (const request of cases) {
    const handler = await run(pool, request);
    assertFailed(handler, ['ANUBIS_REQUEST_NOT_FORWARDABLE']);
    assert.ok(!handler.events.includes('headers'));
  }
  await sleep(100);
  const written = backend.received.flat().reduce((n, c) => n + c.length, 0);
  assert.equal(written, 0, 'no byte reached the backend');
});

test('an early response while the request body is still being sent: completes, the body stops, the connection is closed', async (t) => {
  // Answers as soon as the head arrives, without reading the body.
  const raw = await startRawBackend((data, socket) => {
    if (data.includes('\r\n\r\n') && !(socket as { answered?: boolean }).answered) {
      (socket as { answered?: boolean }).answered = true;
      socket.write('HTTP/1.1 413 Payload Too Large\r\ncontent-length: 3\r\n\r\nbig');
    }
  });
  const pool = makePool(raw.url);
  t.after(async () => {
    await pool.destroy();
    await raw.close();
  });
  const body = new Readable({ read() {} });
  body.push('first part');
  const handler = await run(pool, {
    method: 'POST',
    headers: ['host', 'b', 'content-length', '1000000'],
    body,
  });
  assertOk(handler, 413);
  assert.equal(handler.body, 'big');
  assert.ok(body.destroyed, 'the request body stream is released');
  await until(() => pool.stats.connected === 0);
});

// ---- flow control, abort, close ----------------------------------------------------------------

test('back-pressure: onData returning false stops reading until resume()', async (t) => {
  const size = 20 * 1024 * 1024;
  const backend = await startScriptedBackend((_request, socket) => {
    socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${size}\r\n\r\n`);
    const chunk = Buffer.alloc(256 * 1024, 122);
    let sent = 0;
    const pump = (): void => {
      while (sent < size && !socket.destroyed) {
        sent += chunk.length;
        if (!socket.write(chunk)) {
          socket.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
  const pool = makePool(backend.url);
  closeAfter(t, pool, backend);
  const handler = new Recorder();
  let holding = true;
  let atPause = 0;
  handler.dataResult = () => {
    if (!holding) return true;
    if (atPause === 0) atPause = handler.received;
    return false;
  };
  pool.dispatch(requestOf({ bodyTimeout: 0 }), handler);
  await until(() => atPause > 0);
  await sleep(500);
  const whilePaused = handler.received - atPause;
  t.diagnostic(`bytes delivered after onData returned false: ${whilePaused}`);
  assert.ok(whilePaused < 1024 * 1024, `${whilePaused} bytes delivered while paused`);
  assert.ok(handler.received < size / 2);
  holding = false;
  handler.resume();
  await withTimeout(handler.done, 20_000, 'body did not complete after resume');
  assertOk(handler);
  assert.equal(handler.received, size);
});

test('onHeaders returning false holds the body until resume() (as undici)', async (t) => {
  const backend = await startRawResponder(() => OK);
  const pool = makePool(backend.url);
  closeAfter(t, pool, backend);
  const handler = new Recorder();
  handler.headersResult = false;
  pool.dispatch(requestOf(), handler);
  await until(() => handler.status === 200);
  await sleep(200);
  assert.equal(handler.received, 0, 'no body while paused from onHeaders');
  handler.resume();
  await withTimeout(handler.done, 5_000, 'no completion after resume');
  assertOk(handler);
  assert.equal(handler.body, 'ok');
});

test('onData returning false: no further onData until resume() (as undici)', async (t) => {
  // 2000 chunks of 10 bytes in one write: one socket read holds many of them.
  const chunks = Array.from({ length: 2_000 }, () => 'a\r\n0123456789\r\n').join('');
  const backend = await startRawResponder(
    () => `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n${chunks}0\r\n\r\n`,
  );
  const pool = makePool(backend.url);
  closeAfter(t, pool, backend);
  const handler = new Recorder();
  let calls = 0;
  let callsWhilePaused = 0;
  let paused = false;
  handler.dataResult = () => {
    calls++;
    if (paused) callsWhilePaused++;
    if (calls === 1) {
      paused = true;
      setTimeout(() => {
        paused = false;
        handler.resume();
      }, 200);
      return false;
    }
    return true;
  };
  pool.dispatch(requestOf(), handler);
  await withTimeout(handler.done, 10_000, 'request did not end');
  assertOk(handler);
  assert.equal(handler.received, 20_000);
  assert.equal(callsWhilePaused, 0, `${callsWhilePaused} onData calls while paused`);
});

test('abort() mid-response fails the request and closes that connection', async (t) => {
  const backend = await startScriptedBackend((_request, socket) => {
    socket.write('HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\nfirst');
  });
  const pool = makePool(backend.url);
  closeAfter(t, pool, backend);
  const reason = new Error('client went away');
  const handler = await run(pool, {}, (h) => {
    h.dataResult = () => {
      h.abort(reason);
      return true;
    };
  });
  assert.equal(handler.error, reason);
  assert.ok(!handler.events.includes('complete'));
  const serverSide = backend.sockets[0] as Socket;
  await until(() => serverSide.destroyed || serverSide.readableEnded);
  await until(() => pool.stats.connected === 0);
  // Abort before any answer, and abort with no reason.
  const early = dispatch(pool, { path: '/never' });
  early.abort();
  await withTimeout(early.done, 5_000, 'abort did not end the request');
  assert.ok(early.error instanceof Error);
  await until(() => pool.stats.connected === 0);
});

test('close() lets an in-flight request finish, then closes; later dispatches fail', async (t) => {
  const backend = await startScriptedBackend((_request, socket) => {
    setTimeout(() => socket.write(OK), 200);
  });
  const pool = makePool(backend.url);
  closeAfter(t, pool, backend);
  // One idle connection and one busy.
  assertOk(await run(pool));
  const busyPool = makePool(backend.url);
  t.after(() => busyPool.destroy());
  const inFlight = dispatch(busyPool);
  await until(() => backend.received.length === 2);
  assert.deepEqual(busyPool.stats, { connected: 1, free: 0, running: 1, pending: 0 });
  let closed = false;
  const closing = busyPool.close().then(() => (closed = true));
  await withTimeout(inFlight.done, 5_000, 'in-flight request did not finish');
  assertOk(inFlight);
  assert.equal(inFlight.body, 'ok');
  await withTimeout(closing, 5_000, 'close() did not resolve');
  assert.ok(closed);
  assert.equal(busyPool.stats.connected, 0);
  const late = await run(busyPool);
  assert.ok(late.error !== undefined);
  // Idle connections close at once.
  await withTimeout(pool.close(), 5_000, 'close() with an idle connection did not resolve');
  assert.equal(pool.stats.connected, 0);
});

test('destroy() fails the request in flight', async (t) => {
  const backend = await startScriptedBackend(() => {}); // never answers
  const pool = makePool(backend.url);
  t.after(() => backend.close());
  const handler = dispatch(pool);
  await until(() => backend.received.length === 1 && pool.stats.running === 1);
  await withTimeout(pool.destroy(), 5_000, 'destroy() did not resolve');
  await withTimeout(handler.done, 5_000, 'the request did not fail');
  assertFailed(handler, ['ANUBIS_UPSTREAM_RESET']);
  assert.deepEqual(pool.stats, { connected: 0, free: 0, running: 0, pending: 0 });
});

test('stats count connections, idle ones and requests in flight', async (t) => {
  const backend = await startScriptedBackend((_request, socket) => {
    setTimeout(() => socket.write(OK), 150);
  });
  const pool = makePool(backend.url);
  closeAfter(t, pool, backend);
  assert.deepEqual(pool.stats, { connected: 0, free: 0, running: 0, pending: 0 });
  const a = dispatch(pool);
  const b = dispatch(pool);
  const c = dispatch(pool);
  // Each on a new connection, still connecting: pending until connected, then running.
  assert.deepEqual(pool.stats, { connected: 0, free: 0, running: 0, pending: 3 });
  await until(() => pool.stats.running === 3);
  assert.deepEqual(pool.stats, { connected: 3, free: 0, running: 3, pending: 0 });
  await Promise.all([a.done, b.done, c.done]);
  [a, b, c].forEach((h) => assertOk(h));
  assert.deepEqual(pool.stats, { connected: 3, free: 3, running: 0, pending: 0 });
  const d = dispatch(pool);
  assert.deepEqual(pool.stats, { connected: 3, free: 2, running: 1, pending: 0 });
  await d.done;
  assert.equal(d.reusedSocket, true);
  assert.equal(backend.received.length, 3);
  await pool.close();
  assert.deepEqual(pool.stats, { connected: 0, free: 0, running: 0, pending: 0 });
});

test('https: a new connection resumes the TLS session of an earlier one', async (t) => {
  const pki = await createTestPki();
  t.after(() => pki.cleanup());
  const leaf = await pki.leaf('backend', ['127.0.0.1']);
  const resumed: boolean[] = [];
  const server = createHttpsServer({ cert: leaf.cert, key: leaf.key }, (_req, res) => {
    // A new connection per request, so that every request but the first can resume.
    res.writeHead(200, { connection: 'close', 'content-length': '2' });
    res.end('ok');
  });
  server.on('secureConnection', (socket: TLSSocket) => resumed.push(socket.isSessionReused()));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const { port } = server.address() as AddressInfo;
  const pool = makePool(`https://127.0.0.1:${port}`, {
    tls: { ca: [pki.ca.cert], rejectUnauthorized: true },
  });
  t.after(() => pool.destroy());
  for (let i = 0; i < 3; i++) assertOk(await run(pool));
  assert.equal(resumed.length, 3, 'three connections');
  assert.deepEqual(resumed, [false, true, true]);
});
