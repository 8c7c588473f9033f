// TCP mode (layer 4) through real sockets: echo, balancing and counters, a backend dying
// mid-stream, retry on connect failure, connection limit, idle timeout, half-close, drain,
// back-pressure towards a slow reader, a download intact through a slow reader, a large transfer in bounded memory, counters in the
// admin API and /metrics, and connections to removed backends drained then cut.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { setTimeout as sleep } from 'node:timers/promises';
import { validateConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { createLoadBalancer, type LoadBalancer } from '../../src/load-balancer.js';
import { TcpListener } from '../../src/server/tcp-listener.js';
import { backendIdFromUrl } from '../../src/upstream/backend.js';
import type { UpstreamPool } from '../../src/upstream/pool.js';
import { pollUntil } from '../helpers/poll.js';
import { freePort } from '../helpers/servers.js';

interface TcpBackend {
  readonly url: string;
  readonly server: Server;
  readonly sockets: Set<Socket>;
  accepted: number;
  close(): Promise<void>;
}

/** A TCP backend on 127.0.0.1:0; `onSocket` handles each connection (default: echo, prefixed). */
async function startTcpBackend(
  name: string,
  onSocket?: (socket: Socket) => void,
): Promise<TcpBackend> {
  const sockets = new Set<Socket>();
  const backend = {
    url: '',
    server: createServer({ allowHalfOpen: true }, (socket) => {
      backend.accepted++;
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {});
      if (onSocket !== undefined) onSocket(socket);
      else {
        socket.write(`${name}:`);
        socket.pipe(socket);
      }
    }),
    sockets,
    accepted: 0,
    close: async (): Promise<void> => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => backend.server.close(() => resolve()));
    },
  };
  await new Promise<void>((resolve) => backend.server.listen(0, '127.0.0.1', resolve));
  backend.url = `tcp://127.0.0.1:${(backend.server.address() as AddressInfo).port}`;
  return backend;
}

async function startTcpAnubis(
  backends: readonly string[],
  tcp: Record<string, unknown> = {},
  pool: Record<string, unknown> = {},
): Promise<{ lb: LoadBalancer; port: number; pool: UpstreamPool; listener: TcpListener }> {
  const lb = await createLoadBalancer({
    workers: 1,
    log: { level: 'silent' },
    listeners: [{ address: '127.0.0.1:0', pool: 'db', mode: 'tcp', tcp }],
    pools: { db: { backends: backends.map((url) => ({ url })), ...pool } },
  } as unknown as ConfigInput);
  const listener = lb.listeners[0] as TcpListener;
  assert.ok(listener instanceof TcpListener);
  return {
    lb,
    port: (lb.addresses()[0] as AddressInfo).port,
    pool: lb.pools.get('db') as UpstreamPool,
    listener,
  };
}

/** Connects, sends `text`, half-closes, and resolves with everything received. */
async function exchange(port: number, text: string): Promise<string> {
  const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: false });
  // A connection anubis gives up on may be reset (it had unread bytes): that is an answer too.
  socket.on('error', () => {});
  let received = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (received += chunk));
  await once(socket, 'connect');
  socket.end(text);
  await new Promise((resolve) => socket.once('close', resolve));
  return received;
}

async function until(predicate: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(10);
  }
}

const activeTotal = (pool: UpstreamPool): number => pool.backends.reduce((n, b) => n + b.active, 0);

void test('bytes pass both ways, half-close included; connections round-robin; counters add up', async (t) => {
  const a = await startTcpBackend('a');
  const b = await startTcpBackend('b');
  const { lb, port, pool, listener } = await startTcpAnubis([a.url, b.url]);
  t.after(async () => {
    await lb.close(500);
    await a.close();
    await b.close();
  });
  const answers: string[] = [];
  for (let i = 0; i < 4; i++) answers.push(await exchange(port, `hello ${i}`));
  assert.deepEqual(answers, ['a:hello 0', 'b:hello 1', 'a:hello 2', 'b:hello 3']);
  await until(() => activeTotal(pool) === 0);
  const [ba, bb] = pool.backends as [
    UpstreamPool['backends'][number],
    UpstreamPool['backends'][number],
  ];
  assert.equal(ba.requests, 2);
  assert.equal(bb.requests, 2);
  assert.equal(ba.bytesOut, 'hello 0'.length + 'hello 2'.length);
  assert.equal(ba.bytesIn, 'a:hello 0'.length + 'a:hello 2'.length);
  assert.equal(ba.latencySamples, 2, 'connect time is the latency sample');
  assert.equal(listener.proxy.connectionsTotal, 4);
  assert.equal(listener.proxy.sessions.size, 0);
});

