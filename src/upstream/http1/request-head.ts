/**
 * The request line and header block of a request to a backend, as one latin1 string.
 *
 * The inputs were parsed and validated on the client side (llhttp in strict mode for
 * HTTP/1.1, nghttp2 for HTTP/2) or built by anubis; still, a CR, LF or NUL in a value or a
 * control character in the target would split the request on the backend's side, so each is
 * checked once more here (as undici does) and refused with an error rather than written.
 *
 * Also decided here: whether the body is sent with its Content-Length or chunked, and the
 * `Host` and `Content-Length: 0` that a request lacking them gets (as undici adds them).
 */

/** Methods whose requests carry a body by convention: sent with `Content-Length: 0` when empty. */
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

/** CR, LF or NUL: would end a header line early (RFC 9110 §5.5). */
const BAD_VALUE = /[\r\n\0]/;
/** Whitespace or control characters in a request target (RFC 9112 §3.2). */
const BAD_TARGET = /[\0-\x20\x7f]/;

/** Refused before writing; the connection reports it as the attempt's failure. */
export class InvalidRequestHeadError extends Error {
  override readonly name = 'InvalidRequestHeadError';
}

export interface RequestHead {
  readonly text: string;
  /** Length of the body from its Content-Length header, or -1 if it is sent chunked. */
  readonly contentLength: number;
}

/**
 * Serialises a request head. `hasBody` says whether a body stream follows; `host` is the
 * backend's authority, used when the headers have no Host.
 */
export function serializeRequestHead(
  method: string,
  path: string,
  headers: readonly string[],
  hasBody: boolean,
  host: string,
): RequestHead {
  if (BAD_TARGET.test(path)) throw new InvalidRequestHeadError('invalid request target');
  let text = `${method} ${path} HTTP/1.1\r\n`;
  let sawHost = false;
  let contentLength = -1;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string;
    const value = headers[i + 1] as string;
    if (BAD_VALUE.test(value) || BAD_VALUE.test(name)) {
      throw new InvalidRequestHeadError(`invalid value for header ${JSON.stringify(name)}`);
    }
    if (name.length === 4 && name.toLowerCase() === 'host') sawHost = true;
    else if (name.length === 14 && name.toLowerCase() === 'content-length') {
      // A length announced without a body to send would leave the backend waiting.
      if (!hasBody && value !== '0') continue;
      contentLength = Number(value);
    }
    text += `${name}: ${value}\r\n`;
  }
  if (!sawHost) text += `host: ${host}\r\n`;
  if (hasBody) {
    if (contentLength < 0 || !Number.isSafeInteger(contentLength)) {
      contentLength = -1;
      text += 'transfer-encoding: chunked\r\n';
    }
  } else if (contentLength < 0 && BODY_METHODS.has(method)) {
    text += 'content-length: 0\r\n';
    contentLength = 0;
  }
  return { text: `${text}\r\n`, contentLength: hasBody ? contentLength : 0 };
}
