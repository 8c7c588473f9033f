/**
 * Response trailers (fields sent after a chunked body, RFC 9110 §6.5) are relayed to a client
 * that said it accepts them (`TE: trailers`; headers.ts forwards that to the backend) and whose
 * response is chunked; Node drops them on any other response (HTTP/1.0, Content-Length, HEAD).
 * Fields that must not be trailers (framing, routing, authentication, control) are dropped, as
 * are names or values Node would refuse. Request trailers are not forwarded: the body is
 * re-framed towards the backend, which gets the body alone.
 */
import type { ClientRequestHead, ProxiedResponse } from './client-messages.js';
import { latin1 } from './headers.js';

/** RFC 9110 §6.5.1: fields a sender must not put in trailers (or a recipient must not merge). */
const FORBIDDEN = new Set([
  'content-length',
  'transfer-encoding',
  'content-type',
  'content-encoding',
  'content-range',
  'host',
  'connection',
  'keep-alive',
  'te',
  'trailer',
  'upgrade',
  'authorization',
  'proxy-authorization',
  'set-cookie',
  'cache-control',
  'expect',
  'max-forwards',
  'pragma',
  'range',
  'age',
  'expires',
  'date',
  'location',
  'retry-after',
  'vary',
  'www-authenticate',
  'proxy-authenticate',
]);

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Field values: visible ASCII, obs-text, space and tab (no CR, LF, NUL or other controls).
const VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** True if the client's TE header lists `trailers`. */
export function acceptsTrailers(req: ClientRequestHead): boolean {
  const te = req.headers.te;
  if (typeof te !== 'string') return false;
  for (const part of te.split(',')) {
    if (part.split(';', 1)[0]?.trim().toLowerCase() === 'trailers') return true;
  }
  return false;
}

/** Adds the backend's trailers (a raw [name, value, …] list) to the response. */
export function forwardTrailers(
  req: ClientRequestHead,
  res: ProxiedResponse,
  trailers: readonly (Buffer | string)[] | null | undefined,
): void {
  if (trailers === null || trailers === undefined || trailers.length === 0) return;
  if (!acceptsTrailers(req)) return;
  const pairs: [string, string][] = [];
  for (let i = 0; i + 1 < trailers.length; i += 2) {
    const name = latin1(trailers[i] as Buffer | string);
    const value = latin1(trailers[i + 1] as Buffer | string);
    if (FORBIDDEN.has(name.toLowerCase()) || !TOKEN.test(name) || !VALUE.test(value)) continue;
    pairs.push([name, value]);
  }
  if (pairs.length > 0) res.addTrailers(pairs);
}
