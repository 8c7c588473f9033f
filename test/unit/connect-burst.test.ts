// The bench's burst tool (bench/tools/connect-burst.c), compiled with gcc and run against
// loopback servers: it opens every connection at once, counts 2xx answers, other answers,
// connections closed without an answer and silent ones apart, and refuses any host but
// 127.0.0.1.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { test, type TestContext } from 'node:test';
import type { BurstResult as Burst } from '../../bench/lib/burst.js';
import { compiledTool } from '../../bench/lib/c-tool.js';
import { which } from '../../bench/lib/procs.js';

const GCC = which('gcc');

function tool(t: TestContext): string | undefined {
  if (GCC === undefined) {
    t.skip('gcc is not installed: bench/tools/connect-burst.c cannot be compiled');
    return undefined;
  }
  return compiledTool('connect-burst', [], GCC);
}

function run(binary: string, args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(binary, args, { timeout: 20_000 }, (error, out, err) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, out, err });
    });
  });
}

/** A server that reads each connection's request and lets `answer` decide, by accept order. */
async function serve(t: TestContext, answer: (socket: Socket, index: number) => void) {
  const sockets: Socket[] = [];
  const server: Server = createServer((socket) => {
    const index = sockets.length;
    sockets.push(socket);
    socket.on('error', () => {});
    socket.once('data', () => answer(socket, index));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/path`;
}

const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';
const UNAVAILABLE = 'HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n';

test('every connection answered 200 is ok, with latencies in order', async (t) => {
  const binary = tool(t);
  if (binary === undefined) return;
  const url = await serve(t, (socket) => socket.end(OK));
  const { code, out } = await run(binary, ['-n', '64', url]);
  assert.equal(code, 0);
  const burst = JSON.parse(out) as Burst;
  assert.deepEqual(
    { n: burst.n, ok: burst.ok, errors: burst.errors, bad: burst.bad, timeouts: burst.timeouts },
    { n: 64, ok: 64, errors: 0, bad: 0, timeouts: 0 },
  );
  assert.ok(burst.p50Ms > 0 && burst.p50Ms <= burst.p99Ms && burst.p99Ms <= burst.maxMs);
});

test('other statuses are bad, closes without an answer are errors', async (t) => {
  const binary = tool(t);
  if (binary === undefined) return;
  const url = await serve(t, (socket, index) => {
    if (index % 3 === 0) socket.end(UNAVAILABLE);
    else if (index % 3 === 1) socket.end();
    else socket.end(OK);
  });
  const burst = JSON.parse((await run(binary, ['-n', '30', url])).out) as Burst;
  assert.deepEqual(
    { ok: burst.ok, errors: burst.errors, bad: burst.bad, timeouts: burst.timeouts },
    { ok: 10, errors: 10, bad: 10, timeouts: 0 },
  );
});

test('connections never answered are timeouts after -t', async (t) => {
  const binary = tool(t);
  if (binary === undefined) return;
  const url = await serve(t, () => {});
  const started = Date.now();
  const burst = JSON.parse((await run(binary, ['-n', '8', '-t', '0.5', url])).out) as Burst;
  assert.equal(burst.timeouts, 8);
  assert.equal(burst.ok, 0);
  assert.ok(Date.now() - started >= 450, 'waited for the timeout');
});

test('any host but 127.0.0.1 is refused before connecting; bad arguments exit 2', async (t) => {
  const binary = tool(t);
  if (binary === undefined) return;
  const refused = await run(binary, ['-n', '1', 'http://localhost:80/']);
  assert.equal(refused.code, 2);
  assert.match(refused.err, /loopback only/);
  assert.equal((await run(binary, ['-n', '0', 'http://127.0.0.1:1/'])).code, 2);
  assert.equal((await run(binary, ['http://127.0.0.1:1/'])).code, 2);
});
