/**
 * An error nothing caught (here: a custom strategy that throws from a timer of its own) is
 * logged at fatal level; in-flight requests finish; the process exits 70. In a cluster the
 * primary replaces the worker and the load balancer keeps serving.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { get, type IncomingMessage } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { request } from 'undici';
import { spawnCli, stopChild, waitForOutput } from '../helpers/anubis.js';
import { freePort, startNamedBackend, type TestServer } from '../helpers/servers.js';
import { STRATEGY_TYPES } from '../helpers/strategy-sources.js';

/** Round robin, except that a request with `x-boom` makes it throw from a timer. */
const BOMB_STRATEGY = `import type { BackendView, Strategy } from ${STRATEGY_TYPES};
export default function createStrategy(): Strategy {
  let backends: readonly BackendView[] = [];
  let n = 0;
  return {
    name: 'bomb',
    setBackends(b) { backends = b; },
    pick(context) {
      if (context.headers['x-boom'] !== undefined) {
        setTimeout(() => { throw new Error('bomb strategy exploded on purpose'); }, 20);
      }
      return backends[n++ % backends.length];
    },
  };
}
`;

/** GET on a connection of its own; resolves with status and body. */
async function getOnce(url: string): Promise<[number, string]> {
  const req = get(url, { agent: false });
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  let body = '';
  for await (const chunk of res) body += (chunk as Buffer).toString();
  return [res.statusCode ?? 0, body];
}

async function writeSetup(
  workers: number,
  backends: readonly TestServer[],
): Promise<{ dir: string; config: string; port: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'anubis-fatal-'));
  await writeFile(join(dir, 'bomb.ts'), BOMB_STRATEGY);
  const port = await freePort();
  const config = join(dir, 'anubis.yaml');
  await writeFile(
    config,
    [
      `workers: ${workers}`,
      'drainTimeout: 3s',
      `listeners: [{ address: "127.0.0.1:${port}", pool: web }]`,
      'pools:',
      '  web:',
      '    strategy: ./bomb.ts',
      '    backends:',
      ...backends.map((b) => `      - url: ${b.url}`),
      '',
    ].join('\n'),
  );
  return { dir, config, port };
}

void test('workers: 1 — an uncaught error is logged as fatal, the in-flight request finishes, exit 70', async (t) => {
  const slow = await startNamedBackend('slow', 400);
  t.after(() => slow.close());
  const { dir, config, port } = await writeSetup(1, [slow]);
  t.after(() => rm(dir, { recursive: true, force: true }));
  const child = spawnCli(['--config', config]);
  t.after(() => stopChild(child));
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  await waitForOutput(child, /listening/);
  const exited = once(child, 'exit') as Promise<[number | null]>;

  // The timer fires ~20 ms into a request that takes 400 ms: the drain lets it finish.
  const res = await request(`http://127.0.0.1:${port}/`, { headers: { 'x-boom': '1' } });
  assert.equal(res.statusCode, 200);
  assert.equal(await res.body.text(), 'slow');
  const [code] = await exited;
  assert.equal(code, 70);
  const fatal = output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { level: number; msg: string; err?: { message: string } })
    .find((entry) => entry.level === 60);
  assert.ok(fatal, `no fatal line in:\n${output}`);
  assert.equal(fatal.msg, 'uncaught error: draining');
  assert.equal(fatal.err?.message, 'bomb strategy exploded on purpose');
});

void test('workers: 2 — the failed worker is replaced and requests keep being served', async (t) => {
  const backends = await Promise.all(['a', 'b'].map((n) => startNamedBackend(n)));
  t.after(() => Promise.all(backends.map((b) => b.close())));
  const { dir, config, port } = await writeSetup(2, backends);
  t.after(() => rm(dir, { recursive: true, force: true }));
  const child = spawnCli(['--config', config]);
  t.after(() => stopChild(child));
  await waitForOutput(child, /listening[\s\S]*listening/);
  const restarted = waitForOutput(child, /worker died; restarting/, 15_000);
  const boom = await request(`http://127.0.0.1:${port}/`, { headers: { 'x-boom': '1' } });
  assert.equal(boom.statusCode, 200);
  await boom.body.text();
  await restarted;
  // A new connection each time (a pooled one could belong to the worker that died); the
  // primary hands them to both workers, the replacement included.
  for (let i = 0; i < 10; i++) {
    const [status, body] = await getOnce(`http://127.0.0.1:${port}/`);
    assert.equal(status, 200);
    assert.match(body, /^[ab]$/);
  }
  assert.equal(await stopChild(child), 0);
});
