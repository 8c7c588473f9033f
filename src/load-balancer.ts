/**
 * A running load balancer: pools built from the configuration, the strategy of each, and the
 * listeners that feed the proxy. Used by the CLI (one per worker process) and by programs that
 * embed anubis (`createLoadBalancer`).
 */
import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import { validateConfig } from './config/load.js';
import type { Config, ConfigInput, ListenerConfig, PoolConfig } from './config/schema.js';
import { readBackendTlsFiles, type BackendTlsFiles } from './upstream/backend-tls.js';
import { formatAddress, type ListenAddress } from './config/units.js';
import type { AdminServer } from './admin/server.js';
import { sameStrategy, updatePoolInPlace } from './reload/pool-update.js';
import { drainUpgradedOnRemoval } from './reload/upgraded-drain.js';
import type { Strategy } from './strategies/types.js';
import { silentLogger, type Logger } from './logging/logger.js';
import { TrustedProxies } from './proxy/headers.js';
import { HttpProxy } from './proxy/http-proxy.js';
import { mergeLimits, type ClientLimitsOptions } from './server/client-limits.js';
import { HttpListener, type HttpListenerOptions } from './server/http-listener.js';
import {
  configuredKind,
  createSpecialListener,
  listenerKind,
  redirectHandler,
  type AnyListener,
  type RequestHandler,
} from './server/create-listener.js';
import { SecureListener } from './server/secure-listener.js';
import { TcpListener } from './server/tcp-listener.js';
import { BusyPoller } from './server/busy-poller.js';
import { createStrategy } from './strategies/create.js';
import { withDecisionLog } from './strategies/decision-log.js';
import { UpstreamPool } from './upstream/pool.js';
import { upstreamClientKind } from './upstream/backend.js';
import { PoolDiscoveries } from './discovery/start.js';
import { forwardPoolEvents, type LoadBalancerEvents } from './load-balancer-events.js';

export interface LoadBalancerOptions {
  /** Where log lines go (default: silent, for library use). */
  readonly logger?: Logger;
  /** Directory against which relative custom-strategy paths resolve (default: cwd). */
  readonly baseDir?: string;
  /** Names the configuration in error messages (default: "configuration"). */
  readonly source?: string;
  /** Serve the `admin` listener from this process (default true; cluster workers: false). */
  readonly admin?: boolean;
  /** Re-reads the configuration for `POST /api/reload` (the CLI passes its file reader). */
  readonly reloadSource?: () => Promise<Config>;
}

/** What a reload changed, by name (backends as `pool/backend`). */
export interface ReloadSummary {
  readonly pools: { added: string[]; removed: string[]; kept: string[] };
  readonly backends: { added: string[]; removed: string[]; kept: string[] };
  readonly listeners: { added: string[]; removed: string[]; kept: string[] };
}

function addressText(address: ListenAddress): string {
  return formatAddress(address.host, address.port);
}

export class LoadBalancer {
  /**
   * `backend-up`, `backend-down`, `backend-added`, `backend-removed` (src/load-balancer-events.ts);
   * also through on()/once()/off() below. (Not a subclass: `listeners` is taken.)
   */
  readonly events = new EventEmitter<LoadBalancerEvents>();
  /** The configuration in force (replaced by reload()). */
  config: Config;
  /** Pools by name; a reload updates kept pools in place and adds or removes the others. */
  readonly pools: Map<string, UpstreamPool>;
  readonly listeners: AnyListener[];
  readonly logger: Logger;
  readonly baseDir: string;
  /** The admin listener when `admin` is configured and this process serves it. */
  admin: AdminServer | undefined;
  private trustedProxies: TrustedProxies;
  /** DNS discovery of backends given by host name (src/discovery/). */
  private discovery: PoolDiscoveries | undefined;
  /** `busyPolling`: the event loop polls without sleeping while requests arrive. */
  private readonly busyPoller: BusyPoller;

  private constructor(
    config: Config,
    pools: Map<string, UpstreamPool>,
    listeners: AnyListener[],
    logger: Logger,
    baseDir: string,
    trustedProxies: TrustedProxies,
    busyPoller: BusyPoller,
  ) {
    this.config = config;
    this.busyPoller = busyPoller;
    this.pools = pools;
    this.listeners = listeners;
    this.logger = logger;
    this.baseDir = baseDir;
    this.trustedProxies = trustedProxies;
  }

