/**
 * One active health check of one backend: an HTTP request (status in range, optional body
 * match) or a plain TCP connect. Each check uses its own new connection (never the proxy's
 * keep-alive pool), so a backend that stopped accepting connections is seen even while old
 * pooled connections still work, and `Connection: close` leaves nothing open behind it.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as tcpConnect } from 'node:net';
import type { ActiveCheckConfig } from '../config/health-schema.js';

/** Body bytes read to look for `bodyContains`. */
const MAX_BODY = 64 * 1024;

export interface ProbeResult {
  readonly ok: boolean;
  /** Human-readable outcome, e.g. `status 200`, `status 503`, `ECONNREFUSED`, `timeout`. */
  readonly reason: string;
  /** The connection itself failed (refused, unreachable, connect timeout). */
  readonly unreachable: boolean;
}

const CONNECT_CODES = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
]);

/** Runs one check against `origin` (`http://h:p`, `https://h:p` or `tcp://h:p`). */
export function probe(origin: string, check: ActiveCheckConfig): Promise<ProbeResult> {
  const url = new URL(origin);
  if (check.type === 'tcp' || url.protocol === 'tcp:') return probeTcp(url, check.timeout);
  return probeHttp(url, check);
}

function probeTcp(url: URL, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = tcpConnect({
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: Number(url.port),
    });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ ok: false, reason: `connect timeout after ${timeoutMs} ms`, unreachable: true });
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ ok: true, reason: 'connected', unreachable: false });
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({ ok: false, reason: error.code ?? error.message, unreachable: true });
    });
  });
}

function probeHttp(url: URL, check: ActiveCheckConfig): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let connected = false;
    let done = false;
    const finish = (result: ProbeResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.destroy();
      resolve(result);
    };
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send({
      protocol: url.protocol,
      hostname: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port,
      method: 'GET',
      path: check.path,
      agent: false,
      // Health checks of https backends verify nothing about the certificate: they test
      // liveness; the proxy's own connections do the verification.
      rejectUnauthorized: false,
      headers: {
        host: check.host ?? url.host,
        connection: 'close',
        'user-agent': 'anubis-health-check',
      },
    });
    const timer = setTimeout(() => {
      finish({
        ok: false,
        reason: `timeout after ${check.timeout} ms`,
        unreachable: !connected,
      });
    }, check.timeout);
    req.once('socket', (socket) => {
      socket.once('connect', () => (connected = true));
    });
    req.once('error', (error: NodeJS.ErrnoException) => {
      const code = error.code ?? error.message;
      finish({ ok: false, reason: code, unreachable: !connected && CONNECT_CODES.has(code) });
    });
    req.once('response', (res: IncomingMessage) => {
      const status = res.statusCode ?? 0;
      const inRange = status >= check.expectStatus.low && status <= check.expectStatus.high;
      if (!inRange) {
        finish({ ok: false, reason: `status ${status}`, unreachable: false });
        return;
      }
      const wanted = check.bodyContains;
      if (wanted === undefined) {
        finish({ ok: true, reason: `status ${status}`, unreachable: false });
        return;
      }
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
        if (body.includes(wanted)) {
          finish({ ok: true, reason: `status ${status}, body matched`, unreachable: false });
        } else if (body.length > MAX_BODY) {
          finish({
            ok: false,
            reason: `body does not contain ${JSON.stringify(wanted)}`,
            unreachable: false,
          });
        }
      });
      res.once('end', () => {
        finish(
          body.includes(wanted)
            ? { ok: true, reason: `status ${status}, body matched`, unreachable: false }
            : {
                ok: false,
                reason: `body does not contain ${JSON.stringify(wanted)}`,
                unreachable: false,
              },
        );
      });
      res.once('error', () => {
        finish({ ok: false, reason: 'response cut', unreachable: false });
      });
    });
    req.end();
  });
}
