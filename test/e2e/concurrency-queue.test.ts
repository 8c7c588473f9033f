// concurrency.maxPerBackend + queue through real sockets (HAProxy maxconn + queue): a full
// backend is skipped, a full pool queues up to queueLength for up to queueTimeout, then 503.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startAnubis } from '../helpers/anubis.js';
import { pollUntil } from '../helpers/poll.js';
import { startBackend } from '../helpers/servers.js';

/** A backend that counts concurrent requests and answers after `delayMs`. */
async function startCountingBackend(name: string, delayMs: number) {
  const stats = { active: 0, peak: 0, served: 0 };
  const server = await startBackend((req, res) => {
    stats.active++;
    stats.peak = Math.max(stats.peak, stats.active);
    req.resume();
    setTimeout(() => {
      stats.active--;
      stats.served++;
      res.end(name);
    }, delayMs);
  });
  return Object.assign(server, { stats });
}

void test('a full backend is skipped; a full pool queues, then answers 503 when the queue is full', async (t) => {
  const a = await startCountingBackend('a', 300);
  const b = await startCountingBackend('b', 300);
  const lb = await startAnubis([a.url, b.url], {
    concurrency: { maxPerBackend: 2, queueLength: 2, queueTimeout: '5s' },
  });
  t.after(async () => {
    await lb.close();
    await a.close();
    await b.close();
  });
  // 4 slots + 2 queued = 6 served; the 7th and 8th find the queue full.
  const results = await Promise.all(
    Array.from({ length: 8 }, async () => {
      const res = await fetch(`${lb.url}/`);
      return {
        status: res.status,
        retryAfter: res.headers.get('retry-after'),
        body: await res.text(),
      };
    }),
  );
  const statuses = results.map((r) => r.status).sort();
  assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200, 503, 503]);
  for (const r of results.filter((x) => x.status === 503)) assert.equal(r.retryAfter, '1');
  assert.ok(a.stats.peak <= 2 && b.stats.peak <= 2, `peaks ${a.stats.peak}, ${b.stats.peak}`);
  assert.equal(a.stats.served + b.stats.served, 6);
  assert.equal(lb.balancer.pools.get('test')?.queueLength, 0, 'the queue gauge is back to 0');
});

void test('a queued request that waits longer than queueTimeout gets 503', async (t) => {
  const slow = await startCountingBackend('slow', 3_000);
  const lb = await startAnubis([slow.url], {
    concurrency: { maxPerBackend: 1, queueLength: 5, queueTimeout: '200ms' },
  });
  t.after(async () => {
    await lb.close();
    await slow.close();
  });
  const first = fetch(`${lb.url}/`);
  // The first request holds the only slot (it reached the backend) before the second is sent.
  assert.equal(await pollUntil(() => slow.stats.active, 1), 1);
  const started = performance.now();
  const second = await fetch(`${lb.url}/`);
  const waited = performance.now() - started;
  assert.equal(second.status, 503);
  assert.equal(second.headers.get('retry-after'), '1');
  assert.ok(waited >= 180 && waited < 2_500, `503 after ${Math.round(waited)} ms`);
  assert.equal((await first).status, 200);
  assert.equal(slow.stats.peak, 1);
});
