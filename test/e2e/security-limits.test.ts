// Limits: request target (414), header block size and count (431), body size per pool (413),
// each with a short body and a closed connection; per-listener overrides; bad values refused.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { startAnubis, type RunningAnubis } from '../helpers/anubis.js';
import { sendRaw, startRecordingBackend } from '../helpers/raw-http.js';

let backend: Awaited<ReturnType<typeof startRecordingBackend>>;
let anubis: RunningAnubis;
let port: number;
let strictPort: number;

before(async () => {
  backend = await startRecordingBackend();
  anubis = await startAnubis(
    [backend.url],
    { maxBodySize: '1kb' },
    {
      limits: { maxUriLength: '1kb', maxHeaderSize: '2kb', maxHeaderCount: 20 },
      listeners: [
        { address: '127.0.0.1:0', pool: 'test' },
        { address: '127.0.0.1:0', pool: 'test', limits: { maxUriLength: 100 } },
      ],
    },
  );
  const [first, second] = anubis.balancer.addresses();
  port = first?.port as number;
  strictPort = second?.port as number;
});
after(async () => {
  await anubis.close();
  await backend.close();
});

const H = 'Host: app.example\r\n';

function forwardedCount(marker: string): number {
  return backend.requests().filter((r) => r.includes(marker)).length;
}

void test('a request target at the limit passes; one byte more is 414 and closes', async () => {
  const fits = `/fits?${'a'.repeat(1024 - 6)}`;
  assert.equal(fits.length, 1024);
  const ok = await sendRaw(port, `GET ${fits} HTTP/1.1\r\n${H}\r\n`, 1_000);
  assert.deepEqual(ok.statuses, [200]);
  const tooLong = `/long?${'a'.repeat(1024 - 5)}`;
  const refused = await sendRaw(port, `GET ${tooLong} HTTP/1.1\r\n${H}\r\n`);
  assert.deepEqual(refused.statuses, [414]);
  assert.match(refused.text, /\r\n\r\n414 URI Too Long: request target too long\n$/);
  assert.equal(refused.closed, true);
  assert.equal(forwardedCount('/long?'), 0);
});

void test('a listener can override a top-level limit', async () => {
  const target = `/mid?${'a'.repeat(200)}`;
  assert.deepEqual(
    (await sendRaw(port, `GET ${target} HTTP/1.1\r\n${H}\r\n`, 1_000)).statuses,
    [200],
  );
  assert.deepEqual(
    (await sendRaw(strictPort, `GET ${target} HTTP/1.1\r\n${H}\r\n`)).statuses,
    [414],
  );
});

void test('a header block over maxHeaderSize is 431', async () => {
  const big = `X-Big: ${'b'.repeat(2100)}\r\n`;
  const answer = await sendRaw(port, `GET /big-headers HTTP/1.1\r\n${H}${big}\r\n`);
  assert.deepEqual(answer.statuses, [431]);
  assert.equal(answer.closed, true);
  assert.equal(forwardedCount('/big-headers'), 0);
});

void test('more header fields than maxHeaderCount is 431; exactly the limit passes', async () => {
  const fields = (n: number): string =>
    Array.from({ length: n }, (_, i) => `X-F${i}: ${i}\r\n`).join('');
  const ok = await sendRaw(port, `GET /count-ok HTTP/1.1\r\n${H}${fields(19)}\r\n`, 1_000);
  assert.deepEqual(ok.statuses, [200]);
  const refused = await sendRaw(port, `GET /count-over HTTP/1.1\r\n${H}${fields(20)}\r\n`);
  assert.deepEqual(refused.statuses, [431]);
  assert.match(refused.text, /too many request header fields/);
  assert.equal(forwardedCount('/count-over'), 0);
});

void test('far beyond every limit the parser stops reading and answers 431', async () => {
  const answer = await sendRaw(
    port,
    `GET /huge HTTP/1.1\r\n${H}X-Huge: ${'h'.repeat(64 * 1024)}\r\n\r\n`,
  );
  assert.deepEqual(answer.statuses, [431]);
  assert.equal(answer.closed, true);
  assert.equal(forwardedCount('/huge'), 0);
});

void test('a declared body over the pool limit is 413 before any byte is forwarded', async () => {
  const answer = await sendRaw(
    port,
    `POST /declared HTTP/1.1\r\n${H}Content-Length: 2000\r\n\r\n${'x'.repeat(2000)}`,
  );
  assert.deepEqual(answer.statuses, [413]);
  assert.equal(answer.closed, true);
  assert.equal(forwardedCount('/declared'), 0);
});

void test('Expect: 100-continue with a body over the limit gets 413 and no 100 Continue', async () => {
  const answer = await sendRaw(
    port,
    `POST /expect-big HTTP/1.1\r\n${H}Content-Length: 5000\r\nExpect: 100-continue\r\n\r\n`,
  );
  assert.deepEqual(answer.statuses, [413]);
  assert.doesNotMatch(answer.text, /100 Continue/);
});

void test('a chunked body that grows past the limit is 413 and the backend never gets it whole', async () => {
  const chunk = `200\r\n${'y'.repeat(0x200)}\r\n`;
  const answer = await sendRaw(port, [
    `POST /chunked-big HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n`,
    chunk.repeat(6),
    '0\r\n\r\n',
  ]);
  assert.deepEqual(answer.statuses, [413], answer.text);
  assert.equal(answer.closed, true);
  assert.equal(forwardedCount('/chunked-big'), 0);
});

void test('a body within the limit passes, chunked or not', async () => {
  const chunked = await sendRaw(
    port,
    `POST /small-chunked HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n10\r\n${'z'.repeat(16)}\r\n0\r\n\r\n`,
    1_000,
  );
  assert.deepEqual(chunked.statuses, [200]);
  const plain = await sendRaw(
    port,
    `POST /small HTTP/1.1\r\n${H}Content-Length: 1024\r\n\r\n${'z'.repeat(1024)}`,
    1_000,
  );
  assert.deepEqual(plain.statuses, [200]);
  assert.equal(forwardedCount('/small-chunked'), 1);
  assert.equal(forwardedCount('/small '), 1);
});

void test('invalid limits are configuration errors naming the key', () => {
  const base = {
    listeners: [{ address: '127.0.0.1:0', pool: 'p', limits: { maxHeaderCount: 0 } }],
    pools: { p: { backends: [{ url: 'http://127.0.0.1:1' }], maxBodySize: 'lots' } },
    limits: { headersTimeout: 'soon' },
  };
  assert.throws(
    () => validateConfig(base, 'test.yaml'),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      const paths = error.issues.map((i) => i.path);
      assert.ok(paths.includes('listeners[0].limits.maxHeaderCount'), paths.join());
      assert.ok(paths.includes('pools.p.maxBodySize'), paths.join());
      assert.ok(paths.includes('limits.headersTimeout'), paths.join());
      return true;
    },
  );
});