void test('openConnections counts the client connections held open (the client-connections gauge)', async (t) => {
  const a = await startTcpBackend('a');
  const { lb, port, listener } = await startTcpAnubis([a.url]);
  const clients: Socket[] = [];
  t.after(async () => {
    for (const socket of clients) socket.destroy();
    await lb.close(500);
    await a.close();
  });
  for (let i = 0; i < 3; i++) clients.push((await openClient(port)).socket);
  assert.equal(await pollUntil(() => listener.openConnections(), 3), 3);
  clients.shift()?.destroy();
  assert.equal(await pollUntil(() => listener.openConnections(), 2), 2);
});

void test('a backend killed mid-stream closes the client connection; counters return to 0', async (t) => {
  const backend = await startTcpBackend('k');
  const { lb, port, pool } = await startTcpAnubis([backend.url]);
  t.after(async () => {
    await lb.close(500);
    await backend.close();
  });
  for (const kill of ['reset', 'end'] as const) {
    const client = connect({ host: '127.0.0.1', port });
    client.on('error', () => {});
    let received = '';
    client.on('data', (c: Buffer) => (received += c.toString()));
    await once(client, 'connect');
    client.write('ping');
    await until(() => received === 'k:ping');
    assert.equal(activeTotal(pool), 1);
    const [socket] = backend.sockets;
    if (kill === 'reset') socket?.resetAndDestroy();
    else socket?.destroy();
    // An ordinary client answers the backend's end by closing; a reset closes it outright.
    await once(client, 'close');
    await until(() => activeTotal(pool) === 0);
  }
  assert.equal(
    pool.backends[0]?.failures,
    1,
    'the reset counts as a failure, a clean close does not',
  );
});

void test('connect failures are retried on another backend; when none connects the client is closed', async (t) => {
  const dead = `tcp://127.0.0.1:${await freePort()}`;
  const alive = await startTcpBackend('up');
  const { lb, port, pool, listener } = await startTcpAnubis(
    [dead, alive.url],
    {},
    {
      strategy: 'round-robin',
    },
  );
  t.after(async () => {
    await lb.close(500);
    await alive.close();
  });
  for (let i = 0; i < 4; i++) assert.equal(await exchange(port, 'x'), 'up:x');
  const deadBackend = pool.backends.find((b) => b.url === dead);
  assert.ok((deadBackend?.failures ?? 0) >= 1);
  await until(() => activeTotal(pool) === 0);

  const { lb: lb2, port: port2, listener: listener2 } = await startTcpAnubis([dead]);
  t.after(() => lb2.close(500));
  assert.equal(await exchange(port2, 'x'), '', 'closed without a byte');
  assert.equal(listener2.proxy.connectFailures, 1);
  assert.equal(listener.proxy.connectFailures, 0);
});

void test('maxConnections refuses the extra connection; idleTimeout closes silent ones', async (t) => {
  const backend = await startTcpBackend('m');
  const { lb, port, pool, listener } = await startTcpAnubis([backend.url], {
    maxConnections: 2,
    idleTimeout: '300ms',
  });
  t.after(async () => {
    await lb.close(500);
    await backend.close();
  });
  const open = async (): Promise<{ socket: Socket; closed: Promise<unknown> }> => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.on('error', () => {});
    socket.resume(); // read (and drop) the backend's greeting, so the end is seen
    const closed = new Promise((resolve) => socket.once('close', resolve));
    await once(socket, 'connect');
    return { socket, closed };
  };
  const first = await open();
  const second = await open();
  await until(() => activeTotal(pool) === 2);
  const third = await open();
  await third.closed;
  assert.equal(listener.refused, 1);
  // No byte either way for 300 ms: both are closed by anubis.
  await Promise.all([first.closed, second.closed]);
  await until(() => activeTotal(pool) === 0);
});

