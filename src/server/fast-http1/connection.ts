/**
 * One client connection on the fast path. Node's llhttp parser (the one node:http uses, in
 * the same strict mode) reads the socket in C++; a read that holds exactly one complete
 * request which the fast path may serve is answered here, without node:http's per-request
 * objects. Anything else hands the whole connection to node:http, with the bytes of that read
 * put back first, so node:http parses them from the start of a request exactly as if it had
 * owned the connection all along (and answers, refuses or upgrades it as before).
 *
 * The fast path serves a request when all of these hold (and hands off otherwise):
 *   - it is HTTP/1.1, its target is origin-form (`/…`) and the request guard passes it;
 *   - it has no Content-Length, Transfer-Encoding, Expect or Upgrade header, is no CONNECT;
 *   - nothing follows it in the read that completes it (no pipelined bytes behind it);
 *   - no earlier response on the connection is still being written.
 * Bytes that arrive while a response is being written (pipelining) are kept, the socket is
 * paused, and the connection goes to node:http as soon as that response is complete.
 *
 * A head split over several reads is parsed as it comes, and the bytes of those reads are
 * kept until it is complete. So the bytes node:http gets on a hand-off always start at a
 * request boundary: the reads since the current request began.
 *
 * Timeouts, as node:http applies them: a request head must be complete within
 * `headersTimeout` from the connection's start (first request) or from its first byte (later
 * ones), else 408; an idle keep-alive connection is closed after `keepAliveTimeout` plus
 * node:http's one-second grace. A half-closed client (FIN) gets its connection ended, as
 * node:http does (the response in flight is cut).
 */
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../../logging/logger.js';
import type { LlhttpParser, LlhttpParserClass, StreamHandle } from '../../upstream/http1/llhttp.js';
import { answerClientError, answerInternalError } from '../client-limits.js';
import type { RequestGuard } from '../request-guard.js';
import { FastRequest } from './request.js';
import { FastResponse, type ResponseOwner } from './response.js';

/** node:http keeps an idle connection this much longer than the Keep-Alive it advertises. */
const KEEP_ALIVE_GRACE_MS = 1_000;

/** What every connection of one listener shares. */
export interface FastPathContext {
  readonly parserClass: LlhttpParserClass & { readonly REQUEST: number };
  /** llhttp's method names, by the index the parser reports. */
  readonly methods: readonly string[];
  /** Bytes the parser accepts for the request line and headers (client-limits.ts). */
  readonly headerBudget: number;
  readonly headersTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  readonly guard: RequestGuard;
  readonly logger: Logger;
  /** Serves one request (the proxy). */
  handle(req: FastRequest, res: FastResponse): void;
  /** Gives the socket to node:http (its unread bytes already put back). */
  handOff(socket: Socket): void;
  /** The connection closed or left the fast path. */
  forget(connection: FastConnection): void;
}

type ConsumableHandle = StreamHandle & { _consumed?: boolean };

const OPEN = 0;
const HANDED_OFF = 1;
const CLOSED = 2;

function closeParser(parser: LlhttpParser): void {
  parser.close();
}

/** Ends the socket once its writes are out, then destroys it (node:http's destroySoon). */
function endThenDestroy(socket: Socket): void {
  socket.end();
  if (socket.writableFinished) socket.destroy();
  else socket.once('finish', () => socket.destroy());
}

export class FastConnection implements ResponseOwner {
  readonly socket: Socket;
  readonly keepAliveTimeoutMs: number;
  private readonly context: FastPathContext;
  private readonly parser: LlhttpParser;
  private readonly handle: ConsumableHandle;
  private state = OPEN;
  /** The listener is draining: close after the response in flight. */
  private closing = false;
  private response: FastResponse | undefined = undefined;
  /** Bytes read while a response was in flight, for node:http once it is complete. */
  private held: Buffer | undefined = undefined;
  /** Runs while a request head is awaited (from connect, or from a later head's first byte). */
  private headersTimer: NodeJS.Timeout | undefined = undefined;
  private idleTimer: NodeJS.Timeout | undefined = undefined;
  /** When the last response finished (performance.now()), for the keep-alive timeout. */
  private idleSince = 0;

