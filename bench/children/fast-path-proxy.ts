/**
 * EXPERIMENTS, NOT PRODUCT CODE: the minimal HTTP/1.1 reverse proxies that
 * bench/fast-path-ceiling.ts measures, to see how much a dedicated fast path could gain over
 * anubis's node:http + undici architecture, and with which parser. Each forwards every
 * request to one backend with keep-alive on both sides and sets X-Forwarded-For; none has
 * timeouts, limits, retries, health checks or request bodies (a request with a body gets
 * 501 and the connection is closed). Correct enough for GET keep-alive with Content-Length
 * (or chunked) responses, which is all the measurement needs.
 *
 *   node fast-path-proxy.js VARIANT PORT BACKEND_URL
 *
 *   node-http-undici   node:http server, undici Pool dispatch (anubis with `client: undici`)
 *   node-http-anubis-client  node:http server, anubis's own upstream client (src/upstream/http1,
 *                      the product code): anubis's architecture minus anubis's logic
 *   llhttp-undici      net.Server parsed by Node's llhttp binding (`HTTPParser` from
 *                      node:_http_common, consuming the socket handle like node:http),
 *                      undici Pool dispatch
 *   llhttp-llhttp      the same server side; raw backend sockets whose responses a second
 *                      HTTPParser (RESPONSE) parses
 *   raw                deliberately incorrect ceiling: splits on CRLFCRLF, finds
 *                      Content-Length with a regex, copies the backend's bytes as they are
 *
 * On SIGTERM it prints `FAST_PATH_COUNTS {"ok":N,"other":M}` (responses it started with a
 * 2xx status, and others) and exits, so the harness can check every response was counted.
 */
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { createRequire } from 'node:module';
import { connect, createServer, type Socket } from 'node:net';
import { Pool, type Dispatcher } from 'undici';
import { Http1Pool } from '../../src/upstream/http1/pool.js';
import {
  loadLlhttp,
  type LlhttpParserClass,
  type OnHeadersComplete,
  type StreamHandle,
} from '../../src/upstream/http1/llhttp.js';
import type { UpstreamHandler } from '../../src/upstream/upstream-client.js';

// ---- Node's llhttp binding (typed in src/upstream/http1/llhttp.ts; REQUEST added here) -----

type HTTPParserClass = LlhttpParserClass & { readonly REQUEST: number };

const { HTTPParser, methods } = createRequire(import.meta.url)('node:_http_common') as {
  HTTPParser: HTTPParserClass;
  methods: readonly string[];
};

// ---- shared helpers ----------------------------------------------------------------------

const counts = { ok: 0, other: 0 };
const count = (status: number): void => {
  if (status >= 200 && status < 300) counts.ok++;
  else counts.other++;
};

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Tokens of a Connection header other than keep-alive/close: more headers to drop. */
function connectionNamed(value: string | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  const lower = value.toLowerCase();
  if (lower === 'keep-alive' || lower === 'close') return undefined;
  return new Set(lower.split(',').map((t) => t.trim()));
}

function valueOf(flat: readonly string[], name: string): string | undefined {
  for (let i = 0; i < flat.length; i += 2) {
    if ((flat[i] as string).toLowerCase() === name) return flat[i + 1];
  }
  return undefined;
}

/** Request headers for the backend: hop-by-hop dropped, the peer appended to X-Forwarded-For. */
function forwardRequestHeaders(flat: readonly string[], peer: string): string[] {
  const named = connectionNamed(valueOf(flat, 'connection'));
  const out: string[] = [];
  let xff = '';
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i] as string;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || named?.has(lower) === true) continue;
    if (lower === 'x-forwarded-for') xff = `${flat[i + 1] as string}, `;
    else out.push(name, flat[i + 1] as string);
  }
  out.push('x-forwarded-for', xff + peer);
  return out;
}

/** Response headers for the client: hop-by-hop dropped; whether a Content-Length was there. */
function forwardResponseHeaders(flat: readonly string[]): { headers: string[]; length: boolean } {
  const named = connectionNamed(valueOf(flat, 'connection'));
  const headers: string[] = [];
  let length = false;
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i] as string;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || named?.has(lower) === true) continue;
    if (lower === 'content-length') length = true;
    headers.push(name, flat[i + 1] as string);
  }
  return { headers, length };
}

