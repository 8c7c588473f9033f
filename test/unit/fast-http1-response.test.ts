/**
 * The fast path's FastResponse must put on the wire exactly what node:http's ServerResponse
 * puts there for the same calls. Each script runs once against a real node:http server and
 * once against a FastResponse on a plain socket; the raw bytes (Date value masked) and any
 * error code thrown must be equal. A chunked body is compared by its content and trailers once
 * its framing has been checked: where one chunk ends is node:http's choice and changes between
 * Node versions (24.22 joins the writes of one tick into one chunk, 20 and 24.21 did not).
 */
import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer as createNetServer, Socket, type AddressInfo } from 'node:net';
import { test } from 'node:test';
import type { ProxiedResponse } from '../../src/proxy/client-messages.js';
import { FastResponse } from '../../src/server/fast-http1/response.js';

interface Script {
  readonly name: string;
  readonly method?: 'GET' | 'HEAD';
  /** false: the request says `Connection: close`. */
  readonly keepAlive?: boolean;
  run(res: ProxiedResponse): void;
}

const body = (text: string): Buffer => Buffer.from(text, 'latin1');

const SCRIPTS: Script[] = [
  {
    name: 'Content-Length, two chunks',
    run: (res) => {
      res.writeHead(200, ['content-type', 'text/plain', 'content-length', '10']);
      res.write(body('hello'));
      res.write(body('world'));
      res.end();
    },
  },
  {
    name: 'no length: chunked',
    run: (res) => {
      res.writeHead(200, ['content-type', 'text/plain', 'x-a', '1', 'X-A', '2']);
      res.write(body('abc'));
      res.write(body(''));
      res.write(body('defgh'));
      res.end();
    },
  },
  {
    name: 'a first chunk too large to join the head, with a length',
    run: (res) => {
      res.writeHead(200, ['content-length', String(10_000 + 3)]);
      res.write(Buffer.alloc(10_000, 120));
      res.write(body('end'));
      res.end();
    },
  },
  {
    name: 'a first chunk too large to join the head, chunked',
    run: (res) => {
      res.writeHead(200, []);
      res.write(Buffer.alloc(10_000, 121));
      res.write(body('tail'));
      res.end();
    },
  },
  {
    name: 'no length, empty body',
    run: (res) => {
      res.writeHead(200, []);
      res.end();
    },
  },
  {
    name: 'HEAD without length: no body, no framing',
    method: 'HEAD',
    run: (res) => {
      res.writeHead(200, ['content-type', 'text/plain']);
      res.write(body('ignored'));
      res.end();
    },
  },
  {
    name: 'HEAD with length',
    method: 'HEAD',
    run: (res) => {
      res.writeHead(200, ['content-length', '5']);
      res.end();
    },
  },
  {
    name: '204',
    run: (res) => {
      res.writeHead(204, ['x-b', 'y']);
      res.end();
    },
  },
  {
    name: '304 with a body written',
    run: (res) => {
      res.writeHead(304, ['etag', '"x"']);
      res.write(body('nope'));
      res.end();
    },
  },
  {
    name: 'client asked to close',
    keepAlive: false,
    run: (res) => {
      res.writeHead(200, ['content-type', 'text/plain']);
      res.write(body('bye'));
      res.end();
    },
  },
  {
    name: 'own reason phrase',
    run: (res) => {
      res.writeHead(299, 'Quite Fine', ['content-length', '2']);
      res.write(body('ok'));
      res.end();
    },
  },
  {
    name: 'unknown status without reason',
    run: (res) => {
      res.writeHead(599, ['content-length', '0']);
      res.end();
    },
  },
  {
    name: 'Date and Keep-Alive given by the backend',
    run: (res) => {
      res.writeHead(200, ['Date', 'Mon, 01 Jan 2024 00:00:00 GMT', 'keep-alive', 'timeout=9']);
      res.end();
    },
  },
  {
    name: 'error answer as sendError writes it',
    run: (res) => {
      const text = '502 Bad Gateway\n';
      res.writeHead(502, 'Bad Gateway', {
        'content-type': 'text/plain; charset=utf-8',
        'content-length': Buffer.byteLength(text),
      });
      res.end(text);
    },
  },
  {
    name: 'internal error answer (shouldKeepAlive false, Connection: close)',
    run: (res) => {
      res.shouldKeepAlive = false;
      const text = '500 Internal Server Error (request id x)\n';
      res.writeHead(500, {
        'content-type': 'text/plain; charset=utf-8',
        'content-length': Buffer.byteLength(text),
        'x-request-id': 'x',
        connection: 'close',
      });
      res.end(text);
    },
  },
  {
    name: 'shouldKeepAlive false without a Connection header',
    run: (res) => {
      res.shouldKeepAlive = false;
      res.writeHead(200, ['content-length', '1']);
      res.end('x');
    },
  },
  {
    name: 'array values and cookies in an object',
    run: (res) => {
      res.writeHead(200, { 'set-cookie': ['a=1', 'b=2'], cookie: ['c=3', 'd=4'], 'x-n': 7 });
      res.end();
    },
  },
  {
    name: 'chunked with trailers',
    run: (res) => {
      res.writeHead(200, ['content-type', 'text/plain']);
      res.write(body('data'));
      res.addTrailers([['x-checksum', 'abc']]);
      res.end();
    },
  },
  {
    name: 'trailers on a Content-Length answer are dropped',
    run: (res) => {
      res.writeHead(200, ['content-length', '4']);
      res.write(body('data'));
      res.addTrailers([['x-checksum', 'abc']]);
      res.end();
    },
  },
  {
    name: 'end() without writeHead: implicit 200 with a length',
    run: (res) => {
      res.end('implicit');
    },
  },
  {
    name: 'string end on a chunked answer',
    run: (res) => {
      res.writeHead(200, []);
      res.end('tail €');
    },
  },
  {
    name: 'obs-text in a value',
    run: (res) => {
      res.writeHead(200, ['x-latin', 'caf\u00e9', 'content-length', '0']);
      res.end();
    },
  },
  {
    name: 'CR LF in a value throws',
    run: (res) => {
      res.writeHead(200, ['x-evil', 'a\r\nInjected: 1']);
    },
  },
  {
    name: 'invalid header name throws',
    run: (res) => {
      res.writeHead(200, ['bad name', 'x']);
    },
  },
  {
    name: 'invalid status throws',
    run: (res) => {
      res.writeHead(1000, []);
    },
  },
  {
    name: 'second writeHead throws',
    run: (res) => {
      res.writeHead(200, ['content-length', '0']);
      res.writeHead(201, []);
    },
  },
];

