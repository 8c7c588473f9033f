/**
 * A closed-loop load generator: `concurrency` virtual clients, each sending its next request
 * only when the previous answer has fully arrived, until `requests` have been sent or
 * `timeLimitMs` has passed. Closed loop is what makes strategies differ visibly: a client
 * stuck on a slow backend sends nothing else meanwhile, so throughput falls with latency.
 *
 * Each request comes from one of KEY_SPACE simulated clients, drawn from a seeded stream
 * identical for every strategy in a run: client k asks for `/key/k` from address
 * 10.0.⌊k/256⌋.(k mod 256), sent as `X-Forwarded-For` (the run trusts 127.0.0.1), so a hash
 * strategy sees the same keys each time, by path or by client IP. Each answer names its backend
 * in `x-anubis-backend` (the pool's `exposeBackendHeader`); errors (5xx, failed requests)
 * count apart and name no backend.
 *
 * Bounded in count (`requests`) and in time: at the time limit no new request starts, those
 * in flight get STOP_GRACE_MS to finish, then the client is destroyed.
 */
import { setMaxListeners } from 'node:events';
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { createRandom, deriveSeed } from './prng.js';

/** Distinct request paths (hash keys) the generator draws from. */
export const KEY_SPACE = 1000;
/** After the time limit, how long requests already in flight may still finish. */
const STOP_GRACE_MS = 2_000;
/** Stream number of the load's random stream (backends use 1..n). */
const LOAD_STREAM = 0;

export interface LoadOptions {
  /** Origin of the load balancer, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  readonly requests: number;
  readonly concurrency: number;
  readonly timeLimitMs: number;
  readonly seed: number;
  /** Backend ids, in the order used by `LoadResult.backend`. */
  readonly backendIds: readonly string[];
}

/** Per-request samples, indexed by completion order (0 .. completed-1). */
export interface LoadResult {
  /** Requests that completed (answered or failed) before the stop. */
  readonly completed: number;
  /** From the first request sent to the last answer (ms). */
  readonly durationMs: number;
  /** Client-side latency of each request: send to last body byte (ms). */
  readonly latencyMs: Float64Array;
  /** When each request ended, ms after the start. */
  readonly endedAtMs: Float64Array;
  /** Index of the backend that answered (into backendIds), or -1 for an error. */
  readonly backend: Int16Array;
  readonly errors: number;
  /** True if the time limit stopped the run before every request was sent. */
  readonly timeLimited: boolean;
}

/** Live progress: how many of `total` requests have completed so far. */
export interface LoadProgress {
  completed: number;
  readonly total: number;
}

/** The simulated client of each request: k drawn uniformly from the seeded load stream. */
export function requestClients(seed: number, requests: number): Uint16Array {
  const random = createRandom(deriveSeed(seed, LOAD_STREAM));
  const clients = new Uint16Array(requests);
  for (let i = 0; i < requests; i++) clients[i] = Math.floor(random() * KEY_SPACE);
  return clients;
}

/** The request paths of a run: `/key/<k>` for each request's client k. */
export function requestPaths(seed: number, requests: number): string[] {
  return Array.from(requestClients(seed, requests), (k) => `/key/${k}`);
}

/** Client k's address: 10.0.⌊k/256⌋.(k mod 256). */
export function clientAddress(k: number): string {
  return `10.0.${k >> 8}.${k & 255}`;
}

export async function generateLoad(
  options: LoadOptions,
  progress: LoadProgress = { completed: 0, total: options.requests },
): Promise<LoadResult> {
  const { requests, concurrency, timeLimitMs } = options;
  const clients = requestClients(options.seed, requests);
  // Built once per client, reused by every request of that client.
  const paths = Array.from({ length: KEY_SPACE }, (_, k) => `/key/${k}`);
  const headers = Array.from({ length: KEY_SPACE }, (_, k) => ({
    'x-forwarded-for': clientAddress(k),
  }));
  const backendIndex = new Map(options.backendIds.map((id, i) => [id, i]));
  const latencyMs = new Float64Array(requests);
  const endedAtMs = new Float64Array(requests);
  const backend = new Int16Array(requests);
  const pool = new Pool(options.url, {
    connections: concurrency,
    pipelining: 1,
    headersTimeout: timeLimitMs + STOP_GRACE_MS,
    bodyTimeout: timeLimitMs + STOP_GRACE_MS,
  });
  const abort = new AbortController();
  // Every request in flight listens on the one signal.
  setMaxListeners(concurrency + 10, abort.signal);
  let sent = 0;
  let completed = 0;
  let errors = 0;
  let stopped = false;
  const start = performance.now();
  const deadline = start + timeLimitMs;

  const virtualClient = async (): Promise<void> => {
    while (sent < requests && !stopped && performance.now() < deadline) {
      const client = clients[sent++] as number;
      const sentAt = performance.now();
      let answeredBy = -1;
      try {
        const response = await pool.request({
          path: paths[client] as string,
          method: 'GET',
          headers: headers[client] as Record<string, string>,
          signal: abort.signal,
        });
        await response.body.dump();
        const header = response.headers['x-anubis-backend'];
        if (response.statusCode < 500 && typeof header === 'string') {
          answeredBy = backendIndex.get(header) ?? -1;
        }
      } catch {
        if (stopped) return;
      }
      const now = performance.now();
      const slot = completed++;
      latencyMs[slot] = now - sentAt;
      endedAtMs[slot] = now - start;
      backend[slot] = answeredBy;
      if (answeredBy === -1) errors++;
      progress.completed = completed;
    }
  };

  const running = Promise.all(Array.from({ length: concurrency }, () => virtualClient()));
  // The whole run is bounded: the time limit plus the grace for requests in flight.
  let hardStop: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    running.then(() => 'done' as const),
    new Promise<'cut'>((resolve) => {
      hardStop = setTimeout(() => resolve('cut'), timeLimitMs + STOP_GRACE_MS);
    }),
  ]);
  clearTimeout(hardStop);
  const end = performance.now();
  if (outcome === 'cut') {
    stopped = true;
    abort.abort();
    await running;
  }
  await pool.destroy();
  // Samples are in completion order, so the last one ended last.
  const durationMs = completed === 0 ? end - start : (endedAtMs[completed - 1] as number);
  return {
    completed,
    durationMs,
    latencyMs: latencyMs.subarray(0, completed),
    endedAtMs: endedAtMs.subarray(0, completed),
    backend: backend.subarray(0, completed),
    errors,
    timeLimited: completed < requests,
  };
}
