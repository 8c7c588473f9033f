import assert from 'node:assert/strict';
import { test } from 'node:test';
import { forwardedElement, forwardedFor } from '../../src/proxy/forwarded.js';
import { resolveClientAddress, TrustedProxies } from '../../src/proxy/headers.js';

void test('Forwarded elements quote what is not a token and bracket IPv6 nodes', () => {
  assert.equal(
    forwardedElement('192.0.2.7', 'https', 'app.example'),
    'for=192.0.2.7;proto=https;host=app.example',
  );
  assert.equal(
    forwardedElement('2001:db8::7', 'http', 'app.example:8080'),
    'for="[2001:db8::7]";proto=http;host="app.example:8080"',
  );
  assert.equal(forwardedElement('', 'http', undefined), 'for=unknown;proto=http');
});

void test('for= nodes are read back without quotes, brackets or ports', () => {
  assert.deepEqual(
    forwardedFor(
      'for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8:cafe::17]:4711", For=198.51.100.17:80',
    ),
    ['192.0.2.60', '2001:db8:cafe::17', '198.51.100.17'],
  );
});

void test('a trusted proxy Forwarded header names the client; an untrusted one is ignored', () => {
  const trusted = new TrustedProxies(['10.0.0.0/8']);
  assert.equal(
    resolveClientAddress('10.1.1.1', undefined, trusted, 'for=192.0.2.9, for=10.2.2.2'),
    '192.0.2.9',
  );
  assert.equal(resolveClientAddress('192.0.2.1', undefined, trusted, 'for=1.1.1.1'), '192.0.2.1');
});
