// Protocol details through anubis, checked on raw sockets: Expect: 100-continue, HEAD and
// 204/304 without a body, Set-Cookie kept apart, trailers, HTTP/1.0 clients, and no open proxy
// (absolute-form targets never reach the host they name; CONNECT refused).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { startAnubis, type RunningAnubis } from '../helpers/anubis.js';
import { openRaw, sendRaw, startRawResponder, targetOf } from '../helpers/raw-http.js';
import { startRawBackend, type RawBackend } from '../helpers/servers.js';

const ANSWERS: Record<string, string> = {
  '/head': 'HTTP/1.1 200 OK\r\ncontent-length: 100\r\ncontent-type: text/plain\r\n\r\n',
  '/204': 'HTTP/1.1 204 No Content\r\nx-kind: none\r\n\r\n',
  '/304': 'HTTP/1.1 304 Not Modified\r\netag: "v1"\r\n\r\n',
  '/cookies':
    'HTTP/1.1 200 OK\r\nset-cookie: a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT; Path=/\r\n' +
    'set-cookie: b=2, c=3\r\ncontent-length: 2\r\n\r\nok',
  '/trailers':
    'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-checksum\r\n\r\n' +
    '5\r\nhello\r\n0\r\nx-checksum: abc\r\nset-cookie: late=1\r\n\r\n',
};

let backend: RawBackend & { requests(): string[] };
let anubis: RunningAnubis;
let port: number;

function forwarded(): string[] {
  return backend.requests();
}

before(async () => {
  backend = await startRawResponder(
    (request) => ANSWERS[targetOf(request)] ?? 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok',
  );
  anubis = await startAnubis([backend.url]);
  port = Number(new URL(anubis.url).port);
});
after(async () => {
  await anubis.close();
  await backend.close();
});

const H = 'Host: app.example\r\n';

void test('Expect: 100-continue: 100 first, then the body is forwarded (without Expect)', async () => {
  const socket = await openRaw(port);
  let text = '';
  socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
  socket.write(`POST /upload HTTP/1.1\r\n${H}Content-Length: 5\r\nExpect: 100-continue\r\n\r\n`);
  while (!text.includes('\r\n\r\n')) await once(socket, 'data');
  assert.match(text, /^HTTP\/1\.1 100 Continue\r\n\r\n$/);
  socket.write('hello');
  while (!/\r\n\r\nok$/.test(text)) await once(socket, 'data');
  socket.destroy();
  const [request] = forwarded().filter((r) => r.startsWith('POST /upload '));
  assert.ok(request !== undefined);
  assert.doesNotMatch(request, /\r\nexpect:/i);
  assert.match(request, /\r\n\r\nhello$/);
});

void test('HEAD, 204 and 304 carry no body, and the connection stays usable', async () => {
  const answer = await sendRaw(
    port,
    `HEAD /head HTTP/1.1\r\n${H}\r\nGET /204 HTTP/1.1\r\n${H}\r\nGET /304 HTTP/1.1\r\n${H}\r\n` +
      `GET /last HTTP/1.1\r\n${H}Connection: close\r\n\r\n`,
  );
  assert.deepEqual(answer.statuses, [200, 204, 304, 200]);
  const responses = answer.text.split(/(?=HTTP\/1\.1 \d{3} )/);
  assert.equal(responses.length, 4);
  assert.match(responses[0] as string, /\r\ncontent-length: 100\r\n/i);
  for (const response of responses.slice(0, 3)) {
    assert.ok(response.endsWith('\r\n\r\n'), `no body after the head: ${JSON.stringify(response)}`);
  }
  assert.doesNotMatch(responses[1] as string, /transfer-encoding|content-length/i);
  assert.match(responses[3] as string, /\r\n\r\nok$/);
});

void test('several Set-Cookie headers stay separate, commas and all', async () => {
  const answer = await sendRaw(port, `GET /cookies HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
  const cookies = answer.text.match(/\r\nset-cookie: [^\r]*/gi)?.map((l) => l.slice(2));
  assert.deepEqual(cookies, [
    'set-cookie: a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT; Path=/',
    'set-cookie: b=2, c=3',
  ]);
});

void test('trailers reach a client that sent TE: trailers (forbidden fields dropped)', async () => {
  const answer = await sendRaw(
    port,
    `GET /trailers HTTP/1.1\r\n${H}TE: trailers\r\nConnection: close\r\n\r\n`,
  );
  assert.deepEqual(answer.statuses, [200]);
  assert.match(answer.text, /\r\ntransfer-encoding: chunked\r\n/i);
  assert.match(answer.text, /\r\n0\r\nx-checksum: abc\r\n\r\n$/i);
  const [request] = forwarded().filter((r) => r.startsWith('GET /trailers ') && /\r\nte:/i.test(r));
  assert.match(request as string, /\r\nte: trailers\r\n/i, 'TE: trailers is passed to the backend');
});

void test('no trailers for a client that did not ask for them', async () => {
  const answer = await sendRaw(port, `GET /trailers HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
  assert.deepEqual(answer.statuses, [200]);
  assert.match(answer.text, /hello\r\n0\r\n\r\n$/);
  assert.doesNotMatch(answer.text, /x-checksum: abc/);
});

void test('an HTTP/1.0 client gets its answer and the connection closed', async () => {
  const answer = await sendRaw(port, `GET /old HTTP/1.0\r\n\r\n`);
  assert.deepEqual(answer.statuses, [200]);
  assert.equal(answer.closed, true);
  assert.match(answer.text, /^HTTP\/1\.1 200 OK\r\n/);
});

void test('not an open proxy: an absolute-form target never reaches the host it names', async (t) => {
  const elsewhere = await startRawBackend((_data, socket) => {
    socket.end('HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nelsewhere');
  });
  t.after(() => elsewhere.close());
  const answer = await sendRaw(
    port,
    `GET http://127.0.0.1:${elsewhere.port}/steal HTTP/1.1\r\nHost: 127.0.0.1:${elsewhere.port}\r\nConnection: close\r\n\r\n`,
  );
  assert.deepEqual(answer.statuses, [200]);
  assert.match(answer.text, /\r\n\r\nok$/);
  assert.equal(elsewhere.received.length, 0);
  assert.equal(forwarded().filter((r) => r.startsWith('GET /steal ')).length, 1);
  const connect = await sendRaw(
    port,
    `CONNECT 127.0.0.1:${elsewhere.port} HTTP/1.1\r\nHost: 127.0.0.1:${elsewhere.port}\r\n\r\n`,
  );
  assert.deepEqual(connect.statuses, [501]);
  assert.equal(connect.closed, true);
  assert.equal(elsewhere.received.length, 0);
});
