/**
 * The HTTP reverse proxy: one `Exchange` per client request picks a backend from the pool,
 * forwards the request through that backend's connection pool (src/upstream/upstream-client.ts:
 * anubis's own HTTP/1.1 client, or undici's) and streams the answer back with back-pressure in
 * both directions (request body: the pool reads the client's stream; response body: a full
 * client socket pauses the backend).
 *
 * The exchange is the pool's handler (onConnect / onHeaders / onData / onComplete / onError,
 * undici 7's native dispatch-handler protocol). undici's newer controller API is a wrapper
 * over that same protocol that re-parses every header block into an object.
 *
 * The exchange is also the strategy's PickContext, so a request costs one object here.
 */
import { STATUS_CODES, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type { UpstreamHandler } from '../upstream/upstream-client.js';
import type { ProxiedRequest, ProxiedResponse } from './client-messages.js';
import {
  BodyTooLargeError,
  RequestNotForwardableError,
  ClientAbortedError,
  NoBackendError,
  QueueFullError,
  QueueTimeoutError,
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
  isValidReasonPhrase,
  normalizeAddress,
  resolveClientAddress,
  type TrustedProxies,
} from './headers.js';
import { classifyUpstreamError } from './upstream-errors.js';
import { limitBody } from './body-limit.js';
import type { ForwardedMode } from './forwarded.js';
import { forwardTrailers } from './trailers.js';
import { UpgradeProxy } from './upgrade.js';
import {
  ALL_FULL,
  concurrencyQueueOf,
  pickWithCapacity,
  type QueuedRequest,
} from './concurrency-gate.js';
import { ReplayableBody } from './replay-body.js';
import { readBufferCollector } from './body-memory.js';
import { untriedBackup } from '../health/eligibility.js';
import type { BusyPoller } from '../server/busy-poller.js';
import {
  mayRetry,
  retryBudgetOf,
  retryCause,
  type RetryCause,
  type RetryRequest,
} from './retry.js';

export interface HttpProxyOptions {
  readonly pool: UpstreamPool;
  readonly trustedProxies: TrustedProxies;
  /** How clients reach this listener: `http` or `https`. */
  readonly protocol: 'http' | 'https';
  readonly logger: Logger;
  /** Log one line per request. */
  readonly accessLog: boolean;
  /** Forwarding headers sent to backends (forwarded.ts); default `x-forwarded`. */
  readonly forwardedHeaders?: ForwardedMode;
  /** Told of every request when `busyPolling` is on (src/server/busy-poller.ts). */
  readonly busyPoller?: BusyPoller;
}

/** Sends a short plain-text error response if nothing was sent yet; otherwise cuts the response. */
export function sendError(
  res: ProxiedResponse,
  status: number,
  extraHeaders?: Record<string, string>,
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = `${status} ${STATUS_CODES[status] ?? 'Error'}\n`;
  // The reason is explicit: a refused backend reason phrase may linger in res.statusMessage.
  res.writeHead(status, STATUS_CODES[status] ?? 'Error', {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    ...extraHeaders,
  });
  res.end(body);
}

export class HttpProxy {
  readonly options: HttpProxyOptions;

  private readonly busyPoller: BusyPoller | undefined;

  constructor(options: HttpProxyOptions) {
    this.options = options;
    this.busyPoller = options.busyPoller;
    this.handleUpgrade = new UpgradeProxy(options).handleUpgrade;
  }

  /** The `upgrade` listener of an http.Server: WebSocket and other Upgrades (upgrade.ts). */
  readonly handleUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

  /** The `request` listener of an http.Server (and the fast path's request handler). */
  readonly handleRequest = (req: ProxiedRequest, res: ProxiedResponse): void => {
    this.busyPoller?.touch();
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

class Exchange implements PickContext, UpstreamHandler, RetryRequest, QueuedRequest {
  // PickContext
  readonly clientAddress: string;
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  excluded: Set<BackendView> | undefined = undefined;

  private readonly options: HttpProxyOptions;
  private readonly req: ProxiedRequest;
  private readonly res: ProxiedResponse;
  private readonly peerAddress: string;
  private backend: Backend | undefined;
  private abortUpstream: ((reason?: Error) => void) | undefined;
  private resumeUpstream: (() => void) | undefined;
  private startedAt = 0;
  private status = 0;
  private settled = false;
  private totalTimer: NodeJS.Timeout | undefined;

  // Retries (retry.ts): attempts so far, whether the current attempt's socket was a reused
  // keep-alive connection (set by the upstream client) and whether its response had started.
  attempts = 0;
  arrivedAt = 0;
  reusedSocket = false;
  private responseStarted = false;
  /** The current attempt got a retryable 502/503/504: its body is dropped, not relayed. */
  private discarding = false;
  /** `backend.requestStarted()` was called for the current attempt and not yet ended. */
  private counted = false;
  /** Request body with its replay buffer; null without a body, undefined before the first attempt. */
  private body: ReplayableBody | null | undefined = undefined;
  private upstreamHeaders: string[] | undefined;

  constructor(options: HttpProxyOptions, req: ProxiedRequest, res: ProxiedResponse) {
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
      options.forwardedHeaders === 'forwarded' ? req.headers.forwarded : undefined,
    );
  }

  start(): void {
    const pool = this.options.pool;
    this.arrivedAt = performance.now();
    retryBudgetOf(pool).recordRequest(this.arrivedAt, pool.config.retry);
    const backend = pickWithCapacity(pool, this);
    if (backend === undefined) {
      this.fail(new NoBackendError(pool.name));
      return;
    }
    // 'close' comes once per response: `on` spares the wrapper `once` allocates.
    this.res.on('close', this.onClientClose);
    const total = pool.config.timeouts.total;
    if (total > 0) this.totalTimer = setTimeout(this.onTotalTimeout, total);
    if (backend === ALL_FULL) {
      if (!concurrencyQueueOf(pool).enqueue(this)) {
        this.settle(true);
        this.fail(new QueueFullError(pool.name));
      }
      return;
    }
    this.forward(backend, this.arrivedAt);
  }

  // ---- retries and the concurrency queue ---------------------------------------------------

  get idempotencyKey(): string | string[] | undefined {
    return this.headers['idempotency-key'];
  }

  get bodyReplayable(): boolean {
    return this.body == null || this.body.replayable;
  }

  get gone(): boolean {
    return this.settled;
  }

  resumeFromQueue(): boolean {
    if (this.settled) return true;
    const pool = this.options.pool;
    const backend = pickWithCapacity(pool, this);
    if (backend === ALL_FULL) return false;
    if (backend === undefined) {
      this.settle(true);
      this.fail(new NoBackendError(pool.name));
    } else {
      this.forward(backend);
    }
    return true;
  }

  queueTimedOut(): void {
    if (this.settled) return;
    this.settle(true);
    this.fail(new QueueTimeoutError(this.options.pool.name));
  }

  /**
   * Sends the request again, through the strategy, with the failed backend excluded (kept
   * eligible after a stale pooled connection: the backend itself is fine). False if no
   * backend can take it.
   */
  private retryAfter(failed: Backend, cause: RetryCause): boolean {
    if (cause !== 'stale') (this.excluded ??= new Set()).add(failed);
    if (this.counted) {
      this.counted = false;
      // A stale pooled connection is not the backend's failure: no penalty on its estimate.
      failed.requestEnded(cause !== 'stale');
    }
    const pool = this.options.pool;
    const picked = pickWithCapacity(pool, this);
    const next = picked === undefined ? untriedBackup(pool.backends, this.excluded) : picked;
    if (next === undefined || next === ALL_FULL) return false;
    this.options.logger.info(
      {
        pool: pool.name,
        backend: failed.id,
        next: next.id,
        cause,
        attempt: this.attempts + 1,
      },
      'retrying request on another attempt',
    );
    failed.retries++;
    this.forward(next);
    return true;
  }

  /** A retryable 502/503/504 may be replaced by another attempt if another backend is left. */
  private retryOnStatus(backend: Backend, status: number): boolean {
    const pool = this.options.pool;
    const config = pool.config.retry;
    const cause = String(status) as RetryCause;
    if (!config.on.includes(cause as (typeof config.on)[number])) return false;
    const excluded = this.excluded;
    const another = pool.eligible.some((b) => b !== backend && excluded?.has(b) !== true);
    if (!another) return false;
    return mayRetry(cause, this, config, retryBudgetOf(pool), performance.now());
  }

  /** Sends an attempt to `backend`; `startedAt` is now (start() passes its own clock read). */
  private forward(backend: Backend, startedAt = performance.now()): void {
    const { pool, trustedProxies, protocol } = this.options;
    const req = this.req;
    const timeouts = pool.config.timeouts;
    this.backend = backend;
    backend.requestStarted();
    this.counted = true;
    this.attempts++;
    this.reusedSocket = false;
    this.responseStarted = false;
    this.discarding = false;
    this.abortUpstream = undefined;
    this.startedAt = startedAt;
    const headers = (this.upstreamHeaders ??= buildRequestHeaders(
      req.rawHeaders,
      req.headers.connection,
      {
        peerAddress: this.peerAddress,
        peerTrusted: trustedProxies.has(this.peerAddress),
        protocol,
        mode: this.options.forwardedHeaders ?? 'x-forwarded',
      },
    ));
    if (this.body === undefined) {
      // A fast-path request has no body (and no stream): it never declares one.
      const hasBody =
        !('bodiless' in req) &&
        (req.httpVersionMajor === 2
          ? // An HTTP/2 request has a body unless its HEADERS frame ended the stream; it
            // need not declare a length (the backend then gets it chunked).
            !(req as unknown as { stream: { endAfterHeaders: boolean } }).stream.endAfterHeaders
          : req.headers['transfer-encoding'] !== undefined ||
            (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0'));
      // Kept up to retry.replayLimit so that a retry can send it again (replay-body.ts).
      this.body = hasBody
        ? new ReplayableBody(
            limitBody(req, this.res, pool.config.maxBodySize),
            pool.config.retry.replayLimit,
          )
        : null;
    }
    backend.dispatcher.dispatch(
      {
        path: originForm(this.url),
        method: this.method,
        headers,
        body: this.body === null ? null : this.body.attempt(),
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
    rawHeaders: (Buffer | string)[],
    resume: () => void,
    statusText: string,
  ): boolean {
    this.responseStarted = true;
    // 1xx informational answers (100 Continue, 103 Early Hints) are not relayed.
    if (statusCode < 200) return true;
    const backend = this.backend as Backend;
    const now = performance.now();
    backend.recordLatency(now - this.startedAt, now);
    this.status = statusCode;
    backend.recordStatus(statusCode);
    this.options.pool.health.reportResponse(backend, statusCode);
    if (statusCode >= 502 && statusCode <= 504 && this.retryOnStatus(backend, statusCode)) {
      // Read and drop this answer (keeps the connection reusable), then retry in onComplete.
      this.discarding = true;
      return true;
    }
    this.resumeUpstream = resume;
    const headers = buildResponseHeaders(rawHeaders);
    if (this.options.pool.config.exposeBackendHeader) headers.push('x-anubis-backend', backend.id);
    // HTTP/2 has no reason phrase (RFC 9113 §8.3.2).
    // A reason phrase Node would refuse (control characters) is replaced by the standard one.
    if (statusText === '' || this.req.httpVersionMajor === 2 || !isValidReasonPhrase(statusText))
      this.res.writeHead(statusCode, headers);
    else this.res.writeHead(statusCode, statusText, headers);
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.discarding) return true;
    readBufferCollector.count(chunk.length);
    if (this.res.write(chunk)) return true;
    this.res.once('drain', this.resumeUpstream as () => void);
    return false;
  }

  onComplete(trailers: (Buffer | string)[] | null): void {
    if (this.discarding) {
      this.retryDiscarded();
      return;
    }
    const now = performance.now();
    (this.backend as Backend).recordLastByte(now - this.startedAt, now);
    if (trailers !== null) forwardTrailers(this.req, this.res, trailers);
    this.res.end();
    this.settle(false);
  }

  onError(error: Error): void {
    if (this.settled) return;
    const backend = this.backend as Backend;
    const classified = classifyUpstreamError(error, backend.id);
    // The client's fault (gone, a body over the pool's limit, a request that cannot be
    // written to a backend): no health report, no retry.
    const clientFault =
      classified instanceof ClientAbortedError ||
      classified instanceof BodyTooLargeError ||
      classified instanceof RequestNotForwardableError;
    if (!clientFault) {
      const pool = this.options.pool;
      const cause = retryCause(classified, this.reusedSocket, this.responseStarted);
      // A stale pooled connection is not the backend's fault: passive health ignores it.
      if (cause !== 'stale') pool.health.reportError(backend, classified);
      if (
        !this.res.headersSent &&
        this.req.socket?.destroyed !== true &&
        mayRetry(cause, this, pool.config.retry, retryBudgetOf(pool), performance.now()) &&
        this.retryAfter(backend, cause as RetryCause)
      ) {
        return;
      }
    }
    // A client that left gets its access log line here; every other failure in fail().
    this.settle(!clientFault, classified instanceof ClientAbortedError);
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

  /** The dropped 502/503/504 is complete: retry, or answer with its status if nobody is left. */
  private retryDiscarded(): void {
    const backend = this.backend as Backend;
    const status = this.status;
    if (this.retryAfter(backend, String(status) as RetryCause)) return;
    this.settle(true);
    sendError(this.res, status, status === 503 ? { 'retry-after': '1' } : undefined);
    if (this.options.accessLog) this.logAccess();
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
    // An attempt in flight timed out (not a wait in the queue): passive health hears of it.
    if (this.counted && this.backend !== undefined) {
      this.options.pool.health.reportError(this.backend, error);
    }
    this.settle(true);
    this.abortUpstream?.(error);
    this.fail(error);
  };

  private fail(error: AnubisError): void {
    this.status = error.status;
    // A response already under way was counted by its own status in onHeaders.
    if (this.backend === undefined) this.options.pool.unrouted++;
    else if (!this.res.headersSent) this.backend.recordStatus(error.status);
    if (error.status === 503) sendError(this.res, 503, { 'retry-after': '1' });
    else sendError(this.res, error.status);
    if (this.options.accessLog) this.logAccess();
  }

  /**
   * Ends the bookkeeping of this exchange exactly once. `failed` counts the attempt against
   * its backend; `logAccess` writes the access log line (callers that go on to fail() leave
   * it to fail()).
   */
  private settle(failed: boolean, logAccess = !failed): void {
    if (this.settled) return;
    this.settled = true;
    if (this.totalTimer !== undefined) clearTimeout(this.totalTimer);
    if (this.counted) {
      this.counted = false;
      this.backend?.requestEnded(failed);
      // A slot freed up: wake a request waiting for one (concurrency-gate.ts).
      const queue = this.options.pool.config.concurrency.maxPerBackend > 0;
      if (queue) concurrencyQueueOf(this.options.pool).release();
    }
    if (logAccess && this.options.accessLog) this.logAccess();
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
