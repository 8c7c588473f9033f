/**
 * The demo's hello-world backend: answers every request with `Hello from <name>` and says
 * which server it is in an `X-Server` header. Used by `anubis demo`, `anubis hello` (the
 * backends of the docker-compose example) and the tests.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HelloServer {
  readonly server: Server;
  readonly name: string;
  readonly url: string;
  close(): Promise<void>;
}

export function createHelloHandler(name: string) {
  const body = `Hello from ${name}\n`;
  const length = String(Buffer.byteLength(body));
  return (req: IncomingMessage, res: ServerResponse): void => {
    // Drain any request body before answering so keep-alive connections stay usable.
    req.resume();
    req.once('end', () => {
      res.writeHead(200, {
        'content-type': 'text/plain; charset=utf-8',
        'content-length': length,
        'x-server': name,
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    });
  };
}

/** Starts a hello-world server on `host:port` (port 0: any free port). */
export async function startHelloServer(
  name: string,
  host = '127.0.0.1',
  port = 0,
): Promise<HelloServer> {
  const server = createServer({ keepAliveTimeout: 5_000 }, createHelloHandler(name));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const hostPart = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    server,
    name,
    url: `http://${hostPart}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