void test('closing drains: no new connections, open ones keep working until they end', async (t) => {
  const backend = await startTcpBackend('d');
  const { lb, port, pool } = await startTcpAnubis([backend.url]);
  t.after(() => backend.close());
  const client = connect({ host: '127.0.0.1', port });
  let received = '';
  client.on('data', (c: Buffer) => (received += c.toString()));
  await once(client, 'connect');
  await until(() => activeTotal(pool) === 1);
  const closing = lb.close(5_000);
  await sleep(50);
  const refused = connect({ host: '127.0.0.1', port });
  const [error] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
  assert.equal(error.code, 'ECONNREFUSED');
  client.end('still here');
  await once(client, 'close');
  assert.equal(received, 'd:still here');
  await closing;
  assert.equal(activeTotal(pool), 0);
});

void test('back-pressure: a client that does not read stops the backend, anubis buffers little', async (t) => {
  let written = 0;
  let blocked = false;
  const chunk = Buffer.alloc(64 * 1024, 7);
  const backend = await startTcpBackend('flood', (socket) => {
    const pump = (): void => {
      while (written < 512 * 1024 * 1024) {
        written += chunk.length;
        if (!socket.write(chunk)) {
          blocked = true;
          socket.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
  const { lb, port } = await startTcpAnubis([backend.url]);
  t.after(async () => {
    await lb.close(500);
    await backend.close();
  });
  const client = connect({ host: '127.0.0.1', port });
  client.pause();
  await once(client, 'connect');
  await until(() => blocked);
  await sleep(300);
  const stalledAt = written;
  await sleep(300);
  // The backend is held back: nothing more was accepted while the client did not read, and
  // what is in flight (kernel buffers on both hops plus one stream buffer per socket in
  // anubis) is a few MiB, not the 512 MiB it wants to send.
  t.diagnostic(`backend held back after ${(written / 1024 / 1024).toFixed(1)} MiB`);
  assert.equal(written, stalledAt);
  assert.ok(written < 64 * 1024 * 1024, `backend wrote ${written} bytes into a non-reading client`);
  client.destroy();
});

void test('a download reaches a slow reader intact, byte for byte', async (t) => {
  // Backend to client, anubis reads into one buffer it reuses while the client keeps up and
  // replaces while part of a read still waits in the client's socket: a slow reader makes
  // both happen many times, and any byte overwritten before it was sent shows here.
  const total = 48 * 1024 * 1024;
  const data = randomBytes(total);
  const backend = await startTcpBackend('download', (socket) => {
    socket.end(data);
  });
  const { lb, port, pool } = await startTcpAnubis([backend.url]);
  t.after(async () => {
    await lb.close(500);
    await backend.close();
  });
  const client = connect({ host: '127.0.0.1', port });
  const hash = createHash('sha256');
  let received = 0;
  let stalls = 0;
  // A slow reader: a rest after every chunk keeps the kernel's buffers nearly full, so that
  // anubis's writes are often taken only in part.
  client.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    received += chunk.length;
    stalls++;
    client.pause();
    setTimeout(() => client.resume(), 1);
  });
  await once(client, 'end');
  client.destroy();
  assert.equal(received, total);
  assert.equal(hash.digest('hex'), createHash('sha256').update(data).digest('hex'));
  assert.ok(stalls >= 100, `the client rested ${stalls} times`);
  await until(() => activeTotal(pool) === 0);
  assert.equal(pool.backends[0]?.bytesIn, total);
});

void test('a 1 GiB transfer passes in bounded memory', async (t) => {
  const total = Number(process.env.ANUBIS_TCP_BULK_BYTES ?? 1024 * 1024 * 1024);
  const backend = await startTcpBackend('sink', (socket) => {
    let count = 0;
    socket.on('data', (c: Buffer) => (count += c.length));
    socket.on('end', () => socket.end(String(count)));
  });
  const { lb, port, pool } = await startTcpAnubis([backend.url]);
  t.after(async () => {
    await lb.close(500);
    await backend.close();
  });
  const client = connect({ host: '127.0.0.1', port });
  let answer = '';
  client.on('data', (c: Buffer) => (answer += c.toString()));
  await once(client, 'connect');
  // Every socket read allocates a fresh buffer; V8 frees them when it decides to, and how
  // much garbage it lets pile up differs between Node versions (Node 24 let ~80 MiB of read
  // buffers wait with a collection every 64 MiB). A collection every 16 MiB makes the peak
  // reflect what is retained (what back-pressure bounds), not GC timing.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  const rssBefore = process.memoryUsage.rss();
  let rssPeak = rssBefore;
  const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage.rss())), 20);
  const started = performance.now();
  const chunk = Buffer.alloc(256 * 1024, 1);
  for (let sent = 0; sent < total; sent += chunk.length) {
    if (!client.write(chunk)) await once(client, 'drain');
    if (sent % (16 * 1024 * 1024) === 0) gc();
  }
  client.end();
  await once(client, 'close');
  clearInterval(sampler);
  const seconds = (performance.now() - started) / 1000;
  assert.equal(answer, String(total));
  assert.equal(pool.backends[0]?.bytesOut, total);
  const growthMiB = (rssPeak - rssBefore) / 1024 / 1024;
  t.diagnostic(
    `${(total / 1024 / 1024).toFixed(0)} MiB in ${seconds.toFixed(2)} s (${(total / 1024 / 1024 / seconds).toFixed(0)} MiB/s), RSS growth ${growthMiB.toFixed(1)} MiB`,
  );
  assert.ok(growthMiB < 100, `RSS grew by ${growthMiB.toFixed(1)} MiB`);
});

