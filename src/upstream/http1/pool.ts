/**
 * anubis's HTTP/1.1 connection pool to one backend (the default `upstream client`, see
 * src/upstream/upstream-client.ts): unbounded connections, one request at a time on each,
 * idle connections reused newest first (the warmest socket; the oldest ones age out).
 *
 * An idle connection is reused only while younger than the keep-alive timeout: the pool's
 * own (`keepAliveTimeout`), or one second less than what the backend announced in
 * `Keep-Alive: timeout=N`, whichever is shorter, so that anubis stops using a connection
 * before the backend closes it. Idle connections past it are closed by a sweep every second.
 * A request that still meets a connection the backend just closed fails as a reset on a
 * reused socket, which the proxy retries (src/proxy/retry.ts). Towards https:// backends a
 * new connection offers the pool's newest TLS session for resumption (as undici does).
 */
import { performance } from 'node:perf_hooks';
import { UpstreamResetError } from '../../errors.js';
import type {
  UpstreamClient,
  UpstreamClientStats,
  UpstreamHandler,
  UpstreamRequest,
} from '../upstream-client.js';
import { Http1Connection, type ConnectionOwner, type TlsConnectOptions } from './connection.js';
import type { LlhttpParserClass } from './llhttp.js';

export interface Http1PoolOptions {
  /** Backend id, named in errors. */
  readonly id: string;
  readonly connectTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  readonly tls?: TlsConnectOptions | undefined;
  readonly parserClass: LlhttpParserClass;
}

/** Margin kept below a keep-alive timeout the backend announced. */
const ANNOUNCED_MARGIN_MS = 1_000;
const SWEEP_INTERVAL_MS = 1_000;

export class Http1Pool implements UpstreamClient, ConnectionOwner {
  readonly id: string;
  readonly host: string;
  readonly port: number;
  readonly authority: string;
  readonly tls: TlsConnectOptions | undefined;
  tlsSession: Buffer | undefined = undefined;
  readonly connectTimeoutMs: number;
  readonly parserClass: LlhttpParserClass;
  private readonly keepAliveTimeoutMs: number;
  /** Idle connections, the most recently used last. */
  private readonly idle: Http1Connection[] = [];
  private readonly all = new Set<Http1Connection>();
  private sweeper: NodeJS.Timeout | undefined = undefined;
  private closing = false;
  private closeWaiters: (() => void)[] = [];

  constructor(url: string, options: Http1PoolOptions) {
    const parsed = new URL(url);
    const https = parsed.protocol === 'https:';
    this.id = options.id;
    // URL keeps the brackets of an IPv6 literal; sockets want the bare address.
    this.host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
    this.port = parsed.port === '' ? (https ? 443 : 80) : Number(parsed.port);
    this.authority = parsed.host;
    this.tls = https ? (options.tls ?? { rejectUnauthorized: true }) : undefined;
    this.connectTimeoutMs = options.connectTimeoutMs;
    this.keepAliveTimeoutMs = options.keepAliveTimeoutMs;
    this.parserClass = options.parserClass;
  }

  /**
   * Connection counts (for tests and diagnostics; not on the hot path). A request on a
   * connection still connecting is pending (the pool never queues otherwise: a request with
   * no idle connection gets a new one); closed connections whose socket has not yet emitted
   * 'close' count nowhere.
   */
  get stats(): UpstreamClientStats {
    let connected = 0;
    let running = 0;
    let pending = 0;
    for (const connection of this.all) {
      if (connection.open) {
        connected++;
        if (connection.busy) running++;
      } else if (!connection.closed && connection.busy) pending++;
    }
    let free = 0;
    for (const connection of this.idle) if (connection.open) free++;
    return { connected, free, running, pending };
  }

  dispatch(request: UpstreamRequest, handler: UpstreamHandler): boolean {
    if (this.closing) {
      handler.onError(new UpstreamResetError(this.id, new Error('connection pool is closed')));
      return false;
    }
    let connection = this.checkout();
    if (connection === undefined) {
      connection = new Http1Connection(this);
      this.all.add(connection);
    }
    connection.send(request, handler);
    return true;
  }

  /** The newest idle connection still within its keep-alive time, if any. */
  private checkout(): Http1Connection | undefined {
    const idle = this.idle;
    if (idle.length === 0) return undefined;
    const now = performance.now();
    let connection: Http1Connection | undefined;
    while ((connection = idle.pop()) !== undefined) {
      if (!connection.closed && now - connection.idleSince < this.keepAliveOf(connection)) {
        return connection;
      }
      connection.destroy();
    }
    return undefined;
  }

  private keepAliveOf(connection: Http1Connection): number {
    const announced = connection.announcedKeepAliveMs;
    if (announced < 0) return this.keepAliveTimeoutMs;
    return Math.min(this.keepAliveTimeoutMs, announced - ANNOUNCED_MARGIN_MS);
  }

  release(connection: Http1Connection): void {
    if (this.closing || this.keepAliveOf(connection) <= 0) {
      connection.destroy();
      return;
    }
    connection.idleSince = performance.now();
    this.idle.push(connection);
    this.sweeper ??= setInterval(this.sweep, SWEEP_INTERVAL_MS).unref();
  }

  forget(connection: Http1Connection): void {
    this.all.delete(connection);
    const at = this.idle.lastIndexOf(connection);
    if (at !== -1) this.idle.splice(at, 1);
    if (this.all.size === 0) {
      if (this.sweeper !== undefined) clearInterval(this.sweeper);
      this.sweeper = undefined;
      const waiters = this.closeWaiters;
      this.closeWaiters = [];
      for (const wake of waiters) wake();
    }
  }

  /** Closes idle connections past their keep-alive time (oldest first in the list). */
  private readonly sweep = (): void => {
    const now = performance.now();
    for (const connection of this.idle.slice()) {
      if (now - connection.idleSince >= this.keepAliveOf(connection)) connection.destroy();
    }
  };

  async close(): Promise<void> {
    this.closing = true;
    for (const connection of this.idle.splice(0)) connection.destroy();
    for (const connection of this.all) if (!connection.busy) connection.destroy();
    await this.drained();
  }

  async destroy(): Promise<void> {
    this.closing = true;
    this.idle.length = 0;
    for (const connection of [...this.all]) connection.destroy();
    await this.drained();
  }

  private drained(): Promise<void> {
    if (this.all.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.closeWaiters.push(resolve));
  }
}
