/**
 * Maps what undici and Node report when talking to a backend onto anubis's coded errors
 * (anubis's own client reports coded errors itself, passed through as they are),
 * which carry the client-facing status (502/504) and whether a retry is safe.
 */
import {
  AnubisError,
  ClientAbortedError,
  RequestNotForwardableError,
  UpstreamBodyTimeoutError,
  UpstreamConnectError,
  UpstreamConnectTimeoutError,
  UpstreamHeadersTimeoutError,
  UpstreamProtocolError,
  UpstreamResetError,
} from '../errors.js';

const CONNECT_FAILURES = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_HAS_EXPIRED',
]);

const RESETS = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'ECONNABORTED']);

export function classifyUpstreamError(error: unknown, backend: string): AnubisError {
  if (error instanceof AnubisError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ETIMEDOUT')
      return new UpstreamConnectTimeoutError(backend, error);
    if (code === 'UND_ERR_HEADERS_TIMEOUT') return new UpstreamHeadersTimeoutError(backend, error);
    if (code === 'UND_ERR_BODY_TIMEOUT') return new UpstreamBodyTimeoutError(backend, error);
    if (code === 'UND_ERR_ABORTED') return new ClientAbortedError();
    // undici refuses a header value or target it cannot write (as anubis's client does).
    if (code === 'UND_ERR_INVALID_ARG') return new RequestNotForwardableError(backend, error);
    if (CONNECT_FAILURES.has(code)) return new UpstreamConnectError(backend, error);
    if (RESETS.has(code)) return new UpstreamResetError(backend, error);
    if (
      code.startsWith('HPE_') ||
      code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' ||
      code === 'UND_ERR_INFO'
    ) {
      return new UpstreamProtocolError(backend, error);
    }
  }
  return new UpstreamProtocolError(backend, error);
}