void test('strategies and health apply: hash on client IP sticks, an active TCP check takes a dead backend out', async (t) => {
  const a = await startTcpBackend('a');
  const b = await startTcpBackend('b');
  const c = await startTcpBackend('c');
  const hashed = await startTcpAnubis(
    [a.url, b.url, c.url],
    {},
    { strategy: { name: 'hash', key: 'client-ip' } },
  );
  t.after(async () => {
    await hashed.lb.close(500);
    await Promise.all([a.close(), b.close(), c.close()]);
  });
  const names = new Set<string>();
  for (let i = 0; i < 6; i++) names.add((await exchange(hashed.port, '')).slice(0, 1));
  assert.equal(names.size, 1, `one client address, one backend (saw ${[...names].join(',')})`);

  const deadPort = await freePort();
  const checked = await startTcpAnubis(
    [`tcp://127.0.0.1:${deadPort}`, a.url],
    {},
    {
      health: { active: { type: 'tcp', interval: '50ms', timeout: '200ms', fall: 1, rise: 1 } },
    },
  );
  t.after(() => checked.lb.close(500));
  const dead = checked.pool.backends[0];
  await until(() => dead?.healthy === false);
  const before = dead?.requests ?? 0;
  for (let i = 0; i < 4; i++) assert.equal(await exchange(checked.port, 'q'), 'a:q');
  assert.equal(dead?.requests, before, 'no connection is sent to the backend marked down');
});

void test('admin API: a tcp:// backend added at runtime takes connections; an http:// one is refused', async (t) => {
  const a = await startTcpBackend('a');
  const b = await startTcpBackend('b');
  const lb = await createLoadBalancer({
    workers: 1,
    log: { level: 'silent' },
    admin: { address: '127.0.0.1:0' },
    listeners: [{ address: '127.0.0.1:0', pool: 'db', mode: 'tcp' }],
    pools: { db: { backends: [{ url: a.url }] } },
  } as unknown as ConfigInput);
  t.after(async () => {
    await lb.close(500);
    await Promise.all([a.close(), b.close()]);
  });
  const port = (lb.addresses()[0] as AddressInfo).port;
  const admin = `http://127.0.0.1:${(lb.admin as NonNullable<typeof lb.admin>).boundAddress().port}`;
  const add = (url: string): Promise<Response> =>
    fetch(`${admin}/api/pools/db/backends`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ url }),
    });
  const refused = await add('http://127.0.0.1:1');
  assert.equal(refused.status, 400);
  assert.match(await refused.text(), /expected tcp:\/\/host:port/);
  assert.equal((await add(b.url)).status < 300, true);
  const seen = new Set<string>();
  for (let i = 0; i < 4; i++) seen.add(await exchange(port, 'x'));
  assert.deepEqual(seen, new Set(['a:x', 'b:x']));
});

