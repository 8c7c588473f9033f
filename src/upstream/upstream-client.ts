/**
 * What the proxy needs from a backend's connection pool: send one request and report its
 * answer through a handler. Two implementations fit it (src/upstream/backend.ts picks one):
 *
 *   - `Http1Pool` (src/upstream/http1/): anubis's own HTTP/1.1 client on Node's built-in
 *     llhttp parser, the default;
 *   - undici's `Pool`, whose native dispatch-handler protocol this interface is the subset of
 *     (the `upstream.client: undici` setting, and the fallback when Node's parser is not
 *     reachable).
 */
import type { Readable } from 'node:stream';

export interface UpstreamRequest {
  /** Origin-form target: `/path?query`. */
  readonly path: string;
  readonly method: string;
  /** Flat list of names and values, as sent (hop-by-hop headers already removed). */
  readonly headers: string[];
  /** Streamed request body; null when the request has none. */
  readonly body: Readable | null;
  /** From the request being sent to the response headers, ms; 0 = none. */
  readonly headersTimeout: number;
  /** Longest silence between two chunks of the response body, ms; 0 = none. */
  readonly bodyTimeout: number;
}

/** Told about one request, in order: onConnect, onHeaders, onData…, then onComplete or onError. */
export interface UpstreamHandler {
  /**
   * Set by the pool after onConnect: the request goes out on a keep-alive connection that
   * already carried a request (Http1Pool sets it; undici pools through
   * src/upstream/undici-socket-reuse.ts).
   */
  reusedSocket: boolean;
  /** The request is about to be sent; `abort` stops it (onError follows with the reason). */
  onConnect(abort: (reason?: Error) => void): void;
  /** Final response headers (flat list); false pauses the body until `resume` is called. */
  onHeaders(
    statusCode: number,
    rawHeaders: (Buffer | string)[],
    resume: () => void,
    statusText: string,
  ): boolean;
  /** A chunk of the response body; false pauses the body until `resume` is called. */
  onData(chunk: Buffer): boolean;
  /** The response is complete; `trailers` is a flat list of trailer fields, or null. */
  onComplete(trailers: (Buffer | string)[] | null): void;
  /** The request failed (connect, timeout, reset, invalid response, abort). */
  onError(error: Error): void;
}

/** Connection counts of a pool (undici's `Pool.stats` has the same fields). */
export interface UpstreamClientStats {
  /** Open connections, idle or busy. */
  readonly connected: number;
  /** Idle connections, ready for a request. */
  readonly free: number;
  /** Requests in flight. */
  readonly running: number;
  /** Requests waiting for a connection. */
  readonly pending: number;
}

/** A backend's keep-alive connection pool. */
export interface UpstreamClient {
  readonly stats: UpstreamClientStats;
  dispatch(request: UpstreamRequest, handler: UpstreamHandler): unknown;
  /** Stops taking requests, lets those in flight finish, closes every connection. */
  close(): Promise<void>;
  /** Closes every connection at once, failing the requests in flight. */
  destroy(): Promise<void>;
}
