// busyPolling end to end: the CLI from a configuration file polls (burns CPU) only while
// requests arrive and for its window after, then sleeps; in process, a reload turns it off
// and on, and close() leaves nothing that keeps Node alive.
import assert from 'node:assert/strict';
import { readFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { request } from 'undici';
import { spawnCli, startAnubis, stopChild, waitForOutput } from '../helpers/anubis.js';
import { freePort, startNamedBackend } from '../helpers/servers.js';
import { validateConfig } from '../../src/config/load.js';

const CLOCK_TICKS_PER_SECOND = 100;

/** CPU seconds (user + system) a process has used, from /proc/PID/stat. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces, inside parentheses).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

/** Share of one core the process used over the next `ms`. */
async function cpuShare(pid: number, ms: number): Promise<number> {
  const before = await cpuSeconds(pid);
  const started = performance.now();
  await sleep(ms);
  const used = (await cpuSeconds(pid)) - before;
  return used / ((performance.now() - started) / 1000);
}

test(
  'the CLI polls while requests arrive and for its window after, and sleeps when idle',
  { skip: process.platform !== 'linux' && 'reads /proc' },
  async (t) => {
    const backend = await startNamedBackend('a');
    const dir = await mkdtemp(join(tmpdir(), 'anubis-busy-'));
    const port = await freePort();
    const file = join(dir, 'anubis.yaml');
    await writeFile(
      file,
      `workers: 1\nbusyPolling: 1s\nlisteners: [{address: "127.0.0.1:${port}", pool: p}]\n` +
        `pools: {p: {backends: [{url: "${backend.url}"}]}}\n`,
    );
    const child = spawnCli(['--config', file]);
    t.after(async () => {
      await stopChild(child);
      await backend.close();
      await rm(dir, { recursive: true, force: true });
    });
    await waitForOutput(child, /"msg":"listening"/);
    const pid = child.pid as number;
    await sleep(300);
    const idle = await cpuShare(pid, 500);
    for (let i = 0; i < 5; i++) {
      const response = await request(`http://127.0.0.1:${port}/`);
      assert.equal(await response.body.text(), 'a');
    }
    const polling = await cpuShare(pid, 500);
    await sleep(700);
    const after = await cpuShare(pid, 500);
    // Alone on a core a polling anubis uses all of it and an idle one none; next to the rest
    // of the test suite on 2 cores it gets its share of them (0.4 seen), so the bounds are
    // far apart from both.
    assert.ok(idle < 0.1, `expected an idle anubis to sleep, it used ${idle} of a core`);
    assert.ok(polling > 0.15, `expected anubis to poll after requests, it used ${polling}`);
    assert.ok(after < 0.1, `expected anubis to sleep after the window, it used ${after}`);
    assert.equal(await stopChild(child), 0);
  },
);

/** Event loop utilisation of this process over `ms` (0 = slept in epoll, 1 = never slept). */
async function utilisation(ms: number): Promise<number> {
  const before = performance.eventLoopUtilization();
  await sleep(ms);
  return performance.eventLoopUtilization(before).utilization;
}

test('in process: a reload turns busy polling off and on; close() stops it', async (t) => {
  const backend = await startNamedBackend('a');
  const anubis = await startAnubis([backend.url], {}, { busyPolling: '5s' });
  t.after(async () => {
    await anubis.close();
    await backend.close();
  });
  const get = async (): Promise<void> => {
    const response = await request(`${anubis.url}/`);
    assert.equal(await response.body.text(), 'a');
  };
  await get();
  assert.ok((await utilisation(80)) > 0.5, 'expected polling after a request');
  const input = (busyPolling: boolean | string): unknown => ({
    workers: 1,
    log: { level: 'silent' },
    busyPolling,
    // The address as first configured: the reload keeps that listener.
    listeners: [{ address: '127.0.0.1:0', pool: 'test' }],
    pools: { test: { backends: [{ url: backend.url }] } },
  });
  await anubis.balancer.reload(validateConfig(input(false), 'reload'));
  await get();
  await sleep(20);
  assert.ok((await utilisation(80)) < 0.5, 'expected no polling once turned off');
  await anubis.balancer.reload(validateConfig(input('5s'), 'reload'));
  await get();
  assert.ok((await utilisation(80)) > 0.5, 'expected polling once turned on again');
  await anubis.close();
  assert.ok((await utilisation(80)) < 0.5, 'expected no polling after close()');
});
