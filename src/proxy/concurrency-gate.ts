/**
 * Per-backend concurrency limit and the queue in front of a full pool (HAProxy `maxconn` +
 * queue): with `concurrency.maxPerBackend` = N, a backend with N requests in flight is skipped
 * by the pick (as if excluded); when every eligible backend is full the request waits in a
 * FIFO queue of at most `queueLength`, for at most `queueTimeout`, and is answered 503 (with
 * Retry-After) when the queue is full or the wait times out. Each request that ends frees a
 * slot and wakes the head of the queue.
 *
 * With maxPerBackend = 0 (the default) none of this runs: `pickWithCapacity` is pool.pick().
 */
import type { BackendView, PickContext } from '../strategies/types.js';
import type { Backend } from '../upstream/backend.js';
import type { UpstreamPool } from '../upstream/pool.js';

/** Returned when there are eligible backends but every one is full. */
export const ALL_FULL = Symbol('all-full');

/** A pick context whose exclude set the gate may extend for the duration of one pick. */
export interface GatedContext extends PickContext {
  excluded: Set<BackendView> | undefined;
}

/**
 * Picks a backend with a free slot: full backends are added to the context's exclude set for
 * this pick only, then removed again.
 */
export function pickWithCapacity(
  pool: UpstreamPool,
  context: GatedContext,
): Backend | undefined | typeof ALL_FULL {
  const max = pool.config.concurrency.maxPerBackend;
  if (max === 0) return pool.pick(context);
  let full: Backend[] | undefined;
  let chosen: Backend | undefined;
  // Each round excludes one more backend, so at most |eligible| + 1 rounds.
  for (let round = 0; round <= pool.eligible.length; round++) {
    const backend = pool.pick(context);
    if (backend === undefined) break;
    if (backend.active < max) {
      chosen = backend;
      break;
    }
    (full ??= []).push(backend);
    (context.excluded ??= new Set()).add(backend);
  }
  if (full !== undefined) for (const backend of full) context.excluded?.delete(backend);
  if (chosen !== undefined) return chosen;
  return full !== undefined ? ALL_FULL : undefined;
}

/** A request waiting for a slot. */
export interface QueuedRequest {
  /** Tries to pick again; returns false to stay at the head of the queue. */
  resumeFromQueue(): boolean;
  /** The wait exceeded queueTimeout. */
  queueTimedOut(): void;
  /** The client went away (the entry is skipped). */
  readonly gone: boolean;
}

interface Entry {
  readonly request: QueuedRequest;
  readonly timer: NodeJS.Timeout;
}

export class ConcurrencyQueue {
  private readonly pool: UpstreamPool;
  private entries: Entry[] = [];
  private releasing = false;
  /** Requests refused because the queue was full, and those that timed out, cumulative. */
  rejected = 0;
  timedOut = 0;

  constructor(pool: UpstreamPool) {
    this.pool = pool;
  }

  get length(): number {
    return this.entries.length;
  }

  /** Queues a request; false if the queue is full. */
  enqueue(request: QueuedRequest): boolean {
    const { queueLength, queueTimeout } = this.pool.config.concurrency;
    if (this.entries.length >= queueLength) {
      this.rejected++;
      return false;
    }
    const timer = setTimeout(() => {
      this.entries = this.entries.filter((e) => e.request !== request);
      this.pool.queueLength = this.entries.length;
      this.timedOut++;
      request.queueTimedOut();
    }, queueTimeout);
    timer.unref();
    this.entries.push({ request, timer });
    this.pool.queueLength = this.entries.length;
    return true;
  }

  /** A slot may have freed up: resume waiting requests in order while they get one. */
  release(): void {
    // A resumed request can fail at once and end, which calls release() again: the outer
    // loop already handles the rest of the queue.
    if (this.releasing) return;
    this.releasing = true;
    try {
      while (this.entries.length > 0) {
        const entry = this.entries.shift() as Entry;
        if (!entry.request.gone && !entry.request.resumeFromQueue()) {
          this.entries.unshift(entry);
          return;
        }
        clearTimeout(entry.timer);
      }
    } finally {
      this.releasing = false;
      this.pool.queueLength = this.entries.length;
    }
  }
}

const queues = new WeakMap<UpstreamPool, ConcurrencyQueue>();

/** The queue of a pool (created on first use). */
export function concurrencyQueueOf(pool: UpstreamPool): ConcurrencyQueue {
  let queue = queues.get(pool);
  if (queue === undefined) {
    queue = new ConcurrencyQueue(pool);
    queues.set(pool, queue);
  }
  return queue;
}
