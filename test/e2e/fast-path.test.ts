/**
 * The HTTP/1.1 fast path (src/server/fast-http1/) end to end: which requests it serves
 * itself, that its answers are byte for byte those of node:http (fastPath: false), and that
 * every connection it cannot serve reaches node:http intact: pipelined, split, HTTP/1.0,
 * with a body, or following a fast request on the same connection. Also its timeouts,
 * disconnects and draining.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import type { HttpListener } from '../../src/server/http-listener.js';
import { startAnubis, type RunningAnubis } from '../helpers/anubis.js';
import { pollUntil } from '../helpers/poll.js';
import { openRaw, sendRaw } from '../helpers/raw-http.js';
import { startBackend, type TestServer } from '../helpers/servers.js';

/**
 * A backend whose answer depends on the path: /len (Content-Length), /chunked, /empty (204),
 * /cached (304), /slow (after 300 ms), /stream (slow chunks until the client leaves), and
 * anything else echoes method, path and body.
 */
async function startPathBackend(): Promise<TestServer & { aborted: () => number }> {
  let aborted = 0;
  const backend = await startBackend((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const date = { date: 'Mon, 01 Jan 2024 00:00:00 GMT' };
      switch (req.url) {
        case '/len':
          res.writeHead(200, { ...date, 'content-type': 'text/plain', 'content-length': 5 });
          res.end('hello');
          return;
        case '/chunked':
          res.writeHead(200, { ...date, 'content-type': 'text/plain', 'x-dup': ['a', 'b'] });
          res.write('part one,');
          setTimeout(() => res.end('part two'), 10);
          return;
        case '/empty':
          res.writeHead(204, date);
          res.end();
          return;
        case '/cached':
          res.writeHead(304, { ...date, etag: '"v1"' });
          res.end();
          return;
        case '/slow':
          setTimeout(() => {
            res.writeHead(200, { ...date, 'content-length': 4 });
            res.end('slow');
          }, 300);
          return;
        case '/stream': {
          res.writeHead(200, date);
          const timer = setInterval(() => res.write('tick\n'), 20);
          res.on('close', () => {
            clearInterval(timer);
            if (!res.writableFinished) aborted++;
          });
          return;
        }
        default: {
          const text = `${req.method} ${req.url} ${Buffer.concat(chunks).toString()}`;
          res.writeHead(200, { ...date, 'content-length': Buffer.byteLength(text) });
          res.end(text);
        }
      }
    });
  });
  return Object.assign(backend, { aborted: () => aborted });
}

/**
 * The path backend and an anubis in front of it (`extra`: top-level config keys), both
 * closed after the test.
 */
async function startRig(
  t: TestContext,
  extra: Record<string, unknown> = {},
): Promise<{ backend: Awaited<ReturnType<typeof startPathBackend>>; lb: RunningAnubis }> {
  const backend = await startPathBackend();
  const lb = await startAnubis([backend.url], {}, extra);
  t.after(async () => {
    await lb.close();
    await backend.close();
  });
  return { backend, lb };
}

/**
 * Requests node:http passed on to anubis on this anubis's first listener (`request`, or
 * `checkContinue` for Expect: 100-continue); the fast path's are not seen.
 */
function countNodeHttpRequests(lb: RunningAnubis): () => number {
  let seen = 0;
  const server = (lb.balancer.listeners[0] as HttpListener).server;
  server.on('request', () => seen++);
  server.on('checkContinue', () => seen++);
  return () => seen;
}

const portOf = (lb: RunningAnubis): number => Number(new URL(lb.url).port);

function maskDates(text: string): string {
  return text.replace(/^Date: (?!Mon, 01 Jan 2024).*$/gim, 'Date: <now>');
}

