// contentLengthOf (src/upstream/http1/response-framing.ts): the length of a body framed by one
// plain Content-Length, and -1 for every head whose body the connection leaves to the parser.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { contentLengthOf } from '../../src/upstream/http1/response-framing.js';

test('one Content-Length, any case, among other headers', () => {
  assert.equal(contentLengthOf(['Server', 'x', 'Content-Length', '1234']), 1234);
  assert.equal(contentLengthOf(['content-length', '0']), 0);
  assert.equal(contentLengthOf(['CONTENT-LENGTH', '007']), 7);
  assert.equal(contentLengthOf(['content-length', '999999999999999']), 999_999_999_999_999);
});

test('no length, several, beside Transfer-Encoding, or not a plain number: -1', () => {
  assert.equal(contentLengthOf(undefined), -1);
  assert.equal(contentLengthOf([]), -1);
  assert.equal(contentLengthOf(['content-type', 'text/plain']), -1);
  assert.equal(contentLengthOf(['content-length', '5', 'Content-Length', '5']), -1);
  assert.equal(contentLengthOf(['content-length', '5', 'transfer-encoding', 'chunked']), -1);
  assert.equal(contentLengthOf(['Transfer-Encoding', 'chunked', 'content-length', '5']), -1);
  for (const value of ['', '-1', '+5', '5 ', ' 5', '5,5', '1e3', '0x10', '1234567890123456']) {
    assert.equal(contentLengthOf(['content-length', value]), -1, JSON.stringify(value));
  }
});
