/**
 * Raw HTTP/1.1 over sockets for the security tests: send exact bytes to anubis and read
 * exactly what comes back; a raw backend that answers each complete request it receives (so
 * tests can inspect the precise bytes that reached it).
 */
import { connect, type Socket } from 'node:net';
import { startRawBackend, type RawBackend } from './servers.js';

export interface RawExchange {
  /** Everything anubis sent back, latin1. */
  readonly text: string;
  /** Status codes of every response head found in `text`, in order. */
  readonly statuses: number[];
  /** True if anubis closed the connection before `waitMs` ran out. */
  readonly closed: boolean;
}

/** Status codes of the response heads in a raw stream. */
export function statusesOf(text: string): number[] {
  return [...text.matchAll(/HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));
}

/**
 * Sends `bytes` (after opening a connection to 127.0.0.1:port) and collects the answer until
 * anubis closes the connection or `waitMs` passes.
 */
export function sendRaw(
  port: number,
  bytes: string | Buffer | readonly (string | Buffer)[],
  waitMs = 2_000,
): Promise<RawExchange> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let closed = false;
    const finish = (): void => {
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      resolve({ text, statuses: statusesOf(text), closed });
    };
    const timer = setTimeout(finish, waitMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      closed = true;
      finish();
    });
    socket.on('connect', () => {
      const parts = Array.isArray(bytes) ? bytes : [bytes];
      for (const part of parts as (string | Buffer)[]) {
        socket.write(typeof part === 'string' ? Buffer.from(part, 'latin1') : part);
      }
    });
  });
}

/** Opens a connection and resolves once connected (the caller writes and destroys it). */
export function openRaw(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/**
 * Offset just past the first complete HTTP/1.1 request in `data` (Content-Length or chunked
 * framing), or -1 if it is not complete yet.
 */
export function requestEnd(data: Buffer, from = 0): number {
  const headEnd = data.indexOf('\r\n\r\n', from);
  if (headEnd === -1) return -1;
  const head = data.subarray(from, headEnd).toString('latin1');
  let at = headEnd + 4;
  if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
    for (;;) {
      const lineEnd = data.indexOf('\r\n', at);
      if (lineEnd === -1) return -1;
      const size = parseInt(data.subarray(at, lineEnd).toString('latin1'), 16);
      if (size === 0) {
        const trailerEnd = data.indexOf('\r\n\r\n', lineEnd);
        return trailerEnd === -1 ? -1 : trailerEnd + 4;
      }
      at = lineEnd + 2 + size + 2;
      if (at > data.length) return -1;
    }
  }
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  at += length === null ? 0 : Number(length[1]);
  return at <= data.length ? at : -1;
}

/** Splits everything one connection sent into its requests (complete ones only). */
export function splitRequests(data: Buffer): string[] {
  const out: string[] = [];
  let from = 0;
  for (;;) {
    const end = requestEnd(data, from);
    if (end === -1) return out;
    out.push(data.subarray(from, end).toString('latin1'));
    from = end;
  }
}

/** A raw backend scripted per request (startScriptedBackend). */
export interface ScriptedBackend extends RawBackend {
  /** Server-side sockets, one per accepted connection, in order. */
  readonly sockets: Socket[];
  /** Every complete request received, in order (latin1). */
  requests(): string[];
}

/**
 * A raw TCP backend that calls `answer(request, socket, nth)` once per complete request, in
 * order (`nth` counts requests on that connection), and lets it write whatever it wants; it
 * records the exact bytes of each connection (`received`).
 */
export async function startScriptedBackend(
  answer: (request: string, socket: Socket, nth: number) => void,
): Promise<ScriptedBackend> {
  const answered = new WeakMap<Socket, number>();
  const sockets: Socket[] = [];
  const backend = await startRawBackend((data, socket) => {
    if (!sockets.includes(socket)) sockets.push(socket);
    const requests = splitRequests(data);
    let done = answered.get(socket) ?? 0;
    for (; done < requests.length && !socket.destroyed; done++) {
      answered.set(socket, done + 1);
      answer(requests[done] as string, socket, done);
    }
  });
  return Object.assign(backend, {
    sockets,
    requests: () => backend.received.flatMap((chunks) => splitRequests(Buffer.concat(chunks))),
  });
}

/**
 * A raw TCP backend that answers each complete request once, in order, with the bytes
 * `answer(request)` returns (latin1), or closes the connection when it returns null.
 */
export function startRawResponder(
  answer: (request: string) => string | null,
): Promise<ScriptedBackend> {
  return startScriptedBackend((request, socket) => {
    const bytes = answer(request);
    if (bytes === null) socket.destroy();
    else socket.write(Buffer.from(bytes, 'latin1'));
  });
}

/** The request target of a raw request (`GET /a HTTP/1.1` → `/a`). */
export function targetOf(request: string): string {
  return request.split(' ', 2)[1] as string;
}

/**
 * A raw TCP backend that answers every complete request with `200 ok` (keep-alive), and
 * records the exact bytes of each connection (`received`).
 */
export function startRecordingBackend(
  body = 'ok',
  extraHeaders = '',
): Promise<RawBackend & { requests(): string[] }> {
  const answer = `HTTP/1.1 200 OK\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extraHeaders}\r\n${body}`;
  return startRawResponder(() => answer);
}
