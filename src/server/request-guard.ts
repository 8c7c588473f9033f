/**
 * The request guard: what a request must satisfy before anubis forwards it, on top of what
 * Node's HTTP parser (llhttp, strict mode: `insecureHTTPParser` stays off) already rejects.
 *
 * llhttp (Node 20 and 24) already answers 400 for: Content-Length together with
 * Transfer-Encoding, duplicate or malformed Content-Length, a Transfer-Encoding whose last
 * coding is not `chunked` (`chunked, gzip`, `identity`, `xchunked`, `chunked;x`), repeated
 * `chunked`, invalid chunk sizes and chunk framing, bare LF and bare CR line endings, obs-fold,
 * whitespace before the colon, NUL/CTL/DEL in header values, invalid methods, versions and
 * request targets. docs/security.md has the full table (test/e2e/security-smuggling.test.ts
 * checks every entry through anubis).
 *
 * What llhttp lets through and this guard rejects:
 *   - Transfer-Encoding other than exactly `chunked` (`gzip, chunked`, `,chunked`, empty):
 *     anubis re-frames bodies, so it could not honour another coding — 400;
 *   - Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1: faulty framing) — 400;
 *   - a second Host header, a malformed Host value, a missing Host in HTTP/1.1 — 400;
 *   - versions other than HTTP/1.0 and 1.1 (llhttp accepts `HTTP/2.0` and HTTP/0.9) — 505;
 *   - request targets with a fragment, `*` with another method than OPTIONS, absolute-form
 *     targets that are not http(s) or carry user info — 400; `OPTIONS *` — 501 (it concerns
 *     anubis itself and cannot be forwarded);
 *   - a request target longer than `maxUriLength` — 414; header lines beyond `maxHeaderSize`
 *     bytes or `maxHeaderCount` fields — 431.
 *
 * Absolute-form targets (`GET http://other.example/x`) are normalised, never followed: the
 * request goes to the listener's pool with the origin-form target (`/x`) and, as RFC 9112
 * §3.2.2 requires of a proxy, a Host header made from the target's authority.
 */
import type { ClientRequestHead } from '../proxy/client-messages.js';

/** Listener limits the guard enforces (already validated and defaulted by the schema). */
export interface GuardLimits {
  /** Longest request target in bytes (414 beyond). */
  readonly maxUriLength: number;
  /** Largest header block in bytes, counting `name: value\r\n` per field (431 beyond). */
  readonly maxHeaderSize: number;
  /** Most header fields (431 beyond). */
  readonly maxHeaderCount: number;
}

/** Why a request was refused: the status and a short reason (sent as the body and logged). */
export interface Rejection {
  readonly status: number;
  /** Stable code for logs (docs/errors.md). */
  readonly code: string;
  readonly reason: string;
}

function reject(status: number, code: string, reason: string): Rejection {
  return { status, code, reason };
}

// Rejections are shared constants: refusing costs no allocation.
const BAD_TRANSFER_ENCODING = reject(
  400,
  'ANUBIS_REQUEST_FRAMING',
  'unsupported Transfer-Encoding',
);
const TRANSFER_ENCODING_HTTP10 = reject(
  400,
  'ANUBIS_REQUEST_FRAMING',
  'Transfer-Encoding in an HTTP/1.0 request',
);
const BAD_CONTENT_LENGTH = reject(400, 'ANUBIS_REQUEST_FRAMING', 'ambiguous Content-Length');
const BOTH_LENGTHS = reject(
  400,
  'ANUBIS_REQUEST_FRAMING',
  'both Content-Length and Transfer-Encoding',
);
const MISSING_HOST = reject(400, 'ANUBIS_REQUEST_INVALID', 'missing Host header');
const DUPLICATE_HOST = reject(400, 'ANUBIS_REQUEST_INVALID', 'more than one Host header');
const BAD_HOST = reject(400, 'ANUBIS_REQUEST_INVALID', 'invalid Host header');
const BAD_TARGET = reject(400, 'ANUBIS_REQUEST_INVALID', 'invalid request target');
const ASTERISK_NOT_FORWARDED = reject(501, 'ANUBIS_REQUEST_INVALID', 'OPTIONS * is not forwarded');
const BAD_VERSION = reject(505, 'ANUBIS_HTTP_VERSION', 'only HTTP/1.0 and HTTP/1.1 are supported');
const URI_TOO_LONG = reject(414, 'ANUBIS_URI_TOO_LONG', 'request target too long');
const HEADERS_TOO_LARGE = reject(
  431,
  'ANUBIS_HEADERS_TOO_LARGE',
  'request header fields too large',
);
const TOO_MANY_HEADERS = reject(431, 'ANUBIS_HEADERS_TOO_LARGE', 'too many request header fields');
const UPGRADE_WITH_BODY = reject(
  400,
  'ANUBIS_REQUEST_FRAMING',
  'an Upgrade request cannot carry a body',
);

/**
 * Host: reg-name / IPv4 (RFC 3986 unreserved, pct-encoded, sub-delims) or a bracketed IPv6
 * literal, then an optional port. Empty is allowed (RFC 9112 §3.2, a target without authority).
 */
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]{0,5})?$/;

