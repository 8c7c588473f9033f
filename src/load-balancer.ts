/**
 * A running load balancer: pools built from the configuration, the strategy of each, and the
 * listeners that feed the proxy. Used by the CLI (one per worker process) and by programs that
 * embed anubis (`createLoadBalancer`).
 */
import type { AddressInfo } from 'node:net';
import { validateConfig } from './config/load.js';
import type { Config, ConfigInput } from './config/schema.js';
import { silentLogger, type Logger } from './logging/logger.js';
import { TrustedProxies } from './proxy/headers.js';
import { HttpProxy } from './proxy/http-proxy.js';
import { HttpListener } from './server/http-listener.js';
import { createStrategy } from './strategies/create.js';
import { UpstreamPool } from './upstream/pool.js';

export interface LoadBalancerOptions {
  /** Where log lines go (default: silent, for library use). */
  readonly logger?: Logger;
  /** Directory against which relative custom-strategy paths resolve (default: cwd). */
  readonly baseDir?: string;
  /** Names the configuration in error messages (default: "configuration"). */
  readonly source?: string;
}

export class LoadBalancer {
  readonly config: Config;
  readonly pools: ReadonlyMap<string, UpstreamPool>;
  readonly listeners: readonly HttpListener[];
  readonly logger: Logger;

  private constructor(
    config: Config,
    pools: Map<string, UpstreamPool>,
    listeners: HttpListener[],
    logger: Logger,
  ) {
    this.config = config;
    this.pools = pools;
    this.listeners = listeners;
    this.logger = logger;
  }

  /** Builds pools and strategies, then binds every listener. */
  static async start(config: Config, options: LoadBalancerOptions = {}): Promise<LoadBalancer> {
    const logger = options.logger ?? silentLogger();
    const baseDir = options.baseDir ?? process.cwd();
    const pools = new Map<string, UpstreamPool>();
    for (const [name, poolConfig] of Object.entries(config.pools)) {
      const strategy = await createStrategy(poolConfig.strategy, baseDir);
      const pool = new UpstreamPool(name, poolConfig, strategy);
      pool.on('strategy-error', (error) => {
        logger.error({ pool: name, err: error }, 'strategy failed; round robin used for this pick');
      });
      pools.set(name, pool);
    }
    const trustedProxies = new TrustedProxies(config.trustedProxies);
    const listeners = config.listeners.map((listenerConfig) => {
      const proxy = new HttpProxy({
        pool: pools.get(listenerConfig.pool) as UpstreamPool,
        trustedProxies,
        protocol: 'http',
        logger,
        accessLog: config.log.access,
      });
      return new HttpListener({ address: listenerConfig.address, onRequest: proxy.handleRequest });
    });
    const balancer = new LoadBalancer(config, pools, listeners, logger);
    try {
      for (const listener of listeners) {
        const bound = await listener.listen();
        logger.info({ address: `${bound.address}:${bound.port}` }, 'listening');
      }
    } catch (error) {
      await balancer.close(0);
      throw error;
    }
    return balancer;
  }

  /** Bound addresses of the listeners, in configuration order. */
  addresses(): AddressInfo[] {
    return this.listeners.map((l) => l.boundAddress());
  }

  /** Stops accepting, drains in-flight requests (at most `drainMs`), closes backend pools. */
  async close(drainMs = 10_000): Promise<void> {
    await Promise.all(this.listeners.map((l) => l.close(drainMs)));
    await Promise.all([...this.pools.values()].map((p) => p.close()));
  }
}

/** Validates a configuration object and starts a load balancer from it. */
export async function createLoadBalancer(
  config: ConfigInput,
  options: LoadBalancerOptions = {},
): Promise<LoadBalancer> {
  return LoadBalancer.start(validateConfig(config, options.source ?? 'configuration'), options);
}
