// Request smuggling: every ambiguous framing is refused with 400 (or 501/505) and a closed
// connection, and nothing reaches the backend; what does reach it is one normalised request
// (checked byte for byte on a raw TCP backend).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startAnubis, type RunningAnubis } from '../helpers/anubis.js';
import { sendRaw, startRecordingBackend } from '../helpers/raw-http.js';

let backend: Awaited<ReturnType<typeof startRecordingBackend>>;
let anubis: RunningAnubis;
let port: number;

before(async () => {
  backend = await startRecordingBackend();
  anubis = await startAnubis([backend.url]);
  port = Number(new URL(anubis.url).port);
});
after(async () => {
  await anubis.close();
  await backend.close();
});

const H = 'Host: app.example\r\n';

/** The one request the backend received for `path` (fails if none or several). */
function forwardedTo(path: string): string {
  const found = backend.requests().filter((r) => r.split(' ', 2)[1] === path);
  assert.equal(found.length, 1, `requests for ${path}: ${found.length}`);
  return found[0] as string;
}

function splitHead(request: string): [string, string] {
  const end = request.indexOf('\r\n\r\n');
  return [request.slice(0, end), request.slice(end + 4)];
}

/** Requests that must never be forwarded: [name, raw bytes, expected status]. */
const REFUSED: [string, string, number][] = [
  [
    'CL and TE',
    `POST / HTTP/1.1\r\n${H}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG`,
    400,
  ],
  [
    'TE and CL',
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\nG`,
    400,
  ],
  [
    'duplicate equal CL',
    `POST / HTTP/1.1\r\n${H}Content-Length: 1\r\nContent-Length: 1\r\n\r\nx`,
    400,
  ],
  ['differing CL', `POST / HTTP/1.1\r\n${H}Content-Length: 1\r\nContent-Length: 2\r\n\r\nxx`, 400],
  ['CL list', `POST / HTTP/1.1\r\n${H}Content-Length: 1, 1\r\n\r\nx`, 400],
  ['CL with sign', `POST / HTTP/1.1\r\n${H}Content-Length: +1\r\n\r\nx`, 400],
  ['CL overflow', `POST / HTTP/1.1\r\n${H}Content-Length: 99999999999999999999999\r\n\r\n`, 400],
  [
    'TE gzip, chunked',
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`,
    400,
  ],
  [
    'TE chunked, gzip',
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n`,
    400,
  ],
  [
    'TE chunked, identity',
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`,
    400,
  ],
  ['TE identity', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: identity\r\n\r\n`, 400],
  ['TE xchunked', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`, 400],
  ['TE chunkedx', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunkedx\r\n\r\n0\r\n\r\n`, 400],
  ['TE ,chunked', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n`, 400],
  ['TE chunked;x', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked;x=1\r\n\r\n0\r\n\r\n`, 400],
  ['TE empty', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: \r\n\r\n`, 400],
  [
    'TE twice',
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    400,
  ],
  [
    'TE chunked then identity',
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n`,
    400,
  ],
  ['TE vertical tab', `POST / HTTP/1.1\r\n${H}Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n`, 400],
  ['TE form feed', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: \x0cchunked\r\n\r\n0\r\n\r\n`, 400],
  [
    'TE space before colon',
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n`,
    400,
  ],
  ['TE in HTTP/1.0', `POST / HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400],
  [
    'chunk size 0x5',
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n`,
    400,
  ],
  ['chunk size -1', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n-1\r\n\r\n`, 400],
  [
    'chunk size with space',
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n`,
    400,
  ],
  [
    'chunk size overflow',
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF1\r\nhello\r\n0\r\n\r\n`,
    400,
  ],
  [
    'chunk data too long',
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX\r\n0\r\n\r\n`,
    400,
  ],
  [
    'chunk bare LF',
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n`,
    400,
  ],
  ['bare LF line endings', 'GET / HTTP/1.1\nHost: app.example\n\n', 400],
  ['bare LF in one header', `GET / HTTP/1.1\r\n${H}X-A: 1\nX-B: 2\r\n\r\n`, 400],
  ['bare CR', `GET / HTTP/1.1\r\n${H}X-A: 1\rX-B: 2\r\n\r\n`, 400],
  ['obs-fold', `GET / HTTP/1.1\r\n${H}X-A: 1\r\n 2\r\n\r\n`, 400],
  ['obs-fold with tab', `GET / HTTP/1.1\r\n${H}X-A: 1\r\n\t2\r\n\r\n`, 400],
  ['space before colon', `GET / HTTP/1.1\r\n${H}X-A : 1\r\n\r\n`, 400],
  ['tab before colon', `GET / HTTP/1.1\r\n${H}X-A\t: 1\r\n\r\n`, 400],
  ['NUL in value', `GET / HTTP/1.1\r\n${H}X-A: a\x00b\r\n\r\n`, 400],
  ['CR in value', `GET / HTTP/1.1\r\n${H}X-A: a\rb\r\n\r\n`, 400],
  ['control char in value', `GET / HTTP/1.1\r\n${H}X-A: a\x01b\r\n\r\n`, 400],
  ['DEL in value', `GET / HTTP/1.1\r\n${H}X-A: a\x7fb\r\n\r\n`, 400],
  ['empty header name', `GET / HTTP/1.1\r\n${H}: x\r\n\r\n`, 400],
  ['NUL in target', `GET /a\x00b HTTP/1.1\r\n${H}\r\n`, 400],
  ['fragment in target', `GET /a#b HTTP/1.1\r\n${H}\r\n`, 400],
  ['missing Host', 'GET / HTTP/1.1\r\n\r\n', 400],
  ['two Host headers', `GET / HTTP/1.1\r\n${H}Host: other.example\r\n\r\n`, 400],
  ['invalid Host', 'GET / HTTP/1.1\r\nHost: a b/c\r\n\r\n', 400],
  ['asterisk target with GET', `GET * HTTP/1.1\r\n${H}\r\n`, 400],
  ['OPTIONS * (not forwardable)', `OPTIONS * HTTP/1.1\r\n${H}\r\n`, 501],
  ['absolute-form ftp', `GET ftp://evil.example/x HTTP/1.1\r\n${H}\r\n`, 400],
  ['absolute-form with user info', `GET http://user@evil.example/x HTTP/1.1\r\n${H}\r\n`, 400],
  ['HTTP/2.0 over HTTP/1', `GET / HTTP/2.0\r\n${H}\r\n`, 505],
  ['HTTP/0.9', 'GET /\r\n\r\n', 505],
  ['CONNECT', 'CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n', 501],
];

