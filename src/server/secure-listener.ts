/**
 * Client-facing listeners that speak more than plain HTTP/1.1:
 *
 *   - TLS with HTTP/2: `http2.createSecureServer({ allowHTTP1: true })`. ALPN offers `h2` and
 *     `http/1.1`; HTTP/2 clients get multiplexed streams, the others plain HTTPS.
 *   - TLS without HTTP/2 (`http2: false`): `https.createServer`.
 *   - cleartext h2c (`http2: true` without `tls`): Node's plain HTTP/2 server cannot fall back
 *     to HTTP/1.1, so a net.Server reads the first bytes of each connection and hands it to
 *     an HTTP/2 server when they are the HTTP/2 connection preface (RFC 9113 §3.4, "prior
 *     knowledge"), else to an HTTP/1.1 server. Neither of those two listens itself.
 *
 * Every request, HTTP/1.1 or HTTP/2, goes to the same `onRequest` (the proxy); HTTP/2 streams
 * arrive through Node's compatibility API (Http2ServerRequest/Response), which the proxy
 * treats like IncomingMessage/ServerResponse (see http-proxy.ts for the two differences).
 *
 * Closing drains: HTTP/2 sessions get a GOAWAY (in-flight streams finish, no new ones),
 * idle HTTP/1.1 connections are closed, busy ones close after their response; after
 * `drainMs` whatever is left is destroyed.
 */
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import {
  createSecureServer,
  createServer as createH2cServer,
  type Http2SecureServer,
  type Http2Server,
  type Http2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import { createServer as createHttpsServer } from 'node:https';
import {
  createServer as createNetServer,
  type AddressInfo,
  type Server,
  type Socket,
} from 'node:net';
import type { Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../logging/logger.js';
import type { ListenAddress } from '../config/units.js';
import {
  applyClientLimits,
  refuseConnection,
  TOO_MANY_CONNECTIONS_BODY,
  type ClientLimitsOptions,
} from './client-limits.js';
import { formatAddress } from '../config/units.js';
import type { ListenerTlsConfig, ListenerCertificates } from './tls-certificates.js';
import { bindServer, countConnections } from './bind.js';

/** The HTTP/2 connection preface every h2c client sends first (RFC 9113 §3.4). */
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/**
 * Streams one client may have open at once on an HTTP/2 connection (SETTINGS_MAX_CONCURRENT_
 * STREAMS). Node's default is unlimited; 128 is what nginx and Envoy use by default.
 */
export const H2_MAX_CONCURRENT_STREAMS = 128;

/** An HTTP/2 connection with no open stream for this long is closed (GOAWAY). */
export const H2_IDLE_SESSION_MS = 120_000;

/**
 * Time a client has to complete the TLS handshake. Node's default (120 s) lets a client that
 * opens connections and never finishes a handshake hold them for two minutes each.
 */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

/** Set on a socket accepted beyond `limits.maxConnections`: the open count at that time. */
const OVER_CAP = Symbol('anubis.overConnectionCap');
type MarkedSocket = { [OVER_CAP]?: number };

/** How long an HTTP/2 connection beyond the cap may stay to receive its 503. */
const OVER_CAP_SESSION_MS = 1_000;

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

export interface SecureListenerOptions {
  readonly address: ListenAddress;
  readonly onRequest: RequestHandler;
  /** TLS certificates; without them the listener serves cleartext h2c + HTTP/1.1. */
  readonly certificates?: ListenerCertificates | undefined;
  /** Offer HTTP/2 (ALPN h2 with TLS; h2c without). */
  readonly http2: boolean;
  /** Idle time on an HTTP/1.1 keep-alive connection between requests. */
  readonly keepAliveTimeoutMs?: number | undefined;
  /** Time allowed to receive a request's headers (slowloris defence). */
  readonly headersTimeoutMs?: number | undefined;
  /** Time allowed for the TLS handshake (default TLS_HANDSHAKE_TIMEOUT_MS). */
  readonly handshakeTimeoutMs?: number | undefined;
  /**
   * Request guard, client limits and Upgrade handling (src/server/client-limits.ts), as on
   * plain HTTP listeners; they override keepAliveTimeoutMs and headersTimeoutMs.
   */
  readonly clientLimits?: Omit<ClientLimitsOptions, 'connectionCap'> | undefined;
}

/** What the load balancer needs of any client listener. */
export interface ClientListener {
  /**
   * The listener's server. An HttpListener's is its node:http server, which neither binds nor
   * sees every connection when the fast path is on: count with openConnections().
   */
  readonly server: Server;
  /** `host:port` as configured. */
  readonly addressText: string;
  listen(): Promise<AddressInfo>;
  boundAddress(): AddressInfo;
  /** Open client connections (every listening socket's). */
  openConnections(): Promise<number>;
  close(drainMs?: number): Promise<void>;
}

type HttpLikeServer = ReturnType<typeof createHttpServer> | ReturnType<typeof createHttpsServer>;

export class SecureListener implements ClientListener {
  readonly server: Server;
  /** `host:port` as configured (the key a reload matches listeners by). */
  readonly addressText: string;
  private readonly address: ListenAddress;
  private onRequest: RequestHandler;
  private readonly certificates: ListenerCertificates | undefined;
  /** Servers that parse HTTP/1.1 (the listening one, or the h2c sniffer's target). */
  private readonly http1: HttpLikeServer | Http2SecureServer | undefined;
  private readonly sessions = new Set<Http2Session>();
  private draining = false;
  /** Requests go through the client-limits guard when configured, then to onRequest. */
  private handle: RequestHandler = (req, res) => this.onRequest(req, res);
  private onUpgrade: UpgradeHandler | undefined;
  private upgraded: ReadonlySet<Duplex> = new Set();
  /** Answers 503 to an HTTP/2 stream of a connection beyond the cap (true when it did). */
  private refuseStream: (req: IncomingMessage, res: ServerResponse) => boolean = () => false;

  constructor(options: SecureListenerOptions) {
    this.address = options.address;
    this.addressText = formatAddress(options.address.host, options.address.port);
    this.certificates = options.certificates;
    this.onRequest = options.onRequest;
    // One indirection so a reload can hand new requests to a new proxy (setRequestHandler).
    const onRequest: RequestHandler = (req, res) => {
      if (!this.refuseStream(req, res)) this.handle(req, res);
    };
    const http1Options = {
      keepAliveTimeout: options.keepAliveTimeoutMs ?? 5_000,
      headersTimeout: options.headersTimeoutMs ?? 30_000,
      // The proxy enforces its own per-pool timeouts; a whole-request timeout would cut long
      // uploads and downloads.
      requestTimeout: 0,
      noDelay: true,
    };
    const certs = options.certificates;
    const handshakeTimeout = options.handshakeTimeoutMs ?? TLS_HANDSHAKE_TIMEOUT_MS;
    if (certs !== undefined && options.http2) {
      const server = createSecureServer({
        ...certs.defaults,
        SNICallback: certs.sniCallback,
        handshakeTimeout,
        allowHTTP1: true,
        settings: { maxConcurrentStreams: H2_MAX_CONCURRENT_STREAMS },
      });
      // HTTP/1.1 connections of allowHTTP1 follow the http.Server timeouts.
      Object.assign(server, {
        headersTimeout: http1Options.headersTimeout,
        requestTimeout: 0,
        keepAliveTimeout: http1Options.keepAliveTimeout,
      });
      this.watchSessions(server);
      server.on('request', onRequest as unknown as Parameters<Http2SecureServer['on']>[1]);
      this.http1 = server;
      this.server = server;
    } else if (certs !== undefined) {
      const server = createHttpsServer(
        { ...certs.defaults, SNICallback: certs.sniCallback, handshakeTimeout, ...http1Options },
        onRequest,
      );
      this.http1 = server;
      this.server = server;
    } else {
      const http1 = createHttpServer(http1Options, onRequest);
      const h2c = createH2cServer({
        settings: { maxConcurrentStreams: H2_MAX_CONCURRENT_STREAMS },
      });
      this.watchSessions(h2c);
      h2c.on('request', onRequest as unknown as Parameters<Http2Server['on']>[1]);
      this.http1 = http1;
      this.server = createNetServer({ pauseOnConnect: true, noDelay: true }, (socket) => {
        sniffPreface(socket, http1Options.headersTimeout, http1, h2c);
      });
      // The HTTP/1.1 server never binds, but its connection bookkeeping (idle and headers
      // timeouts, closeIdleConnections) starts on 'listening'; it stops in close().
      this.server.once('listening', () => http1.emit('listening'));
      this.server.once('close', () => http1.close(() => {}));
    }
    this.http1.on('request', (_req: IncomingMessage, res: ServerResponse) => {
      if (this.draining && res.shouldKeepAlive !== undefined) res.shouldKeepAlive = false;
    });
    if (options.clientLimits !== undefined) this.applyLimits(options.clientLimits);
  }

  /** The request guard, limits and Upgrade proxy of client-limits.ts on this listener. */
  private applyLimits(options: Omit<ClientLimitsOptions, 'connectionCap'>): void {
    this.onUpgrade = options.onUpgrade;
    const guarded = applyClientLimits(
      this.http1 as unknown as HttpServer,
      {
        ...options,
        onUpgrade:
          options.onUpgrade === undefined
            ? undefined
            : (req, socket, head) => this.onUpgrade?.(req, socket, head),
        connectionCap: 'none',
      },
      (req, res) => this.onRequest(req, res),
    );
    this.handle = guarded.handleRequest;
    this.upgraded = guarded.upgraded;
    this.capConnections(options.limits.maxConnections, options.logger);
  }

  /**
   * At most `max` concurrent client connections, counted as TCP connections on the socket
   * server (TLS handshakes included). One too many is marked, and answered once it speaks
   * HTTP: a plain-text 503 cannot be written into a TLS handshake, so an HTTP/1.1 connection
   * gets it after the handshake (or, on h2c, in clear), and an HTTP/2 connection gets a 503
   * on its first stream, then GOAWAY. Either way it is closed within a second or so.
   */
  private capConnections(max: number, logger: Logger): void {
    let open = 0;
    this.server.prependListener('connection', (socket: Socket) => {
      open++;
      socket.once('close', () => open--);
      if (open > max) (socket as MarkedSocket)[OVER_CAP] = open;
    });
    const refuseHttp1 = (socket: Socket): void => {
      const mark = (socket as MarkedSocket)[OVER_CAP];
      if (mark !== undefined) refuseConnection(socket, logger, mark, max);
    };
    if (this.certificates !== undefined) {
      this.server.prependListener('secureConnection', (socket: TLSSocket) => {
        const mark = (socket as unknown as { _parent?: MarkedSocket })._parent?.[OVER_CAP];
        if (mark === undefined) return;
        (socket as MarkedSocket)[OVER_CAP] = mark;
        if (socket.alpnProtocol !== 'h2') refuseHttp1(socket);
      });
    } else {
      (this.http1 as HttpServer).prependListener('connection', refuseHttp1);
    }
    this.refuseStream = (req, res) => {
      // The session's socket is a proxy of the TLS (or h2c) socket: the mark reads through.
      const mark = (req.socket as MarkedSocket | undefined)?.[OVER_CAP];
      if (mark === undefined) return false;
      const stream = (req as unknown as { stream?: ServerHttp2Stream }).stream;
      if (stream === undefined) return false;
      logger.debug(
        { code: 'ANUBIS_TOO_MANY_CONNECTIONS', open: mark, max },
        'connection refused: listener at its connection limit',
      );
      res.writeHead(503, {
        'content-type': 'text/plain; charset=utf-8',
        'content-length': Buffer.byteLength(TOO_MANY_CONNECTIONS_BODY),
        'retry-after': '1',
      });
      res.end(TOO_MANY_CONNECTIONS_BODY);
      stream.session?.close();
      return true;
    };
  }

  /** Sends Upgrade requests that arrive from now on to `onUpgrade` (reload). */
  setUpgradeHandler(onUpgrade: UpgradeHandler): void {
    this.onUpgrade = onUpgrade;
  }

  private watchSessions(server: Http2SecureServer | Http2Server): void {
    server.on('session', (session: Http2Session) => {
      this.sessions.add(session);
      session.once('close', () => this.sessions.delete(session));
      session.setTimeout(H2_IDLE_SESSION_MS, () => session.close());
      if (this.draining) session.close();
      // Beyond the connection cap: a second to send a request (answered 503), then cut.
      if ((session.socket as MarkedSocket | undefined)?.[OVER_CAP] !== undefined) {
        setTimeout(() => session.destroy(), OVER_CAP_SESSION_MS).unref();
      }
    });
  }

  /** Sends requests that arrive from now on to `onRequest` (reload); in-flight ones continue. */
  setRequestHandler(onRequest: RequestHandler): void {
    this.onRequest = onRequest;
  }

  /** True for a TLS listener, false for cleartext h2c. */
  get servesTls(): boolean {
    return this.certificates !== undefined;
  }

  /** Names the certificates serve (TLS listeners), for logs. */
  get servernames(): readonly string[] {
    return this.certificates?.names ?? [];
  }

  /**
   * Reads the certificate files again and serves them to new handshakes; connections already
   * open are not touched. Rejects with TlsFileError (keeping the old certificates) if a file
   * cannot be read or used. For listeners without TLS it does nothing.
   */
  async reloadCertificates(tls: ListenerTlsConfig, baseDir: string): Promise<void> {
    if (this.certificates === undefined) return;
    await this.certificates.reload(tls, baseDir, this.server as unknown as Http2SecureServer);
  }

  /**
   * Reads the certificate files and returns the function that installs them (reload: check
   * everything first, then commit). Rejects with TlsFileError, changing nothing.
   */
  async prepareCertificates(tls: ListenerTlsConfig, baseDir: string): Promise<() => void> {
    if (this.certificates === undefined) return () => {};
    return this.certificates.prepare(tls, baseDir, this.server as unknown as Http2SecureServer);
  }

  listen(): Promise<AddressInfo> {
    return bindServer(this.server, this.address);
  }

  boundAddress(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  openConnections(): Promise<number> {
    return countConnections([this.server]);
  }

  async close(drainMs = 10_000): Promise<void> {
    if (!this.server.listening) return;
    this.draining = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const session of this.sessions) session.close();
    const http1 = this.http1 as {
      closeIdleConnections?: () => void;
      closeAllConnections?: () => void;
    };
    http1.closeIdleConnections?.();
    const timer = setTimeout(() => {
      for (const session of this.sessions) session.destroy();
      http1.closeAllConnections?.();
      // Upgraded sockets left the HTTP server's bookkeeping but still hold server.close().
      for (const socket of this.upgraded) socket.destroy();
    }, drainMs);
    timer.unref();
    await closed;
    clearTimeout(timer);
  }
}

/**
 * Reads a cleartext connection's first bytes and hands it, bytes put back, to the HTTP/2
 * server when they are the connection preface, else to the HTTP/1.1 server. A client that
 * sends nothing within `timeoutMs` is disconnected.
 */
function sniffPreface(
  socket: Socket,
  timeoutMs: number,
  http1: ReturnType<typeof createHttpServer>,
  h2c: Http2Server,
): void {
  let seen = Buffer.alloc(0);
  const timer = setTimeout(() => socket.destroy(), timeoutMs);
  const onError = (): void => clearTimeout(timer);
  socket.once('error', onError);
  socket.once('close', onError);
  const onReadable = (): void => {
    let chunk: Buffer | null;
    while ((chunk = socket.read() as Buffer | null) !== null) seen = Buffer.concat([seen, chunk]);
    const length = Math.min(seen.length, H2_PREFACE.length);
    const isPrefix = seen.subarray(0, length).equals(H2_PREFACE.subarray(0, length));
    // Undecided until the preface is complete or a byte differs from it.
    if (isPrefix && seen.length < H2_PREFACE.length) return;
    socket.off('readable', onReadable);
    socket.off('error', onError);
    socket.off('close', onError);
    clearTimeout(timer);
    socket.unshift(seen);
    (isPrefix ? h2c : http1).emit('connection', socket);
  };
  socket.on('readable', onReadable);
}
