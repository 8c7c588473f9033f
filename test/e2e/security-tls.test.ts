// The request guard, limits and WebSocket proxying on HTTPS (with and without HTTP/2) and h2c
// listeners, not only on plain HTTP ones.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as http2Connect } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { after, before, test } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { createTestPki, type CertFiles, type TestPki } from '../helpers/certs.js';
import { startAnubis, type RunningAnubis } from '../helpers/anubis.js';
import { sendRaw, statusesOf } from '../helpers/raw-http.js';
import { startBackend, type TestServer } from '../helpers/servers.js';

let pki: TestPki;
let localhost: CertFiles;
let backend: TestServer;
let wss: WebSocketServer;

before(async () => {
  pki = await createTestPki();
  localhost = await pki.leaf('localhost', ['localhost', '127.0.0.1']);
  backend = await startBackend((req, res) => {
    req.resume();
    res.end('plain');
  });
  wss = new WebSocketServer({ server: backend.server });
  wss.on('connection', (ws) => ws.on('message', (m: Buffer) => ws.send(`echo:${m.toString()}`)));
});
after(async () => {
  wss.close();
  await backend.close();
  await pki.cleanup();
});

async function start(
  listener: Record<string, unknown>,
): Promise<{ anubis: RunningAnubis; port: number }> {
  const anubis = await startAnubis(
    [backend.url],
    {},
    {
      limits: { maxUriLength: 200 },
      listeners: [{ address: '127.0.0.1:0', pool: 'test', ...listener }],
    },
  );
  return { anubis, port: anubis.balancer.addresses()[0]?.port as number };
}

/** Sends raw bytes over TLS (HTTP/1.1 by ALPN) and collects the answer until close. */
function sendTls(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({
      port,
      host: '127.0.0.1',
      ca: pki.ca.cert,
      servername: 'localhost',
      ALPNProtocols: ['http/1.1'],
    });
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('error', reject);
    socket.on('close', () => resolve(text));
    socket.once('secureConnect', () => socket.write(bytes));
    setTimeout(() => socket.destroy(), 2_000).unref();
  });
}

for (const http2 of [true, false]) {
  void test(`HTTPS (http2: ${http2}): ambiguous framing and long targets are refused`, async (t) => {
    const { anubis, port } = await start({
      tls: { cert: localhost.certFile, key: localhost.keyFile },
      http2,
    });
    t.after(() => anubis.close());
    const framing = await sendTls(
      port,
      'POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n',
    );
    assert.deepEqual(statusesOf(framing), [400], framing);
    const long = await sendTls(port, `GET /${'a'.repeat(300)} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
    assert.deepEqual(statusesOf(long), [414], long);
    const ok = await sendTls(
      port,
      'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
    );
    assert.deepEqual(statusesOf(ok), [200], ok);
  });

  void test(`HTTPS (http2: ${http2}): WebSockets (wss) are proxied`, async (t) => {
    const { anubis, port } = await start({
      tls: { cert: localhost.certFile, key: localhost.keyFile },
      http2,
    });
    t.after(() => anubis.close());
    const ws = new WebSocket(`wss://localhost:${port}/ws`, { ca: pki.ca.cert });
    await once(ws, 'open');
    ws.send('over tls');
    const [message] = (await once(ws, 'message')) as [Buffer];
    assert.equal(message.toString(), 'echo:over tls');
    ws.close();
    await once(ws, 'close');
  });
}

void test('HTTP/2 over TLS: requests pass, a long :path is 414', async (t) => {
  const { anubis, port } = await start({
    tls: { cert: localhost.certFile, key: localhost.keyFile },
  });
  t.after(() => anubis.close());
  const session = http2Connect(`https://localhost:${port}`, { ca: pki.ca.cert });
  t.after(() => session.close());
  const status = async (path: string): Promise<number> => {
    const stream = session.request({ ':path': path });
    const [headers] = (await once(stream, 'response')) as [Record<string, number>];
    stream.resume();
    await once(stream, 'end');
    return headers[':status'] as number;
  };
  assert.equal(await status('/fine'), 200);
  assert.equal(await status(`/${'b'.repeat(300)}`), 414);
});

void test('h2c listener: its HTTP/1.1 side runs the guard and proxies WebSockets', async (t) => {
  const { anubis, port } = await start({ http2: true });
  t.after(() => anubis.close());
  const refused = await sendRaw(
    port,
    'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n',
  );
  assert.deepEqual(refused.statuses, [400]);
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
  await once(ws, 'open');
  ws.send('h2c side');
  const [message] = (await once(ws, 'message')) as [Buffer];
  assert.equal(message.toString(), 'echo:h2c side');
  ws.close();
  await once(ws, 'close');
});

for (const kind of ['HTTPS', 'HTTPS/1.1 only', 'h2c'] as const) {
  void test(`${kind}: a connection beyond maxConnections gets 503 with Retry-After; capacity comes back`, async (t) => {
    const tls = kind !== 'h2c';
    const h2 = kind !== 'HTTPS/1.1 only';
    const { anubis, port } = await start({
      ...(tls ? { tls: { cert: localhost.certFile, key: localhost.keyFile } } : {}),
      http2: h2,
      limits: { maxConnections: 1 },
    });
    t.after(() => anubis.close());
    const origin = tls ? `https://localhost:${port}` : `http://127.0.0.1:${port}`;
    const h2Status = async (): Promise<[number, string | undefined]> => {
      const session = http2Connect(origin, { ca: pki.ca.cert });
      session.on('error', () => {});
      try {
        const stream = session.request({ ':path': '/' });
        const [headers] = (await once(stream, 'response')) as [Record<string, string | number>];
        stream.resume();
        await once(stream, 'end');
        return [headers[':status'] as number, headers['retry-after'] as string | undefined];
      } finally {
        session.close();
      }
    };
    const http1 = async (): Promise<string> =>
      tls
        ? sendTls(port, 'GET / HTTP/1.1\r\nHost: localhost\r\n\r\n')
        : (await sendRaw(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n')).text;

    // The one connection allowed, kept open (a keep-alive HTTP/1.1 connection).
    const held = tls
      ? tlsConnect({ port, host: '127.0.0.1', ca: pki.ca.cert, servername: 'localhost' })
      : netConnect(port, '127.0.0.1');
    held.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
    await once(held, 'data');

    const refused = await http1();
    assert.deepEqual(statusesOf(refused), [503], refused);
    assert.match(refused, /\r\nretry-after: 1\r\n/i);
    if (h2) assert.deepEqual(await h2Status(), [503, '1']);

    held.destroy();
    // The server sees the close a moment later: capacity comes back (bounded wait).
    let status = 0;
    for (let attempt = 0; attempt < 50 && status !== 200; attempt++) {
      status = h2 ? (await h2Status())[0] : (statusesOf(await http1())[0] ?? 0);
      if (status !== 200) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(status, 200);
  });
}
