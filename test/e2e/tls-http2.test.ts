// TLS termination, HTTP/2 (ALPN h2 and cleartext h2c), SNI, certificate reload, https://
// backends and the HTTP → HTTPS redirect, through real sockets with certificates generated
// at test time.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { request as httpRequest } from 'node:http';
import {
  connect as h2connect,
  constants,
  type ClientHttp2Session,
  type IncomingHttpHeaders,
} from 'node:http2';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import { connect, type AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { promisify } from 'node:util';
import { createLoadBalancer, type LoadBalancer } from '../../src/load-balancer.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { ConfigError, TlsFileError } from '../../src/errors.js';
import { SecureListener } from '../../src/server/secure-listener.js';
import { createTestPki, type CertFiles, type TestPki } from '../helpers/certs.js';
import { freePort, startBackend, streamBytes, type TestServer } from '../helpers/servers.js';

let pki: TestPki;
let localhost: CertFiles;
let echo: TestServer;

before(async () => {
  pki = await createTestPki();
  localhost = await pki.leaf('localhost', ['localhost', '127.0.0.1']);
  // Answers with what it received: method, url, headers and body, as JSON.
  echo = await startBackend((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.stringify({
        method: req.method,
        url: req.url,
        httpVersion: req.httpVersion,
        rawHeaders: req.rawHeaders,
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      });
      res.writeHead(200, { 'content-type': 'application/json', 'x-backend': 'echo' });
      res.end(body);
    });
  });
});

after(async () => {
  await echo.close();
  await pki.cleanup();
});

async function start(
  listeners: Record<string, unknown>[],
  pools: Record<string, unknown> = { p: { backends: [{ url: echo.url }] } },
): Promise<LoadBalancer> {
  return createLoadBalancer({
    workers: 1,
    log: { level: 'silent' },
    listeners,
    pools,
  } as unknown as ConfigInput);
}

/** One HTTPS listener for `localhost` (h2 and HTTP/1.1) in front of `backendUrl`. */
function startTls(backendUrl = echo.url): Promise<LoadBalancer> {
  return start(
    [
      {
        address: '127.0.0.1:0',
        pool: 'p',
        tls: { cert: localhost.certFile, key: localhost.keyFile },
      },
    ],
    { p: { backends: [{ url: backendUrl }] } },
  );
}

/** An HTTP/2 session to `lb`'s first listener as `localhost`, trusting the test CA. */
function connectH2(lb: LoadBalancer): ClientHttp2Session {
  return h2connect(`https://localhost:${portOf(lb)}`, { ca: pki.ca.cert });
}

function portOf(lb: LoadBalancer, index = 0): number {
  return (lb.addresses()[index] as AddressInfo).port;
}

interface H2Answer {
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

function h2request(
  session: ClientHttp2Session,
  headers: Record<string, string>,
  body?: string,
): Promise<H2Answer> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: body === undefined });
    let responseHeaders: IncomingHttpHeaders = {};
    let data = '';
    stream.setEncoding('utf8');
    stream.on('response', (h) => (responseHeaders = h));
    stream.on('data', (chunk: string) => (data += chunk));
    stream.on('end', () => resolve({ headers: responseHeaders, body: data }));
    stream.on('error', reject);
    if (body !== undefined) stream.end(body);
  });
}

void test('HTTPS over HTTP/1.1: TLS terminated, X-Forwarded-Proto https, TLS 1.2+', async (t) => {
  const lb = await startTls();
  t.after(() => lb.close(500));
  const port = portOf(lb);
  const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', servername: 'localhost', port, path: '/a/b?c=1&d', ca: pki.ca.cert },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
  assert.equal(answer.status, 200);
  const seen = JSON.parse(answer.body) as { url: string; headers: Record<string, string> };
  assert.equal(seen.url, '/a/b?c=1&d');
  assert.equal(seen.headers['x-forwarded-proto'], 'https');
  // TLS 1.1 is refused.
  const old = tlsConnect({
    host: '127.0.0.1',
    port,
    ca: pki.ca.cert,
    servername: 'localhost',
    maxVersion: 'TLSv1.1',
    minVersion: 'TLSv1',
  });
  const [error] = (await once(old, 'error')) as [Error & { code?: string }];
  assert.match(String(error.code ?? error.message), /VERSION|PROTOCOL|ALERT/i);
});

