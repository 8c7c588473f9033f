/**
 * One keep-alive connection to a backend, carrying one request at a time (no pipelining):
 * writes the request head and streams its body (Content-Length or chunked) with
 * back-pressure, parses the response with Node's llhttp in strict mode, and reports it to the
 * request's handler (src/upstream/upstream-client.ts).
 *
 * On plain TCP the socket reads into one buffer shared by every backend connection of the
 * process (`onread`), so a read allocates nothing, and the parser is fed from it. A body
 * framed by Content-Length is then sliced out by the connection itself (a copy, from Node's
 * Buffer pool when small) while the parser goes over the same bytes with its body callback
 * off: llhttp still frames the message, but does not copy each body into an ArrayBuffer of
 * its own (which V8 must sweep after every scavenge, on the event loop's CPU). Chunked bodies
 * take the parser's own copies. TLS sockets are fed to the parser from 'data'. A handler that
 * returns false (its client is full) stops the reads until it calls `resume`; the rest of the
 * read is held and handed over on resume, so a paused handler gets nothing (undici's
 * contract).
 *
 * A complete response is reported only once the parser has finished the read it came in:
 * bytes behind it (a second response nobody asked for) are seen first and the connection is
 * closed instead of reused, so they can never be taken as the answer to the next request.
 * Bytes arriving on an idle connection close it too.
 *
 * Timeouts: connect (until connected), headers (from the last byte of the request written to
 * the response headers), body (longest silence between body chunks, not counted while the
 * handler holds the body paused). One Timeout object is re-armed with refresh() while the
 * duration stays the same, which is the common case.
 */
