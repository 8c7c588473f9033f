/**
 * Graceful stop of the real CLI: on SIGTERM anubis stops accepting, lets in-flight requests
 * finish, closes idle keep-alive connections at once, and exits 0; `drainTimeout` bounds the
 * wait (requests still running then are cut, and it still exits 0).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { request } from 'undici';
import { spawnCli, stopChild, waitForOutput } from '../helpers/anubis.js';
import { pollUntil } from '../helpers/poll.js';
import { freePort, startNamedBackend } from '../helpers/servers.js';

async function startCli(
  t: TestContext,
  backendDelayMs: number,
  drainTimeout: string,
): Promise<{ port: number; child: ReturnType<typeof spawnCli>; arrived: () => number }> {
  const backend = await startNamedBackend('slow', backendDelayMs);
  let arrived = 0;
  backend.server.on('request', () => arrived++);
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'anubis-stop-'));
  const file = join(dir, 'anubis.yaml');
  await writeFile(
    file,
    [
      'workers: 1',
      `drainTimeout: ${drainTimeout}`,
      'listeners:',
      `  - { address: 127.0.0.1:${port}, pool: p }`,
      'pools:',
      '  p:',
      `    backends: [{ url: ${backend.url} }]`,
      '',
    ].join('\n'),
  );
  const child = spawnCli(['--config', file]);
  t.after(async () => {
    await stopChild(child, 2_000);
    await backend.close();
    await rm(dir, { recursive: true, force: true });
  });
  await waitForOutput(child, /"msg":"listening"/);
  return { port, child, arrived: () => arrived };
}

/** An idle keep-alive client connection: one request answered, then nothing. */
async function idleKeepAlive(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
  let seen = '';
  await new Promise<void>((resolve) => {
    const onData = (chunk: Buffer): void => {
      seen += chunk.toString();
      if (seen.includes('slow')) {
        socket.off('data', onData);
        resolve();
      }
    };
    socket.on('data', onData);
  });
  socket.on('error', () => {});
  return socket;
}

void test('SIGTERM: in-flight requests finish, idle keep-alive closed, new ones refused, exit 0', async (t) => {
  const { port, child, arrived } = await startCli(t, 600, '10s');
  const idle = await idleKeepAlive(port);
  const idleClosed = once(idle, 'close');
  const inFlight = Array.from({ length: 4 }, async () => {
    const res = await request(`http://127.0.0.1:${port}/`);
    return { status: res.statusCode, body: await res.body.text() };
  });
  // In flight: the idle connection's request and these 4 have reached the backend.
  assert.equal(await pollUntil(arrived, 5), 5);
  const exited = once(child, 'exit') as Promise<[number | null]>;
  const stoppedAt = Date.now();
  child.kill('SIGTERM');
  await idleClosed;
  assert.ok(Date.now() - stoppedAt < 500, 'idle keep-alive connection closed at once');
  const results = await Promise.all(inFlight);
  assert.deepEqual(
    results,
    Array.from({ length: 4 }, () => ({ status: 200, body: 'slow' })),
  );
  const [code] = await exited;
  assert.equal(code, 0);
  await assert.rejects(request(`http://127.0.0.1:${port}/`), /ECONNREFUSED/);
});

void test('SIGTERM: drainTimeout bounds the wait, then anubis exits 0', async (t) => {
  const { port, child, arrived } = await startCli(t, 8_000, '300ms');
  const stuck = request(`http://127.0.0.1:${port}/`).then(
    async (res) => {
      await res.body.text();
      return 'completed';
    },
    () => 'cut',
  );
  assert.equal(await pollUntil(arrived, 1), 1, 'the request is in flight at the backend');
  const exited = once(child, 'exit') as Promise<[number | null]>;
  const stoppedAt = Date.now();
  child.kill('SIGTERM');
  const [code] = await exited;
  const tookMs = Date.now() - stoppedAt;
  assert.equal(code, 0);
  assert.ok(tookMs < 4_000, `stopped after ${tookMs} ms, well before the 8 s backend`);
  assert.equal(await stuck, 'cut');
});