interface Outcome {
  readonly bytes: string;
  readonly error: string | undefined;
}

function masked(raw: string): string {
  return dechunked(raw.replace(/^Date: (?!Mon, 01 Jan 2024).*$/gm, 'Date: <now>'));
}

/**
 * A response whose head says `Transfer-Encoding: chunked` with its body as
 * `<chunked data=… trailers=…>` after a strict check of the framing (hex size, CRLF, data,
 * CRLF, …, a last chunk, trailer lines, CRLF); any other response, or a framing error, as it is.
 */
function dechunked(raw: string): string {
  const headEnd = raw.indexOf('\r\n\r\n');
  if (headEnd < 0 || !/^transfer-encoding: chunked\r$/im.test(raw.slice(0, headEnd + 2))) {
    return raw;
  }
  let at = headEnd + 4;
  let data = '';
  for (;;) {
    const lineEnd = raw.indexOf('\r\n', at);
    const size = lineEnd < 0 ? '' : raw.slice(at, lineEnd);
    if (!/^[0-9a-f]+$/i.test(size)) return raw;
    const length = parseInt(size, 16);
    at = lineEnd + 2;
    if (length === 0) break;
    if (raw.slice(at + length, at + length + 2) !== '\r\n') return raw;
    data += raw.slice(at, at + length);
    at += length + 2;
  }
  const trailersEnd = raw.startsWith('\r\n', at) ? at : raw.indexOf('\r\n\r\n', at) + 2;
  if (trailersEnd < at || trailersEnd + 2 !== raw.length) return raw;
  const trailers = raw.slice(at, trailersEnd);
  return `${raw.slice(0, headEnd + 4)}<chunked data=${JSON.stringify(data)} trailers=${JSON.stringify(trailers)}>`;
}