function backendPool(url: string): Pool {
  return new Pool(url, {
    connections: null,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    headersTimeout: 0,
    bodyTimeout: 0,
  });
}

function requestHasBody(flat: readonly string[]): boolean {
  const length = valueOf(flat, 'content-length');
  return (
    valueOf(flat, 'transfer-encoding') !== undefined || (length !== undefined && length !== '0')
  );
}

// ---- (a) node:http server + undici Pool --------------------------------------------------

/**
 * One client request: the handler of undici's Pool (header Buffers) and of anubis's own client
 * (header strings; it sets reusedSocket), which share the dispatch-handler protocol.
 */
class HttpExchange implements UpstreamHandler {
  reusedSocket = false;
  private resume: (() => void) | undefined;
  constructor(private readonly res: ServerResponse) {}
  onConnect(): void {}
  onHeaders(
    status: number,
    raw: (Buffer | string)[],
    resume: () => void,
    statusText: string,
  ): boolean {
    if (status < 200) return true;
    this.resume = resume;
    const flat = raw.map((h) => (typeof h === 'string' ? h : h.toString('latin1')));
    count(status);
    this.res.writeHead(status, statusText, forwardResponseHeaders(flat).headers);
    return true;
  }
  onData(chunk: Buffer): boolean {
    if (this.res.write(chunk)) return true;
    this.res.once('drain', this.resume as () => void);
    return false;
  }
  onComplete(): void {
    this.res.end();
  }
  onError(): void {
    if (this.res.headersSent) this.res.destroy();
    else {
      count(502);
      this.res.writeHead(502, { 'content-length': '0' }).end();
    }
  }
}

/** A node:http server that hands each bodiless request (headers rewritten) to `forward`. */
function serveNodeHttp(
  port: number,
  forward: (req: IncomingMessage, headers: string[], exchange: HttpExchange) => void,
): void {
  const server = createHttpServer({ keepAliveTimeout: 60_000, noDelay: true }, (req, res) => {
    if (requestHasBody(req.rawHeaders)) {
      count(501);
      res.writeHead(501, { connection: 'close', 'content-length': '0' }).end();
      return;
    }
    const headers = forwardRequestHeaders(req.rawHeaders, req.socket.remoteAddress ?? '');
    forward(req, headers, new HttpExchange(res));
  });
  server.listen(port, '127.0.0.1');
}

function nodeHttpAnubisClient(port: number, backend: string): void {
  const parserClass = loadLlhttp();
  if (parserClass === undefined) throw new Error("Node's llhttp binding is not reachable");
  const pool = new Http1Pool(backend, {
    id: 'backend',
    connectTimeoutMs: 5_000,
    keepAliveTimeoutMs: 60_000,
    parserClass,
  });
  serveNodeHttp(port, (req, headers, exchange) =>
    pool.dispatch(
      {
        path: req.url ?? '/',
        method: req.method ?? 'GET',
        headers,
        body: null,
        headersTimeout: 0,
        bodyTimeout: 0,
      },
      exchange,
    ),
  );
}

function nodeHttpUndici(port: number, backend: string): void {
  const pool = backendPool(backend);
  serveNodeHttp(port, (req, headers, exchange) =>
    pool.dispatch(
      { path: req.url ?? '/', method: req.method as Dispatcher.HttpMethod, headers },
      exchange,
    ),
  );
}

// ---- (b), (c) server side: llhttp over net.Server ----------------------------------------

interface ProxyRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: string[];
}

/** How a backend side answers: head, body chunks, end; or fails. */
interface ClientReply {
  head(status: number, statusText: string, flatHeaders: readonly string[]): void;
  /** false: the client is slow, wait for `onDrain` before more. */
  body(chunk: Buffer): boolean;
  onDrain(resume: () => void): void;
  end(): void;
  fail(): void;
}

type Forward = (request: ProxyRequest, reply: ClientReply) => void;

const uncork = (socket: Socket): void => {
  socket.uncork();
};

/** One client connection: requests parsed by llhttp, answered one at a time in order. */
class LlhttpClient implements ClientReply {
  private readonly parser = new HTTPParser();
  private readonly queue: { request: ProxyRequest; keepAlive: boolean }[] = [];
  private busy = false;
  private keepAlive = true;
  /** The current response's head was written (a failure now can only cut the connection). */
  private started = false;
  private chunked = false;
  private pendingHeaders: string[] = [];
  private pendingUrl = '';
  private current: { request: ProxyRequest | null; keepAlive: boolean } | undefined;
  private readonly peer: string;

