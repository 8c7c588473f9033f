// examples/library/embed.mjs runs as documented in docs/api.md (here against the sources;
// `npm run test:package` runs it against the packed npm package) and exits by itself.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

void test('examples/library/embed.mjs: custom strategy, health events, clean exit', async () => {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--import',
      './test/helpers/anubis-from-source.mjs',
      'examples/library/embed.mjs',
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  assert.equal(code, 0, output);
  const lines = output.trim().split('\n');
  assert.match(lines[0] ?? '', /^anubis listening on http:\/\/127\.0\.0\.1:\d+\/$/);
  assert.deepEqual(lines.slice(1), [
    'plain request:  200 Hello from stable',
    'canary request: 200 Hello from canary',
    'event: backend-down web/canary',
    'canary request after the canary died: 200 Hello from stable',
    'closed',
  ]);
});
