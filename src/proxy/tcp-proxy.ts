/**
 * TCP mode (layer 4): each client connection is piped, byte for byte, to a backend picked by
 * the pool's strategy. One `TcpSession` per client connection is also the strategy's
 * PickContext (hash strategies see the client address; method is `TCP`, url empty).
 *
 * Life of a session:
 *   1. pick a backend (excluding those already tried) and connect, within `timeouts.connect`
 *      of the pool; the connect time is the backend's latency sample (least-time);
 *   2. on a connect failure or timeout, pick another backend, up to `connectAttempts` tries
 *      in all; when none is left the client is disconnected;
 *   3. once connected, forward both ways with back-pressure: a full socket on one side
 *      pauses reading on the other, so anubis holds at most one socket buffer
 *      (highWaterMark, 16 KiB by default, plus the kernel's and one read) per direction,
 *      whatever the speeds. Client to backend is a `pipe()`. Backend to client (downloads,
 *      the larger direction) reads into one reused 64 KiB buffer per connection (`onread`),
 *      which is written to the client at once: when the kernel took the whole write, the
 *      next read reuses the buffer; when part of it waits in the socket, the next read gets a
 *      new buffer. So a download costs no allocation per read while the client keeps up
 *      (pipe()'s stream allocates one per read: 1.3–1.4 against 1.0–1.1 GB/s for 1 MiB
 *      answers in a bare Node proxy). Half-close passes through: a client that shuts down
 *      its sending side still gets the rest of the backend's answer, and the backend's end
 *      ends the client's side (both sockets are allowHalfOpen);
 *   4. the session ends when both sockets are closed; an error or reset on one side, or
 *      `idleTimeout` with no byte in either direction, destroys both.
 *
 * `backend.active` counts the connection for its whole life (from the connect attempt on),
 * so least-connections balances open connections. `bytesIn`/`bytesOut` on the backend are
 * brought up to date from the sockets' own counters (bytesRead/bytesWritten) once a second
 * while connections are open and when each one closes: nothing runs per chunk beyond the
 * pipes themselves (a counting 'data' listener on each socket cost ~10% of small-message
 * throughput, bench/tcp-pipe-baseline.ts); a scrape brings them up to date first
 * (`TcpProxy.countBytes`, called by src/admin/snapshot.ts).
 *
 * Open sessions are also kept in a registry per backend, so that a backend removed at runtime
 * (admin API, DNS discovery, reload) can have its connections drained and then cut:
 * `closeTcpSessions(backend, timeoutMs)`, called by src/reload/upgraded-drain.ts on the pool's
 * `backend-removed` event. Kept backends keep their objects on a reload, so their sessions are
 * never touched.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../logging/logger.js';
import type { BackendView, PickContext } from '../strategies/types.js';
import type { Backend } from '../upstream/backend.js';
import type { UpstreamPool } from '../upstream/pool.js';
import { UpstreamConnectTimeoutError, type AnubisError } from '../errors.js';
import { normalizeAddress } from './headers.js';
import { classifyUpstreamError } from './upstream-errors.js';

export interface TcpProxyOptions {
  /** Read per connection, so a reload may switch it (setPool). */
  pool: UpstreamPool;
  /** Close a connection after this long without a byte either way; 0 disables. */
  readonly idleTimeoutMs: number;
  /** Backends tried per client connection when connecting fails (first try included). */
  readonly connectAttempts: number;
  readonly logger: Logger;
}

function ignore(): void {}

/** Size of the buffer a backend's bytes are read into (Node's own read size). */
const READ_BUFFER_BYTES = 64 * 1024;

/**
 * The buffer for a socket's next read when the last one was written from `current`: the
 * same, if nothing written is still waiting in userland (`pendingBytes`, the writer's
 * `writableLength`: a write Node could not finish keeps pointing into its buffer), else a
 * new one.
 */
export function readBufferFor(current: Buffer | undefined, pendingBytes: number): Buffer {
  return current !== undefined && pendingBytes === 0
    ? current
    : Buffer.allocUnsafe(READ_BUFFER_BYTES);
}

