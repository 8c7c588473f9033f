/**
 * The fast path's response: writes what node:http's ServerResponse would write for the same
 * calls, byte for byte (test/unit/fast-http1-response.test.ts compares the two):
 *
 *   - the head: status line, the given headers in order (names and values validated by
 *     node:http's own validators), then `Date` unless given, `Connection: keep-alive` with
 *     `Keep-Alive: timeout=N` (or `Connection: close`) unless a Connection header was given,
 *     and `Transfer-Encoding: chunked` when a body has no Content-Length;
 *   - no body for HEAD, 204, 304 and 1xx (writes are ignored);
 *   - chunked framing, and trailers (addTrailers) in the last chunk;
 *   - writes of one tick corked into one writev; end() flushes at once.
 *
 * Only what the proxy calls exists (ProxiedResponse). `close` is emitted only when the
 * connection ends before the response did (the proxy stops its upstream request then).
 */
import { STATUS_CODES, validateHeaderName, validateHeaderValue } from 'node:http';
import type { OutgoingHttpHeader, OutgoingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import type { ProxiedResponse } from '../../proxy/client-messages.js';
import { isValidReasonPhrase } from '../../proxy/headers.js';

/** The connection a response is written on. */
export interface ResponseOwner {
  readonly socket: Socket;
  /** The listener's keep-alive timeout (advertised in `Keep-Alive: timeout=N`); 0: none. */
  readonly keepAliveTimeoutMs: number;
  /** The response was written completely (end()). */
  responseFinished(response: FastResponse): void;
}

class ResponseStateError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'ResponseStateError';
    this.code = code;
  }
}

const CONNECTION_CLOSE = /(?:^|\W)close(?:$|\W)/i;
const TE_CHUNKED = /(?:^|\W)chunked(?:$|\W)/i;
const LAST_CHUNK = '0\r\n';
/** A first body chunk up to this size goes out in one write with the head (copied once). */
const COALESCE_LIMIT = 4_096;
const CRLF = '\r\n';

let dateSecond = -1;
let dateText = '';

/** The Date header value, formatted once per second (as node:http does). */
function utcDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(now).toUTCString();
  }
  return dateText;
}

function uncorkNT(response: FastResponse): void {
  response.uncork();
}

// Which headers writeHead was given (bits of FastResponse.given): framing and connection.
const GIVEN_CONNECTION = 1;
const GIVEN_CONTENT_LENGTH = 2;
const GIVEN_TRANSFER_ENCODING = 4;
const GIVEN_DATE = 8;
const GIVEN_TRAILER = 16;

export class FastResponse implements ProxiedResponse {
  headersSent = false;
  shouldKeepAlive: boolean;
  /** The connection closes after this response. */
  last = false;
  finished = false;
  /** The connection closed before end(). */
  private closed = false;

  private readonly owner: ResponseOwner;
  private readonly socket: Socket;
  private hasBody: boolean;
  /** The head, until it is written with the first body bytes or end(). */
  private head: string | undefined = undefined;
  private chunked = false;
  private defaultKeepAlive = true;
  private trailers = '';
  /** GIVEN_* bits of the headers given to writeHead (no object per response). */
  private given = 0;
  private corked = false;
  private closeListener: (() => void) | undefined = undefined;
  private drainListener: (() => void) | undefined = undefined;

  constructor(owner: ResponseOwner, isHead: boolean, keepAlive: boolean) {
    this.owner = owner;
    this.socket = owner.socket;
    this.hasBody = !isHead;
    this.shouldKeepAlive = keepAlive;
  }

  writeHead(statusCode: number, headers?: OutgoingHttpHeaders | OutgoingHttpHeader[]): this;
  writeHead(
    statusCode: number,
    statusMessage: string,
    headers?: OutgoingHttpHeaders | OutgoingHttpHeader[],
  ): this;
  writeHead(
    statusCode: number,
    reasonOrHeaders?: string | OutgoingHttpHeaders | OutgoingHttpHeader[],
    maybeHeaders?: OutgoingHttpHeaders | OutgoingHttpHeader[],
  ): this {
    if (this.headersSent) {
      throw new ResponseStateError('ERR_HTTP_HEADERS_SENT', 'the head was already written');
    }
    const status = statusCode | 0;
    if (status < 100 || status > 999) {
      throw new ResponseStateError('ERR_HTTP_INVALID_STATUS_CODE', `status ${statusCode}`);
    }
    let reason: string;
    let headers: OutgoingHttpHeaders | OutgoingHttpHeader[] | undefined;
    if (typeof reasonOrHeaders === 'string') {
      if (!isValidReasonPhrase(reasonOrHeaders)) {
        throw new ResponseStateError('ERR_INVALID_CHAR', 'invalid character in the reason');
      }
      reason = reasonOrHeaders;
      headers = maybeHeaders;
    } else {
      reason = STATUS_CODES[status] ?? 'unknown';
      headers = reasonOrHeaders;
    }
    if (status === 204 || status === 304 || status < 200) this.hasBody = false;
    this.storeHead(`HTTP/1.1 ${status} ${reason}\r\n`, headers);
    this.headersSent = true;
    return this;
  }

