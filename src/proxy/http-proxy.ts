/**
 * The HTTP reverse proxy: one `Exchange` per client request picks a backend from the pool,
 * forwards the request through that backend's undici connection pool and streams the answer
 * back with back-pressure in both directions (request body: undici reads the client stream;
 * response body: a full client socket pauses the backend).
 *
 * The exchange implements undici 7's native dispatch-handler protocol (onConnect / onHeaders
 * / onData / onComplete / onError). undici's newer controller API is a wrapper over that same
 * protocol that re-parses every header block into an object, which the hot path avoids.
 *
 * The exchange is also the strategy's PickContext, so a request costs one object here.
 */
import {
  STATUS_CODES,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Dispatcher } from 'undici';
import {
  ClientAbortedError,
  NoBackendError,
  UpstreamTotalTimeoutError,
  type AnubisError,
} from '../errors.js';
import type { Logger } from '../logging/logger.js';
import type { BackendView, PickContext } from '../strategies/types.js';
import type { Backend } from '../upstream/backend.js';
import type { UpstreamPool } from '../upstream/pool.js';
import {
  buildRequestHeaders,
  buildResponseHeaders,
  normalizeAddress,
  resolveClientAddress,
  type TrustedProxies,
} from './headers.js';
import { classifyUpstreamError } from './upstream-errors.js';

export interface HttpProxyOptions {
  readonly pool: UpstreamPool;
  readonly trustedProxies: TrustedProxies;
  /** How clients reach this listener: `http` or `https`. */
  readonly protocol: 'http' | 'https';
  readonly logger: Logger;
  /** Log one line per request. */
  readonly accessLog: boolean;
}

/** Sends a short plain-text error response if nothing was sent yet; otherwise cuts the response. */
export function sendError(
  res: ServerResponse,
  status: number,
  extraHeaders?: Record<string, string>,
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = `${status} ${STATUS_CODES[status] ?? 'Error'}\n`;
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    ...extraHeaders,
  });
  res.end(body);
}

export class HttpProxy {
  readonly options: HttpProxyOptions;

  constructor(options: HttpProxyOptions) {
    this.options = options;
  }

  /** The `request` listener of an http.Server. */
  readonly handleRequest = (req: IncomingMessage, res: ServerResponse): void => {
    new Exchange(this.options, req, res).start();
  };
}

/** Origin-form path of a request target; absolute-form targets lose scheme and authority. */
function originForm(target: string): string {
  if (target.charCodeAt(0) === 47 /* '/' */ || target === '*') return target;
  try {
    const url = new URL(target);
    return `${url.pathname}${url.search}`;
  } catch {
    return '/';
  }
}

class Exchange implements PickContext, Dispatcher.DispatchHandler {
  // PickContext
  readonly clientAddress: string;
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  excluded: Set<BackendView> | undefined = undefined;

  private readonly options: HttpProxyOptions;
  private readonly req: IncomingMessage;
  private readonly res: ServerResponse;
  private readonly peerAddress: string;
  private backend: Backend | undefined;
  private abortUpstream: ((reason?: Error) => void) | undefined;
  private resumeUpstream: (() => void) | undefined;
  private startedAt = 0;
  private status = 0;
  private settled = false;
  private totalTimer: NodeJS.Timeout | undefined;

  constructor(options: HttpProxyOptions, req: IncomingMessage, res: ServerResponse) {
    this.options = options;
    this.req = req;
    this.res = res;
    this.method = req.method ?? 'GET';
    this.url = req.url ?? '/';
    this.headers = req.headers;
    this.peerAddress = normalizeAddress(req.socket.remoteAddress);
    this.clientAddress = resolveClientAddress(
      this.peerAddress,
      req.headers['x-forwarded-for'],
      options.trustedProxies,
    );
  }

  start(): void {
    const pool = this.options.pool;
    const backend = pool.pick(this);
    if (backend === undefined) {
      this.fail(new NoBackendError(pool.name));
      return;
    }
    this.res.once('close', this.onClientClose);
    this.forward(backend);
  }