  /** Builds one pool and its strategy (start and reload). */
  private static async createPool(
    name: string,
    poolConfig: PoolConfig,
    baseDir: string,
    logger: Logger,
    tlsFiles: BackendTlsFiles = new Map(),
  ): Promise<UpstreamPool> {
    const strategy = withDecisionLog(
      await createStrategy(poolConfig.strategy, baseDir),
      logger,
      name,
    );
    const pool = new UpstreamPool(name, poolConfig, strategy, tlsFiles);
    pool.on('strategy-error', (error) => {
      logger.error({ pool: name, err: error }, 'strategy failed; round robin used for this pick');
    });
    logHealth(pool, name, logger);
    return pool;
  }

  /** The proxy behind a listener (start and reload): its request and upgrade handlers. */
  private static createHandler(
    config: Config,
    listenerConfig: ListenerConfig,
    pools: (name: string) => UpstreamPool,
    trustedProxies: TrustedProxies,
    busyPoller: BusyPoller,
    logger: Logger,
    protocol: 'http' | 'https' = 'http',
  ): HttpProxy {
    const proxy = new HttpProxy({
      pool: pools(listenerConfig.pool as string),
      trustedProxies,
      protocol,
      logger,
      accessLog: config.log.access,
      forwardedHeaders: config.forwardedHeaders,
      busyPoller,
    });
    return proxy;
  }

  /** Builds pools and strategies, then binds every listener. */
  static async start(config: Config, options: LoadBalancerOptions = {}): Promise<LoadBalancer> {
    const logger = options.logger ?? silentLogger();
    const baseDir = options.baseDir ?? process.cwd();
    const pools = new Map<string, UpstreamPool>();
    const tlsFiles = await readBackendTlsFiles(config, baseDir);
    for (const [name, poolConfig] of Object.entries(config.pools)) {
      pools.set(name, await LoadBalancer.createPool(name, poolConfig, baseDir, logger, tlsFiles));
    }
    const trustedProxies = new TrustedProxies(config.trustedProxies);
    const busyPoller = new BusyPoller(config.busyPolling);
    const poolByName = (name: string): UpstreamPool => pools.get(name) as UpstreamPool;
    const listeners: AnyListener[] = [];
    for (const [index, listenerConfig] of config.listeners.entries()) {
      // TLS, h2c, redirect and TCP listeners (src/server/create-listener.ts).
      // One proxy per protocol, shared by the request and Upgrade handlers.
      const proxies = new Map<'http' | 'https', HttpProxy>();
      const proxyFor = (protocol: 'http' | 'https'): HttpProxy => {
        let proxy = proxies.get(protocol);
        if (proxy === undefined) {
          proxy = LoadBalancer.createHandler(
            config,
            listenerConfig,
            poolByName,
            trustedProxies,
            busyPoller,
            logger,
            protocol,
          );
          proxies.set(protocol, proxy);
        }
        return proxy;
      };
      const special = await createSpecialListener(listenerConfig, {
        index,
        pool: listenerConfig.pool === undefined ? undefined : poolByName(listenerConfig.pool),
        baseDir,
        logger,
        httpHandler: (protocol) => proxyFor(protocol).handleRequest,
        clientLimits: (protocol) =>
          clientLimitsOf(config, listenerConfig, proxyFor(protocol), logger),
      });
      if (special !== undefined) {
        listeners.push(special);
        continue;
      }
      const proxy = LoadBalancer.createHandler(
        config,
        listenerConfig,
        poolByName,
        trustedProxies,
        busyPoller,
        logger,
      );
      listeners.push(new HttpListener(listenerOptions(config, listenerConfig, proxy, logger)));
    }
    const balancer = new LoadBalancer(
      config,
      pools,
      listeners,
      logger,
      baseDir,
      trustedProxies,
      busyPoller,
    );
    for (const pool of pools.values()) {
      forwardPoolEvents(pool, balancer.events);
      drainUpgradedOnRemoval(pool, () => balancer.config.drainTimeout, logger);
    }
    const fellBack = Object.entries(config.pools)
      .filter(([, pool]) => pool.client === 'anubis' && upstreamClientKind('anubis') === 'undici')
      .map(([name]) => name);
    if (fellBack.length > 0) {
      logger.warn(
        { pools: fellBack, node: process.version },
        "Node's built-in HTTP parser is not reachable: these pools use undici as their client",
      );
    }
    balancer.discovery = new PoolDiscoveries(pools, { logger, tlsFiles });
    try {
      await balancer.discovery.ready();
      for (const listener of listeners) {
        const bound = await listener.listen();
        logger.info({ address: `${bound.address}:${bound.port}` }, 'listening');
      }
      if (config.admin !== undefined && options.admin !== false) {
        // Loaded here, not at import: the admin server pulls in prom-client and the dashboard.
        const { startLocalAdmin } = await import('./admin/local.js');
        balancer.admin = await startLocalAdmin(balancer, config.admin, options.reloadSource);
      }
    } catch (error) {
      await balancer.close(0);
      throw error;
    }
    return balancer;
  }

