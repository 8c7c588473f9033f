/**
 * A client-facing HTTP listener: a node:http server bound to one address, handing every
 * request to the proxy. Closing it stops accepting, closes idle keep-alive connections, lets
 * in-flight requests finish up to a drain timeout, then cuts what is left.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ListenAddress } from '../config/units.js';
import { formatAddress } from '../config/units.js';
import { ListenError } from '../errors.js';

export interface HttpListenerOptions {
  readonly address: ListenAddress;
  readonly onRequest: (req: IncomingMessage, res: ServerResponse) => void;
  /** Idle time allowed on a client keep-alive connection between requests. */
  readonly keepAliveTimeoutMs?: number;
  /** Time allowed to receive a request's headers (slowloris defence). */
  readonly headersTimeoutMs?: number;
}

export class HttpListener {
  readonly server: Server;
  private readonly address: ListenAddress;

  constructor(options: HttpListenerOptions) {
    this.address = options.address;
    this.server = createServer(
      {
        keepAliveTimeout: options.keepAliveTimeoutMs ?? 5_000,
        headersTimeout: options.headersTimeoutMs ?? 30_000,
        // The proxy enforces its own per-pool timeouts; Node's whole-request timeout would cut
        // long uploads and downloads.
        requestTimeout: 0,
        noDelay: true,
      },
      options.onRequest,
    );
  }

  /** Binds the address; resolves with the bound address (useful with port 0). */
  listen(): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error): void => {
        reject(new ListenError(formatAddress(this.address.host, this.address.port), error));
      };
      this.server.once('error', onError);
      this.server.listen(this.address.port, this.address.host, () => {
        this.server.off('error', onError);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /** The bound address (after listen()). */
  boundAddress(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  /**
   * Stops accepting and waits for in-flight requests to finish, at most `drainMs`, then closes
   * every remaining connection.
   */
  async close(drainMs = 10_000): Promise<void> {
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    const timer = setTimeout(() => this.server.closeAllConnections(), drainMs);
    timer.unref();
    // Connections that finish a request while draining are closed rather than kept alive.
    this.server.on('request', (_req: IncomingMessage, res: ServerResponse) => {
      res.shouldKeepAlive = false;
    });
    await closed;
    clearTimeout(timer);
  }
}
