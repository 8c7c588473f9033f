/**
 * DNS discovery of one backend entry: the entry's name is resolved to all its addresses (A
 * and AAAA, or SRV targets then their addresses), each becoming a Backend of the pool, and
 * resolved again in the background. Discovery only writes pool membership
 * (addBackend/removeBackend); it never sits on the request path.
 *
 * Timing. After a successful resolution the next one is due after
 *
 *   delay = clamp(min TTL of the answers, minInterval, interval)
 *
 * so a short TTL is honoured without hammering the server, and a long TTL (Docker's embedded
 * DNS answers with 600 s) never delays noticing a `--scale` by more than `interval`. After a
 * failure the retry waits minInterval, doubling up to interval.
 *
 * Failures keep the last known set: a name that stops resolving (server down, SERVFAIL,
 * timeout, NXDOMAIN while a service restarts) never empties the pool. A family whose query
 * fails while the other answers keeps its previous addresses. Removed backends drain: they
 * leave the eligible set at once and finish in-flight requests (up to `drain`).
 *
 * Until the first successful resolution the configured entry itself stays in the pool as one
 * backend (its host resolved per connection by the connection pool), so a resolver that
 * cannot answer at start-up degrades to plain name-based proxying instead of 503s.
 */
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import type { BackendConfig, DiscoveryConfig } from '../config/schema.js';
import { formatAddress } from '../config/units.js';
import type { Logger } from '../logging/logger.js';
import type { Backend } from '../upstream/backend.js';
import { backendIdFromUrl } from '../upstream/backend.js';
import type { BackendTlsFiles } from '../upstream/backend-tls.js';
import { createBackend, type UpstreamPool } from '../upstream/pool.js';

/** What discovery needs from a DNS resolver; node:dns/promises `Resolver` has it. */
export interface DnsResolver {
  resolve4(name: string, options: { ttl: true }): Promise<{ address: string; ttl: number }[]>;
  resolve6(name: string, options: { ttl: true }): Promise<{ address: string; ttl: number }[]>;
  resolveSrv(
    name: string,
  ): Promise<{ name: string; port: number; priority: number; weight: number }[]>;
}

/** One discovered address: a future backend. */
export interface Endpoint {
  /** The host name it came from (the entry's name, or an SRV target). */
  readonly host: string;
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
}

export interface DiscoveryChange {
  readonly added: readonly string[];
  readonly removed: readonly string[];
}

export interface DnsDiscoveryEvents {
  /** Backends were added to or removed from the pool. */
  change: [change: DiscoveryChange];
}

export interface DnsDiscoveryOptions {
  readonly pool: UpstreamPool;
  /** The configured backend entry being discovered. */
  readonly entry: BackendConfig;
  readonly config: DiscoveryConfig;
  readonly resolver: DnsResolver;
  readonly logger: Logger;
  /** CA files read at start (see readBackendTlsFiles), for https:// entries with `tls.ca`. */
  readonly tlsFiles?: BackendTlsFiles | undefined;
}

/** DNS errors that mean "this name has no such records", not "the resolver failed". */
const NO_RECORDS = new Set(['ENODATA', 'ENOTFOUND']);

/** Which entry (id and URL) each discovered backend came from: reloads keep them. */
const origins = new WeakMap<Backend, { readonly entryId: string; readonly url: string }>();

/** The id of the configured entry a discovered backend came from; undefined if configured. */
export function discoveredFrom(backend: Backend): string | undefined {
  return origins.get(backend)?.entryId;
}

/**
 * For a reload: the entry of the new configuration (`entries`: by entry id) that still
 * discovers this backend (same id, same URL, discovery still on), so the backend stays with
 * its live state; undefined if the backend was configured, or its entry changed or left.
 */
export function stillDiscoveredBy(
  backend: Backend,
  entries: ReadonlyMap<string, BackendConfig>,
  discovers: (entry: BackendConfig) => boolean,
): BackendConfig | undefined {
  const origin = origins.get(backend);
  if (origin === undefined) return undefined;
  const entry = entries.get(origin.entryId);
  return entry !== undefined && entry.url === origin.url && discovers(entry) ? entry : undefined;
}

/** Port of a URL, with the scheme's default (80/443) when it has none. */
function urlPort(url: URL): number {
  if (url.port !== '') return Number(url.port);
  return url.protocol === 'https:' ? 443 : 80;
}

export class DnsDiscovery extends EventEmitter<DnsDiscoveryEvents> {
  readonly pool: UpstreamPool;
  readonly entry: BackendConfig;
  readonly config: DiscoveryConfig;
  /** Id of the configured entry (the placeholder backend until the first answer). */
  readonly entryId: string;
  /** The name queried (the URL host, or `discovery.name`). */
  readonly name: string;
  /** Consecutive failed resolutions (0 after a success). */
  failures = 0;
  /** Resolutions attempted, successful or not. */
  rounds = 0;