void describe('ambiguous requests are refused and never forwarded', () => {
  for (const [name, raw, status] of REFUSED) {
    void test(name, async () => {
      const before = backend.requests().length;
      const answer = await sendRaw(port, raw);
      assert.deepEqual(answer.statuses, [status], answer.text);
      assert.match(answer.text, /\r\nconnection: close\r\n/i);
      assert.equal(answer.closed, true, 'anubis closes the connection');
      // A bad chunk can only be seen once the body streams: the backend may then have got the
      // head and part of the body, but never a complete request (its connection is cut).
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(backend.requests().length, before, 'no complete request reached the backend');
    });
  }
});

void describe('what reaches the backend is one normalised request', () => {
  void test('a request smuggled after a refused one is never processed', async () => {
    const before = backend.requests().length;
    const answer = await sendRaw(port, [
      `POST / HTTP/1.1\r\n${H}Content-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n`,
      `0\r\n\r\nGET /admin HTTP/1.1\r\n${H}\r\n`,
      `GET /after HTTP/1.1\r\n${H}\r\n`,
    ]);
    assert.deepEqual(answer.statuses, [400]);
    assert.equal(answer.closed, true);
    assert.equal(backend.requests().length, before);
  });

  void test('chunked with odd case and trailing whitespace is re-framed unambiguously', async () => {
    const answer = await sendRaw(
      port,
      [
        `POST /up?x=1 HTTP/1.1\r\n${H}Transfer-Encoding: ChUnKeD \r\n\r\n`,
        '5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n',
      ],
      1_000,
    );
    assert.deepEqual(answer.statuses, [200], answer.text);
    const forwarded = forwardedTo('/up?x=1');
    const [head, body] = splitHead(forwarded);
    assert.match(head, /^POST \/up\?x=1 HTTP\/1\.1\r\n/);
    // Exactly one framing header; the client's chunk extensions and trailers are gone.
    const framing = head
      .split('\r\n')
      .filter((l) => /^(content-length|transfer-encoding):/i.test(l));
    assert.equal(framing.length, 1, head);
    if (/^content-length/i.test(framing[0] as string)) {
      assert.equal(framing[0]?.toLowerCase(), 'content-length: 11');
      assert.equal(body, 'hello world');
    } else {
      assert.equal(framing[0]?.toLowerCase(), 'transfer-encoding: chunked');
      assert.doesNotMatch(forwarded, /ext=1|X-Trailer/);
    }
  });

  void test('a body with Content-Length is forwarded byte for byte, and a pipelined request after it separately', async () => {
    const answer = await sendRaw(
      port,
      [
        `POST /cl-a HTTP/1.1\r\n${H}Content-Length: 26\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n`,
        `GET /cl-b HTTP/1.1\r\n${H}\r\n`,
      ],
      1_000,
    );
    assert.deepEqual(answer.statuses, [200, 200]);
    const first = forwardedTo('/cl-a');
    const [head, body] = splitHead(first);
    assert.match(head, /\r\ncontent-length: 26$|\r\ncontent-length: 26\r\n/i);
    assert.equal(body, 'GET /smuggled HTTP/1.1\r\n\r\n');
    assert.match(forwardedTo('/cl-b'), /^GET \/cl-b HTTP\/1\.1\r\n/);
    assert.equal(backend.requests().filter((r) => r.startsWith('GET /smuggled')).length, 0);
  });

  void test('an absolute-form target goes to the pool, in origin form, with the Host of the target', async () => {
    const answer = await sendRaw(
      port,
      `GET http://evil.example:81/abs?y=1 HTTP/1.1\r\n${H}\r\n`,
      1_000,
    );
    assert.deepEqual(answer.statuses, [200]);
    const forwarded = forwardedTo('/abs?y=1');
    assert.match(forwarded, /^GET \/abs\?y=1 HTTP\/1\.1\r\n/);
    const hosts = forwarded.match(/\r\nhost: [^\r]*/gi);
    assert.deepEqual(
      hosts?.map((h) => h.toLowerCase()),
      ['\r\nhost: evil.example:81'],
    );
  });

  void test('no framing header from the client survives: hop-by-hop and Connection-named headers are dropped', async () => {
    await sendRaw(
      port,
      `GET /hop HTTP/1.1\r\n${H}Connection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=1\r\nProxy-Connection: x\r\nTE: gzip\r\n\r\n`,
      1_000,
    );
    assert.doesNotMatch(
      forwardedTo('/hop'),
      /x-secret|keep-alive: timeout|proxy-connection|\r\nte:/i,
    );
  });
});