  private storeHead(
    statusLine: string,
    headers: OutgoingHttpHeaders | OutgoingHttpHeader[] | undefined,
    contentLength?: number,
  ): void {
    this.given = 0;
    let head = statusLine;
    if (Array.isArray(headers)) {
      for (let i = 0; i < headers.length; i += 2) {
        head += this.headerLines(headers[i] as string, headers[i + 1]);
      }
    } else if (headers !== undefined) {
      for (const name of Object.keys(headers)) head += this.headerLines(name, headers[name]);
    }
    const given = this.given;
    if ((given & GIVEN_DATE) === 0) head += `Date: ${utcDate()}\r\n`;
    if (this.chunked && !this.hasBody) {
      // A Transfer-Encoding given on a 204/304: no zero chunk, and the connection closes.
      this.chunked = false;
      this.shouldKeepAlive = false;
    }
    if ((given & GIVEN_CONNECTION) === 0) {
      if (this.shouldKeepAlive) {
        head += 'Connection: keep-alive\r\n';
        const timeout = this.owner.keepAliveTimeoutMs;
        if (timeout > 0 && this.defaultKeepAlive) {
          head += `Keep-Alive: timeout=${Math.floor(timeout / 1000)}\r\n`;
        }
      } else {
        this.last = true;
        head += 'Connection: close\r\n';
      }
    }
    if ((given & (GIVEN_CONTENT_LENGTH | GIVEN_TRANSFER_ENCODING)) === 0) {
      if (!this.hasBody) this.chunked = false;
      else if (contentLength !== undefined) head += `Content-Length: ${contentLength}\r\n`;
      else {
        head += 'Transfer-Encoding: chunked\r\n';
        this.chunked = true;
      }
    }
    if (!this.chunked && (given & GIVEN_TRAILER) !== 0) {
      throw new ResponseStateError('ERR_HTTP_TRAILER_INVALID', 'Trailer without chunked body');
    }
    this.head = head + CRLF;
  }

  /** `name: value` lines of one header (several for an array value), as node:http does. */
  private headerLines(name: string, value: OutgoingHttpHeader | undefined): string {
    validateHeaderName(name);
    if (Array.isArray(value)) {
      if (value.length < 2 || name.toLowerCase() !== 'cookie') {
        let lines = '';
        for (const item of value) lines += this.headerLine(name, item);
        return lines;
      }
      return this.headerLine(name, value.join('; '));
    }
    return this.headerLine(name, value);
  }

  private headerLine(name: string, value: unknown): string {
    // node:http's validator (its types say string; it checks any value, undefined included).
    validateHeaderValue(name, value as string);
    const text = String(value);
    const length = name.length;
    if (length >= 4 && length <= 17) {
      switch (name.toLowerCase()) {
        case 'connection':
          this.given |= GIVEN_CONNECTION;
          if (CONNECTION_CLOSE.test(text)) this.last = true;
          else this.shouldKeepAlive = true;
          break;
        case 'transfer-encoding':
          this.given |= GIVEN_TRANSFER_ENCODING;
          if (TE_CHUNKED.test(text)) this.chunked = true;
          break;
        case 'content-length':
          this.given |= GIVEN_CONTENT_LENGTH;
          break;
        case 'date':
          this.given |= GIVEN_DATE;
          break;
        case 'trailer':
          this.given |= GIVEN_TRAILER;
          break;
        case 'keep-alive':
          this.defaultKeepAlive = false;
          break;
      }
    }
    return `${name}: ${text}\r\n`;
  }

