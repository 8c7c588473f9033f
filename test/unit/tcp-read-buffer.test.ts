/**
 * TCP mode reads a backend's bytes into a buffer it reuses (src/proxy/tcp-proxy.ts). Reuse is
 * safe only while no write from that buffer is still pending: a write Node could not finish
 * keeps pointing into it, and the next read would overwrite bytes not sent yet.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readBufferFor } from '../../src/proxy/tcp-proxy.js';

test('the first read gets a 64 KiB buffer', () => {
  assert.equal(readBufferFor(undefined, 0).length, 64 * 1024);
});

test('the buffer is reused when every write from it is done', () => {
  const buffer = readBufferFor(undefined, 0);
  assert.equal(readBufferFor(buffer, 0), buffer);
});

test('a write still pending, however small, gets the next read a new buffer', () => {
  const buffer = readBufferFor(undefined, 0);
  for (const pending of [1, 10_000, 64 * 1024]) {
    const next = readBufferFor(buffer, pending);
    assert.notEqual(next, buffer);
    assert.equal(next.length, 64 * 1024);
  }
});
