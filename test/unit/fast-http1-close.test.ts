/**
 * How a fast-path connection closes after an answer that says `Connection: close`: at once
 * when the whole answer is already with the kernel (the FIN right behind it), and only once
 * the rest is written when some of it still waits in the socket. Either way the client reads
 * the whole answer and then an end, never a reset.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_LIMITS } from '../../src/config/schema.js';
import { silentLogger } from '../../src/logging/logger.js';
import { FastHttp1Front, fastPathRuntime } from '../../src/server/fast-http1/front.js';
import type { FastResponse } from '../../src/server/fast-http1/response.js';

/** More than the kernel's send and receive buffers of a loopback connection hold together. */
const LARGE = 32 << 20;

/** A front whose every request is answered with `bodyBytes` bytes in one write. */
async function startFront(t: TestContext, bodyBytes: number): Promise<number> {
  const runtime = fastPathRuntime();
  assert.ok(runtime, 'the fast path runs on this Node');
  const http = createHttpServer();
  const front = new FastHttp1Front({
    runtime,
    http,
    limits: DEFAULT_LIMITS,
    logger: silentLogger(),
    handle: (_req, res: FastResponse) => {
      res.writeHead(200, ['content-length', String(bodyBytes)]);
      res.write(Buffer.alloc(bodyBytes, 97));
      res.end();
    },
  });
  await new Promise<void>((resolve) => front.server.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    front.closeAllConnections();
    await new Promise<void>((resolve) => front.server.close(() => resolve()));
  });
  return (front.server.address() as AddressInfo).port;
}

/** Sends a `Connection: close` GET, reads nothing for `readAfterMs`, then everything. */
async function fetchClosing(port: number, readAfterMs: number): Promise<Buffer> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.pause();
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  // `once` rejects on 'error': a reset (ECONNRESET) instead of an end fails the test.
  const ended = once(socket, 'end');
  socket.write('GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  await sleep(readAfterMs);
  socket.resume();
  try {
    await ended;
  } finally {
    socket.destroy();
  }
  return Buffer.concat(chunks);
}

function bodyLength(answer: Buffer): number {
  const head = answer.indexOf('\r\n\r\n');
  assert.notEqual(head, -1, 'an answer head');
  assert.match(answer.subarray(0, head).toString('latin1'), /\r\nConnection: close$/m);
  return answer.length - head - 4;
}

test('a small answer: the connection ends right behind it', async (t) => {
  const port = await startFront(t, 12);
  const answer = await fetchClosing(port, 50);
  assert.equal(bodyLength(answer), 12);
});

test('an answer still being written when it ends: every byte arrives before the end', async (t) => {
  const port = await startFront(t, LARGE);
  // The client reads nothing for a while: most of the answer waits in anubis's socket.
  const answer = await fetchClosing(port, 200);
  assert.equal(bodyLength(answer), LARGE);
});
