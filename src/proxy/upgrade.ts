/**
 * WebSocket and any other `Upgrade` (h2c, custom protocols): the request is sent to a backend
 * chosen by the pool's strategy — the same PickContext as a plain request, so hash strategies
 * keep a client on its backend — and once the backend answers `101 Switching Protocols` the
 * two sockets are piped both ways (with back-pressure) until either side closes.
 *
 * An upgraded connection counts in `backend.active` (requestStarted/requestEnded) for as long
 * as it is open, so least-connections sees long-lived sockets. A backend that cannot be
 * reached, or does not answer in time, gets the client a 502/504 before any upgrade; a backend
 * that refuses the upgrade (any non-101 answer) has that answer relayed, then the connection
 * is closed.
 *
 * Open upgraded connections are kept in a registry per backend, so that a backend removed or
 * drained at runtime can have them closed: `closeUpgraded(backend, timeoutMs)`.
 */
import {
  request as httpRequest,
  STATUS_CODES,
  type ClientRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
} from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../logging/logger.js';
import type { BackendView, PickContext } from '../strategies/types.js';
import type { Backend } from '../upstream/backend.js';
import type { UpstreamPool } from '../upstream/pool.js';
import { UpstreamHeadersTimeoutError } from '../errors.js';
import { endWithAnswer } from '../server/client-limits.js';
import { classifyUpstreamError } from './upstream-errors.js';
import type { ForwardedMode } from './forwarded.js';
import {
  buildRequestHeaders,
  normalizeAddress,
  resolveClientAddress,
  type TrustedProxies,
} from './headers.js';

export interface UpgradeProxyOptions {
  readonly pool: UpstreamPool;
  readonly trustedProxies: TrustedProxies;
  readonly protocol: 'http' | 'https';
  readonly logger: Logger;
  readonly forwardedHeaders?: ForwardedMode;
}

/** Largest body of a refusal (non-101 answer) relayed from a backend; longer ones are cut. */
const MAX_REFUSAL_BODY = 64 * 1024;

/** Response headers that describe the backend connection, not the client's. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection']);

/** The pick context of one Upgrade request; `excluded` grows as backends fail. */
interface UpgradeContext extends PickContext {
  excluded: ReadonlySet<BackendView> | undefined;
}

/** One upgraded (or upgrading) client connection and its backend side. */
class Tunnel {
  readonly backend: Backend;
  readonly client: Duplex;
  upstream: Socket | undefined;
  private ended = false;
  private readonly done: Array<() => void> = [];

  constructor(backend: Backend, client: Duplex) {
    this.backend = backend;
    this.client = client;
  }

  /** Ends the bookkeeping once: active count, registry. */
  finish(failed: boolean): void {
    if (this.ended) return;
    this.ended = true;
    this.backend.requestEnded(failed);
    unregister(this);
    for (const resolve of this.done) resolve();
  }

  get finished(): boolean {
    return this.ended;
  }

  closed(): Promise<void> {
    if (this.ended) return Promise.resolve();
    return new Promise((resolve) => this.done.push(resolve));
  }

  destroy(): void {
    this.client.destroy();
    this.upstream?.destroy();
  }
}

const tunnels = new Map<Backend, Set<Tunnel>>();

function register(tunnel: Tunnel): void {
  let set = tunnels.get(tunnel.backend);
  if (set === undefined) {
    set = new Set();
    tunnels.set(tunnel.backend, set);
  }
  set.add(tunnel);
}

function unregister(tunnel: Tunnel): void {
  const set = tunnels.get(tunnel.backend);
  if (set === undefined) return;
  set.delete(tunnel);
  if (set.size === 0) tunnels.delete(tunnel.backend);
}

/** Upgraded (or upgrading) connections open to `backend` right now. */
export function upgradedCount(backend: BackendView): number {
  return tunnels.get(backend as Backend)?.size ?? 0;
}

/**
 * Lets the upgraded connections of `backend` end by themselves for at most `timeoutMs`, then
 * cuts those still open (both sides). A tunnel carries opaque bytes, so anubis cannot send a
 * protocol-level goodbye (a WebSocket close frame could land inside a frame being relayed):
 * clients see the TCP connection close and reconnect, to another backend if this one is gone.
 * Resolves with the number of connections that had to be cut.
 */
export async function closeUpgraded(backend: BackendView, timeoutMs: number): Promise<number> {
  const open = tunnels.get(backend as Backend);
  if (open === undefined || open.size === 0) return 0;
  const all = Promise.all([...open].map((t) => t.closed()));
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeoutMs);
    timer.unref();
  });
  await Promise.race([all, deadline]);
  clearTimeout(timer);
  const left = [...(tunnels.get(backend as Backend) ?? [])];
  for (const tunnel of left) {
    tunnel.destroy();
    tunnel.finish(false);
  }
  return left.length;
}