  constructor(
    private readonly socket: Socket,
    private readonly forward: Forward,
  ) {
    this.peer = socket.remoteAddress ?? '';
    const parser = this.parser;
    parser.initialize(HTTPParser.REQUEST, {}, 0, HTTPParser.kLenientNone);
    parser[HTTPParser.kOnHeaders] = (headers: string[], url: string): void => {
      this.pendingHeaders.push(...headers);
      this.pendingUrl += url;
    };
    parser[HTTPParser.kOnHeadersComplete] = this.onHeadersComplete;
    parser[HTTPParser.kOnBody] = (): void => {
      if (this.current !== undefined) this.current.request = null; // a body: refused below
    };
    parser[HTTPParser.kOnMessageComplete] = this.onMessageComplete;
    parser[HTTPParser.kOnExecute] = (ret: number | Error): void => {
      if (ret instanceof Error) this.badRequest();
    };
    const handle = (socket as unknown as { _handle?: { isStreamBase?: boolean } })._handle;
    if (handle?.isStreamBase === true) {
      // As node:http does: llhttp reads the socket in C++, no 'data' events.
      parser.consume(handle);
    } else {
      socket.on('data', (chunk: Buffer) => {
        if (parser.execute(chunk) instanceof Error) this.badRequest();
      });
    }
    socket.on('error', () => {});
    socket.on('close', () => {
      if (handle?.isStreamBase === true) parser.unconsume();
      parser.remove();
      setImmediate(() => parser.close());
    });
  }

  private readonly onHeadersComplete: OnHeadersComplete = (
    _major,
    minor,
    headers,
    method,
    url,
    _status,
    _message,
    upgrade,
    shouldKeepAlive,
  ) => {
    const flat = headers ?? this.pendingHeaders;
    this.pendingHeaders = [];
    const path = url !== undefined && url !== '' ? url : this.pendingUrl;
    this.pendingUrl = '';
    const request =
      upgrade || requestHasBody(flat)
        ? null
        : {
            method: methods[method as number] as string,
            path,
            headers: forwardRequestHeaders(flat, this.peer),
          };
    this.current = { request, keepAlive: shouldKeepAlive && minor >= 1 };
    return 0;
  };

  private readonly onMessageComplete = (): void => {
    const current = this.current;
    this.current = undefined;
    if (current === undefined) return;
    if (current.request === null) {
      this.refuse();
      return;
    }
    this.queue.push({ request: current.request, keepAlive: current.keepAlive });
    if (!this.busy) this.next();
  };

  private next(): void {
    const item = this.queue.shift();
    if (item === undefined || this.socket.destroyed) return;
    this.busy = true;
    this.keepAlive = item.keepAlive;
    this.forward(item.request, this);
  }

  private refuse(): void {
    count(501);
    this.socket.end(
      'HTTP/1.1 501 Not Implemented\r\nconnection: close\r\ncontent-length: 0\r\n\r\n',
    );
  }

  private badRequest(): void {
    if (this.busy) this.socket.destroy();
    else
      this.socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
  }

  head(status: number, statusText: string, flatHeaders: readonly string[]): void {
    count(status);
    this.started = true;
    const { headers, length } = forwardResponseHeaders(flatHeaders);
    let head = `HTTP/1.1 ${status} ${statusText === '' ? 'OK' : statusText}\r\n`;
    for (let i = 0; i < headers.length; i += 2) {
      head += `${headers[i] as string}: ${headers[i + 1] as string}\r\n`;
    }
    // An HTTP/1.0 client (keepAlive false) gets a body delimited by the end of the connection.
    this.chunked = !length && this.keepAlive && status !== 204 && status !== 304;
    if (this.chunked) head += 'transfer-encoding: chunked\r\n';
    if (!this.keepAlive) head += 'connection: close\r\n';
    this.socket.cork();
    this.socket.write(`${head}\r\n`, 'latin1');
    process.nextTick(uncork, this.socket);
  }

  body(chunk: Buffer): boolean {
    if (!this.chunked) return this.socket.write(chunk);
    this.socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
    this.socket.write(chunk);
    return this.socket.write('\r\n', 'latin1');
  }

  onDrain(resume: () => void): void {
    this.socket.once('drain', resume);
  }

