/**
 * The fast path's request headers object must be what node:http's IncomingMessage.headers is
 * for the same raw header list: strategies, the guard and the proxy read it on both paths.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { test } from 'node:test';
import { incomingHeaders } from '../../src/server/fast-http1/request.js';

const HEAD_LINES = [
  'Host: a.example',
  'host: b.example',
  'Accept: text/html',
  'accept: application/json',
  'Cookie: a=1',
  'cookie: b=2',
  'Set-Cookie: x=1',
  'set-cookie: y=2',
  'Content-Type: text/plain',
  'content-type: text/html',
  'X-Forwarded-For: 10.0.0.1',
  'x-forwarded-for: 10.0.0.2',
  'X-Custom: one',
  'x-CUSTOM: two',
  'Authorization: Bearer a',
  'authorization: Bearer b',
  'User-Agent: first',
  'user-agent: second',
  '__proto__: polluted',
  'constructor: c',
  'Idempotency-Key: k1',
  'Empty:',
];

/** What node:http makes of these header lines: its request's rawHeaders and headers. */
async function nodeHttpView(): Promise<{ raw: string[]; headers: IncomingHttpHeaders }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const seen = new Promise<{ raw: string[]; headers: IncomingHttpHeaders }>((resolve) => {
      server.once('request', (req, res) => {
        resolve({ raw: req.rawHeaders, headers: { ...req.headers } });
        res.end();
      });
    });
    const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
    socket.on('error', () => {});
    socket.write(`GET / HTTP/1.1\r\n${HEAD_LINES.join('\r\n')}\r\n\r\n`);
    const view = await seen;
    socket.destroy();
    return view;
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

test('incomingHeaders merges duplicates exactly as IncomingMessage.headers does', async () => {
  const { raw, headers } = await nodeHttpView();
  const ours = incomingHeaders(raw);
  assert.deepEqual({ ...ours }, headers);
  // Spot checks of the rules, so that a change in both would still be noticed.
  assert.equal(ours.host, 'a.example', 'first Host wins');
  assert.equal(ours.accept, 'text/html, application/json');
  assert.equal(ours.cookie, 'a=1; b=2');
  assert.deepEqual(ours['set-cookie'], ['x=1', 'y=2']);
  assert.equal(ours['x-custom'], 'one, two');
  assert.equal(Object.getPrototypeOf(ours), Object.prototype, 'no prototype pollution');
});
