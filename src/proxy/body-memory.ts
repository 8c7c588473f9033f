/**
 * Dead socket read buffers, collected by the bytes of body relayed rather than by V8's own
 * timing.
 *
 * Every socket read allocates a fresh 64 KiB Buffer outside the JS heap ("external"
 * memory). Once relayed it is garbage, but V8 frees it only when a scavenge runs (the young
 * generation is full) or when external memory has grown ≈ 64 MiB past the last collection.
 * A streamed body allocates few JS objects per chunk, so it is the second trigger that
 * fires: ≈ 64 MiB of dead read buffers pile up on top of the baseline (docs/performance.md,
 * "Memory").
 *
 * The HTTP body relays (response: `Exchange.onData`; request: `ReplayableBody`) count the
 * bytes they pass, process-wide. Every `COLLECT_EVERY_BYTES` (2 MiB) relayed, the collector
 * looks at V8's external memory (`getHeapStatistics()`, ≈ 0.2 µs): if it grew by that much
 * or more since the last collection (or since the lowest value seen after it), dead read
 * buffers are piling up and a minor GC (scavenge) runs, which frees the young generation's
 * dead ArrayBuffers; otherwise V8's own scavenges are keeping up (busy traffic allocates
 * enough JS objects to trigger them) and nothing is forced. Cost per chunk: one add and one
 * compare.
 *
 * Measured (docs/performance.md, Memory): forcing a scavenge every 4 MiB whatever the state
 * cost 64 KiB POSTs at 50 connections ≈ 40% of their throughput (7.1k req/s, p99 23 ms,
 * against 11.5k and 7 ms with a 64 MiB threshold): with 50 uploads in flight the scavenges
 * came every 10–15 ms and promoted live objects early. With the check, POSTs ran at
 * 12.1–13.4k req/s, and 1 GiB streamed peaked at 75–76 MiB on Node 20 and 93–94 MiB on
 * Node 24 (fixed 4 MiB: 77 and 93–96; fixed 8 MiB, before anubis had its own upstream
 * client: 89–93 and 112–115).
 *
 * V8's `gc()` is obtained by turning on `--expose-gc` and reading `gc` from a new vm context
 * (the main context was created before the flag), lazily, when the first threshold is
 * crossed: a process that never relays a large body never creates that context. Where it
 * cannot be obtained, counting goes on and collecting is a no-op.
 */
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Body bytes relayed between two minor GCs. */
export const COLLECT_EVERY_BYTES = 2 * 1024 * 1024;

/** Runs a minor GC; `undefined` where none can be had. */
export type MinorGc = () => void;

/** V8's exposed `gc`, asked for a young-generation collection; undefined if unavailable. */
export function obtainMinorGc(): MinorGc | undefined {
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    if (typeof gc !== 'function') return undefined;
    const minor = { type: 'minor' };
    return () => (gc as (options: { type: string }) => void)(minor);
  } catch {
    return undefined;
  }
}

/** V8's external memory (Buffers and other ArrayBuffers), in bytes. */
export function externalMemory(): number {
  return getHeapStatistics().external_memory;
}

/**
 * Counts relayed body bytes; each time `every` more have passed, runs a minor GC if external
 * memory grew by `every` or more since the last one.
 */
export class ReadBufferCollector {
  private readonly every: number;
  private readonly obtain: () => MinorGc | undefined;
  private readonly external: () => number;
  /** Bytes since the last check. */
  private pending = 0;
  /** External memory after the last collection, or the lowest seen since (-1: not yet read). */
  private floor = -1;
  /** undefined: not asked for yet; null: not available (collecting is a no-op). */
  private gc: MinorGc | null | undefined = undefined;
  /** Minor GCs run so far. */
  collections = 0;

  constructor(
    every: number = COLLECT_EVERY_BYTES,
    obtain: () => MinorGc | undefined = obtainMinorGc,
    external: () => number = externalMemory,
  ) {
    this.every = every;
    this.obtain = obtain;
    this.external = external;
  }

  /** Called by a body relay with the size of each chunk it passes on. */
  count(bytes: number): void {
    this.pending += bytes;
    if (this.pending >= this.every) this.check();
  }

  private check(): void {
    this.pending = 0;
    const external = this.external();
    if (this.floor < 0 || external < this.floor) this.floor = external;
    if (external - this.floor < this.every) return;
    if (this.gc === undefined) this.gc = this.obtain() ?? null;
    if (this.gc === null) return;
    this.collections++;
    this.gc();
    this.floor = this.external();
  }
}

/** The process-wide collector every HTTP body relay reports to. */
export const readBufferCollector = new ReadBufferCollector();
