/**
 * TCP mode against the floor of any Node.js TCP proxy: a ten-line `net` proxy that only does
 * `client.pipe(upstream).pipe(client)`. Both run as child processes in front of the same echo
 * backend; 50 client connections each send a 100-byte message and wait for its echo, for a
 * fixed time. The ratio anubis / bare pipe is the cost of anubis' machinery (strategy pick,
 * health, counters, timeouts, half-close handling); the gap to nginx or HAProxy is in
 * `npm run bench` (scenario tcp).
 *
 *   node --import tsx bench/tcp-pipe-baseline.ts [seconds per run, default 3]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SECONDS = Number(process.argv[2] ?? 3);
const CONNECTIONS = 50;
const MESSAGE = Buffer.alloc(100, 120);
const CLI = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`port ${port} never opened`);
}

/** Round trips per second over CONNECTIONS ping-pong connections for SECONDS. */
async function measure(port: number): Promise<number> {
  let trips = 0;
  let running = true;
  const sockets = await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      const socket = connect({ host: '127.0.0.1', port, noDelay: true });
      await once(socket, 'connect');
      let pending = MESSAGE.length;
      socket.on('data', (chunk: Buffer) => {
        pending -= chunk.length;
        if (pending > 0) return;
        trips++;
        if (!running) return;
        pending = MESSAGE.length;
        socket.write(MESSAGE);
      });
      return socket;
    }),
  );
  const started = performance.now();
  for (const s of sockets) s.write(MESSAGE);
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  running = false;
  const elapsed = (performance.now() - started) / 1000;
  for (const s of sockets) s.destroy();
  return trips / elapsed;
}

function spawnNode(args: string[]): ChildProcess {
  return spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'anubis-tcp-bench-'));
  const children: ChildProcess[] = [];
  try {
    const backendPort = await freePort();
    const pipePort = await freePort();
    const anubisPort = await freePort();
    const echo = join(dir, 'echo.mjs');
    writeFileSync(
      echo,
      `import { createServer } from 'node:net';
createServer({ noDelay: true }, (s) => { s.on('error', () => {}); s.pipe(s); }).listen(${backendPort}, '127.0.0.1');`,
    );
    const pipe = join(dir, 'pipe.mjs');
    writeFileSync(
      pipe,
      `import { connect, createServer } from 'node:net';
createServer({ noDelay: true }, (c) => {
  const u = connect({ host: '127.0.0.1', port: ${backendPort}, noDelay: true });
  c.on('error', () => u.destroy()); u.on('error', () => c.destroy());
  c.pipe(u).pipe(c);
}).listen(${pipePort}, '127.0.0.1');`,
    );
    const config = join(dir, 'anubis.yaml');
    writeFileSync(
      config,
      `workers: 1
log: { level: error }
listeners: [{ address: 127.0.0.1:${anubisPort}, pool: echo, mode: tcp }]
pools: { echo: { backends: [{ url: tcp://127.0.0.1:${backendPort} }] } }
`,
    );
    children.push(
      spawnNode([echo]),
      spawnNode([pipe]),
      spawnNode(['--import', 'tsx', CLI, '--config', config]),
    );
    await Promise.all([waitForPort(backendPort), waitForPort(pipePort), waitForPort(anubisPort)]);
    const targets = [
      ['direct', backendPort],
      ['bare node pipe', pipePort],
      ['anubis mode: tcp', anubisPort],
    ] as const;
    const results = new Map<string, number[]>();
    // Interleaved rounds, so that load from elsewhere on the machine hits every target alike.
    for (let round = 0; round < 3; round++) {
      for (const [name, port] of targets) {
        const rate = await measure(port);
        results.set(name, [...(results.get(name) ?? []), rate]);
      }
    }
    const median = (values: number[]): number => [...values].sort((a, b) => a - b)[1] as number;
    const pipeRate = median(results.get('bare node pipe') ?? []);
    process.stdout.write(
      `round trips/s, ${CONNECTIONS} connections, 100-byte messages, median of 3 x ${SECONDS} s\n`,
    );
    for (const [name] of targets) {
      const rate = median(results.get(name) ?? []);
      process.stdout.write(
        `${name.padEnd(18)} ${Math.round(rate).toString().padStart(8)}   ${(rate / pipeRate).toFixed(2)} x bare pipe\n`,
      );
    }
  } finally {
    for (const child of children) child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
