import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  cidrError,
  formatAddress,
  parseDuration,
  parseListenAddress,
  parseSize,
} from '../../src/config/units.js';

test('durations', () => {
  assert.equal(parseDuration('250ms'), 250);
  assert.equal(parseDuration('5s'), 5000);
  assert.equal(parseDuration('1.5s'), 1500);
  assert.equal(parseDuration('2m'), 120000);
  assert.equal(parseDuration('1h'), 3600000);
  assert.equal(parseDuration(42), 42);
  assert.equal(parseDuration('5'), undefined);
  assert.equal(parseDuration('-1s'), undefined);
  assert.equal(parseDuration(-1), undefined);
  assert.equal(parseDuration('5 parsecs'), undefined);
});

test('sizes', () => {
  assert.equal(parseSize('16kb'), 16384);
  assert.equal(parseSize('1MiB'), 1048576);
  assert.equal(parseSize('512'), 512);
  assert.equal(parseSize(100), 100);
  assert.equal(parseSize('1.5x'), undefined);
  assert.equal(parseSize(1.5), undefined);
});

test('listen addresses', () => {
  assert.deepEqual(parseListenAddress('127.0.0.1:8080'), { host: '127.0.0.1', port: 8080 });
  assert.deepEqual(parseListenAddress('[::1]:9000'), { host: '::1', port: 9000 });
  assert.deepEqual(parseListenAddress(':80'), { host: '0.0.0.0', port: 80 });
  assert.deepEqual(parseListenAddress('localhost:0'), { host: 'localhost', port: 0 });
  assert.equal(parseListenAddress('127.0.0.1'), undefined);
  assert.equal(parseListenAddress('127.0.0.1:70000'), undefined);
  assert.equal(parseListenAddress('::1:80'), undefined);
  assert.equal(formatAddress('::1', 80), '[::1]:80');
  assert.equal(formatAddress('127.0.0.1', 80), '127.0.0.1:80');
});

test('CIDR blocks', () => {
  assert.equal(cidrError('10.0.0.0/8'), undefined);
  assert.equal(cidrError('192.168.1.1'), undefined);
  assert.equal(cidrError('fd00::/8'), undefined);
  assert.match(cidrError('10.0.0.0/40') ?? '', /prefix length/);
  assert.match(cidrError('example.com') ?? '', /IP address or CIDR/);
  assert.match(cidrError('1.2.3.4/8/9') ?? '', /IP address or CIDR/);
});
