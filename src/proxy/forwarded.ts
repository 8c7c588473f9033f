/**
 * The standard `Forwarded` header (RFC 7239), next to or instead of X-Forwarded-*
 * (`forwardedHeaders` in the configuration). anubis appends one element per hop:
 *
 *   Forwarded: for=192.0.2.7;proto=https;host=app.example
 *   Forwarded: for="[2001:db8::7]";proto=http;host="app.example:8080"
 *
 * As with X-Forwarded-*, a `Forwarded` header from a client is kept only when the client is a
 * trusted proxy; from anyone else it is dropped, so a client cannot forge its address.
 */

/** Which forwarding headers anubis sends to backends. */
export type ForwardedMode = 'x-forwarded' | 'forwarded' | 'both';

// RFC 7230 tchar: a value made only of these may stay unquoted.
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

function quote(value: string): string {
  return TOKEN.test(value) ? value : `"${value.replace(/["\\]/g, '\\$&')}"`;
}

/** One `Forwarded` element for this hop (IPv6 nodes bracketed and quoted, RFC 7239 §6). */
export function forwardedElement(peer: string, proto: string, host: string | undefined): string {
  const node = peer.includes(':') ? `"[${peer}]"` : quote(peer === '' ? 'unknown' : peer);
  const element = `for=${node};proto=${quote(proto)}`;
  return host === undefined || host === '' ? element : `${element};host=${quote(host)}`;
}

/**
 * The `for=` nodes of a Forwarded header, in order, as bare addresses (brackets, quotes and
 * ports removed); obfuscated or `unknown` nodes are kept as written.
 */
export function forwardedFor(value: string): string[] {
  const nodes: string[] = [];
  for (const element of value.split(',')) {
    for (const pair of element.split(';')) {
      const eq = pair.indexOf('=');
      if (eq === -1 || pair.slice(0, eq).trim().toLowerCase() !== 'for') continue;
      let node = pair.slice(eq + 1).trim();
      if (node.startsWith('"') && node.endsWith('"') && node.length >= 2) node = node.slice(1, -1);
      if (node.startsWith('['))
        node = node.slice(1, node.indexOf(']') === -1 ? undefined : node.indexOf(']'));
      else if (node.split(':').length === 2) node = node.split(':')[0] as string;
      nodes.push(node);
    }
  }
  return nodes;
}