  /** Reads of a request head not complete yet (it began in the first of them). */
  private partial: Buffer[] | undefined = undefined;

  // What the parser saw during the current read (reset by onExecute).
  private begun = 0;
  /**
   * A request head was completed. For a request the fast path serves, that is the whole
   * request: it has no body, so llhttp completes the message right after its head (and
   * anubis needs no message-complete callback, one call from C++ fewer per request); any
   * other request is handed off whole.
   */
  private complete = false;
  private eligible = false;
  private keepAlive = false;
  private method = '';
  private url = '';
  private rawHeaders: string[] | undefined = undefined;
  private pendingUrl = '';

  /** Starts serving `socket`, or returns undefined (handed off at once) if it cannot. */
  static accept(socket: Socket, context: FastPathContext): FastConnection | undefined {
    const handle = (socket as unknown as { _handle?: ConsumableHandle | null })._handle;
    if (handle?.isStreamBase !== true || handle._consumed === true) {
      context.handOff(socket);
      return undefined;
    }
    return new FastConnection(socket, handle, context);
  }

  private constructor(socket: Socket, handle: ConsumableHandle, context: FastPathContext) {
    this.socket = socket;
    this.handle = handle;
    this.context = context;
    this.keepAliveTimeoutMs = context.keepAliveTimeoutMs;
    const Parser = context.parserClass;
    const parser = new Parser();
    this.parser = parser;
    parser.initialize(Parser.REQUEST, {}, context.headerBudget, Parser.kLenientNone);
    parser[Parser.kOnMessageBegin as number] = this.onMessageBegin;
    parser[Parser.kOnHeaders] = this.onHeaders;
    parser[Parser.kOnHeadersComplete] = this.onHeadersComplete;
    parser[Parser.kOnBody] = this.onBody;
    parser[Parser.kOnExecute] = this.onExecute;
    socket.on('error', this.onError);
    socket.on('end', this.onEnd);
    socket.on('close', this.onClose);
    socket.on('drain', this.onDrain);
    handle._consumed = true;
    parser.consume(handle);
    // Flowing, so that the end of the client's input is reported ('end').
    socket.resume();
    this.armHeadersTimer();
  }

  private armHeadersTimer(): void {
    const timeout = this.context.headersTimeoutMs;
    if (timeout > 0) this.headersTimer = setTimeout(this.onHeadersTimeout, timeout).unref();
  }

  /** The listener drains: an idle connection closes now, a busy one after its response. */
  closeIfIdle(): void {
    this.closing = true;
    if (this.state !== OPEN) return;
    const response = this.response;
    if (response === undefined) this.socket.destroy();
    // Its head not written yet: it says `Connection: close`.
    else if (!response.headersSent) response.shouldKeepAlive = false;
  }

  // ---- parser callbacks (synchronous, inside the parser's read) ----------------------------

  private readonly onMessageBegin = (): void => {
    this.begun++;
    this.rawHeaders = undefined;
    this.pendingUrl = '';
  };

  /** More than 32 header fields arrive in batches before the head is complete. */
  private readonly onHeaders = (headers: string[], url: string): void => {
    if (this.rawHeaders === undefined) this.rawHeaders = headers;
    else for (const field of headers) this.rawHeaders.push(field);
    this.pendingUrl += url;
  };

  private readonly onHeadersComplete = (
    versionMajor: number,
    versionMinor: number,
    headers: string[] | undefined,
    method: number,
    url: string | undefined,
    _statusCode: number,
    _statusMessage: string | undefined,
    upgrade: boolean,
    shouldKeepAlive: boolean,
  ): number => {
    const raw = headers ?? this.rawHeaders ?? [];
    this.rawHeaders = raw;
    const target = url === undefined || url === '' ? this.pendingUrl : url;
    this.url = target;
    this.complete = true;
    this.method = this.context.methods[method] ?? '';
    this.keepAlive = shouldKeepAlive;
    this.eligible =
      versionMajor === 1 &&
      versionMinor === 1 &&
      !upgrade &&
      target.charCodeAt(0) === 47 /* '/' */ &&
      !declaresBodyOrProtocol(raw);
    // 2: stop after this head (no body is parsed): the connection is handed off anyway.
    return this.eligible ? 0 : 2;
  };

