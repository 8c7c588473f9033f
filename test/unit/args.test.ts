import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  applyOverrides,
  parseBackendSpec,
  parseCli,
  quickStartConfig,
} from '../../src/cli/args.js';
import { validateConfig } from '../../src/config/load.js';
import { UsageError } from '../../src/errors.js';

test('quick start flags build a one-pool configuration', () => {
  const args = parseCli([
    '--listen',
    '127.0.0.1:8080',
    '--backend',
    'http://127.0.0.1:9001',
    '--backend',
    'http://127.0.0.1:9002,weight=3',
    '--strategy',
    'round-robin',
  ]);
  const config = validateConfig(applyOverrides(quickStartConfig(args), args), 'command line');
  assert.equal(config.listeners[0]?.pool, 'default');
  assert.deepEqual(
    config.pools.default?.backends.map((b) => [b.url, b.weight]),
    [
      ['http://127.0.0.1:9001', 1],
      ['http://127.0.0.1:9002', 3],
    ],
  );
});

test('backend specs', () => {
  assert.deepEqual(parseBackendSpec('http://h:1,weight=2,name=api'), {
    url: 'http://h:1',
    weight: 2,
    name: 'api',
  });
  assert.throws(() => parseBackendSpec('http://h:1,weight=0'), UsageError);
  assert.throws(
    () => parseBackendSpec('http://h:1,colour=red'),
    /unknown --backend option "colour"/,
  );
  assert.throws(() => parseBackendSpec('http://h:1,weight'), /key=value/);
});

test('commands, unknown flags and overrides', () => {
  assert.equal(parseCli(['check', '--config', 'x.yaml']).command, 'check');
  assert.equal(parseCli([]).command, 'start');
  assert.throws(() => parseCli(['--bogus']), UsageError);
  assert.throws(() => parseCli(['frobnicate']), /unknown command "frobnicate"/);
  assert.throws(() => quickStartConfig(parseCli([])), /at least one --backend/);
  const args = parseCli([
    '--workers',
    '3',
    '--log-level',
    'debug',
    '--access-log',
    '--backend',
    'http://h:1',
  ]);
  const config = validateConfig(applyOverrides(quickStartConfig(args), args), 'command line');
  assert.equal(config.workers, 3);
  assert.equal(config.log.level, 'debug');
  assert.equal(config.log.access, true);
  assert.throws(
    () => applyOverrides({} as never, parseCli(['--workers', 'lots'])),
    /--workers must be auto/,
  );
});