/** How often the byte counters of open connections are brought up to date. */
const BYTE_COUNTER_INTERVAL_MS = 1_000;

const NO_HEADERS: IncomingHttpHeaders = Object.freeze({});

/** `tcp://host:port` → host and port (IPv6 hosts lose their brackets). */
export function tcpTarget(url: string): { host: string; port: number } {
  const parsed = new URL(url);
  const host = parsed.hostname.startsWith('[') ? parsed.hostname.slice(1, -1) : parsed.hostname;
  return { host, port: Number(parsed.port) };
}

/** Open sessions by the backend they are connected (or connecting) to. */
const sessionsByBackend = new Map<Backend, Set<TcpSession>>();
/** Drains waiting for a backend's last session to end (closeTcpSessions). */
const drainWaiters = new Map<Backend, (() => void)[]>();

function registerSession(backend: Backend, session: TcpSession): void {
  let set = sessionsByBackend.get(backend);
  if (set === undefined) {
    set = new Set();
    sessionsByBackend.set(backend, set);
  }
  set.add(session);
}

function unregisterSession(backend: Backend, session: TcpSession): void {
  const set = sessionsByBackend.get(backend);
  if (set === undefined || !set.delete(session) || set.size > 0) return;
  sessionsByBackend.delete(backend);
  const waiters = drainWaiters.get(backend);
  if (waiters === undefined) return;
  drainWaiters.delete(backend);
  for (const wake of waiters) wake();
}

/** TCP connections open to `backend` right now (all listeners). */
export function tcpSessionCount(backend: BackendView): number {
  return sessionsByBackend.get(backend as Backend)?.size ?? 0;
}

/**
 * Lets the TCP connections to `backend` end by themselves for at most `timeoutMs`, then cuts
 * those still open (both sides: the bytes are opaque, anubis has no protocol-level goodbye to
 * send). Resolves with the number of connections that had to be cut.
 */
export async function closeTcpSessions(backend: BackendView, timeoutMs: number): Promise<number> {
  const key = backend as Backend;
  if ((sessionsByBackend.get(key)?.size ?? 0) === 0) return 0;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    timer.unref();
    const waiters = drainWaiters.get(key) ?? [];
    waiters.push(() => {
      clearTimeout(timer);
      resolve();
    });
    drainWaiters.set(key, waiters);
  });
  const left = [...(sessionsByBackend.get(key) ?? [])];
  for (const session of left) session.destroy();
  return left.length;
}

export class TcpProxy {
  readonly options: TcpProxyOptions;
  /** Sessions open right now (for draining and metrics). */
  readonly sessions = new Set<TcpSession>();
  /** Client connections accepted since start. */
  connectionsTotal = 0;
  /** Client connections closed because no backend could be connected. */
  connectFailures = 0;
  /** Brings backend byte counters up to date while sessions are open. */
  private counterTimer: NodeJS.Timeout | undefined;

  constructor(options: TcpProxyOptions) {
    this.options = { ...options };
  }

  /** The `connection` listener of a net.Server created with pauseOnConnect and allowHalfOpen. */
  readonly handleConnection = (client: Socket): void => {
    this.connectionsTotal++;
    const session = new TcpSession(this, client);
    this.sessions.add(session);
    if (this.counterTimer === undefined) {
      this.counterTimer = setInterval(this.countBytes, BYTE_COUNTER_INTERVAL_MS);
      this.counterTimer.unref();
    }
    session.start();
  };

  /** Adds the bytes moved since the last update to each open session's backend. */
  readonly countBytes = (): void => {
    for (const session of this.sessions) session.countBytes();
  };

  /** A session ended (called by the session). */
  sessionEnded(session: TcpSession): void {
    this.sessions.delete(session);
    if (this.sessions.size === 0 && this.counterTimer !== undefined) {
      clearInterval(this.counterTimer);
      this.counterTimer = undefined;
    }
  }

  /** New connections go to `pool` (reload); open ones stay with their backend. */
  setPool(pool: UpstreamPool): void {
    this.options.pool = pool;
  }

