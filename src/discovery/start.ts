/**
 * Starts DNS discovery for every backend entry that asks for it (explicitly with `discovery`,
 * or implicitly by naming its host) across the pools of a load balancer, and stops it.
 */
import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import { DEFAULT_DISCOVERY, type BackendConfig, type DiscoveryConfig } from '../config/schema.js';
import type { Logger } from '../logging/logger.js';
import type { BackendTlsFiles } from '../upstream/backend-tls.js';
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

/** The running discoveries of a load balancer. */
export class PoolDiscoveries {
  readonly discoveries: readonly DnsDiscovery[];
  /** Settles when every discovery finished its first resolution (successful or not). */
  readonly firstResolution: Promise<void>;

  constructor(pools: ReadonlyMap<string, UpstreamPool>, options: DiscoveryOptions) {
    const discoveries: DnsDiscovery[] = [];
    for (const pool of pools.values()) {
      for (const entry of pool.config.backends) {
        const config = discoveryFor(entry);
        if (config === undefined) continue;
        const discovery = new DnsDiscovery({
          pool,
          entry,
          config,
          resolver: (options.resolverFor ?? createResolver)(config),
          logger: options.logger,
          tlsFiles: options.tlsFiles,
        });
        const onChange = options.onChange;
        if (onChange !== undefined) discovery.on('change', (change) => onChange(pool, change));
        discoveries.push(discovery);
      }
    }
    this.discoveries = discoveries;
    this.firstResolution = Promise.all(discoveries.map((d) => d.start())).then(() => undefined);
  }

  /** Waits for the first answers, at most `maxMs` (a slow resolver must not block start-up). */
  async ready(maxMs = FIRST_RESOLUTION_WAIT_MS): Promise<void> {
    if (this.discoveries.length === 0) return;
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
    for (const discovery of this.discoveries) discovery.close();
  }
}
