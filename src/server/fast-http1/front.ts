/**
 * The socket server in front of a plain HTTP listener's node:http server when the fast path
 * is on (`listeners[].fastPath`, the default). It accepts every connection, applies the
 * connection cap, and serves plain bodiless HTTP/1.1 requests itself (connection.ts); every
 * other connection is handed to the node:http server, which never binds but runs its usual
 * connection bookkeeping (timeouts, closeIdleConnections) from the front's 'listening' on.
 */
import type { Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import type { LimitsConfig } from '../../config/schema.js';
import type { Logger } from '../../logging/logger.js';
import {
  loadLlhttp,
  loadLlhttpMethods,
  type LlhttpParserClass,
} from '../../upstream/http1/llhttp.js';
import { capConnections, parserHeaderBudget } from '../client-limits.js';
import { RequestGuard } from '../request-guard.js';
import { FastConnection, type FastPathContext } from './connection.js';
import type { FastRequest } from './request.js';
import { headerMergingAvailable } from './request.js';
import type { FastResponse } from './response.js';

interface FastPathRuntime {
  readonly parserClass: LlhttpParserClass & { readonly REQUEST: number };
  readonly methods: readonly string[];
}

let runtime: FastPathRuntime | null | undefined;

/**
 * What the fast path needs from Node's internals (the llhttp binding with its request
 * parser, llhttp's method table, IncomingMessage's header merging), or undefined when this
 * Node lacks any of it: the listener then runs on node:http alone.
 */
export function fastPathRuntime(): FastPathRuntime | undefined {
  runtime ??=
    checkedFastPathRuntime(loadLlhttp(), loadLlhttpMethods(), headerMergingAvailable) ?? null;
  return runtime ?? undefined;
}

/** The runtime made of these pieces if each has every member the fast path uses. */
export function checkedFastPathRuntime(
  parserClass: LlhttpParserClass | undefined,
  methods: readonly string[] | undefined,
  headerMerging: boolean,
): FastPathRuntime | undefined {
  if (parserClass === undefined || methods === undefined || !headerMerging) return undefined;
  const proto = parserClass.prototype as { getCurrentBuffer?: unknown } | undefined;
  if (
    typeof parserClass.REQUEST !== 'number' ||
    typeof parserClass.kOnMessageBegin !== 'number' ||
    typeof proto?.getCurrentBuffer !== 'function'
  ) {
    return undefined;
  }
  return { parserClass: parserClass as FastPathRuntime['parserClass'], methods };
}

function destroySocket(this: Socket): void {
  this.destroy();
}

export interface FastHttp1FrontOptions {
  readonly runtime: FastPathRuntime;
  /** node:http server the connections the fast path does not serve go to. */
  readonly http: HttpServer;
  readonly limits: LimitsConfig;
  readonly logger: Logger;
  /** Serves one request (the proxy, through the listener's reload indirection). */
  readonly handle: (req: FastRequest, res: FastResponse) => void;
}

export class FastHttp1Front {
  /** The server that binds the listener's address. */
  readonly server: Server;
  private readonly connections = new Set<FastConnection>();

  constructor(options: FastHttp1FrontOptions) {
    const { http, limits, logger } = options;
    const context: FastPathContext = {
      parserClass: options.runtime.parserClass,
      methods: options.runtime.methods,
      headerBudget: parserHeaderBudget(limits),
      headersTimeoutMs: http.headersTimeout,
      keepAliveTimeoutMs: http.keepAliveTimeout,
      guard: new RequestGuard(limits),
      logger,
      handle: options.handle,
      handOff: (socket) => http.emit('connection', socket),
      forget: (connection) => this.connections.delete(connection),
    };
    // As node:http's own server: half-open sockets (a client's FIN is handled, not automatic).
    this.server = createNetServer({ allowHalfOpen: true, noDelay: true }, (socket: Socket) => {
      // Refused by the connection cap (its 503 is on the way): nothing it sends is read, and
      // a reset only ends it.
      if (socket.writableEnded) {
        socket.on('error', destroySocket);
        return;
      }
      const connection = FastConnection.accept(socket, context);
      if (connection !== undefined) this.connections.add(connection);
    });
    capConnections(this.server, limits.maxConnections, logger);
    this.server.once('listening', () => http.emit('listening'));
    this.server.once('close', () => http.close(() => {}));
  }

  /** Draining: idle fast-path connections close now, busy ones after their response. */
  closeIdleConnections(): void {
    for (const connection of this.connections) connection.closeIfIdle();
  }

  /** Cuts every connection still on the fast path. */
  closeAllConnections(): void {
    for (const connection of this.connections) connection.socket.destroy();
  }
}
