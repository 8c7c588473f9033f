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
