import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import {
  AUTO_ACCEPT_SOCKETS,
  acceptSocketCount,
  createAcceptor,
  reusePortUnavailable,
  type Runtime,
} from '../../src/server/accept-sockets.js';
import { bindServer, closeServers, countConnections } from '../../src/server/bind.js';
import { HttpListener } from '../../src/server/http-listener.js';
import { ListenError } from '../../src/errors.js';
import { createLogger, type Logger } from '../../src/logging/logger.js';
import { Writable } from 'node:stream';
import { pollUntil } from '../helpers/poll.js';

const linux = (node: string): Runtime => ({ node, platform: 'linux', clusterWorker: false });
const HERE_UNAVAILABLE = reusePortUnavailable();

test('reusePort needs Linux, Node >= 22.12 (or >= 23.1) and a single process', () => {
  for (const node of ['20.18.0', '20.20.1', '22.11.0', '23.0.0']) {
    assert.match(reusePortUnavailable(linux(node)) ?? '', /has no reusePort/, node);
  }
  for (const node of ['22.12.0', '22.20.0', '23.1.0', '24.0.0', '25.2.1']) {
    assert.equal(reusePortUnavailable(linux(node)), undefined, node);
  }
  assert.match(
    reusePortUnavailable({ node: '24.1.0', platform: 'darwin', clusterWorker: false }) ?? '',
    /Linux only/,
  );
  assert.match(
    reusePortUnavailable({ node: '24.1.0', platform: 'linux', clusterWorker: true }) ?? '',
    /cluster workers/,
  );
});

test('acceptSocketCount: auto is 8 where available, a number is taken as is, else 1', () => {
  assert.deepEqual(acceptSocketCount('auto', linux('24.1.0')), {
    count: AUTO_ACCEPT_SOCKETS,
    unavailable: undefined,
  });
  assert.equal(AUTO_ACCEPT_SOCKETS, 8);
  assert.equal(acceptSocketCount(3, linux('22.12.0')).count, 3);
  assert.equal(acceptSocketCount(1, linux('24.1.0')).count, 1);
  const old = acceptSocketCount(8, linux('20.20.0'));
  assert.equal(old.count, 1);
  assert.match(old.unavailable ?? '', /20\.20\.0/);
  assert.equal(acceptSocketCount('auto', linux('20.20.0')).count, 1);
});

function listening(count: number): { main: Server; acceptors: Server[]; accepted: Socket[] } {
  const accepted: Socket[] = [];
  const main = createServer((socket) => accepted.push(socket));
  const acceptors = Array.from({ length: count - 1 }, () =>
    createAcceptor(main, { allowHalfOpen: false, noDelay: true }),
  );
  return { main, acceptors, accepted };
}

