// The container health check (src/cli/healthcheck.ts, the Dockerfile's HEALTHCHECK): healthy
// while anubis serves, unhealthy once it stopped; through the admin API when one is configured.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadConfigFile } from '../../src/config/load.js';
import { LoadBalancer } from '../../src/load-balancer.js';
import { freePort, startNamedBackend } from '../helpers/servers.js';

const HEALTHCHECK = fileURLToPath(new URL('../../src/cli/healthcheck.ts', import.meta.url));

async function healthcheck(file: string): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', HEALTHCHECK, file], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, output };
}

void test('healthy while the listener accepts, unhealthy after close (TCP probe, wildcard address)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'anubis-hc-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const backend = await startNamedBackend('b');
  t.after(() => backend.close());
  const port = await freePort();
  const file = join(dir, 'anubis.yaml');
  await writeFile(
    file,
    `workers: 1\nlisteners: [{ address: "0.0.0.0:${port}", pool: p }]\npools: { p: { backends: [{ url: "${backend.url}" }] } }\n`,
  );
  const lb = await LoadBalancer.start(await loadConfigFile(file));
  let closed = false;
  t.after(() => (closed ? undefined : lb.close(500)));
  const up = await healthcheck(file);
  assert.equal(up.code, 0, up.output);
  assert.match(up.output, new RegExp(`healthy: tcp 127\\.0\\.0\\.1:${port} accepts connections`));
  await lb.close(500);
  closed = true;
  const down = await healthcheck(file);
  assert.equal(down.code, 1, down.output);
  assert.match(down.output, /unhealthy: .*ECONNREFUSED/);
});

void test('with an admin listener, the admin API is asked (with the token)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'anubis-hc-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const backend = await startNamedBackend('b');
  t.after(() => backend.close());
  const [port, adminPort] = [await freePort(), await freePort()];
  const file = join(dir, 'anubis.yaml');
  await writeFile(
    file,
    [
      'workers: 1',
      `admin: { address: "127.0.0.1:${adminPort}", token: "s3cret-token" }`,
      `listeners: [{ address: "127.0.0.1:${port}", pool: p }]`,
      `pools: { p: { backends: [{ url: "${backend.url}" }] } }`,
      '',
    ].join('\n'),
  );
  const lb = await LoadBalancer.start(await loadConfigFile(file));
  t.after(() => lb.close(500));
  const up = await healthcheck(file);
  assert.equal(up.code, 0, up.output);
  assert.match(
    up.output,
    new RegExp(`healthy: admin API on 127\\.0\\.0\\.1:${adminPort} answers 200`),
  );
  // A wrong token is a failed check, not a pass.
  await writeFile(
    file,
    (await import('node:fs')).readFileSync(file, 'utf8').replace('s3cret-token', 'wrong-token'),
  );
  const refused = await healthcheck(file);
  assert.equal(refused.code, 1, refused.output);
  assert.match(refused.output, /answered 401/);
});

void test('an invalid configuration is unhealthy, with the reason', async () => {
  const result = await healthcheck('/nonexistent/anubis.yaml');
  assert.equal(result.code, 1);
  assert.match(result.output, /unhealthy: cannot read configuration .*file not found/);
});