/** Sends one request head and collects every byte until the server ends the connection. */
function collect(port: number, method: string, keepAlive: boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.write(
      `${method} / HTTP/1.1\r\nHost: x\r\n${keepAlive ? '' : 'Connection: close\r\n'}\r\n`,
    );
  });
}

function errorCode(error: unknown): string {
  return String((error as { code?: unknown }).code ?? error);
}

async function viaNodeHttp(script: Script): Promise<Outcome> {
  let error: string | undefined;
  const server = createHttpServer({ keepAliveTimeout: 5_000 }, (req, res) => {
    res.on('finish', () => setImmediate(() => req.socket.end()));
    try {
      script.run(res);
    } catch (thrown) {
      error = errorCode(thrown);
      req.socket.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const bytes = await collect(port, script.method ?? 'GET', script.keepAlive ?? true);
    return { bytes: masked(bytes), error };
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

async function viaFastResponse(script: Script): Promise<Outcome> {
  let error: string | undefined;
  const server = createNetServer((socket) => {
    socket.once('data', () => {
      const owner = {
        socket,
        keepAliveTimeoutMs: 5_000,
        responseFinished: () => socket.end(),
      };
      const res = new FastResponse(owner, script.method === 'HEAD', script.keepAlive ?? true);
      try {
        script.run(res);
      } catch (thrown) {
        error = errorCode(thrown);
        socket.end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const bytes = await collect(port, script.method ?? 'GET', script.keepAlive ?? true);
    return { bytes: masked(bytes), error };
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

for (const script of SCRIPTS) {
  test(`FastResponse writes what ServerResponse writes: ${script.name}`, async () => {
    const expected = await viaNodeHttp(script);
    const actual = await viaFastResponse(script);
    assert.deepEqual(actual, expected);
  });
}

test('FastResponse: a write to a slow client returns false and drain resumes it', async () => {
  const server = createNetServer((socket) => {
    socket.once('data', () => {
      const res = new FastResponse(
        { socket, keepAliveTimeoutMs: 5_000, responseFinished: () => socket.end() },
        false,
        true,
      );
      socket.on('drain', () => res.emitDrain());
      res.writeHead(200, ['content-length', String(64 * 1024 * 64)]);
      const chunk = Buffer.alloc(64 * 1024, 97);
      let written = 0;
      let sawFalse = false;
      const pump = (): void => {
        while (written < 64) {
          written++;
          if (!res.write(chunk)) {
            sawFalse = true;
            res.once('drain', pump);
            return;
          }
        }
        assert.ok(sawFalse, 'a full socket answered false at least once');
        res.end();
      };
      pump();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const raw = await collect(port, 'GET', true);
    const head = raw.indexOf('\r\n\r\n') + 4;
    assert.equal(raw.length - head, 64 * 1024 * 64);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test('FastResponse: after its connection closed, writes return false and close is told once', () => {
  const socket = new Socket();
  let finished = 0;
  let closes = 0;
  const res = new FastResponse(
    { socket, keepAliveTimeoutMs: 5_000, responseFinished: () => finished++ },
    false,
    true,
  );
  res.on('close', () => closes++);
  res.writeHead(200, ['content-length', '3']);
  res.emitClose();
  res.emitClose();
  assert.equal(closes, 1);
  assert.equal(res.write(Buffer.from('abc')), false);
  res.end();
  assert.equal(finished, 0, 'an answer cut by its connection is not reported as finished');
  assert.throws(() => res.on('close', () => {}), { code: 'ERR_INVALID_ARG_VALUE' });
  socket.destroy();
});
