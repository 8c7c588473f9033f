/**
 * undici's `Pool`, loaded from its own module rather than through the package index. The index
 * also loads fetch, WebSocket, EventSource, the cache stores and the mock agents at start-up
 * (≈ 8 MiB of RSS on Node 20, docs/performance.md, Memory); anubis only needs the pool. It is
 * the same class either way (one require cache), so errors and types are undici's own.
 * Should a future undici move the file, the index is the fallback: slower start, same pool.
 */
import { createRequire } from 'node:module';
import type * as Undici from 'undici';
import type { Pool as UndiciPool } from 'undici';

const require = createRequire(import.meta.url);

function loadPool(): typeof UndiciPool {
  try {
    return require('undici/lib/dispatcher/pool.js') as typeof UndiciPool;
  } catch {
    return (require('undici') as typeof Undici).Pool;
  }
}

export const Pool: typeof UndiciPool = loadPool();
export type Pool = UndiciPool;