void test('HTTP/2 through ALPN: pseudo-headers become Host, bodies without length pass, query kept', async (t) => {
  const lb = await startTls();
  t.after(() => lb.close(500));
  const session = connectH2(lb);
  t.after(() => session.close());
  const get = await h2request(session, { ':path': '/x?y=1&z', 'x-custom': 'v' });
  assert.equal(get.headers[':status'], 200);
  assert.equal(get.headers['x-backend'], 'echo');
  assert.equal(session.alpnProtocol, 'h2');
  const seen = JSON.parse(get.body) as {
    url: string;
    rawHeaders: string[];
    headers: Record<string, string>;
    httpVersion: string;
  };
  assert.equal(seen.url, '/x?y=1&z');
  assert.equal(seen.httpVersion, '1.1', 'the backend speaks HTTP/1.1');
  assert.equal(seen.headers.host, `localhost:${portOf(lb)}`);
  assert.equal(seen.headers['x-custom'], 'v');
  assert.equal(seen.headers['x-forwarded-proto'], 'https');
  assert.ok(!seen.rawHeaders.some((h) => h.startsWith(':')), 'no pseudo-header forwarded');
  // Cookies split into one field per pair (RFC 9113 §8.2.3) reach the backend as one header.
  const split = await h2request(session, {
    ':path': '/c',
    cookie: ['a=1', 'b=2'],
  } as unknown as Record<string, string>);
  const cookies = (JSON.parse(split.body) as { rawHeaders: string[] }).rawHeaders.filter(
    (_, i, raw) => i % 2 === 1 && raw[i - 1]?.toLowerCase() === 'cookie',
  );
  assert.deepEqual(cookies, ['a=1; b=2']);
  // A POST whose body has no content-length (HTTP/2 framing carries its end).
  const post = await h2request(session, { ':method': 'POST', ':path': '/upload' }, 'hello over h2');
  const posted = JSON.parse(post.body) as { method: string; body: string };
  assert.equal(posted.method, 'POST');
  assert.equal(posted.body, 'hello over h2');
  // HTTP/1.1 clients still get served on the same listener (ALPN http/1.1).
  const h1 = await fetchH1(`https://localhost:${portOf(lb)}/h1`);
  assert.equal(h1, 200);
});

