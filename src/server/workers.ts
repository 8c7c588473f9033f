/**
 * Multi-core operation with node:cluster: the primary process forks one worker per core (or
 * the configured count); each worker runs a full load balancer and the primary spreads
 * incoming connections across them. A worker that dies is restarted (with a growing delay if
 * it keeps dying); SIGTERM/SIGINT to the primary drains every worker, then exits.
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { Logger } from '../logging/logger.js';

/** Number of worker processes for a `workers` setting. */
export function resolveWorkerCount(setting: 'auto' | number): number {
  return setting === 'auto' ? availableParallelism() : setting;
}

/** True in a worker process forked by the primary. */
export function isClusterWorker(): boolean {
  return cluster.isWorker;
}

/**
 * Runs the primary: forks `count` workers and keeps them alive until a stop signal.
 * Resolves with the exit code once every worker has exited after a stop.
 */
export function runPrimary(count: number, logger: Logger): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false;
    const restarts = new Map<number, number>();

    const fork = (slot: number): Worker => {
      const worker = cluster.fork({ ANUBIS_WORKER_SLOT: String(slot) });
      worker.on('exit', (code, signal) => {
        if (stopping) {
          if (Object.keys(cluster.workers ?? {}).length === 0) resolve(0);
          return;
        }
        const attempts = (restarts.get(slot) ?? 0) + 1;
        restarts.set(slot, attempts);
        const delay = Math.min(30_000, 100 * 2 ** Math.min(attempts - 1, 8));
        logger.error({ worker: slot, code, signal, restartInMs: delay }, 'worker died; restarting');
        setTimeout(() => {
          if (!stopping) fork(slot);
        }, delay).unref();
      });
      worker.on('listening', () => {
        // A worker that came up serving counts as healthy again: reset its backoff.
        restarts.set(slot, 0);
      });
      return worker;
    };

    for (let slot = 0; slot < count; slot++) fork(slot);
    logger.info({ workers: count }, 'started workers');

    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'stopping: draining workers');
      const workers = Object.values(cluster.workers ?? {}).filter(
        (w): w is Worker => w !== undefined,
      );
      if (workers.length === 0) resolve(0);
      for (const worker of workers) worker.process.kill('SIGTERM');
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}
