// Forwarding headers on raw bytes: X-Forwarded-* and Forwarded from a client are believed only
// from trustedProxies; otherwise the backend sees exactly what anubis saw on the socket.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startAnubis } from '../helpers/anubis.js';
import { sendRaw, startRecordingBackend } from '../helpers/raw-http.js';

const FORGED =
  'X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\n' +
  'Forwarded: for=6.6.6.6;proto=https\r\nX-Forwarded-For: 7.7.7.7\r\n';

/** Sends one request with the forged headers; returns the lower-cased header lines the backend got. */
async function forwardedHeaders(extra: Record<string, unknown>, path: string): Promise<string[]> {
  const backend = await startRecordingBackend();
  const anubis = await startAnubis([backend.url], {}, extra);
  try {
    const port = Number(new URL(anubis.url).port);
    const answer = await sendRaw(
      port,
      `GET ${path} HTTP/1.1\r\nHost: app.example\r\n${FORGED}Connection: close\r\n\r\n`,
    );
    assert.deepEqual(answer.statuses, [200]);
    const [request] = backend.requests();
    const lines = (request as string).split('\r\n').map((l) => l.toLowerCase());
    return lines.filter((l) => /^(x-forwarded-|forwarded:)/.test(l));
  } finally {
    await anubis.close();
    await backend.close();
  }
}

void test('from an untrusted client, forged X-Forwarded-* and Forwarded are replaced', async () => {
  assert.deepEqual(await forwardedHeaders({}, '/untrusted'), [
    'x-forwarded-for: 127.0.0.1',
    'x-forwarded-proto: http',
    'x-forwarded-host: app.example',
  ]);
});

void test('from a trusted proxy they are kept and extended', async () => {
  assert.deepEqual(await forwardedHeaders({ trustedProxies: ['127.0.0.0/8'] }, '/trusted'), [
    'x-forwarded-for: 6.6.6.6, 7.7.7.7, 127.0.0.1',
    'x-forwarded-proto: https',
    'x-forwarded-host: evil.example',
    'forwarded: for=6.6.6.6;proto=https',
  ]);
});

void test('forwardedHeaders: forwarded sends RFC 7239 Forwarded only', async () => {
  assert.deepEqual(await forwardedHeaders({ forwardedHeaders: 'forwarded' }, '/rfc'), [
    'forwarded: for=127.0.0.1;proto=http;host=app.example',
  ]);
});

void test('forwardedHeaders: both, from a trusted proxy, extends its Forwarded', async () => {
  assert.deepEqual(
    await forwardedHeaders({ forwardedHeaders: 'both', trustedProxies: ['127.0.0.1'] }, '/both'),
    [
      'x-forwarded-for: 6.6.6.6, 7.7.7.7, 127.0.0.1',
      'x-forwarded-proto: https',
      'x-forwarded-host: evil.example',
      'forwarded: for=6.6.6.6;proto=https, for=127.0.0.1;proto=http;host=app.example',
    ],
  );
});
