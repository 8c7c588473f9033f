/**
 * The bench's Node backend (used when nginx is not installed, and always for the balancing,
 * streaming and idle-connection scenarios). One process, one listener per entry of the
 * BENCH_BACKENDS JSON: `[{ "port": 9001, "delayMs": 0, "degraded": false }]`.
 *
 * Routes: /small (12 bytes), /1m (1 MiB), /post (reads the body, answers "ok"),
 * /stream?bytes=N (N bytes from one reused 64 KiB buffer, with back-pressure),
 * /sink (reads the body and answers the byte count).
 *
 * A degraded listener answers after `delayMs`, and when BENCH_STALLS=1 it also stalls: during
 * the first STALL_MS of every STALL_PERIOD_MS its answers wait until the stall is over.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

interface ListenerSpec {
  port: number;
  delayMs: number;
  degraded: boolean;
}

const STALL_PERIOD_MS = 2_000;
const STALL_MS = 300;

const specs = JSON.parse(process.env.BENCH_BACKENDS ?? '[]') as ListenerSpec[];
const stalls = process.env.BENCH_STALLS === '1';
const SMALL = Buffer.from('hello world\n');
const ONE_MIB = Buffer.alloc(1 << 20, 97);
const CHUNK = Buffer.alloc(64 << 10, 98);

function stream(res: ServerResponse, total: number): void {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total });
  let left = total;
  const pump = (): void => {
    while (left > 0) {
      const n = Math.min(left, CHUNK.length);
      left -= n;
      const more = res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n));
      if (!more) {
        res.once('drain', pump);
        return;
      }
    }
    res.end();
  };
  pump();
}

function answer(req: IncomingMessage, res: ServerResponse, received: number): void {
  const url = req.url ?? '/';
  if (url === '/1m') {
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': ONE_MIB.length,
    });
    res.end(ONE_MIB);
  } else if (url.startsWith('/stream')) {
    stream(res, Number(new URL(url, 'http://x').searchParams.get('bytes') ?? '0'));
  } else if (url === '/sink') {
    const body = `${received}\n`;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
    res.end(body);
  } else {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': SMALL.length });
    res.end(SMALL);
  }
}

function delayFor(spec: ListenerSpec): number {
  if (!spec.degraded || !stalls) return spec.delayMs;
  const phase = Date.now() % STALL_PERIOD_MS;
  return phase < STALL_MS ? STALL_MS - phase + spec.delayMs : spec.delayMs;
}

for (const spec of specs) {
  const server = createServer({ keepAliveTimeout: 60_000, requestTimeout: 0 }, (req, res) => {
    let received = 0;
    req.on('data', (chunk: Buffer) => (received += chunk.length));
    req.on('end', () => {
      const delay = delayFor(spec);
      if (delay > 0) setTimeout(answer, delay, req, res, received);
      else answer(req, res, received);
    });
  });
  server.maxHeadersCount = 0;
  server.listen(spec.port, '127.0.0.1');
}
process.on('SIGTERM', () => process.exit(0));
