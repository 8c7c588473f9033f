import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  COLLECT_EVERY_BYTES,
  externalMemory,
  obtainMinorGc,
  ReadBufferCollector,
} from '../../src/proxy/body-memory.js';

/** A fake external-memory reading that grows with every byte counted, like dead read buffers. */
function pilingUp(): { external: () => number; add(bytes: number): void; collected(): void } {
  let value = 1_000_000;
  return {
    external: () => value,
    add: (bytes) => (value += bytes),
    collected: () => (value = 1_000_000),
  };
}

void test('dead buffers piling up: a minor GC each time the threshold of relayed bytes is crossed', () => {
  let calls = 0;
  let obtained = 0;
  const memory = pilingUp();
  const collector = new ReadBufferCollector(
    1_000,
    () => {
      obtained++;
      return () => {
        calls++;
        memory.collected();
      };
    },
    memory.external,
  );
  const relay = (bytes: number): void => {
    memory.add(bytes);
    collector.count(bytes);
  };
  // The first crossing only reads where external memory stands.
  for (let i = 0; i < 10; i++) relay(100);
  assert.equal(calls, 0);
  assert.equal(obtained, 0, 'gc is obtained lazily, when first needed');
  for (let i = 0; i < 9; i++) relay(100);
  assert.equal(calls, 0, 'not before the threshold');
  relay(100);
  assert.equal(calls, 1);
  // The count restarts after a check: a chunk crossing the threshold does not carry over.
  relay(1_500);
  assert.equal(calls, 2);
  relay(999);
  assert.equal(calls, 2);
  relay(1);
  assert.equal(calls, 3);
  assert.equal(collector.collections, 3);
  assert.equal(obtained, 1, 'gc is obtained once');
});

void test("V8's own collections keeping up: nothing is forced", () => {
  let calls = 0;
  let value = 5_000_000;
  const collector = new ReadBufferCollector(
    1_000,
    () => () => calls++,
    () => value,
  );
  for (let i = 0; i < 1_000; i++) {
    // External memory goes up and down within less than the threshold (busy traffic).
    value = 5_000_000 + (i % 7) * 100;
    collector.count(300);
  }
  assert.equal(calls, 0);
  // Live data that grows for good (many slow uploads) costs one collection per threshold of
  // growth, not one per check.
  for (let i = 0; i < 50; i++) {
    value += 250;
    collector.count(1_000);
  }
  // 250 bytes of growth per check: one collection every fourth check (the first after two,
  // counted from the lowest value seen).
  assert.equal(calls, 13);
});

void test('without a gc function, counting goes on and collecting is a no-op', () => {
  let obtained = 0;
  const memory = pilingUp();
  const collector = new ReadBufferCollector(
    10,
    () => {
      obtained++;
      return undefined;
    },
    memory.external,
  );
  for (let i = 0; i < 100; i++) {
    memory.add(64);
    collector.count(64);
  }
  assert.equal(collector.collections, 0);
  assert.equal(obtained, 1, 'an unavailable gc is asked for once');
});

void test('V8 gives a minor GC on this Node, and the default threshold is 2 MiB', () => {
  assert.equal(COLLECT_EVERY_BYTES, 2 * 1024 * 1024);
  assert.ok(externalMemory() > 0, "V8's external memory is readable");
  const gc = obtainMinorGc();
  assert.equal(typeof gc, 'function');
  gc?.();
});
