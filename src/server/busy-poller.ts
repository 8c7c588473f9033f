/**
 * Busy polling (`busyPolling` in the configuration; docs/performance.md#busy-polling): while
 * requests keep arriving, the event loop polls for I/O without sleeping, so a request that
 * arrives is read at once instead of after the kernel (and, in a virtual machine, the
 * hypervisor) has woken the idle CPU up. HAProxy's `busy-polling` does the same for the same
 * reason; unlike it, this one stops after `windowMs` without a request and the loop sleeps
 * again, so an idle anubis costs no CPU.
 *
 * How: one immediate is kept queued. libuv polls with a zero timeout while an immediate is
 * pending, so each loop iteration runs the I/O that is ready, the timers that are due and then
 * this immediate, which queues the next one. The hot path only bumps a counter (touch()); the
 * poller reads the clock only while no request has arrived since its last iteration.
 */
export class BusyPoller {
  /** How long the loop keeps polling after the last request; 0 = never polls. */
  private windowMs: number;
  /** Requests seen (bumped by touch()), and the count the poller last saw. */
  private activity = 0;
  private seenActivity = 0;
  /** When the poller first saw no new request (performance.now()); -1 while requests arrive. */
  private quietSince = -1;
  private immediate: NodeJS.Immediate | undefined;

  constructor(windowMs: number) {
    this.windowMs = windowMs;
  }

  /** Whether the loop is busy polling now. */
  get polling(): boolean {
    return this.immediate !== undefined;
  }

  /** A request arrived: keep polling, or start again. */
  touch(): void {
    this.activity++;
    if (this.immediate === undefined && this.windowMs > 0) {
      this.seenActivity = this.activity;
      this.quietSince = -1;
      this.immediate = setImmediate(this.poll);
    }
  }

  /** A reload's new window (0 turns busy polling off; it stops at the next iteration). */
  setWindow(windowMs: number): void {
    this.windowMs = windowMs;
  }

  /** Stops polling for good (the load balancer closes; a queued immediate keeps Node alive). */
  close(): void {
    this.windowMs = 0;
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.immediate = undefined;
  }

  private readonly poll = (): void => {
    if (this.windowMs === 0) {
      this.immediate = undefined;
      return;
    }
    if (this.activity !== this.seenActivity) {
      this.seenActivity = this.activity;
      this.quietSince = -1;
    } else {
      const now = performance.now();
      if (this.quietSince < 0) {
        this.quietSince = now;
      } else if (now - this.quietSince >= this.windowMs) {
        this.immediate = undefined;
        return;
      }
    }
    this.immediate = setImmediate(this.poll);
  };
}
