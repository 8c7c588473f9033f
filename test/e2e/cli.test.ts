// The real `anubis` command in a child process.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { request } from 'undici';
import { runCli, spawnCli, stopChild, waitForOutput } from '../helpers/anubis.js';
import { freePort, startNamedBackend } from '../helpers/servers.js';

test('--version and --help', async () => {
  const version = await runCli(['--version']);
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^anubis \d+\.\d+\.\d+\n$/);
  const help = await runCli(['--help']);
  assert.equal(help.code, 0);
  for (const flag of [
    '--config',
    '--listen',
    '--backend',
    '--strategy',
    '--workers',
    '--log-level',
    '--log-format',
    '--access-log',
  ]) {
    assert.ok(help.stdout.includes(flag), `help documents ${flag}`);
  }
});

test('check: exit 0 on a valid file, 2 with file and key path on an invalid one', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'anubis-cli-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const good = join(dir, 'good.yaml');
  const bad = join(dir, 'bad.yaml');
  await writeFile(
    good,
    'listeners: [{address: "127.0.0.1:8080", pool: p}]\npools: {p: {backends: [{url: "http://127.0.0.1:9001"}]}}\n',
  );
  await writeFile(
    bad,
    'listeners: [{address: "127.0.0.1:8080", pool: p}]\npools: {p: {backends: [{url: "http://127.0.0.1:9001", weight: 0}]}}\n',
  );
  const ok = await runCli(['check', '--config', good]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /configuration is valid/);
  const ko = await runCli(['check', '--config', bad]);
  assert.equal(ko.code, 2);
  assert.ok(
    ko.stderr.includes(`${bad}: pools.p.backends[0].weight: expected a number >= 1, found 0`),
    ko.stderr,
  );
  const missing = await runCli(['check', '--config', join(dir, 'nope.yaml')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /nope\.yaml: file not found/);
  const usage = await runCli(['--frobnicate']);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /--frobnicate/);
});

test('quick start proxies to the given backends and stops cleanly on SIGTERM', async (t) => {
  const a = await startNamedBackend('a');
  const b = await startNamedBackend('b');
  const port = await freePort();
  const child = spawnCli([
    '--listen',
    `127.0.0.1:${port}`,
    '--backend',
    a.url,
    '--backend',
    `${b.url},weight=3`,
    '--workers',
    '1',
  ]);
  t.after(async () => {
    await stopChild(child);
    await a.close();
    await b.close();
  });
  await waitForOutput(child, /"msg":"listening"/);
  const seen: string[] = [];
  for (let i = 0; i < 8; i++)
    seen.push(await (await request(`http://127.0.0.1:${port}/`)).body.text());
  assert.equal(seen.filter((s) => s === 'a').length, 2);
  assert.equal(seen.filter((s) => s === 'b').length, 6);
  assert.equal(await stopChild(child), 0);
});

test('a port in use is a clear error, exit 1', async (t) => {
  const a = await startNamedBackend('a');
  t.after(() => a.close());
  const run = await runCli([
    '--listen',
    `127.0.0.1:${a.port}`,
    '--backend',
    a.url,
    '--workers',
    '1',
  ]);
  assert.equal(run.code, 1);
  assert.match(run.stderr, /cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE.*\[ANUBIS_LISTEN\]/);
});

test('workers: 2 serves through node:cluster and drains on SIGTERM', async (t) => {
  const a = await startNamedBackend('a');
  const port = await freePort();
  const child = spawnCli(['--listen', `127.0.0.1:${port}`, '--backend', a.url, '--workers', '2']);
  t.after(async () => {
    await stopChild(child);
    await a.close();
  });
  await waitForOutput(child, /"msg":"listening"[\s\S]*"msg":"listening"/, 20_000);
  for (let i = 0; i < 10; i++)
    assert.equal(await (await request(`http://127.0.0.1:${port}/`)).body.text(), 'a');
  assert.equal(await stopChild(child), 0);
});

test('demo: three hello-world backends behind anubis, answers cycle', async (t) => {
  const port = await freePort();
  const child = spawnCli(['demo', '--listen', `127.0.0.1:${port}`]);
  t.after(() => stopChild(child));
  const [, url] = await waitForOutput(child, /load balancer\s+(http:\/\/\S+)\//);
  assert.equal(url, `http://127.0.0.1:${port}`);
  const answers: string[] = [];
  for (let i = 0; i < 6; i++) answers.push((await (await request(`${url}/`)).body.text()).trim());
  assert.deepEqual(answers, [
    'Hello from server 1',
    'Hello from server 2',
    'Hello from server 3',
    'Hello from server 1',
    'Hello from server 2',
    'Hello from server 3',
  ]);
  assert.equal(await stopChild(child), 0);
});