function rawAnswer(status: number): string {
  const body = `${status} ${STATUS_CODES[status] ?? 'Error'}\n`;
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\ncontent-type: text/plain; charset=utf-8\r\n` +
    `content-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`
  );
}

/** Serialises a response head (status line and raw headers, minus `skip`). */
function responseHead(res: IncomingMessage, skip: ReadonlySet<string>, extra = ''): string {
  let head = `HTTP/1.1 ${res.statusCode ?? 502} ${res.statusMessage ?? ''}\r\n`;
  const raw = res.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if (!skip.has((raw[i] as string).toLowerCase())) head += `${raw[i]}: ${raw[i + 1]}\r\n`;
  }
  return `${head}${extra}\r\n`;
}

export class UpgradeProxy {
  private readonly options: UpgradeProxyOptions;

  constructor(options: UpgradeProxyOptions) {
    this.options = options;
  }

  /** The `upgrade` listener of an http.Server (after the request guard). */
  readonly handleUpgrade = (req: IncomingMessage, client: Duplex, head: Buffer): void => {
    const { pool, trustedProxies, protocol, forwardedHeaders } = this.options;
    const peerAddress = normalizeAddress(req.socket.remoteAddress);
    const context: UpgradeContext = {
      clientAddress: resolveClientAddress(
        peerAddress,
        req.headers['x-forwarded-for'],
        trustedProxies,
        forwardedHeaders === 'forwarded' ? req.headers.forwarded : undefined,
      ),
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      headers: req.headers,
      excluded: undefined,
    };
    const backend = pool.pick(context);
    if (backend === undefined) {
      endWithAnswer(client, rawAnswer(503));
      return;
    }
    const headers = buildRequestHeaders(req.rawHeaders, req.headers.connection, {
      peerAddress,
      peerTrusted: trustedProxies.has(peerAddress),
      protocol,
      mode: forwardedHeaders ?? 'x-forwarded',
    });
    headers.push(
      'Connection',
      connectionForUpgrade(req, headers),
      'Upgrade',
      req.headers.upgrade ?? '',
    );

    this.open(backend, client, req, headers, head, context);
  };

  /** Starts the upgrade towards `backend` (counted as active from now on). */
  private open(
    backend: Backend,
    client: Duplex,
    req: IncomingMessage,
    headers: string[],
    head: Buffer,
    context: UpgradeContext,
  ): void {
    const tunnel = new Tunnel(backend, client);
    backend.requestStarted();
    register(tunnel);
    this.connect(tunnel, req, headers, head, context);
  }

  /**
   * After a failure that sent nothing (connection refused, unreachable): the next backend the
   * strategy picks with the failed ones excluded, within the pool's retry attempts.
   */
  private retryTarget(context: UpgradeContext, failed: Backend): Backend | undefined {
    const excluded = new Set<BackendView>(context.excluded ?? []);
    excluded.add(failed);
    context.excluded = excluded;
    const attempts = this.options.pool.config.retry?.attempts ?? 1;
    if (excluded.size >= attempts) return undefined;
    return this.options.pool.pick(context);
  }

  private connect(
    tunnel: Tunnel,
    req: IncomingMessage,
    headers: string[],
    head: Buffer,
    context: UpgradeContext,
  ): void {
    const { backend, client } = tunnel;
    const timeouts = this.options.pool.config.timeouts;
    const url = new URL(backend.url);
    const secure = url.protocol === 'https:';
    const send = secure ? httpsRequest : httpRequest;
    const upstream: ClientRequest = send({
      host: url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
      port: url.port === '' ? (secure ? 443 : 80) : Number(url.port),
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      // A raw [name, value, …] list keeps names' case and repeated headers apart.
      headers: headers as unknown as OutgoingHttpHeaders,
      agent: false,
      setHost: false,
      ...(secure ? tlsOptions(backend) : {}),
    });

    // The backend must answer (101 or a refusal) within connect + headers timeouts.
    const limit = timeouts.connect + timeouts.headers;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      upstream.destroy(new Error('upgrade: backend did not answer in time'));
    }, limit);
    timer.unref();

    const onClientGone = (): void => {
      clearTimeout(timer);
      upstream.destroy();
      tunnel.finish(false);
    };
    client.once('close', onClientGone);
    client.on('error', () => client.destroy());

    upstream.on('error', (error) => {
      clearTimeout(timer);
      client.off('close', onClientGone);
      if (tunnel.finished) return;
      const classified = timedOut
        ? new UpstreamHeadersTimeoutError(backend.id, error)
        : classifyUpstreamError(error, backend.id);
      this.options.pool.health?.reportError(backend, classified);
      this.options.logger.warn(
        {
          pool: this.options.pool.name,
          backend: backend.id,
          code: classified.code,
          err: error.message,
        },
        'upgrade request to backend failed',
      );
      tunnel.finish(true);
      // Nothing reached the backend: another one may take the upgrade.
      const next =
        classified.retry === 'always' && !client.destroyed
          ? this.retryTarget(context, backend)
          : undefined;
      if (next !== undefined) this.open(next, client, req, headers, head, context);
      else endWithAnswer(client, rawAnswer(timedOut ? 504 : classified.status));
    });

    upstream.on('response', (res: IncomingMessage) => {
      // The backend refused to switch protocols: relay its answer, then close.
      clearTimeout(timer);
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size <= MAX_REFUSAL_BODY) chunks.push(chunk);
        else res.destroy();
      });
      res.on('error', () => {});
      res.on('close', () => {
        client.off('close', onClientGone);
        const body = Buffer.concat(chunks);
        const skip = new Set([...HOP_BY_HOP, 'content-length', 'upgrade']);
        const headText = responseHead(
          res,
          skip,
          `content-length: ${body.length}\r\nconnection: close\r\n`,
        );
        if (client.writable) client.write(headText);
        endWithAnswer(client, body);
        tunnel.finish(false);
      });
    });

    upstream.on('upgrade', (res: IncomingMessage, socket: Socket, upstreamHead: Buffer) => {
      clearTimeout(timer);
      // The 101 is this backend's answer: the upgraded connection is no longer awaited.
      backend.responseStarted(performance.now());
      client.off('close', onClientGone);
      tunnel.upstream = socket;
      if (client.destroyed) {
        socket.destroy();
        tunnel.finish(false);
        return;
      }
      socket.setNoDelay(true);
      (client as Socket).setNoDelay?.(true);
      // The switch itself: status line and every header of the backend's 101, as sent.
      client.write(responseHead(res, new Set()));
      if (upstreamHead.length > 0) client.write(upstreamHead);
      if (head.length > 0) socket.write(head);
      socket.pipe(client);
      client.pipe(socket);
      // A clean end on one side (FIN) is passed on by pipe(); once either socket is closed the
      // other is ended (its queued bytes still go out) and cut at the latest a second later.
      const close = (): void => {
        tunnel.finish(false);
        endWithAnswer(client, undefined);
        endWithAnswer(socket, undefined);
      };
      const fail = (): void => {
        tunnel.finish(true);
        client.destroy();
        socket.destroy();
      };
      socket.on('error', fail);
      client.on('error', close);
      socket.once('close', close);
      client.once('close', close);
    });

    upstream.end();
  }
}

/** Headers that can never be named in Connection and passed on (framing, routing, forwarding). */
const NEVER_PASSED = new Set([
  'upgrade',
  'close',
  'keep-alive',
  'host',
  'content-length',
  'transfer-encoding',
  'te',
  'trailer',
  'proxy-connection',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'forwarded',
  'via',
]);

/**
 * The Connection value towards the backend, `Upgrade` plus the protocol's own connection
 * options: h2c's `Connection: Upgrade, HTTP2-Settings` needs its HTTP2-Settings header, which
 * buildRequestHeaders dropped as connection-specific; it is added back to `headers` here.
 */
function connectionForUpgrade(req: IncomingMessage, headers: string[]): string {
  const named: string[] = [];
  for (const token of (req.headers.connection ?? '').split(',')) {
    const name = token.trim().toLowerCase();
    if (name !== '' && !NEVER_PASSED.has(name) && !named.includes(name)) named.push(name);
  }
  if (named.length === 0) return 'Upgrade';
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if (named.includes((raw[i] as string).toLowerCase()))
      headers.push(raw[i] as string, raw[i + 1] as string);
  }
  return `Upgrade, ${named.join(', ')}`;
}

function tlsOptions(backend: Backend): Record<string, unknown> {
  const tls = (
    backend as { tls?: { ca?: string[]; rejectUnauthorized: boolean; servername?: string } }
  ).tls;
  if (tls === undefined) return {};
  return {
    rejectUnauthorized: tls.rejectUnauthorized,
    ...(tls.ca === undefined ? {} : { ca: tls.ca }),
    ...(tls.servername === undefined ? {} : { servername: tls.servername }),
  };
}