  end(): void {
    if (this.chunked) this.socket.write('0\r\n\r\n', 'latin1');
    this.busy = false;
    this.started = false;
    if (!this.keepAlive) this.socket.end();
    else this.next();
  }

  fail(): void {
    this.busy = false;
    this.queue.length = 0;
    if (this.started) {
      this.socket.destroy();
      return;
    }
    count(502);
    this.socket.end('HTTP/1.1 502 Bad Gateway\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
  }
}

function serveWithLlhttp(port: number, forward: Forward): void {
  createServer({ noDelay: true }, (socket) => new LlhttpClient(socket, forward)).listen(
    port,
    '127.0.0.1',
  );
}

// ---- (b) backend side: undici Pool -------------------------------------------------------

class ReplyExchange implements Dispatcher.DispatchHandler {
  private resume: (() => void) | undefined;
  constructor(private readonly reply: ClientReply) {}
  onConnect(): void {}
  onHeaders(status: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    if (status < 200) return true;
    this.resume = resume;
    this.reply.head(
      status,
      statusText,
      raw.map((b) => b.toString('latin1')),
    );
    return true;
  }
  onData(chunk: Buffer): boolean {
    if (this.reply.body(chunk)) return true;
    this.reply.onDrain(this.resume as () => void);
    return false;
  }
  onComplete(): void {
    this.reply.end();
  }
  onError(): void {
    this.reply.fail();
  }
}

function undiciForward(backend: string): Forward {
  const pool = backendPool(backend);
  return (request, reply) => {
    pool.dispatch(
      {
        path: request.path,
        method: request.method,
        headers: request.headers,
      },
      new ReplyExchange(reply),
    );
  };
}

// ---- (c) backend side: raw sockets + llhttp RESPONSE parser -----------------------------

class LlhttpBackendConnection {
  readonly socket: Socket;
  private readonly parser = new HTTPParser();
  private reply: ClientReply | null = null;
  private reusable = true;
  /** Set when llhttp reads the socket itself (consume), like the server side. */
  private handle: StreamHandle | undefined;
  dead = false;

  constructor(
    host: string,
    port: number,
    private readonly idle: LlhttpBackendConnection[],
  ) {
    this.socket = connect({ host, port, noDelay: true });
    const parser = this.parser;
    parser.initialize(HTTPParser.RESPONSE, {}, 0, HTTPParser.kLenientNone);
    const onHeadersComplete: OnHeadersComplete = (
      _major,
      _minor,
      headers,
      _method,
      _url,
      status,
      message,
      _upgrade,
      keepAlive,
    ) => {
      if (status < 200) return 0;
      this.reusable = keepAlive;
      this.reply?.head(status, message ?? '', headers ?? []);
      return 0;
    };
    parser[HTTPParser.kOnHeadersComplete] = onHeadersComplete;
    parser[HTTPParser.kOnBody] = (chunk: Buffer): void => {
      if (this.reply?.body(chunk) === false) {
        const handle = this.handle;
        if (handle === undefined) {
          this.socket.pause();
          this.reply.onDrain(() => this.socket.resume());
        } else {
          handle.readStop();
          this.reply.onDrain(() => handle.readStart());
        }
      }
    };
    parser[HTTPParser.kOnMessageComplete] = (): void => {
      const reply = this.reply;
      if (reply === null) return; // a 1xx, or an answer nobody asked for
      this.reply = null;
      // Back to the idle list before the client side may send its next request.
      if (this.reusable && !this.dead) this.idle.push(this);
      else this.socket.destroy();
      reply.end();
    };
    parser[HTTPParser.kOnExecute] = (ret: number | Error): void => {
      if (ret instanceof Error) this.lost();
    };
    this.socket.once('connect', () => {
      const handle = (this.socket as unknown as { _handle?: StreamHandle })._handle;
      if (handle?.isStreamBase === true) {
        this.handle = handle;
        parser.consume(handle);
      } else {
        this.socket.on('data', (chunk: Buffer) => {
          if (parser.execute(chunk) instanceof Error) this.lost();
        });
      }
    });
    this.socket.on('end', () => {
      parser.finish(); // a body delimited by the end of the connection
      this.lost();
    });
    this.socket.on('error', () => this.lost());
    this.socket.on('close', () => {
      this.lost();
      if (this.handle !== undefined) parser.unconsume();
      parser.remove();
      setImmediate(() => parser.close());
    });
  }

