/**
 * SIGHUP to the real CLI (one process): a valid file is applied, an invalid one is rejected
 * with the validation error in the log while the running configuration keeps serving.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { request } from 'undici';
import { spawnCli, stopChild, waitForOutput } from '../helpers/anubis.js';
import { freePort, startNamedBackend } from '../helpers/servers.js';

void test('SIGHUP applies a valid file and rejects an invalid one', async (t) => {
  const a = await startNamedBackend('a');
  const b = await startNamedBackend('b');
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'anubis-hup-'));
  const file = join(dir, 'anubis.yaml');
  const write = (backends: string): Promise<void> =>
    writeFile(
      file,
      [
        'workers: 1',
        'listeners:',
        `  - { address: 127.0.0.1:${port}, pool: p }`,
        'pools:',
        '  p:',
        `    backends: ${backends}`,
        '',
      ].join('\n'),
    );
  await write(`[{ url: ${a.url}, name: a }]`);
  const child = spawnCli(['--config', file]);
  t.after(async () => {
    await stopChild(child, 5_000);
    await a.close();
    await b.close();
    await rm(dir, { recursive: true, force: true });
  });
  await waitForOutput(child, /"msg":"listening"/);
  const bodies = async (n: number): Promise<Set<string>> => {
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) {
      const res = await request(`http://127.0.0.1:${port}/`);
      assert.equal(res.statusCode, 200);
      seen.add(await res.body.text());
    }
    return seen;
  };
  assert.deepEqual(await bodies(4), new Set(['a']));

  await write(`[{ url: ${a.url}, name: a }, { url: ${b.url}, name: b }]`);
  child.kill('SIGHUP');
  await waitForOutput(child, /"msg":"configuration reloaded"/);
  assert.deepEqual(await bodies(6), new Set(['a', 'b']));

  await write(`[{ url: ${b.url}, name: b, weight: zero }]`);
  child.kill('SIGHUP');
  const [line] = await waitForOutput(child, /.*reload rejected.*/);
  assert.match(line, /pools\.p\.backends\[0\]\.weight/);
  assert.deepEqual(await bodies(6), new Set(['a', 'b']), 'the running configuration stays');
});
