import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { BusyPoller } from '../../src/server/busy-poller.js';
import { parseYaml, validateConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

/** Event loop utilisation over `ms` of waiting on a timer (0 = slept, 1 = never slept). */
async function utilisationWhileWaiting(ms: number): Promise<number> {
  const before = performance.eventLoopUtilization();
  await sleep(ms);
  return performance.eventLoopUtilization(before).utilization;
}

test('a request starts polling; it stops after the window without requests', async () => {
  const poller = new BusyPoller(30);
  assert.equal(poller.polling, false);
  poller.touch();
  assert.equal(poller.polling, true);
  // Requests keep it polling past its window.
  for (let i = 0; i < 6; i++) {
    await sleep(10);
    poller.touch();
    assert.equal(poller.polling, true);
  }
  await sleep(80);
  assert.equal(poller.polling, false);
  // And the next request starts it again.
  poller.touch();
  assert.equal(poller.polling, true);
  poller.close();
  assert.equal(poller.polling, false);
});

test('off (window 0), closed, or turned off by setWindow(0): no polling', async () => {
  const off = new BusyPoller(0);
  off.touch();
  assert.equal(off.polling, false);

  const closed = new BusyPoller(50);
  closed.close();
  closed.touch();
  assert.equal(closed.polling, false);

  const reloaded = new BusyPoller(10_000);
  reloaded.touch();
  assert.equal(reloaded.polling, true);
  reloaded.setWindow(0);
  await sleep(5);
  reloaded.touch();
  assert.equal(reloaded.polling, false);
  reloaded.setWindow(20);
  reloaded.touch();
  assert.equal(reloaded.polling, true);
  reloaded.close();
});

test('while polling, the loop does not sleep in epoll; after the window it does', async () => {
  // libuv counts the time spent blocked in epoll_wait as idle: waiting 60 ms on a timer is
  // almost all idle without the poller and almost none with it.
  const asleep = await utilisationWhileWaiting(60);
  const poller = new BusyPoller(200);
  poller.touch();
  const polling = await utilisationWhileWaiting(60);
  poller.close();
  const closed = await utilisationWhileWaiting(60);
  assert.ok(asleep < 0.5, `expected the idle loop to sleep, utilisation ${asleep}`);
  assert.ok(polling > 0.5, `expected the polling loop never to sleep, utilisation ${polling}`);
  assert.ok(closed < 0.5, `expected the loop to sleep again after close, utilisation ${closed}`);
});

test('busyPolling in the configuration: false, true (100ms), a duration; bad values named', () => {
  const base = `
listeners:
  - address: 127.0.0.1:8080
    pool: p
pools:
  p:
    backends:
      - url: http://127.0.0.1:9001
`;
  const parse = (extra: string) => validateConfig(parseYaml(base + extra, 't.yaml'), 't.yaml');
  assert.equal(parse('').busyPolling, 0);
  assert.equal(parse('busyPolling: false\n').busyPolling, 0);
  assert.equal(parse('busyPolling: true\n').busyPolling, 100);
  assert.equal(parse('busyPolling: 250ms\n').busyPolling, 250);
  assert.equal(parse('busyPolling: 5\n').busyPolling, 5);
  for (const bad of ['0', '0ms', '2m', 'soon', '"yes"']) {
    assert.throws(
      () => parse(`busyPolling: ${bad}\n`),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.issues.some(
          (issue) =>
            issue.path === 'busyPolling' &&
            issue.message.includes('expected true, false or a duration from 1ms to 1m'),
        ),
      `busyPolling: ${bad}`,
    );
  }
});