import { connect as connectTcp, isIP, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import type { Readable } from 'node:stream';
import {
  RequestNotForwardableError,
  UpstreamBodyTimeoutError,
  UpstreamConnectTimeoutError,
  UpstreamHeadersTimeoutError,
  UpstreamProtocolError,
  UpstreamResetError,
} from '../../errors.js';
import type { UpstreamHandler, UpstreamRequest } from '../upstream-client.js';
import type { LlhttpParser, LlhttpParserClass, OnHeadersComplete } from './llhttp.js';
import { serializeRequestHead } from './request-head.js';
import { contentLengthOf } from './response-framing.js';

/** What a connection needs from its pool. */
export interface ConnectionOwner {
  readonly id: string;
  readonly host: string;
  readonly port: number;
  /** Host header value for requests that have none. */
  readonly authority: string;
  readonly tls: TlsConnectOptions | undefined;
  /** The newest TLS session a connection got, offered for resumption by the next one. */
  tlsSession: Buffer | undefined;
  readonly connectTimeoutMs: number;
  readonly parserClass: LlhttpParserClass;
  /** The response is complete and the connection may carry another request. */
  release(connection: Http1Connection): void;
  /** The connection is closed: forget it. */
  forget(connection: Http1Connection): void;
}

export interface TlsConnectOptions {
  readonly ca?: string[];
  readonly rejectUnauthorized: boolean;
  readonly servername?: string;
}

const CRLF = '\r\n';
const LAST_CHUNK = '0\r\n\r\n';
const HEAD_END = '\r\n\r\n';

/**
 * The read buffer of every plain-TCP backend connection: the parser and the body copies are
 * done with a read before the next one (on any connection) can land in it.
 */
const READ_BUFFER_BYTES = 64 * 1024;
let sharedReadBuffer: Buffer | undefined;
function readBuffer(): Buffer {
  return (sharedReadBuffer ??= Buffer.allocUnsafe(READ_BUFFER_BYTES));
}

const enum TimerKind {
  None,
  Headers,
  Body,
}

export class Http1Connection {
  private readonly owner: ConnectionOwner;
  private readonly socket: Socket;
  private readonly parser: LlhttpParser;
  private connected = false;
  closed = false;
  /** Requests completed on this connection (a request on one with served > 0 is "reused"). */
  served = 0;
  /** When the connection last became idle (performance.now()), for the keep-alive timeout. */
  idleSince = 0;
  /** Keep-alive timeout the backend announced (`Keep-Alive: timeout=N`), ms; -1 = none. */
  announcedKeepAliveMs = -1;

  private handler: UpstreamHandler | null = null;
  private request: UpstreamRequest | null = null;
  private body: Readable | null = null;
  private bodyLength = -1;
  private bodyWritten = 0;
  private bodyDone = true;
  /** The request head is corked until the first chunk of body is written with it. */
  private headCorked = false;
  private keepAlive = true;
  private informational = false;
  private skipBody = false;
  private paused = false;
  private headerList: string[] = [];
  /** The final response's headers went to the handler: its body is being read. */
  private inBody = false;
  /**
   * Bytes of a Content-Length body still to come, which a plain-TCP read slices out itself
   * (onSocketRead); -1 when the body is chunked or absent. Above 0 only from the final
   * response's head to its end (onHeadersComplete sets it; the end and fail() reset it).
   */
  private bodyLeft = -1;
  /** The final response is complete; it is reported once the parser's read is done. */
  private responseDone = false;
  private trailers: string[] | null = null;
  /** Body chunks parsed after the handler paused (the rest of that read), given on resume. */
  private held: Buffer[] = [];
  /** The request's own resume function (a late call for an earlier request does nothing). */
  private resumeCurrent: () => void = noop;

  private timer: NodeJS.Timeout | undefined = undefined;
  private timerMs = 0;
  private timerKind = TimerKind.None;
  private connectTimer: NodeJS.Timeout | undefined = undefined;

  constructor(owner: ConnectionOwner) {
    this.owner = owner;
    const tls = owner.tls;
    this.socket =
      tls === undefined
        ? connectTcp({
            host: owner.host,
            port: owner.port,
            noDelay: true,
            onread: { buffer: readBuffer(), callback: this.onSocketRead },
          })
        : connectTls({
            host: owner.host,
            port: owner.port,
            ...tls,
            // SNI carries host names only (RFC 6066 §3).
            ...(tls.servername === undefined && isIP(owner.host) === 0
              ? { servername: owner.host }
              : {}),
            ALPNProtocols: ['http/1.1'],
            ...(owner.tlsSession === undefined ? {} : { session: owner.tlsSession }),
          });
    if (tls !== undefined) {
      this.socket.setNoDelay(true);
      // Offered by the pool's next connection: a resumed handshake, no certificate exchange.
      this.socket.on('session', (session: Buffer) => (owner.tlsSession = session));
    }
    this.socket.setKeepAlive(true, 60_000);
    const parser = new owner.parserClass();
    parser.initialize(owner.parserClass.RESPONSE, {}, 0, owner.parserClass.kLenientNone);
    if (typeof owner.parserClass.kOnMessageBegin === 'number') {
      parser[owner.parserClass.kOnMessageBegin] = this.onMessageBegin;
    }
    parser[owner.parserClass.kOnHeaders] = this.onParserHeaders;
    parser[owner.parserClass.kOnHeadersComplete] = this.onHeadersComplete;
    parser[owner.parserClass.kOnBody] = this.onBody;
    parser[owner.parserClass.kOnMessageComplete] = this.onMessageComplete;
    this.parser = parser;
    const socket = this.socket;
    socket.once(tls === undefined ? 'connect' : 'secureConnect', this.onConnected);
    socket.on('error', this.onSocketError);
    socket.on('end', this.onSocketEnd);
    socket.once('close', this.onSocketClose);
    socket.on('drain', this.onSocketDrain);
    if (owner.connectTimeoutMs > 0) {
      this.connectTimer = setTimeout(this.onConnectTimeout, owner.connectTimeoutMs);
    }
  }

  /** Sends a request; the connection must be idle (or still connecting, with nothing queued). */
  send(request: UpstreamRequest, handler: UpstreamHandler): void {
    this.request = request;
    this.handler = handler;
    this.keepAlive = true;
    this.informational = false;
    this.inBody = false;
    this.responseDone = false;
    this.trailers = null;
    this.skipBody = request.method === 'HEAD';
    this.headerList.length = 0;
    this.resumeCurrent = () => {
      if (this.handler === handler) this.resume();
    };
    handler.onConnect((reason?: Error) => {
      if (this.handler === handler) this.fail(reason ?? new Error('request aborted'), true);
    });
    if (this.handler !== handler) return; // aborted in onConnect
    handler.reusedSocket = this.served > 0;
    if (this.connected) this.writeRequest();
  }

  // ---- writing -----------------------------------------------------------------------------

  private readonly onConnected = (): void => {
    this.connected = true;
    if (this.connectTimer !== undefined) clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    // Plain TCP reads come to onSocketRead (onread).
    if (this.owner.tls !== undefined) this.socket.on('data', this.onSocketData);
    // Flowing, so that the end of the stream is seen ('end').
    this.socket.resume();
    if (this.handler !== null) this.writeRequest();
  };

  private writeRequest(): void {
    const request = this.request as UpstreamRequest;
    const body = request.body;
    let head;
    try {
      head = serializeRequestHead(
        request.method,
        request.path,
        request.headers,
        body !== null,
        this.owner.authority,
      );
    } catch (error) {
      this.fail(new RequestNotForwardableError(this.owner.id, error), true);
      return;
    }
    if (body === null) {
      this.socket.write(head.text, 'latin1');
      this.bodyDone = true;
      this.armTimer(TimerKind.Headers, request.headersTimeout);
      return;
    }
    // The head waits for the first chunk of body: one write for both (uncorkHead).
    this.socket.cork();
    this.headCorked = true;
    this.socket.write(head.text, 'latin1');
    this.body = body;
    this.bodyLength = head.contentLength;
    this.bodyWritten = 0;
    this.bodyDone = false;
    body.on('data', this.onBodyData);
    body.once('end', this.onBodyEnd);
    body.once('error', this.onBodyError);
    this.armTimer(TimerKind.Headers, request.headersTimeout);
  }

  private readonly onBodyData = (chunk: Buffer | string): void => {
    const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (data.length === 0) return;
    this.bodyWritten += data.length;
    if (this.bodyLength >= 0) {
      if (this.bodyWritten > this.bodyLength) {
        this.failBodyLength();
        return;
      }
      if (!this.socket.write(data)) this.body?.pause();
    } else {
      const socket = this.socket;
      socket.cork();
      socket.write(`${data.length.toString(16)}${CRLF}`, 'latin1');
      socket.write(data);
      const more = socket.write(CRLF, 'latin1');
      socket.uncork();
      if (!more) this.body?.pause();
    }
    if (this.headCorked) this.uncorkHead();
    if (this.timerKind === TimerKind.Headers) this.timer?.refresh();
  };

  /** The body does not match its Content-Length: the backend would read it wrongly. */
  private failBodyLength(): void {
    const cause = new Error(
      `request body of ${this.bodyWritten} bytes does not match its ` +
        `Content-Length ${this.bodyLength}`,
    );
    this.fail(new RequestNotForwardableError(this.owner.id, cause), true);
  }

  private uncorkHead(): void {
    this.headCorked = false;
    this.socket.uncork();
  }

  private readonly onBodyEnd = (): void => {
    if (this.bodyLength >= 0 && this.bodyWritten !== this.bodyLength) {
      this.failBodyLength();
      return;
    }
    if (this.bodyLength < 0) this.socket.write(LAST_CHUNK, 'latin1');
    this.detachBody(false);
    if (this.headCorked) this.uncorkHead();
    if (this.timerKind === TimerKind.Headers) this.timer?.refresh();
  };

  private readonly onBodyError = (error: Error): void => {
    // The client's body failed (too large, client gone): the request cannot be completed.
    this.fail(error, true);
  };

  private readonly onSocketDrain = (): void => {
    if (this.body !== null && !this.bodyDone) this.body.resume();
  };

  /** Stops reading the request body; `destroy` also destroys the attempt's stream. */
  private detachBody(destroy: boolean): void {
    this.bodyDone = true;
    if (this.headCorked) this.uncorkHead();
    const body = this.body;
    if (body === null) return;
    this.body = null;
    body.off('data', this.onBodyData);
    body.off('end', this.onBodyEnd);
    body.off('error', this.onBodyError);
    if (destroy && !body.destroyed) body.destroy();
  }

  // ---- reading -----------------------------------------------------------------------------

  /** A TLS read. */
  private readonly onSocketData = (chunk: Buffer): void => {
    if (this.parse(chunk)) this.finishResponse();
  };

  /**
   * A plain-TCP read of `length` bytes into the shared read buffer. A head is fed to the
   * parser up to its end, so that a Content-Length body behind it can be sliced out here
   * (sliceBody); everything else goes to the parser as it is. Splitting the input is always
   * safe for llhttp, which keeps its state between calls: if a head's end is not found here
   * (it straddles two reads), the parser is fed more and hands the body bytes it sees to
   * onBody, as for chunked bodies.
   */
  private readonly onSocketRead = (length: number, buffer: Buffer): boolean => {
    let offset = 0;
    while (offset < length && !this.closed) {
      if (this.bodyLeft > 0) {
        const end = offset + Math.min(this.bodyLeft, length - offset);
        if (!this.sliceBody(buffer, offset, end)) return true;
        offset = end;
        continue;
      }
      let view = buffer.subarray(offset, length);
      if (!this.inBody && this.handler !== null) {
        // Searched in the view: the shared buffer holds older reads' bytes past `length`.
        const headEnd = view.indexOf(HEAD_END, 0, 'latin1') + 4;
        if (headEnd >= 4 && headEnd < view.length) view = view.subarray(0, headEnd);
      }
      if (!this.parse(view)) return true;
      offset += view.length;
    }
    this.finishResponse();
    // Reads stop through pause() (socket.pause() stops an onread socket's reads).
    return true;
  };

  /**
   * Bytes [start, end) of a read are the next bytes of a Content-Length body: the parser goes
   * over them with its body callback off (no copy of its own; it still counts them and ends
   * the message), then the handler gets a copy. False when the read must not go on.
   */
  private sliceBody(buffer: Buffer, start: number, end: number): boolean {
    const left = this.bodyLeft - (end - start);
    this.bodyLeft = left; // (the end of the message, in execute(), sets it to -1)
    const parser = this.parser;
    const slot = this.owner.parserClass.kOnBody;
    parser[slot] = undefined;
    const result = parser.execute(buffer.subarray(start, end));
    parser[slot] = this.onBody;
    if (result instanceof Error) {
      this.onParseError(result);
      return false;
    }
    if ((left === 0) !== this.responseDone) {
      // llhttp framed the body otherwise than its Content-Length said: nothing is relayed.
      const cause = new Error('response body framing does not match its Content-Length');
      this.fail(new UpstreamProtocolError(this.owner.id, cause), true);
      return false;
    }
    // A copy: the read buffer is reused. Up to 4 KiB it is a slice of Node's Buffer pool.
    const chunk = Buffer.allocUnsafe(end - start);
    buffer.copy(chunk, 0, start, end);
    this.deliver(chunk);
    return true;
  }

  /** Feeds the parser; false (after handling it) when it found an error. */
  private parse(data: Buffer): boolean {
    const result = this.parser.execute(data);
    if (!(result instanceof Error)) return true;
    this.onParseError(result);
    return false;
  }

  private onParseError(error: Error): void {
    if (this.closed) return;
    if (this.handler === null) {
      this.destroy(); // bytes from an idle connection: it cannot be trusted with a request
      return;
    }
    if (this.responseDone) {
      // Bytes after a complete response: the response stands, the connection goes.
      this.keepAlive = false;
      this.finishResponse();
      return;
    }
    this.fail(new UpstreamProtocolError(this.owner.id, error), true);
  }

  private readonly onMessageBegin = (): void => {
    // A response nobody asked for: on an idle connection, or after this request's own answer.
    if (this.handler === null) this.destroy();
    else if (this.responseDone) this.keepAlive = false;
  };

  private readonly onParserHeaders = (headers: string[]): void => {
    // Header lines delivered in parts (many fields, or a head split across reads), and trailers.
    for (let i = 0; i < headers.length; i++) this.headerList.push(headers[i] as string);
  };

  private readonly onHeadersComplete: OnHeadersComplete = (
    _versionMajor,
    _versionMinor,
    headers,
    _method,
    _url,
    statusCode,
    statusMessage,
    upgrade,
    shouldKeepAlive,
  ) => {
    const handler = this.handler;
    if (handler === null || this.responseDone) {
      // A response nobody asked for: the connection is not reused (its body is skipped).
      this.keepAlive = false;
      if (handler === null) this.destroy();
      return 1;
    }
    let list = headers;
    if (this.headerList.length > 0) {
      list = headers === undefined ? this.headerList : this.headerList.concat(headers);
      this.headerList = [];
    }
    if (statusCode < 100) {
      this.fail(
        new UpstreamProtocolError(this.owner.id, new Error(`invalid status ${statusCode}`)),
        true,
      );
      return 0;
    }
    if (statusCode < 200 && statusCode !== 101) {
      // 100 Continue, 103 Early Hints: not relayed; the final response follows.
      this.informational = true;
      return 1;
    }
    if (upgrade || statusCode === 101) {
      this.fail(
        new UpstreamProtocolError(this.owner.id, new Error('unrequested protocol switch')),
        true,
      );
      return 0;
    }
    this.keepAlive = shouldKeepAlive;
    const request = this.request as UpstreamRequest;
    this.announcedKeepAliveMs = announcedKeepAlive(list);
    this.inBody = true;
    // 204 and 304 have no body whatever their headers say (RFC 9110 §6.4.1); nor a HEAD's.
    this.bodyLeft =
      this.skipBody || statusCode === 204 || statusCode === 304 ? -1 : contentLengthOf(list);
    this.armTimer(TimerKind.Body, request.bodyTimeout);
    if (!handler.onHeaders(statusCode, list ?? [], this.resumeCurrent, statusMessage ?? '')) {
      this.pause();
    }
    return this.skipBody ? 1 : 0;
  };

  private readonly onBody = (chunk: Buffer): void => {
    if (this.handler === null || this.responseDone) return;
    if (this.bodyLeft > 0) this.bodyLeft -= chunk.length;
    this.deliver(chunk);
  };

  /** A body chunk for the current handler, or held while it is paused. */
  private deliver(chunk: Buffer): void {
    const handler = this.handler as UpstreamHandler;
    if (this.paused) {
      // The handler asked for a pause: the rest of this read waits for its resume().
      this.held.push(chunk);
      return;
    }
    if (this.timerKind === TimerKind.Body) this.timer?.refresh();
    if (!handler.onData(chunk)) this.pause();
  }

  private readonly onMessageComplete = (): void => {
    if (this.handler === null || this.responseDone) return;
    if (this.informational) {
      this.informational = false;
      this.headerList.length = 0;
      return;
    }
    this.responseDone = true;
    this.inBody = false;
    this.bodyLeft = -1;
    this.disarmTimer();
    if (this.headerList.length > 0) {
      this.trailers = this.headerList;
      this.headerList = [];
    }
  };

  /**
   * Reports a complete response, once the parser has finished the read it came in (so that
   * bytes behind it are seen before the connection is reused) and the handler has taken every
   * held chunk. Called after each read, and from resume().
   */
  private finishResponse(): void {
    const handler = this.handler;
    if (handler === null || !this.responseDone || this.held.length > 0) return;
    const trailers = this.trailers;
    this.trailers = null;
    this.handler = null;
    this.request = null;
    this.resumeCurrent = noop;
    this.served++;
    if (!this.bodyDone) {
      // Answered before the whole request was sent: the connection is out of step.
      this.keepAlive = false;
      this.detachBody(true);
    }
    if (this.keepAlive && !this.closed) {
      if (this.paused) {
        this.paused = false;
        this.readStart();
      }
      this.owner.release(this);
    } else {
      this.destroy();
    }
    handler.onComplete(trailers);
  }

  private pause(): void {
    if (this.paused) return;
    this.paused = true;
    // The body timeout measures the backend's silence, not the client's: off while paused.
    if (this.timerKind === TimerKind.Body) this.timerKind = TimerKind.None;
    // On an onread socket, pause() stops the reads themselves (readStop).
    if (!this.closed) this.socket.pause();
  }

  private resume(): void {
    if (!this.paused) return;
    this.paused = false;
    const handler = this.handler;
    const held = this.held;
    while (held.length > 0 && handler !== null && this.handler === handler) {
      if (!handler.onData(held.shift() as Buffer)) {
        this.paused = true;
        return;
      }
    }
    if (this.handler !== handler) return; // failed or aborted meanwhile
    if (this.responseDone) {
      this.finishResponse();
      return;
    }
    if (this.inBody) this.armTimer(TimerKind.Body, (this.request as UpstreamRequest).bodyTimeout);
    this.readStart();
  }

  private readStart(): void {
    if (!this.closed) this.socket.resume();
  }

  // ---- timers ------------------------------------------------------------------------------

  private armTimer(kind: TimerKind, ms: number): void {
    if (ms <= 0) {
      this.disarmTimer();
      return;
    }
    this.timerKind = kind;
    if (this.timer !== undefined && this.timerMs === ms) {
      this.timer.refresh();
      return;
    }
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerMs = ms;
    this.timer = setTimeout(this.onTimeout, ms);
  }

  private disarmTimer(): void {
    // The Timeout is kept for the next request (refresh() re-arms it); if it fires first, it
    // finds nothing to time and does nothing.
    this.timerKind = TimerKind.None;
  }

  private readonly onTimeout = (): void => {
    const kind = this.timerKind;
    if (kind === TimerKind.None || this.handler === null) return;
    const error =
      kind === TimerKind.Headers
        ? new UpstreamHeadersTimeoutError(this.owner.id, undefined)
        : new UpstreamBodyTimeoutError(this.owner.id, undefined);
    this.fail(error, true);
  };

  private readonly onConnectTimeout = (): void => {
    this.connectTimer = undefined;
    if (this.connected || this.closed) return;
    this.fail(new UpstreamConnectTimeoutError(this.owner.id, undefined), true);
  };

  // ---- ends --------------------------------------------------------------------------------

  private readonly onSocketError = (error: Error): void => {
    this.fail(error, true);
  };

  private readonly onSocketEnd = (): void => {
    // A body delimited by the end of the connection completes here (onMessageComplete).
    const result = this.parser.finish();
    this.keepAlive = false;
    if (this.responseDone) {
      this.finishResponse(); // or at resume(), if chunks are held
    } else if (this.handler !== null) {
      const cause = result instanceof Error ? result : new Error('backend closed the connection');
      this.fail(new UpstreamResetError(this.owner.id, cause), true);
    } else {
      this.destroy();
    }
  };

  private readonly onSocketClose = (): void => {
    // A complete response still has its held chunks to give (resume() reports it).
    if (this.handler !== null && !this.responseDone) {
      this.fail(
        new UpstreamResetError(this.owner.id, new Error('backend closed the connection')),
        false,
      );
    }
    this.closed = true;
    if (this.connectTimer !== undefined) clearTimeout(this.connectTimer);
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.owner.forget(this);
    const parser = this.parser;
    parser.remove();
    // The parser may be on the stack (this close can come from one of its callbacks).
    setImmediate(closeParser, parser);
  };

  /** Fails the current request (if any) and closes the connection. */
  private fail(error: Error, destroy: boolean): void {
    const handler = this.handler;
    this.handler = null;
    this.request = null;
    this.resumeCurrent = noop;
    this.held.length = 0;
    this.responseDone = false;
    this.inBody = false;
    this.bodyLeft = -1;
    this.detachBody(true);
    if (destroy) this.destroy();
    handler?.onError(error);
  }

  /** Closes the connection at once. */
  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.disarmTimer();
    this.socket.destroy();
  }

  /** A request in flight on this connection. */
  get busy(): boolean {
    return this.handler !== null;
  }

  /** Connected (TLS: handshake done) and not closed. */
  get open(): boolean {
    return this.connected && !this.closed;
  }
}

function noop(): void {}

function closeParser(parser: LlhttpParser): void {
  parser.close();
}

/** `Keep-Alive: timeout=N` of a response, in ms (-1 when absent). */
function announcedKeepAlive(headers: readonly string[] | undefined): number {
  if (headers === undefined) return -1;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string;
    if (name.length !== 10 || name.toLowerCase() !== 'keep-alive') continue;
    const match = /(?:^|[\s,])timeout\s*=\s*(\d+)/i.exec(headers[i + 1] as string);
    if (match !== null) return Number(match[1]) * 1000;
  }
  return -1;
}