  write(chunk: Buffer): boolean {
    if (this.finished) {
      // The connection closed under it: the writer hears of it through 'close'.
      if (this.closed) return false;
      throw new ResponseStateError('ERR_STREAM_WRITE_AFTER_END', 'write after end');
    }
    if (!this.headersSent) this.writeHead(200);
    const socket = this.socket;
    // A connection going away: 'close' follows (the writer waits for it, not for 'drain').
    if (socket.destroyed || socket.writableEnded) return false;
    if (!this.hasBody || chunk.length === 0) return true;
    const head = this.head;
    if (head !== undefined && chunk.length <= COALESCE_LIMIT) {
      // The head and a small first chunk in one string, one write (the common small answer).
      this.head = undefined;
      const data = chunk.toString('latin1');
      return socket.write(
        this.chunked ? `${head}${chunk.length.toString(16)}\r\n${data}\r\n` : head + data,
        'latin1',
      );
    }
    if (!this.chunked) {
      if (head === undefined) return socket.write(chunk);
      this.cork();
      this.flushHead();
      return socket.write(chunk);
    }
    this.cork();
    this.flushHead();
    socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
    socket.write(chunk);
    return socket.write(CRLF, 'latin1');
  }

  end(chunk?: string): this {
    if (this.finished) return this;
    if (!this.headersSent) {
      // As node:http's implicit head: 200, with the length of the only chunk.
      this.storeHead(
        'HTTP/1.1 200 OK\r\n',
        undefined,
        chunk === undefined ? 0 : Buffer.byteLength(chunk),
      );
      this.headersSent = true;
    }
    this.finished = true;
    const socket = this.socket;
    if (!socket.destroyed && !socket.writableEnded) {
      if (chunk === undefined || chunk.length === 0 || !this.hasBody) this.writeRest();
      else this.writeRestWith(chunk);
    }
    this.owner.responseFinished(this);
    return this;
  }

  /** What is left (the head, the last chunk) in one string, behind any corked writes. */
  private writeRest(): void {
    let rest = this.head ?? '';
    this.head = undefined;
    if (this.chunked) rest += `${LAST_CHUNK}${this.trailers}${CRLF}`;
    if (rest.length > 0) this.socket.write(rest, 'latin1');
    this.uncork();
  }

  /** The same with a body given to end() (error answers), written as UTF-8 like node:http. */
  private writeRestWith(body: string): void {
    const socket = this.socket;
    this.cork();
    this.flushHead();
    if (this.chunked) socket.write(`${Buffer.byteLength(body).toString(16)}\r\n${body}\r\n`);
    else socket.write(body);
    if (this.chunked) socket.write(`${LAST_CHUNK}${this.trailers}${CRLF}`, 'latin1');
    this.uncork();
  }

  destroy(): this {
    this.socket.destroy();
    return this;
  }

  addTrailers(headers: OutgoingHttpHeaders | readonly [string, string][]): void {
    const pairs = Array.isArray(headers)
      ? (headers as readonly [string, string][])
      : Object.entries(headers as OutgoingHttpHeaders);
    for (const [name, value] of pairs) {
      validateHeaderName(name);
      validateHeaderValue(name, value as string);
      this.trailers += `${name}: ${String(value)}\r\n`;
    }
  }

  on(event: 'close', listener: () => void): this {
    if (event !== 'close' || this.closeListener !== undefined) {
      throw new ResponseStateError('ERR_INVALID_ARG_VALUE', `one 'close' listener only`);
    }
    this.closeListener = listener;
    return this;
  }

  once(event: 'drain', listener: () => void): this {
    if (event !== 'drain') throw new ResponseStateError('ERR_INVALID_ARG_VALUE', event);
    this.drainListener = listener;
    return this;
  }

  /** The socket drained: the writer waiting for it goes on. */
  emitDrain(): void {
    const listener = this.drainListener;
    this.drainListener = undefined;
    listener?.();
  }

  /** The connection closed: a response not finished yet will never be. */
  emitClose(): void {
    if (this.finished) return;
    this.finished = true;
    this.closed = true;
    this.closeListener?.();
  }

  uncork(): void {
    if (!this.corked) return;
    this.corked = false;
    this.socket.uncork();
  }

  private cork(): void {
    if (this.corked) return;
    this.corked = true;
    this.socket.cork();
    process.nextTick(uncorkNT, this);
  }

  private flushHead(): void {
    const head = this.head;
    if (head === undefined) return;
    this.head = undefined;
    this.socket.write(head, 'latin1');
  }
}
