/**
 * Runtime changes the admin API makes to pools (weight, drain / disable / enable, add and
 * remove a backend), as plain JSON values: validated with zod at the edge, applied to a load
 * balancer in this process by `applyChange`, or sent to every worker by the primary, which
 * also keeps them in order to replay to a worker that restarts. A reload starts from the file
 * again: changes not written to the configuration are gone after it.
 */
import { z } from 'zod';
import { backendSchema } from '../config/schema.js';
import { backendSchemeMismatch } from '../config/listener-rules.js';
import { AdminRequestError } from '../errors.js';
import type { LoadBalancer, ReloadSummary } from '../load-balancer.js';
import { setBackendWeight } from '../reload/pool-update.js';
import type { BackendExplanation } from '../strategies/types.js';
import { readBackendTlsFiles } from '../upstream/backend-tls.js';
import { createBackend, type UpstreamPool } from '../upstream/pool.js';
import type { Sampler } from './sampler.js';

const name = z.string().min(1).max(200);

export const backendStateSchema = z.enum(['enabled', 'draining', 'disabled']);

export const runtimeChangeSchema = z.discriminatedUnion('op', [
  z.strictObject({
    op: z.literal('weight'),
    pool: name,
    backend: name,
    weight: z.number().int().min(1).max(10_000),
  }),
  z.strictObject({ op: z.literal('state'), pool: name, backend: name, state: backendStateSchema }),
  /** `backend` is a backend entry as in the configuration: { url, weight?, name? }. */
  z.strictObject({ op: z.literal('add'), pool: name, backend: z.record(z.string(), z.unknown()) }),
  z.strictObject({ op: z.literal('remove'), pool: name, backend: name }),
]);

export type RuntimeChange = z.infer<typeof runtimeChangeSchema>;

export interface ChangeResult {
  readonly pool: string;
  readonly backend: string;
  readonly op: RuntimeChange['op'];
}

export interface ExplainResult {
  readonly pool: string;
  readonly strategy: string;
  readonly backends: readonly BackendExplanation[];
}

/** What a reload changed, and the changed settings that only a restart applies. */
export interface ReloadAnswer extends ReloadSummary {
  readonly restartNeeded: readonly string[];
}

/** What the admin HTTP server drives: one process, or the primary of a cluster. */
export interface ControlPlane {
  readonly sampler: Sampler;
  change(change: RuntimeChange): Promise<ChangeResult>;
  reload(): Promise<ReloadAnswer>;
  explain(pool: string): Promise<ExplainResult>;
}

function findPool(balancer: LoadBalancer, poolName: string): UpstreamPool {
  const pool = balancer.pools.get(poolName);
  if (pool === undefined) {
    throw new AdminRequestError(
      'ANUBIS_ADMIN_NOT_FOUND',
      `no pool ${JSON.stringify(poolName)} (pools: ${[...balancer.pools.keys()].join(', ')})`,
    );
  }
  return pool;
}

function findBackend(
  pool: UpstreamPool,
  id: string,
): NonNullable<ReturnType<UpstreamPool['backend']>> {
  const backend = pool.backend(id);
  if (backend === undefined) {
    throw new AdminRequestError(
      'ANUBIS_ADMIN_NOT_FOUND',
      `no backend ${JSON.stringify(id)} in pool ${pool.name} (backends: ${pool.backends.map((b) => b.id).join(', ')})`,
    );
  }
  return backend;
}

/** Parses the `backend` of an `add` change like a configuration entry; 400 on bad input. */
export function parseBackendEntry(input: unknown): z.output<typeof backendSchema> {
  const parsed = backendSchema.safeParse(input);
  if (!parsed.success) {
    const detail = parsed.error.issues
      .map((i) => `${i.path.length > 0 ? i.path.join('.') : 'backend'}: ${i.message}`)
      .join('; ');
    throw new AdminRequestError('ANUBIS_ADMIN_BAD_REQUEST', `invalid backend: ${detail}`);
  }
  return parsed.data;
}

/** Applies one runtime change to a load balancer in this process. */
export async function applyChange(
  balancer: LoadBalancer,
  change: RuntimeChange,
): Promise<ChangeResult> {
  const pool = findPool(balancer, change.pool);
  switch (change.op) {
    case 'weight': {
      const backend = findBackend(pool, change.backend);
      setBackendWeight(backend, change.weight);
      pool.refresh();
      balancer.logger.info(
        { pool: pool.name, backend: backend.id, weight: change.weight },
        'backend weight changed',
      );
      return { pool: pool.name, backend: backend.id, op: change.op };
    }
    case 'state': {
      const backend = findBackend(pool, change.backend);
      backend.adminState = change.state;
      pool.refresh();
      balancer.logger.info(
        { pool: pool.name, backend: backend.id, state: change.state, active: backend.active },
        'backend state changed',
      );
      return { pool: pool.name, backend: backend.id, op: change.op };
    }
    case 'add': {
      const entry = parseBackendEntry(change.backend);
      const mismatch = backendSchemeMismatch(pool.backends, entry.url);
      if (mismatch !== undefined) {
        throw new AdminRequestError(
          'ANUBIS_ADMIN_BAD_REQUEST',
          `invalid backend: url: ${mismatch}`,
        );
      }
      const tlsFiles = await readBackendTlsFiles(
        { pools: { [pool.name]: { ...pool.config, backends: [entry] } } },
        balancer.baseDir,
      );
      const backend = createBackend(entry, pool.config, tlsFiles);
      if (pool.backend(backend.id) !== undefined) {
        await backend.close();
        throw new AdminRequestError(
          'ANUBIS_ADMIN_CONFLICT',
          `pool ${pool.name} already has a backend ${JSON.stringify(backend.id)} (give another name)`,
        );
      }
      pool.addBackend(backend);
      balancer.logger.info(
        { pool: pool.name, backend: backend.id, url: backend.url },
        'backend added',
      );
      return { pool: pool.name, backend: backend.id, op: change.op };
    }
    case 'remove': {
      const backend = findBackend(pool, change.backend);
      if (pool.backends.length === 1) {
        throw new AdminRequestError(
          'ANUBIS_ADMIN_CONFLICT',
          `backend ${backend.id} is the last one of pool ${pool.name}; disable it instead`,
        );
      }
      const drainMs = balancer.config.drainTimeout;
      balancer.logger.info(
        { pool: pool.name, backend: backend.id, active: backend.active, drainMs },
        'backend removed; draining',
      );
      pool.removeBackend(backend.id, drainMs).catch((error: unknown) => {
        balancer.logger.error(
          { pool: pool.name, backend: backend.id, err: error },
          'error while retiring backend',
        );
      });
      return { pool: pool.name, backend: backend.id, op: change.op };
    }
  }
}

/** The strategy's own account of its next decision (strategies that implement explain()). */
export function explainPool(balancer: LoadBalancer, poolName: string): ExplainResult {
  const pool = findPool(balancer, poolName);
  const strategy = pool.strategy;
  if (typeof strategy.explain !== 'function') {
    throw new AdminRequestError(
      'ANUBIS_ADMIN_UNSUPPORTED',
      `strategy ${strategy.name} of pool ${pool.name} does not explain its decisions`,
    );
  }
  return { pool: pool.name, strategy: strategy.name, backends: strategy.explain() };
}
