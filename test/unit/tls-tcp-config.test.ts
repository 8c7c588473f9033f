// Unit tests of the TLS, redirect and TCP-mode building blocks: schema rules for listeners
// and tcp:// backends, SNI name matching, certificate names, redirect locations.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createSecureContext } from 'node:tls';
import { validateConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { httpsLocation } from '../../src/server/https-redirect.js';
import { tcpTarget } from '../../src/proxy/tcp-proxy.js';
import {
  certificateNames,
  contextForName,
  type CertificateSet,
} from '../../src/server/tls-certificates.js';
import { createTestPki, type TestPki } from '../helpers/certs.js';

function issues(raw: unknown): string[] {
  try {
    validateConfig(raw, 'test');
  } catch (error) {
    if (error instanceof ConfigError) return error.issues.map((i) => `${i.path}: ${i.message}`);
    throw error;
  }
  return [];
}

const tcpConfig = (url: string, listener: Record<string, unknown> = {}): unknown => ({
  listeners: [{ address: ':1', pool: 'p', mode: 'tcp', ...listener }],
  pools: { p: { backends: [{ url }] } },
});

void test('tcp:// backends are normalised to tcp://host:port and need a port', () => {
  const config = validateConfig(tcpConfig('tcp://db.internal:5432/'), 'test');
  assert.equal(config.pools.p?.backends[0]?.url, 'tcp://db.internal:5432');
  assert.deepEqual(tcpTarget('tcp://[::1]:6379'), { host: '::1', port: 6379 });
  assert.match(
    issues(tcpConfig('tcp://db.internal')).join('\n'),
    /backends\[0\]\.url: expected tcp:\/\/host:port \(with a port/,
  );
  assert.match(issues(tcpConfig('tcp://db:1/x')).join('\n'), /without path/);
  assert.match(
    issues(tcpConfig('ftp://db:1')).join('\n'),
    /expected an http:\/\/, https:\/\/ \(or, in a pool of a tcp listener, tcp:\/\/\) URL/,
  );
});

void test('listener options must fit the mode; a pool serves one mode', () => {
  assert.deepEqual(issues(tcpConfig('tcp://a:1', { tcp: { maxConnections: 5 } })), []);
  const wrong = issues({
    listeners: [
      { address: ':1', pool: 'p', tcp: { idleTimeout: '1s' } },
      { address: ':2', pool: 'p', mode: 'tcp', http2: true, redirectToHttps: true },
      { address: ':3', pool: 'p', tls: { cert: 'c', key: 'k' }, redirectToHttps: true },
    ],
    pools: { p: { backends: [{ url: 'http://a:1' }] } },
  }).join('\n');
  assert.match(
    wrong,
    /listeners\[0\]\.tcp: expected tcp options only on a listener with mode: tcp/,
  );
  assert.match(wrong, /listeners\[1\]\.http2: expected no http2 on a mode: tcp listener/);
  assert.match(wrong, /listeners\[1\]\.redirectToHttps: expected no redirectToHttps/);
  assert.match(
    wrong,
    /listeners\[1\]\.pool: expected a pool not also used by a mode: http listener \(listeners\[0\]\)/,
  );
  assert.match(
    wrong,
    /listeners\[2\]\.redirectToHttps: expected redirectToHttps only on a listener without tls/,
  );
});

void test('tls needs cert and key together, or certificates; minVersion is 1.2 or 1.3', () => {
  const listener = (tls: unknown): unknown => ({
    listeners: [{ address: ':1', pool: 'p', tls }],
    pools: { p: { backends: [{ url: 'http://a:1' }] } },
  });
  assert.match(
    issues(listener({ key: 'k' })).join('\n'),
    /listeners\[0\]\.tls\.cert: expected cert and key together/,
  );
  assert.match(
    issues(listener({})).join('\n'),
    /listeners\[0\]\.tls: expected cert and key \(PEM files\), or a list of certificates/,
  );
  assert.match(
    issues(listener({ cert: 'c', key: 'k', minVersion: 'TLSv1.1' })).join('\n'),
    /tls\.minVersion: expected one of "TLSv1\.2", "TLSv1\.3"/,
  );
  const ok = validateConfig(
    listener({ certificates: [{ cert: 'c', key: 'k', servername: ['a.test'] }] }),
    'test',
  );
  assert.equal(ok.listeners[0]?.tls?.minVersion, 'TLSv1.2');
  assert.equal(ok.listeners[0]?.http2, undefined, 'http2 defaults by the presence of tls');
});

void test('a redirect-only listener needs no pool', () => {
  const config = validateConfig(
    {
      listeners: [{ address: ':80', redirectToHttps: { port: 8443 } }],
      pools: { p: { backends: [{ url: 'http://a:1' }] } },
    },
    'test',
  );
  assert.deepEqual(config.listeners[0]?.redirectToHttps, { port: 8443 });
});

void test('httpsLocation keeps host, path and query; drops the port; rejects bad hosts', () => {
  assert.equal(httpsLocation('example.com:8080', '/a?b=1', 443), 'https://example.com/a?b=1');
  assert.equal(httpsLocation('example.com', '/', 8443), 'https://example.com:8443/');
  assert.equal(httpsLocation('[2001:db8::1]:80', '/x', 443), 'https://[2001:db8::1]/x');
  assert.equal(
    httpsLocation('example.com', 'http://other.test/p?q', 443),
    'https://example.com/p?q',
  );
  assert.equal(httpsLocation(undefined, '/', 443), undefined);
  assert.equal(httpsLocation('evil.com/x', '/', 443), undefined);
  assert.equal(httpsLocation('a b', '/', 443), undefined);
});

let pki: TestPki;
before(async () => {
  pki = await createTestPki();
});
after(() => pki.cleanup());

void test('SNI: exact names first, then one-label wildcards, else the default', async () => {
  const leaf = await pki.leaf('sni-unit', ['x.test']);
  const exact = createSecureContext({ cert: leaf.cert, key: leaf.key });
  const wild = createSecureContext({ cert: leaf.cert, key: leaf.key });
  const set: CertificateSet = {
    defaults: {},
    exact: new Map([['a.example.com', exact]]),
    wildcard: new Map([['example.com', wild]]),
    names: [],
  };
  assert.equal(contextForName(set, 'A.Example.COM'), exact);
  assert.equal(contextForName(set, 'b.example.com'), wild);
  assert.equal(contextForName(set, 'c.b.example.com'), undefined, 'a wildcard covers one label');
  assert.equal(contextForName(set, 'example.com'), undefined);
  assert.equal(contextForName(set, 'other.test'), undefined);
});

void test('certificate names come from subjectAltName DNS entries', async () => {
  const leaf = await pki.leaf('names', ['Api.Example.com', '*.apps.example.com', '127.0.0.1']);
  assert.deepEqual(certificateNames(leaf.cert), ['api.example.com', '*.apps.example.com']);
});
