/**
 * Test backends on ephemeral loopback ports. Every helper returns something with close();
 * tests close what they start (t.after / finally).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface TestServer {
  readonly url: string;
  readonly port: number;
  readonly server: Server;
  close(): Promise<void>;
}

/** An HTTP backend with a custom handler on 127.0.0.1:0. */
export async function startBackend(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<TestServer> {
  const server = createServer({ keepAliveTimeout: 5_000 }, handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A backend answering `name` as its body (after an optional delay in ms). */
export function startNamedBackend(name: string, delayMs = 0): Promise<TestServer> {
  return startBackend((req, res) => {
    req.resume();
    req.on('end', () => {
      const send = (): void => {
        res.writeHead(200, { 'content-type': 'text/plain', 'x-server': name });
        res.end(name);
      };
      if (delayMs > 0) setTimeout(send, delayMs);
      else send();
    });
  });
}

export interface RawBackend {
  readonly url: string;
  readonly port: number;
  /** Everything each accepted connection sent, in order. */
  readonly received: Buffer[][];
  close(): Promise<void>;
}

/**
 * A raw TCP backend: records the exact bytes each connection sends, and answers with
 * `respond(dataSoFar, socket)` (called on every chunk).
 */
export async function startRawBackend(
  respond: (data: Buffer, socket: Socket) => void,
): Promise<RawBackend> {
  const received: Buffer[][] = [];
  const sockets = new Set<Socket>();
  const server: TcpServer = createTcpServer((socket) => {
    sockets.add(socket);
    const chunks: Buffer[] = [];
    received.push(chunks);
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      respond(Buffer.concat(chunks), socket);
    });
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A port that was free a moment ago (for "connection refused" backends). */
export async function freePort(): Promise<number> {
  const server = createTcpServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Writes `size` bytes of `chunk` repeats to `res` with back-pressure (waits for 'drain'),
 * then ends it: a backend that streams a large body without holding it in memory.
 */
export function streamBytes(
  res: ServerResponse,
  size: number,
  chunk = Buffer.alloc(64 * 1024, 97),
): void {
  let sent = 0;
  const pump = (): void => {
    while (sent < size) {
      sent += chunk.length;
      if (!res.write(chunk)) {
        res.once('drain', pump);
        return;
      }
    }
    res.end();
  };
  pump();
}
