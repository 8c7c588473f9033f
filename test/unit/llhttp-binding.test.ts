/**
 * The version gate in front of Node's internal llhttp binding (src/upstream/http1/llhttp.ts):
 * this Node's parser passes it, and a binding missing anything the client uses is refused
 * (anubis then gives every pool undici, src/upstream/backend.ts); the same for the listener's
 * fast path (src/server/fast-http1/front.ts; node:http then serves every request).
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import {
  checkedParserClass,
  loadLlhttp,
  loadLlhttpMethods,
  type LlhttpParserClass,
} from '../../src/upstream/http1/llhttp.js';
import { checkedFastPathRuntime, fastPathRuntime } from '../../src/server/fast-http1/front.js';
import { upstreamClientKind } from '../../src/upstream/backend.js';

const real = createRequire(import.meta.url)('node:_http_common') as { HTTPParser: unknown };

void test("this Node's llhttp binding passes the gate, so pools get anubis's client", () => {
  assert.equal(typeof loadLlhttp(), 'function');
  assert.equal(checkedParserClass(real), real.HTTPParser);
  assert.equal(upstreamClientKind(undefined), 'anubis');
  assert.equal(upstreamClientKind('anubis'), 'anubis');
  assert.equal(upstreamClientKind('undici'), 'undici');
});

/** A copy of the real class with one static constant or prototype method taken away. */
function without(member: string, onPrototype: boolean): { HTTPParser: unknown } {
  const Real = real.HTTPParser as new () => object;
  class Parser extends Real {}
  for (const key of Object.getOwnPropertyNames(Real)) {
    if (['length', 'name', 'prototype'].includes(key)) continue;
    Object.defineProperty(
      Parser,
      key,
      Object.getOwnPropertyDescriptor(Real, key) as PropertyDescriptor,
    );
  }
  if (onPrototype) {
    // Shadow the inherited method with a non-function.
    Object.defineProperty(Parser.prototype, member, { value: undefined });
  } else {
    Object.defineProperty(Parser, member, { value: undefined });
  }
  return { HTTPParser: Parser };
}

void test('a binding missing a constant, a callback slot or a method is refused', () => {
  for (const constant of [
    'RESPONSE',
    'kLenientNone',
    'kOnHeadersComplete',
    'kOnBody',
    'kOnExecute',
  ]) {
    assert.equal(checkedParserClass(without(constant, false)), undefined, constant);
  }
  for (const method of ['initialize', 'execute', 'finish', 'consume', 'close']) {
    assert.equal(checkedParserClass(without(method, true)), undefined, method);
  }
  assert.equal(checkedParserClass({}), undefined);
  assert.equal(checkedParserClass(null), undefined);
  assert.equal(checkedParserClass({ HTTPParser: 42 }), undefined);
});

void test('the copy used above passes the gate when nothing is taken away', () => {
  // Guards the test itself: `without` must only remove what it is told to.
  assert.notEqual(checkedParserClass(without('unrelatedName', false)), undefined);
});

void test("the fast path's gate: this Node passes; a missing request parser member or piece is refused", () => {
  const methods = loadLlhttpMethods();
  assert.ok(methods?.includes('GET') === true && methods.includes('DELETE'));
  assert.notEqual(fastPathRuntime(), undefined);
  const ok = checkedParserClass(real) as LlhttpParserClass;
  assert.notEqual(checkedFastPathRuntime(ok, methods, true), undefined);
  for (const [member, onPrototype] of [
    ['REQUEST', false],
    ['kOnMessageBegin', false],
    ['getCurrentBuffer', true],
  ] as const) {
    const parser = checkedParserClass(without(member, onPrototype));
    assert.notEqual(parser, undefined, `${member} is not the client's business`);
    assert.equal(checkedFastPathRuntime(parser, methods, true), undefined, member);
  }
  assert.equal(checkedFastPathRuntime(undefined, methods, true), undefined);
  assert.equal(checkedFastPathRuntime(ok, undefined, true), undefined);
  assert.equal(checkedFastPathRuntime(ok, methods, false), undefined, 'no header merging');
});
