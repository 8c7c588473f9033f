/**
 * Messages between the cluster primary and its workers (node:cluster IPC, JSON). The primary
 * never sits on the request path: it sends the configuration to a worker that starts, and
 * asks workers for snapshots, runtime changes, reloads and explanations only when the admin
 * API or its sampler needs them.
 *
 *   worker → primary   { anubis: 'hello' }                       "send me my configuration"
 *   primary → worker   { anubis: 'init', raw, source, baseDir, changes }
 *   worker → primary   { anubis: 'ready' }                       listening, changes replayed
 *   primary → worker   { anubis: 'request', id, op, payload }
 *   worker → primary   { anubis: 'response', id, ok, result | error }
 *   worker → primary   { anubis: 'health-hint', pool, backend, up }  its checks changed a verdict
 *   primary → worker   the same health-hint, to every other ready worker
 *
 * A health hint only makes the receiving worker check that backend soon (HealthMonitor
 * checkSoon): each worker's own checks still decide.
 */
import type { Worker } from 'node:cluster';
import type { RuntimeChange } from '../admin/control.js';

export type WorkerOp = 'snapshot' | 'change' | 'reload' | 'explain';

export interface InitMessage {
  readonly anubis: 'init';
  /** The configuration input (YAML parsed, CLI overrides applied), validated by the worker. */
  readonly raw: unknown;
  readonly source: string;
  readonly baseDir: string;
  /** Runtime changes made through the admin API since the last (re)load, in order. */
  readonly changes: readonly RuntimeChange[];
}

export interface RequestMessage {
  readonly anubis: 'request';
  readonly id: number;
  readonly op: WorkerOp;
  readonly payload: unknown;
}

export interface ErrorPayload {
  readonly code: string;
  readonly message: string;
  readonly status: number;
  readonly issues?: readonly { path: string; message: string }[];
}

export type ResponseMessage =
  | {
      readonly anubis: 'response';
      readonly id: number;
      readonly ok: true;
      readonly result: unknown;
    }
  | {
      readonly anubis: 'response';
      readonly id: number;
      readonly ok: false;
      readonly error: ErrorPayload;
    };

/** A worker's active checks took a backend up or down (docs/health.md#with-several-workers). */
export interface HealthHintMessage {
  readonly anubis: 'health-hint';
  readonly pool: string;
  /** The backend's id. */
  readonly backend: string;
  readonly up: boolean;
}

export type WorkerMessage =
  { readonly anubis: 'hello' } | { readonly anubis: 'ready' } | ResponseMessage | HealthHintMessage;
export type PrimaryMessage = InitMessage | RequestMessage | HealthHintMessage;

export function isAnubisMessage(value: unknown): value is { anubis: string } {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof (value as { anubis?: unknown }).anubis === 'string'
  );
}

/** A worker answered with an error (its code, message and HTTP status are kept). */
export class WorkerRequestError extends Error {
  readonly payload: ErrorPayload;
  constructor(payload: ErrorPayload) {
    super(payload.message);
    this.payload = payload;
  }
}

/** Sends requests to one worker and matches responses by id. */
export class WorkerChannel {
  readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (value: unknown) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }
  >();

  constructor(worker: Worker) {
    this.worker = worker;
  }

  request(op: WorkerOp, payload: unknown, timeoutMs: number): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`worker ${this.worker.id} did not answer ${op} within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      this.pending.set(id, { resolve, reject, timer });
      const message: RequestMessage = { anubis: 'request', id, op, payload };
      const failed = (error: Error): void => {
        if (!this.pending.delete(id)) return;
        clearTimeout(timer);
        reject(error);
      };
      // A worker that just died has a closed channel: without a callback, send() reports
      // that as an 'error' event on the worker, which nobody handles (an uncaught exception
      // in the primary). With one, the request fails and the sampler or admin call moves on.
      try {
        this.worker.send(message, (error: Error | null) => {
          if (error !== null) failed(error);
        });
      } catch (error) {
        failed(error instanceof Error ? error : new Error(String(error)));
      }
    });
  }

  /** Routes a response from the worker to its waiting request. */
  settle(message: ResponseMessage): void {
    const entry = this.pending.get(message.id);
    if (entry === undefined) return;
    this.pending.delete(message.id);
    clearTimeout(entry.timer);
    if (message.ok) entry.resolve(message.result);
    else entry.reject(new WorkerRequestError(message.error));
  }

  /** The worker is gone: fails every waiting request. */
  close(): void {
    for (const [id, entry] of this.pending) {
      clearTimeout(entry.timer);
      entry.reject(new Error(`worker ${this.worker.id} exited`));
      this.pending.delete(id);
    }
  }
}
