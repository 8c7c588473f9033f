/**
 * How should `workers: N` spread connections over worker processes? Three ways, measured on
 * the same machine in one run, interleaved, each with keep-alive connections and with a new
 * connection per request (where accept distribution matters most):
 *
 *   cluster-rr     node:cluster round robin (the Linux default): the primary accepts every
 *                  connection and hands it to a worker over IPC;
 *   cluster-none   node:cluster SCHED_NONE: workers accept on the shared socket themselves;
 *   reuseport      each worker binds its own socket with SO_REUSEPORT (`reusePort: true`,
 *                  Node >= 22.12 / 23.1, Linux) and the kernel hashes connections to them.
 *
 * Workers run a plain HTTP "hello" server, so the numbers isolate connection distribution
 * from proxying. Load: wrk (one thread, 64 connections). Reports requests/s and each worker's
 * share. Needs wrk and a Node with reusePort (run it with Node 24):
 *
 *   node --import tsx bench/cluster-vs-reuseport.ts [--seconds 5] [--rounds 2]
 */
import { spawn } from 'node:child_process';
import cluster from 'node:cluster';
import { createServer } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

type Variant = 'cluster-rr' | 'cluster-none' | 'reuseport';
const VARIANTS: readonly Variant[] = ['cluster-rr', 'cluster-none', 'reuseport'];
const WORKERS = 2;
const SELF = fileURLToPath(import.meta.url);

function arg(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? Number(process.argv[index + 1]) : fallback;
}

async function freePort(): Promise<number> {
  const server = createTcpServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Runs wrk without blocking this process; resolves with its output. */
function runWrk(args: string[], timeoutS: number): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutS * 1000);
    child.on('exit', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

/** Worker: hello server; answers `count` with the number of requests it served. */
function runWorker(variant: Variant, port: number): void {
  let served = 0;
  const server = createServer({ keepAliveTimeout: 10_000 }, (_req, res) => {
    served++;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '5' });
    res.end('hello');
  });
  const options =
    variant === 'reuseport'
      ? { port, host: '127.0.0.1', exclusive: true, reusePort: true }
      : { port, host: '127.0.0.1' };
  server.listen(options, () => process.send?.({ listening: true }));
  process.on('message', (message: unknown) => {
    if (message === 'count') process.send?.({ served });
  });
}

/** Primary of one variant: forks the workers, runs wrk twice, prints one JSON line. */
async function runVariant(variant: Variant, seconds: number): Promise<void> {
  if (variant === 'cluster-none') cluster.schedulingPolicy = cluster.SCHED_NONE;
  else cluster.schedulingPolicy = cluster.SCHED_RR;
  const port = await freePort();
  const workers = Array.from({ length: WORKERS }, () =>
    cluster.fork({ BENCH_ROLE: 'worker', BENCH_VARIANT: variant, BENCH_PORT: String(port) }),
  );
  await Promise.all(
    workers.map(
      (w) =>
        new Promise<void>((resolve) =>
          w.on('message', (m: { listening?: boolean }) => m.listening && resolve()),
        ),
    ),
  );
  const counts = async (): Promise<number[]> =>
    Promise.all(
      workers.map(
        (w) =>
          new Promise<number>((resolve) => {
            const onMessage = (m: { served?: number }): void => {
              if (m.served === undefined) return;
              w.off('message', onMessage);
              resolve(m.served);
            };
            w.on('message', onMessage);
            w.send('count');
          }),
      ),
    );
  const result: Record<string, unknown> = { variant };
  for (const mode of ['keepalive', 'close'] as const) {
    const before = await counts();
    const args = ['-t1', '-c64', `-d${seconds}s`, '--latency'];
    if (mode === 'close') args.push('-H', 'Connection: close');
    // Asynchronously: with cluster round robin the primary's event loop does the accepting.
    const wrk = await runWrk([...args, `http://127.0.0.1:${port}/`], seconds + 10);
    const after = await counts();
    const perWorker = after.map((n, i) => n - (before[i] ?? 0));
    const total = perWorker.reduce((a, b) => a + b, 0);
    const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(wrk)?.[1] ?? 0);
    const p99 = /99%\s+([\d.]+\w+)/.exec(wrk)?.[1] ?? '?';
    const errors = /Non-2xx|Socket errors: (.*)/.exec(wrk)?.[0] ?? 'none';
    result[mode] = {
      rps,
      p99,
      errors,
      shares: perWorker.map((n) => (total > 0 ? Math.round((n / total) * 1000) / 10 : 0)),
    };
  }
  for (const w of workers) w.kill();
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

async function orchestrate(): Promise<void> {
  const seconds = arg('seconds', 5);
  const rounds = arg('rounds', 2);
  const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
  if (major < 22 || (major === 22 && minor < 12)) {
    process.stderr.write(`reusePort needs Node >= 22.12 or 23.1; this is ${process.version}\n`);
    process.exit(2);
  }
  const rows: Record<string, { keepalive: number[]; close: number[]; shares: string[] }> = {};
  for (let round = 0; round < rounds; round++) {
    for (const variant of VARIANTS) {
      const child = spawn(
        process.execPath,
        [...process.execArgv, SELF, '--variant', variant, '--seconds', String(seconds)],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
          env: { ...process.env, BENCH_ROLE: 'primary' },
        },
      );
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      await new Promise((resolve) => child.on('exit', resolve));
      const line = JSON.parse(out.trim()) as Record<string, { rps: number; shares: number[] }>;
      const row = (rows[variant] ??= { keepalive: [], close: [], shares: [] });
      row.keepalive.push(line.keepalive?.rps ?? 0);
      row.close.push(line.close?.rps ?? 0);
      row.shares.push(`${line.keepalive?.shares.join('/')} | ${line.close?.shares.join('/')}`);
      process.stderr.write(`round ${round + 1} ${variant}: ${out.trim()}\n`);
    }
  }
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  const base = rows['cluster-rr'] as { keepalive: number[]; close: number[] };
  process.stdout.write(
    `node ${process.version}, ${WORKERS} workers, wrk -t1 -c64, ${seconds}s x ${rounds} rounds\n`,
  );
  process.stdout.write(
    'variant        keep-alive req/s (x rr)   new-conn req/s (x rr)   worker shares % (keep-alive | new-conn)\n',
  );
  for (const variant of VARIANTS) {
    const row = rows[variant] as { keepalive: number[]; close: number[]; shares: string[] };
    const ka = mean(row.keepalive);
    const cl = mean(row.close);
    process.stdout.write(
      `${variant.padEnd(14)} ${ka.toFixed(0).padStart(8)} (${(ka / mean(base.keepalive)).toFixed(2)})        ${cl
        .toFixed(0)
        .padStart(8)} (${(cl / mean(base.close)).toFixed(2)})       ${row.shares.join('; ')}\n`,
    );
  }
}

const role = process.env.BENCH_ROLE;
if (cluster.isWorker) {
  runWorker(process.env.BENCH_VARIANT as Variant, Number(process.env.BENCH_PORT));
} else if (role === 'primary') {
  const variant = process.argv[process.argv.indexOf('--variant') + 1] as Variant;
  await runVariant(variant, arg('seconds', 5));
} else {
  await orchestrate();
}