function fetchH1(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const options = { ca: pki.ca.cert, ALPNProtocols: ['http/1.1'] } as Parameters<
      typeof httpsRequest
    >[1];
    const req = httpsRequest(url, options, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

void test('HTTP/2 streams are multiplexed: a slow stream does not hold back the others', async (t) => {
  let releaseSlow: (() => void) | undefined;
  let slowArrived!: () => void;
  const arrived = new Promise<void>((resolve) => (slowArrived = resolve));
  const backend = await startBackend((req, res) => {
    req.resume();
    if (req.url === '/slow') {
      releaseSlow = () => res.end('slow');
      slowArrived();
      return;
    }
    res.end(`fast ${req.url ?? ''}`);
  });
  const lb = await startTls(backend.url);
  t.after(async () => {
    await lb.close(500);
    await backend.close();
  });
  const session = connectH2(lb);
  t.after(() => session.close());
  let slowDone = false;
  const slow = h2request(session, { ':path': '/slow' }).then((a) => {
    slowDone = true;
    return a;
  });
  await arrived;
  // Twenty streams on the same connection finish while /slow is still waiting.
  const fast = await Promise.all(
    Array.from({ length: 20 }, (_, i) => h2request(session, { ':path': `/f${i}` })),
  );
  assert.deepEqual(
    fast.map((a) => a.body),
    Array.from({ length: 20 }, (_, i) => `fast /f${i}`),
  );
  assert.equal(slowDone, false, 'the slow stream is still open');
  releaseSlow?.();
  assert.equal((await slow).body, 'slow');
});

void test('curl --http2 negotiates HTTP/2 with anubis', async (t) => {
  const curl = await promisify(execFile)('curl', ['--version']).catch(() => undefined);
  if (curl === undefined || !/HTTP2/.test(curl.stdout)) {
    t.skip('curl with HTTP/2 support not installed');
    return;
  }
  const lb = await startTls();
  t.after(() => lb.close(500));
  const { stdout } = await promisify(execFile)('curl', [
    '--http2',
    '-s',
    '--cacert',
    pki.ca.certFile,
    '--resolve',
    `localhost:${portOf(lb)}:127.0.0.1`,
    '-w',
    '\n%{http_version} %{http_code}',
    `https://localhost:${portOf(lb)}/curl?q=1`,
  ]);
  const lines = stdout.trim().split('\n');
  assert.equal(lines.at(-1), '2 200');
  assert.equal((JSON.parse(lines.slice(0, -1).join('\n')) as { url: string }).url, '/curl?q=1');
});

function peerCertificate(port: number, servername: string): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect(
      { host: '127.0.0.1', port, servername, ca: pki.ca.cert, rejectUnauthorized: false },
      () => {
        const cert = socket.getPeerCertificate();
        socket.end();
        resolve(cert);
      },
    );
    socket.on('error', reject);
  });
}

void test('SNI chooses among several certificates; unknown names get the first', async (t) => {
  const a = await pki.leaf('a', ['a.test']);
  const b = await pki.leaf('b', ['b.test', '*.wild.test']);
  const lb = await start([
    {
      address: '127.0.0.1:0',
      pool: 'p',
      tls: {
        certificates: [
          { cert: a.certFile, key: a.keyFile },
          { cert: b.certFile, key: b.keyFile },
        ],
      },
    },
  ]);
  t.after(() => lb.close(500));
  const port = portOf(lb);
  assert.match((await peerCertificate(port, 'a.test')).subjectaltname ?? '', /DNS:a\.test/);
  assert.match((await peerCertificate(port, 'b.test')).subjectaltname ?? '', /DNS:b\.test/);
  assert.match((await peerCertificate(port, 'x.wild.test')).subjectaltname ?? '', /DNS:b\.test/);
  assert.match((await peerCertificate(port, 'other.test')).subjectaltname ?? '', /DNS:a\.test/);
  // Verified end to end through HTTP/2 with each name.
  for (const name of ['a.test', 'b.test']) {
    const session = h2connect(`https://127.0.0.1:${port}`, { ca: pki.ca.cert, servername: name });
    const answer = await h2request(session, { ':path': '/' });
    session.close();
    assert.equal(answer.headers[':status'], 200);
  }
});

void test('certificates reload without dropping open connections; a bad file keeps the old ones', async (t) => {
  const first = await pki.leaf('reload-1', ['localhost']);
  const second = await pki.leaf('reload-2', ['localhost']);
  const tls = { cert: first.certFile, key: first.keyFile, minVersion: 'TLSv1.2' as const };
  const lb = await start([{ address: '127.0.0.1:0', pool: 'p', tls }]);
  t.after(() => lb.close(500));
  const port = portOf(lb);
  const listener = lb.listeners[0] as SecureListener;
  assert.ok(listener instanceof SecureListener);
  const serial = async (): Promise<string> =>
    (await peerCertificate(port, 'localhost')).serialNumber;
  const before = await serial();
  const open = h2connect(`https://localhost:${port}`, { ca: pki.ca.cert });
  t.after(() => open.close());
  assert.equal((await h2request(open, { ':path': '/1' })).headers[':status'], 200);

  await listener.reloadCertificates(
    { cert: second.certFile, key: second.keyFile, minVersion: 'TLSv1.2' },
    pki.dir,
  );
  const after = await serial();
  assert.notEqual(after, before, 'new handshakes get the new certificate');
  assert.equal(
    (await h2request(open, { ':path': '/2' })).headers[':status'],
    200,
    'the open connection still works',
  );

  await assert.rejects(
    listener.reloadCertificates(
      { cert: second.certFile, key: `${pki.dir}/missing.key`, minVersion: 'TLSv1.2' },
      pki.dir,
    ),
    (error: unknown) =>
      error instanceof TlsFileError &&
      error.path === 'listeners[0].tls.key' &&
      /missing\.key: file not found/.test(error.message),
  );
  assert.equal(await serial(), after, 'a failed reload keeps the certificates in force');
});

