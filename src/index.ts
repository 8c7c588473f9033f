/**
 * The library API: embed anubis in a Node program.
 *
 *   import { createLoadBalancer } from 'anubis';
 *   const lb = await createLoadBalancer({ listeners: [...], pools: {...} });
 *   await lb.close();
 */
export { createLoadBalancer, LoadBalancer, type LoadBalancerOptions } from './load-balancer.js';
export type { BackendEvent, LoadBalancerEvents } from './load-balancer-events.js';
export { validateConfig, loadConfigFile } from './config/load.js';
export type {
  Config,
  ConfigInput,
  PoolConfig,
  BackendConfig,
  ListenerConfig,
  DiscoveryConfig,
  StrategySetting,
} from './config/schema.js';
export type { ProvidedStrategy } from './strategies/provided.js';
export type {
  BackendExplanation,
  BackendView,
  PickContext,
  Strategy,
  StrategyFactory,
} from './strategies/types.js';
export { isExcluded } from './strategies/types.js';
export { SecureListener } from './server/secure-listener.js';
export { TcpListener } from './server/tcp-listener.js';
export * from './errors.js';
export { VERSION } from './version.js';