  private readonly onBody = (): void => {
    this.eligible = false;
  };

  /** After each read the parser consumed: serve, wait for the rest, hold or hand off. */
  private readonly onExecute = (ret: number | Error): void => {
    const { begun, complete, eligible } = this;
    this.begun = 0;
    this.complete = false;
    this.eligible = false;
    if (this.state !== OPEN) return;
    if (this.response !== undefined) {
      this.hold();
      return;
    }
    // Requests this read began or continued.
    const requests = begun + (this.partial === undefined ? 0 : 1);
    if (typeof ret !== 'number' || requests > 1) {
      this.handOff(this.sinceRequestStart());
      return;
    }
    // A read of nothing but the CRLFs llhttp allows between requests.
    if (requests === 0) return;
    if (!complete) {
      (this.partial ??= []).push(this.currentRead());
      // A later request's head: node:http's headersTimeout counts from its first byte.
      if (this.headersTimer === undefined) this.armHeadersTimer();
      return;
    }
    if (!eligible) {
      this.handOff(this.sinceRequestStart());
      return;
    }
    this.serve();
  };

  // ---- serving -----------------------------------------------------------------------------

  private serve(): void {
    const context = this.context;
    const req = new FastRequest(this.socket, this.method, this.url, this.rawHeaders ?? []);
    this.rawHeaders = undefined;
    // A request the guard refuses goes to node:http, which refuses it as it always did.
    if (context.guard.check(req) !== undefined) {
      this.handOff(this.sinceRequestStart());
      return;
    }
    this.partial = undefined;
    if (this.headersTimer !== undefined) {
      clearTimeout(this.headersTimer);
      this.headersTimer = undefined;
    }
    const res = new FastResponse(this, req.method === 'HEAD', this.keepAlive && !this.closing);
    this.response = res;
    try {
      context.handle(req, res);
    } catch (error) {
      answerInternalError(req, res, error, context.logger);
    }
  }

  responseFinished(response: FastResponse): void {
    if (response !== this.response) return;
    this.response = undefined;
    if (this.state !== OPEN) return;
    // Pipelined bytes go to node:http, unless the answer said `Connection: close`: requests
    // behind it are not answered (RFC 9112 §9.6). A draining listener closes the rest.
    const held = this.held;
    this.held = undefined;
    if (held !== undefined && !response.last) {
      this.handOff(held);
      return;
    }
    if (response.last || this.closing) {
      this.state = CLOSED;
      const socket = this.socket;
      // The answer is all with the kernel and the client sent nothing more: closing now puts
      // the FIN right behind it (as nginx closes when it has no reason to linger), without a
      // shutdown request and the loop turn it waits for.
      if (!this.closing && held === undefined && socket.writableLength === 0) socket.destroy();
      else endThenDestroy(socket);
      return;
    }
    if (this.keepAliveTimeoutMs <= 0) return;
    // The timer is armed once and checks the idle time when it fires (a read of the clock
    // per response is cheaper than re-arming a timer).
    this.idleSince = performance.now();
    this.idleTimer ??= setTimeout(this.onIdleTimeout, this.idleLimitMs()).unref();
  }

  /** How long a keep-alive connection may stay idle: the advertised timeout plus grace. */
  private idleLimitMs(): number {
    return this.keepAliveTimeoutMs + KEEP_ALIVE_GRACE_MS;
  }

  // ---- leaving the fast path ---------------------------------------------------------------

  /** The bytes of the read being parsed (only valid inside onExecute). */
  private currentRead(): Buffer {
    return (this.parser.getCurrentBuffer as () => Buffer).call(this.parser);
  }

