/**
 * A request the fast path serves: HTTP/1.1, origin-form target, no body. Its `headers` object
 * is built exactly as node:http builds IncomingMessage.headers (lower-case names, duplicates
 * joined, dropped or collected by the same rules), by node:http's own `_addHeaderLine`, so a
 * strategy, the guard and the proxy see the same values whichever path a request took.
 */
import { IncomingMessage, type IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import type { BodilessRequest } from '../../proxy/client-messages.js';

type AddHeaderLine = (
  this: { joinDuplicateHeaders: boolean },
  field: string,
  value: string,
  dest: IncomingHttpHeaders,
) => void;

const addHeaderLine = (IncomingMessage.prototype as unknown as { _addHeaderLine?: unknown })
  ._addHeaderLine as AddHeaderLine | undefined;

/** Whether this Node's IncomingMessage has the header-merging method the fast path reuses. */
export const headerMergingAvailable = typeof addHeaderLine === 'function';

/** node:http's default (`joinDuplicateHeaders: false`), as `this` of `_addHeaderLine`. */
const MERGE_OPTIONS = { joinDuplicateHeaders: false };

/** IncomingMessage.headers for a raw `[name, value, …]` list. */
export function incomingHeaders(raw: readonly string[]): IncomingHttpHeaders {
  const headers: IncomingHttpHeaders = {};
  const add = addHeaderLine as AddHeaderLine;
  for (let i = 0; i < raw.length; i += 2) {
    add.call(MERGE_OPTIONS, raw[i] as string, raw[i + 1] as string, headers);
  }
  return headers;
}

export class FastRequest implements BodilessRequest {
  readonly bodiless = true;
  readonly httpVersion = '1.1';
  readonly httpVersionMajor = 1;
  readonly method: string;
  url: string;
  readonly rawHeaders: string[];
  readonly headers: IncomingHttpHeaders;
  readonly socket: Socket;

  constructor(socket: Socket, method: string, url: string, rawHeaders: string[]) {
    this.socket = socket;
    this.method = method;
    this.url = url;
    this.rawHeaders = rawHeaders;
    this.headers = incomingHeaders(rawHeaders);
  }
}