  /** Listens to a load balancer event (see LoadBalancerEvents). */
  on<E extends keyof LoadBalancerEvents>(
    event: E,
    listener: (...args: LoadBalancerEvents[E]) => void,
  ): this {
    // The cast: TypeScript cannot narrow EventEmitter's conditional listener type for a generic E.
    this.events.on(event, listener as never);
    return this;
  }

  /** Listens to the next occurrence of an event. */
  once<E extends keyof LoadBalancerEvents>(
    event: E,
    listener: (...args: LoadBalancerEvents[E]) => void,
  ): this {
    this.events.once(event, listener as never);
    return this;
  }

  /** Removes a listener added with on() or once(). */
  off<E extends keyof LoadBalancerEvents>(
    event: E,
    listener: (...args: LoadBalancerEvents[E]) => void,
  ): this {
    this.events.off(event, listener as never);
    return this;
  }

  /** Bound addresses of the listeners, in configuration order. */
  addresses(): AddressInfo[] {
    return this.listeners.map((l) => l.boundAddress());
  }

  /**
   * Applies a new configuration without a restart and without failing a request: pools and
   * backends that stay keep their objects and live state (src/reload/pool-update.ts), new
   * listeners are bound before anything changes (a bind error leaves the old configuration
   * running), removed listeners drain like a graceful stop, removed backends drain up to
   * `drainTimeout`. Settings of a kept listener other than its pool need a restart.
   */
  async reload(next: Config): Promise<ReloadSummary> {
    const logger = this.logger;
    const drainMs = next.drainTimeout;
    // 1. Everything that can fail, before anything changes: strategies, new pools, new binds.
    const tlsFiles = await readBackendTlsFiles(next, this.baseDir);
    const newStrategies = new Map<string, Strategy>();
    const addedPools = new Map<string, UpstreamPool>();
    for (const [name, poolConfig] of Object.entries(next.pools)) {
      const current = this.pools.get(name);
      if (current === undefined) {
        addedPools.set(
          name,
          await LoadBalancer.createPool(name, poolConfig, this.baseDir, logger, tlsFiles),
        );
      } else if (!sameStrategy(current.config.strategy, poolConfig.strategy)) {
        newStrategies.set(
          name,
          withDecisionLog(await createStrategy(poolConfig.strategy, this.baseDir), logger, name),
        );
      }
    }
    const poolFor = (name: string): UpstreamPool =>
      (addedPools.get(name) ?? this.pools.get(name)) as UpstreamPool;
    const trustedProxies = new TrustedProxies(next.trustedProxies);
    const byAddress = new Map<string, AnyListener>();
    for (const listener of this.listeners) byAddress.set(listener.addressText, listener);
    const kept: [AnyListener, HttpProxy][] = [];
    const bound: AnyListener[] = [];
    /** Certificates of kept TLS listeners, read now, installed at commit. */
    const certificateSwaps: (() => void)[] = [];
    /** Kept redirect listeners and their (possibly new) redirect handler. */
    const redirects: [HttpListener, RequestHandler][] = [];
    /** Every listener kept at its address, in configuration order. */
    const retained: AnyListener[] = [];
    const summary: ReloadSummary = {
      pools: { added: [...addedPools.keys()], removed: [], kept: [] },
      backends: { added: [], removed: [], kept: [] },
      listeners: { added: [], removed: [], kept: [] },
    };
    try {
      for (const [index, listenerConfig] of next.listeners.entries()) {
        const proxy = LoadBalancer.createHandler(
          next,
          listenerConfig,
          poolFor,
          trustedProxies,
          this.busyPoller,
          logger,
          listenerConfig.tls === undefined ? 'http' : 'https',
        );
        const existing = byAddress.get(addressText(listenerConfig.address));
        if (existing !== undefined) {
          byAddress.delete(existing.addressText);
          summary.listeners.kept.push(existing.addressText);
          retained.push(existing);
          const kind = listenerKind(existing);
          const configured = configuredKind(listenerConfig);
          if (kind !== configured) {
            // mode, tls, http2 or redirectToHttps changed: it serves as before until a restart.
            logger.warn(
              { address: existing.addressText, running: kind, configured },
              'listener kind changed: restart to apply; it keeps serving as before',
            );
            continue;
          }
          if (kind === 'redirect') {
            redirects.push([existing as HttpListener, redirectHandler(listenerConfig)]);
            continue;
          }
          if (
            existing instanceof HttpListener &&
            existing.fastPathRequested !== listenerConfig.fastPath
          ) {
            logger.warn(
              { address: existing.addressText, fastPath: listenerConfig.fastPath },
              'listener fastPath changed: restart to apply; it keeps serving as before',
            );
          }
          kept.push([existing, proxy]);
          if (existing instanceof SecureListener && listenerConfig.tls !== undefined) {
            certificateSwaps.push(
              await existing.prepareCertificates(listenerConfig.tls, this.baseDir),
            );
          }
          continue;
        }
        const listener =
          (await createSpecialListener(listenerConfig, {
            index,
            pool: listenerConfig.pool === undefined ? undefined : poolFor(listenerConfig.pool),
            baseDir: this.baseDir,
            logger,
            httpHandler: () => proxy.handleRequest,
            clientLimits: () => clientLimitsOf(next, listenerConfig, proxy, logger),
          })) ?? new HttpListener(listenerOptions(next, listenerConfig, proxy, logger));
        await listener.listen();
        bound.push(listener);
        summary.listeners.added.push(listener.addressText);
      }
    } catch (error) {
      await Promise.all(bound.map((l) => l.close(0)));
      await Promise.all([...addedPools.values()].map((p) => p.close()));
      throw error;
    }
    // 2. Commit: nothing below throws or awaits before the new configuration is in force.
    for (const [name, poolConfig] of Object.entries(next.pools)) {
      const pool = this.pools.get(name);
      if (pool === undefined) continue;
      const update = updatePoolInPlace(
        pool,
        poolConfig,
        newStrategies.get(name),
        drainMs,
        logger,
        tlsFiles,
      );
      summary.pools.kept.push(name);
      for (const key of ['added', 'removed', 'kept'] as const) {
        summary.backends[key].push(...update[key].map((id) => `${name}/${id}`));
      }
    }
    for (const [listener, proxy] of kept) {
      if (listener instanceof TcpListener) {
        listener.proxy.setPool(proxy.options.pool);
        continue;
      }
      listener.setRequestHandler(proxy.handleRequest);
      if (listener instanceof HttpListener || listener instanceof SecureListener) {
        listener.setUpgradeHandler(proxy.handleUpgrade);
      }
    }
    for (const swap of certificateSwaps) swap();
    for (const [listener, handler] of redirects) listener.setRequestHandler(handler);
    const removedListeners = [...byAddress.values()];
    this.listeners.splice(0, this.listeners.length, ...retained, ...bound);
    const removedPools: UpstreamPool[] = [];
    for (const [name, pool] of this.pools) {
      if (!(name in next.pools)) {
        removedPools.push(pool);
        this.pools.delete(name);
        summary.pools.removed.push(name);
      }
    }
    for (const [name, pool] of addedPools) {
      this.pools.set(name, pool);
      forwardPoolEvents(pool, this.events);
      drainUpgradedOnRemoval(pool, () => this.config.drainTimeout, logger);
    }
    this.trustedProxies = trustedProxies;
    this.busyPoller.setWindow(next.busyPolling);
    this.config = next;
    // DNS discovery follows the new entries (in the background; errors are logged by it).
    void this.discovery?.reconcile(this.pools, tlsFiles);
    summary.listeners.removed.push(...removedListeners.map((l) => l.addressText));
    logger.info(summary, 'configuration reloaded');
    // 3. Retire what left, in the background, each up to the drain timeout.
    for (const listener of removedListeners) {
      listener.close(drainMs).catch((error: unknown) => {
        logger.error({ err: error }, 'error while closing a removed listener');
      });
    }
    for (const pool of removedPools) {
      Promise.all(pool.backends.map((b) => pool.removeBackend(b.id, drainMs))).catch(
        (error: unknown) => logger.error({ err: error }, 'error while retiring a removed pool'),
      );
    }
    return summary;
  }

