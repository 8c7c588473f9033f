/**
 * The primary's request channel to a worker (src/server/cluster-ipc.ts) when the worker has
 * just died: Node reports a send on a closed IPC channel to the send callback, or, without
 * one, as an 'error' event on the worker, which nobody handles in the primary (an uncaught
 * exception: the whole load balancer exits). The channel must turn it into a failed request.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Worker } from 'node:cluster';
import { test } from 'node:test';
import { WorkerChannel } from '../../src/server/cluster-ipc.js';

/** Behaves like a cluster Worker whose IPC channel closed (Node's child_process `send`). */
class DeadWorker extends EventEmitter {
  readonly id = 7;
  sent = 0;
  send(_message: unknown, callback?: (error: Error | null) => void): boolean {
    this.sent++;
    const error = Object.assign(new Error('Channel closed'), { code: 'ERR_IPC_CHANNEL_CLOSED' });
    if (typeof callback === 'function') process.nextTick(callback, error);
    else process.nextTick(() => this.emit('error', error));
    return false;
  }
}

void test('a request to a worker whose channel closed fails, and nothing is thrown', async () => {
  const worker = new DeadWorker();
  const channel = new WorkerChannel(worker as unknown as Worker);
  const started = performance.now();
  await assert.rejects(channel.request('snapshot', null, 5_000), /Channel closed/);
  assert.ok(performance.now() - started < 1_000, 'failed at once, not at the timeout');
  assert.equal(worker.sent, 1);
  // Any 'error' event would have thrown (no listener) before the rejection was seen.
  await new Promise((resolve) => setImmediate(resolve));
  channel.close(); // nothing left pending: no second rejection
});
