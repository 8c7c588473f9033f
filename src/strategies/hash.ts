/**
 * hash: consistent hashing on a request key, so the same key keeps reaching the same backend
 * (caches, sessions held in memory, sharded data).
 *
 * Ring (ketama): each backend owns `vnodes × weight` points on a 32-bit ring, point j of
 * backend b at hash32("b.id#j"). A key goes to the owner of the first point at or after
 * hash32(key), wrapping around. Shares follow the weights (± about 1/√(vnodes·weight)), and
 * since points depend only on the backend's id and weight, removing one backend of N moves
 * only the keys that were on it (≈ 1/N) — to the next point clockwise — and adding one takes
 * ≈ 1/(N+1) of the keys, every one of them landing on the new backend.
 *
 * Key (option `key`): `client-ip` (default; the address anubis believes, see trustedProxies),
 * `path` (without the query), `header:<name>` or `cookie:<name>`; a request without that
 * header or cookie is hashed by client IP.
 *
 * Fail-over: when the key's backend is excluded (a retry after it failed), the walk continues
 * clockwise to the next point owned by another backend, so a key's second choice is stable too.
 * Unhealthy backends are not on the ring at all (the pool passes only eligible ones).
 *
 * Cost: pick() hashes the key (no allocation: the key is read in place) and binary-searches
 * the ring: O(log(points)), about 18 steps for 1,000 backends × 160 points.
 */
import { StrategyLoadError } from '../errors.js';
import { hash32 } from './hash32.js';
import {
  isExcluded,
  type BackendExplanation,
  type BackendView,
  type PickContext,
  type Strategy,
} from './types.js';
import { weightOf } from './weight.js';

export type HashKey =
  | { readonly kind: 'client-ip' }
  | { readonly kind: 'path' }
  | { readonly kind: 'header'; readonly name: string }
  | { readonly kind: 'cookie'; readonly name: string };

export interface HashOptions {
  /** `client-ip` (default), `path`, `header:<name>` or `cookie:<name>`. */
  readonly key?: string | undefined;
  /** Ring points per unit of weight (default 160, as ketama). */
  readonly vnodes?: number | undefined;
}

export const DEFAULT_VNODES = 160;
/** Upper bound on ring points; beyond it point counts are scaled down proportionally. */
export const MAX_POINTS = 1 << 20;