  private readonly url: URL;
  private readonly resolver: DnsResolver;
  private readonly logger: Logger;
  private readonly tlsFiles: BackendTlsFiles;
  /** Backend id → endpoint, for the backends this discovery added and still owns. */
  private current = new Map<string, Endpoint>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private nextFailureDelay: number;

  constructor(options: DnsDiscoveryOptions) {
    super();
    this.pool = options.pool;
    this.entry = options.entry;
    this.config = options.config;
    this.resolver = options.resolver;
    this.logger = options.logger;
    this.tlsFiles = options.tlsFiles ?? new Map();
    this.url = new URL(options.entry.url);
    this.entryId = options.entry.name ?? backendIdFromUrl(options.entry.url);
    this.name = options.config.name ?? this.url.hostname.replace(/^\[|\]$/g, '');
    this.nextFailureDelay = options.config.minInterval;
  }

  /** Ids of the backends currently discovered. */
  backendIds(): string[] {
    return [...this.current.keys()];
  }

  /** Runs the first resolution, then keeps resolving in the background until close(). */
  async start(): Promise<void> {
    this.schedule(await this.guardedRound());
  }

  /** Stops resolving. The pool keeps its backends (closing the pool closes them). */
  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(delay: number): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      void this.guardedRound().then((next) => this.schedule(next));
    }, delay);
    this.timer.unref();
  }

  /**
   * round(), never rejecting: resolution errors are handled inside it; anything else (a
   * backend that cannot be built) is logged and the loop goes on after `interval`.
   */
  private async guardedRound(): Promise<number> {
    try {
      return await this.round();
    } catch (error) {
      this.logger.error(
        { pool: this.pool.name, name: this.name, err: error },
        'dns discovery: cannot apply the answer',
      );
      return this.config.interval;
    }
  }

  /** One resolution and its application to the pool; returns the delay until the next one. */
  async round(): Promise<number> {
    this.rounds++;
    let endpoints: Endpoint[];
    let ttlMs: number;
    try {
      ({ endpoints, ttlMs } = await this.resolve());
    } catch (error) {
      if (this.closed) return this.config.interval;
      this.failures++;
      const delay = this.nextFailureDelay;
      this.nextFailureDelay = Math.min(this.config.interval, delay * 2);
      this.logger.warn(
        {
          pool: this.pool.name,
          name: this.name,
          code: (error as NodeJS.ErrnoException).code,
          err: error instanceof Error ? error.message : String(error),
          failures: this.failures,
          keeping: this.current.size > 0 ? this.current.size : 'configured entry',
          retryInMs: delay,
        },
        'dns discovery: resolution failed; keeping the last known backends',
      );
      return delay;
    }
    if (this.closed) return this.config.interval;
    if (this.failures > 0) {
      this.logger.info(
        { pool: this.pool.name, name: this.name, after: this.failures },
        'dns discovery: resolving again',
      );
    }
    this.failures = 0;
    this.nextFailureDelay = this.config.minInterval;
    this.apply(endpoints);
    return Math.min(this.config.interval, Math.max(this.config.minInterval, ttlMs));
  }

  /** Resolves the entry to endpoints; throws when nothing usable came back. */
  private async resolve(): Promise<{ endpoints: Endpoint[]; ttlMs: number }> {
    if (this.config.type === 'srv') return this.resolveSrv();
    const result = await this.resolveHost(this.name, urlPort(this.url));
    if (!result.answered || result.endpoints.length === 0) {
      throw result.error ?? noRecords(this.name);
    }
    return result;
  }

  private async resolveSrv(): Promise<{ endpoints: Endpoint[]; ttlMs: number }> {
    const records = await this.resolver.resolveSrv(this.name);
    if (records.length === 0) throw noRecords(this.name);
    // RFC 2782: only the lowest priority value is used while it has targets.
    const best = Math.min(...records.map((r) => r.priority));
    const targets = records.filter((r) => r.priority === best);
    const results = await Promise.all(targets.map((t) => this.resolveHost(t.name, t.port)));
    const endpoints = results.flatMap((r) => r.endpoints);
    if (endpoints.length === 0 || !results.some((r) => r.answered)) {
      throw results.find((r) => r.error)?.error ?? noRecords(this.name);
    }
    return { endpoints, ttlMs: Math.min(...results.map((r) => r.ttlMs)) };
  }

  /**
   * A and/or AAAA records of `host` as endpoints on `port`. A family whose query fails (other
   * than "no such records") keeps the addresses it had, so one flaky query does not remove
   * half the backends.
   */
  private async resolveHost(
    host: string,
    port: number,
  ): Promise<{
    endpoints: Endpoint[];
    ttlMs: number;
    error: Error | undefined;
    answered: boolean;
  }> {
    const literal = isIP(host);
    if (literal !== 0) {
      return {
        endpoints: [{ host, address: host, port, family: literal as 4 | 6 }],
        ttlMs: this.config.interval,
        error: undefined,
        answered: true,
      };
    }
    const families: (4 | 6)[] =
      this.config.family === 'ipv4' ? [4] : this.config.family === 'ipv6' ? [6] : [4, 6];
    const answers = await Promise.allSettled(
      families.map((family) =>
        family === 4
          ? this.resolver.resolve4(host, { ttl: true })
          : this.resolver.resolve6(host, { ttl: true }),
      ),
    );
    const endpoints: Endpoint[] = [];
    let ttlMs = this.config.interval;
    let error: Error | undefined;
    // True once a server gave an answer (records, or "none of that type"), not an error.
    let answered = false;
    answers.forEach((answer, index) => {
      const family = families[index] as 4 | 6;
      if (answer.status === 'fulfilled') {
        answered = true;
        for (const record of answer.value) {
          endpoints.push({ host, address: record.address, port, family });
          ttlMs = Math.min(ttlMs, record.ttl * 1000);
        }
        return;
      }
      const reason = answer.reason as NodeJS.ErrnoException;
      error ??= reason;
      if (NO_RECORDS.has(reason.code ?? '')) {
        answered = true;
        return;
      }
      for (const kept of this.current.values()) {
        if (kept.host === host && kept.family === family && kept.port === port)
          endpoints.push(kept);
      }
    });
    return { endpoints, ttlMs, error, answered };
  }

  /** Backend id of an endpoint: `<entry name or host>@<address>:<port>`. */
  private idOf(endpoint: Endpoint): string {
    const prefix = this.entry.name ?? this.url.hostname;
    return `${prefix}@${formatAddress(endpoint.address, endpoint.port)}`;
  }

  /** The configured entry with the endpoint's address in place of the name. */
  private configOf(endpoint: Endpoint, id: string): BackendConfig {
    const hostPort = formatAddress(endpoint.address, endpoint.port);
    const url =
      this.url.protocol === 'http:' || this.url.protocol === 'https:'
        ? new URL(`${this.url.protocol}//${hostPort}`).origin
        : `${this.url.protocol}//${hostPort}`;
    const config: BackendConfig = { ...this.entry, url, name: id };
    if (this.url.protocol === 'https:') {
      // The certificate names the service, not the address: SNI and verification keep the
      // name. A backend's `tls` replaces the pool's as a whole, hence the merge here.
      const tls = this.entry.tls ?? this.pool.config.tls;
      config.tls = {
        insecureSkipVerify: false,
        ...tls,
        servername: tls?.servername ?? endpoint.host,
      };
    }
    return config;
  }

  /** Makes the pool's discovered backends match `endpoints`. */
  private apply(endpoints: readonly Endpoint[]): void {
    const wanted = new Map<string, Endpoint>();
    for (const endpoint of endpoints) wanted.set(this.idOf(endpoint), endpoint);
    const added: string[] = [];
    const removed: string[] = [];
    for (const [id, endpoint] of wanted) {
      if (this.current.has(id)) continue;
      const backend = createBackend(this.configOf(endpoint, id), this.pool.config, this.tlsFiles);
      origins.set(backend, { entryId: this.entryId, url: this.entry.url });
      if (this.pool.addBackend(backend) !== backend) void backend.close();
      added.push(id);
    }
    for (const id of this.current.keys()) if (!wanted.has(id)) removed.push(id);
    // The configured entry stands in only until the first answer.
    const placeholder = this.pool.backend(this.entryId);
    if (placeholder !== undefined && !origins.has(placeholder) && wanted.size > 0) {
      removed.push(this.entryId);
    }
    this.current = wanted;
    for (const id of removed) this.retire(id);
    if (added.length === 0 && removed.length === 0) return;
    this.logger.info(
      { pool: this.pool.name, name: this.name, added, removed, backends: wanted.size },
      'dns discovery: backends changed',
    );
    this.emit('change', { added, removed });
  }

  private retire(id: string): void {
    this.pool.removeBackend(id, this.config.drain).catch((error: unknown) => {
      this.logger.error(
        { pool: this.pool.name, backend: id, err: error },
        'error while retiring backend',
      );
    });
  }
}

function noRecords(name: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`no address records for ${name}`), { code: 'ENOTFOUND' });
}