function openClient(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

test(
  'a group of sockets binds one port, hands every connection to the main server, and ' +
    'frees the port on close',
  { skip: HERE_UNAVAILABLE },
  async () => {
    const group = listening(4);
    const bound = await bindServer(group.main, { host: '127.0.0.1', port: 0 }, group.acceptors);
    for (const acceptor of group.acceptors) {
      assert.equal((acceptor.address() as { port: number }).port, bound.port);
    }
    const clients = await Promise.all(Array.from({ length: 64 }, () => openClient(bound.port)));
    assert.equal(await pollUntil(() => group.accepted.length, 64), 64);
    assert.equal(await countConnections([group.main, ...group.acceptors]), 64);
    // The kernel spread them: more than one socket accepted some (64 four-tuples, 4 sockets).
    const perSocket = await Promise.all(
      [group.main, ...group.acceptors].map((s) => countConnections([s])),
    );
    assert.ok(perSocket.filter((n) => n > 0).length > 1, `spread ${perSocket.join(',')}`);

    const closed = closeServers([group.main, ...group.acceptors]);
    for (const client of clients) client.destroy();
    await closed;
    // The port is free again: a plain server binds it alone.
    const again = createServer();
    await bindServer(again, { host: '127.0.0.1', port: bound.port });
    await closeServers([again]);
  },
);

test(
  'a group does not share a port something already holds: ListenError, nothing left bound',
  { skip: HERE_UNAVAILABLE },
  async () => {
    const first = listening(4);
    const bound = await bindServer(first.main, { host: '127.0.0.1', port: 0 }, first.acceptors);
    const second = listening(4);
    await assert.rejects(
      bindServer(second.main, { host: '127.0.0.1', port: bound.port }, second.acceptors),
      (error: unknown) =>
        error instanceof ListenError &&
        error.code === 'ANUBIS_LISTEN' &&
        error.message.includes(`127.0.0.1:${bound.port}`),
    );
    for (const server of [second.main, ...second.acceptors]) assert.equal(server.listening, false);
    // A plain single-socket holder blocks a group too.
    await closeServers([first.main, ...first.acceptors]);
    const plain = createServer();
    await bindServer(plain, { host: '127.0.0.1', port: bound.port });
    const third = listening(2);
    await assert.rejects(
      bindServer(third.main, { host: '127.0.0.1', port: bound.port }, third.acceptors),
      ListenError,
    );
    await closeServers([plain]);
  },
);

/** Code of a worker thread that opens `count` connections and signals once all are up. */
const CONNECTING_WORKER = `
const { connect } = require('node:net');
const { workerData } = require('node:worker_threads');
const { port, count, signal } = workerData;
const flag = new Int32Array(signal);
let connected = 0;
for (let i = 0; i < count; i++) {
  connect(port, '127.0.0.1', () => {
    if (++connected === count) { Atomics.store(flag, 0, 1); Atomics.notify(flag, 0); }
  }).on('error', () => {});
}
`;

/**
 * Event-loop iterations, each kept busy for 2 ms, until `connections` opened at once have all
 * been accepted by a listener with `sockets` listening sockets. A worker thread opens them
 * while this thread is blocked, so all wait in the kernel's accept queue when counting starts.
 */
async function busyIterationsToAccept(sockets: number, connections: number): Promise<number> {
  const group = listening(sockets);
  const bound = await bindServer(group.main, { host: '127.0.0.1', port: 0 }, group.acceptors);
  const signal = new SharedArrayBuffer(4);
  const worker = new Worker(CONNECTING_WORKER, {
    eval: true,
    workerData: { port: bound.port, count: connections, signal },
  });
  assert.equal(Atomics.wait(new Int32Array(signal), 0, 0, 10_000), 'ok', 'worker connected');
  let iterations = 0;
  await new Promise<void>((resolve) => {
    const spin = (): void => {
      iterations++;
      const until = performance.now() + 2;
      while (performance.now() < until);
      if (group.accepted.length >= connections || iterations > 10 * connections) resolve();
      else setImmediate(spin);
    };
    setImmediate(spin);
  });
  await worker.terminate();
  const closed = closeServers([group.main, ...group.acceptors]);
  for (const socket of group.accepted) socket.destroy();
  await closed;
  return iterations;
}

test(
  'a busy loop accepts a burst in fewer iterations with 8 sockets than with one',
  { skip: HERE_UNAVAILABLE },
  async () => {
    const one = await busyIterationsToAccept(1, 128);
    const eight = await busyIterationsToAccept(8, 128);
    // One socket: one accept per iteration (libuv >= 1.45). Eight: several per iteration.
    assert.ok(one >= 100, `one socket took ${one} iterations`);
    assert.ok(eight * 2 <= one, `8 sockets took ${eight} iterations, one took ${one}`);
  },
);

/** A logger keeping the `code` and `reason` of each warning it is given. */
function recordingLogger(): { logger: Logger; warnings: unknown[] } {
  const warnings: unknown[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      const { code, reason } = JSON.parse(chunk.toString()) as { code: string; reason: string };
      warnings.push({ code, reason });
      done();
    },
  });
  return { logger: createLogger({ level: 'warn', format: 'json' }, destination), warnings };
}

test('HttpListener binds the sockets asked for, or one with a warning where it cannot', async () => {
  const { logger, warnings } = recordingLogger();
  const listener = new HttpListener({
    address: { host: '127.0.0.1', port: 0 },
    onRequest: (_req, res) => res.end('ok'),
    fastPath: true,
    acceptSockets: 4,
    logger,
  });
  if (HERE_UNAVAILABLE === undefined) {
    assert.equal(listener.acceptSockets, 4);
    assert.deepEqual(warnings, []);
  } else {
    assert.equal(listener.acceptSockets, 1);
    assert.deepEqual(warnings, [
      { code: 'ANUBIS_ACCEPT_SOCKETS_UNAVAILABLE', reason: HERE_UNAVAILABLE },
    ]);
  }
  const { port } = await listener.listen();
  const clients = await Promise.all(Array.from({ length: 16 }, () => openClient(port)));
  // Every socket's connections count, whichever socket accepted them.
  assert.equal(await pollUntil(() => listener.openConnections(), 16), 16);
  for (const client of clients) client.destroy();
  await listener.close(1_000);
});

test('HttpListener: auto is 8 sockets where SO_REUSEPORT works, else 1, with no warning', () => {
  const { logger, warnings } = recordingLogger();
  const listener = new HttpListener({
    address: { host: '127.0.0.1', port: 0 },
    onRequest: (_req, res) => res.end('ok'),
    acceptSockets: 'auto',
    logger,
  });
  assert.equal(listener.acceptSockets, HERE_UNAVAILABLE === undefined ? AUTO_ACCEPT_SOCKETS : 1);
  assert.deepEqual(warnings, []);
});
