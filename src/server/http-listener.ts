/**
 * A client-facing HTTP listener: a node:http server bound to one address, handing every
 * request to the proxy. Closing it stops accepting, closes idle keep-alive connections, lets
 * in-flight requests finish up to a drain timeout, then cuts what is left.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { DEFAULT_LIMITS, type LimitsConfig } from '../config/schema.js';
import { silentLogger, type Logger } from '../logging/logger.js';
import { applyClientLimits } from './client-limits.js';
import type { ListenAddress } from '../config/units.js';
import { formatAddress } from '../config/units.js';
import { bindServer } from './bind.js';

export interface HttpListenerOptions {
  readonly address: ListenAddress;
  readonly onRequest: (req: IncomingMessage, res: ServerResponse) => void;
  /** Idle time allowed on a client keep-alive connection between requests. */
  readonly keepAliveTimeoutMs?: number;
  /** Time allowed to receive a request's headers (slowloris defence). */
  readonly headersTimeoutMs?: number;
  /**
   * Client-side limits (request guard, parser limits, client timeouts, connection cap;
   * src/server/client-limits.ts). They override keepAliveTimeoutMs and headersTimeoutMs.
   */
  readonly limits?: LimitsConfig;
  /** Largest request body of the listener's pool (0 = none), read per request. */
  readonly maxBodySize?: () => number;
  /** WebSocket and other Upgrade requests (src/proxy/upgrade.ts); absent: refused with 501. */
  readonly onUpgrade?: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  readonly logger?: Logger;
}

export class HttpListener {
  readonly server: Server;
  /** `host:port` as configured (the key a reload matches listeners by). */
  readonly addressText: string;
  private readonly address: ListenAddress;
  private onRequest: (req: IncomingMessage, res: ServerResponse) => void;
  private onUpgrade: ((req: IncomingMessage, socket: Duplex, head: Buffer) => void) | undefined;
  /** Upgraded client sockets still open (cut when a drain runs out). */
  private readonly upgraded: ReadonlySet<Duplex>;

  constructor(options: HttpListenerOptions) {
    this.address = options.address;
    this.addressText = formatAddress(options.address.host, options.address.port);
    this.onRequest = options.onRequest;
    // Timeouts and parser limits are set by applyClientLimits below (from `limits`).
    this.server = createServer({ noDelay: true });
    this.onUpgrade = options.onUpgrade;
    const guarded = applyClientLimits(
      this.server,
      {
        limits: options.limits ?? {
          ...DEFAULT_LIMITS,
          keepAliveTimeout: options.keepAliveTimeoutMs ?? DEFAULT_LIMITS.keepAliveTimeout,
          headersTimeout: options.headersTimeoutMs ?? DEFAULT_LIMITS.headersTimeout,
        },
        logger: options.logger ?? silentLogger(),
        maxBodySize: options.maxBodySize ?? (() => 0),
        onUpgrade:
          options.onUpgrade === undefined
            ? undefined
            : (req, socket, head) => this.onUpgrade?.(req, socket, head),
      },
      // One indirection so a reload can hand new requests to a new proxy (setRequestHandler).
      (req, res) => this.onRequest(req, res),
    );
    this.server.on('request', guarded.handleRequest);
    this.upgraded = guarded.upgraded;
  }

  /** Sends Upgrade requests that arrive from now on to `onUpgrade` (reload). */
  setUpgradeHandler(onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void): void {
    this.onUpgrade = onUpgrade;
  }

  /** Sends requests that arrive from now on to `onRequest` (reload); in-flight ones continue. */
  setRequestHandler(onRequest: (req: IncomingMessage, res: ServerResponse) => void): void {
    this.onRequest = onRequest;
  }

  /** Binds the address; resolves with the bound address (useful with port 0). */
  listen(): Promise<AddressInfo> {
    return bindServer(this.server, this.address);
  }

  /** The bound address (after listen()). */
  boundAddress(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  /**
   * Stops accepting and waits for in-flight requests to finish, at most `drainMs`, then closes
   * every remaining connection.
   */
  async close(drainMs = 10_000): Promise<void> {
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    const timer = setTimeout(() => {
      this.server.closeAllConnections();
      // Upgraded sockets left the HTTP server's bookkeeping but still hold server.close().
      for (const socket of this.upgraded) socket.destroy();
    }, drainMs);
    timer.unref();
    // Connections that finish a request while draining are closed rather than kept alive.
    this.server.on('request', (_req: IncomingMessage, res: ServerResponse) => {
      res.shouldKeepAlive = false;
    });
    await closed;
    clearTimeout(timer);
  }
}