  /**
   * Stops accepting, drains in-flight requests (at most `drainMs`), closes backend pools. A
   * second call (a signal during a fatal-error drain, say) joins the first one's promise.
   */
  close(drainMs = 10_000): Promise<void> {
    this.closing ??= this.closeOnce(drainMs);
    return this.closing;
  }

  private closing: Promise<void> | undefined;

  private async closeOnce(drainMs: number): Promise<void> {
    this.busyPoller.close();
    this.discovery?.close();
    await this.admin?.close();
    await Promise.all(this.listeners.map((l) => l.close(drainMs)));
    await Promise.all([...this.pools.values()].map((p) => p.close()));
  }
}

/** Logs health changes of a pool's backends and its panic/backup/down mode, with the reason. */
function logHealth(pool: UpstreamPool, name: string, logger: Logger): void {
  pool.on('backend-health', ({ backend, healthy, reason }) => {
    const fields = { pool: name, backend: backend.id, healthy, reason };
    if (healthy) logger.info(fields, 'backend is up');
    else logger.warn(fields, 'backend is down');
  });
  pool.on('mode', ({ mode, previous, healthyShare }) => {
    const fields = {
      pool: name,
      mode,
      previous,
      healthyShare: Math.round(healthyShare * 100) / 100,
    };
    if (mode === 'normal') logger.info(fields, `pool left ${previous} mode`);
    else logger.warn(fields, `pool entered ${mode} mode`);
  });
}

