/**
 * The control plane of a load balancer running in this process (`workers: 1`, or a library
 * user): snapshots read the pools directly, changes apply at once.
 */
import type { AdminConfig } from '../config/admin-schema.js';
import type { Config } from '../config/schema.js';
import { ReloadUnavailableError } from '../errors.js';
import type { LoadBalancer } from '../load-balancer.js';
import { restartOnlyChanges } from '../reload/restart-only.js';
import { serialQueueOf } from '../reload/serial.js';
import {
  applyChange,
  explainPool,
  type ChangeResult,
  type ControlPlane,
  type ExplainResult,
  type ReloadAnswer,
  type RuntimeChange,
} from './control.js';
import { Sampler } from './sampler.js';
import { AdminServer } from './server.js';
import { takeSnapshot } from './snapshot.js';

export class LocalControl implements ControlPlane {
  readonly sampler: Sampler;
  private readonly balancer: LoadBalancer;
  private readonly reloadSource: (() => Promise<Config>) | undefined;

  constructor(balancer: LoadBalancer, reloadSource?: () => Promise<Config>) {
    this.balancer = balancer;
    this.reloadSource = reloadSource;
    this.sampler = new Sampler(() => takeSnapshot(balancer));
  }

  async change(change: RuntimeChange): Promise<ChangeResult> {
    const result = await applyChange(this.balancer, change);
    await this.sampler.sample(true);
    return result;
  }

  reload(): Promise<ReloadAnswer> {
    return serialQueueOf(this.balancer).run(() => this.reloadNow());
  }

  private async reloadNow(): Promise<ReloadAnswer> {
    if (this.reloadSource === undefined) throw new ReloadUnavailableError();
    const next = await this.reloadSource();
    const restartNeeded = restartOnlyChanges(this.balancer.config, next);
    const summary = await this.balancer.reload(next);
    if (restartNeeded.length > 0) {
      this.balancer.logger.warn({ settings: restartNeeded }, 'changed settings need a restart');
    }
    await this.sampler.sample(true);
    return { ...summary, restartNeeded };
  }

  explain(pool: string): Promise<ExplainResult> {
    return Promise.resolve(explainPool(this.balancer, pool));
  }
}

/** Starts the admin listener of a single-process load balancer. */
export async function startLocalAdmin(
  balancer: LoadBalancer,
  config: AdminConfig,
  reloadSource?: () => Promise<Config>,
): Promise<AdminServer> {
  const server = new AdminServer(config, new LocalControl(balancer, reloadSource), balancer.logger);
  await server.listen();
  return server;
}
