/**
 * A plain HTTP listener with several listening sockets (acceptSockets, SO_REUSEPORT) end to
 * end: a burst of connections is proxied whichever socket accepts each, and the
 * client-connection gauge and the connection cap count all of them. Where this runtime has no
 * SO_REUSEPORT (Node 20) the listener has one socket and the same behaviour holds. (A reload
 * changing the setting reports a restart: test/unit/admin-stats.test.ts.)
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { test, type TestContext } from 'node:test';
import { request } from 'undici';
import { reusePortUnavailable } from '../../src/server/accept-sockets.js';
import { HttpListener } from '../../src/server/http-listener.js';
import { startAnubis, type RunningAnubis } from '../helpers/anubis.js';
import { openRaw, sendRaw, statusesOf } from '../helpers/raw-http.js';
import { pollUntil } from '../helpers/poll.js';
import { startNamedBackend } from '../helpers/servers.js';

const EXPECTED_SOCKETS = reusePortUnavailable() === undefined ? 8 : 1;

async function rig(
  t: TestContext,
  listener: Record<string, unknown> = {},
  extra: Record<string, unknown> = {},
): Promise<{ lb: RunningAnubis; port: number; admin: string }> {
  const a = await startNamedBackend('a');
  const b = await startNamedBackend('b');
  const lb = await startAnubis(
    [
      { url: a.url, name: 'a' },
      { url: b.url, name: 'b' },
    ],
    {},
    {
      listeners: [{ address: '127.0.0.1:0', pool: 'test', acceptSockets: 8, ...listener }],
      admin: { address: '127.0.0.1:0' },
      ...extra,
    },
  );
  t.after(async () => {
    await lb.close();
    await a.close();
    await b.close();
  });
  const admin = lb.balancer.admin;
  assert.ok(admin);
  return {
    lb,
    port: Number(new URL(lb.url).port),
    admin: `http://127.0.0.1:${admin.boundAddress().port}`,
  };
}

function listenerOf(lb: RunningAnubis): HttpListener {
  const listener = lb.balancer.listeners[0];
  assert.ok(listener instanceof HttpListener);
  return listener;
}

async function clientConnectionsGauge(admin: string): Promise<number> {
  const res = await request(`${admin}/metrics`);
  const text = await res.body.text();
  const match = /anubis_client_connections\{listener="127\.0\.0\.1:0"\} (\d+)/.exec(text);
  assert.ok(match, 'anubis_client_connections in /metrics');
  return Number(match[1]);
}

void test('200 connections opened at once are all proxied, over both backends', async (t) => {
  const { lb, port } = await rig(t);
  assert.equal(listenerOf(lb).acceptSockets, EXPECTED_SOCKETS);
  // One request per new connection (Connection: close), all sent at once.
  const answers = await Promise.all(
    Array.from({ length: 200 }, () =>
      sendRaw(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 10_000),
    ),
  );
  const bodies = answers.map((answer) => {
    assert.deepEqual(answer.statuses, [200], answer.text);
    assert.equal(answer.closed, true);
    return /\r\nx-server: (\w+)\r\n/.exec(answer.text)?.[1];
  });
  assert.equal(bodies.filter((body) => body === 'a').length, 100);
  assert.equal(bodies.filter((body) => body === 'b').length, 100);
});

for (const fastPath of [true, false]) {
  void test(`fastPath ${fastPath}: anubis_client_connections counts held keep-alive connections`, async (t) => {
    const { port, admin } = await rig(t, { fastPath });
    const held: Socket[] = [];
    t.after(() => {
      for (const socket of held) socket.destroy();
    });
    for (let i = 0; i < 12; i++) {
      const socket = await openRaw(port);
      held.push(socket);
      const answered = new Promise<string>((resolve) => {
        socket.once('data', (chunk: Buffer) => resolve(chunk.toString('latin1')));
      });
      socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      assert.deepEqual(statusesOf(await answered), [200]);
    }
    // The admin's own connection is on another listener: exactly the 12 held ones.
    assert.equal(await pollUntil(() => clientConnectionsGauge(admin), 12), 12);
    for (const socket of held.splice(0, 5)) socket.destroy();
    assert.equal(await pollUntil(() => clientConnectionsGauge(admin), 7), 7);
  });
}

void test('limits.maxConnections caps connections over all listening sockets', async (t) => {
  const { lb, port } = await rig(t, {}, { limits: { maxConnections: 3 } });
  const held = await Promise.all(Array.from({ length: 3 }, () => openRaw(port)));
  t.after(() => {
    for (const socket of held) socket.destroy();
  });
  // Accepted (not just queued in the kernel) before the next ones arrive.
  assert.equal(await pollUntil(() => listenerOf(lb).openConnections(), 3), 3);
  // Each of these lands on any socket of the group; all are beyond the cap.
  const refused = await Promise.all(
    Array.from({ length: 6 }, () => sendRaw(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', 5_000)),
  );
  for (const answer of refused) {
    assert.deepEqual(answer.statuses, [503], answer.text);
    assert.equal(answer.closed, true);
  }
  for (const socket of held) socket.destroy();
  assert.equal(await pollUntil(() => listenerOf(lb).openConnections(), 0), 0);
  // node:net lowers the server's count when a socket is destroyed, the cap on its 'close'
  // event one loop iteration later: a connection in between may still be refused.
  const admitted = async (): Promise<number | undefined> =>
    (await sendRaw(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).statuses[0];
  assert.equal(await pollUntil(admitted, 200, 2_000), 200);
});
