/**
 * One process (`workers: 1`): the load balancer and, when configured, its admin listener run
 * here. SIGHUP re-reads the configuration file and applies it (an invalid one is logged and
 * the running configuration stays); SIGTERM/SIGINT stop accepting, let in-flight requests
 * finish up to `drainTimeout`, close idle keep-alive connections, and resolve 0.
 */
import { LoadBalancer } from '../load-balancer.js';
import { createLogger } from '../logging/logger.js';
import { restartOnlyChanges } from '../reload/restart-only.js';
import { serialQueueOf } from '../reload/serial.js';
import type { LoadedConfig } from './cluster-primary.js';
import { exitOnUncaughtError } from './fatal-errors.js';

export async function runSingle(
  initial: LoadedConfig,
  reloadSource: (() => Promise<LoadedConfig>) | undefined,
): Promise<number> {
  const logger = createLogger(initial.config.log);
  const balancer = await LoadBalancer.start(initial.config, {
    logger,
    baseDir: initial.baseDir,
    ...(reloadSource === undefined
      ? {}
      : {
          reloadSource: async () => {
            const next = (await reloadSource()).config;
            // log.level applies on reload (log.format needs a restart).
            logger.level = next.log.level;
            return next;
          },
        }),
  });
  exitOnUncaughtError({
    logger,
    drainTimeoutMs: () => balancer.config.drainTimeout,
    drain: (ms) => balancer.close(ms),
  });
  const reload = (): void => {
    if (reloadSource === undefined) {
      logger.warn('SIGHUP ignored: not started from a configuration file');
      return;
    }
    logger.info('SIGHUP: reloading the configuration');
    serialQueueOf(balancer)
      .run(async () => {
        const next = await reloadSource();
        const restartNeeded = restartOnlyChanges(balancer.config, next.config);
        await balancer.reload(next.config);
        if (restartNeeded.length > 0) {
          logger.warn({ settings: restartNeeded }, 'changed settings need a restart');
        }
        logger.level = next.config.log.level;
      })
      .catch((error: unknown) => {
        logger.error(
          { err: error instanceof Error ? error.message : String(error) },
          'reload rejected; the running configuration stays',
        );
      });
  };
  process.on('SIGHUP', reload);
  return new Promise((resolveExit) => {
    const stop = (signal: NodeJS.Signals): void => {
      process.off('SIGHUP', reload);
      const drainMs = balancer.config.drainTimeout;
      logger.info({ signal, drainMs }, 'stopping: draining in-flight requests');
      balancer.close(drainMs).then(
        () => {
          logger.info('stopped');
          resolveExit(0);
        },
        (error: unknown) => {
          logger.error({ err: error }, 'error while stopping');
          resolveExit(1);
        },
      );
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}
