import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import { DEFAULT_LIMITS } from '../../src/config/schema.js';
import { mergeLimits } from '../../src/server/client-limits.js';
import { RequestGuard } from '../../src/server/request-guard.js';

interface FakeRequest {
  httpVersion: string;
  httpVersionMajor: number;
  method: string;
  url: string;
  rawHeaders: string[];
  headers: Record<string, string>;
  stream?: object;
}

function request(url: string, rawHeaders: string[], extra: Partial<FakeRequest> = {}): FakeRequest {
  const headers: Record<string, string> = {};
  for (let i = 0; i < rawHeaders.length; i += 2) {
    headers[(rawHeaders[i] as string).toLowerCase()] = rawHeaders[i + 1] as string;
  }
  return {
    httpVersion: '1.1',
    httpVersionMajor: 1,
    method: 'GET',
    url,
    rawHeaders,
    headers,
    ...extra,
  };
}

const guard = new RequestGuard(DEFAULT_LIMITS);
const check = (req: FakeRequest): number | undefined =>
  guard.check(req as unknown as IncomingMessage)?.status;

void test('absolute-form targets become origin-form with the Host of the target', () => {
  const req = request('http://Example.COM:8080?q=1', ['Host', 'other', 'Accept', '*/*']);
  assert.equal(check(req), undefined);
  assert.equal(req.url, '/?q=1');
  assert.deepEqual(req.rawHeaders, ['Host', 'Example.COM:8080', 'Accept', '*/*']);
  assert.equal(req.headers.host, 'Example.COM:8080');
  const noHost = request('https://[2001:db8::1]:8443/p', [], { httpVersion: '1.0' });
  assert.equal(check(noHost), undefined);
  assert.deepEqual(noHost.rawHeaders, ['Host', '[2001:db8::1]:8443']);
});

void test('Host values: names, IPv4, bracketed IPv6 and ports pass; anything else is 400', () => {
  for (const host of [
    'a.example',
    'a.example:80',
    '192.0.2.1:8080',
    '[::1]:8080',
    'xn--nxa.example',
    '',
  ]) {
    assert.equal(check(request('/', ['Host', host])), undefined, host);
  }
  for (const host of ['a b', 'a/b', 'a@b', '[::1', 'a:80:80', 'a\\b']) {
    assert.equal(check(request('/', ['Host', host])), 400, host);
  }
});

void test('the header block size counts `name: value\\r\\n` per field, to the byte', () => {
  const small = new RequestGuard({ ...DEFAULT_LIMITS, maxHeaderSize: 100 });
  // 'Host: a\r\n' = 4 + 1 + 4 = 9 bytes; 'X: <v>\r\n' = 1 + v + 4.
  const fits = request('/', ['Host', 'a', 'X', 'v'.repeat(86)]);
  assert.equal(small.check(fits as unknown as IncomingMessage), undefined);
  const over = request('/', ['Host', 'a', 'X', 'v'.repeat(87)]);
  assert.equal(small.check(over as unknown as IncomingMessage)?.status, 431);
});

void test('an HTTP/2 stream is held to the limits only; an HTTP/1 line claiming 2.0 is 505', () => {
  const h2 = request('/x', [':method', 'GET', ':path', '/x', ':authority', 'a'], {
    httpVersion: '2.0',
    httpVersionMajor: 2,
    stream: {},
  });
  assert.equal(check(h2), undefined);
  assert.equal(check({ ...h2, url: `/${'a'.repeat(9000)}` }), 414);
  const fake = request('/', ['Host', 'a'], { httpVersion: '2.0', httpVersionMajor: 2 });
  assert.equal(check(fake), 505);
});

void test('a listener overrides single limits; the rest come from the top level', () => {
  const merged = mergeLimits(DEFAULT_LIMITS, { maxConnections: 5, maxUriLength: undefined });
  assert.deepEqual(merged, { ...DEFAULT_LIMITS, maxConnections: 5 });
  assert.equal(mergeLimits(DEFAULT_LIMITS, undefined), DEFAULT_LIMITS);
});
