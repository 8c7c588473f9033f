/**
 * The configuration schema: the single source of truth for every key, its type and its
 * default. docs/configuration.md documents each key; test/unit/config-docs.test.ts checks that
 * every key here appears there.
 *
 * Durations accept "250ms", "5s", "1m", "1h" or a number of milliseconds and are parsed to
 * milliseconds. Unknown keys are errors (a typo must not be silently ignored).
 */
import { z } from 'zod';
import { cidrError, parseDuration, parseListenAddress, parseSize } from './units.js';

export const duration = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const ms = parseDuration(value);
  if (ms === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a duration such as 250ms, 5s or 1m (or milliseconds as a number), found ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return ms;
});

export const byteSize = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const bytes = parseSize(value);
  if (bytes === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a size such as 16kb or 1mb (or bytes as a number), found ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return bytes;
});

export const listenAddress = z.string().transform((value, ctx) => {
  const parsed = parseListenAddress(value);
  if (parsed === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `expected host:port such as 127.0.0.1:8080, [::1]:8080 or :8080, found ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return { ...parsed, text: value };
});

const cidr = z.string().superRefine((value, ctx) => {
  const message = cidrError(value);
  if (message !== undefined) ctx.addIssue({ code: 'custom', message });
});

const backendUrl = z.string().transform((value, ctx) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    ctx.addIssue({
      code: 'custom',
      message: `expected a URL such as http://127.0.0.1:9001, found ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    ctx.addIssue({
      code: 'custom',
      message: `expected an http:// or https:// URL, found ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') {
    ctx.addIssue({
      code: 'custom',
      message: `expected a URL without path, query or fragment (requests keep their own path), found ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return url.origin;
});

export const backendSchema = z.strictObject({
  /** Origin of the backend: scheme, host and port. */
  url: backendUrl,
  /** Relative capacity; a backend of weight 2 gets twice the share of one of weight 1. */
  weight: z.number().int().min(1).max(10_000).default(1),
  /** Display name for logs, metrics and the admin API; defaults to the URL's host:port. */
  name: z.string().min(1).max(200).optional(),
});

/**
 * A strategy is a name (`round-robin`), a path to a custom strategy module
 * (`./my-strategy.ts`), or an object `{ name, ...options }`.
 */
export const strategySchema = z
  .union([z.string().min(1), z.looseObject({ name: z.string().min(1) })])
  .transform((value) => {
    if (typeof value === 'string') return { name: value, options: {} };
    const { name, ...options } = value;
    return { name, options: options };
  });

export const timeoutsSchema = z.strictObject({
  /** Establishing the TCP (and TLS) connection to a backend. */
  connect: duration.default(5_000),
  /** From the request being sent to the backend's response headers. */
  headers: duration.default(60_000),
  /** Longest silence between two chunks of the backend's response body. */
  idle: duration.default(60_000),
  /** Whole exchange, from accepting the request to the last byte; 0 disables it. */
  total: duration.default(0),
});

export const poolSchema = z.strictObject({
  strategy: strategySchema.default({ name: 'round-robin', options: {} }),
  backends: z.array(backendSchema).min(1),
  timeouts: timeoutsSchema.default({ connect: 5_000, headers: 60_000, idle: 60_000, total: 0 }),
  /** How long an idle keep-alive connection to a backend is kept open. */
  keepAliveTimeout: duration.default(4_000),
  /** Add an `X-Anubis-Backend` response header naming the backend that served the request. */
  exposeBackendHeader: z.boolean().default(false),
});

export const listenerSchema = z.strictObject({
  address: listenAddress,
  pool: z.string().min(1),
});

export const logSchema = z.strictObject({
  level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  format: z.enum(['json', 'pretty']).default('json'),
  /** One log line per request (off by default: it costs throughput). */
  access: z.boolean().default(false),
});

export const configSchema = z
  .strictObject({
    workers: z.union([z.literal('auto'), z.number().int().min(1).max(256)]).default('auto'),
    log: logSchema.default({ level: 'info', format: 'json', access: false }),
    /**
     * Client addresses (CIDR or single IP) whose X-Forwarded-* headers are believed;
     * from anyone else they are replaced by what anubis sees on the socket.
     */
    trustedProxies: z.array(cidr).default([]),
    listeners: z.array(listenerSchema).min(1),
    pools: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/), poolSchema),
  })
  .superRefine((config, ctx) => {
    const poolNames = Object.keys(config.pools);
    if (poolNames.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['pools'], message: 'expected at least one pool' });
    }
    config.listeners.forEach((listener, index) => {
      if (!(listener.pool in config.pools)) {
        ctx.addIssue({
          code: 'custom',
          path: ['listeners', index, 'pool'],
          message: `expected the name of a pool (${poolNames.join(', ') || 'none defined'}), found ${JSON.stringify(listener.pool)}`,
        });
      }
    });
    for (const [poolName, pool] of Object.entries(config.pools)) {
      const seen = new Set<string>();
      pool.backends.forEach((backend, index) => {
        const id = backend.name ?? backend.url;
        if (seen.has(id)) {
          ctx.addIssue({
            code: 'custom',
            path: ['pools', poolName, 'backends', index],
            message: `expected each backend once, found ${JSON.stringify(id)} twice`,
          });
        }
        seen.add(id);
      });
    }
  });

/** A configuration as written by a user (before defaults and parsing). */
export type ConfigInput = z.input<typeof configSchema>;
/** A validated configuration with every default filled in. */
export type Config = z.output<typeof configSchema>;
export type PoolConfig = Config['pools'][string];
export type BackendConfig = PoolConfig['backends'][number];
export type ListenerConfig = Config['listeners'][number];
export type TimeoutsConfig = PoolConfig['timeouts'];
export type StrategyConfig = PoolConfig['strategy'];
