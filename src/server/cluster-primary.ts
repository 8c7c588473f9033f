/**
 * The cluster primary (`workers` > 1): forks one worker per slot and restarts a worker that
 * dies (100 ms, doubling up to 30 s while it keeps dying, reset once it serves again); serves
 * the admin listener; spreads reloads and runtime changes to every worker; merges their
 * snapshots for the admin API and /metrics. It never touches client traffic: node:cluster
 * hands each accepted connection to a worker (round robin on Linux).
 *
 * Runtime changes (weight, drain, add/remove) are kept in order and replayed to a worker that
 * restarts, so it rejoins in the state the others are in; a reload clears them. A health hint
 * from one worker (its checks took a backend up or down) is passed on to the others.
 */
import cluster, { type Worker } from 'node:cluster';
import type { ReloadSummary } from '../load-balancer.js';
import type { Logger } from '../logging/logger.js';
import { AnubisError, ConfigError } from '../errors.js';
import type { Config } from '../config/schema.js';
import {
  type ChangeResult,
  type ControlPlane,
  type ExplainResult,
  type ReloadAnswer,
  type RuntimeChange,
} from '../admin/control.js';
import { restartOnlyChanges } from '../reload/restart-only.js';
import { SerialQueue } from '../reload/serial.js';
import { exitOnUncaughtError } from './fatal-errors.js';
import { Sampler } from '../admin/sampler.js';
import { AdminServer } from '../admin/server.js';
import { mergeSnapshots, retireSnapshot, withRetired, type Snapshot } from '../admin/snapshot.js';
import { ReloadUnavailableError } from '../errors.js';
import {
  isAnubisMessage,
  WorkerChannel,
  WorkerRequestError,
  type HealthHintMessage,
  type InitMessage,
  type ResponseMessage,
  type WorkerOp,
} from './cluster-ipc.js';

/** A validated configuration with the input it came from (sent to workers). */
export interface LoadedConfig {
  readonly config: Config;
  readonly raw: unknown;
  readonly source: string;
  readonly baseDir: string;
}

export interface PrimaryOptions {
  readonly count: number;
  readonly logger: Logger;
  readonly initial: LoadedConfig;
  /** Re-reads the configuration file; undefined when there is none (quick start). */
  readonly reload: (() => Promise<LoadedConfig>) | undefined;
}

const SNAPSHOT_TIMEOUT_MS = 2_000;
const CHANGE_TIMEOUT_MS = 10_000;
const RELOAD_TIMEOUT_MS = 60_000;

function fromWorkerError(error: unknown): unknown {
  if (error instanceof WorkerRequestError) {
    const { code, message, status, issues } = error.payload;
    if (issues !== undefined) return new ConfigError('configuration', issues);
    return new AnubisError(code, message, { status });
  }
  return error;
}

/** The admin API's view of the whole cluster. */
export class ClusterControl implements ControlPlane {
  readonly sampler: Sampler;
  /** Ready workers by slot. */
  readonly channels = new Map<number, WorkerChannel>();
  current: LoadedConfig;
  journal: RuntimeChange[] = [];
  private readonly lastSnapshots = new Map<number, Snapshot>();
  private retired: Snapshot | undefined;
  private readonly reloadSource: (() => Promise<LoadedConfig>) | undefined;
  private readonly logger: Logger;
  private readonly reloads = new SerialQueue();

  constructor(
    initial: LoadedConfig,
    reloadSource: (() => Promise<LoadedConfig>) | undefined,
    logger: Logger,
  ) {
    this.current = initial;
    this.reloadSource = reloadSource;
    this.logger = logger;
    this.sampler = new Sampler(() => this.snapshot());
  }

  /** The message a starting worker gets: the configuration in force and the changes since. */
  initMessage(): InitMessage {
    return {
      anubis: 'init',
      raw: this.current.raw,
      source: this.current.source,
      baseDir: this.current.baseDir,
      changes: this.journal,
    };
  }

  /** A worker exited: its counters are kept, its pending requests fail. */
  workerGone(slot: number): void {
    this.channels.get(slot)?.close();
    this.channels.delete(slot);
    const last = this.lastSnapshots.get(slot);
    if (last !== undefined) this.retired = retireSnapshot(this.retired, last);
    this.lastSnapshots.delete(slot);
  }

  private async all(
    op: WorkerOp,
    payload: unknown,
    timeoutMs: number,
  ): Promise<PromiseSettledResult<unknown>[]> {
    const channels = [...this.channels.values()];
    return Promise.allSettled(channels.map((c) => c.request(op, payload, timeoutMs)));
  }

  async snapshot(): Promise<Snapshot> {
    const slots = [...this.channels.keys()];
    const results = await this.all('snapshot', null, SNAPSHOT_TIMEOUT_MS);
    const live: Snapshot[] = [];
    results.forEach((result, i) => {
      if (result.status !== 'fulfilled') return;
      const snapshot = result.value as Snapshot;
      this.lastSnapshots.set(slots[i] as number, snapshot);
      live.push(snapshot);
    });
    return withRetired(mergeSnapshots(live), this.retired);
  }

