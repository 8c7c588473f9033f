// Client disconnects mid-upload, while waiting, and mid-download abort the backend request and
// free the pooled connection: active counters return to 0, the backend sees its request end,
// and no connection is left busy.
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { after, before, test } from 'node:test';
import type { Backend } from '../../src/upstream/backend.js';
import { startAnubis, type RunningAnubis } from '../helpers/anubis.js';
import { openRaw } from '../helpers/raw-http.js';
import { startBackend, type TestServer } from '../helpers/servers.js';

let backend: TestServer;
let anubis: RunningAnubis;
let port: number;
/** Requests the backend saw end before completing (aborted by anubis). */
const aborted: string[] = [];
const open = new Set<ServerResponse>();
/** Bytes the backend managed to write into /stream responses. */
let streamed = 0;

before(async () => {
  backend = await startBackend((req: IncomingMessage, res: ServerResponse) => {
    open.add(res);
    res.on('close', () => {
      open.delete(res);
      if (!res.writableFinished) aborted.push(req.url ?? '');
    });
    req.on('error', () => {});
    if (req.url === '/upload') {
      req.resume();
      req.on('end', () => res.end('uploaded'));
      return;
    }
    if (req.url === '/stream') {
      // An endless download, 16 KiB at a time as fast as the connection takes it (the backend
      // honours back-pressure), until the connection goes.
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(16 * 1024, 1);
      const pump = (): void => {
        while (!res.destroyed && res.write(chunk)) streamed += chunk.length;
        if (!res.destroyed) res.once('drain', pump);
      };
      pump();
      return;
    }
    if (req.url === '/slow') return; // never answers
    res.end('ok');
  });
  anubis = await startAnubis([backend.url], { timeouts: { headers: '30s', idle: '30s' } });
  port = Number(new URL(anubis.url).port);
});
after(async () => {
  await anubis.close();
  await backend.close();
});

function theBackend(): Backend {
  return anubis.balancer.pools.get('test')?.backends[0] as Backend;
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Nothing in flight: active 0, the undici pool idle, the backend holds no open response. */
async function assertNothingLeaks(): Promise<void> {
  const b = theBackend();
  await waitFor(() => b.active === 0, 'active === 0');
  await waitFor(() => open.size === 0, 'backend responses closed');
  // Every pooled connection still open is idle (reusable); none is stuck busy.
  await waitFor(
    () => {
      const stats = b.dispatcher.stats;
      return stats.running === 0 && stats.pending === 0 && stats.connected === stats.free;
    },
    `pool idle ${JSON.stringify(b.dispatcher.stats)}`,
  );
  // And the backend holds no more sockets than the pool keeps idle.
  const backendSockets = (): Promise<number> =>
    new Promise((resolve, reject) =>
      backend.server.getConnections((error, count) => (error ? reject(error) : resolve(count))),
    );
  const deadline = performance.now() + 5_000;
  let sockets = await backendSockets();
  while (sockets > b.dispatcher.stats.free && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    sockets = await backendSockets();
  }
  assert.ok(sockets <= b.dispatcher.stats.free, `backend sockets ${sockets}`);
}

void test('a client that disconnects mid-upload aborts the backend request', async () => {
  const socket = await openRaw(port);
  socket.on('error', () => {});
  socket.write(`POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n`);
  socket.write(Buffer.alloc(256 * 1024, 2));
  await waitFor(() => open.size === 1, 'the upload reaching the backend');
  socket.destroy();
  await waitFor(() => aborted.includes('/upload'), 'the backend to see the upload end');
  await assertNothingLeaks();
});

void test('a client that disconnects while waiting for the answer aborts the backend request', async () => {
  const socket = await openRaw(port);
  socket.on('error', () => {});
  socket.write(`GET /slow HTTP/1.1\r\nHost: x\r\n\r\n`);
  await waitFor(() => open.size === 1, 'the request reaching the backend');
  socket.destroy();
  await waitFor(() => aborted.includes('/slow'), 'the backend to see the request end');
  await assertNothingLeaks();
});

void test('a client that disconnects mid-download stops the backend stream', async () => {
  const socket = await openRaw(port);
  socket.on('error', () => {});
  let received = 0;
  socket.on('data', (chunk: Buffer) => (received += chunk.length));
  socket.write(`GET /stream HTTP/1.1\r\nHost: x\r\n\r\n`);
  await waitFor(() => received > 256 * 1024, 'some of the download');
  socket.destroy();
  await waitFor(() => aborted.includes('/stream'), 'the backend to see the download end');
  await assertNothingLeaks();
});

void test('a client that stops reading (but stays) holds the backend back: nothing piles up', async () => {
  const socket = await openRaw(port);
  socket.on('error', () => {});
  try {
    socket.write(`GET /stream HTTP/1.1\r\nHost: x\r\n\r\n`);
    socket.pause();
    await waitFor(() => open.size === 1, 'the download to start');
    // Once the socket buffers between client, anubis and backend are full, the backend stalls.
    await new Promise((resolve) => setTimeout(resolve, 700));
    const before = streamed;
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.ok(streamed - before < 1024 * 1024, `backend wrote ${streamed - before} bytes more`);
  } finally {
    socket.destroy();
  }
  await assertNothingLeaks();
});

void test('50 mixed aborts leave nothing behind, and a normal request still works', async () => {
  const kinds = ['/upload', '/slow', '/stream'];
  await Promise.all(
    Array.from({ length: 50 }, async (_, i) => {
      const socket = await openRaw(port);
      socket.on('error', () => {});
      const path = kinds[i % 3] as string;
      socket.write(
        path === '/upload'
          ? `POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n${'u'.repeat(1000)}`
          : `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`,
      );
      await new Promise((resolve) => setTimeout(resolve, 20 + (i % 7) * 10));
      socket.destroy();
    }),
  );
  await assertNothingLeaks();
  const res = await fetch(`${anubis.url}/normal`);
  assert.equal(await res.text(), 'ok');
  await assertNothingLeaks();
});
