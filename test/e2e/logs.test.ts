/**
 * Logs: lifecycle events always (listening, admin, runtime changes, reload, stop), one access
 * line per request only when `log.access` is on, and the human-friendly pretty format.
 */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { request } from 'undici';
import { validateConfig } from '../../src/config/load.js';
import { LoadBalancer } from '../../src/load-balancer.js';
import { createLogger } from '../../src/logging/logger.js';
import { startNamedBackend } from '../helpers/servers.js';

function capture(): { stream: PassThrough; lines: () => string[] } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => (text += d.toString()));
  return { stream, lines: () => text.split('\n').filter((l) => l !== '') };
}

async function run(access: boolean, format: 'json' | 'pretty') {
  const backend = await startNamedBackend('a');
  const { stream, lines } = capture();
  const config = validateConfig(
    {
      workers: 1,
      log: { access, format },
      admin: { address: '127.0.0.1:0' },
      listeners: [{ address: '127.0.0.1:0', pool: 'p' }],
      pools: { p: { backends: [{ url: backend.url, name: 'a' }] } },
    },
    'test',
  );
  const logger = createLogger({ level: 'info', format }, stream);
  const balancer = await LoadBalancer.start(config, { logger });
  const url = `http://127.0.0.1:${balancer.addresses()[0]?.port ?? 0}/`;
  for (let i = 0; i < 3; i++) await (await request(url)).body.text();
  const admin = `http://127.0.0.1:${balancer.admin?.boundAddress().port ?? 0}`;
  await (await request(`${admin}/api/pools/p/backends/a/drain`, { method: 'POST' })).body.text();
  await balancer.reload(config);
  await balancer.close(1_000);
  await backend.close();
  return lines();
}

void test('JSON logs: lifecycle always, access lines only when enabled', async () => {
  const quiet = (await run(false, 'json')).map((l) => JSON.parse(l) as Record<string, unknown>);
  const messages = quiet.map((l) => l.msg);
  for (const expected of [
    'listening',
    'admin API listening',
    'backend state changed',
    'configuration reloaded',
  ]) {
    assert.ok(messages.includes(expected), `logged "${expected}"`);
  }
  assert.ok(!messages.includes('request'), 'no access line when log.access is off');

  const loud = (await run(true, 'json')).map((l) => JSON.parse(l) as Record<string, unknown>);
  const access = loud.filter((l) => l.msg === 'request');
  assert.equal(access.length, 3);
  assert.equal(access[0]?.backend, 'a');
  assert.equal(access[0]?.status, 200);
  assert.equal(access[0]?.method, 'GET');
  assert.equal(typeof access[0]?.ms, 'number');
});

void test('pretty logs are human lines, not JSON', async () => {
  const lines = await run(false, 'pretty');
  assert.ok(lines.some((l) => l.includes('listening')));
  assert.ok(lines.every((l) => !l.startsWith('{')));
});
