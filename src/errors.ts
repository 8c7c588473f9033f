/**
 * Every error anubis raises, each with a stable `code` (documented in docs/errors.md and
 * checked against it by test/unit/errors.test.ts). Codes never change meaning once released.
 *
 * `status` is the HTTP status a client sees when the error ends its request; `retry` says
 * when the request may be sent again to another backend:
 *   - 'never'        the backend may have acted on the request;
 *   - 'always'       nothing reached a backend (e.g. connection refused);
 *   - 'reused-socket' only if the failed socket was a reused keep-alive connection that the
 *                    backend had closed (the classic keep-alive race).
 */
export type RetryPolicy = 'never' | 'always' | 'reused-socket';

export class AnubisError extends Error {
  readonly code: string;
  readonly status: number;
  readonly retry: RetryPolicy;

  constructor(
    code: string,
    message: string,
    options: { status?: number; retry?: RetryPolicy; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.status = options.status ?? 500;
    this.retry = options.retry ?? 'never';
  }
}

/** One problem found in a configuration: where it is, what was expected, what was found. */
export interface ConfigIssue {
  /** Key path such as `pools.hello.backends[1].weight` ('' for the document root). */
  readonly path: string;
  readonly message: string;
}

/** The configuration (file or flags) is invalid. Lists every issue, each with its key path. */
export class ConfigError extends AnubisError {
  readonly source: string;
  readonly issues: readonly ConfigIssue[];

  constructor(source: string, issues: readonly ConfigIssue[]) {
    const lines = issues.map(
      (i) => `  ${source}: ${i.path === '' ? '(root)' : i.path}: ${i.message}`,
    );
    super('ANUBIS_CONFIG_INVALID', `invalid configuration in ${source}:\n${lines.join('\n')}`);
    this.source = source;
    this.issues = issues;
  }
}

/** The configuration file could not be read or parsed as YAML. */
export class ConfigReadError extends AnubisError {
  constructor(source: string, detail: string, cause?: unknown) {
    super('ANUBIS_CONFIG_UNREADABLE', `cannot read configuration ${source}: ${detail}`, { cause });
  }
}

/** Command-line usage error (unknown flag, malformed value). */
export class UsageError extends AnubisError {
  constructor(message: string) {
    super('ANUBIS_USAGE', message);
  }
}

/** A custom strategy module could not be loaded or does not export a strategy factory. */
export class StrategyLoadError extends AnubisError {
  constructor(message: string, cause?: unknown) {
    super('ANUBIS_STRATEGY_LOAD', message, { cause });
  }
}

/** A listener could not bind its address. */
export class ListenError extends AnubisError {
  constructor(address: string, cause: unknown) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    super('ANUBIS_LISTEN', `cannot listen on ${address}: ${detail}`, { cause });
  }
}

/** No backend of the pool can take the request (all down, drained or disabled). */
export class NoBackendError extends AnubisError {
  constructor(pool: string) {
    super('ANUBIS_NO_BACKEND', `no backend available in pool ${pool}`, { status: 503 });
  }
}

/** Connecting to the backend failed: nothing was sent, always safe to try another. */
export class UpstreamConnectError extends AnubisError {
  constructor(backend: string, cause: unknown) {
    super('ANUBIS_UPSTREAM_CONNECT', `cannot connect to ${backend}`, {
      status: 502,
      retry: 'always',
      cause,
    });
  }
}

/** Connecting to the backend took longer than the connect timeout. */
export class UpstreamConnectTimeoutError extends AnubisError {
  constructor(backend: string, cause: unknown) {
    super('ANUBIS_UPSTREAM_CONNECT_TIMEOUT', `connect to ${backend} timed out`, {
      status: 504,
      retry: 'always',
      cause,
    });
  }
}

/** The backend did not send response headers in time. */
export class UpstreamHeadersTimeoutError extends AnubisError {
  constructor(backend: string, cause: unknown) {
    super('ANUBIS_UPSTREAM_HEADERS_TIMEOUT', `${backend} did not answer in time`, {
      status: 504,
      cause,
    });
  }
}

/** The backend stopped sending the response body for longer than the idle timeout. */
export class UpstreamBodyTimeoutError extends AnubisError {
  constructor(backend: string, cause: unknown) {
    super('ANUBIS_UPSTREAM_BODY_TIMEOUT', `${backend} stalled while sending its response`, {
      status: 504,
      cause,
    });
  }
}

