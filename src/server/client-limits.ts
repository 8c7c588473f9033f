/**
 * Listener-level defences (docs/security.md): parser limits and client timeouts on the
 * node:http server, short answers for what the parser refuses, the connection cap, CONNECT
 * refused, and the request-path wrapper that runs the RequestGuard, the declared-body-size
 * check and `Expect: 100-continue` before a request reaches the proxy, and turns an exception
 * thrown while handling one request into a logged 500 with a request id instead of a crash.
 *
 * Every refusal closes the connection: after a framing error nothing that follows on the
 * socket can be trusted to start a new request.
 */
import { STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Server as NetServer, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { LimitsConfig } from '../config/schema.js';
import type { Logger } from '../logging/logger.js';
import { RequestGuard, type Rejection } from './request-guard.js';
import type { ClientRequestHead, ProxiedResponse } from '../proxy/client-messages.js';

/** A listener's limits: the top-level ones, with the keys the listener sets itself over them. */
export function mergeLimits(
  defaults: LimitsConfig,
  own: { readonly [K in keyof LimitsConfig]?: number | undefined } | undefined,
): LimitsConfig {
  if (own === undefined) return defaults;
  const merged: Record<string, number> = { ...defaults };
  for (const [key, value] of Object.entries(own)) if (value !== undefined) merged[key] = value;
  return merged as unknown as LimitsConfig;
}

/** How long a refused connection may linger (so the client reads the answer) before it is cut. */
const LINGER_MS = 1_000;

/**
 * Bytes Node's parser may read for the request line and headers together. It counts only
 * the target, names and values (not separators), so this always lets a request that is within
 * `maxUriLength` and `maxHeaderSize` reach the guard, which answers 414 or 431 precisely;
 * beyond it the parser stops reading and the client gets 431.
 */
export function parserHeaderBudget(limits: LimitsConfig): number {
  return limits.maxUriLength + limits.maxHeaderSize + 1_024;
}

/** The complete raw answer sent on a socket outside of any ServerResponse. */
function rawAnswer(status: number, reason: string, extra = ''): string {
  const body = `${status} ${STATUS_CODES[status] ?? 'Error'}: ${reason}\n`;
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
    `content-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
    `${extra}connection: close\r\n\r\n${body}`
  );
}

/**
 * Ends the socket after `answer` and destroys it at the latest LINGER_MS later: closing at
 * once while the client is still sending would reset the connection and could discard the
 * answer before the client reads it.
 */
export function endWithAnswer(socket: Duplex, answer: string | Buffer | undefined): void {
  if (socket.destroyed) return;
  if (answer !== undefined && socket.writable) socket.end(answer);
  else socket.end();
  const timer = setTimeout(() => socket.destroy(), LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

/** Parser and timeout errors Node reports, as status, code (docs/errors.md) and reason. */
const CLIENT_ERROR_STATUS: Record<string, [number, string, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'ANUBIS_HEADERS_TOO_LARGE', 'request line and headers too large'],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: [413, 'ANUBIS_BODY_TOO_LARGE', 'chunk extensions too large'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'ANUBIS_CLIENT_TIMEOUT', 'request not received in time'],
};

/** `clientError`: the parser refused the bytes (or the client was too slow). */
export function answerClientError(
  error: Error & { code?: string },
  socket: Duplex,
  logger?: Logger,
): void {
  const code = error.code ?? '';
  if (code === 'ECONNRESET' || code === 'EPIPE' || !socket.writable) {
    socket.destroy();
    return;
  }
  // A response already under way on this socket cannot be followed by another one.
  const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (inFlight?.headersSent === true) {
    socket.destroy();
    return;
  }
  const [status, anubisCode, reason] = CLIENT_ERROR_STATUS[code] ?? [
    400,
    'ANUBIS_REQUEST_INVALID',
    `malformed request (${code})`,
  ];
  logger?.debug({ code: anubisCode, parser: code, status }, 'request refused by the parser');
  endWithAnswer(socket, rawAnswer(status, reason));
}

/** `connect`: anubis is not a forward proxy; CONNECT is refused with 501. */
export function refuseConnect(req: IncomingMessage, socket: Duplex, logger?: Logger): void {
  logger?.debug({ code: 'ANUBIS_CONNECT_REFUSED', target: req.url }, 'CONNECT refused');
  endWithAnswer(socket, rawAnswer(501, 'CONNECT is not supported'));
}

/** Answers a parsed request that the guard refused, and closes the connection after it. */
export function refuseRequest(res: ServerResponse, rejection: Rejection): void {
  const body = `${rejection.status} ${STATUS_CODES[rejection.status] ?? 'Error'}: ${rejection.reason}\n`;
  res.shouldKeepAlive = false;
  res.writeHead(rejection.status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    connection: 'close',
  });
  res.end(body);
}

/** Refuses an Upgrade request on its raw socket. */
export function refuseUpgrade(socket: Duplex, rejection: Rejection): void {
  endWithAnswer(socket, rawAnswer(rejection.status, rejection.reason));
}

let requestIds = 0;
const ID_PREFIX = `${process.pid.toString(36)}-`;

/** A short id for a log line and the `x-request-id` of the answer that matches it. */
export function nextRequestId(): string {
  return ID_PREFIX + (++requestIds).toString(36);
}

/**
 * Something threw while handling one request: log it with a request id, answer 500 (or cut
 * the response if it had started), keep serving everyone else.
 */
export function answerInternalError(
  req: ClientRequestHead,
  res: ProxiedResponse,
  error: unknown,
  logger: Logger,
): void {
  const id = nextRequestId();
  logger.error(
    { code: 'ANUBIS_INTERNAL', requestId: id, method: req.method, url: req.url, err: error },
    'unexpected error while handling a request',
  );
  try {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = `500 Internal Server Error (request id ${id})\n`;
    res.shouldKeepAlive = false;
    res.writeHead(500, {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      'x-request-id': id,
      connection: 'close',
    });
    res.end(body);
  } catch {
    res.destroy();
  }
}

export interface ClientLimitsOptions {
  readonly limits: LimitsConfig;
  readonly logger: Logger;
  /** Largest request body of the listener's pool (0 = none), read per request. */
  readonly maxBodySize: () => number;
  /** Handles Upgrade requests (WebSocket, h2c…) that passed the guard; absent: refused. */
  readonly onUpgrade?: ((req: IncomingMessage, socket: Duplex, head: Buffer) => void) | undefined;
  /**
   * Where the connection cap applies: `answer` (default) counts this server's connections and
   * answers one too many with 503; `none` leaves it to the caller (TLS and h2c listeners count
   * TCP connections on their socket server and answer after the TLS handshake or in HTTP/2).
   */
  readonly connectionCap?: 'answer' | 'none';
}

export interface GuardedServer {
  /** The `request` handler to install: guard first, then the proxy. */
  readonly handleRequest: (req: IncomingMessage, res: ServerResponse) => void;
  /** Client sockets handed to `onUpgrade` and still open (the listener cuts them on close). */
  readonly upgraded: ReadonlySet<Duplex>;
}

const NO_UPGRADE: Rejection = {
  status: 501,
  code: 'ANUBIS_REQUEST_INVALID',
  reason: 'protocol upgrades are not supported here',
};

const BODY_TOO_LARGE: Rejection = {
  status: 413,
  code: 'ANUBIS_BODY_TOO_LARGE',
  reason: 'request body too large',
};

/**
 * Applies parser limits, client timeouts, the connection cap and the refusal handlers to a
 * node:http server (before it listens), and returns the guarded `request` handler.
 */
export function applyClientLimits(
  server: Server,
  options: ClientLimitsOptions,
  onRequest: (req: IncomingMessage, res: ServerResponse) => void,
): GuardedServer {
  const { limits, logger, maxBodySize, onUpgrade } = options;
  const tunable = server as Server & {
    maxHeaderSize?: number;
    connectionsCheckingInterval: number;
  };
  tunable.maxHeaderSize = parserHeaderBudget(limits);
  // One more than the guard allows, so that the guard sees (and refuses) the excess.
  server.maxHeadersCount = limits.maxHeaderCount + 1;
  server.keepAliveTimeout = limits.keepAliveTimeout;
  server.requestTimeout = limits.requestTimeout;
  // Node refuses headersTimeout > requestTimeout (when the latter is on).
  server.headersTimeout =
    limits.requestTimeout > 0
      ? Math.min(limits.headersTimeout, limits.requestTimeout)
      : limits.headersTimeout;
  // Node checks header/request timeouts on this interval (30 s by default, far too coarse
  // for a 10 s slowloris timeout): a quarter of the timeout, between 100 ms and 1 s.
  tunable.connectionsCheckingInterval = Math.max(
    100,
    Math.min(1_000, Math.floor(server.headersTimeout / 4)),
  );

  server.on('clientError', (error: Error, socket: Duplex) =>
    answerClientError(error, socket, logger),
  );
  server.on('connect', (req: IncomingMessage, socket: Duplex) =>
    refuseConnect(req, socket, logger),
  );
  if (options.connectionCap !== 'none') capConnections(server, limits.maxConnections, logger);

  const guard = new RequestGuard(limits);
  const admit = (req: IncomingMessage, res: ServerResponse): boolean => {
    // A connection refused by the cap (answer already sent): ignore what it still sends.
    if (req.socket.writableEnded) return false;
    const rejection = guard.check(req) ?? checkDeclaredBody(req, maxBodySize());
    if (rejection === undefined) return true;
    logger.debug(
      {
        code: rejection.code,
        status: rejection.status,
        reason: rejection.reason,
        client: req.socket.remoteAddress,
      },
      'request refused',
    );
    refuseRequest(res, rejection);
    return false;
  };
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    try {
      onRequest(req, res);
    } catch (error) {
      answerInternalError(req, res, error, logger);
    }
  };
  // `Expect: 100-continue`: only a request that passes the checks is told to send its body.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    if (!admit(req, res)) return;
    res.writeContinue();
    handle(req, res);
  });
  const upgraded = new Set<Duplex>();
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const rejection = onUpgrade === undefined ? NO_UPGRADE : guard.check(req, true);
    if (rejection !== undefined) {
      logger.debug({ code: rejection.code, reason: rejection.reason }, 'upgrade refused');
      refuseUpgrade(socket, rejection);
      return;
    }
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
    try {
      (onUpgrade as NonNullable<typeof onUpgrade>)(req, socket, head);
    } catch (error) {
      logger.error(
        { code: 'ANUBIS_INTERNAL', requestId: nextRequestId(), url: req.url, err: error },
        'unexpected error while handling an upgrade',
      );
      socket.destroy();
    }
  });
  return {
    handleRequest: (req, res) => {
      if (admit(req, res)) handle(req, res);
    },
    upgraded,
  };
}

/** 413 when the declared Content-Length exceeds the pool's limit (before any byte is read). */
function checkDeclaredBody(req: IncomingMessage, max: number): Rejection | undefined {
  if (max <= 0) return undefined;
  const length = req.headers['content-length'];
  return length !== undefined && Number(length) > max ? BODY_TOO_LARGE : undefined;
}

/** The body of the 503 a connection beyond `limits.maxConnections` gets. */
export const TOO_MANY_CONNECTIONS_BODY = '503 Service Unavailable: too many connections\n';
const TOO_MANY_CONNECTIONS = rawAnswer(503, 'too many connections', 'retry-after: 1\r\n');

/** Answers an HTTP/1 connection beyond the cap with 503 (Retry-After: 1) and closes it. */
export function refuseConnection(socket: Duplex, logger: Logger, open: number, max: number): void {
  logger.debug(
    { code: 'ANUBIS_TOO_MANY_CONNECTIONS', open, max },
    'connection refused: listener at its connection limit',
  );
  endWithAnswer(socket, TOO_MANY_CONNECTIONS);
}

/**
 * At most `max` concurrent client connections: one more is answered 503 (with Retry-After)
 * and closed, rather than dropped without a word as `server.maxConnections` would.
 */
export function capConnections(server: NetServer, max: number, logger: Logger): void {
  let open = 0;
  server.prependListener('connection', (socket: Socket) => {
    open++;
    socket.once('close', () => open--);
    if (open > max) refuseConnection(socket, logger, open, max);
  });
}