void test('TLS file errors name the key path and the file', async () => {
  const other = await pki.leaf('other', ['other.test']);
  await assert.rejects(
    start([
      {
        address: '127.0.0.1:0',
        pool: 'p',
        tls: { cert: localhost.certFile, key: `${pki.dir}/nope.key` },
      },
    ]),
    (error: unknown) =>
      error instanceof TlsFileError &&
      error.code === 'ANUBIS_TLS_FILE' &&
      /listeners\[0\]\.tls\.key: .*nope\.key: file not found/.test(error.message),
  );
  await assert.rejects(
    start([
      {
        address: '127.0.0.1:0',
        pool: 'p',
        tls: { certificates: [{ cert: localhost.certFile, key: other.keyFile }] },
      },
    ]),
    (error: unknown) =>
      error instanceof TlsFileError && error.path === 'listeners[0].tls.certificates[0].key',
  );
  await assert.rejects(
    start([{ address: '127.0.0.1:0', pool: 'p', tls: { cert: localhost.certFile } }]),
    (error: unknown) =>
      error instanceof ConfigError &&
      /listeners\[0\]\.tls\.key: expected cert and key together/.test(error.message),
  );
});

async function startHttpsBackend(
  cert: CertFiles,
): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createHttpsServer({ cert: cert.cert, key: cert.key }, (req, res) => {
    req.resume();
    res.end('secure backend');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function plainGet(
  port: number,
  path = '/',
  method = 'GET',
  host?: string,
): Promise<{ status: number; body: string; location?: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, path, method, headers: host === undefined ? {} : { host } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body,
            ...(res.headers.location === undefined ? {} : { location: res.headers.location }),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

void test('https:// backends: verified with a CA option, self-signed refused, opt-out accepted', async (t) => {
  const signed = await startHttpsBackend(await pki.leaf('backend', ['127.0.0.1']));
  const selfSigned = await startHttpsBackend(await pki.selfSigned('backend-self', ['127.0.0.1']));
  t.after(async () => {
    await signed.close();
    await selfSigned.close();
  });
  const lb = await start(
    [
      { address: '127.0.0.1:0', pool: 'withCa' },
      { address: '127.0.0.1:0', pool: 'noCa' },
      { address: '127.0.0.1:0', pool: 'insecure' },
    ],
    {
      withCa: { backends: [{ url: signed.url }], tls: { ca: pki.ca.certFile } },
      noCa: { backends: [{ url: selfSigned.url }] },
      insecure: { backends: [{ url: selfSigned.url, tls: { insecureSkipVerify: true } }] },
    },
  );
  t.after(() => lb.close(500));
  const ok = await plainGet(portOf(lb, 0));
  assert.deepEqual([ok.status, ok.body], [200, 'secure backend']);
  assert.equal(
    (await plainGet(portOf(lb, 1))).status,
    502,
    'a self-signed backend is refused by default',
  );
  const lab = await plainGet(portOf(lb, 2));
  assert.deepEqual([lab.status, lab.body], [200, 'secure backend']);
  await assert.rejects(
    start([{ address: '127.0.0.1:0', pool: 'p' }], {
      p: { backends: [{ url: signed.url }], tls: { ca: `${pki.dir}/none.pem` } },
    }),
    (error: unknown) => error instanceof TlsFileError && error.path === 'pools.p.tls.ca',
  );
});

void test('redirectToHttps answers 301 (GET/HEAD) or 308 with the same host, path and query', async (t) => {
  const lb = await start([
    { address: '127.0.0.1:0', redirectToHttps: { port: 8443 } },
    { address: '127.0.0.1:0', redirectToHttps: true },
  ]);
  t.after(() => lb.close(500));
  const get = await plainGet(portOf(lb, 0), '/a/b?c=1&d=%20', 'GET', 'example.test:8080');
  assert.equal(get.status, 301);
  assert.equal(get.location, 'https://example.test:8443/a/b?c=1&d=%20');
  const post = await plainGet(portOf(lb, 0), '/form', 'POST', 'example.test');
  assert.equal(post.status, 308);
  assert.equal(post.location, 'https://example.test:8443/form');
  const standard = await plainGet(portOf(lb, 1), '/x', 'GET', '[::1]:80');
  assert.equal(standard.location, 'https://[::1]/x');
  assert.equal((await plainGet(portOf(lb, 1), '/x', 'GET', 'bad host')).status, 400);
});

void test('h2c: a plain listener with http2 serves HTTP/2 with prior knowledge and HTTP/1.1', async (t) => {
  const lb = await start([{ address: '127.0.0.1:0', pool: 'p', http2: true }]);
  t.after(() => lb.close(500));
  const port = portOf(lb);
  const session = h2connect(`http://127.0.0.1:${port}`);
  t.after(() => session.close());
  const answer = await h2request(session, { ':path': '/h2c?x=1' });
  assert.equal(answer.headers[':status'], 200);
  const seen = JSON.parse(answer.body) as { url: string; headers: Record<string, string> };
  assert.equal(seen.url, '/h2c?x=1');
  assert.equal(seen.headers['x-forwarded-proto'], 'http');
  const h1 = await plainGet(port, '/h1');
  assert.equal(h1.status, 200);
  assert.equal((JSON.parse(h1.body) as { url: string }).url, '/h1');
});

void test('configuration: tcp:// only in pools of tcp listeners, options fit the mode', async () => {
  await assert.rejects(
    start([{ address: '127.0.0.1:0', pool: 'p' }], {
      p: { backends: [{ url: 'tcp://127.0.0.1:9' }] },
    }),
    (error: unknown) =>
      error instanceof ConfigError &&
      /pools\.p\.backends\[0\]\.url: expected an http:\/\/ or https:\/\/ URL/.test(error.message),
  );
  await assert.rejects(
    start([{ address: '127.0.0.1:0', pool: 'p', mode: 'tcp', tls: { cert: 'a', key: 'b' } }], {
      p: { backends: [{ url: 'http://127.0.0.1:9' }] },
    }),
    (error: unknown) =>
      error instanceof ConfigError &&
      /pools\.p\.backends\[0\]\.url: expected tcp:\/\/host:port/.test(error.message) &&
      /listeners\[0\]\.tls: expected no tls on a mode: tcp listener/.test(error.message),
  );
  await assert.rejects(
    start([{ address: '127.0.0.1:0' }]),
    (error: unknown) =>
      error instanceof ConfigError &&
      /listeners\[0\]\.pool: expected the name of a pool/.test(error.message),
  );
});

void test('a configuration reload installs new certificates; a broken one is refused whole', async (t) => {
  const { validateConfig } = await import('../../src/config/load.js');
  const first = await pki.leaf('cfg-1', ['localhost']);
  const second = await pki.leaf('cfg-2', ['localhost']);
  // A fixed port: a reload matches listeners by their configured address.
  const port = await freePort();
  const config = (cert: CertFiles, key = cert.keyFile): Record<string, unknown> => ({
    workers: 1,
    log: { level: 'silent' },
    listeners: [{ address: `127.0.0.1:${port}`, pool: 'p', tls: { cert: cert.certFile, key } }],
    pools: { p: { backends: [{ url: echo.url }] } },
  });
  const lb = await createLoadBalancer(config(first) as unknown as ConfigInput);
  t.after(() => lb.close(500));
  const open = h2connect(`https://localhost:${port}`, { ca: pki.ca.cert });
  t.after(() => open.close());
  assert.equal((await h2request(open, { ':path': '/' })).headers[':status'], 200);
  const before = (await peerCertificate(port, 'localhost')).serialNumber;
  await assert.rejects(
    lb.reload(validateConfig(config(second, `${pki.dir}/absent.key`), 'reload')),
    TlsFileError,
  );
  assert.equal((await peerCertificate(port, 'localhost')).serialNumber, before);
  await lb.reload(validateConfig(config(second), 'reload'));
  assert.notEqual((await peerCertificate(port, 'localhost')).serialNumber, before);
  assert.equal(
    (await h2request(open, { ':path': '/' })).headers[':status'],
    200,
    'the open connection survived',
  );
});

void test('http2: false serves HTTPS/1.1 only (no h2 in ALPN)', async (t) => {
  const lb = await start([
    {
      address: '127.0.0.1:0',
      pool: 'p',
      http2: false,
      tls: { cert: localhost.certFile, key: localhost.keyFile },
    },
  ]);
  t.after(() => lb.close(500));
  const port = portOf(lb);
  const alpn = await new Promise<string | false>((resolve, reject) => {
    const socket = tlsConnect(
      {
        host: '127.0.0.1',
        port,
        servername: 'localhost',
        ca: pki.ca.cert,
        ALPNProtocols: ['h2', 'http/1.1'],
      },
      () => {
        resolve(socket.alpnProtocol ?? false);
        socket.end();
      },
    );
    socket.on('error', reject);
  });
  assert.notEqual(alpn, 'h2');
  assert.equal(await fetchH1(`https://localhost:${port}/`), 200);
});

void test('closing a TLS listener lets in-flight HTTP/2 streams finish (GOAWAY), then stops', async (t) => {
  let release: (() => void) | undefined;
  let arrived!: () => void;
  const slowArrived = new Promise<void>((resolve) => (arrived = resolve));
  const backend = await startBackend((req, res) => {
    req.resume();
    release = () => res.end('finished');
    arrived();
  });
  t.after(() => backend.close());
  const lb = await startTls(backend.url);
  const port = portOf(lb);
  const session = h2connect(`https://localhost:${port}`, { ca: pki.ca.cert });
  session.on('error', () => {});
  const inFlight = h2request(session, { ':path': '/slow' });
  await slowArrived;
  const closing = lb.close(5_000);
  await once(session, 'goaway');
  release?.();
  const answer = await inFlight;
  assert.equal(answer.headers[':status'], 200);
  assert.equal(answer.body, 'finished');
  await closing;
  session.close();
});

void test('HTTP/2 back-pressure: a 32 MiB response to a slow reader arrives whole, other streams flow', async (t) => {
  const size = 32 * 1024 * 1024;
  const backend = await startBackend((req, res) => {
    req.resume();
    if (req.url !== '/big') {
      res.end('small');
      return;
    }
    res.writeHead(200, { 'content-length': size });
    streamBytes(res, size);
  });
  t.after(() => backend.close());
  const lb = await startTls(backend.url);
  t.after(() => lb.close(500));
  const session = connectH2(lb);
  t.after(() => session.close());
  const big = session.request({ ':path': '/big' });
  big.pause();
  await once(big, 'response');
  // While /big is not read, its flow-control window is full; other streams still complete.
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal((await h2request(session, { ':path': '/small' })).body, 'small');
  let received = 0;
  big.on('data', (chunk: Buffer) => (received += chunk.length));
  big.resume();
  await once(big, 'end');
  assert.equal(received, size);
});

void test('reload: a redirect listener keeps redirecting (new port applied); a kind change waits for a restart', async (t) => {
  const { validateConfig } = await import('../../src/config/load.js');
  const redirectPort = await freePort();
  const plainPort = await freePort();
  const config = (port: number, plainMode: 'http' | 'tcp'): Record<string, unknown> => ({
    workers: 1,
    log: { level: 'silent' },
    listeners: [
      { address: `127.0.0.1:${redirectPort}`, redirectToHttps: { port } },
      {
        address: `127.0.0.1:${plainPort}`,
        pool: plainMode === 'tcp' ? 'raw' : 'p',
        mode: plainMode,
      },
    ],
    pools: {
      p: { backends: [{ url: echo.url }] },
      raw: { backends: [{ url: `tcp://127.0.0.1:${echo.port}` }] },
    },
  });
  const lb = await createLoadBalancer(config(8443, 'http') as unknown as ConfigInput);
  t.after(() => lb.close(500));
  assert.equal(
    (await plainGet(redirectPort, '/x', 'GET', 'a.test')).location,
    'https://a.test:8443/x',
  );
  await lb.reload(validateConfig(config(9443, 'tcp'), 'reload'));
  assert.equal(
    (await plainGet(redirectPort, '/x', 'GET', 'a.test')).location,
    'https://a.test:9443/x',
  );
  // The listener asked to become mode: tcp keeps proxying HTTP until a restart.
  const still = await plainGet(plainPort, '/y');
  assert.equal(still.status, 200);
  assert.equal((JSON.parse(still.body) as { url: string }).url, '/y');
  assert.equal(lb.listeners.length, 2, 'both listeners are still owned (and closed at stop)');
});

void test('an HTTP/2 stream cancelled by the client (RST_STREAM) stops the upstream request', async (t) => {
  let closedAtBackend = 0;
  const backend = await startBackend((req, res) => {
    req.resume();
    if (req.url !== '/never-ends') {
      res.end('ok');
      return;
    }
    res.writeHead(200);
    res.write('partial');
    res.on('close', () => closedAtBackend++);
  });
  t.after(() => backend.close());
  const lb = await startTls(backend.url);
  t.after(() => lb.close(500));
  const session = connectH2(lb);
  t.after(() => session.close());
  const stream = session.request({ ':path': '/never-ends' });
  await once(stream, 'data');
  const target = lb.pools.get('p')?.backends[0];
  const active = (): number => target?.active ?? -1;
  assert.equal(active(), 1);
  stream.close(constants.NGHTTP2_CANCEL);
  const deadline = Date.now() + 5_000;
  while ((active() !== 0 || closedAtBackend === 0) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.equal(active(), 0);
  assert.equal(closedAtBackend, 1, 'the backend connection of that request was closed');
  // The session itself is fine: the next stream works.
  assert.equal((await h2request(session, { ':path': '/again' })).headers[':status'], 200);
});

void test('a client that never completes the TLS handshake is disconnected after the handshake timeout', async (t) => {
  const { ListenerCertificates, loadCertificateSet } =
    await import('../../src/server/tls-certificates.js');
  const tls = { cert: localhost.certFile, key: localhost.keyFile, minVersion: 'TLSv1.2' as const };
  const listener = new SecureListener({
    address: { host: '127.0.0.1', port: 0 },
    onRequest: (_req, res) => res.end('ok'),
    certificates: new ListenerCertificates(await loadCertificateSet(tls, 0, pki.dir), 0),
    http2: true,
    handshakeTimeoutMs: 200,
  });
  const { port } = await listener.listen();
  t.after(() => listener.close(100));
  const started = performance.now();
  const silent = connect({ host: '127.0.0.1', port });
  silent.on('error', () => {});
  await once(silent, 'close');
  const elapsed = performance.now() - started;
  assert.ok(elapsed >= 150 && elapsed < 5_000, `closed after ${Math.round(elapsed)} ms`);
});
