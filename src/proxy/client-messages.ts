/**
 * What the proxy needs from a client's request and response. node:http's IncomingMessage and
 * ServerResponse (and HTTP/2's compatibility objects) provide it, and so does the listener's
 * HTTP/1.1 fast path (src/server/fast-http1/), which serves plain bodiless requests without
 * node:http's per-request machinery.
 */
import type {
  IncomingHttpHeaders,
  IncomingMessage,
  OutgoingHttpHeader,
  OutgoingHttpHeaders,
} from 'node:http';

/** The request fields read by the proxy, the request guard and the strategies. */
export interface ClientRequestHead {
  readonly method?: string | undefined;
  /** Rewritten by the request guard for absolute-form targets. */
  url?: string | undefined;
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: string[];
  readonly httpVersion: string;
  readonly httpVersionMajor: number;
  readonly socket: { readonly remoteAddress?: string | undefined; readonly destroyed: boolean };
}

/**
 * A request without a body, as the fast path hands it over: it has no stream to read, and
 * `bodiless` tells it apart from an IncomingMessage.
 */
export interface BodilessRequest extends ClientRequestHead {
  readonly bodiless: true;
}

/** A client request: node:http's (body as a stream) or the fast path's (no body). */
export type ProxiedRequest = IncomingMessage | BodilessRequest;

/**
 * The response methods the proxy calls (ServerResponse's signatures). `close` means the
 * client is gone or the response is over; a listener must tolerate both.
 */
export interface ProxiedResponse {
  /** True once writeHead ran (the head may still be buffered). */
  readonly headersSent: boolean;
  /** false: close the connection after this response (`Connection: close`). */
  shouldKeepAlive: boolean;
  writeHead(statusCode: number, headers?: OutgoingHttpHeaders | OutgoingHttpHeader[]): this;
  writeHead(
    statusCode: number,
    statusMessage: string,
    headers?: OutgoingHttpHeaders | OutgoingHttpHeader[],
  ): this;
  /** false: the client is slow; wait for 'drain' before writing more. */
  write(chunk: Buffer): boolean;
  end(chunk?: string): this;
  /** Cuts the response (and its connection). */
  destroy(): this;
  addTrailers(headers: OutgoingHttpHeaders | readonly [string, string][]): void;
  on(event: 'close', listener: () => void): this;
  once(event: 'drain', listener: () => void): this;
}

/** A client request's handler: node:http's requests, and the fast path's bodiless ones. */
export type ClientRequestHandler = (req: ProxiedRequest, res: ProxiedResponse) => void;
