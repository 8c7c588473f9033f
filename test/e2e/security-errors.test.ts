// Errors never crash the process: malformed backend answers become 502 (or a cut response when
// the head was already sent), an exception thrown while handling a request becomes a logged 500
// with a request id, and anubis keeps serving with nothing left active.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { HttpListener } from '../../src/server/http-listener.js';
import type { Backend } from '../../src/upstream/backend.js';
import { startAnubis, type RunningAnubis } from '../helpers/anubis.js';
import { sendRaw, startRawResponder, targetOf } from '../helpers/raw-http.js';
import type { RawBackend } from '../helpers/servers.js';

/** Malformed answers by path; `null` = close the connection without a word. */
const BROKEN: Record<string, string | null> = {
  '/status-000': 'HTTP/1.1 000 Zero\r\ncontent-length: 0\r\n\r\n',
  '/status-099': 'HTTP/1.1 099 Low\r\ncontent-length: 0\r\n\r\n',
  '/nul-header': 'HTTP/1.1 200 OK\r\nx-a: a\x00b\r\ncontent-length: 0\r\n\r\n',
  '/bad-name': 'HTTP/1.1 200 OK\r\nx a: 1\r\ncontent-length: 0\r\n\r\n',
  '/two-lengths': 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nabc',
  '/cl-and-te':
    'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
  '/garbage': 'HELLO THERE\r\n\r\n',
  '/unsolicited-101':
    'HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\nconnection: upgrade\r\n\r\n',
  '/silent-close': null,
};

let backend: RawBackend;
let anubis: RunningAnubis;
let port: number;

before(async () => {
  backend = await startRawResponder((request) => {
    const path = targetOf(request);
    if (path === '/reason-del') return 'HTTP/1.1 200 \x7fbad\r\ncontent-length: 2\r\n\r\nok';
    if (path in BROKEN) return BROKEN[path] ?? null;
    return 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok';
  });
  // One attempt: each malformed answer is seen as it is, not retried.
  anubis = await startAnubis([backend.url], {
    timeouts: { headers: '2s' },
    retry: { attempts: 1 },
  });
  port = Number(new URL(anubis.url).port);
});
after(async () => {
  await anubis.close();
  await backend.close();
});

for (const path of Object.keys(BROKEN)) {
  void test(`a malformed backend answer (${path}) is a 502 and anubis keeps serving`, async () => {
    const answer = await sendRaw(
      port,
      `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
      5_000,
    );
    assert.deepEqual(answer.statuses, [502], JSON.stringify(answer.text));
    const after = await sendRaw(port, `GET /fine HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    assert.deepEqual(after.statuses, [200]);
    const b = anubis.balancer.pools.get('test')?.backends[0] as Backend;
    assert.equal(b.active, 0);
  });
}

void test('a reason phrase Node would refuse is replaced by the standard one', async () => {
  const answer = await sendRaw(
    port,
    'GET /reason-del HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
  );
  assert.match(answer.text, /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nok$/);
});

void test('an exception while handling a request is a logged 500 with a request id; serving goes on', async (t) => {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback): void {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      callback();
    },
  });
  let calls = 0;
  const listener = new HttpListener({
    address: { host: '127.0.0.1', port: 0 },
    logger: pino({ level: 'info' }, sink),
    onRequest: (_req, res) => {
      calls++;
      if (calls === 1) throw new Error('boom in the request path');
      res.end('still here');
    },
  });
  const { port: listenerPort } = await listener.listen();
  t.after(() => listener.close(0));
  const failed = await sendRaw(listenerPort, 'GET /x HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.deepEqual(failed.statuses, [500]);
  const id = /\r\nx-request-id: ([^\r]+)\r\n/i.exec(failed.text)?.[1];
  assert.ok(id !== undefined, failed.text);
  assert.match(failed.text, new RegExp(`request id ${id}`));
  const logged = lines.find((l) => l.requestId === id);
  assert.ok(logged !== undefined, JSON.stringify(lines));
  assert.equal(logged.code, 'ANUBIS_INTERNAL');
  assert.match(JSON.stringify(logged.err), /boom in the request path/);
  const next = await sendRaw(
    listenerPort,
    'GET /y HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
  );
  assert.deepEqual(next.statuses, [200]);
  assert.match(next.text, /still here$/);
});
