/**
 * For the `client: undici` pools (anubis's own client sets `reusedSocket` itself):
 * tells a request's handler whether undici wrote its request on a *reused* keep-alive connection
 * (one that already carried a request) or on a fresh one. A request that fails on a reused
 * connection before any byte of response arrived is the classic keep-alive race: the backend
 * closed the idle connection while the request was on its way, so it never processed it, and
 * it is safe to resend whatever the method (Chrome's and Go's rule; Node's http.Agent exposes
 * the same fact as `req.reusedSocket`).
 *
 * What undici 7 does and does not do (read from lib/dispatcher/client-h1.js, 7.30):
 *   - before reusing an idle socket it yields one event-loop turn (setImmediate) so that a
 *     FIN or RST already received is seen and the socket dropped (GHSA-35p6-xmwp-9g52); this
 *     narrows the race to a FIN still in flight while the request is written;
 *   - it never retries by itself: a socket that closes under a running request fails it with
 *     `UND_ERR_SOCKET` ("other side closed") or ECONNRESET, whether the socket was fresh or not;
 *   - the dispatch handler is never shown the socket, and the error carries only counters.
 *
 * So anubis subscribes to undici's `undici:client:sendHeaders` diagnostics channel, which
 * publishes `{ request, socket }` synchronously inside the same call (writeH1) that first calls
 * the handler's `onConnect()`. The adapter (undici-pool.ts) registers the request's handler in
 * onConnect; the subscriber tags it as reused if the socket was seen before (a WeakSet of
 * sockets that carried a request).
 */
import { subscribe } from 'node:diagnostics_channel';

/** What the subscriber sets on the handler of the request being written. */
export interface SocketReuseTarget {
  reusedSocket: boolean;
}

const seenSockets = new WeakSet<object>();
let pending: SocketReuseTarget | undefined;

interface SendHeadersMessage {
  readonly socket: object;
}

function onSendHeaders(message: unknown): void {
  const socket = (message as SendHeadersMessage).socket;
  const reused = seenSockets.has(socket);
  if (!reused) seenSockets.add(socket);
  const target = pending;
  if (target === undefined) return;
  pending = undefined;
  target.reusedSocket = reused;
}

subscribe('undici:client:sendHeaders', onSendHeaders);

/**
 * Called from the handler's onConnect(): the next sendHeaders message is about its request
 * (undici publishes it synchronously after onConnect, in the same writeH1 call).
 */
export function expectSocketReport(target: SocketReuseTarget): void {
  target.reusedSocket = false;
  pending = target;
}
