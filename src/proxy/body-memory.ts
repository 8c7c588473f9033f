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
 * bytes they pass, process-wide; every `COLLECT_EVERY_BYTES` a minor GC (scavenge) runs, which
 * frees the young generation's dead ArrayBuffers, so at most ≈ that many bytes of dead read
 * buffers wait. Cost per chunk: one add and one compare. A scavenge of a mostly empty young
 * generation takes well under a millisecond, once per 4 MiB relayed. (4 MiB rather than 8
 * since anubis's own upstream client: Node 24's peak for 1 GiB streamed went from 100–102 to
 * 93–96 MiB, Node 20's from 81–83 to 77, with no throughput change above the noise of
 * interleaved runs; docs/performance.md, Memory.)
 *
 * V8's `gc()` is obtained by turning on `--expose-gc` and reading `gc` from a new vm context
 * (the main context was created before the flag), lazily, when the first threshold is
 * crossed: a process that never relays a large body never creates that context. Where it
 * cannot be obtained, counting goes on and collecting is a no-op.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Body bytes relayed between two minor GCs. */
export const COLLECT_EVERY_BYTES = 4 * 1024 * 1024;

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

/** Counts relayed body bytes and runs a minor GC each time `every` more have passed. */
export class ReadBufferCollector {
  private readonly every: number;
  private readonly obtain: () => MinorGc | undefined;
  /** Bytes since the last collection. */
  private pending = 0;
  /** undefined: not asked for yet; null: not available (collecting is a no-op). */
  private gc: MinorGc | null | undefined = undefined;
  /** Minor GCs run so far. */
  collections = 0;

  constructor(
    every: number = COLLECT_EVERY_BYTES,
    obtain: () => MinorGc | undefined = obtainMinorGc,
  ) {
    this.every = every;
    this.obtain = obtain;
  }

  /** Called by a body relay with the size of each chunk it passes on. */
  count(bytes: number): void {
    this.pending += bytes;
    if (this.pending >= this.every) this.collect();
  }

  private collect(): void {
    this.pending = 0;
    if (this.gc === undefined) this.gc = this.obtain() ?? null;
    if (this.gc === null) return;
    this.collections++;
    this.gc();
  }
}

/** The process-wide collector every HTTP body relay reports to. */
export const readBufferCollector = new ReadBufferCollector();
