import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  COLLECT_EVERY_BYTES,
  obtainMinorGc,
  ReadBufferCollector,
} from '../../src/proxy/body-memory.js';

void test('a minor GC runs each time the threshold of relayed bytes is crossed, not before', () => {
  let calls = 0;
  let obtained = 0;
  const collector = new ReadBufferCollector(1_000, () => {
    obtained++;
    return () => calls++;
  });
  for (let i = 0; i < 9; i++) collector.count(100);
  assert.equal(calls, 0);
  assert.equal(obtained, 0, 'gc is obtained lazily, on the first crossing');
  collector.count(100);
  assert.equal(calls, 1);
  // The count restarts after a collection: a chunk crossing the threshold does not carry over.
  collector.count(1_500);
  assert.equal(calls, 2);
  collector.count(999);
  assert.equal(calls, 2);
  collector.count(1);
  assert.equal(calls, 3);
  assert.equal(collector.collections, 3);
  assert.equal(obtained, 1, 'gc is obtained once');
});

void test('without a gc function, counting goes on and collecting is a no-op', () => {
  let obtained = 0;
  const collector = new ReadBufferCollector(10, () => {
    obtained++;
    return undefined;
  });
  for (let i = 0; i < 100; i++) collector.count(64);
  assert.equal(collector.collections, 0);
  assert.equal(obtained, 1, 'an unavailable gc is asked for once');
});

void test('V8 gives a minor GC on this Node, and the default threshold is 4 MiB', () => {
  assert.equal(COLLECT_EVERY_BYTES, 4 * 1024 * 1024);
  const gc = obtainMinorGc();
  assert.equal(typeof gc, 'function');
  gc?.();
});