/** Parses the `key` option; undefined if it is not one of the documented forms. */
export function parseHashKey(text: string): HashKey | undefined {
  if (text === 'client-ip') return { kind: 'client-ip' };
  if (text === 'path') return { kind: 'path' };
  const match = /^(header|cookie):([!#$%&'*+\-.^_`|~0-9A-Za-z]+)$/.exec(text);
  if (match === null) return undefined;
  const name = match[2] as string;
  return match[1] === 'header'
    ? { kind: 'header', name: name.toLowerCase() }
    : { kind: 'cookie', name };
}

/** Start and end of cookie `name`'s value in a Cookie header, or -1. */
function findCookie(header: string, name: string): number {
  let from = 0;
  for (;;) {
    const at = header.indexOf(name, from);
    if (at < 0) return -1;
    const before = at === 0 ? 59 /* ';' */ : header.charCodeAt(at - 1);
    const after = header.charCodeAt(at + name.length);
    if ((before === 59 || before === 32) && after === 61 /* '=' */) return at + name.length + 1;
    from = at + 1;
  }
}

export class HashStrategy implements Strategy {
  readonly name: string = 'hash';
  readonly key: HashKey;
  readonly vnodes: number;
  private backends: readonly BackendView[] = [];
  /** Ring point hashes, ascending; owners[i] is the slot of the backend owning point i. */
  private points = new Uint32Array(0);
  private owners = new Int32Array(0);
  /** Fraction of the key space each slot owns (explain()). */
  private shares: number[] = [];
  private pointCounts: number[] = [];

  constructor(key: HashKey = { kind: 'client-ip' }, vnodes = DEFAULT_VNODES) {
    this.key = key;
    this.vnodes = vnodes;
  }

  setBackends(backends: readonly BackendView[]): void {
    this.backends = backends;
    const weights = backends.map(weightOf);
    const wanted = weights.reduce((sum, w) => sum + w * this.vnodes, 0);
    const scale = wanted > MAX_POINTS ? MAX_POINTS / wanted : 1;
    this.pointCounts = weights.map((w) => Math.max(1, Math.round(w * this.vnodes * scale)));
    const ring: { hash: number; slot: number }[] = [];
    backends.forEach((backend, slot) => {
      const count = this.pointCounts[slot] as number;
      for (let j = 0; j < count; j++) ring.push({ hash: hash32(`${backend.id}#${j}`), slot });
    });
    // Equal hashes (rare) are ordered by id so the ring does not depend on backend order.
    ring.sort(
      (a, b) =>
        a.hash - b.hash ||
        ((backends[a.slot] as BackendView).id < (backends[b.slot] as BackendView).id ? -1 : 1),
    );
    this.points = Uint32Array.from(ring, (p) => p.hash);
    this.owners = Int32Array.from(ring, (p) => p.slot);
    this.shares = backends.map(() => 0);
    for (let i = 0; i < ring.length; i++) {
      const previous =
        i === 0
          ? (this.points[ring.length - 1] as number) - 2 ** 32
          : (this.points[i - 1] as number);
      const slot = this.owners[i] as number;
      this.shares[slot] =
        (this.shares[slot] as number) + ((this.points[i] as number) - previous) / 2 ** 32;
    }
  }

  pick(context: PickContext): BackendView | undefined {
    const points = this.points;
    const length = points.length;
    if (length === 0) return undefined;
    const hash = this.keyHash(context);
    // First point >= hash (binary search), wrapping to 0 past the end.
    let low = 0;
    let high = length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if ((points[mid] as number) < hash) low = mid + 1;
      else high = mid;
    }
    let i = low === length ? 0 : low;
    if (context.excluded === undefined) return this.backends[this.owners[i] as number];
    for (let step = 0; step < length; step++) {
      const backend = this.backends[this.owners[i] as number] as BackendView;
      if (!isExcluded(context, backend)) return backend;
      i = i + 1 === length ? 0 : i + 1;
    }
    return undefined;
  }

  explain(): BackendExplanation[] {
    return this.backends.map((backend, slot) => ({
      backend: backend.id,
      // Fraction of the key space this backend owns (a share, not a cost).
      score: Math.round((this.shares[slot] as number) * 1e6) / 1e6,
      inputs: {
        key:
          this.key.kind === 'header' || this.key.kind === 'cookie'
            ? `${this.key.kind}:${this.key.name}`
            : this.key.kind,
        weight: backend.effectiveWeight,
        points: this.pointCounts[slot] as number,
        active: backend.active,
      },
    }));
  }

  /** hash32 of the request's key, read in place (no substring is allocated). */
  keyHash(context: PickContext): number {
    const key = this.key;
    switch (key.kind) {
      case 'client-ip':
        return hash32(context.clientAddress);
      case 'path': {
        const url = context.url;
        const query = url.indexOf('?');
        return hash32(url, 0, query < 0 ? url.length : query);
      }
      case 'header': {
        const value = context.headers[key.name];
        if (typeof value === 'string') return hash32(value);
        if (Array.isArray(value) && value.length > 0) return hash32(value[0] as string);
        return hash32(context.clientAddress);
      }
      case 'cookie': {
        const header = context.headers.cookie;
        if (header !== undefined) {
          const start = findCookie(header, key.name);
          if (start >= 0) {
            const semicolon = header.indexOf(';', start);
            return hash32(header, start, semicolon < 0 ? header.length : semicolon);
          }
        }
        return hash32(context.clientAddress);
      }
    }
  }
}

export function createHash(options: HashOptions = {}): Strategy {
  const key = parseHashKey(options.key ?? 'client-ip');
  if (key === undefined) {
    throw new StrategyLoadError(`hash: invalid key ${JSON.stringify(options.key)}`);
  }
  return new HashStrategy(key, options.vnodes ?? DEFAULT_VNODES);
}
