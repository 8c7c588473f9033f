// classifyUpstreamError: what undici and Node report, mapped onto anubis's coded errors.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RequestNotForwardableError, UpstreamResetError } from '../../src/errors.js';
import { classifyUpstreamError } from '../../src/proxy/upstream-errors.js';

function coded(code: string, message = code): Error {
  return Object.assign(new Error(message), { code });
}

test('each known code maps to its error and client status', () => {
  const cases: [string, string, number][] = [
    ['ECONNREFUSED', 'ANUBIS_UPSTREAM_CONNECT', 502],
    ['UND_ERR_CONNECT_TIMEOUT', 'ANUBIS_UPSTREAM_CONNECT_TIMEOUT', 504],
    ['UND_ERR_HEADERS_TIMEOUT', 'ANUBIS_UPSTREAM_HEADERS_TIMEOUT', 504],
    ['UND_ERR_BODY_TIMEOUT', 'ANUBIS_UPSTREAM_BODY_TIMEOUT', 504],
    ['ECONNRESET', 'ANUBIS_UPSTREAM_RESET', 502],
    ['UND_ERR_SOCKET', 'ANUBIS_UPSTREAM_RESET', 502],
    ['HPE_INVALID_CONSTANT', 'ANUBIS_UPSTREAM_PROTOCOL', 502],
    ['UND_ERR_ABORTED', 'ANUBIS_CLIENT_ABORTED', 499],
    ['UND_ERR_INVALID_ARG', 'ANUBIS_REQUEST_NOT_FORWARDABLE', 400],
    ['SOMETHING_ELSE', 'ANUBIS_UPSTREAM_PROTOCOL', 502],
  ];
  for (const [code, expected, status] of cases) {
    const error = classifyUpstreamError(coded(code), 'b1');
    assert.equal(error.code, expected, code);
    assert.equal(error.status, status, code);
  }
});

test('a header undici refuses is the request’s fault, named with the backend and the reason', () => {
  const error = classifyUpstreamError(coded('UND_ERR_INVALID_ARG', 'invalid x-a header'), 'b1');
  assert.ok(error instanceof RequestNotForwardableError);
  assert.equal(error.message, 'request cannot be forwarded to b1: invalid x-a header');
});

test('anubis errors pass through unchanged', () => {
  const reset = new UpstreamResetError('b1', new Error('gone'));
  assert.equal(classifyUpstreamError(reset, 'b2'), reset);
});