test('plain GETs are served on the fast path; a body, HTTP/1.0 and Expect go to node:http', async (t) => {
  const backend = await startPathBackend();
  const lb = await startAnubis([backend.url]);
  const agent = new Agent({ connections: 1 });
  t.after(async () => {
    await agent.close();
    await lb.close();
    await backend.close();
  });
  const nodeHttp = countNodeHttpRequests(lb);
  for (let i = 0; i < 5; i++) {
    const res = await request(`${lb.url}/n${i}?q=${i}`, { dispatcher: agent });
    assert.equal(await res.body.text(), `GET /n${i}?q=${i} `);
  }
  assert.equal(nodeHttp(), 0, 'no plain GET reached node:http');

  const post = await request(`${lb.url}/p`, { method: 'POST', body: 'payload' });
  assert.equal(await post.body.text(), 'POST /p payload');
  assert.equal(nodeHttp(), 1);

  const http10 = await sendRaw(portOf(lb), 'GET /old HTTP/1.0\r\nHost: x\r\n\r\n');
  assert.deepEqual(http10.statuses, [200]);
  assert.ok(http10.text.endsWith('GET /old '));
  assert.equal(nodeHttp(), 2);

  const expect = await sendRaw(
    portOf(lb),
    'PUT /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi',
    500,
  );
  assert.deepEqual(expect.statuses, [100, 200]);
  assert.equal(nodeHttp(), 3);
});

test('the fast path answers byte for byte what node:http answers', async (t) => {
  const backend = await startPathBackend();
  const fast = await startAnubis([backend.url]);
  const plain = await startAnubis(
    [backend.url],
    {},
    {
      listeners: [{ address: '127.0.0.1:0', pool: 'test', fastPath: false }],
    },
  );
  t.after(async () => {
    await fast.close();
    await plain.close();
    await backend.close();
  });
  const nodeHttpOnFast = countNodeHttpRequests(fast);
  const nodeHttpOnPlain = countNodeHttpRequests(plain);
  const requests = [
    'GET /len HTTP/1.1\r\nHost: a.example\r\n\r\n',
    'GET /chunked HTTP/1.1\r\nHost: a.example\r\n\r\n',
    'HEAD /len HTTP/1.1\r\nHost: a.example\r\n\r\n',
    'HEAD /chunked HTTP/1.1\r\nHost: a.example\r\n\r\n',
    'GET /empty HTTP/1.1\r\nHost: a.example\r\n\r\n',
    'GET /cached HTTP/1.1\r\nHost: a.example\r\nIf-None-Match: "v1"\r\n\r\n',
    'GET /echo?x=1&y=%20 HTTP/1.1\r\nHost: a.example\r\nAccept: a\r\nAccept: b\r\n\r\n',
    'DELETE /item/7 HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n',
    'GET /missing-host HTTP/1.1\r\n\r\n',
    'GET /two-hosts HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n',
    'GET /frag#x HTTP/1.1\r\nHost: a\r\n\r\n',
    'GET http://a.example/abs HTTP/1.1\r\nHost: ignored\r\n\r\n',
    'OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n',
    'GET /bad HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n',
  ];
  for (const raw of requests) {
    const [a, b] = await Promise.all([
      sendRaw(portOf(fast), raw, 600),
      sendRaw(portOf(plain), raw, 600),
    ]);
    assert.equal(maskDates(a.text), maskDates(b.text), raw);
    assert.equal(a.closed, b.closed, `connection closed alike: ${raw}`);
  }
  // node:http answers the missing Host and the malformed header line itself (no `request`).
  assert.equal(nodeHttpOnPlain(), requests.length - 2);
  // The first eight are plain: the fast listener hands only the other four to anubis through
  // node:http (two Hosts, fragment, absolute form, OPTIONS *: refused or rewritten there).
  assert.equal(nodeHttpOnFast(), 4);
});

