/**
 * undici's `Pool`, for the pools that use it (`client: undici`, or the fallback when Node's
 * parser is not reachable): loaded on first use, so that a process on anubis's own client
 * never loads undici (≈ 0.7 MiB of idle RSS on Node 20), and from its own module rather than through the
 * package index, which also loads fetch, WebSocket, EventSource, the cache stores and the
 * mock agents (≈ 8 MiB of RSS on Node 20, docs/performance.md, Memory). It is the same class
 * either way (one require cache), so errors and types are undici's own. Should a future
 * undici move the file, the index is the fallback: slower start, same pool.
 */
import { createRequire } from 'node:module';
import type * as Undici from 'undici';
import type { Pool as UndiciPool } from 'undici';
import type {
  UpstreamClient,
  UpstreamClientStats,
  UpstreamHandler,
  UpstreamRequest,
} from './upstream-client.js';
import { expectSocketReport } from './undici-socket-reuse.js';

const require = createRequire(import.meta.url);

let loaded: typeof UndiciPool | undefined;

/** undici's Pool class (loaded at the first call). */
export function undiciPool(): typeof UndiciPool {
  if (loaded !== undefined) return loaded;
  try {
    loaded = require('undici/lib/dispatcher/pool.js') as typeof UndiciPool;
  } catch {
    loaded = (require('undici') as typeof Undici).Pool;
  }
  return loaded;
}

/**
 * undici's Pool as an upstream client: what it lacks next to anubis's own is the
 * `reusedSocket` report, which a thin handler adds (undici-socket-reuse.ts). The extra object
 * per request is paid only by the pools that use undici.
 */
export function createUndiciClient(url: string, options: UndiciPool.Options): UpstreamClient {
  return new UndiciClient(new (undiciPool())(url, options));
}

class UndiciClient implements UpstreamClient {
  private readonly pool: UndiciPool;

  constructor(pool: UndiciPool) {
    this.pool = pool;
  }

  get stats(): UpstreamClientStats {
    return this.pool.stats;
  }

  dispatch(request: UpstreamRequest, handler: UpstreamHandler): boolean {
    return this.pool.dispatch(request, new ReuseReportingHandler(handler));
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  destroy(): Promise<void> {
    return this.pool.destroy();
  }
}

/** Passes every event on; in onConnect, first asks for the socket report of the request. */
class ReuseReportingHandler {
  private readonly handler: UpstreamHandler;

  constructor(handler: UpstreamHandler) {
    this.handler = handler;
  }

  onConnect(abort: (reason?: Error) => void): void {
    expectSocketReport(this.handler);
    this.handler.onConnect(abort);
  }

  onHeaders(
    statusCode: number,
    rawHeaders: (Buffer | string)[],
    resume: () => void,
    statusText: string,
  ): boolean {
    return this.handler.onHeaders(statusCode, rawHeaders, resume, statusText);
  }

  onData(chunk: Buffer): boolean {
    return this.handler.onData(chunk);
  }

  onComplete(trailers: (Buffer | string)[] | null): void {
    this.handler.onComplete(trailers);
  }

  onError(error: Error): void {
    this.handler.onError(error);
  }
}
