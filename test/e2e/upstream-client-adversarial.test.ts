// Adversarial backends against the upstream HTTP/1.1 client (src/upstream/http1/, and undici
// for comparison): a backend that answers twice, answers before reading the body, pads its
// answers, splits them byte by byte, sends malformed framing or headers, switches protocols
// unasked or never answers. Whatever it does, the client gets its own response or a
// 502/504 (or, once the response has started, a cut connection) — never another request's
// bytes — a following request on a clean path works, and no pooled connection stays busy.
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import {
  createServer as createTcpServer,
  type AddressInfo,
  type Server,
  type Socket,
} from 'node:net';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { createServer as createTlsServer } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import type { Backend } from '../../src/upstream/backend.js';
import type { UpstreamHandler } from '../../src/upstream/upstream-client.js';
import { startAnubis, type RunningAnubis } from '../helpers/anubis.js';
import { createTestPki, type TestPki } from '../helpers/certs.js';
import { requestEnd } from '../helpers/raw-http.js';

// ---- a programmable misbehaving backend -------------------------------------------------------

interface Behavior {
  /**
   * Answer as soon as the request head arrived, before the body is read (the body is then
   * skipped, as a server that answers early and keeps the connection does).
   */
  readonly early?: boolean;
  respond(socket: Socket, request: string): void;
}

interface EvilBackend {
  readonly url: string;
  /** Connections accepted so far. */
  connections: number;
  /** Connections open now. */
  readonly open: Set<Socket>;
  close(): Promise<void>;
}

function response(body: string, extra = ''): string {
  return `HTTP/1.1 200 OK\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;
}

/** The bytes anubis forwards for an unknown path: its own target, so a mix-up shows. */
const CLEAN: Behavior = {
  respond: (socket, request) => socket.write(response(`clean:${targetOf(request)}`)),
};

function targetOf(request: string): string {
  return request.split(' ', 2)[1] ?? '';
}

/** Writes `bytes` one byte at a time, a timer tick apart. */
function trickle(socket: Socket, bytes: string, then?: () => void): void {
  let at = 0;
  const next = (): void => {
    if (socket.destroyed) return;
    if (at >= bytes.length) {
      then?.();
      return;
    }
    socket.write(Buffer.from(bytes[at++] as string, 'latin1'));
    setTimeout(next, 1);
  };
  next();
}

async function startEvilBackend(
  behaviors: Record<string, Behavior>,
  tls?: { cert: string; key: string },
): Promise<EvilBackend> {
  const open = new Set<Socket>();
  const state = { connections: 0 };
  const onConnection = (socket: Socket): void => {
    state.connections++;
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    socket.on('error', () => {});
    let buffer = Buffer.alloc(0);
    let at = 0;
    /** Offset of the request answered early (its body is still being skipped). */
    let answeredEarly = -1;
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        const headEnd = buffer.indexOf('\r\n\r\n', at);
        if (headEnd === -1) return;
        const head = buffer.subarray(at, headEnd).toString('latin1');
        const path = targetOf(head).split('?')[0] as string;
        const behavior = behaviors[path] ?? CLEAN;
        if (behavior.early === true && answeredEarly !== at) {
          answeredEarly = at;
          behavior.respond(socket, head);
        }
        const end = requestEnd(buffer, at);
        if (end === -1) return;
        const request = buffer.subarray(at, end).toString('latin1');
        at = end;
        if (behavior.early !== true) behavior.respond(socket, request);
      }
    });
  };
  const server: Server =
    tls === undefined ? createTcpServer(onConnection) : createTlsServer(tls, onConnection);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `${tls === undefined ? 'http' : 'https'}://127.0.0.1:${port}`,
    get connections() {
      return state.connections;
    },
    set connections(n: number) {
      state.connections = n;
    },
    open,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

// ---- the client side --------------------------------------------------------------------------

interface Outcome {
  /** Status, or 0 when the connection ended before a response head. */
  readonly status: number;
  readonly body: string;
  /** The response ended before its framing said it was complete (or never started). */
  readonly cut: boolean;
  readonly ms: number;
}

/** One request on a fresh client connection (no client-side keep-alive). */
function get(
  base: string,
  path: string,
  options: {
    method?: string | undefined;
    body?: Buffer | undefined;
    holdBody?: boolean | undefined;
  } = {},
): Promise<Outcome> {
  const started = performance.now();
  return new Promise((resolve) => {
    let settled = false;
    let status = 0;
    const chunks: Buffer[] = [];
    const done = (cut: boolean): void => {
      if (settled) return;
      settled = true;
      resolve({
        status,
        body: Buffer.concat(chunks).toString('latin1'),
        cut,
        ms: performance.now() - started,
      });
    };
    const req = httpRequest(`${base}${path}`, {
      method: options.method ?? 'GET',
      agent: false,
      headers: options.body === undefined ? {} : { 'content-length': options.body.length },
    });
    req.on('response', (res) => {
      status = res.statusCode ?? 0;
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => done(!res.complete));
      res.on('aborted', () => done(true));
      res.on('error', () => done(true));
      res.on('close', () => done(!res.complete));
    });
    req.on('error', () => done(true));
    const body = options.body;
    if (body !== undefined && options.holdBody === true) {
      // The first KiB, then the rest only once the response is complete.
      req.write(body.subarray(0, KB));
      req.once('response', (res) =>
        res.once('end', () => {
          if (!req.destroyed) req.end(body.subarray(KB));
        }),
      );
      return;
    }
    if (body !== undefined) req.write(body);
    req.end();
  });
}