  /** Destroys every open session (end of a drain). */
  destroyAll(): void {
    for (const session of this.sessions) session.destroy();
  }
}

class TcpSession implements PickContext {
  // PickContext
  readonly clientAddress: string;
  readonly method = 'TCP';
  readonly url = '';
  readonly headers = NO_HEADERS;
  excluded: Set<BackendView> | undefined = undefined;

  private readonly proxy: TcpProxy;
  /** The pool when the connection arrived (a reload may switch the proxy's). */
  private readonly pool: UpstreamPool;
  private readonly client: Socket;
  private upstream: Socket | undefined;
  private backend: Backend | undefined;
  private attempts = 0;
  private connectTimer: NodeJS.Timeout | undefined;
  private connectStartedAt = 0;
  private connected = false;
  private upstreamFailed = false;
  private openSockets = 0;
  private ended = false;
  /** Upstream bytes read / written already added to the backend's counters. */
  private countedIn = 0;
  private countedOut = 0;
  /** What the backend's bytes are read into; replaced when the client still holds a part. */
  private readBuffer: Buffer | undefined;
  /** The backend's reads are paused until the client drains. */
  private awaitingDrain = false;

  constructor(proxy: TcpProxy, client: Socket) {
    this.proxy = proxy;
    this.pool = proxy.options.pool;
    this.client = client;
    this.clientAddress = normalizeAddress(client.remoteAddress);
    client.on('error', this.onClientError);
    client.once('close', this.onClientClose);
  }

  start(): void {
    this.openSockets = 1;
    this.tryNext();
  }

  destroy(): void {
    this.upstream?.destroy();
    this.client.destroy();
  }

  /** Picks a backend not tried yet and connects to it, or gives up. */
  private tryNext(): void {
    const { connectAttempts, logger } = this.proxy.options;
    const pool = this.pool;
    const backend = this.attempts < connectAttempts ? pool.pick(this) : undefined;
    if (backend === undefined) {
      this.proxy.connectFailures++;
      logger.warn(
        { pool: pool.name, client: this.clientAddress, attempts: this.attempts },
        'tcp: no backend could be connected; closing the client connection',
      );
      this.client.destroy();
      return;
    }
    this.attempts++;
    this.backend = backend;
    registerSession(backend, this);
    backend.requestStarted();
    const { host, port } = tcpTarget(backend.url);
    const upstream = connect({
      host,
      port,
      allowHalfOpen: true,
      noDelay: true,
      onread: { buffer: this.nextReadBuffer, callback: this.onUpstreamBytes },
    });
    this.upstream = upstream;
    this.openSockets++;
    this.connectStartedAt = performance.now();
    this.connectTimer = setTimeout(this.onConnectTimeout, pool.config.timeouts.connect);
    upstream.once('connect', this.onConnect);
    upstream.on('error', this.onUpstreamError);
    upstream.once('close', this.onUpstreamClose);
  }

  private readonly onConnect = (): void => {
    clearTimeout(this.connectTimer);
    const backend = this.backend as Backend;
    const upstream = this.upstream as Socket;
    const now = performance.now();
    backend.recordLatency(now - this.connectStartedAt, now);
    // Passive health: a connect that works counts as a success (any status below 500 does).
    this.pool.health.reportResponse(backend, 200);
    this.connected = true;
    const client = this.client;
    if (client.destroyed) {
      upstream.destroy();
      return;
    }
    client.pipe(upstream);
    client.on('drain', this.onClientDrain);
    upstream.on('end', this.onUpstreamEnd);
    const idle = this.proxy.options.idleTimeoutMs;
    if (idle > 0) {
      client.setTimeout(idle, this.onIdle);
      upstream.setTimeout(idle, this.onIdle);
    }
  };

  /**
   * The buffer the backend's next read goes into: the same one, unless bytes of the last
   * read still wait in the client's socket (they are written from that buffer, not copied).
   */
  private readonly nextReadBuffer = (): Buffer =>
    (this.readBuffer = readBufferFor(this.readBuffer, this.client.writableLength));