  /** The bytes since the current request began: earlier reads of its head, and this one. */
  private sinceRequestStart(): Buffer {
    const partial = this.partial;
    this.partial = undefined;
    return partial === undefined
      ? this.currentRead()
      : Buffer.concat([...partial, this.currentRead()]);
  }

  /**
   * Bytes came while a response is in flight: keep them, stop parsing (the socket buffers
   * what follows, paused) and hand off once the response is complete.
   */
  private hold(): void {
    this.held = this.currentRead();
    this.socket.pause();
    this.releaseParser();
  }

  private handOff(bytes: Buffer): void {
    this.state = HANDED_OFF;
    this.clearTimers();
    const socket = this.socket;
    socket.pause();
    this.releaseParser();
    socket.off('error', this.onError);
    socket.off('end', this.onEnd);
    socket.off('close', this.onClose);
    socket.off('drain', this.onDrain);
    if (bytes.length > 0) socket.unshift(bytes);
    this.context.forget(this);
    this.context.handOff(socket);
    socket.resume();
  }

  /** Gives the socket's reads back to the stream and frees the parser (once). */
  private releaseParser(): void {
    if (this.handle._consumed !== true) return;
    this.handle._consumed = false;
    const parser = this.parser;
    parser.unconsume();
    parser.remove();
    // Not inside its own callback: close it once the current read is done.
    setImmediate(closeParser, parser);
  }

  private clearTimers(): void {
    if (this.headersTimer !== undefined) clearTimeout(this.headersTimer);
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    this.headersTimer = undefined;
    this.idleTimer = undefined;
  }

  // ---- socket events -----------------------------------------------------------------------

  private readonly onHeadersTimeout = (): void => {
    this.headersTimer = undefined;
    if (this.state !== OPEN || this.response !== undefined) return;
    this.state = CLOSED;
    const error = Object.assign(new Error('request not received in time'), {
      code: 'ERR_HTTP_REQUEST_TIMEOUT',
    });
    answerClientError(error, this.socket, this.context.logger);
  };

  /**
   * Idle between requests for the whole limit: closed. Busy, or a head under way (the
   * headers timeout's business): checked again a full limit later; idle for part of it:
   * checked again when the limit would run out.
   */
  private readonly onIdleTimeout = (): void => {
    this.idleTimer = undefined;
    if (this.state !== OPEN) return;
    const limit = this.idleLimitMs();
    const busy = this.response !== undefined || this.partial !== undefined;
    const idleFor = busy ? 0 : performance.now() - this.idleSince;
    if (idleFor >= limit) {
      this.socket.destroy();
      return;
    }
    this.idleTimer = setTimeout(this.onIdleTimeout, limit - idleFor).unref();
  };

  private readonly onError = (): void => {
    this.socket.destroy();
  };

  /** The client half-closed: node:http ends the connection, cutting a response in flight. */
  private readonly onEnd = (): void => {
    if (this.state !== OPEN) return;
    this.state = CLOSED;
    if (this.socket.writable) this.socket.end();
  };

  private readonly onClose = (): void => {
    this.state = CLOSED;
    this.clearTimers();
    this.releaseParser();
    this.context.forget(this);
    const response = this.response;
    this.response = undefined;
    response?.emitClose();
  };

  private readonly onDrain = (): void => {
    this.response?.emitDrain();
  };
}

/**
 * Whether a head declares a body (Content-Length, Transfer-Encoding) or asks for protocol
 * handling node:http does (Expect, Upgrade): such requests are left to node:http.
 */
function declaresBodyOrProtocol(raw: readonly string[]): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    switch (name.length) {
      case 6:
        if (name.toLowerCase() === 'expect') return true;
        break;
      case 7:
        if (name.toLowerCase() === 'upgrade') return true;
        break;
      case 14:
        if (name.toLowerCase() === 'content-length') return true;
        break;
      case 17:
        if (name.toLowerCase() === 'transfer-encoding') return true;
        break;
    }
  }
  return false;
}
