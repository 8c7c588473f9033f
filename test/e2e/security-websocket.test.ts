// WebSocket (and any Upgrade) through anubis: frames both ways, counted as active while open,
// closed cleanly from either side, hash strategies keep a client on its backend, backend
// errors answered before the upgrade, and closeUpgraded() for drains.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { after, before, test } from 'node:test';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { closeUpgraded, upgradedCount } from '../../src/proxy/upgrade.js';
import type { Backend } from '../../src/upstream/backend.js';
import { startAnubis, type RunningAnubis } from '../helpers/anubis.js';
import { freePort, startRawBackend } from '../helpers/servers.js';
import { openRaw, sendRaw } from '../helpers/raw-http.js';

function textOf(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString();
  return Array.isArray(data) ? Buffer.concat(data).toString() : Buffer.from(data).toString();
}

interface WsBackend {
  readonly name: string;
  readonly url: string;
  readonly wss: WebSocketServer;
  readonly server: Server;
  close(): Promise<void>;
}

/** A backend that echoes every message as `<name>:<message>` and serves plain HTTP too. */
async function startWsBackend(name: string): Promise<WsBackend> {
  const server = createServer((req, res) => {
    req.resume();
    if (req.url === '/forbidden-ws') {
      res.writeHead(403, { 'content-type': 'text/plain' }).end('no sockets for you');
      return;
    }
    res.writeHead(200, { 'x-server': name }).end(name);
  });
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    if (req.url === '/forbidden-ws') {
      socket.end(
        'HTTP/1.1 403 Forbidden\r\ncontent-length: 18\r\nconnection: close\r\n\r\nno sockets for you',
      );
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });
  wss.on('connection', (ws, req) => {
    ws.send(`${name}:welcome ${String(req.headers['x-forwarded-for'] ?? '')}`);
    ws.on('message', (data, binary) => {
      if (binary) ws.send(data, { binary: true });
      else if (textOf(data) === 'close-please') ws.close(4000, 'as you wish');
      else ws.send(`${name}:${textOf(data)}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    name,
    url: `http://127.0.0.1:${port}`,
    wss,
    server,
    close: async () => {
      for (const client of wss.clients) client.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

let a: WsBackend;
let b: WsBackend;

before(async () => {
  a = await startWsBackend('a');
  b = await startWsBackend('b');
});
after(async () => {
  await a.close();
  await b.close();
});

function wsUrl(anubis: RunningAnubis, path = '/ws'): string {
  return anubis.url.replace('http://', 'ws://') + path;
}

/** Opens a WebSocket and waits for its welcome message (which names the backend). */
async function connectWs(
  url: string,
): Promise<{ ws: WebSocket; welcome: string; next: () => Promise<string> }> {
  const ws = new WebSocket(url);
  const queue: string[] = [];
  const waiters: ((m: string) => void)[] = [];
  ws.on('message', (data) => {
    const text = textOf(data);
    const waiter = waiters.shift();
    if (waiter !== undefined) waiter(text);
    else queue.push(text);
  });
  const next = (): Promise<string> =>
    queue.length > 0
      ? Promise.resolve(queue.shift() as string)
      : new Promise((resolve) => waiters.push(resolve));
  await once(ws, 'open');
  return { ws, welcome: await next(), next };
}

function backendsOf(anubis: RunningAnubis): Backend[] {
  return anubis.balancer.pools.get('test')?.backends as Backend[];
}

async function waitFor(condition: () => boolean, timeoutMs = 3_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

void test('frames flow both ways, the socket counts as active, and a client close ends both sides', async (t) => {
  const anubis = await startAnubis([a.url]);
  t.after(() => anubis.close());
  const { ws, welcome, next } = await connectWs(wsUrl(anubis));
  assert.equal(welcome, 'a:welcome 127.0.0.1');
  const [backend] = backendsOf(anubis) as [Backend];
  assert.equal(backend.active, 1);
  assert.equal(upgradedCount(backend), 1);
  ws.send('hello');
  assert.equal(await next(), 'a:hello');
  // A large binary frame both ways (back-pressure through the tunnel).
  const big = Buffer.alloc(2 * 1024 * 1024, 7);
  const echoed = new Promise<Buffer>((resolve) => ws.once('message', (d) => resolve(d as Buffer)));
  ws.send(big);
  assert.ok((await echoed).equals(big));
  const serverSide = [...a.wss.clients][0];
  const serverClosed = once(serverSide as WebSocket, 'close');
  ws.close(1000, 'bye');
  const [code] = (await serverClosed) as [number];
  assert.equal(code, 1000);
  await waitFor(() => backend.active === 0 && upgradedCount(backend) === 0);
});

void test('a backend close reaches the client with its code', async (t) => {
  const anubis = await startAnubis([a.url]);
  t.after(() => anubis.close());
  const { ws } = await connectWs(wsUrl(anubis));
  const closed = once(ws, 'close');
  ws.send('close-please');
  const [code, reason] = (await closed) as [number, Buffer];
  assert.equal(code, 4000);
  assert.equal(reason.toString(), 'as you wish');
  await waitFor(() => backendsOf(anubis).every((x) => x.active === 0));
});

void test('a hash strategy keeps a client on its backend, for requests and WebSockets alike', async (t) => {
  const anubis = await startAnubis([a.url, b.url], {
    strategy: { name: 'hash', key: 'header:x-user' },
    exposeBackendHeader: true,
  });
  t.after(() => anubis.close());
  const seen = new Map<string, Set<string>>();
  // Ring points come from the backends' ephemeral ports: with 24 users, all of them landing on
  // one of two backends has odds of 2 in 2^24.
  const users = Array.from({ length: 24 }, (_, i) => `u${i + 1}`);
  for (const user of users) {
    const names = new Set<string>();
    for (let i = 0; i < 2; i++) {
      const ws = new WebSocket(wsUrl(anubis), { headers: { 'x-user': user } });
      const [message] = (await once(ws, 'message')) as [Buffer];
      names.add(message.toString().split(':')[0] as string);
      ws.close();
      await once(ws, 'close');
    }
    const res = await fetch(anubis.url, { headers: { 'x-user': user } });
    names.add((await res.text()).trim());
    seen.set(user, names);
  }
  for (const [user, names] of seen)
    assert.equal(names.size, 1, `${user} moved: ${[...names].join()}`);
  const used = new Set([...seen.values()].flatMap((s) => [...s]));
  assert.equal(used.size, 2, 'the users spread over both backends');
});

void test('least-connections sees an open WebSocket: plain requests go to the other backend', async (t) => {
  const anubis = await startAnubis([a.url, b.url], { strategy: 'least-connections' });
  t.after(() => anubis.close());
  const { ws, welcome } = await connectWs(wsUrl(anubis));
  const busy = welcome.split(':')[0];
  for (let i = 0; i < 4; i++) {
    const res = await fetch(anubis.url);
    assert.notEqual(res.headers.get('x-server'), busy);
    await res.text();
  }
  ws.close();
  await once(ws, 'close');
});

void test('a backend that cannot be reached is a 502 before any upgrade; nothing stays active', async (t) => {
  const anubis = await startAnubis([`http://127.0.0.1:${await freePort()}`]);
  t.after(() => anubis.close());
  const ws = new WebSocket(wsUrl(anubis));
  ws.on('error', () => {});
  const [, res] = (await once(ws, 'unexpected-response')) as [unknown, { statusCode: number }];
  assert.equal(res.statusCode, 502);
  ws.terminate();
  await waitFor(() => backendsOf(anubis).every((x) => x.active === 0));
});

void test('an Upgrade that cannot connect is sent to another backend (nothing was sent)', async (t) => {
  const anubis = await startAnubis([`http://127.0.0.1:${await freePort()}`, a.url]);
  t.after(() => anubis.close());
  for (let i = 0; i < 4; i++) {
    const { ws, welcome } = await connectWs(wsUrl(anubis));
    assert.match(welcome, /^a:welcome/);
    ws.close();
    await once(ws, 'close');
  }
  await waitFor(() => backendsOf(anubis).every((x) => x.active === 0));
});

void test('a backend that refuses the upgrade has its answer relayed', async (t) => {
  const anubis = await startAnubis([a.url]);
  t.after(() => anubis.close());
  const answer = await sendRaw(
    Number(new URL(anubis.url).port),
    'GET /forbidden-ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
      'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
  );
  assert.deepEqual(answer.statuses, [403]);
  assert.match(answer.text, /\r\n\r\nno sockets for you$/);
  assert.equal(answer.closed, true);
  await waitFor(() => backendsOf(anubis).every((x) => x.active === 0));
});

void test('an Upgrade request with a body is refused', async (t) => {
  const anubis = await startAnubis([a.url]);
  t.after(() => anubis.close());
  const answer = await sendRaw(
    Number(new URL(anubis.url).port),
    'POST /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: foo\r\nContent-Length: 3\r\n\r\nabc',
  );
  assert.deepEqual(answer.statuses, [400]);
});

void test('closeUpgraded() waits, then cuts the WebSockets of a backend', async (t) => {
  const anubis = await startAnubis([a.url]);
  t.after(() => anubis.close());
  const first = await connectWs(wsUrl(anubis));
  const second = await connectWs(wsUrl(anubis));
  const [backend] = backendsOf(anubis) as [Backend];
  assert.equal(upgradedCount(backend), 2);
  // One closes by itself during the grace period; the other is cut at the end of it.
  setTimeout(() => first.ws.close(1000), 50);
  const cutClosed = once(second.ws, 'close');
  const cut = await closeUpgraded(backend, 400);
  assert.equal(cut, 1);
  const [code] = (await cutClosed) as [number];
  assert.equal(code, 1006, 'an abnormal closure: the tunnel was cut');
  await waitFor(() => backend.active === 0 && upgradedCount(backend) === 0);
});

void test('closing anubis cuts open WebSockets after the drain time', async () => {
  const anubis = await startAnubis([a.url]);
  const { ws } = await connectWs(wsUrl(anubis));
  const closed = once(ws, 'close');
  const started = performance.now();
  await anubis.balancer.close(200);
  await closed;
  assert.ok(performance.now() - started < 5_000);
});

void test('any Upgrade (h2c here) is tunnelled as bytes, with its connection options', async (t) => {
  const raw = await startRawBackend((data, socket) => {
    if (data.includes('\r\n\r\n') && !data.includes('SWITCHED')) {
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\nSERVER-BYTES',
      );
    }
  });
  t.after(() => raw.close());
  const anubis = await startAnubis([raw.url]);
  t.after(() => anubis.close());
  const client = await openRaw(Number(new URL(anubis.url).port));
  t.after(() => client.destroy());
  let received = '';
  client.on('data', (d: Buffer) => (received += d.toString('latin1')));
  client.write(
    'GET /h2c HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n' +
      'HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n',
  );
  await waitFor(() => received.endsWith('SERVER-BYTES'));
  assert.match(received, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
  client.write('CLIENT-BYTES SWITCHED');
  await waitFor(() => Buffer.concat(raw.received[0] ?? []).includes('CLIENT-BYTES SWITCHED'));
  const sent = Buffer.concat(raw.received[0] ?? []).toString('latin1');
  assert.match(sent, /\r\nConnection: Upgrade, http2-settings\r\n/i);
  assert.match(sent, /\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n/);
  assert.match(sent, /\r\nUpgrade: h2c\r\n/);
});

void test('plain HTTP through the same listener is unaffected', async (t) => {
  const anubis = await startAnubis([a.url]);
  t.after(() => anubis.close());
  const body = await new Promise<string>((resolve, reject) => {
    const req = request(anubis.url, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve(text));
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(body, 'a');
});
