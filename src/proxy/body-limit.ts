/**
 * The per-pool request body limit (`pools.<name>.maxBodySize`) for bodies whose size is not
 * declared up front (chunked, or HTTP/2 without content-length). A declared Content-Length above the limit is refused before any
 * byte is read (src/server/client-limits.ts); a chunked body is counted as it streams to the
 * backend and, once it passes the limit, the upstream request fails with BodyTooLargeError:
 * the client gets 413 and its connection is closed (the rest of its body is not read).
 */
import type { IncomingMessage } from 'node:http';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { BodyTooLargeError } from '../errors.js';
import type { ProxiedResponse } from './client-messages.js';

/** The body to hand to undici: the request itself, or a counting pass-through when limited. */
export function limitBody(req: IncomingMessage, res: ProxiedResponse, max: number): Readable {
  // A declared Content-Length was already checked; chunked (and HTTP/2) bodies are counted.
  if (max <= 0 || req.headers['content-length'] !== undefined) return req;
  let seen = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
      seen += chunk.length;
      if (seen <= max) {
        callback(null, chunk);
        return;
      }
      req.unpipe(counter);
      // The unread rest of the body makes this connection unusable for another request.
      res.shouldKeepAlive = false;
      callback(new BodyTooLargeError(max));
    },
  });
  // A client that goes away mid-upload fails the upstream request too.
  req.once('aborted', () => counter.destroy(new Error('client aborted the upload')));
  req.once('error', (error) => counter.destroy(error));
  return req.pipe(counter);
}
