/**
 * A cluster worker: asks the primary for its configuration (so a worker restarted after a
 * reload runs the configuration in force, even if the file was since edited into an invalid
 * one), starts a load balancer without the admin listener (the primary serves it), replays
 * the runtime changes the primary remembers, then answers the primary's requests: snapshot,
 * change, reload, explain. SIGTERM/SIGINT drain it like a single process.
 *
 * Health hints: when this worker's active checks take a backend up or down, it tells the
 * primary, which tells the other workers; a worker told so checks that backend soon
 * (HealthMonitor.checkSoon), so the workers agree within a few checks instead of up to an
 * interval apart. Nothing of this runs on the request path.
 */
import { applyChange, explainPool, runtimeChangeSchema } from '../admin/control.js';
import { takeSnapshot } from '../admin/snapshot.js';
import { validateConfig } from '../config/load.js';
import { AnubisError, ConfigError } from '../errors.js';
import { isCheckReason } from '../health/monitor.js';
import type { BackendEvent } from '../load-balancer-events.js';
import { LoadBalancer } from '../load-balancer.js';
import { serialQueueOf } from '../reload/serial.js';
import { createLogger, type Logger } from '../logging/logger.js';
import {
  isAnubisMessage,
  type ErrorPayload,
  type HealthHintMessage,
  type InitMessage,
  type RequestMessage,
  type ResponseMessage,
  type WorkerMessage,
} from './cluster-ipc.js';
import { exitOnUncaughtError } from './fatal-errors.js';

function send(message: WorkerMessage): void {
  process.send?.(message);
}

function waitForInit(): Promise<InitMessage> {
  return new Promise((resolve) => {
    const onMessage = (message: unknown): void => {
      if (isAnubisMessage(message) && message.anubis === 'init') {
        process.off('message', onMessage);
        resolve(message as InitMessage);
      }
    };
    process.on('message', onMessage);
    send({ anubis: 'hello' });
  });
}

export function errorPayload(error: unknown): ErrorPayload {
  if (error instanceof ConfigError) {
    return { code: error.code, message: error.message, status: 400, issues: error.issues };
  }
  if (error instanceof AnubisError) {
    return { code: error.code, message: error.message, status: error.status };
  }
  return { code: 'ANUBIS_ADMIN_INTERNAL', message: String(error), status: 500 };
}

async function answer(
  balancer: LoadBalancer,
  request: RequestMessage,
  source: string,
): Promise<unknown> {
  switch (request.op) {
    case 'snapshot':
      return takeSnapshot(balancer);
    case 'change':
      return applyChange(balancer, runtimeChangeSchema.parse(request.payload));
    case 'reload': {
      const next = validateConfig(request.payload, source);
      const summary = await serialQueueOf(balancer).run(() => balancer.reload(next));
      balancer.logger.level = next.log.level;
      return summary;
    }
    case 'explain':
      return explainPool(balancer, String(request.payload));
  }
}

/** Sends the primary a hint for every change made by this worker's active checks. */
function sendHealthHints(balancer: LoadBalancer): void {
  const hint = (up: boolean) => (event: BackendEvent) => {
    if (!isCheckReason(event.reason)) return;
    const message: HealthHintMessage = {
      anubis: 'health-hint',
      pool: event.pool,
      backend: event.backend,
      up,
    };
    // The callback takes the error of a closed channel (the primary is gone; we are draining).
    process.send?.(message, () => {});
  };
  balancer.on('backend-up', hint(true));
  balancer.on('backend-down', hint(false));
}

/** Another worker's checks took a backend up or down: check it soon here (unknown: ignored). */
function takeHealthHint(balancer: LoadBalancer, hint: HealthHintMessage): void {
  const pool = balancer.pools.get(hint.pool);
  const backend = pool?.backend(hint.backend);
  if (pool === undefined || backend === undefined) return;
  if (pool.health.checkSoon(backend, hint.up)) {
    balancer.logger.debug(
      { pool: hint.pool, backend: hint.backend, up: hint.up },
      'health hint: another worker saw a change; checking now',
    );
  }
}

/** Runs this worker until it is told to stop; resolves with the exit code. */
export async function runWorker(): Promise<number> {
  const init = await waitForInit();
  const config = validateConfig(init.raw, init.source);
  const logger: Logger = createLogger(config.log);
  const balancer = await LoadBalancer.start(config, {
    logger,
    baseDir: init.baseDir,
    admin: false,
  });
  for (const change of init.changes) {
    try {
      await applyChange(balancer, change);
    } catch (error) {
      logger.warn({ err: error, change }, 'runtime change could not be replayed');
    }
  }
  sendHealthHints(balancer);
  process.on('message', (message: unknown) => {
    if (!isAnubisMessage(message)) return;
    if (message.anubis === 'health-hint') {
      takeHealthHint(balancer, message as HealthHintMessage);
      return;
    }
    if (message.anubis !== 'request') return;
    const request = message as RequestMessage;
    answer(balancer, request, init.source).then(
      (result) => {
        const response: ResponseMessage = { anubis: 'response', id: request.id, ok: true, result };
        send(response);
      },
      (error: unknown) => {
        const response: ResponseMessage = {
          anubis: 'response',
          id: request.id,
          ok: false,
          error: errorPayload(error),
        };
        send(response);
      },
    );
  });
  exitOnUncaughtError({
    logger,
    drainTimeoutMs: () => balancer.config.drainTimeout,
    drain: (ms) => balancer.close(ms),
  });
  send({ anubis: 'ready' });
  return new Promise((resolveExit) => {
    const stop = (signal: NodeJS.Signals): void => {
      logger.info({ signal, drainMs: balancer.config.drainTimeout }, 'worker stopping: draining');
      balancer.close(balancer.config.drainTimeout).then(
        () => resolveExit(0),
        (error: unknown) => {
          logger.error({ err: error }, 'error while stopping');
          resolveExit(1);
        },
      );
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    // The primary is gone (killed hard): do not linger as an orphan.
    process.once('disconnect', () => stop('SIGTERM'));
    // The primary reloads through IPC; a SIGHUP sent to the whole process group is ignored here.
    process.on('SIGHUP', () => {});
  });
}
