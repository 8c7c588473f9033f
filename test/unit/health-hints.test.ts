// HealthMonitor.checkSoon: a hint from another worker makes the monitor check a backend at
// once and then at a short delay, `fall` (down) or `rise` (up) times at most, its own counters
// deciding; then back to the interval. Against a real loopback backend, with a 60 s interval
// so that every check seen here is a hinted one.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { RoundRobinStrategy } from '../../src/strategies/round-robin.js';
import { UpstreamPool } from '../../src/upstream/pool.js';
import { startBackend } from '../helpers/servers.js';

async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const settle = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

void test('HealthMonitor.checkSoon: hinted checks until the verdict agrees or rise/fall ran; own counters decide', async (t) => {
  let status = 200;
  let checks = 0;
  const server = await startBackend((req, res) => {
    if (req.url === '/healthz') checks++;
    res.writeHead(status);
    res.end();
  });
  const config = validateConfig(
    {
      listeners: [{ address: '127.0.0.1:0', pool: 'p' }],
      pools: {
        p: {
          backends: [{ url: server.url, name: 'x' }],
          health: {
            active: { path: '/healthz', interval: '60s', jitter: 0, rise: 3, fall: 2 },
            passive: { enabled: false },
          },
        },
        plain: { backends: [{ url: server.url, name: 'y' }] },
      },
    },
    't',
  );
  const pool = new UpstreamPool('p', config.pools.p!, new RoundRobinStrategy());
  const plain = new UpstreamPool('plain', config.pools.plain!, new RoundRobinStrategy());
  const changes: string[] = [];
  pool.on('backend-health', ({ healthy, reason }) =>
    changes.push(`${healthy ? 'up' : 'down'}: ${reason}`),
  );
  t.after(async () => {
    await pool.close();
    await plain.close();
    await server.close();
  });
  const x = pool.backend('x')!;
  await until(() => checks === 1, 'the first scheduled check');

  // Same view as the hint: nothing to do. No active checks: ignored.
  assert.equal(pool.health.checkSoon(x, true), false);
  assert.equal(plain.health.checkSoon(plain.backend('y')!, false), false);

  // Down hint, and the backend does fail: down after `fall` = 2 quick checks, then no more.
  status = 503;
  assert.equal(pool.health.checkSoon(x, false), true);
  await until(() => !x.healthy, 'down after 2 hinted checks');
  assert.equal(checks, 3);
  assert.deepEqual(changes, ['down: check: status 503 (2 in a row)']);
  await settle(400);
  assert.equal(checks, 3, 'back to the 60 s interval once the verdict agrees');

  // Up hint while the backend still fails here: `rise` = 3 checks, it stays down, then stops.
  assert.equal(pool.health.checkSoon(x, true), true);
  await until(() => checks === 6, '3 hinted checks');
  await settle(400);
  assert.equal(checks, 6, 'no more than rise hinted checks');
  assert.equal(x.healthy, false, 'the hint alone does not bring it up');

  // Up hint, and the backend passes: up after 3 quick checks.
  status = 200;
  assert.equal(pool.health.checkSoon(x, true), true);
  await until(() => x.healthy, 'up after 3 hinted checks');
  assert.equal(checks, 9);
  assert.deepEqual(changes.slice(1), ['up: check: status 200 (3 in a row)']);
  await settle(400);
  assert.equal(checks, 9);
});
