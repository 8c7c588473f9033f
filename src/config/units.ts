import { isIPv4, isIPv6 } from 'node:net';

/**
 * Value parsers shared by the config schema and the CLI: durations ("250ms", "5s", "1m",
 * or a plain number of milliseconds), byte sizes ("64kb", "1mb") and listen addresses.
 */

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const DURATION_FACTORS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds for a duration string or number; undefined if malformed. */
export function parseDuration(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined;
  const match = DURATION.exec(value.trim());
  if (match === null) return undefined;
  const factor = DURATION_FACTORS[match[2] as string] as number;
  return Number(match[1]) * factor;
}

const SIZE = /^(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)?$/i;
const SIZE_FACTORS: Record<string, number> = {
  b: 1,
  kb: 1024,
  kib: 1024,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
};

/** Bytes for a size string ("16kb", "1mib") or number; undefined if malformed. */
export function parseSize(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 ? value : undefined;
  const match = SIZE.exec(value.trim());
  if (match === null) return undefined;
  const unit = (match[2] ?? 'b').toLowerCase();
  return Math.floor(Number(match[1]) * (SIZE_FACTORS[unit] as number));
}

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/**
 * Parses `host:port`, `[v6]:port` or `:port` (all interfaces). Port 0 asks the OS for a free
 * port (useful in tests). Returns undefined if malformed.
 */
export function parseListenAddress(value: string): ListenAddress | undefined {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]*)):(\d{1,5})$/.exec(value.trim());
  if (match === null) return undefined;
  const port = Number(match[3]);
  if (port > 65535) return undefined;
  const host = match[1] ?? (match[2] === undefined || match[2] === '' ? '0.0.0.0' : match[2]);
  return { host, port };
}

/** `host:port` with IPv6 hosts bracketed. */
export function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Checks an IP address or CIDR block (`10.0.0.0/8`, `::1`); returns a message if invalid. */
export function cidrError(entry: string): string | undefined {
  const [address, prefix, extra] = entry.split('/');
  const max = address === undefined ? 0 : isIPv4(address) ? 32 : isIPv6(address) ? 128 : 0;
  if (extra !== undefined || max === 0) {
    return `expected an IP address or CIDR block such as 10.0.0.0/8, found ${JSON.stringify(entry)}`;
  }
  if (prefix !== undefined && !(/^\d{1,3}$/.test(prefix) && Number(prefix) <= max)) {
    return `expected a prefix length from 0 to ${max}, found ${JSON.stringify(entry)}`;
  }
  return undefined;
}