  send(request: ProxyRequest, reply: ClientReply): void {
    this.reply = reply;
    this.reusable = true;
    let head = `${request.method} ${request.path} HTTP/1.1\r\n`;
    const h = request.headers;
    for (let i = 0; i < h.length; i += 2) head += `${h[i] as string}: ${h[i + 1] as string}\r\n`;
    this.socket.write(`${head}\r\n`, 'latin1');
  }

  private lost(): void {
    if (this.dead) return;
    this.dead = true;
    const at = this.idle.indexOf(this);
    if (at >= 0) this.idle.splice(at, 1);
    const reply = this.reply;
    this.reply = null;
    reply?.fail();
    this.socket.destroy();
  }
}

function llhttpForward(backend: string): Forward {
  const { hostname, port } = new URL(backend);
  const idle: LlhttpBackendConnection[] = [];
  return (request, reply) => {
    const connection = idle.pop() ?? new LlhttpBackendConnection(hostname, Number(port), idle);
    connection.send(request, reply);
  };
}

// ---- (d) raw, deliberately incorrect ceiling (after /tmp/proto/raw-proxy.mjs) -----------

function rawCeiling(listenPort: number, backend: string): void {
  const { hostname, port } = new URL(backend);
  const idle: Socket[] = [];
  const dead = new WeakSet<Socket>();
  const getBackend = (use: (s: Socket) => void): void => {
    let s: Socket | undefined;
    while ((s = idle.pop()) !== undefined) if (!dead.has(s)) return use(s);
    const sock = connect({ port: Number(port), host: hostname, noDelay: true }, () => use(sock));
    sock.on('error', () => {});
    sock.on('end', () => {
      dead.add(sock);
      sock.end();
    });
  };
  createServer({ noDelay: true }, (client) => {
    let buf: Buffer | null = null;
    let busy = false;
    const ip = client.remoteAddress ?? '';
    const next = (): void => {
      if (busy || buf === null) return;
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.toString('latin1', 0, end);
      buf = end + 4 === buf.length ? null : buf.subarray(end + 4);
      busy = true;
      const out = `${head}\r\nx-forwarded-for: ${ip}\r\n\r\n`;
      getBackend((b) => {
        let rbuf: Buffer | null = null;
        let remaining = -1;
        const onData = (chunk: Buffer): void => {
          if (remaining < 0) {
            rbuf = rbuf === null ? chunk : Buffer.concat([rbuf, chunk]);
            const e = rbuf.indexOf('\r\n\r\n');
            if (e < 0) return;
            const h = rbuf.toString('latin1', 0, e);
            const status = Number(h.slice(9, 12));
            count(status);
            const m = /content-length: *(\d+)/i.exec(h);
            remaining = m === null ? 0 : Number(m[1]);
            client.write(rbuf);
            remaining -= rbuf.length - e - 4;
          } else {
            client.write(chunk);
            remaining -= chunk.length;
          }
          if (remaining === 0) {
            b.removeListener('data', onData);
            idle.push(b);
            busy = false;
            next();
          }
        };
        b.on('data', onData);
        b.write(out);
      });
    };
    client.on('data', (c: Buffer) => {
      buf = buf === null ? c : Buffer.concat([buf, c]);
      next();
    });
    client.on('error', () => {});
  }).listen(listenPort, '127.0.0.1');
}

// ---- entry -------------------------------------------------------------------------------

const [variant, portText, backend] = process.argv.slice(2);
const port = Number(portText);
if (backend === undefined || !Number.isInteger(port)) {
  process.stderr.write('usage: fast-path-proxy.js VARIANT PORT BACKEND_URL\n');
  process.exit(2);
}
switch (variant) {
  case 'node-http-undici':
    nodeHttpUndici(port, backend);
    break;
  case 'node-http-anubis-client':
    nodeHttpAnubisClient(port, backend);
    break;
  case 'llhttp-undici':
    serveWithLlhttp(port, undiciForward(backend));
    break;
  case 'llhttp-llhttp':
    serveWithLlhttp(port, llhttpForward(backend));
    break;
  case 'raw':
    rawCeiling(port, backend);
    break;
  default:
    process.stderr.write(`unknown variant ${String(variant)}\n`);
    process.exit(2);
}
process.on('SIGTERM', () => {
  process.stdout.write(`FAST_PATH_COUNTS ${JSON.stringify(counts)}\n`, () => process.exit(0));
});
