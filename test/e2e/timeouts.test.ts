// Every upstream timeout through real sockets: connect (a backend whose accept queue is full),
// headers (accepts, never answers: 504 while the other backends keep serving), idle (the body
// stalls after the headers: the response is cut), total (504).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startAnubis } from '../helpers/anubis.js';
import { startBackend, startNamedBackend, startRawBackend } from '../helpers/servers.js';

interface Timed {
  readonly status: number;
  readonly body: string;
  readonly ms: number;
  readonly error?: string;
}

function get(url: string): Promise<Timed> {
  const started = performance.now();
  return new Promise((resolve) => {
    const req = httpRequest(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body, ms: performance.now() - started }),
      );
      res.on('error', (error) =>
        resolve({
          status: res.statusCode ?? 0,
          body,
          ms: performance.now() - started,
          error: error.message,
        }),
      );
    });
    req.on('error', (error) =>
      resolve({ status: 0, body: '', ms: performance.now() - started, error: error.message }),
    );
    req.end();
  });
}

void test('a backend that accepts but never answers: 504 after timeouts.headers, the others keep serving', async (t) => {
  const hung = await startRawBackend(() => {});
  const fine = await startNamedBackend('fine');
  const lb = await startAnubis([hung.url, fine.url], { timeouts: { headers: '400ms' } });
  t.after(async () => {
    await lb.close();
    await hung.close();
    await fine.close();
  });
  // Round robin alternates: 3 of these go to the hung backend, 3 to the fine one.
  const results = await Promise.all(Array.from({ length: 6 }, () => get(`${lb.url}/`)));
  const timedOut = results.filter((r) => r.status === 504);
  const served = results.filter((r) => r.status === 200);
  assert.equal(timedOut.length, 3, JSON.stringify(results));
  assert.equal(served.length, 3);
  for (const r of timedOut) {
    assert.ok(r.ms >= 380, `504 after ${Math.round(r.ms)} ms, before the timeout`);
    assert.ok(r.ms < 5_000, `504 after ${Math.round(r.ms)} ms`);
    assert.match(r.body, /^504 Gateway Timeout/);
  }
  const firstTimeout = Math.min(...timedOut.map((r) => r.ms));
  for (const r of served) assert.ok(r.ms < firstTimeout, 'served while the hung ones waited');
  // Three timeouts in a row: passive health ejected it; what follows is served at once.
  const after = await Promise.all(Array.from({ length: 4 }, () => get(`${lb.url}/`)));
  assert.deepEqual(
    after.map((r) => r.status),
    [200, 200, 200, 200],
  );
});

void test('a backend whose body stalls after the headers: the response is cut after timeouts.idle', async (t) => {
  const stalling = await startBackend((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('first part;');
    // …and nothing more.
  });
  const lb = await startAnubis([stalling.url], { timeouts: { idle: '300ms' } });
  t.after(async () => {
    await lb.close();
    await stalling.close();
  });
  const result = await get(`${lb.url}/`);
  assert.equal(result.status, 200, 'headers were already relayed');
  assert.equal(result.body, 'first part;');
  assert.ok(result.error !== undefined, 'the client sees an incomplete response');
  assert.ok(result.ms >= 280 && result.ms < 5_000, `cut after ${Math.round(result.ms)} ms`);
});

void test('timeouts.total: 504 when the whole exchange takes too long', async (t) => {
  const slow = await startNamedBackend('slow', 5_000);
  const lb = await startAnubis([slow.url], { timeouts: { total: '300ms' } });
  t.after(async () => {
    await lb.close();
    await slow.close();
  });
  const result = await get(`${lb.url}/`);
  assert.equal(result.status, 504);
  assert.ok(result.ms >= 280 && result.ms < 4_500, `504 after ${Math.round(result.ms)} ms`);
});

void test('timeouts.connect: 504 when the backend does not complete the TCP handshake', async (t) => {
  // A listener with a backlog of 1 in a stopped process: once its accept queue is full the
  // kernel drops further SYNs, so a connect neither succeeds nor fails.
  const child = spawn(
    process.execPath,
    [
      '-e',
      "const s=require('net').createServer(()=>{});s.listen({port:0,host:'127.0.0.1',backlog:1},()=>console.log(s.address().port))",
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const fillers: Socket[] = [];
  t.after(() => {
    for (const s of fillers) s.destroy();
    child.kill('SIGKILL');
  });
  const [chunk] = (await once(child.stdout, 'data')) as [Buffer];
  const port = Number(chunk.toString().trim());
  child.kill('SIGSTOP');
  for (let i = 0; i < 4; i++) {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => {});
    fillers.push(s);
  }
  await sleep(200);
  const lb = await startAnubis([`http://127.0.0.1:${port}`], {
    timeouts: { connect: '300ms' },
    retry: { attempts: 1 },
  });
  t.after(() => lb.close());
  const result = await get(`${lb.url}/`);
  assert.equal(result.status, 504);
  assert.ok(result.ms >= 280 && result.ms < 3_000, `504 after ${Math.round(result.ms)} ms`);
});
