import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  buildRequestHeaders,
  buildResponseHeaders,
  normalizeAddress,
  resolveClientAddress,
  TrustedProxies,
} from '../../src/proxy/headers.js';

function toMap(flat: string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (let i = 0; i < flat.length; i += 2)
    (out[(flat[i] as string).toLowerCase()] ??= []).push(flat[i + 1] as string);
  return out;
}

const untrusted = { peerAddress: '203.0.113.9', peerTrusted: false, protocol: 'http' };

test('hop-by-hop headers, and those named in Connection, are not forwarded', () => {
  const out = toMap(
    buildRequestHeaders(
      [
        'Host',
        'example.com',
        'Connection',
        'keep-alive, X-Secret',
        'Keep-Alive',
        'timeout=5',
        'X-Secret',
        '1',
        'Transfer-Encoding',
        'chunked',
        'Upgrade',
        'h2c',
        'Proxy-Connection',
        'x',
        'TE',
        'gzip',
        'Expect',
        '100-continue',
        'Accept',
        'text/plain',
        'Cookie',
        'a=1',
        'Cookie',
        'b=2',
      ],
      'keep-alive, X-Secret',
      untrusted,
    ),
  );
  for (const name of [
    'connection',
    'keep-alive',
    'x-secret',
    'transfer-encoding',
    'upgrade',
    'proxy-connection',
    'te',
    'expect',
  ]) {
    assert.equal(out[name], undefined, name);
  }
  assert.deepEqual(out.host, ['example.com']);
  assert.deepEqual(out.cookie, ['a=1', 'b=2'], 'repeated headers stay separate');
  assert.deepEqual(out.via, ['1.1 anubis']);
  assert.deepEqual(out['x-forwarded-host'], ['example.com']);
});

test('X-Forwarded-* from an untrusted client are replaced', () => {
  const out = toMap(
    buildRequestHeaders(
      [
        'Host',
        'h',
        'X-Forwarded-For',
        '1.2.3.4',
        'X-Forwarded-Proto',
        'https',
        'X-Forwarded-Host',
        'evil',
      ],
      undefined,
      untrusted,
    ),
  );
  assert.deepEqual(out['x-forwarded-for'], ['203.0.113.9']);
  assert.deepEqual(out['x-forwarded-proto'], ['http']);
  assert.deepEqual(out['x-forwarded-host'], ['h']);
});

test('underscore twins of managed headers (X_Forwarded_For, …) are dropped; other underscores pass', () => {
  const out = toMap(
    buildRequestHeaders(
      [
        'Host',
        'h',
        'X_Forwarded_For',
        '6.6.6.6',
        'x-forwarded_proto',
        'https',
        'X_FORWARDED_HOST',
        'evil',
        'Transfer_Encoding',
        'chunked',
        'X_Request_Id',
        'abc',
      ],
      undefined,
      untrusted,
    ),
  );
  assert.equal(out.x_forwarded_for, undefined);
  assert.equal(out['x-forwarded_proto'], undefined);
  assert.equal(out.x_forwarded_host, undefined);
  assert.equal(out.transfer_encoding, undefined);
  assert.deepEqual(out['x-forwarded-for'], ['203.0.113.9']);
  assert.deepEqual(out.x_request_id, ['abc']);
});

test('X-Forwarded-* from a trusted proxy are kept and extended', () => {
  const out = toMap(
    buildRequestHeaders(
      [
        'Host',
        'h',
        'X-Forwarded-For',
        '1.2.3.4',
        'X-Forwarded-For',
        '5.6.7.8',
        'X-Forwarded-Proto',
        'https',
        'Via',
        '1.1 edge',
      ],
      undefined,
      { peerAddress: '10.0.0.2', peerTrusted: true, protocol: 'http' },
    ),
  );
  assert.deepEqual(out['x-forwarded-for'], ['1.2.3.4, 5.6.7.8, 10.0.0.2']);
  assert.deepEqual(out['x-forwarded-proto'], ['https']);
  assert.deepEqual(out.via, ['1.1 edge, 1.1 anubis']);
});

test('TE: trailers is the one TE value forwarded', () => {
  const out = toMap(buildRequestHeaders(['TE', 'trailers'], undefined, untrusted));
  assert.deepEqual(out.te, ['trailers']);
});

test('response hop-by-hop headers are dropped, Set-Cookie stays separate', () => {
  const raw = [
    'Content-Type',
    'text/plain',
    'Connection',
    'close, X-Internal',
    'X-Internal',
    'secret',
    'Transfer-Encoding',
    'chunked',
    'Set-Cookie',
    'a=1',
    'Set-Cookie',
    'b=2',
    'Keep-Alive',
    'timeout=5',
  ].map((s) => Buffer.from(s, 'latin1'));
  assert.deepEqual(buildResponseHeaders(raw), [
    'Content-Type',
    'text/plain',
    'Set-Cookie',
    'a=1',
    'Set-Cookie',
    'b=2',
  ]);
});

test('client address: socket unless a trusted proxy forwarded it', () => {
  const trusted = new TrustedProxies(['10.0.0.0/8', '::1']);
  assert.equal(resolveClientAddress('203.0.113.9', '1.2.3.4', trusted), '203.0.113.9');
  assert.equal(resolveClientAddress('10.0.0.2', '1.2.3.4, 10.0.0.7', trusted), '1.2.3.4');
  assert.equal(
    resolveClientAddress('::1', '10.1.1.1', trusted),
    '::1',
    'all hops trusted: the socket address',
  );
  assert.equal(resolveClientAddress('10.0.0.2', undefined, trusted), '10.0.0.2');
  assert.equal(normalizeAddress('::ffff:127.0.0.1'), '127.0.0.1');
  assert.equal(new TrustedProxies([]).has('127.0.0.1'), false);
  assert.equal(trusted.has('10.200.3.4'), true);
  assert.equal(trusted.has('11.0.0.1'), false);
});
