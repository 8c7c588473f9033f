/**
 * Multi-core operation with node:cluster. `workers: auto` runs one worker process per core
 * (availableParallelism()); each worker runs a full load balancer and the primary
 * (./cluster-primary.ts) spreads incoming connections across them, restarts a worker that
 * dies, serves the admin listener and aggregates the workers' stats.
 *
 * Why node:cluster and not SO_REUSEPORT listeners: Node 20 has no `reusePort` option for
 * net.Server.listen (it arrived in Node 22.12 / 23.1, and only on Linux and some BSDs), so
 * cluster is the only way that works on every supported Node. bench/cluster-vs-reuseport.ts
 * measures both on Node 24; docs/operations.md has the figures.
 */
import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';

/** Number of worker processes for a `workers` setting. */
export function resolveWorkerCount(setting: 'auto' | number): number {
  return setting === 'auto' ? availableParallelism() : setting;
}

/** True in a worker process forked by the primary. */
export function isClusterWorker(): boolean {
  return cluster.isWorker;
}