  private forward(backend: Backend): void {
    const { pool, trustedProxies, protocol } = this.options;
    const req = this.req;
    const timeouts = pool.config.timeouts;
    this.backend = backend;
    backend.requestStarted();
    this.startedAt = performance.now();
    const headers = buildRequestHeaders(req.rawHeaders, req.headers.connection, {
      peerAddress: this.peerAddress,
      peerTrusted: trustedProxies.has(this.peerAddress),
      protocol,
    });
    const hasBody =
      req.headers['transfer-encoding'] !== undefined ||
      (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');
    if (timeouts.total > 0) {
      this.totalTimer = setTimeout(this.onTotalTimeout, timeouts.total);
    }
    backend.dispatcher.dispatch(
      {
        path: originForm(this.url),
        method: this.method,
        headers,
        body: hasBody ? req : null,
        headersTimeout: timeouts.headers,
        bodyTimeout: timeouts.idle,
      },
      this,
    );
  }

  // ---- undici dispatch handler -------------------------------------------------------------

  onConnect(abort: (reason?: Error) => void): void {
    this.abortUpstream = abort;
    if (this.settled) abort(new ClientAbortedError());
  }

  onHeaders(
    statusCode: number,
    rawHeaders: Buffer[],
    resume: () => void,
    statusText: string,
  ): boolean {
    // 1xx informational answers (100 Continue, 103 Early Hints) are not relayed.
    if (statusCode < 200) return true;
    const backend = this.backend as Backend;
    backend.recordLatency(performance.now() - this.startedAt, performance.now());
    this.status = statusCode;
    backend.recordStatus(statusCode);
    this.resumeUpstream = resume;
    const headers = buildResponseHeaders(rawHeaders);
    if (this.options.pool.config.exposeBackendHeader) headers.push('x-anubis-backend', backend.id);
    if (statusText === '') this.res.writeHead(statusCode, headers);
    else this.res.writeHead(statusCode, statusText, headers);
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.res.write(chunk)) return true;
    this.res.once('drain', this.resumeUpstream as () => void);
    return false;
  }

  onComplete(): void {
    const now = performance.now();
    (this.backend as Backend).recordLastByte(now - this.startedAt, now);
    this.res.end();
    this.settle(false);
  }

  onError(error: Error): void {
    if (this.settled) return;
    const backend = this.backend as Backend;
    const classified = classifyUpstreamError(error, backend.id);
    this.settle(!(classified instanceof ClientAbortedError));
    if (classified instanceof ClientAbortedError) return;
    this.options.logger.warn(
      {
        pool: this.options.pool.name,
        backend: backend.id,
        code: classified.code,
        err: error.message,
      },
      'upstream request failed',
    );
    this.fail(classified);
  }

  // ---- client side -------------------------------------------------------------------------

  private readonly onClientClose = (): void => {
    if (this.settled) return;
    // The client went away before the response completed: stop the upstream request.
    this.settle(false);
    this.abortUpstream?.(new ClientAbortedError());
  };

  private readonly onTotalTimeout = (): void => {
    if (this.settled) return;
    const error = new UpstreamTotalTimeoutError(this.backend?.id ?? this.options.pool.name);
    this.settle(true);
    this.abortUpstream?.(error);
    this.fail(error);
  };

  private fail(error: AnubisError): void {
    this.status = error.status;
    // A response already under way was counted by its own status in onHeaders.
    if (this.backend === undefined) this.options.pool.unrouted++;
    else if (!this.res.headersSent) this.backend.recordStatus(error.status);
    if (error instanceof NoBackendError) sendError(this.res, 503, { 'retry-after': '1' });
    else sendError(this.res, error.status);
    if (this.options.accessLog) this.logAccess();
  }

  /** Ends the bookkeeping of this exchange exactly once. */
  private settle(failed: boolean): void {
    if (this.settled) return;
    this.settled = true;
    if (this.totalTimer !== undefined) clearTimeout(this.totalTimer);
    this.backend?.requestEnded(failed);
    if (!failed && this.options.accessLog) this.logAccess();
  }

  private logAccess(): void {
    this.options.logger.info(
      {
        pool: this.options.pool.name,
        backend: this.backend?.id,
        client: this.clientAddress,
        method: this.method,
        url: this.url,
        status: this.status,
        ms: Math.round((performance.now() - this.startedAt) * 100) / 100,
      },
      'request',
    );
  }
}
