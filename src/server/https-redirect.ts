/**
 * The `redirectToHttps` listener: answers every request with a redirect to the same host,
 * path and query over https:// — 301 for GET and HEAD, 308 for other methods (308 keeps the
 * method and body, RFC 9110 §15.4.9). No pool is involved.
 */
import type { ProxiedRequest, ProxiedResponse } from '../proxy/client-messages.js';

/** `host` or `host:port`, `[v6]` or `[v6]:port`; captures the host without the port. */
const HOST = /^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/** The request target's path and query (absolute-form targets lose scheme and authority). */
function pathAndQuery(target: string): string {
  if (target.startsWith('/')) return target;
  try {
    const url = new URL(target);
    return `${url.pathname}${url.search}`;
  } catch {
    return '/';
  }
}

/** The https:// URL a request is sent to, or undefined if its Host is missing or malformed. */
export function httpsLocation(
  host: string | undefined,
  target: string,
  port: number,
): string | undefined {
  const hostname = host === undefined ? undefined : HOST.exec(host)?.[1];
  if (hostname === undefined) return undefined;
  return `https://${hostname}${port === 443 ? '' : `:${port}`}${pathAndQuery(target)}`;
}

export function createHttpsRedirect(
  port: number,
): (req: ProxiedRequest, res: ProxiedResponse) => void {
  return (req, res) => {
    // A request body is read and dropped (a fast-path request has none).
    if (!('bodiless' in req)) req.resume();
    const location = httpsLocation(req.headers.host, req.url ?? '/', port);
    if (location === undefined) {
      const body = '400 Bad Request: missing or invalid Host header\n';
      res.writeHead(400, {
        'content-type': 'text/plain; charset=utf-8',
        'content-length': Buffer.byteLength(body),
      });
      res.end(body);
      return;
    }
    const status = req.method === 'GET' || req.method === 'HEAD' ? 301 : 308;
    res.writeHead(status, { location, 'content-length': 0 });
    res.end();
  };
}
