/**
 * Builds the listeners that are not a plain HTTP/1.1 reverse proxy: TLS (HTTPS and HTTP/2),
 * cleartext h2c, redirect-to-HTTPS, and TCP mode. Plain HTTP listeners stay with the caller
 * (`createSpecialListener` returns undefined for them), so the common path is untouched.
 */
import type { ClientLimitsOptions } from './client-limits.js';
import type { ClientRequestHandler } from '../proxy/client-messages.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../logging/logger.js';
import { TcpProxy } from '../proxy/tcp-proxy.js';
import type { UpstreamPool } from '../upstream/pool.js';
import { HttpListener } from './http-listener.js';
import { createHttpsRedirect } from './https-redirect.js';
import { SecureListener } from './secure-listener.js';
import { TcpListener } from './tcp-listener.js';
import { ListenerCertificates, loadCertificateSet } from './tls-certificates.js';

type ListenerConfig = Config['listeners'][number];

export type RequestHandler = ClientRequestHandler;

/** Any client listener the load balancer runs. */
export type AnyListener = HttpListener | SecureListener | TcpListener;

export interface SpecialListenerContext {
  /** Position in `listeners` (names the listener in TLS file errors). */
  readonly index: number;
  /** The listener's pool (undefined only for redirect listeners). */
  readonly pool: UpstreamPool | undefined;
  /** Resolves relative certificate paths (the configuration file's directory). */
  readonly baseDir: string;
  readonly logger: Logger;
  /** The HTTP proxy's request handler for this pool, given how clients reach anubis. */
  readonly httpHandler: (protocol: 'http' | 'https') => RequestHandler;
  /** Request guard, client limits and Upgrade handler for HTTP(S) listeners (security.md). */
  readonly clientLimits?: (
    protocol: 'http' | 'https',
  ) => Omit<ClientLimitsOptions, 'connectionCap'>;
}

/**
 * What a listener is, as far as a reload can tell: a reload keeps a listener bound at the
 * same address, which is right only while it stays the same kind (changing mode, tls,
 * http2 or redirectToHttps needs a restart).
 */
export type ListenerKind = 'http' | 'tls' | 'h2c' | 'redirect' | 'tcp';

/** Redirect listeners are HttpListeners; this remembers which. */
const redirectListeners = new WeakSet<HttpListener>();

/** The kind a listener configuration asks for. */
export function configuredKind(config: ListenerConfig): ListenerKind {
  if (config.mode === 'tcp') return 'tcp';
  if (config.redirectToHttps !== undefined) return 'redirect';
  if (config.tls !== undefined) return 'tls';
  return config.http2 === true ? 'h2c' : 'http';
}

/** The kind of a running listener. */
export function listenerKind(listener: AnyListener): ListenerKind {
  if (listener instanceof TcpListener) return 'tcp';
  if (listener instanceof SecureListener) return listener.servesTls ? 'tls' : 'h2c';
  return redirectListeners.has(listener) ? 'redirect' : 'http';
}

/** The redirect handler of a `redirectToHttps` listener configuration. */
export function redirectHandler(config: ListenerConfig): RequestHandler {
  const redirect = config.redirectToHttps;
  return createHttpsRedirect(redirect === undefined || redirect === true ? 443 : redirect.port);
}

/** Whether a listener needs createSpecialListener (anything but plain HTTP/1.1). */
export function isSpecialListener(config: ListenerConfig): boolean {
  return (
    config.mode === 'tcp' ||
    config.tls !== undefined ||
    config.http2 === true ||
    config.redirectToHttps !== undefined
  );
}

/**
 * The listener for a TLS, h2c, redirect or TCP listener configuration; undefined for a
 * plain HTTP/1.1 listener. Reads certificate files (rejects with TlsFileError).
 */
export async function createSpecialListener(
  config: ListenerConfig,
  context: SpecialListenerContext,
): Promise<AnyListener | undefined> {
  if (!isSpecialListener(config)) return undefined;
  if (config.mode === 'tcp') {
    const tcp = config.tcp ?? { idleTimeout: 600_000, maxConnections: 0, connectAttempts: 3 };
    const proxy = new TcpProxy({
      pool: context.pool as UpstreamPool,
      idleTimeoutMs: tcp.idleTimeout,
      connectAttempts: tcp.connectAttempts,
      logger: context.logger,
    });
    return new TcpListener({
      address: config.address,
      proxy,
      maxConnections: tcp.maxConnections,
    });
  }
  if (config.redirectToHttps !== undefined) {
    const listener = new HttpListener({
      address: config.address,
      onRequest: redirectHandler(config),
    });
    redirectListeners.add(listener);
    return listener;
  }
  const certificates =
    config.tls === undefined
      ? undefined
      : new ListenerCertificates(
          await loadCertificateSet(config.tls, context.index, context.baseDir),
          context.index,
        );
  const protocol = certificates === undefined ? 'http' : 'https';
  return new SecureListener({
    address: config.address,
    onRequest: context.httpHandler(protocol),
    clientLimits: context.clientLimits?.(protocol),
    certificates,
    // HTTP/2 is on by default with TLS, off (h2c) without.
    http2: config.http2 ?? certificates !== undefined,
  });
}