/** The request as a whole exceeded the pool's total timeout. */
export class UpstreamTotalTimeoutError extends AnubisError {
  constructor(backend: string) {
    super('ANUBIS_UPSTREAM_TOTAL_TIMEOUT', `request to ${backend} exceeded the total timeout`, {
      status: 504,
    });
  }
}

/**
 * The backend closed or reset the connection before a response. Safe to resend only when
 * the socket was a reused keep-alive connection (the backend closed it while idle).
 */
export class UpstreamResetError extends AnubisError {
  constructor(backend: string, cause: unknown) {
    super('ANUBIS_UPSTREAM_RESET', `${backend} closed the connection before responding`, {
      status: 502,
      retry: 'reused-socket',
      cause,
    });
  }
}

/** The backend sent something that is not valid HTTP. */
export class UpstreamProtocolError extends AnubisError {
  constructor(backend: string, cause: unknown) {
    super('ANUBIS_UPSTREAM_PROTOCOL', `${backend} sent an invalid response`, {
      status: 502,
      cause,
    });
  }
}

/**
 * The request cannot be written to a backend as it is: a CR, LF or NUL in a header, a control
 * character in the target, or a body that does not match its Content-Length. Refused by the
 * upstream client before the backend could misread it; the backend is not at fault.
 */
export class RequestNotForwardableError extends AnubisError {
  constructor(backend: string, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(
      'ANUBIS_REQUEST_NOT_FORWARDABLE',
      `request cannot be forwarded to ${backend}: ${reason}`,
      { status: 400, cause },
    );
  }
}

/** The client went away before the response was complete. */
export class ClientAbortedError extends AnubisError {
  constructor() {
    super('ANUBIS_CLIENT_ABORTED', 'client closed the connection', { status: 499 });
  }
}

/**
 * A TLS file named in the configuration (listener certificate or key, backend CA) cannot be
 * read or is not valid PEM, or a key does not match its certificate.
 */
export class TlsFileError extends AnubisError {
  /** Key path of the setting, e.g. `listeners[0].tls.certificates[1].key`. */
  readonly path: string;
  readonly file: string;

  constructor(path: string, file: string, detail: string, cause?: unknown) {
    super('ANUBIS_TLS_FILE', `${path}: ${file}: ${detail}`, { cause });
    this.path = path;
    this.file = file;
  }
}

/**
 * A request to the admin API was refused: malformed input (400), missing or wrong token
 * (401), unknown pool or backend (404), a change that conflicts with the current state (409),
 * a feature the pool's strategy does not offer (501). `code` says which.
 */
export class AdminRequestError extends AnubisError {
  constructor(
    code:
      | 'ANUBIS_ADMIN_BAD_REQUEST'
      | 'ANUBIS_ADMIN_UNAUTHORIZED'
      | 'ANUBIS_ADMIN_NOT_FOUND'
      | 'ANUBIS_ADMIN_CONFLICT'
      | 'ANUBIS_ADMIN_UNSUPPORTED',
    message: string,
  ) {
    const status = {
      ANUBIS_ADMIN_BAD_REQUEST: 400,
      ANUBIS_ADMIN_UNAUTHORIZED: 401,
      ANUBIS_ADMIN_NOT_FOUND: 404,
      ANUBIS_ADMIN_CONFLICT: 409,
      ANUBIS_ADMIN_UNSUPPORTED: 501,
    }[code];
    super(code, message, { status });
  }
}

/** A reload was asked of a load balancer that has no configuration file to re-read. */
export class ReloadUnavailableError extends AnubisError {
  constructor() {
    super(
      'ANUBIS_RELOAD_UNAVAILABLE',
      'nothing to reload: this load balancer was not started from a configuration file',
      { status: 409 },
    );
  }
}

/** The request body is larger than the pool's `maxBodySize`. */
export class BodyTooLargeError extends AnubisError {
  constructor(max: number) {
    super('ANUBIS_BODY_TOO_LARGE', `request body larger than ${max} bytes`, { status: 413 });
  }
}

/** Every backend of the pool is at `concurrency.maxPerBackend` and the queue is full. */
export class QueueFullError extends AnubisError {
  constructor(pool: string) {
    super('ANUBIS_QUEUE_FULL', `every backend of pool ${pool} is busy and its queue is full`, {
      status: 503,
    });
  }
}

/** A request waited longer than `concurrency.queueTimeout` for a free backend. */
export class QueueTimeoutError extends AnubisError {
  constructor(pool: string) {
    super('ANUBIS_QUEUE_TIMEOUT', `no backend of pool ${pool} became free in time`, {
      status: 503,
    });
  }
}
