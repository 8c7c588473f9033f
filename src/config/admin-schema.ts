/**
 * Configuration keys of the operations features: the admin listener (`admin`) and the drain
 * timeout used by graceful shutdown and by backends removed at runtime (`drainTimeout`).
 *
 * The admin API can drain and remove backends, so it listens on loopback only unless the
 * operator writes `allowRemote: true`; it never shares an address with a public listener.
 */
import { isIPv4 } from 'node:net';
import { z } from 'zod';
import { formatAddress, parseListenAddress, type ListenAddress } from './units.js';

/** True for 127.0.0.0/8, ::1 and `localhost`. */
export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  if (host.startsWith('::ffff:')) return isLoopbackHost(host.slice(7));
  return isIPv4(host) && host.startsWith('127.');
}

const adminAddress = z.string().transform((value, ctx) => {
  const parsed = parseListenAddress(value);
  if (parsed === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `expected host:port such as 127.0.0.1:9090, found ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return { ...parsed, text: value };
});

export const adminSchema = z
  .strictObject({
    /** Where the admin API, /metrics and the dashboard listen, e.g. 127.0.0.1:9090. */
    address: adminAddress,
    /** When set, every request must carry `Authorization: Bearer <token>`. */
    token: z.string().min(8).optional(),
    /** Allow a non-loopback admin address (anyone who reaches it can drain backends). */
    allowRemote: z.boolean().default(false),
  })
  .superRefine((admin, ctx) => {
    if (!admin.allowRemote && !isLoopbackHost(admin.address.host)) {
      ctx.addIssue({
        code: 'custom',
        path: ['address'],
        message: `expected a loopback address (127.0.0.1, ::1, localhost) unless admin.allowRemote is true, found ${JSON.stringify(admin.address.text)}`,
      });
    }
  });

export type AdminConfig = z.output<typeof adminSchema>;

/** The admin listener must not share an address with a public listener. */
export function checkAdminAddress(
  admin: AdminConfig | undefined,
  listeners: readonly { readonly address: ListenAddress }[],
  ctx: z.RefinementCtx,
): void {
  if (admin === undefined || admin.address.port === 0) return;
  const clash = listeners.findIndex(
    (l) =>
      l.address.port === admin.address.port &&
      (l.address.host === admin.address.host ||
        l.address.host === '0.0.0.0' ||
        l.address.host === '::'),
  );
  if (clash >= 0) {
    ctx.addIssue({
      code: 'custom',
      path: ['admin', 'address'],
      message: `expected an address of its own (the admin API is never served on a public listener), found ${formatAddress(admin.address.host, admin.address.port)}, also used by listeners[${clash}]`,
    });
  }
}
