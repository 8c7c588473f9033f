/**
 * A client's request body, streamed to the backend with back-pressure, and kept in memory up
 * to `limit` bytes so that a retry can send it again.
 *
 * Each attempt gets its own Readable (`attempt()`): it first replays the chunks kept so far,
 * then continues with what the client still sends. Only the newest attempt reads from the
 * client; undici destroys the stream of a failed attempt, which detaches it (the client's
 * stream is never destroyed by a failed attempt). Chunks are kept by reference, not copied.
 *
 * Once more than `limit` bytes have passed, the kept chunks are dropped and the body is no
 * longer replayable: that request is not retried (what was sent cannot be sent again).
 */
import { Readable } from 'node:stream';
import { readBufferCollector } from './body-memory.js';

export class ReplayableBody {
  private readonly source: Readable;
  private readonly limit: number;
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  private overflowed = false;
  private ended = false;
  private listening = false;
  private current: AttemptStream | undefined = undefined;

  constructor(source: Readable, limit: number) {
    this.source = source;
    this.limit = limit;
  }

  /** True while every byte read so far can be sent again. */
  get replayable(): boolean {
    return !this.overflowed;
  }

  /** The body stream of a new attempt; the previous attempt's stream stops receiving data. */
  attempt(): Readable {
    const stream = new AttemptStream(this);
    const previous = this.current;
    this.current = stream;
    if (previous !== undefined && !previous.destroyed) previous.destroy();
    for (const chunk of this.chunks) stream.push(chunk);
    if (this.ended) stream.push(null);
    if (!this.listening) {
      this.listening = true;
      this.source.on('data', this.onData);
      this.source.once('end', this.onEnd);
      this.source.once('error', this.onSourceError);
    }
    return stream;
  }

  /** Called by an attempt stream that wants more data. */
  pull(stream: AttemptStream): void {
    if (stream === this.current && !this.ended) this.source.resume();
  }

  /** Called when an attempt stream is destroyed (its request failed or finished). */
  detach(stream: AttemptStream): void {
    if (stream !== this.current) return;
    this.current = undefined;
    if (!this.ended) this.source.pause();
  }

  private readonly onData = (chunk: Buffer): void => {
    readBufferCollector.count(chunk.length);
    if (!this.overflowed) {
      this.bytes += chunk.length;
      if (this.bytes > this.limit) {
        this.overflowed = true;
        this.chunks.length = 0;
      } else {
        this.chunks.push(chunk);
      }
    }
    const stream = this.current;
    if (stream === undefined) {
      // Between attempts: keep what fits (above), wait for the next attempt.
      this.source.pause();
      return;
    }
    if (!stream.push(chunk)) this.source.pause();
  };

  private readonly onEnd = (): void => {
    this.ended = true;
    this.current?.push(null);
  };

  private readonly onSourceError = (error: Error): void => {
    this.current?.destroy(error);
  };
}

class AttemptStream extends Readable {
  private readonly owner: ReplayableBody;

  constructor(owner: ReplayableBody) {
    super();
    this.owner = owner;
  }

  override _read(): void {
    this.owner.pull(this);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.owner.detach(this);
    callback(error);
  }
}