  /** Sends a request to every ready worker; throws the first failure (as an AnubisError). */
  private async everywhere(op: WorkerOp, payload: unknown, timeoutMs: number): Promise<unknown> {
    if (this.channels.size === 0) {
      throw new AnubisError('ANUBIS_ADMIN_INTERNAL', 'no worker is ready yet', { status: 503 });
    }
    const results = await this.all(op, payload, timeoutMs);
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed.length > 0) {
      if (failed.length < results.length) {
        this.logger.error(
          { op, failed: failed.length, workers: results.length, err: failed[0]?.reason },
          'workers disagree: the operation failed in some of them',
        );
      }
      throw fromWorkerError(failed[0]?.reason);
    }
    return (results[0] as PromiseFulfilledResult<unknown>).value;
  }

  async change(change: RuntimeChange): Promise<ChangeResult> {
    const result = (await this.everywhere('change', change, CHANGE_TIMEOUT_MS)) as ChangeResult;
    this.journal.push(change);
    await this.sampler.sample(true);
    return result;
  }

  /** One reload at a time, so that every worker applies them in the same order. */
  reload(): Promise<ReloadAnswer> {
    return this.reloads.run(() => this.reloadNow());
  }

  private async reloadNow(): Promise<ReloadAnswer> {
    if (this.reloadSource === undefined) throw new ReloadUnavailableError();
    const next = await this.reloadSource();
    const restartNeeded = restartOnlyChanges(this.current.config, next.config);
    const summary = (await this.everywhere('reload', next.raw, RELOAD_TIMEOUT_MS)) as ReloadSummary;
    if (restartNeeded.length > 0) {
      this.logger.warn({ settings: restartNeeded }, 'changed settings need a restart');
    }
    // Workers started from now on get the new configuration (workers never serve the admin
    // listener, and the primary keeps the number of workers it started with).
    this.current = next;
    this.journal = [];
    this.logger.info({ workers: this.channels.size }, 'configuration reloaded in every worker');
    await this.sampler.sample(true);
    return { ...summary, restartNeeded };
  }

  /** Passes a worker's health hint on to every other ready worker (they check for themselves). */
  forwardHealthHint(fromSlot: number, hint: HealthHintMessage): void {
    for (const [slot, channel] of this.channels) {
      // A worker that is exiting: the callback takes the "channel closed" error.
      if (slot !== fromSlot) channel.worker.send(hint, () => {});
    }
  }

  async explain(pool: string): Promise<ExplainResult> {
    const first = this.channels.values().next().value;
    if (first === undefined) {
      throw new AnubisError('ANUBIS_ADMIN_INTERNAL', 'no worker is ready yet', { status: 503 });
    }
    try {
      return (await first.request('explain', pool, CHANGE_TIMEOUT_MS)) as ExplainResult;
    } catch (error) {
      throw fromWorkerError(error);
    }
  }
}

/**
 * Runs the primary: forks `count` workers, keeps them alive, serves the admin listener, and
 * on SIGTERM/SIGINT drains every worker. Resolves with the exit code.
 */
export async function runPrimary(options: PrimaryOptions): Promise<number> {
  const { count, logger, initial } = options;
  const control = new ClusterControl(initial, options.reload, logger);
  let stopping = false;
  let resolveExit: (code: number) => void = () => {};
  const exited = new Promise<number>((resolve) => (resolveExit = resolve));
  const restarts = new Map<number, number>();
  const live = new Set<Worker>();

  const fork = (slot: number): void => {
    const worker = cluster.fork({ ANUBIS_WORKER_SLOT: String(slot) });
    live.add(worker);
    const channel = new WorkerChannel(worker);
    worker.on('message', (message: unknown) => {
      if (!isAnubisMessage(message)) return;
      switch (message.anubis) {
        case 'hello':
          // A callback, so that a worker gone meanwhile is not an 'error' event (cluster-ipc.ts).
          worker.send(control.initMessage(), () => {});
          break;
        case 'ready':
          control.channels.set(slot, channel);
          // Not `pid`: that key is already in every line (the primary's own pid).
          logger.info({ worker: slot, workerPid: worker.process.pid }, 'worker ready');
          break;
        case 'response':
          channel.settle(message as ResponseMessage);
          break;
        case 'health-hint':
          control.forwardHealthHint(slot, message as HealthHintMessage);
          break;
      }
    });
    worker.on('listening', () => restarts.set(slot, 0));
    worker.on('exit', (code, signal) => {
      live.delete(worker);
      control.workerGone(slot);
      if (stopping) {
        if (live.size === 0) resolveExit(0);
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
  };

  // The admin listener first: if its address is taken, fail before any worker exists.
  let admin: AdminServer | undefined;
  if (initial.config.admin !== undefined) {
    admin = new AdminServer(initial.config.admin, control, logger);
    await admin.listen();
  }

  for (let slot = 0; slot < count; slot++) fork(slot);
  logger.info({ workers: count }, 'started workers');

  const reload = (): void => {
    logger.info('SIGHUP: reloading the configuration');
    control.reload().catch((error: unknown) => {
      logger.error(
        { err: error instanceof Error ? error.message : String(error) },
        'reload rejected; the running configuration stays',
      );
    });
  };
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    const drainMs = (control.current.config.drainTimeout ?? 10_000) + 5_000;
    logger.info({ signal, workers: live.size }, 'stopping: draining workers');
    process.off('SIGHUP', reload);
    admin?.close().catch(() => {});
    if (live.size === 0) resolveExit(0);
    for (const worker of live) worker.process.kill('SIGTERM');
    // A worker that does not finish draining in time is killed.
    setTimeout(() => {
      for (const worker of live) worker.process.kill('SIGKILL');
    }, drainMs).unref();
  };
  process.on('SIGHUP', reload);
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  // A bug in the primary (admin API, IPC): workers drain as on SIGTERM, then exit 70.
  exitOnUncaughtError({
    logger,
    drainTimeoutMs: () => control.current.config.drainTimeout,
    drain: async (ms) => {
      stop('SIGTERM');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, ms))]);
    },
  });
  return exited;
}
