// Access logs (`log.access: true`): exactly one `request` line per request, with its final
// status, whether the backend answered, was unreachable, or the client's request was refused.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { createLoadBalancer, type LoadBalancer } from '../../src/load-balancer.js';
import { createLogger } from '../../src/logging/logger.js';
import { sendRaw, startRecordingBackend } from '../helpers/raw-http.js';
import { freePort } from '../helpers/servers.js';

let backend: Awaited<ReturnType<typeof startRecordingBackend>> | undefined;
let balancer: LoadBalancer | undefined;
let port: number;
let downPort: number;
const lines: Record<string, unknown>[] = [];

before(async () => {
  const recording = await startRecordingBackend();
  backend = recording;
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback): void {
      for (const line of chunk.toString().split('\n')) {
        if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      callback();
    },
  });
  const started = await createLoadBalancer(
    {
      workers: 1,
      log: { level: 'info', access: true },
      listeners: [
        { address: '127.0.0.1:0', pool: 'up' },
        { address: '127.0.0.1:0', pool: 'down' },
      ],
      pools: {
        up: { backends: [{ url: recording.url }], maxBodySize: '1kb' },
        down: {
          backends: [{ url: `http://127.0.0.1:${await freePort()}` }],
          retry: { attempts: 1 },
        },
      },
    },
    { logger: createLogger({ level: 'info', format: 'json' }, sink) },
  );
  balancer = started;
  const [first, second] = started.addresses();
  port = first?.port as number;
  downPort = second?.port as number;
});
after(async () => {
  await balancer?.close(1_000);
  await backend?.close();
});

/** The access log lines for one request path (after the line had time to be written). */
async function accessLines(url: string): Promise<Record<string, unknown>[]> {
  await new Promise((resolve) => setTimeout(resolve, 50));
  return lines.filter((l) => l.msg === 'request' && l.url === url);
}

void test('a proxied request: one line with the backend status', async () => {
  const answer = await sendRaw(port, 'GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.deepEqual(answer.statuses, [200]);
  const logged = await accessLines('/ok');
  assert.equal(logged.length, 1, JSON.stringify(logged));
  assert.equal(logged[0]?.status, 200);
  assert.equal(logged[0]?.pool, 'up');
});

void test('a chunked body that grows past the limit: one line, 413', async () => {
  const chunk = `200\r\n${'y'.repeat(0x200)}\r\n`;
  const answer = await sendRaw(port, [
    'POST /too-big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n',
    chunk.repeat(6),
    '0\r\n\r\n',
  ]);
  assert.deepEqual(answer.statuses, [413], answer.text);
  const logged = await accessLines('/too-big');
  assert.equal(logged.length, 1, JSON.stringify(logged));
  assert.equal(logged[0]?.status, 413);
});

void test('a backend that cannot be reached: one line, 502', async () => {
  const answer = await sendRaw(
    downPort,
    'GET /unreachable HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
  );
  assert.deepEqual(answer.statuses, [502]);
  const logged = await accessLines('/unreachable');
  assert.equal(logged.length, 1, JSON.stringify(logged));
  assert.equal(logged[0]?.status, 502);
});
