/**
 * Several listening sockets for one address, all feeding one server (SO_REUSEPORT).
 *
 * Since libuv 1.45 (libuv/libuv#3696) a listening socket accepts one connection per
 * event-loop iteration. A single process saturated by requests takes milliseconds per
 * iteration, so hundreds of connections opened at once (a client pool reconnecting, a
 * deploy behind another balancer) wait up to seconds in the kernel's accept queue. With k
 * sockets bound to the same port the kernel spreads new connections over them by a hash of
 * the 4-tuple, and the loop accepts up to k per iteration.
 *
 * The listener's own server binds first; the extra servers ("acceptors") hand every
 * connection they accept to it ('connection', as node:http documents for injected sockets),
 * so timeouts, the connection cap and draining see one server. A connection stays counted by
 * the server that accepted it (`getConnections`, and `close()` waits for it).
 * Binding the group is src/server/bind.ts's job.
 *
 * Available on Linux with Node >= 22.12 (22.x) or >= 23.1 (`reusePort` of server.listen), and
 * only in a single process: cluster workers' listening sockets belong to the primary.
 */
import cluster from 'node:cluster';
import { createServer, type Server, type Socket } from 'node:net';

/** Listening sockets per address when `acceptSockets` is `auto` and SO_REUSEPORT is usable. */
export const AUTO_ACCEPT_SOCKETS = 8;

/** What a listener's `acceptSockets` setting may be. */
export type AcceptSocketsSetting = 'auto' | number;

export interface Runtime {
  /** `process.versions.node` */
  readonly node: string;
  readonly platform: NodeJS.Platform;
  readonly clusterWorker: boolean;
}

const THIS_RUNTIME: Runtime = {
  node: process.versions.node,
  platform: process.platform,
  clusterWorker: cluster.isWorker,
};

/** Why this runtime cannot bind several sockets to one address, or undefined when it can. */
export function reusePortUnavailable(runtime: Runtime = THIS_RUNTIME): string | undefined {
  if (runtime.clusterWorker) return 'cluster workers share the primary’s listening socket';
  if (runtime.platform !== 'linux') return `SO_REUSEPORT balancing is used on Linux only`;
  const [major = 0, minor = 0] = runtime.node.split('.').map(Number);
  const supported = major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
  return supported ? undefined : `Node ${runtime.node} has no reusePort (needs >= 22.12)`;
}

/** The number of listening sockets to bind for a setting on this runtime (1: just one). */
export function acceptSocketCount(
  setting: AcceptSocketsSetting,
  runtime: Runtime = THIS_RUNTIME,
): { readonly count: number; readonly unavailable: string | undefined } {
  const unavailable = reusePortUnavailable(runtime);
  if (unavailable !== undefined) return { count: 1, unavailable };
  return { count: setting === 'auto' ? AUTO_ACCEPT_SOCKETS : setting, unavailable };
}

/** Options a net.Server applies at accept, copied to acceptors so their sockets match. */
export interface AcceptOptions {
  readonly allowHalfOpen: boolean;
  readonly noDelay: boolean;
}

/** An extra listening server whose connections go to `target` as if it had accepted them. */
export function createAcceptor(target: Server, options: AcceptOptions): Server {
  return createServer(options, (socket: Socket) => {
    target.emit('connection', socket);
  });
}
