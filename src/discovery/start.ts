/**
 * Starts DNS discovery for every backend entry that asks for it (explicitly with `discovery`,
 * or implicitly by naming its host) across the pools of a load balancer, and stops it.
 */
import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import { DEFAULT_DISCOVERY, type BackendConfig, type DiscoveryConfig } from '../config/schema.js';
import type { Logger } from '../logging/logger.js';
import type { BackendTlsFiles } from '../upstream/backend-tls.js';
import { backendIdFromUrl } from '../upstream/backend.js';
import type { UpstreamPool } from '../upstream/pool.js';
import { DnsDiscovery, type DiscoveryChange, type DnsResolver } from './dns.js';

/** Per query try; c-ares doubles it on the second try. */
const RESOLVER_TIMEOUT_MS = 2_000;
const RESOLVER_TRIES = 2;
/** Start-up waits at most this long for first answers before listening anyway. */
export const FIRST_RESOLUTION_WAIT_MS = 3_000;

/** True for hosts that DNS discovery leaves alone: IP literals and localhost. */
function isLocalOrLiteral(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return isIP(host) !== 0 || host === 'localhost' || host.endsWith('.localhost');
}

/** The discovery settings of a backend entry, or undefined when it is a single backend. */
export function discoveryFor(entry: BackendConfig): DiscoveryConfig | undefined {
  if (entry.discovery !== undefined) {
    return entry.discovery.type === 'none' ? undefined : entry.discovery;
  }
  return isLocalOrLiteral(new URL(entry.url).hostname) ? undefined : DEFAULT_DISCOVERY;
}

/** A resolver using the configured servers, or the system's (/etc/resolv.conf). */
export function createResolver(config: DiscoveryConfig): DnsResolver {
  const resolver = new Resolver({ timeout: RESOLVER_TIMEOUT_MS, tries: RESOLVER_TRIES });
  if (config.servers !== undefined) resolver.setServers(config.servers);
  return resolver;
}

export interface DiscoveryOptions {
  readonly logger: Logger;
  readonly tlsFiles?: BackendTlsFiles | undefined;
  /** Builds the resolver of an entry (tests, embedding programs); default createResolver. */
  readonly resolverFor?: ((config: DiscoveryConfig) => DnsResolver) | undefined;
  /** Told after any discovery changed a pool's membership (health checks follow it). */
  readonly onChange?: ((pool: UpstreamPool, change: DiscoveryChange) => void) | undefined;
}

/** Identity of an entry's discovery: pool and entry id. */
function keyOf(pool: UpstreamPool, entry: BackendConfig): string {
  return `${pool.name}\u0000${entry.name ?? backendIdFromUrl(entry.url)}`;
}

/** The running discoveries of a load balancer. */
export class PoolDiscoveries {
  /** Settles when every discovery finished its first resolution (successful or not). */
  readonly firstResolution: Promise<void>;
  private readonly running = new Map<string, { discovery: DnsDiscovery; signature: string }>();
  private readonly options: DiscoveryOptions;

  constructor(pools: ReadonlyMap<string, UpstreamPool>, options: DiscoveryOptions) {
    this.options = options;
    this.firstResolution = this.reconcile(pools);
  }

  get discoveries(): DnsDiscovery[] {
    return [...this.running.values()].map((r) => r.discovery);
  }

  /**
   * Makes the running discoveries match the pools' entries (start, and after a reload): an
   * entry whose settings changed gets a new discovery, which adopts the backends the reload
   * kept; a removed entry's discovery stops. Resolves after the first resolution of those
   * started.
   */
  reconcile(
    pools: ReadonlyMap<string, UpstreamPool>,
    tlsFiles = this.options.tlsFiles,
  ): Promise<void> {
    const seen = new Set<string>();
    const started: Promise<void>[] = [];
    for (const pool of pools.values()) {
      for (const entry of pool.config.backends) {
        const config = discoveryFor(entry);
        if (config === undefined) continue;
        const key = keyOf(pool, entry);
        const signature = JSON.stringify(entry);
        seen.add(key);
        const current = this.running.get(key);
        if (
          current !== undefined &&
          current.signature === signature &&
          current.discovery.pool === pool
        ) {
          continue;
        }
        current?.discovery.close();
        const discovery = new DnsDiscovery({
          pool,
          entry,
          config,
          resolver: (this.options.resolverFor ?? createResolver)(config),
          logger: this.options.logger,
          tlsFiles,
        });
        const onChange = this.options.onChange;
        if (onChange !== undefined) discovery.on('change', (change) => onChange(pool, change));
        this.running.set(key, { discovery, signature });
        started.push(discovery.start());
      }
    }
    for (const [key, { discovery }] of this.running) {
      if (seen.has(key)) continue;
      discovery.close();
      this.running.delete(key);
    }
    return Promise.all(started).then(() => undefined);
  }

  /** Waits for the first answers, at most `maxMs` (a slow resolver must not block start-up). */
  async ready(maxMs = FIRST_RESOLUTION_WAIT_MS): Promise<void> {
    if (this.running.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, maxMs);
      timer.unref();
    });
    await Promise.race([this.firstResolution, timeout]);
    clearTimeout(timer);
  }

  /** Stops every discovery (their backends stay in the pools until the pools close). */
  close(): void {
    for (const { discovery } of this.running.values()) discovery.close();
    this.running.clear();
  }
}
