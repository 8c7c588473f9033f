/** Binding a listener's server to its address, with a coded error naming the address. */
import type { AddressInfo, Server } from 'node:net';
import { formatAddress, type ListenAddress } from '../config/units.js';
import { ListenError } from '../errors.js';

/** Listens on `address`; resolves with the bound address (useful with port 0). */
export function bindServer(server: Server, address: ListenAddress): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => {
      reject(new ListenError(formatAddress(address.host, address.port), error));
    };
    server.once('error', onError);
    server.listen(address.port, address.host, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}
