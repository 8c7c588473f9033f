/**
 * Test backends on ephemeral loopback ports. Every helper returns something with close();
 * tests close what they start (t.after / finally).
 */
import { readFileSync } from 'node:fs';
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

/** The first port the kernel hands out for `listen(0)` and outgoing connections. */
function ephemeralPortsStart(): number {
  try {
    const first = Number(
      readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/)[0],
    );
    return Number.isInteger(first) && first > 0 ? first : 32_768;
  } catch {
    return 32_768;
  }
}

const BELOW_EPHEMERAL = ephemeralPortsStart();

/** Binds 127.0.0.1:port (0: any) and closes it again; the port, or undefined if taken. */
async function bindAndRelease(port: number): Promise<number | undefined> {
  const server = createTcpServer();
  const bound = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => resolve(true));
  });
  if (!bound) return undefined;
  const { port: actual } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return actual;
}

/**
 * A port that was free a moment ago (for a process a test starts later, or a "connection
 * refused" backend). It is drawn below the kernel's ephemeral range when there is room, so
 * that no `listen(0)` and no outgoing connection of a test running alongside can take it
 * between this check and its use.
 */
export async function freePort(): Promise<number> {
  if (BELOW_EPHEMERAL > 12_000) {
    for (let attempt = 0; attempt < 20; attempt++) {
      const candidate = BELOW_EPHEMERAL - 10_000 + Math.floor(Math.random() * 10_000);
      const port = await bindAndRelease(candidate);
      if (port !== undefined) return port;
    }
  }
  return (await bindAndRelease(0)) as number;
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