/** A connection to anubis that collects what it receives and records when it closed. */
interface Client {
  readonly socket: Socket;
  received(): string;
  readonly closedAt: Promise<number>;
}

/** Opens a Client to anubis on `port`. */
async function openClient(port: number): Promise<Client> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  let received = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (received += chunk));
  const closedAt = new Promise<number>((resolve) =>
    socket.once('close', () => resolve(performance.now())),
  );
  await once(socket, 'connect');
  return { socket, received: () => received, closedAt };
}

/**
 * Two connections through a round-robin pool of backends `a` then `b`, each greeted by its
 * backend; their sockets are added to `clients` (for the test's cleanup).
 */
async function openToEach(port: number, clients: Socket[]): Promise<[Client, Client]> {
  const toA = await openClient(port);
  const toB = await openClient(port);
  clients.push(toA.socket, toB.socket);
  await until(() => toA.received() === 'a:' && toB.received() === 'b:');
  return [toA, toB];
}

void test('counters through the admin API and /metrics: bytes, connections, connect failures, refused', async (t) => {
  const a = await startTcpBackend('a');
  const dead = `tcp://127.0.0.1:${await freePort()}`;
  const [portDb, portGone] = [await freePort(), await freePort()];
  const lb = await createLoadBalancer({
    workers: 1,
    log: { level: 'silent' },
    admin: { address: '127.0.0.1:0' },
    listeners: [
      { address: `127.0.0.1:${portDb}`, pool: 'db', mode: 'tcp', tcp: { maxConnections: 1 } },
      { address: `127.0.0.1:${portGone}`, pool: 'gone', mode: 'tcp' },
    ],
    pools: { db: { backends: [{ url: a.url }] }, gone: { backends: [{ url: dead }] } },
  } as unknown as ConfigInput);
  const held: Socket[] = [];
  t.after(async () => {
    for (const socket of held) socket.destroy();
    await lb.close(500);
    await a.close();
  });
  const admin = `http://127.0.0.1:${(lb.admin as NonNullable<typeof lb.admin>).boundAddress().port}`;
  assert.equal(await exchange(portDb, 'hello'), 'a:hello');
  // A connection left open: its bytes are counted at the scrape, not only when it closes.
  const open = await openClient(portDb);
  held.push(open.socket);
  open.socket.write('x');
  await until(() => open.received() === 'a:x');
  // maxConnections: 1 is reached: the next connection is closed at accept.
  const extra = await openClient(portDb);
  held.push(extra.socket);
  await extra.closedAt;
  assert.equal(await exchange(portGone, 'x'), '', 'no backend: closed without a byte');

  const view = (await (await fetch(`${admin}/api/pools`)).json()) as {
    pools: { name: string; backends: { bytesIn: number; bytesOut: number }[] }[];
    listeners: { address: string; tcp?: Record<string, number> }[];
  };
  const db = view.pools.find((p) => p.name === 'db')?.backends[0];
  assert.equal(db?.bytesOut, 'hello'.length + 'x'.length);
  assert.equal(db?.bytesIn, 'a:hello'.length + 'a:x'.length);
  const tcpOf = (port: number): Record<string, number> | undefined =>
    view.listeners.find((l) => l.address === `127.0.0.1:${port}`)?.tcp;
  assert.deepEqual(tcpOf(portDb), { connections: 2, connectFailures: 0, refused: 1 });
  assert.deepEqual(tcpOf(portGone), { connections: 1, connectFailures: 1, refused: 0 });

  const metrics = await (await fetch(`${admin}/metrics`)).text();
  const id = backendIdFromUrl(a.url);
  for (const line of [
    `anubis_backend_bytes_received_total{pool="db",backend="${id}"} 10`,
    `anubis_backend_bytes_sent_total{pool="db",backend="${id}"} 6`,
    `anubis_tcp_connections_total{listener="127.0.0.1:${portDb}"} 2`,
    `anubis_tcp_refused_connections_total{listener="127.0.0.1:${portDb}"} 1`,
    `anubis_tcp_connect_failures_total{listener="127.0.0.1:${portDb}"} 0`,
    `anubis_tcp_connect_failures_total{listener="127.0.0.1:${portGone}"} 1`,
  ]) {
    assert.ok(metrics.split('\n').includes(line), `/metrics has ${line}`);
  }
});

