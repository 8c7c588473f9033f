/**
 * How a backend's response body is framed, read from its header list (name, value, …) as the
 * connection needs it to slice a body out of a read itself (connection.ts). llhttp in strict
 * mode has already refused the ambiguous heads (two Content-Lengths, Content-Length beside
 * Transfer-Encoding, a length that is not a number); this answers only for the plain case and
 * says "unknown" for anything else, which leaves the body to the parser.
 */

/**
 * The length of a body framed by its one Content-Length header, or -1: none, several, one
 * beside a Transfer-Encoding, or not a plain decimal number.
 */
export function contentLengthOf(headers: readonly string[] | undefined): number {
  if (headers === undefined) return -1;
  let length = -1;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string;
    if (name.length === 14 && name.toLowerCase() === 'content-length') {
      if (length >= 0) return -1;
      length = decimal(headers[i + 1] as string);
      if (length < 0) return -1;
    } else if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') {
      return -1;
    }
  }
  return length;
}

/** A string of decimal digits as a safe integer, or -1. */
function decimal(value: string): number {
  if (value.length === 0 || value.length > 15) return -1;
  let n = 0;
  for (let i = 0; i < value.length; i++) {
    const digit = value.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return -1;
    n = n * 10 + digit;
  }
  return n;
}
