/**
 * Binding a listener's servers to its address, with a coded error naming the address.
 *
 * One server binds alone. With acceptors (src/server/accept-sockets.ts) every server binds
 * the port with SO_REUSEPORT, after a plain probe socket has bound the address alone:
 * SO_REUSEPORT would otherwise let a second anubis (or any process of the same user that
 * sets it) share the port silently instead of failing with EADDRINUSE.
 */
import type { AddressInfo, Server } from 'node:net';
import { createServer } from 'node:net';
import { formatAddress, type ListenAddress } from '../config/units.js';
import { ListenError } from '../errors.js';

function listenOnce(
  server: Server,
  options: { port: number; host: string; reusePort?: boolean },
): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    server.once('error', onError);
    server.listen(options, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) resolve();
    else server.close(() => resolve());
  });
}

/**
 * Binds `main` to `address`, alone when `acceptors` is empty, else with SO_REUSEPORT and every
 * acceptor on the same port (port 0: the port the probe was given). Resolves with main's bound
 * address; rejects with ListenError naming the address, leaving nothing bound.
 */
export async function bindServer(
  main: Server,
  address: ListenAddress,
  acceptors: readonly Server[] = [],
): Promise<AddressInfo> {
  const { host } = address;
  try {
    if (acceptors.length === 0) return await listenOnce(main, { port: address.port, host });
    const probe = createServer();
    const { port } = await listenOnce(probe, { port: address.port, host });
    await closeServer(probe);
    const bound = await listenOnce(main, { port, host, reusePort: true });
    for (const acceptor of acceptors) await listenOnce(acceptor, { port, host, reusePort: true });
    return bound;
  } catch (error) {
    await Promise.all([main, ...acceptors].map(closeServer));
    throw new ListenError(formatAddress(host, address.port), error);
  }
}

/** Stops every socket accepting; resolves when each server's own connections have closed. */
export function closeServers(servers: readonly Server[]): Promise<void> {
  return Promise.all(servers.map(closeServer)).then(() => undefined);
}

/** Open connections over all the servers (each counts those it accepted). */
export function countConnections(servers: readonly Server[]): Promise<number> {
  return Promise.all(
    servers.map(
      (server) =>
        new Promise<number>((resolve) => {
          server.getConnections((error, count) => resolve(error === null ? count : 0));
        }),
    ),
  ).then((counts) => counts.reduce((sum, n) => sum + n, 0));
}
