/**
 * Health hints between workers, through the real CLI: with `workers: 2` and a check every 4 s,
 * a backend that is killed and restarted is logged down, then up, by both workers far less
 * than an interval apart: the first worker whose check sees the change tells the other (via
 * the primary), which checks at once (docs/health.md#with-several-workers). Without the hint
 * the two workers' verdicts are up to an interval × (1 + jitter) apart.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { spawnCli, stopChild, waitForOutput } from '../helpers/anubis.js';
import { freePort } from '../helpers/servers.js';

const INTERVAL_MS = 4_000;
/** Far below the interval; the hinted check comes within a few ms on an idle machine. */
const MAX_GAP_MS = 1_500;

interface LogLine {
  readonly pid: number;
  readonly time: number;
  readonly msg: string;
  readonly backend?: string;
}

function listen(server: Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

void test('workers: 2 — a check that sees a backend go down or up makes the other worker check at once', async (t) => {
  let checks = 0;
  const backend = createServer((req, res) => {
    if (req.url === '/healthz') checks++;
    res.end('a');
  });
  await listen(backend, 0);
  const backendPort = (backend.address() as AddressInfo).port;
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'anubis-health-workers-'));
  const file = join(dir, 'anubis.yaml');
  await writeFile(
    file,
    [
      'workers: 2',
      'log: { level: debug }',
      'listeners:',
      `  - { address: 127.0.0.1:${port}, pool: web }`,
      'pools:',
      '  web:',
      '    backends:',
      `      - { url: http://127.0.0.1:${backendPort}, name: a }`,
      '    health:',
      `      active: { path: /healthz, interval: ${INTERVAL_MS}ms, jitter: 0.5, rise: 1, fall: 1, timeout: 1s }`,
      '',
    ].join('\n'),
  );
  const child = spawnCli(['--config', file]);
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  t.after(async () => {
    await stopChild(child, 5_000);
    if (backend.listening) await close(backend);
    await rm(dir, { recursive: true, force: true });
  });
  await waitForOutput(child, /worker ready[\s\S]*worker ready/, 30_000);

  /** The complete JSON lines written since `offset` (the last one may still be partial). */
  const linesSince = (offset: number): LogLine[] =>
    output
      .slice(offset, output.lastIndexOf('\n') + 1)
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as LogLine);
  /** Where the next line starts. */
  const mark = (): number => output.lastIndexOf('\n') + 1;
  /** Waits for `msg` about backend a from two different workers; returns the two lines. */
  const bothWorkers = async (offset: number, msg: string): Promise<[LogLine, LogLine]> => {
    const deadline = Date.now() + 5 * INTERVAL_MS;
    for (;;) {
      const byPid = new Map<number, LogLine>();
      for (const line of linesSince(offset)) {
        if (line.msg === msg && line.backend === 'a' && !byPid.has(line.pid)) {
          byPid.set(line.pid, line);
        }
      }
      const [first, second] = [...byPid.values()];
      if (first !== undefined && second !== undefined) return [first, second];
      if (Date.now() > deadline) {
        assert.fail(`"${msg}" from 2 workers not seen; output:\n${output.slice(offset)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const hinted = (offset: number): number =>
    linesSince(offset).filter((line) => line.msg.startsWith('health hint:')).length;

  // The workers start together, so their first checks nearly coincide; with a jitter of ±50 %
  // their phases drift apart from the second check on (as in a process that has run a while).
  const deadline = Date.now() + 10 * INTERVAL_MS;
  while (checks < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.ok(checks >= 4, `the workers ran their first checks (${checks})`);

  const downFrom = mark();
  await close(backend);
  const [down1, down2] = await bothWorkers(downFrom, 'backend is down');
  const downGap = Math.abs(down2.time - down1.time);

  const upFrom = mark();
  await listen(backend, backendPort);
  const [up1, up2] = await bothWorkers(upFrom, 'backend is up');
  const upGap = Math.abs(up2.time - up1.time);

  t.diagnostic(`down: ${downGap} ms apart, up: ${upGap} ms apart (interval ${INTERVAL_MS} ms)`);
  assert.ok(downGap < MAX_GAP_MS, `both workers down ${downGap} ms apart`);
  assert.ok(upGap < MAX_GAP_MS, `both workers up ${upGap} ms apart`);
  // The second worker of at least one transition got there through a hint (both seeing it by
  // their own scheduled checks within the same few ms, twice, is vanishingly unlikely).
  assert.ok(hinted(downFrom) >= 1, 'a worker checked because of a hint');
});