/** Absolute-form target: scheme, authority, then path and query (no fragment). */
const ABSOLUTE_FORM = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^#]*)$/;

export class RequestGuard {
  private readonly limits: GuardLimits;

  constructor(limits: GuardLimits) {
    this.limits = limits;
  }

  /**
   * Checks (and normalises, for absolute-form targets) one parsed request. Returns undefined
   * when it may be forwarded, otherwise the rejection to answer (and close the connection).
   */
  check(req: ClientRequestHead, upgrade = false): Rejection | undefined {
    const version = req.httpVersion;
    // HTTP/2 (nghttp2 frames it; there is no Transfer-Encoding or obs-fold): only the limits.
    // (Only a real HTTP/2 stream: an HTTP/1 request line may claim `HTTP/2.0`.)
    if (req.httpVersionMajor === 2 && (req as { stream?: unknown }).stream !== undefined) {
      return this.checkHttp2(req);
    }
    const http11 = version === '1.1';
    if (!http11 && version !== '1.0') return BAD_VERSION;

    let url = req.url ?? '';
    if (url.length > this.limits.maxUriLength) return URI_TOO_LONG;

    const raw = req.rawHeaders;
    const fields = raw.length >>> 1;
    if (fields > this.limits.maxHeaderCount) return TOO_MANY_HEADERS;

    let size = 0;
    let hostIndex = -1;
    let transferEncoding: string | undefined;
    let contentLengths = 0;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i] as string;
      const value = raw[i + 1] as string;
      // `name: value\r\n`
      size += name.length + value.length + 4;
      const length = name.length;
      // Only the few framing and routing headers matter here; compare by length first.
      if (length === 4 && name.toLowerCase() === 'host') {
        if (hostIndex !== -1) return DUPLICATE_HOST;
        hostIndex = i + 1;
      } else if (length === 17 && name.toLowerCase() === 'transfer-encoding') {
        // llhttp rejects a second Transfer-Encoding after `chunked`; any second one is refused.
        if (transferEncoding !== undefined) return BAD_TRANSFER_ENCODING;
        transferEncoding = value;
      } else if (length === 14 && name.toLowerCase() === 'content-length') {
        contentLengths++;
        if (contentLengths > 1 || !isDigits(value)) return BAD_CONTENT_LENGTH;
      }
    }
    if (size > this.limits.maxHeaderSize) return HEADERS_TOO_LARGE;

    if (transferEncoding !== undefined) {
      if (!http11) return TRANSFER_ENCODING_HTTP10;
      if (contentLengths > 0) return BOTH_LENGTHS;
      // Exactly `chunked` (any case; llhttp already trimmed surrounding whitespace).
      if (transferEncoding.length !== 7 || transferEncoding.toLowerCase() !== 'chunked') {
        return BAD_TRANSFER_ENCODING;
      }
    }
    if (upgrade && (transferEncoding !== undefined || hasNonZeroLength(req))) {
      return UPGRADE_WITH_BODY;
    }

    if (hostIndex === -1) {
      if (http11) return MISSING_HOST;
    } else if (!HOST.test(raw[hostIndex] as string)) {
      return BAD_HOST;
    }

    if (url.charCodeAt(0) === 47 /* '/' */) {
      if (url.includes('#')) return BAD_TARGET;
      return undefined;
    }
    // `OPTIONS *` asks about the server itself; it cannot be forwarded (undici sends only
    // origin-form targets), so anubis answers it as not implemented.
    if (url === '*') return req.method === 'OPTIONS' ? ASTERISK_NOT_FORWARDED : BAD_TARGET;

    // Absolute form: keep the path and query, take the authority as the Host.
    const match = ABSOLUTE_FORM.exec(url);
    if (match === null) return BAD_TARGET;
    const scheme = (match[1] as string).toLowerCase();
    const authority = match[2] as string;
    if (scheme !== 'http' && scheme !== 'https') return BAD_TARGET;
    if (authority === '' || authority.includes('@') || !HOST.test(authority)) return BAD_TARGET;
    url = match[3] as string;
    if (url === '') url = '/';
    else if (url.charCodeAt(0) !== 47) url = `/${url}`;
    req.url = url;
    if (hostIndex === -1) raw.push('Host', authority);
    else raw[hostIndex] = authority;
    req.headers.host = authority;
    return undefined;
  }

  private checkHttp2(req: ClientRequestHead): Rejection | undefined {
    if ((req.url ?? '').length > this.limits.maxUriLength) return URI_TOO_LONG;
    const raw = req.rawHeaders;
    if (raw.length >>> 1 > this.limits.maxHeaderCount) return TOO_MANY_HEADERS;
    let size = 0;
    for (let i = 0; i < raw.length; i++) size += (raw[i] as string).length;
    return size + 4 * (raw.length >>> 1) > this.limits.maxHeaderSize
      ? HEADERS_TOO_LARGE
      : undefined;
  }
}

function isDigits(value: string): boolean {
  if (value.length === 0) return false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

function hasNonZeroLength(req: ClientRequestHead): boolean {
  const length = req.headers['content-length'];
  return length !== undefined && length !== '0';
}
