// The bench's open-loop Poisson load generator (bench/tools/poisson-load.c), compiled with gcc
// and run against loopback servers that timestamp every request: its arrivals must be
// Poisson-like at the server (not the clumps wrk's ms-quantised pauses make), its counts must
// match the server's, and bad responses must be counted as errors without hanging it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { test, type TestContext } from 'node:test';
import {
  parsePoissonJson,
  poissonArgs,
  poissonLoadBinary,
  type PoissonJson,
} from '../../bench/lib/poisson.js';
import { which } from '../../bench/lib/procs.js';
import { freePort } from '../helpers/servers.js';

const GCC = which('gcc');

/** The compiled tool, or undefined after skipping the test (no gcc). */
function tool(t: TestContext): string | undefined {
  if (GCC === undefined) {
    t.skip('gcc is not installed: bench/tools/poisson-load.c cannot be compiled');
    return undefined;
  }
  return poissonLoadBinary(GCC);
}

const BODY = 'hello world\n';
const RESPONSES = {
  ok: `HTTP/1.1 200 OK\r\nContent-Length: ${BODY.length}\r\n\r\n${BODY}`,
  error: `HTTP/1.1 500 Internal Server Error\r\nContent-Length: ${BODY.length}\r\n\r\n${BODY}`,
  // No framing: a read error for the tool, which then reopens the connection.
  noLength: `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n${BODY}`,
  chunked: `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nc\r\n${BODY}\r\n0\r\n\r\n`,
};

interface TimingServer {
  readonly port: number;
  /** process.hrtime.bigint() when each request's last byte was read. */
  readonly arrivals: bigint[];
  close(): Promise<void>;
}

/**
 * A raw HTTP/1.1 server on 127.0.0.1 (port 0) answering every request with `response`;
 * `inPieces` writes each response in three parts 2 ms apart, split inside the CRLFCRLF that
 * ends the head and inside the body (so the tool reads them separately).
 */
