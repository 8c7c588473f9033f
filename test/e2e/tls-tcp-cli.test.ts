/**
 * The real CLI with two worker processes: an HTTPS/HTTP/2 listener whose certificate files are
 * given relative to the configuration file, and a TCP-mode listener. SIGHUP after the
 * certificate files were replaced makes every worker serve the new certificate. The TCP
 * counters of both workers add up in the primary's /metrics.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { copyFile, writeFile } from 'node:fs/promises';
import { connect as h2connect } from 'node:http2';
import { connect, createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { spawnCli, stopChild, waitForOutput } from '../helpers/anubis.js';
import { createTestPki } from '../helpers/certs.js';
import { freePort, startNamedBackend } from '../helpers/servers.js';

function serialAt(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca }, () => {
      const serial = socket.getPeerCertificate().serialNumber;
      socket.end();
      resolve(serial);
    });
    socket.on('error', reject);
  });
}

void test('CLI, 2 workers: HTTPS + HTTP/2 with relative certificate paths, TCP mode, SIGHUP certificate reload', async (t) => {
  const pki = await createTestPki();
  const first = await pki.leaf('first', ['localhost']);
  const second = await pki.leaf('second', ['localhost']);
  const web = await startNamedBackend('web');
  const echo = createServer((s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
  const echoPort = (echo.address() as AddressInfo).port;
  const httpsPort = await freePort();
  const tcpPort = await freePort();
  const adminPort = await freePort();
  await copyFile(first.certFile, join(pki.dir, 'site.crt'));
  await copyFile(first.keyFile, join(pki.dir, 'site.key'));
  const file = join(pki.dir, 'anubis.yaml');
  await writeFile(
    file,
    [
      'workers: 2',
      `admin: { address: 127.0.0.1:${adminPort} }`,
      'listeners:',
      `  - { address: 127.0.0.1:${httpsPort}, pool: web, tls: { cert: site.crt, key: site.key } }`,
      `  - { address: 127.0.0.1:${tcpPort}, pool: echo, mode: tcp }`,
      'pools:',
      `  web: { backends: [{ url: ${web.url} }] }`,
      `  echo: { backends: [{ url: tcp://127.0.0.1:${echoPort} }] }`,
      '',
    ].join('\n'),
  );
  const child = spawnCli(['--config', file]);
  t.after(async () => {
    await stopChild(child, 5_000);
    await web.close();
    await new Promise<void>((resolve) => echo.close(() => resolve()));
    await pki.cleanup();
  });
  await waitForOutput(
    child,
    /"msg":"listening"[\s\S]*"msg":"listening"[\s\S]*"msg":"listening"[\s\S]*"msg":"listening"/,
    30_000,
  );

  const session = h2connect(`https://localhost:${httpsPort}`, { ca: pki.ca.cert });
  t.after(() => session.close());
  const body = await new Promise<string>((resolve, reject) => {
    const stream = session.request({ ':path': '/' });
    let data = '';
    stream.setEncoding('utf8');
    stream.on('data', (c: string) => (data += c));
    stream.on('end', () => resolve(data));
    stream.on('error', reject);
  });
  assert.equal(body, 'web');

  const socket = connect({ host: '127.0.0.1', port: tcpPort });
  let echoed = '';
  socket.setEncoding('utf8');
  socket.on('data', (c: string) => (echoed += c));
  await once(socket, 'connect');
  socket.end('ping over tcp');
  await once(socket, 'close');
  assert.equal(echoed, 'ping over tcp');

  // More connections (spread over the workers): the primary's /metrics sums every worker.
  for (let i = 0; i < 6; i++) {
    const more = connect({ host: '127.0.0.1', port: tcpPort });
    more.resume();
    await once(more, 'connect');
    more.end('ping over tcp');
    await once(more, 'close');
  }
  const expected = [
    `anubis_tcp_connections_total{listener="127.0.0.1:${tcpPort}"} 7`,
    `anubis_backend_bytes_sent_total{pool="echo",backend="127.0.0.1:${echoPort}"} ${7 * 13}`,
    `anubis_backend_bytes_received_total{pool="echo",backend="127.0.0.1:${echoPort}"} ${7 * 13}`,
    'anubis_workers 2',
  ];
  let metrics = '';
  for (let tries = 0; tries < 50; tries++) {
    // A session's counters are final once anubis closed both of its sockets: poll briefly.
    metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    if (expected.every((line) => metrics.split('\n').includes(line))) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  for (const line of expected)
    assert.ok(metrics.split('\n').includes(line), `/metrics has ${line}`);

  const before = await serialAt(httpsPort, pki.ca.cert);
  await copyFile(second.certFile, join(pki.dir, 'site.crt'));
  await copyFile(second.keyFile, join(pki.dir, 'site.key'));
  child.kill('SIGHUP');
  await waitForOutput(child, /configuration reloaded[\s\S]*configuration reloaded/, 20_000);
  // Connections are spread over both workers: every handshake now gets the new certificate.
  for (let i = 0; i < 6; i++) assert.notEqual(await serialAt(httpsPort, pki.ca.cert), before);
});
