/**
 * Header rewriting between client and backend, in both directions.
 *
 * Hop-by-hop headers (RFC 9110 §7.6.1: Connection and the headers it names, Keep-Alive,
 * Proxy-Connection, TE, Transfer-Encoding, Upgrade) describe one connection and are never
 * forwarded; Node and undici frame each side themselves. `Expect` is answered by anubis
 * (Node sends `100 Continue`), so it is not forwarded either.
 *
 * X-Forwarded-For/-Proto/-Host (and the standard `Forwarded`, forwarded.ts) coming from a
 * client are believed only when the client is a trusted proxy; otherwise they are replaced by
 * what anubis saw on the socket, so a client cannot forge its address towards the backend.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import {
  forwardedElement,
  forwardedFor as forwardedForNodes,
  type ForwardedMode,
} from './forwarded.js';

const REQUEST_DROPPED = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'transfer-encoding',
  'upgrade',
  'expect',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'forwarded',
  'via',
]);

const RESPONSE_DROPPED = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'trailer',
]);

/** Lengths of the RESPONSE_DROPPED names (most response headers have none of them). */
const RESPONSE_DROPPED_LENGTHS = new Set([...RESPONSE_DROPPED].map((name) => name.length));

export const VIA_TOKEN = '1.1 anubis';

/** Which client addresses may set X-Forwarded-* (built once from the config's CIDR list). */
export class TrustedProxies {
  private readonly list = new BlockList();
  readonly empty: boolean;

  constructor(cidrs: readonly string[]) {
    for (const entry of cidrs) {
      const [address, prefix] = entry.split('/') as [string, string | undefined];
      const type = isIPv6(address) ? 'ipv6' : 'ipv4';
      if (prefix === undefined) this.list.addAddress(address, type);
      else this.list.addSubnet(address, Number(prefix), type);
    }
    this.empty = cidrs.length === 0;
  }

  has(address: string): boolean {
    if (this.empty || address === '') return false;
    return isIPv4(address) ? this.list.check(address, 'ipv4') : this.list.check(address, 'ipv6');
  }
}

/** Strips the IPv4-mapped IPv6 prefix Node reports for IPv4 clients on dual-stack sockets. */
export function normalizeAddress(address: string | undefined): string {
  if (address === undefined) return '';
  return address.startsWith('::ffff:') && isIPv4(address.slice(7)) ? address.slice(7) : address;
}

/**
 * The client's address: the socket peer, or — when the peer is a trusted proxy — the
 * rightmost X-Forwarded-For entry that is not itself a trusted proxy.
 */
export function resolveClientAddress(
  socketAddress: string,
  forwardedFor: string | string[] | undefined,
  trusted: TrustedProxies,
  forwarded?: string,
): string {
  if ((forwardedFor === undefined && forwarded === undefined) || !trusted.has(socketAddress)) {
    return socketAddress;
  }
  // With `forwardedHeaders: forwarded`, the trusted proxy's Forwarded `for=` nodes are the hops.
  const xff = Array.isArray(forwardedFor) ? forwardedFor.join(',') : (forwardedFor ?? '');
  const hops = forwarded !== undefined ? forwardedForNodes(forwarded) : xff.split(',');
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = normalizeAddress((hops[i] as string).trim());
    if (hop !== '' && !trusted.has(hop)) return hop;
  }
  return socketAddress;
}

/** Names listed in a Connection header value (lower case), or undefined if none. */
function connectionTokens(value: string | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  // Nearly every message says just `keep-alive` or `close`: nothing extra to drop, no Set.
  if (value.length <= 10) {
    const lower = value.toLowerCase();
    if (lower === 'keep-alive' || lower === 'close') return undefined;
  }
  const tokens = new Set<string>();
  for (const token of value.split(',')) {
    const name = token.trim().toLowerCase();
    if (name !== '' && name !== 'close' && name !== 'keep-alive') tokens.add(name);
  }
  return tokens.size === 0 ? undefined : tokens;
}

export interface ForwardingInfo {
  /** Socket peer address (normalised). */
  readonly peerAddress: string;
  /** Whether the peer is a trusted proxy whose X-Forwarded-* headers are kept. */
  readonly peerTrusted: boolean;
  /** `http` or `https`: how the client reached anubis. */
  readonly protocol: string;
  /** Which forwarding headers to send (forwarded.ts); default `x-forwarded`. */
  readonly mode?: ForwardedMode;
}

/**
 * Builds the flat `[name, value, name, value, …]` header list sent to the backend from the
 * client's raw headers (names keep their case; repeated headers stay separate).
 */
