/**
 * A `mode: tcp` listener: a net.Server whose connections go to the TCP proxy. Connections
 * start paused (nothing is read before a backend is connected) and half-open capable (a
 * client's FIN is passed on, not answered by closing). Beyond `maxConnections` open at once,
 * new connections are closed at accept (counted in `refused`).
 *
 * Closing stops accepting, lets open connections finish for at most `drainMs`, then cuts
 * what is left.
 */
import { createServer, type AddressInfo, type Server } from 'node:net';
import type { ListenAddress } from '../config/units.js';
import { formatAddress } from '../config/units.js';
import type { TcpProxy } from '../proxy/tcp-proxy.js';
import type { ClientListener } from './secure-listener.js';
import { bindServer, countConnections } from './bind.js';

export interface TcpListenerOptions {
  readonly address: ListenAddress;
  readonly proxy: TcpProxy;
  /** Most client connections open at once; 0 = no limit. */
  readonly maxConnections: number;
}

export class TcpListener implements ClientListener {
  readonly server: Server;
  readonly proxy: TcpProxy;
  /** `host:port` as configured (the key a reload matches listeners by). */
  readonly addressText: string;
  /** Connections closed at accept because `maxConnections` were open. */
  refused = 0;
  private readonly address: ListenAddress;

  constructor(options: TcpListenerOptions) {
    this.address = options.address;
    this.addressText = formatAddress(options.address.host, options.address.port);
    this.proxy = options.proxy;
    this.server = createServer(
      { pauseOnConnect: true, allowHalfOpen: true, noDelay: true },
      options.proxy.handleConnection,
    );
    if (options.maxConnections > 0) this.server.maxConnections = options.maxConnections;
    this.server.on('drop', () => this.refused++);
  }

  listen(): Promise<AddressInfo> {
    return bindServer(this.server, this.address);
  }

  boundAddress(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  openConnections(): Promise<number> {
    return countConnections([this.server]);
  }

  /** Stops accepting; open connections get `drainMs` to finish, then are cut. */
  async close(drainMs = 10_000): Promise<void> {
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    const timer = setTimeout(() => this.proxy.destroyAll(), drainMs);
    timer.unref();
    await closed;
    clearTimeout(timer);
  }
}
