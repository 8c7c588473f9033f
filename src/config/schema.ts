/**
 * The configuration schema: the single source of truth for every key, its type and its
 * default. docs/configuration.md documents each key; test/unit/config-docs.test.ts checks that
 * every key here appears there.
 *
 * Durations accept "250ms", "5s", "1m", "1h" or a number of milliseconds and are parsed to
 * milliseconds. Unknown keys are errors (a typo must not be silently ignored).
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { checkListeners } from './listener-rules.js';
import { isProvidedStrategy, providedName, type ProvidedStrategy } from '../strategies/provided.js';
import { adminSchema, checkAdminAddress } from './admin-schema.js';
import { concurrencySchema, healthSchema, retrySchema } from './health-schema.js';
import { cidrError, parseListenAddress } from './units.js';
import { busyPollingWindow, byteSize, duration, listenAddress } from './value-schemas.js';

export { byteSize, duration, listenAddress };

const cidr = z.string().superRefine((value, ctx) => {
  const message = cidrError(value);
  if (message !== undefined) ctx.addIssue({ code: 'custom', message });
});

/** `tcp://host:port` (TCP mode backends): the port is required, nothing may follow it. */
function tcpBackendUrl(url: URL, value: string, ctx: z.RefinementCtx): string {
  if (url.hostname === '' || url.port === '' || (url.pathname !== '' && url.pathname !== '/')) {
    ctx.addIssue({
      code: 'custom',
      message: `expected tcp://host:port (with a port, without path), found ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return `tcp://${url.host}`;
}

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
  if (url.protocol === 'tcp:') return tcpBackendUrl(url, value, ctx);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    ctx.addIssue({
      code: 'custom',
      message: `expected an http://, https:// (or, in a pool of a tcp listener, tcp://) URL, found ${JSON.stringify(value)}`,
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

/**
 * TLS towards https:// backends. Certificates are verified against the system CAs (plus `ca`
 * when given) unless `insecureSkipVerify` is set, for self-signed labs only.
 */
export const backendTlsSchema = z.strictObject({
  /** PEM file of extra certificate authorities to trust (read at start and on reload). */
  ca: z.string().min(1).optional(),
  /** Accept any certificate, even self-signed or for another name. Never in production. */
  insecureSkipVerify: z.boolean().default(false),
  /** Server name sent in SNI and checked against the certificate; defaults to the URL's host. */
  servername: z.string().min(1).optional(),
});

/** A duration of at least `minMs` (a floor that protects DNS servers from being hammered). */
function durationAtLeast(minMs: number) {
  return duration.refine((ms) => ms >= minMs, {
    message: `expected a duration of at least ${minMs}ms`,
  });
}

/** A DNS server: `10.0.0.2`, `10.0.0.2:5353`, `[fd00::2]:53` (port 53 by default). */
const dnsServer = z.string().superRefine((value, ctx) => {
  // An IP, or ip:port / [ipv6]:port: c-ares takes addresses only, never a name.
  const withPort = value.startsWith(':') ? undefined : parseListenAddress(value);
  if (isIP(value) === 0 && (withPort === undefined || isIP(withPort.host) === 0)) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a DNS server address such as 10.0.0.2 or 127.0.0.1:8600, found ${JSON.stringify(value)}`,
    });
  }
});

/**
 * DNS discovery of one backend entry (src/discovery/dns.ts). `dns` resolves the URL's host
 * (or `name`) to all its A/AAAA addresses, each a backend on the URL's port; `srv` reads SRV
 * records (Consul, Kubernetes headless services), each target a backend on the record's port;
 * `none` keeps the entry one backend whose host the connection pool resolves. A backend whose
 * URL host is a name (not an IP literal, not localhost) is discovered with `dns` by default.
 */
export const discoveryObjectSchema = z
  .strictObject({
    type: z.enum(['dns', 'srv', 'none']).default('dns'),
    /** Name to query; defaults to the URL's host. For SRV e.g. `_http._tcp.hello.default.svc.cluster.local`. */
    name: z.string().min(1).max(253).optional(),
    /** Address families: A and AAAA (`any`), or one of them. */
    family: z.enum(['any', 'ipv4', 'ipv6']).default('any'),
    /** Longest time between two resolutions. */
    interval: durationAtLeast(500).default(5_000),
    /** Shortest time between two resolutions: a TTL shorter than `interval` re-resolves sooner, never sooner than this. */
    minInterval: durationAtLeast(100).default(1_000),
    /** How long a backend that left DNS may finish its in-flight requests before they are cut. */
    drain: duration.default(10_000),
    /** DNS servers to ask instead of the system's (/etc/resolv.conf), e.g. Consul's `127.0.0.1:8600`. */
    servers: z.array(dnsServer).min(1).optional(),
  })
  .superRefine((value, ctx) => {
    if (value.minInterval > value.interval) {
      ctx.addIssue({
        code: 'custom',
        path: ['minInterval'],
        message: `expected at most interval (${value.interval}ms), found ${value.minInterval}ms`,
      });
    }
  });

export type DiscoveryConfig = z.output<typeof discoveryObjectSchema>;

/** The defaults of `discovery: dns` (also used for backends given by host name). */
export const DEFAULT_DISCOVERY: DiscoveryConfig = {
  type: 'dns',
  family: 'any',
  interval: 5_000,
  minInterval: 1_000,
  drain: 10_000,
};

/** `discovery: dns | srv | none` is shorthand for `{ type: ... }` with every default. */
export const discoverySchema = z.union([
  z
    .enum(['dns', 'srv', 'none'])
    .transform((type): DiscoveryConfig => ({ ...DEFAULT_DISCOVERY, type })),
  discoveryObjectSchema,
]);

export const backendSchema = z.strictObject({
  /** Origin of the backend: scheme, host and port. */
  url: backendUrl,
  /** TLS options of this https:// backend (overrides the pool's `tls`). */
  tls: backendTlsSchema.optional(),
  /** Relative capacity; a backend of weight 2 gets twice the share of one of weight 1. */
  weight: z.number().int().min(1).max(10_000).default(1),
  /** Display name for logs, metrics and the admin API; defaults to the URL's host:port. */
  name: z.string().min(1).max(200).optional(),
  /** A backup backend takes requests only when every primary backend is down. */
  backup: z.boolean().default(false),
  /** DNS discovery of this entry (see discoverySchema); default: on for host names. */
  discovery: discoverySchema.optional(),
});

/**
 * A strategy is a name (`round-robin`), a path to a custom strategy module
 * (`./my-strategy.ts`), or an object `{ name, ...options }`. From the library API (a config
 * object, never YAML) it may also be a Strategy object or a factory function, directly or as
 * `{ name, factory, ...options }`; it is then carried as `provided` (src/strategies/create.ts).
 */
const providedStrategy = z.custom<ProvidedStrategy>(isProvidedStrategy, {
  message: 'a Strategy object or a strategy factory function (library API)',
});

/** A pool's strategy setting after parsing. */
export interface StrategySetting {
  readonly name: string;
  options: Record<string, unknown>;
  /** The Strategy object or factory given through the library API. */
  readonly provided?: ProvidedStrategy;
}

function toStrategySetting(value: string | ProvidedStrategy | { name: string }): StrategySetting {
  if (typeof value === 'string') return { name: value, options: {} };
  if (isProvidedStrategy(value)) return { name: providedName(value), options: {}, provided: value };
  const { name, factory, ...options } = value as { name: string; factory?: unknown };
  if (typeof factory === 'function') {
    return { name, options, provided: factory as ProvidedStrategy };
  }
  return { name, options: factory === undefined ? options : { ...options, factory } };
}

export const strategySchema = z
  .union([providedStrategy, z.string().min(1), z.looseObject({ name: z.string().min(1) })])
  .transform(toStrategySetting);

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
  /**
   * HTTP/1.1 client towards the backends: `anubis` (its own, on Node's built-in llhttp
   * parser; the faster) or `undici`. anubis falls back to undici when Node's parser is not
   * reachable (docs/performance.md).
   */
  client: z.enum(['anubis', 'undici']).default('anubis'),
  /** Add an `X-Anubis-Backend` response header naming the backend that served the request. */
  exposeBackendHeader: z.boolean().default(false),
  /** Largest request body accepted for this pool (413 beyond); 0 = no limit. */
  maxBodySize: byteSize.default(0),
  /** Active and passive health, panic threshold, slow start (docs/health.md). */
  health: healthSchema.prefault({}),
  /** Retries on another backend (docs/health.md). */
  retry: retrySchema.prefault({}),
  /** Max concurrent requests per backend and the queue when all are full. */
  concurrency: concurrencySchema.prefault({}),
  /** TLS options for the pool's https:// backends (a backend's own `tls` wins). */
  tls: backendTlsSchema.optional(),
});

/** One certificate of a TLS listener: PEM files, and the SNI names it serves. */
export const certificateSchema = z.strictObject({
  cert: z.string().min(1),
  key: z.string().min(1),
  /**
   * SNI names served with this certificate (`example.com`, `*.example.com`); defaults to the
   * DNS names in the certificate (subjectAltName, else its common name).
   */
  servername: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
});

/**
 * TLS termination: `{cert, key}` for one certificate, or `certificates: [...]` chosen by SNI
 * (the first, or `cert`/`key` when both are given, is the default for unknown names).
 */
export const listenerTlsSchema = z
  .strictObject({
    cert: z.string().min(1).optional(),
    key: z.string().min(1).optional(),
    certificates: z.array(certificateSchema).min(1).optional(),
    /** Oldest protocol version accepted. */
    minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
  })
  .superRefine((tls, ctx) => {
    if ((tls.cert === undefined) !== (tls.key === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [tls.cert === undefined ? 'cert' : 'key'],
        message: 'expected cert and key together (PEM files)',
      });
    } else if (tls.cert === undefined && tls.certificates === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: 'expected cert and key (PEM files), or a list of certificates',
      });
    }
  });

/** Options of a `mode: tcp` listener. */
export const tcpListenerSchema = z.strictObject({
  /** Close a connection after this long without a byte in either direction; 0 disables. */
  idleTimeout: duration.default(600_000),
  /** Most client connections open at once on this listener; more are refused. 0: no limit. */
  maxConnections: z.number().int().min(0).default(0),
  /** Backends tried for one client connection when connecting fails (first try included). */
  connectAttempts: z.number().int().min(1).max(10).default(3),
});

/**
 * Client-side limits of a listener (src/server/request-guard.ts, src/server/http-listener.ts;
 * docs/security.md). The top-level `limits` sets defaults; a listener's `limits` overrides
 * single keys.
 */
const limitFields = {
  /** Longest request target (path and query); longer ones are answered 414. */
  maxUriLength: byteSize,
  /** Largest header block (`name: value` lines, without the request line); 431 beyond. */
  maxHeaderSize: byteSize,
  /** Most header fields in one request; 431 beyond. */
  maxHeaderCount: z.number().int().min(1).max(10_000),
  /** Time a client has to send a request's headers (slowloris); 408 and close after it. */
  headersTimeout: duration.refine((ms) => ms >= 100, { message: 'expected at least 100ms' }),
  /** Idle time allowed on a client keep-alive connection between two requests. */
  keepAliveTimeout: duration,
  /** Time a client has to send a whole request, body included; 0 disables it. */
  requestTimeout: duration,
  /** Concurrent client connections per listener; beyond it new ones get 503 and are closed. */
  maxConnections: z.number().int().min(1).max(1_000_000),
};

export const DEFAULT_LIMITS = {
  maxUriLength: 8 * 1024,
  maxHeaderSize: 16 * 1024,
  maxHeaderCount: 100,
  headersTimeout: 10_000,
  keepAliveTimeout: 5_000,
  requestTimeout: 0,
  maxConnections: 10_000,
};

export const limitsSchema = z.strictObject({
  maxUriLength: limitFields.maxUriLength.default(DEFAULT_LIMITS.maxUriLength),
  maxHeaderSize: limitFields.maxHeaderSize.default(DEFAULT_LIMITS.maxHeaderSize),
  maxHeaderCount: limitFields.maxHeaderCount.default(DEFAULT_LIMITS.maxHeaderCount),
  headersTimeout: limitFields.headersTimeout.default(DEFAULT_LIMITS.headersTimeout),
  keepAliveTimeout: limitFields.keepAliveTimeout.default(DEFAULT_LIMITS.keepAliveTimeout),
  requestTimeout: limitFields.requestTimeout.default(DEFAULT_LIMITS.requestTimeout),
  maxConnections: limitFields.maxConnections.default(DEFAULT_LIMITS.maxConnections),
});

/** A listener's own `limits`: any subset of the keys, the rest comes from the top level. */
export const limitsOverrideSchema = z.strictObject({
  maxUriLength: limitFields.maxUriLength.optional(),
  maxHeaderSize: limitFields.maxHeaderSize.optional(),
  maxHeaderCount: limitFields.maxHeaderCount.optional(),
  headersTimeout: limitFields.headersTimeout.optional(),
  keepAliveTimeout: limitFields.keepAliveTimeout.optional(),
  requestTimeout: limitFields.requestTimeout.optional(),
  maxConnections: limitFields.maxConnections.optional(),
});

export type LimitsConfig = z.output<typeof limitsSchema>;

export const listenerSchema = z.strictObject({
  address: listenAddress,
  /** Client-side limits of this listener (override the top-level `limits`). */
  limits: limitsOverrideSchema.optional(),
  /** Pool serving this listener (not needed when it only redirects to HTTPS). */
  pool: z.string().min(1).optional(),
  /** `http` (a reverse proxy) or `tcp` (layer 4: each connection piped to a backend). */
  mode: z.enum(['http', 'tcp']).default('http'),
  /** Terminate TLS on this listener (HTTPS, and HTTP/2 through ALPN). */
  tls: listenerTlsSchema.optional(),
  /**
   * Serve HTTP/2: with `tls` through ALPN (h2, falling back to http/1.1; default on), without
   * it as cleartext h2c with prior knowledge alongside HTTP/1.1 (default off).
   */
  http2: z.boolean().optional(),
  /** Answer every request with a redirect to https:// (301 for GET/HEAD, 308 otherwise). */
  redirectToHttps: z
    .union([
      z.literal(true),
      z.strictObject({
        /** Port of the HTTPS listener clients are sent to (443 is left out of the URL). */
        port: z.number().int().min(1).max(65_535).default(443),
      }),
    ])
    .optional(),
  /** TCP mode options (only with `mode: tcp`). */
  tcp: tcpListenerSchema.optional(),
  /**
   * Plain HTTP listeners: serve plain bodiless HTTP/1.1 requests on anubis's own fast path
   * and hand every other connection to node:http (docs/performance.md). `false`: node:http
   * serves everything.
   */
  fastPath: z.boolean().default(true),
  /**
   * Plain HTTP listeners: listening sockets bound to the address with SO_REUSEPORT, so a burst
   * of new connections is accepted several per event-loop iteration (docs/performance.md).
   * `auto`: 8 where available (Linux, Node >= 22.12, one process), else 1.
   */
  acceptSockets: z.union([z.literal('auto'), z.number().int().min(1).max(64)]).default('auto'),
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
    /**
     * Forwarding headers sent to backends: `x-forwarded` (X-Forwarded-For/-Proto/-Host),
     * `forwarded` (RFC 7239 `Forwarded`) or `both`.
     */
    forwardedHeaders: z.enum(['x-forwarded', 'forwarded', 'both']).default('x-forwarded'),
    /** Default client-side limits of every listener (docs/security.md). */
    limits: limitsSchema.default(DEFAULT_LIMITS),
    listeners: z.array(listenerSchema).min(1),
    pools: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/), poolSchema),
    /** The admin API, /metrics and dashboard listener (off when absent). */
    admin: adminSchema.optional(),
    /**
     * Graceful stop and runtime removal: how long in-flight requests (and upgraded
     * connections to removed backends) may take before they are cut.
     */
    drainTimeout: duration.default(10_000),
    /**
     * Keep the event loop polling for I/O instead of sleeping, for this long after the last
     * request (true: 100ms): lower and steadier latency, for a CPU core kept busy while
     * traffic flows (docs/performance.md#busy-polling). Off by default.
     */
    busyPolling: busyPollingWindow.default(0),
  })
  .superRefine((config, ctx) => {
    checkAdminAddress(config.admin, config.listeners, ctx);
    const poolNames = Object.keys(config.pools);
    if (poolNames.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['pools'], message: 'expected at least one pool' });
    }
    checkListeners(config, ctx);
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