export function buildRequestHeaders(
  rawHeaders: readonly string[],
  connection: string | undefined,
  info: ForwardingInfo,
): string[] {
  const extra = connectionTokens(connection);
  const out: string[] = [];
  let forwardedFor: string | undefined;
  let forwardedProto: string | undefined;
  let forwardedHost: string | undefined;
  let host: string | undefined;
  let authority: string | undefined;
  /** Index in `out` of the first Cookie value (-1: none yet). */
  let cookieAt = -1;
  let via: string | undefined;
  let forwarded: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    const value = rawHeaders[i + 1] as string;
    // HTTP/2 pseudo-headers (:method, :path, :scheme, :authority) are not headers in
    // HTTP/1.1; :authority becomes Host when the client sent none (RFC 9113 §8.3.1).
    if (name.charCodeAt(0) === 58 /* ':' */) {
      if (name === ':authority') authority = value;
      continue;
    }
    const lower = name.toLowerCase();
    if (REQUEST_DROPPED.has(lower)) {
      switch (lower) {
        case 'x-forwarded-for':
          forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`;
          break;
        case 'x-forwarded-proto':
          forwardedProto ??= value;
          break;
        case 'x-forwarded-host':
          forwardedHost ??= value;
          break;
        case 'via':
          via = via === undefined ? value : `${via}, ${value}`;
          break;
        case 'forwarded':
          forwarded = forwarded === undefined ? value : `${forwarded}, ${value}`;
          break;
        default:
          // TE: trailers is the one value that may be forwarded (backends may then send trailers).
          if (lower === 'te' && value.trim().toLowerCase() === 'trailers') out.push(name, value);
      }
      continue;
    }
    if (extra?.has(lower) === true) continue;
    // `X_Forwarded_For` and the like: CGI/WSGI-style backends map `_` and `-` to the same
    // variable, so such a header could pose as the one anubis sets. Dropped, as nginx drops
    // every header with `_` by default (here only variants of the headers dropped above).
    if (lower.indexOf('_') !== -1 && REQUEST_DROPPED.has(lower.replaceAll('_', '-'))) continue;
    if (lower === 'host') host = value;
    else if (lower === 'cookie' && authority !== undefined) {
      // HTTP/2 clients may split Cookie into one field per pair (RFC 9113 §8.2.3); towards an
      // HTTP/1.1 backend they are one header again, joined with "; ". (HTTP/1.1 requests,
      // which have no :authority, keep their headers as sent.)
      if (cookieAt !== -1) {
        out[cookieAt] = `${out[cookieAt] as string}; ${value}`;
        continue;
      }
      cookieAt = out.length + 1;
    }
    out.push(name, value);
  }
  if (host === undefined && authority !== undefined) {
    host = authority;
    out.push('host', authority);
  }
  const trusted = info.peerTrusted;
  const mode = info.mode ?? 'x-forwarded';
  if (mode !== 'forwarded') {
    out.push(
      'x-forwarded-for',
      trusted && forwardedFor !== undefined
        ? `${forwardedFor}, ${info.peerAddress}`
        : info.peerAddress,
      'x-forwarded-proto',
      trusted && forwardedProto !== undefined ? forwardedProto : info.protocol,
    );
    const xfHost = trusted && forwardedHost !== undefined ? forwardedHost : host;
    if (xfHost !== undefined) out.push('x-forwarded-host', xfHost);
  }
  if (mode !== 'x-forwarded') {
    const element = forwardedElement(info.peerAddress, info.protocol, host);
    out.push(
      'forwarded',
      trusted && forwarded !== undefined ? `${forwarded}, ${element}` : element,
    );
  } else if (trusted && forwarded !== undefined) {
    // Not ours to extend, but a trusted proxy's header passes through.
    out.push('forwarded', forwarded);
  }
  out.push('via', via === undefined ? VIA_TOKEN : `${via}, ${VIA_TOKEN}`);
  return out;
}

/**
 * Converts undici's raw response headers (Buffers) into the flat string list that Node's
 * `writeHead` accepts, dropping hop-by-hop headers. Repeated headers such as Set-Cookie stay
 * separate entries.
 */
export function buildResponseHeaders(rawHeaders: readonly (Buffer | string)[]): string[] {
  const out: string[] = [];
  let extra: Set<string> | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = latin1(rawHeaders[i] as Buffer | string);
    // Only names as long as a dropped one are lower-cased and looked up.
    if (RESPONSE_DROPPED_LENGTHS.has(name.length)) {
      const lower = name.toLowerCase();
      if (RESPONSE_DROPPED.has(lower)) {
        if (lower === 'connection') extra = connectionTokens(latin1(rawHeaders[i + 1] as Buffer));
        continue;
      }
    }
    out.push(name, latin1(rawHeaders[i + 1] as Buffer | string));
  }
  if (extra === undefined) return out;
  const filtered: string[] = [];
  for (let i = 0; i < out.length; i += 2) {
    if (!extra.has((out[i] as string).toLowerCase()))
      filtered.push(out[i] as string, out[i + 1] as string);
  }
  return filtered;
}

/** A header name or value as a string: undici gives Buffers, anubis's own client strings. */
export function latin1(value: Buffer | string): string {
  return typeof value === 'string' ? value : value.toString('latin1');
}

/**
 * A reason phrase Node's writeHead accepts (RFC 9112 §4: HTAB, SP, VCHAR, obs-text). undici
 * lets through what llhttp accepts, e.g. DEL, which writeHead would throw on.
 */
export function isValidReasonPhrase(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f || c > 0xff) return false;
  }
  return true;
}