void test(
  'a tcp:// backend removed through the admin API: its connections are cut after drainTimeout',
  { timeout: 10_000 },
  async (t) => {
    const a = await startTcpBackend('a');
    const b = await startTcpBackend('b');
    const lb = await createLoadBalancer({
      workers: 1,
      log: { level: 'silent' },
      drainTimeout: '400ms',
      admin: { address: '127.0.0.1:0' },
      listeners: [{ address: '127.0.0.1:0', pool: 'db', mode: 'tcp' }],
      pools: { db: { backends: [{ url: a.url }, { url: b.url }], strategy: 'round-robin' } },
    } as unknown as ConfigInput);
    const clients: Socket[] = [];
    t.after(async () => {
      for (const socket of clients) socket.destroy();
      await lb.close(500);
      await Promise.all([a.close(), b.close()]);
    });
    const port = (lb.addresses()[0] as AddressInfo).port;
    const admin = `http://127.0.0.1:${(lb.admin as NonNullable<typeof lb.admin>).boundAddress().port}`;
    const [toA, toB] = await openToEach(port, clients);
    const removedAt = performance.now();
    const removed = await fetch(`${admin}/api/pools/db/backends/${backendIdFromUrl(a.url)}`, {
      method: 'DELETE',
    });
    assert.ok(removed.status < 300, `DELETE answered ${removed.status}`);
    // Still open while the drain runs (the connection is silent: it would never end by itself).
    await sleep(150);
    toA.socket.write('still');
    await until(() => toA.received() === 'a:still');
    const cutAfter = (await toA.closedAt) - removedAt;
    assert.ok(cutAfter >= 300 && cutAfter < 5_000, `cut ${Math.round(cutAfter)} ms after removal`);
    await until(() => a.sockets.size === 0); // the backend's side is closed too
    // The other backend's connection is untouched.
    toB.socket.write('on');
    await until(() => toB.received() === 'b:on');
  },
);

void test(
  'a reload that drops a tcp:// backend cuts its connections after drainTimeout; kept ones stay',
  { timeout: 10_000 },
  async (t) => {
    const a = await startTcpBackend('a');
    const b = await startTcpBackend('b');
    const config = (backends: string[]): ConfigInput =>
      ({
        workers: 1,
        log: { level: 'silent' },
        drainTimeout: '300ms',
        listeners: [{ address: '127.0.0.1:0', pool: 'db', mode: 'tcp' }],
        pools: { db: { backends: backends.map((url) => ({ url })), strategy: 'round-robin' } },
      }) as unknown as ConfigInput;
    const lb = await createLoadBalancer(config([a.url, b.url]));
    const clients: Socket[] = [];
    t.after(async () => {
      for (const socket of clients) socket.destroy();
      await lb.close(500);
      await Promise.all([a.close(), b.close()]);
    });
    const port = (lb.addresses()[0] as AddressInfo).port;
    const [toA, toB] = await openToEach(port, clients);
    const reloadedAt = performance.now();
    const summary = await lb.reload(validateConfig(config([b.url]), 'reload'));
    assert.deepEqual(summary.backends.removed, [`db/${backendIdFromUrl(a.url)}`]);
    const cutAfter = (await toA.closedAt) - reloadedAt;
    assert.ok(
      cutAfter >= 200 && cutAfter < 5_000,
      `cut ${Math.round(cutAfter)} ms after the reload`,
    );
    // Well past the drain timeout, the kept backend's connection still carries bytes both ways.
    await sleep(500);
    toB.socket.write('kept');
    await until(() => toB.received() === 'b:kept');
    assert.equal(toB.socket.destroyed, false);
    const pool = lb.pools.get('db') as UpstreamPool;
    assert.equal(pool.backends[0]?.active, 1, 'the kept connection still counts as active');
    // New connections go to the kept backend only.
    assert.equal(await exchange(port, 'n'), 'b:n');
  },
);
