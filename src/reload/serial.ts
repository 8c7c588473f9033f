/**
 * Runs reloads one after the other: a SIGHUP and a `POST /api/reload` arriving together must
 * not interleave their steps (bind, commit) on the same load balancer, and with workers, every
 * worker must see reloads in the same order.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task, task);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

const queues = new WeakMap<object, SerialQueue>();

/** The queue of `owner` (one per load balancer). */
export function serialQueueOf(owner: object): SerialQueue {
  let queue = queues.get(owner);
  if (queue === undefined) {
    queue = new SerialQueue();
    queues.set(owner, queue);
  }
  return queue;
}
