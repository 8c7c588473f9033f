// A bounded fuzz: random bytes and mutated requests (seeded, reproducible) thrown at anubis.
// Afterwards anubis still serves a normal request, nothing is left active, and every request
// that reached the backend is well-formed HTTP/1.1 with at most one framing header.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, before, test } from 'node:test';
import type { Backend } from '../../src/upstream/backend.js';
import { startAnubis, type RunningAnubis } from '../helpers/anubis.js';
import { sendRaw, splitRequests, startRecordingBackend } from '../helpers/raw-http.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20_261_125);
const CASES = Number(process.env.FUZZ_CASES ?? 400);
const CONCURRENCY = 8;

/** mulberry32: a small seeded PRNG, so a failing run can be replayed with FUZZ_SEED. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const CORPUS = [
  'GET /a?b=1 HTTP/1.1\r\nHost: app.example\r\nAccept: */*\r\n\r\n',
  'POST /p HTTP/1.1\r\nHost: app.example\r\nContent-Length: 5\r\n\r\nhello',
  'POST /c HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
  'GET /ws HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
  'GET http://other.example/x HTTP/1.1\r\nHost: app.example\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n',
  'PUT /u HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc',
];

const PIECES = [
  '\r',
  '\n',
  '\0',
  ' ',
  '\t',
  ':',
  ',',
  ';',
  '\x0b',
  '\x0c',
  '\x7f',
  '\xff',
  '0',
  'f',
  '-1',
  '\r\n',
  '\r\n\r\n',
  'Transfer-Encoding: chunked\r\n',
  'Content-Length: 5\r\n',
  'Content-Length: 0\r\n',
  'Transfer-Encoding: gzip, chunked\r\n',
  'Host: b\r\n',
  'Expect: 100-continue\r\n',
  ' chunked',
  'HTTP/1.1',
  'GET / HTTP/1.1\r\n',
  '99999999999999999999',
];

function mutate(input: string, random: () => number): string {
  let text = input;
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)] as T;
  const at = (): number => Math.floor(random() * (text.length + 1));
  const rounds = 1 + Math.floor(random() * 4);
  for (let i = 0; i < rounds; i++) {
    const p = at();
    switch (Math.floor(random() * 6)) {
      case 0:
        text = text.slice(0, p) + pick(PIECES) + text.slice(p);
        break;
      case 1:
        text = text.slice(0, p) + text.slice(p + 1 + Math.floor(random() * 3));
        break;
      case 2:
        text =
          text.slice(0, p) + String.fromCharCode(Math.floor(random() * 256)) + text.slice(p + 1);
        break;
      case 3: {
        // Duplicate a header line.
        const lines = text.split('\r\n');
        const line = Math.floor(random() * lines.length);
        lines.splice(line, 0, lines[line] as string);
        text = lines.join('\r\n');
        break;
      }
      case 4:
        text = text.slice(0, p);
        break;
      default:
        text += pick(CORPUS);
    }
  }
  return text;
}

function randomBytes(random: () => number): Buffer {
  const length = 1 + Math.floor(random() * 300);
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) out[i] = Math.floor(random() * 256);
  return out;
}

let backend: Awaited<ReturnType<typeof startRecordingBackend>>;
let anubis: RunningAnubis;
let port: number;

before(async () => {
  backend = await startRecordingBackend();
  anubis = await startAnubis(
    [backend.url],
    { timeouts: { headers: '2s' } },
    {
      limits: { headersTimeout: '1s' },
    },
  );
  port = Number(new URL(anubis.url).port);
});
after(async () => {
  await anubis.close();
  await backend.close();
});

const HEADER_LINE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+: [^\r\n\0]*$/;

void test(`fuzz: ${CASES} random and mutated requests (seed ${SEED})`, async () => {
  const random = prng(SEED);
  const inputs: Buffer[] = [];
  for (let i = 0; i < CASES; i++) {
    inputs.push(
      i % 4 === 0
        ? randomBytes(random)
        : Buffer.from(mutate(CORPUS[i % CORPUS.length] as string, random), 'latin1'),
    );
  }
  const statuses = new Map<number, number>();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < inputs.length) {
        const input = inputs[next++] as Buffer;
        const answer = await sendRaw(port, input, 250);
        for (const status of answer.statuses) statuses.set(status, (statuses.get(status) ?? 0) + 1);
      }
    }),
  );
  // Refusals happened (the fuzz reached the guard and the parser), and so did forwards.
  assert.ok((statuses.get(400) ?? 0) > 0, JSON.stringify([...statuses]));

  // Still serving, nothing active.
  const res = await fetch(`${anubis.url}/after-fuzz`);
  assert.equal(await res.text(), 'ok');
  const b = anubis.balancer.pools.get('test')?.backends[0] as Backend;
  const deadline = performance.now() + 5_000;
  while (b.active !== 0 && performance.now() < deadline)
    await new Promise((r) => setTimeout(r, 20));
  assert.equal(b.active, 0);

  // Everything the backend received is well-formed, with at most one framing header.
  let checked = 0;
  for (const chunks of backend.received) {
    for (const request of splitRequests(Buffer.concat(chunks))) {
      const head = request.slice(0, request.indexOf('\r\n\r\n'));
      const [requestLine, ...lines] = head.split('\r\n');
      assert.match(requestLine as string, /^[A-Z]+ \/[^\s]* HTTP\/1\.1$/, JSON.stringify(head));
      for (const line of lines) assert.match(line, HEADER_LINE, JSON.stringify(head));
      const framing = lines.filter((l) => /^(content-length|transfer-encoding):/i.test(l));
      assert.ok(framing.length <= 1, JSON.stringify(head));
      checked++;
    }
  }
  assert.ok(checked > 10, `only ${checked} requests reached the backend`);
});
