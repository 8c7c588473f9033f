/**
 * A client-facing HTTP listener: a node:http server bound to one address, handing every
 * request to the proxy. With `fastPath`, a socket server binds the address instead and
 * serves plain bodiless HTTP/1.1 requests itself, handing every other connection to the
 * node:http server (src/server/fast-http1/). Closing it stops accepting, closes idle
 * keep-alive connections, lets in-flight requests finish up to a drain timeout, then cuts
 * what is left. With `acceptSockets` > 1 it binds that many sockets to the address
 * (SO_REUSEPORT; src/server/accept-sockets.ts) so a burst of new connections is accepted
 * several per event-loop iteration.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Server as NetServer } from 'node:net';
import type { Duplex } from 'node:stream';
import { DEFAULT_LIMITS, type LimitsConfig } from '../config/schema.js';
import { silentLogger, type Logger } from '../logging/logger.js';
import { applyClientLimits } from './client-limits.js';
import type { ListenAddress } from '../config/units.js';
import { formatAddress } from '../config/units.js';
import { acceptSocketCount, createAcceptor, type AcceptSocketsSetting } from './accept-sockets.js';
import { bindServer, closeServers, countConnections } from './bind.js';
import type { ClientRequestHandler } from '../proxy/client-messages.js';
import { FastHttp1Front, fastPathRuntime } from './fast-http1/front.js';
import type { ClientListener } from './secure-listener.js';

export interface HttpListenerOptions {
  readonly address: ListenAddress;
  readonly onRequest: ClientRequestHandler;
  /**
   * Serve plain bodiless HTTP/1.1 requests without node:http's per-request objects
   * (src/server/fast-http1/). Off when this Node lacks the internals it needs (logged).
   */
  readonly fastPath?: boolean;
  /**
   * Listening sockets bound to the address (SO_REUSEPORT, src/server/accept-sockets.ts):
   * `auto` or a count; 1 (the default) where this runtime cannot (logged when asked for more).
   */
  readonly acceptSockets?: AcceptSocketsSetting;
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

export class HttpListener implements ClientListener {
  /** The node:http server (it binds the address unless the fast path's front does). */
  readonly server: Server;
  /** The fast path's socket server, when on. */
  readonly front: FastHttp1Front | undefined;
  /** Whether the fast path was asked for (it may be unavailable on this Node). */
  readonly fastPathRequested: boolean;
  /** Listening sockets bound to the address (1, or more with SO_REUSEPORT). */
  readonly acceptSockets: number;
  /** `host:port` as configured (the key a reload matches listeners by). */
  readonly addressText: string;
  private readonly address: ListenAddress;
  private onRequest: ClientRequestHandler;
  private onUpgrade: ((req: IncomingMessage, socket: Duplex, head: Buffer) => void) | undefined;
  /** Upgraded client sockets still open (cut when a drain runs out). */
  private readonly upgraded: ReadonlySet<Duplex>;
  /** Extra listening servers on the same port, handing their connections to listeningServer. */
  private readonly acceptors: readonly NetServer[];

  constructor(options: HttpListenerOptions) {
    this.address = options.address;
    this.addressText = formatAddress(options.address.host, options.address.port);
    this.onRequest = options.onRequest;
    // Timeouts and parser limits are set by applyClientLimits below (from `limits`).
    this.server = createServer({ noDelay: true });
    this.onUpgrade = options.onUpgrade;
    this.fastPathRequested = options.fastPath === true;
    const logger = options.logger ?? silentLogger();
    const runtime = options.fastPath === true ? fastPathRuntime() : undefined;
    if (options.fastPath === true && runtime === undefined) {
      logger.warn(
        { code: 'ANUBIS_FAST_PATH_UNAVAILABLE', node: process.version },
        'this Node lacks the internals the HTTP/1.1 fast path uses: node:http serves every request',
      );
    }
    const limits = options.limits ?? {
      ...DEFAULT_LIMITS,
      keepAliveTimeout: options.keepAliveTimeoutMs ?? DEFAULT_LIMITS.keepAliveTimeout,
      headersTimeout: options.headersTimeoutMs ?? DEFAULT_LIMITS.headersTimeout,
    };
    const guarded = applyClientLimits(
      this.server,
      {
        limits,
        logger,
        maxBodySize: options.maxBodySize ?? (() => 0),
        onUpgrade:
          options.onUpgrade === undefined
            ? undefined
            : (req, socket, head) => this.onUpgrade?.(req, socket, head),
        // With the front, the cap counts connections there (before any is handed over).
        connectionCap: runtime === undefined ? 'answer' : 'none',
      },
      // One indirection so a reload can hand new requests to a new proxy (setRequestHandler).
      (req, res) => this.onRequest(req, res),
    );
    this.server.on('request', guarded.handleRequest);
    this.upgraded = guarded.upgraded;
    // Built after applyClientLimits: it reads the server's timeouts.
    this.front =
      runtime === undefined
        ? undefined
        : new FastHttp1Front({
            runtime,
            http: this.server,
            limits,
            logger,
            handle: (req, res) => this.onRequest(req, res),
          });
    const sockets = acceptSocketCount(options.acceptSockets ?? 1);
    if (typeof options.acceptSockets === 'number' && sockets.count < options.acceptSockets) {
      logger.warn(
        { code: 'ANUBIS_ACCEPT_SOCKETS_UNAVAILABLE', reason: sockets.unavailable },
        `acceptSockets ${options.acceptSockets} unavailable: one listening socket`,
      );
    }
    this.acceptSockets = sockets.count;
    const acceptors: NetServer[] = [];
    // Both the node:http server and the front accept half-open, no-delay sockets.
    for (let i = 1; i < this.acceptSockets; i++) {
      acceptors.push(createAcceptor(this.listeningServer, { allowHalfOpen: true, noDelay: true }));
    }
    this.acceptors = acceptors;
  }

  /** The server bound to the address: the fast path's front, or the node:http server. */
  get listeningServer(): NetServer {
    return this.front?.server ?? this.server;
  }

  /** Sends Upgrade requests that arrive from now on to `onUpgrade` (reload). */
  setUpgradeHandler(onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void): void {
    this.onUpgrade = onUpgrade;
  }

  /** Sends requests that arrive from now on to `onRequest` (reload); in-flight ones continue. */
  setRequestHandler(onRequest: ClientRequestHandler): void {
    this.onRequest = onRequest;
  }

  /** Binds the address; resolves with the bound address (useful with port 0). */
  listen(): Promise<AddressInfo> {
    return bindServer(this.listeningServer, this.address, this.acceptors);
  }

  openConnections(): Promise<number> {
    return countConnections([this.listeningServer, ...this.acceptors]);
  }

  /** The bound address (after listen()). */
  boundAddress(): AddressInfo {
    return this.listeningServer.address() as AddressInfo;
  }

  /**
   * Stops accepting and waits for in-flight requests to finish, at most `drainMs`, then closes
   * every remaining connection.
   */
  async close(drainMs = 10_000): Promise<void> {
    const listening = this.listeningServer;
    if (!listening.listening) return;
    // Each server closes once the connections it accepted are gone (handed-off ones included).
    // node:http's header and request timeouts stop when node:http is closed (its close() does
    // that at once; with the fast path the front closes it when the front's own connections
    // are gone), so connections still open then rely on the drain timeout below.
    const closed = closeServers([listening, ...this.acceptors]);
    this.server.closeIdleConnections();
    this.front?.closeIdleConnections();
    const timer = setTimeout(() => {
      this.server.closeAllConnections();
      this.front?.closeAllConnections();
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
