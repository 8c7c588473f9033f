// The quick start's --health-check through the real CLI: a backend that fails its check is
// logged down with the reason, traffic goes to the other one, and it is logged up again
// once it passes (no restart).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { spawnCli, stopChild, waitForOutput } from '../helpers/anubis.js';
import { freePort, startBackend, startNamedBackend } from '../helpers/servers.js';

void test('--health-check PATH: state changes are logged with the reason; recovery without a restart', async (t) => {
  let healthy = false;
  const flaky = await startBackend((req, res) => {
    if (req.url === '/healthz') res.writeHead(healthy ? 200 : 503);
    res.end('flaky');
  });
  const steady = await startNamedBackend('steady');
  const port = await freePort();
  const child = spawnCli([
    '--listen',
    `127.0.0.1:${port}`,
    '--backend',
    `${flaky.url},name=flaky`,
    '--backend',
    `${steady.url},name=steady`,
    '--health-check',
    '/healthz',
    '--workers',
    '1',
  ]);
  t.after(async () => {
    await stopChild(child);
    await flaky.close();
    await steady.close();
  });
  await waitForOutput(child, /"msg":"listening"/);
  // Checks every 5 s (± 10 %), fall 3: down after about 10 s.
  const down = await waitForOutput(
    child,
    /\{[^\n]*"backend":"flaky"[^\n]*"msg":"backend is down"[^\n]*/,
    20_000,
  );
  assert.match(down[0], /"reason":"check: status 503 \(3 in a row\)"/);
  for (let i = 0; i < 4; i++) {
    assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 'steady');
  }
  healthy = true;
  const up = await waitForOutput(
    child,
    /\{[^\n]*"backend":"flaky"[^\n]*"msg":"backend is up"[^\n]*/,
    20_000,
  );
  assert.match(up[0], /"reason":"check: status 200 \(2 in a row\)"/);
});