/** Validates a configuration object and starts a load balancer from it. */
export async function createLoadBalancer(
  config: ConfigInput,
  options: LoadBalancerOptions = {},
): Promise<LoadBalancer> {
  return LoadBalancer.start(validateConfig(config, options.source ?? 'configuration'), options);
}

/**
 * A listener's options: its proxy's handlers, and its client-side limits (the top-level
 * `limits` with the listener's own `limits` over them; docs/security.md).
 */
function listenerOptions(
  config: Config,
  listenerConfig: ListenerConfig,
  proxy: HttpProxy,
  logger: Logger,
): HttpListenerOptions {
  return {
    address: listenerConfig.address,
    onRequest: proxy.handleRequest,
    fastPath: listenerConfig.fastPath,
    acceptSockets: listenerConfig.acceptSockets,
    ...clientLimitsOf(config, listenerConfig, proxy, logger),
  };
}

/** The request guard's inputs for a listener (plain, TLS or h2c): limits, body limit, Upgrades. */
function clientLimitsOf(
  config: Config,
  listenerConfig: ListenerConfig,
  proxy: HttpProxy,
  logger: Logger,
): Omit<ClientLimitsOptions, 'connectionCap'> & { onUpgrade: HttpProxy['handleUpgrade'] } {
  const pool = proxy.options.pool;
  return {
    onUpgrade: proxy.handleUpgrade,
    limits: mergeLimits(config.limits, listenerConfig.limits),
    maxBodySize: () => pool.config.maxBodySize,
    logger,
  };
}