async function startServer(
  t: TestContext,
  response: string,
  inPieces = false,
): Promise<TimingServer> {
  const arrivals: bigint[] = [];
  const sockets = new Set<Socket>();
  const bytes = Buffer.from(response);
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let pending = '';
    socket.on('data', (chunk: Buffer) => {
      const now = process.hrtime.bigint();
      pending += chunk.toString('latin1');
      for (let end = pending.indexOf('\r\n\r\n'); end >= 0; end = pending.indexOf('\r\n\r\n')) {
        pending = pending.slice(end + 4);
        arrivals.push(now);
        if (!inPieces) {
          socket.write(bytes);
          continue;
        }
        // Each piece's timer is set once the previous piece is written: Node may run timers
        // of different durations out of order on a loaded machine (the pieces came swapped).
        const cut1 = bytes.indexOf('\r\n\r\n') + 2;
        const cut2 = bytes.length - 3;
        socket.write(bytes.subarray(0, cut1));
        setTimeout(() => {
          if (socket.destroyed) return;
          socket.write(bytes.subarray(cut1, cut2));
          setTimeout(() => {
            if (!socket.destroyed) socket.write(bytes.subarray(cut2));
          }, 2);
        }, 2);
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const close = async (): Promise<void> => {
    for (const socket of sockets) socket.destroy();
    if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  t.after(close);
  return { port: (server.address() as AddressInfo).port, arrivals, close };
}

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly elapsedMs: number;
}

/** Runs the tool; SIGKILLed (by its PID) if it is still running after `killAfterMs`. */
async function run(binary: string, args: readonly string[], killAfterMs: number): Promise<Run> {
  const started = Date.now();
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr, elapsedMs: Date.now() - started };
}

/** Runs the tool against 127.0.0.1:`port``path`; it must exit 0. Its JSON and run time. */
async function runAgainst(
  binary: string,
  port: number,
  path: string,
  options: Omit<Parameters<typeof poissonArgs>[0], 'url'>,
): Promise<{ json: PoissonJson; elapsedMs: number }> {
  const url = `http://127.0.0.1:${port}${path}`;
  const result = await run(binary, poissonArgs({ url, ...options }), 10_000);
  assert.equal(result.code, 0, result.stderr);
  return { json: parsePoissonJson(result.stdout), elapsedMs: result.elapsedMs };
}

/** Fraction of the gaps between consecutive arrivals that are shorter than `us`. */
function fractionBelow(arrivals: readonly bigint[], us: number): number {
  let below = 0;
  for (let k = 1; k < arrivals.length; k++) {
    if (Number((arrivals[k] as bigint) - (arrivals[k - 1] as bigint)) < us * 1_000) below++;
  }
  return below / Math.max(1, arrivals.length - 1);
}

void test('arrivals are Poisson-like at the server and every count matches', async (t) => {
  const binary = tool(t);
  if (binary === undefined) return;
  const server = await startServer(t, RESPONSES.ok);
  const [rate, durationS, warmupS] = [2_000, 1, 0.25];
  const dir = mkdtempSync(join(tmpdir(), 'poisson-load-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const dumpFile = join(dir, 'requests.txt');
  const startedNs = process.hrtime.bigint();
  const { json, elapsedMs } = await runAgainst(binary, server.port, '/small', {
    connections: 10,
    rate,
    durationS,
    warmupS,
    timeoutS: 2,
    dumpFile,
  });
  const endedNs = process.hrtime.bigint();
  assert.deepEqual(json.errors, { connect: 0, read: 0, write: 0, status: 0, timeout: 0 });
  // Measured responses: rate × duration (Poisson: ± 2.2% is one standard deviation).
  assert.ok(
    Math.abs(json.requests - rate * durationS) <= 0.15 * rate * durationS,
    `requests ${json.requests}`,
  );
  assert.equal(json.durationUs, 1_000_000);
  assert.equal(json.bytes, json.requests * RESPONSES.ok.length);
  // The server saw the measured requests plus the warm-up's (≈ rate × warmupS = 500).
  const warmup = server.arrivals.length - json.requests;
  assert.ok(
    warmup >= 300 && warmup <= 700,
    `server ${server.arrivals.length}, tool ${json.requests}`,
  );
  // Poisson at 2,000 req/s: P(gap < 10 µs) = 1 − exp(−0.02) ≈ 0.02, P(gap < 50 µs) ≈ 0.095;
  // wrk's ms-quantised pauses gave 0.6 under 10 µs at 4,900 req/s. This server's own event
  // loop spaces the requests it reads together by its work per request (≈ 10–20 µs), so the
  // 50 µs figure is the sharper check: arrivals rounded up to ms ticks (a mutant of the tool)
  // gave 0.13 under 10 µs but 0.55 under 50 µs here, the real tool 0.02 and 0.14 alone, and
  // 0.30 under 50 µs once with the whole suite running beside it on 2 CPUs (a server that
  // waits for the CPU reads the requests of the wait together): hence 0.4.
  const below10 = fractionBelow(server.arrivals, 10);
  const below50 = fractionBelow(server.arrivals, 50);
  assert.ok(below10 < 0.3, `server-side gaps < 10 µs: ${below10}`);
  assert.ok(below50 < 0.4, `server-side gaps < 50 µs: ${below50}`);
  assert.ok(json.gapsBelow10Us < 0.3, `tool-side gaps < 10 µs: ${json.gapsBelow10Us}`);
  const l = json.latencyUs;
  assert.ok(
    l.min <= l.p50 && l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p999,
    `${JSON.stringify(l)}`,
  );
  assert.ok(l.p999 <= l.max && l.mean > 0, JSON.stringify(l));
  assert.ok(json.lateUs.p99 <= json.lateUs.max, JSON.stringify(json.lateUs));
  assert.ok(elapsedMs < (warmupS + durationS + 2) * 1_000 + 1_500, `${elapsedMs} ms`);

  // -o: a line per measured response, scheduled time on CLOCK_MONOTONIC (Node's hrtime
  // clock) within the run, and the latencies the summary was made of.
  const lines = readFileSync(dumpFile, 'utf8').trim().split('\n');
  assert.equal(lines.length, json.requests);
  const rows = lines.map((line) => line.split(' ').map(BigInt) as [bigint, bigint]);
  const firstScheduled = rows.reduce((min, [at]) => (at < min ? at : min), rows[0]![0]);
  assert.ok(firstScheduled >= startedNs, 'scheduled before the tool started');
  for (const [at, latency] of rows) assert.ok(at + latency <= endedNs, `${at} + ${latency}`);
  // The measured window starts after the warm-up and lasts durationS.
  const window = Number(rows.reduce((max, [at]) => (at > max ? at : max), 0n) - firstScheduled);
  assert.ok(window > durationS * 0.9e9 && window <= durationS * 1e9, `window ${window} ns`);
  const sortedUs = rows.map(([, ns]) => Number(ns) / 1_000).sort((a, b) => a - b);
  const p50 = Math.round(sortedUs[Math.ceil(0.5 * sortedUs.length) - 1]!);
  assert.equal(p50, json.latencyUs.p50);
  assert.equal(Math.round(sortedUs[sortedUs.length - 1]!), json.latencyUs.max);
});

void test('a response written in pieces is reassembled; latency counts from the schedule', async (t) => {
  const binary = tool(t);
  if (binary === undefined) return;
  const server = await startServer(t, RESPONSES.ok, true);
  // -S 50: arrivals polled for from 50 µs before they are due.
  const { json } = await runAgainst(binary, server.port, '/', {
    connections: 4,
    rate: 300,
    durationS: 0.5,
    timeoutS: 2,
    spinUs: 50,
  });
  assert.deepEqual(json.errors, { connect: 0, read: 0, write: 0, status: 0, timeout: 0 });
  assert.ok(json.requests > 100, `requests ${json.requests}`);
  assert.equal(server.arrivals.length, json.requests);
  // The last piece leaves 4 ms after the request (Node's timers, on a ms clock, can fire up
  // to ≈ 1 ms early): no response completes in much less.
  assert.ok(json.latencyUs.min >= 2_500, JSON.stringify(json.latencyUs));
});

void test('status >= 400 is counted as a status error, not as a failure', async (t) => {
  const binary = tool(t);
  if (binary === undefined) return;
  const server = await startServer(t, RESPONSES.error);
  const { json } = await runAgainst(binary, server.port, '/', {
    connections: 4,
    rate: 500,
    durationS: 0.5,
    timeoutS: 2,
  });
  assert.ok(json.requests > 150, `requests ${json.requests}`);
  assert.equal(json.errors.status, server.arrivals.length);
  assert.equal(json.errors.status, json.requests);
  assert.equal(json.errors.connect + json.errors.read + json.errors.write + json.errors.timeout, 0);
});

void test('a response without Content-Length, or chunked, is a read error; the run stays bounded', async (t) => {
  const binary = tool(t);
  if (binary === undefined) return;
  for (const response of [RESPONSES.noLength, RESPONSES.chunked]) {
    const server = await startServer(t, response);
    const { json, elapsedMs } = await runAgainst(binary, server.port, '/', {
      connections: 4,
      rate: 400,
      durationS: 0.5,
      timeoutS: 1,
    });
    assert.equal(json.requests, 0);
    // Every request the server answered is a read error (and a new connection).
    assert.ok(json.errors.read >= 100, JSON.stringify(json.errors));
    assert.equal(json.errors.read, server.arrivals.length);
    assert.equal(json.errors.timeout + json.errors.connect, 0, JSON.stringify(json.errors));
    assert.ok(elapsedMs < 3_000, `${elapsedMs} ms`);
    await server.close();
  }
});

void test('loopback only; a refused port makes it give up with a message', async (t) => {
  const binary = tool(t);
  if (binary === undefined) return;
  const remote = await run(binary, ['-c', '1', '-r', '1', '-d', '1', 'http://10.1.2.3:80/'], 5_000);
  assert.equal(remote.code, 1);
  assert.match(remote.stderr, /refusing host "10\.1\.2\.3".*loopback/);
  assert.equal(remote.stdout, '');
  const closed = await freePort();
  const refused = await run(
    binary,
    ['-c', '4', '-r', '100', '-d', '1', `http://127.0.0.1:${closed}/`],
    10_000,
  );
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /giving up: \d+ consecutive failed connects/);
  assert.equal(refused.stdout, '');
  assert.ok(refused.elapsedMs < 3_000, `${refused.elapsedMs} ms`);
});
