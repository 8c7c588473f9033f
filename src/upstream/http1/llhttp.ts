/**
 * Node's own HTTP parser (llhttp compiled into the node binary, the one node:http uses),
 * reached through `node:_http_common`. It is not a public API: the module is internal and
 * carries no stability promise, though its shape has been the same from Node 12 to 24.
 * `loadLlhttp()` therefore checks every member anubis uses and returns undefined when one is
 * missing, so the caller can fall back to undici (src/upstream/backend.ts).
 *
 * The callbacks are slots on the parser object, indexed by the class's kOn* constants; the
 * C++ side calls them synchronously from `execute()` (or from its own socket reads once the
 * parser `consume()`s a socket handle, as the listener's fast path does; results then arrive
 * through kOnExecute). The upstream connection feeds `execute()` itself, and turns kOnBody
 * off (any non-function value) for body bytes it slices out on its own: the binding skips a
 * body callback that is not a function, and still counts the bytes against the framing.
 */
import { createRequire } from 'node:module';

/** One llhttp parser instance (node_http_parser.cc). */
export interface LlhttpParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenientFlags: number): void;
  /** Parses `data`; the byte count parsed, or an Error carrying an `HPE_*` code. */
  execute(data: Buffer): number | Error;
  /** Signals the end of input: completes a body delimited by the connection's end. */
  finish(): number | Error | undefined;
  /** Reads a StreamBase handle directly in C++ (no JS Buffer per read); see kOnExecute. */
  consume(handle: object): void;
  unconsume(): void;
  remove(): void;
  close(): void;
  /** A copy of the read being parsed (only inside kOnExecute of a consumed handle). */
  getCurrentBuffer?(): Buffer;
  [slot: number]: unknown;
}

export interface LlhttpParserClass {
  new (): LlhttpParser;
  readonly RESPONSE: number;
  /** Checked by the listener's fast path (src/server/fast-http1/), which parses requests. */
  readonly REQUEST?: number;
  /** Absent before Node 14; optional (anubis then notices stray bytes one callback later). */
  readonly kOnMessageBegin?: number;
  readonly kOnHeaders: number;
  readonly kOnHeadersComplete: number;
  readonly kOnBody: number;
  readonly kOnMessageComplete: number;
  readonly kOnExecute: number;
  readonly kLenientNone: number;
}

/** A socket's libuv stream handle, as `consume()` takes it. */
export interface StreamHandle {
  readonly isStreamBase?: boolean;
  readStart(): number;
  readStop(): number;
}

/** Arguments of kOnHeadersComplete for a response (method and url are unused). */
export type OnHeadersComplete = (
  versionMajor: number,
  versionMinor: number,
  headers: string[] | undefined,
  method: number | undefined,
  url: string | undefined,
  statusCode: number,
  statusMessage: string | undefined,
  upgrade: boolean,
  shouldKeepAlive: boolean,
) => number;

const SLOTS = [
  'kOnHeaders',
  'kOnHeadersComplete',
  'kOnBody',
  'kOnMessageComplete',
  'kOnExecute',
] as const;
const METHODS = ['initialize', 'execute', 'finish', 'consume', 'unconsume', 'remove', 'close'];

/** The parser class, or undefined when this Node's internals do not have the expected shape. */
export function loadLlhttp(): LlhttpParserClass | undefined {
  try {
    return checkedParserClass(createRequire(import.meta.url)('node:_http_common'));
  } catch {
    return undefined;
  }
}

/** `HTTPParser` of a `_http_common`-like module if it has every member anubis uses. */
export function checkedParserClass(common: unknown): LlhttpParserClass | undefined {
  const parser = (common as { HTTPParser?: unknown } | null)?.HTTPParser as
    LlhttpParserClass | undefined;
  if (typeof parser !== 'function') return undefined;
  if (typeof parser.RESPONSE !== 'number' || typeof parser.kLenientNone !== 'number') {
    return undefined;
  }
  if (SLOTS.some((slot) => typeof parser[slot] !== 'number')) return undefined;
  const proto = parser.prototype as unknown as Record<string, unknown> | undefined;
  if (METHODS.some((method) => typeof proto?.[method] !== 'function')) return undefined;
  return parser;
}

/** llhttp's method names, indexed as the parser reports a request's method; undefined if absent. */
export function loadLlhttpMethods(): readonly string[] | undefined {
  try {
    const methods = (createRequire(import.meta.url)('node:_http_common') as { methods?: unknown })
      .methods;
    return Array.isArray(methods) && methods.every((m) => typeof m === 'string')
      ? methods
      : undefined;
  } catch {
    return undefined;
  }
}
