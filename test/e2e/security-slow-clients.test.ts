// Slow clients: headers timeout (slowloris), request (body) timeout, idle keep-alive timeout,
// the connection cap; and 200 slow clients do not hold up a normal request.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { after, before, test } from 'node:test';
import { startAnubis, type RunningAnubis } from '../helpers/anubis.js';
import { pollUntil } from '../helpers/poll.js';
import { openRaw, sendRaw, statusesOf, startRecordingBackend } from '../helpers/raw-http.js';

let backend: Awaited<ReturnType<typeof startRecordingBackend>>;

before(async () => {
  backend = await startRecordingBackend();
});
after(async () => {
  await backend.close();
});

const H = 'Host: app.example\r\n';

/** Collects what arrives on `socket` until it closes; resolves with the text and the time. */
function readUntilClosed(socket: Socket): Promise<{ text: string; closedAt: number }> {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => {});
  return once(socket, 'close').then(() => ({
    text: Buffer.concat(chunks).toString('latin1'),
    closedAt: performance.now(),
  }));
}

async function withAnubis(
  limits: Record<string, unknown>,
  run: (port: number, anubis: RunningAnubis) => Promise<void>,
): Promise<void> {
  const anubis = await startAnubis([backend.url], {}, { limits });
  try {
    await run(Number(new URL(anubis.url).port), anubis);
  } finally {
    await anubis.close();
  }
}

void test('a client that never finishes its headers gets 408 and is closed (slowloris)', async () => {
  await withAnubis({ headersTimeout: '500ms' }, async (port) => {
    const socket = await openRaw(port);
    const started = performance.now();
    const closed = readUntilClosed(socket);
    socket.write(`GET /slow HTTP/1.1\r\n${H}X-Partial: `);
    // Trickle a byte now and then: the headers timeout counts from the first byte, not idleness.
    const trickle = setInterval(() => socket.write('a'), 100);
    const { text, closedAt } = await closed;
    clearInterval(trickle);
    assert.deepEqual(statusesOf(text), [408], text);
    const waited = closedAt - started;
    assert.ok(waited >= 400 && waited < 5_000, `closed after ${Math.round(waited)} ms`);
  });
});

void test('a client that stalls in its body gets 408 when requestTimeout is set; nothing leaks', async () => {
  await withAnubis({ headersTimeout: '300ms', requestTimeout: '800ms' }, async (port, anubis) => {
    const socket = await openRaw(port);
    const closed = readUntilClosed(socket);
    socket.write(`POST /stall HTTP/1.1\r\n${H}Content-Length: 100\r\n\r\nonly part`);
    const { text } = await closed;
    assert.deepEqual(statusesOf(text), [408], text);
    assert.equal(backend.requests().filter((r) => r.includes('/stall')).length, 0);
    const pool = anubis.balancer.pools.get('test');
    await waitFor(() => pool?.backends.every((b) => b.active === 0) === true);
  });
});

void test('an idle keep-alive connection is closed after keepAliveTimeout', async () => {
  await withAnubis({ keepAliveTimeout: '300ms' }, async (port) => {
    const socket = await openRaw(port);
    const closed = readUntilClosed(socket);
    const sentAt = performance.now();
    socket.write(`GET /idle HTTP/1.1\r\n${H}\r\n`);
    const { text, closedAt } = await closed;
    assert.deepEqual(statusesOf(text), [200]);
    const idle = closedAt - sentAt;
    assert.ok(idle >= 250 && idle < 5_000, `closed after ${Math.round(idle)} ms`);
  });
});

void test('beyond maxConnections a new connection gets 503 and is closed; capacity comes back', async () => {
  await withAnubis({ maxConnections: 3 }, async (port) => {
    const held = await Promise.all([openRaw(port), openRaw(port), openRaw(port)]);
    // An answer on each proves anubis accepted and counts it before the next one arrives.
    for (const socket of held) {
      const answered = once(socket, 'data');
      socket.write(`GET /held HTTP/1.1\r\n${H}\r\n`);
      const [chunk] = (await answered) as [Buffer];
      assert.deepEqual(statusesOf(chunk.toString('latin1')), [200]);
    }
    const refused = await sendRaw(port, `GET /over HTTP/1.1\r\n${H}\r\n`);
    assert.deepEqual(refused.statuses, [503], refused.text);
    assert.match(refused.text, /retry-after: 1/i);
    assert.equal(refused.closed, true);
    assert.equal(backend.requests().filter((r) => r.includes('/over')).length, 0);
    for (const socket of held) socket.destroy();
    // Capacity comes back once anubis has seen the three close.
    const back = async (): Promise<number | undefined> =>
      (await sendRaw(port, `GET /back HTTP/1.1\r\n${H}Connection: close\r\n\r\n`)).statuses[0];
    assert.equal(await pollUntil(back, 200, 3_000), 200);
  });
});

void test('200 slow clients do not delay a normal request', async () => {
  await withAnubis({ headersTimeout: '20s' }, async (port) => {
    const get = (): Promise<number> =>
      new Promise((resolve, reject) => {
        const started = performance.now();
        const req = request({ port, path: '/normal', agent: false }, (res) => {
          res.resume();
          res.on('end', () => resolve(performance.now() - started));
        });
        req.on('error', reject);
        req.end();
      });
    // Baseline in this run, on an idle anubis.
    await get();
    const baseline = await get();
    const slow: Socket[] = [];
    try {
      for (let i = 0; i < 200; i++) {
        const socket = await openRaw(port);
        socket.on('error', () => {});
        socket.write(`GET /slow-${i} HTTP/1.1\r\n${H}X-Slow: `);
        slow.push(socket);
      }
      const trickle = setInterval(() => {
        for (const socket of slow) socket.write('s');
      }, 200);
      try {
        const durations: number[] = [];
        for (let i = 0; i < 5; i++) durations.push(await get());
        const median = durations.sort((a, b) => a - b)[2] as number;
        // Generous: a loaded 2-core machine; what matters is that nothing waits on the slow ones.
        assert.ok(
          median < Math.max(250, baseline * 20),
          `median ${median.toFixed(1)} ms vs baseline ${baseline.toFixed(1)} ms`,
        );
      } finally {
        clearInterval(trickle);
      }
      assert.equal(slow.filter((s) => s.destroyed).length, 0, 'slow clients are still connected');
    } finally {
      for (const socket of slow) socket.destroy();
    }
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 3_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