// ---- scenarios --------------------------------------------------------------------------------

const KB = 1024;

/** What a scenario's own client may get. */
type Expect =
  /** exactly this status and body */
  | { readonly ok: { status: number; body: string } }
  /** a 502/504 before any response byte */
  | { readonly error: readonly number[] }
  /** either of the above, or a cut response (an error found after the head was relayed) */
  | { readonly okOrError: { status: number; body: string } | null };

interface Scenario {
  readonly name: string;
  readonly path: string;
  readonly method?: string;
  readonly body?: Buffer;
  /** Send the first KiB of the body, the rest once the response is complete. */
  readonly holdBody?: boolean;
  readonly behavior: Behavior;
  readonly expect: Expect;
  /** For a timeout scenario: the longest the client may wait (ms, generous). */
  readonly within?: number;
}

const chunkedHead = 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n';

const SCENARIOS: Scenario[] = [
  {
    name: 'two responses to one request (in one write)',
    path: '/double',
    behavior: { respond: (s) => s.write(response('first') + response('EVIL')) },
    expect: { ok: { status: 200, body: 'first' } },
  },
  {
    name: 'two responses, the second one chunked and split across writes',
    path: '/double-split',
    behavior: {
      respond: (s) => {
        s.write(response('first') + chunkedHead + '4\r\nEV');
        setTimeout(() => s.write('IL\r\n0\r\n\r\n'), 20);
      },
    },
    expect: { ok: { status: 200, body: 'first' } },
  },
  {
    name: 'a response to HEAD followed by body bytes (a second response in disguise)',
    path: '/head-body',
    method: 'HEAD',
    behavior: { respond: (s) => s.write(response('EVIL') + response('EVIL')) },
    expect: { ok: { status: 200, body: '' } },
  },
  {
    name: 'a response before the request body was read (200)',
    path: '/early',
    method: 'POST',
    body: Buffer.alloc(512 * KB, 'b'),
    behavior: { early: true, respond: (s) => s.write(response('early')) },
    expect: { okOrError: { status: 200, body: 'early' } },
  },
  {
    name: 'a complete response while the request body is still on its way',
    path: '/early-slow',
    method: 'POST',
    body: Buffer.alloc(256 * KB, 'b'),
    holdBody: true,
    behavior: { early: true, respond: (s) => s.write(response('early')) },
    expect: { okOrError: { status: 200, body: 'early' } },
  },
  {
    name: 'a chunked response while the request body is still on its way',
    path: '/early-slow-chunked',
    method: 'POST',
    body: Buffer.alloc(256 * KB, 'b'),
    holdBody: true,
    behavior: {
      early: true,
      respond: (s) => s.write(`${chunkedHead}5\r\nearly\r\n0\r\n\r\n`),
    },
    expect: { okOrError: { status: 200, body: 'early' } },
  },
  {
    name: 'a response before the request body was read, then close',
    path: '/early-close',
    method: 'POST',
    body: Buffer.alloc(512 * KB, 'b'),
    behavior: { early: true, respond: (s) => s.end(response('early', 'connection: close\r\n')) },
    expect: { okOrError: { status: 200, body: 'early' } },
  },
  {
    name: 'a 413 before the request body was read, then a reset',
    path: '/early-reset',
    method: 'POST',
    body: Buffer.alloc(512 * KB, 'b'),
    behavior: {
      early: true,
      respond: (s) => {
        s.write('HTTP/1.1 413 Payload Too Large\r\ncontent-length: 3\r\n\r\nbig');
        setTimeout(() => s.resetAndDestroy(), 10);
      },
    },
    expect: { okOrError: { status: 413, body: 'big' } },
  },
  {
    name: 'extra bytes after a Content-Length body',
    path: '/trailing-garbage',
    behavior: { respond: (s) => s.write(response('ok') + 'EVIL GARBAGE\r\n\r\n') },
    expect: { ok: { status: 200, body: 'ok' } },
  },
  // Regression (fixed in 2e8eca2): the partial head left the idle connection's parser
  // mid-message and the next request on it got a 502.
  {
    name: 'the start of a status line after a Content-Length body',
    path: '/trailing-partial',
    behavior: { respond: (s) => s.write(response('ok') + 'HTTP/1.1 2') },
    expect: { ok: { status: 200, body: 'ok' } },
  },
  {
    name: 'a stray CRLF after a Content-Length body',
    path: '/trailing-crlf',
    behavior: { respond: (s) => s.write(response('ok') + '\r\n') },
    expect: { ok: { status: 200, body: 'ok' } },
  },
  {
    name: 'a chunked response with trailers, byte by byte',
    path: '/byte-by-byte',
    behavior: {
      respond: (s) =>
        trickle(
          s,
          'HTTP/1.1 200 OK\r\nx-a: 1\r\ntransfer-encoding: chunked\r\ntrailer: x-t\r\n\r\n' +
            '3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nx-t: 1\r\n\r\n',
        ),
    },
    expect: { ok: { status: 200, body: 'abcde' } },
  },
  {
    name: 'a Content-Length response byte by byte',
    path: '/byte-by-byte-cl',
    behavior: { respond: (s) => trickle(s, response('hello world')) },
    expect: { ok: { status: 200, body: 'hello world' } },
  },
  {
    name: 'an invalid chunk extension (control character)',
    path: '/bad-chunk-ext',
    behavior: { respond: (s) => s.write(`${chunkedHead}5;\x01x\r\nhello\r\n0\r\n\r\n`) },
    expect: { okOrError: null },
  },
  {
    name: 'a chunk size with trailing garbage',
    path: '/bad-chunk-size',
    behavior: { respond: (s) => s.write(`${chunkedHead}5x\r\nhello\r\n0\r\n\r\n`) },
    expect: { okOrError: null },
  },
  {
    name: 'an obs-fold header line',
    path: '/obs-fold',
    behavior: {
      respond: (s) =>
        s.write('HTTP/1.1 200 OK\r\nx-folded: a\r\n b\r\ncontent-length: 2\r\n\r\nok'),
    },
    expect: { okOrError: { status: 200, body: 'ok' } },
  },
  {
    name: 'bare LF line endings',
    path: '/bare-lf',
    behavior: { respond: (s) => s.write('HTTP/1.1 200 OK\ncontent-length: 2\n\nok') },
    expect: { okOrError: { status: 200, body: 'ok' } },
  },
  {
    name: 'a bare LF inside the header block',
    path: '/bare-lf-header',
    behavior: {
      respond: (s) => s.write('HTTP/1.1 200 OK\r\nx-a: 1\ncontent-length: 2\r\n\r\nok'),
    },
    expect: { okOrError: { status: 200, body: 'ok' } },
  },
  {
    name: 'NUL in a header value',
    path: '/nul',
    behavior: {
      respond: (s) => s.write('HTTP/1.1 200 OK\r\nx-a: a\0b\r\ncontent-length: 2\r\n\r\nok'),
    },
    expect: { error: [502] },
  },
  {
    name: 'headers over 16 KiB',
    path: '/huge-headers',
    behavior: {
      respond: (s) =>
        s.write(`HTTP/1.1 200 OK\r\nx-big: ${'h'.repeat(20 * KB)}\r\ncontent-length: 2\r\n\r\nok`),
    },
    expect: { error: [502] },
  },
  {
    name: 'headers over 16 KiB in many small fields, byte-split',
    path: '/many-headers',
    behavior: {
      respond: (s) => {
        const lines = Array.from({ length: 4000 }, (_, i) => `x-h${i}: v\r\n`).join('');
        s.write(`HTTP/1.1 200 OK\r\n${lines.slice(0, 7000)}`);
        setTimeout(() => s.write(`${lines.slice(7000)}content-length: 2\r\n\r\nok`), 10);
      },
    },
    expect: { error: [502] },
  },
  {
    name: 'trailers over 16 KiB',
    path: '/huge-trailers',
    behavior: {
      respond: (s) => s.write(`${chunkedHead}2\r\nok\r\n0\r\nx-t: ${'t'.repeat(20 * KB)}\r\n\r\n`),
    },
    expect: { okOrError: null },
  },
  {
    name: 'an overflowing chunk size',
    path: '/huge-chunk',
    behavior: {
      respond: (s) => s.write(`${chunkedHead}fffffffffffffffffffff\r\nEVIL\r\n0\r\n\r\n`),
    },
    expect: { okOrError: null },
  },
  {
    name: 'a huge (valid) chunk size, then the backend closes',
    path: '/big-chunk-close',
    behavior: { respond: (s) => s.end(`${chunkedHead}7fffffffffff\r\npart`) },
    expect: { okOrError: null },
  },
  {
    name: 'a negative Content-Length',
    path: '/negative-cl',
    behavior: { respond: (s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\nok') },
    expect: { error: [502] },
  },
  {
    name: 'an overflowing Content-Length',
    path: '/overflow-cl',
    behavior: {
      respond: (s) =>
        s.write('HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999999\r\n\r\nok'),
    },
    expect: { error: [502] },
  },
  {
    name: 'two different Content-Lengths',
    path: '/double-cl',
    behavior: {
      respond: (s) =>
        s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 8\r\n\r\nokEVILEVIL'),
    },
    expect: { error: [502] },
  },
  {
    name: 'Content-Length with Transfer-Encoding: chunked',
    path: '/cl-te',
    behavior: {
      respond: (s) =>
        s.write(
          'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n' +
            '4\r\nEVIL\r\n0\r\n\r\n',
        ),
    },
    expect: { error: [502] },
  },
  {
    name: 'a status line without a reason phrase',
    path: '/no-reason',
    behavior: { respond: (s) => s.write('HTTP/1.1 200\r\ncontent-length: 2\r\n\r\nok') },
    expect: { ok: { status: 200, body: 'ok' } },
  },
  {
    name: 'a two-digit status code',
    path: '/status-99',
    behavior: { respond: (s) => s.write('HTTP/1.1 099 Odd\r\ncontent-length: 2\r\n\r\nok') },
    expect: { error: [502] },
  },
  {
    name: 'an HTTP/1.0 response with keep-alive',
    path: '/http10-keepalive',
    behavior: {
      respond: (s) =>
        s.write('HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nok'),
    },
    expect: { ok: { status: 200, body: 'ok' } },
  },
  {
    name: 'an HTTP/1.0 response delimited by the end of the connection',
    path: '/http10-close',
    behavior: { respond: (s) => s.end('HTTP/1.0 200 OK\r\n\r\nuntil the end') },
    expect: { ok: { status: 200, body: 'until the end' } },
  },
  {
    name: 'an HTTP/1.0 response with Content-Length and no keep-alive (extra bytes after it)',
    path: '/http10-cl',
    behavior: { respond: (s) => s.write('HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nokEVIL') },
    expect: { ok: { status: 200, body: 'ok' } },
  },
  {
    name: 'an HTTP/1.1 response delimited by the end of the connection',
    path: '/eof-body',
    behavior: { respond: (s) => s.end('HTTP/1.1 200 OK\r\n\r\nuntil the end') },
    expect: { ok: { status: 200, body: 'until the end' } },
  },
  {
    name: 'Transfer-Encoding: gzip, chunked',
    path: '/te-gzip-chunked',
    behavior: {
      respond: (s) =>
        s.write('HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n'),
    },
    expect: { okOrError: { status: 200, body: 'ok' } },
  },
  {
    name: 'Transfer-Encoding: chunked, gzip (not chunked last) with extra bytes',
    path: '/te-chunked-gzip',
    behavior: {
      respond: (s) =>
        s.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n2\r\nok\r\n0\r\n\r\n'),
    },
    expect: { okOrError: null },
  },
  {
    name: '101 Switching Protocols to a plain GET',
    path: '/switch',
    behavior: {
      respond: (s) =>
        s.write(
          'HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n' +
            response('EVIL'),
        ),
    },
    expect: { error: [502] },
  },
  {
    name: '100 Continue and 103 Early Hints before the final response',
    path: '/informational',
    behavior: {
      respond: (s) =>
        s.write(
          'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n' +
            response('final'),
        ),
    },
    // undici refuses a 100 Continue that was not asked for (502); anubis skips it.
    expect: { okOrError: { status: 200, body: 'final' } },
  },
  {
    name: 'an endless stream of 100 Continue (headers timeout)',
    path: '/endless-100',
    behavior: {
      respond: (s) => {
        const timer = setInterval(() => {
          if (s.destroyed) clearInterval(timer);
          else s.write('HTTP/1.1 100 Continue\r\n\r\n');
        }, 50);
        s.once('close', () => clearInterval(timer));
      },
    },
    // anubis: headers timeout (504); undici: refuses the first 100 Continue (502).
    expect: { error: [502, 504] },
    within: 10_000,
  },
  {
    name: 'a backend that never answers (headers timeout)',
    path: '/silent',
    behavior: { respond: () => {} },
    expect: { error: [504] },
    within: 10_000,
  },
  {
    name: 'a body that stalls half-way (body timeout)',
    path: '/stall',
    behavior: { respond: (s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc') },
    expect: { okOrError: null },
    within: 10_000,
  },
  {
    name: 'a connection closed half-way through the body',
    path: '/close-mid-body',
    behavior: { respond: (s) => s.end('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc') },
    expect: { okOrError: null },
  },
  {
    name: 'a reset instead of an answer',
    path: '/reset',
    behavior: { respond: (s) => s.resetAndDestroy() },
    expect: { error: [502] },
  },
  {
    name: 'garbage instead of a status line',
    path: '/garbage',
    behavior: { respond: (s) => s.write('EVIL / HTTP/1.1\r\n\r\n') },
    expect: { error: [502] },
  },
];

// ---- the checks -------------------------------------------------------------------------------

async function waitFor(condition: () => boolean, what: () => string, ms = 5_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function backendOf(anubis: RunningAnubis): Backend {
  return anubis.balancer.pools.get('test')?.backends[0] as Backend;
}

/** No request in flight and every pooled connection still open is idle. */
async function assertPoolIdle(anubis: RunningAnubis): Promise<void> {
  const backend = backendOf(anubis);
  await waitFor(
    () => {
      const stats = backend.dispatcher.stats;
      return (
        backend.active === 0 &&
        stats.running === 0 &&
        stats.pending === 0 &&
        stats.connected === stats.free
      );
    },
    () => `an idle pool: active ${backend.active}, ${JSON.stringify(backend.dispatcher.stats)}`,
  );
}

function check(outcome: Outcome, expect: Expect, label: string): void {
  const seen = `${label}: ${JSON.stringify(outcome)}`;
  // Never another request's bytes, whatever else happens.
  assert.ok(!outcome.body.includes('EVIL'), `foreign bytes relayed, ${seen}`);
  const own = 'ok' in expect && expect.ok.body.startsWith('clean:') ? expect.ok.body : '';
  assert.ok(
    outcome.body === own || !outcome.body.includes('clean:'),
    `another request's body relayed, ${seen}`,
  );
  if ('ok' in expect) {
    assert.equal(outcome.cut, false, seen);
    assert.equal(outcome.status, expect.ok.status, seen);
    assert.equal(outcome.body, expect.ok.body, seen);
  } else if ('error' in expect) {
    assert.ok(expect.error.includes(outcome.status), seen);
    assert.equal(outcome.cut, false, seen);
  } else {
    const complete = !outcome.cut && outcome.status !== 0;
    if (complete && (outcome.status === 502 || outcome.status === 504)) return;
    if (complete) {
      assert.ok(expect.okOrError !== null, `a malformed response relayed as complete, ${seen}`);
      assert.equal(outcome.status, expect.okOrError.status, seen);
      assert.equal(outcome.body, expect.okOrError.body, seen);
    }
    // Cut: the head was relayed before the error showed; the connection was closed.
  }
}

function describeOutcome(o: Outcome): string {
  return o.cut ? `cut after ${o.status === 0 ? 'nothing' : `${o.status}`}` : `${o.status}`;
}

const POOL = {
  timeouts: { connect: '2s', headers: '1s', idle: '1s' },
  keepAliveTimeout: '30s',
  health: { passive: { enabled: false } },
};

const behaviors = Object.fromEntries(SCENARIOS.map((s) => [s.path, s.behavior]));

for (const client of ['anubis', 'undici'] as const) {
  void describe(`upstream client ${client} against misbehaving backends`, () => {
    let backend: EvilBackend;
    let anubis: RunningAnubis;
    let followUps = 0;

    before(async () => {
      backend = await startEvilBackend(behaviors);
      anubis = await startAnubis([backend.url], { ...POOL, client });
    });
    after(async () => {
      await anubis.close();
      await backend.close();
    });

    for (const scenario of SCENARIOS) {
      void test(scenario.name, async (t) => {
        const outcome = await get(anubis.url, scenario.path, {
          method: scenario.method,
          body: scenario.body,
          holdBody: scenario.holdBody,
        });
        t.diagnostic(`${client} ${scenario.path}: ${describeOutcome(outcome)} ${outcome.body}`);
        check(outcome, scenario.expect, `${client} ${scenario.path}`);
        if (scenario.within !== undefined) {
          assert.ok(outcome.ms < scenario.within, `answered after ${outcome.ms} ms`);
        }
        // The next client, on a pool of one backend, gets its own answer (twice: the second
        // one surely reuses a pooled connection).
        for (let i = 0; i < 2; i++) {
          const path = `/clean?n=${++followUps}`;
          const next = await get(anubis.url, path);
          assert.deepEqual(
            { status: next.status, body: next.body, cut: next.cut },
            { status: 200, body: `clean:${path}`, cut: false },
            `the request after ${scenario.path}`,
          );
        }
        await assertPoolIdle(anubis);
      });
    }

    void test('nothing is left open once anubis closes', async () => {
      await assertPoolIdle(anubis);
      await anubis.balancer.close(1_000);
      await waitFor(
        () => backendOf(anubis).dispatcher.stats.connected === 0,
        () => JSON.stringify(backendOf(anubis).dispatcher.stats),
      );
      await waitFor(
        () => backend.open.size === 0,
        () => `${backend.open.size} backend connections`,
      );
    });
  });
}

// ---- targeted races ---------------------------------------------------------------------------

const DOUBLE: Record<string, Behavior> = {
  '/double': { respond: (s) => s.write(response('first') + response('EVIL')) },
  '/slow': { respond: (s, r) => setTimeout(() => CLEAN.respond(s, r), 100) },
};

// Regression (fixed in 2e8eca2): the connection was released before the rest of the read was
// parsed, the queued request was dispatched on it from onComplete and got the second response
// (and the request after it got the first one's answer).
for (const client of ['anubis', 'undici'] as const) {
  void test(`${client}: a request waiting in the concurrency queue does not get the extra response`, async () => {
    const backend = await startEvilBackend(DOUBLE);
    const anubis = await startAnubis([backend.url], {
      ...POOL,
      client,
      concurrency: { maxPerBackend: 1, queueLength: 10, queueTimeout: '5s' },
    });
    try {
      const outcomes = await Promise.all([
        get(anubis.url, '/double'),
        get(anubis.url, '/clean?q=1'),
        get(anubis.url, '/clean?q=2'),
      ]);
      check(outcomes[0], { ok: { status: 200, body: 'first' } }, 'first');
      for (const [i, outcome] of outcomes.slice(1).entries()) {
        assert.deepEqual(
          { status: outcome.status, body: outcome.body },
          { status: 200, body: `clean:/clean?q=${i + 1}` },
          `queued request ${i + 1}`,
        );
      }
      await assertPoolIdle(anubis);
    } finally {
      await anubis.close();
      await backend.close();
    }
  });
}

void describe('TLS backends (the parser fed from data events)', () => {
  let pki: TestPki;
  before(async () => {
    pki = await createTestPki();
  });
  after(async () => {
    await pki.cleanup();
  });

  for (const client of ['anubis', 'undici'] as const) {
    void test(`${client}: two responses in one TLS record, then the next client`, async () => {
      const leaf = await pki.selfSigned('evil', ['127.0.0.1']);
      const backend = await startEvilBackend(
        {
          ...DOUBLE,
          '/trailing': { respond: (s) => s.write(response('ok') + 'EVIL GARBAGE\r\n\r\n') },
          '/stall': { respond: (s) => s.write(`${chunkedHead}3\r\nabc\r\n`) },
        },
        leaf,
      );
      const anubis = await startAnubis([{ url: backend.url, tls: { insecureSkipVerify: true } }], {
        ...POOL,
        client,
      });
      try {
        check(await get(anubis.url, '/double'), { ok: { status: 200, body: 'first' } }, 'double');
        check(
          await get(anubis.url, '/clean?a'),
          { ok: { status: 200, body: 'clean:/clean?a' } },
          'a',
        );
        check(await get(anubis.url, '/trailing'), { ok: { status: 200, body: 'ok' } }, 'trail');
        check(
          await get(anubis.url, '/clean?b'),
          { ok: { status: 200, body: 'clean:/clean?b' } },
          'b',
        );
        const stalled = await get(anubis.url, '/stall');
        check(stalled, { okOrError: null }, 'stall');
        assert.ok(stalled.ms < 10_000, `stalled for ${stalled.ms} ms`);
        check(
          await get(anubis.url, '/clean?c'),
          { ok: { status: 200, body: 'clean:/clean?c' } },
          'c',
        );
        await assertPoolIdle(anubis);
      } finally {
        await anubis.close();
        await backend.close();
      }
    });
  }
});

// Regression (fixed in 2e8eca2): after a pause the client kept calling onData for the rest
// of the read, and Exchange.onData added one res 'drain' listener per call.
void test('anubis: a response of many small chunks to a slow client adds one drain listener at a time', async () => {
  const backend = await startEvilBackend({
    '/tiny': {
      respond: (s) => {
        s.write(chunkedHead);
        // 1 KiB chunks: about 60 of them in each 64 KiB read.
        const piece = Buffer.from(`400\r\n${'a'.repeat(KB)}\r\n`.repeat(256));
        let n = 0;
        const pump = (): void => {
          while (n < 100) {
            n++;
            if (!s.write(piece)) {
              s.once('drain', pump);
              return;
            }
          }
          s.write('0\r\n\r\n');
        };
        pump();
      },
    },
  });
  const anubis = await startAnubis([backend.url], { ...POOL, client: 'anubis' });
  const warnings: Error[] = [];
  const onWarning = (warning: Error): void => {
    if (warning.name === 'MaxListenersExceededWarning') warnings.push(warning);
  };
  process.on('warning', onWarning);
  try {
    const { connect } = await import('node:net');
    const socket = connect(Number(new URL(anubis.url).port), '127.0.0.1');
    socket.on('error', () => {});
    socket.write('GET /tiny HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    socket.pause();
    // Let the buffers between client, anubis and backend fill up, then read everything.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.resume();
    await new Promise((resolve) => socket.once('close', resolve));
    assert.ok(text.endsWith('0\r\n\r\n'), 'the whole response');
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(
      warnings.map((w) => w.message.slice(0, 60)),
      [],
    );
  } finally {
    process.off('warning', onWarning);
    await anubis.close();
    await backend.close();
  }
});

// ---- request heads and bodies that would smuggle a second request ------------------------------

interface Attempt {
  readonly error: Error | undefined;
  readonly status: number;
}

/** One request straight through a backend's pool (anubis's client or undici's). */
function dispatchDirect(
  anubis: RunningAnubis,
  path: string,
  headers: string[],
  body: Readable | null = null,
): Promise<Attempt> {
  return new Promise((resolve) => {
    let status = 0;
    const handler: UpstreamHandler = {
      reusedSocket: false,
      onConnect: () => {},
      onHeaders: (code) => {
        status = code;
        return true;
      },
      onData: () => true,
      onComplete: () => resolve({ error: undefined, status }),
      onError: (error) => resolve({ error, status }),
    };
    try {
      backendOf(anubis).dispatcher.dispatch(
        {
          path,
          method: body === null ? 'GET' : 'POST',
          headers,
          body,
          headersTimeout: 2_000,
          bodyTimeout: 2_000,
        },
        handler,
      );
    } catch (error) {
      resolve({ error: error as Error, status });
    }
  });
}

for (const client of ['anubis', 'undici'] as const) {
  void test(`${client}: request heads and bodies that would split on the backend are refused`, async () => {
    const received: string[] = [];
    const backend = await startEvilBackend({
      '/record': {
        respond: (s, request) => {
          received.push(request);
          s.write(response('recorded'));
        },
      },
    });
    const anubis = await startAnubis([backend.url], { ...POOL, client });
    const smuggled = 'GET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n';
    try {
      const heads: [string, string[]][] = [
        ['/record /smuggled', []],
        [`/record HTTP/1.1\r\nhost: x\r\n\r\n${smuggled}`, []],
        ['/record\0', []],
        ['/record', ['x-a', `v\r\n\r\n${smuggled}`]],
        ['/record', ['x-a', 'v\ntransfer-encoding: chunked']],
        ['/record', ['x-a', 'v\0']],
      ];
      for (const [path, headers] of heads) {
        const attempt = await dispatchDirect(anubis, path, headers);
        assert.ok(attempt.error !== undefined, `${JSON.stringify([path, headers])} was sent`);
      }
      // A body longer than its Content-Length: the excess never reaches the backend.
      const long = await dispatchDirect(
        anubis,
        '/record',
        ['content-length', '5'],
        Readable.from([Buffer.from('hello'), Buffer.from(smuggled)]),
      );
      assert.ok(long.error !== undefined || long.status === 200, 'the long body');
      // A body shorter than its Content-Length fails (the connection is not reused).
      const short = await dispatchDirect(
        anubis,
        '/record',
        ['content-length', '50'],
        Readable.from([Buffer.from('hello')]),
      );
      assert.ok(short.error !== undefined, 'the short body was accepted');
      // The pool still works, and the backend never saw a second request.
      const fine = await dispatchDirect(anubis, '/record', ['x-a', 'v']);
      assert.deepEqual(fine, { error: undefined, status: 200 });
      await assertPoolIdle(anubis);
      const all = received.join('\n');
      assert.ok(!all.includes('/smuggled'), all);
      assert.ok(received.length <= 2, `${received.length} requests: ${all}`);
    } finally {
      await anubis.close();
      await backend.close();
    }
  });

  void test(`${client}: closing anubis with a request in flight ends it and every connection`, async () => {
    const backend = await startEvilBackend({ '/silent': { respond: () => {} } });
    const anubis = await startAnubis([backend.url], {
      ...POOL,
      client,
      timeouts: { connect: '2s', headers: '30s', idle: '30s' },
    });
    try {
      assert.equal((await get(anubis.url, '/clean?warm')).status, 200);
      const pending = get(anubis.url, '/silent');
      await waitFor(
        () => backendOf(anubis).dispatcher.stats.running === 1,
        () => JSON.stringify(backendOf(anubis).dispatcher.stats),
      );
      const started = performance.now();
      await anubis.balancer.close(300);
      const outcome = await pending;
      assert.ok(performance.now() - started < 10_000, 'close took too long');
      assert.ok(outcome.cut || outcome.status >= 500, JSON.stringify(outcome));
      await waitFor(
        () => backendOf(anubis).dispatcher.stats.connected === 0,
        () => JSON.stringify(backendOf(anubis).dispatcher.stats),
      );
      await waitFor(
        () => backend.open.size === 0,
        () => `${backend.open.size} backend connections`,
      );
    } finally {
      await backend.close();
    }
  });
}

// Regression (b245a7d dropped the check, 2e8eca2 brought it back).
for (const client of ['anubis', 'undici'] as const) {
  void test(`${client}: a header name with CR/LF is refused`, async () => {
    const received: string[] = [];
    const backend = await startEvilBackend({
      '/record': {
        respond: (s, request) => {
          received.push(request);
          s.write(response('recorded'));
        },
      },
    });
    const anubis = await startAnubis([backend.url], { ...POOL, client });
    try {
      const name = 'x-a: v\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: x\r\n\r\nx-b';
      const attempt = await dispatchDirect(anubis, '/record', [name, 'v']);
      assert.ok(attempt.error !== undefined, 'the header name was sent');
      await assertPoolIdle(anubis);
      assert.ok(!received.join('\n').includes('/smuggled'), received.join('\n'));
    } finally {
      await anubis.close();
      await backend.close();
    }
  });
}

// Regression (fixed in 29d0c04): timeout=0 was read as "nothing announced".
for (const client of ['anubis', 'undici'] as const) {
  void test(`${client}: a connection whose response announced Keep-Alive: timeout=0 is not kept`, async () => {
    const backend = await startEvilBackend({
      '/ka0': { respond: (s) => s.write(response('ka0', 'keep-alive: timeout=0\r\n')) },
    });
    const anubis = await startAnubis([backend.url], { ...POOL, client });
    try {
      const outcome = await get(anubis.url, '/ka0');
      assert.equal(outcome.body, 'ka0');
      // Give the pool a moment to close it, then it must hold no idle connection.
      await new Promise((resolve) => setTimeout(resolve, 100));
      await waitFor(
        () => backendOf(anubis).dispatcher.stats.free === 0,
        () => `no idle connection: ${JSON.stringify(backendOf(anubis).dispatcher.stats)}`,
        2_000,
      );
    } finally {
      await anubis.close();
      await backend.close();
    }
  });
}