test('a Connection: close answer through the proxy is whole and ends with a FIN', async (t) => {
  const { lb } = await startRig(t);
  const socket = await openRaw(portOf(lb));
  t.after(() => socket.destroy());
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  // `once` rejects on 'error': a reset instead of an end fails the test.
  const ended = once(socket, 'end');
  socket.write('GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  await ended;
  const answer = Buffer.concat(chunks).toString('latin1');
  assert.match(
    answer,
    /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\nConnection: close\r\n[\s\S]*GET \/hello $/,
  );
});

test('pipelined, split and mixed requests reach node:http intact and in order', async (t) => {
  const { lb } = await startRig(t);
  const port = portOf(lb);
  const nodeHttp = countNodeHttpRequests(lb);
  const get = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`;
  /**
   * Writes the parts one by one, 50 ms apart (so that each is a read of its own), then reads
   * until the answer ends with `expectEnd` (at most 3 s).
   */
  const trickle = async (parts: string[], expectEnd: string): Promise<string> => {
    const socket = await openRaw(port);
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    for (const part of parts) {
      socket.write(part);
      await sleep(50);
    }
    await pollUntil(() => text.endsWith(expectEnd), true, 3_000);
    socket.destroy();
    return text;
  };

  const pipelined = await sendRaw(port, get('/a') + get('/b') + get('/c'), 800);
  assert.deepEqual(pipelined.statuses, [200, 200, 200]);
  assert.match(pipelined.text, /GET \/a [\s\S]*GET \/b [\s\S]*GET \/c $/);
  assert.equal(nodeHttp(), 3, 'pipelined requests go to node:http');

  // A head split over reads is parsed as it comes, on the fast path.
  const split = await trickle(['GET /sp', 'lit HTTP/1.1\r\nHo', 'st: x\r\n\r\n'], 'GET /split ');
  assert.match(split, /^HTTP\/1\.1 200 [\s\S]*GET \/split $/);
  assert.equal(nodeHttp(), 3);
  // A split head that turns out to need node:http reaches it whole, from its first byte.
  const splitPost = await trickle(
    ['POST /sp', 'lit HTTP/1.1\r\nHost: x\r\nCont', 'ent-Length: 3\r\n\r\nabc'],
    'POST /split abc',
  );
  assert.match(splitPost, /^HTTP\/1\.1 200 [\s\S]*POST \/split abc$/);
  assert.equal(nodeHttp(), 4);
  // A split head followed by a pipelined request in the read that completes it.
  const splitPipelined = await trickle(
    ['GET /x HTTP/1.1\r\n', 'Host: x\r\n\r\n' + get('/y')],
    'GET /y ',
  );
  assert.match(splitPipelined, /GET \/x [\s\S]*GET \/y $/);
  assert.equal(nodeHttp(), 6);

  // A fast GET, then a POST on the same connection (handed off), then a GET (node:http's now).
  const socket = await openRaw(port);
  t.after(() => socket.destroy());
  const exchange = async (bytes: string, expectEnd: string): Promise<string> => {
    let text = '';
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('latin1');
    };
    socket.on('data', onData);
    socket.write(bytes);
    while (!text.endsWith(expectEnd)) await once(socket, 'data');
    socket.off('data', onData);
    return text;
  };
  assert.match(await exchange(get('/one'), 'GET /one '), /^HTTP\/1\.1 200 /);
  const post = 'POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc';
  assert.match(await exchange(post, 'POST /two abc'), /^HTTP\/1\.1 200 /);
  assert.match(await exchange(get('/three'), 'GET /three '), /^HTTP\/1\.1 200 /);
});

test('a request pipelined behind a response in flight is answered after it', async (t) => {
  const { lb } = await startRig(t);
  const socket = await openRaw(portOf(lb));
  t.after(() => socket.destroy());
  let text = '';
  socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
  socket.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n');
  await sleep(100);
  socket.write('GET /after HTTP/1.1\r\nHost: x\r\n\r\n');
  const deadline = Date.now() + 3_000;
  while (!text.endsWith('GET /after ') && Date.now() < deadline) await sleep(20);
  assert.match(text, /^HTTP\/1\.1 200 [\s\S]*\r\n\r\nslowHTTP\/1\.1 200 [\s\S]*GET \/after $/);
});

test('a client leaving mid-response stops the upstream request', async (t) => {
  const { backend, lb } = await startRig(t);
  const socket = await openRaw(portOf(lb));
  socket.write('GET /stream HTTP/1.1\r\nHost: x\r\n\r\n');
  await once(socket, 'data');
  socket.destroy();
  const deadline = Date.now() + 3_000;
  while (backend.aborted() === 0 && Date.now() < deadline) await sleep(20);
  assert.equal(backend.aborted(), 1);
  const pool = lb.balancer.pools.get('test');
  while (pool?.backends[0]?.active !== 0 && Date.now() < deadline) await sleep(20);
  assert.equal(pool?.backends[0]?.active, 0);
});

test('fast-path timeouts: an idle keep-alive connection closes, a silent one gets 408', async (t) => {
  const { lb } = await startRig(t, {
    limits: { keepAliveTimeout: '1s', headersTimeout: '400ms' },
  });
  const port = portOf(lb);
  // keepAliveTimeout plus node:http's one-second grace.
  const idle = await openRaw(port);
  idle.write('GET /len HTTP/1.1\r\nHost: x\r\n\r\n');
  await once(idle, 'data');
  const started = Date.now();
  await once(idle, 'close');
  const idleMs = Date.now() - started;
  assert.ok(idleMs >= 1_500 && idleMs < 4_000, `closed after ${idleMs} ms`);

  const silent = await sendRaw(port, [], 3_000);
  assert.deepEqual(silent.statuses, [408]);
  assert.ok(silent.closed);

  // A head that never completes: 408 within headersTimeout of the connection's start, even
  // though bytes keep coming.
  const slow = await openRaw(port);
  const opened = Date.now();
  let slowText = '';
  slow.on('data', (chunk: Buffer) => (slowText += chunk.toString('latin1')));
  slow.write('GET /slowloris HTTP/1.1\r\n');
  const drip = setInterval(() => slow.write('X-Drip: 1\r\n'), 100);
  await once(slow, 'close');
  clearInterval(drip);
  const slowMs = Date.now() - opened;
  assert.match(slowText, /^HTTP\/1\.1 408 /);
  assert.ok(slowMs < 1_500, `cut after ${slowMs} ms`);
});

test('draining: an idle fast connection closes, one in flight ends with Connection: close', async (t) => {
  const backend = await startPathBackend();
  const lb = await startAnubis([backend.url]);
  t.after(() => backend.close());
  const port = portOf(lb);
  const idle: Socket = await openRaw(port);
  idle.write('GET /len HTTP/1.1\r\nHost: x\r\n\r\n');
  await once(idle, 'data');
  const busy = sendRaw(port, 'GET /slow HTTP/1.1\r\nHost: x\r\n\r\n', 3_000);
  // In flight (anubis has it at the backend, which answers 300 ms later) when the drain starts.
  const target = lb.balancer.pools.get('test')?.backends[0];
  assert.equal(await pollUntil(() => target?.active, 1), 1);
  const closed = lb.balancer.close(3_000);
  await once(idle, 'close');
  const answer = await busy;
  await closed;
  assert.deepEqual(answer.statuses, [200]);
  assert.match(answer.text, /\r\nConnection: close\r\n/);
  assert.ok(answer.text.endsWith('slow'));
  assert.ok(answer.closed);
});

test('a connection refused by the cap that resets does not take anubis down', async (t) => {
  const { lb } = await startRig(t, { limits: { maxConnections: 1 } });
  const port = portOf(lb);
  const held = await openRaw(port);
  t.after(() => held.destroy());
  // Answered first, so anubis counts it before the ones beyond the cap arrive.
  const first = once(held, 'data');
  held.write('GET /len HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.match(((await first) as [Buffer])[0].toString('latin1'), /^HTTP\/1\.1 200 /);
  for (let i = 0; i < 3; i++) {
    const refused = await openRaw(port);
    refused.on('error', () => {});
    refused.write('GET /len HTTP/1.1\r\nHost: x\r\n\r\n');
    await once(refused, 'data');
    refused.resetAndDestroy();
  }
  await sleep(200);
  held.write('GET /len HTTP/1.1\r\nHost: x\r\n\r\n');
  const [answer] = (await once(held, 'data')) as [Buffer];
  assert.match(answer.toString('latin1'), /^HTTP\/1\.1 200 /);
});