  /** Bytes from the backend: on to the client; false pauses the backend's reads. */
  private readonly onUpstreamBytes = (length: number, buffer: Buffer): boolean => {
    const client = this.client;
    if (!client.writable) {
      // The client is gone or closed its receiving side: nobody takes the rest.
      this.upstream?.destroy();
      return false;
    }
    if (client.write(buffer.subarray(0, length))) return true;
    this.awaitingDrain = true;
    return false;
  };

  private readonly onClientDrain = (): void => {
    if (!this.awaitingDrain) return;
    this.awaitingDrain = false;
    this.upstream?.resume();
  };

  /** The backend finished sending: so does anubis, towards the client (half-close). */
  private readonly onUpstreamEnd = (): void => {
    if (this.client.writable) this.client.end();
  };

  /** The connect attempt failed (error or timeout): try another backend. */
  private connectFailed(error: AnubisError): void {
    const backend = this.backend as Backend;
    clearTimeout(this.connectTimer);
    this.upstreamFailed = true;
    this.pool.health.reportError(backend, error);
    this.proxy.options.logger.warn(
      {
        pool: this.pool.name,
        backend: backend.id,
        code: error.code,
        err: error.cause instanceof Error ? error.cause.message : error.message,
      },
      'tcp: cannot connect to backend',
    );
    (this.excluded ??= new Set()).add(backend);
    const upstream = this.upstream as Socket;
    upstream.off('close', this.onUpstreamClose);
    upstream.off('error', this.onUpstreamError);
    upstream.on('error', ignore);
    upstream.destroy();
    this.openSockets--;
    this.upstream = undefined;
    backend.requestEnded(true);
    unregisterSession(backend, this);
    this.backend = undefined;
    this.upstreamFailed = false;
    if (this.client.destroyed) this.finish();
    else this.tryNext();
  }

  private readonly onConnectTimeout = (): void => {
    const backend = this.backend as Backend;
    this.connectFailed(
      new UpstreamConnectTimeoutError(
        backend.id,
        new Error(`connect timed out after ${this.pool.config.timeouts.connect} ms`),
      ),
    );
  };

  private readonly onUpstreamError = (error: Error): void => {
    const backend = this.backend as Backend;
    const classified = classifyUpstreamError(error, backend.id);
    if (!this.connected) {
      this.connectFailed(classified);
      return;
    }
    this.pool.health.reportError(backend, classified);
    this.upstreamFailed = true;
    this.client.destroy();
  };

  private readonly onClientError = (): void => {
    this.upstream?.destroy();
  };

  private readonly onIdle = (): void => {
    this.destroy();
  };

  private readonly onUpstreamClose = (): void => {
    // A backend that closed without a clean end (reset, killed) takes the client down too;
    // after a clean end the client's side finishes on its own (half-close).
    if (this.upstreamFailed || !(this.upstream as Socket).readableEnded) this.client.destroy();
    this.socketClosed();
  };

  private readonly onClientClose = (): void => {
    clearTimeout(this.connectTimer);
    const upstream = this.upstream;
    if (upstream !== undefined && (!this.connected || !this.client.readableEnded))
      upstream.destroy();
    this.socketClosed();
  };

  private socketClosed(): void {
    this.openSockets--;
    if (this.openSockets === 0) this.finish();
  }

  /** Both sockets are closed: end the bookkeeping exactly once. */
  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    this.countBytes();
    const backend = this.backend;
    if (backend !== undefined) {
      backend.requestEnded(this.upstreamFailed);
      unregisterSession(backend, this);
    }
    this.proxy.sessionEnded(this);
  }

  /** Adds the bytes moved to and from the backend since the last call to its counters. */
  countBytes(): void {
    const upstream = this.upstream;
    const backend = this.backend;
    if (upstream === undefined || backend === undefined || !this.connected) return;
    const read = upstream.bytesRead;
    const written = upstream.bytesWritten;
    backend.bytesIn += read - this.countedIn;
    backend.bytesOut += written - this.countedOut;
    this.countedIn = read;
    this.countedOut = written;
  }
}
