// @ts-check
/* global fetch */
/**
 * Embedding anubis in a Node program (docs/api.md). Run it from a project that installed
 * anubis (`npm install anubis`): `node embed.mjs`.
 *
 * Two backends run in this process, "stable" and "canary". A custom strategy, passed as a
 * factory in the configuration object, sends requests carrying `x-canary: 1` to the canary
 * and everything else to the stable one. Active health checks announce backends going down
 * and up as events. Then everything is closed and the program exits by itself.
 */
import { createServer } from 'node:http';
import { createLoadBalancer, isExcluded } from 'anubis';

/** A hello-world backend on a free loopback port. */
async function startBackend(/** @type {string} */ name) {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end(`Hello from ${name}\n`));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const address = /** @type {import('node:net').AddressInfo} */ (server.address());
  return { server, name, url: `http://127.0.0.1:${address.port}` };
}

/**
 * The canary strategy: a factory, called once per pool with the options written next to it
 * (`header`). setBackends() runs off the request path when the eligible set changes; pick()
 * runs per request, synchronously, and must skip backends already tried (retries).
 *
 * @param {Record<string, unknown>} options
 * @returns {import('anubis').Strategy}
 */
function canary(options) {
  const header = String(options.header ?? 'x-canary');
  /** @type {readonly import('anubis').BackendView[]} */
  let backends = [];
  return {
    name: 'canary',
    setBackends(list) {
      backends = list;
    },
    pick(context) {
      const wantCanary = context.headers[header] === '1';
      const usable = backends.filter((b) => !isExcluded(context, b));
      // Prefer the wanted kind, fall back to whatever is up.
      return usable.find((b) => (b.id === 'canary') === wantCanary) ?? usable[0];
    },
  };
}

const stable = await startBackend('stable');
const canaryBackend = await startBackend('canary');

const lb = await createLoadBalancer({
  listeners: [{ address: '127.0.0.1:0', pool: 'web' }],
  pools: {
    web: {
      strategy: { name: 'canary', factory: canary, header: 'x-canary' },
      backends: [
        { url: stable.url, name: 'stable' },
        { url: canaryBackend.url, name: 'canary' },
      ],
      health: { active: { path: '/', interval: '200ms', rise: 1, fall: 1 } },
    },
  },
});
lb.on('backend-down', (e) => console.log(`event: backend-down ${e.pool}/${e.backend}`));
lb.on('backend-up', (e) => console.log(`event: backend-up ${e.pool}/${e.backend}`));

const address = lb.addresses()[0];
const url = `http://127.0.0.1:${address?.port}/`;
console.log(`anubis listening on ${url}`);

async function get(/** @type {Record<string, string>} */ headers = {}) {
  const response = await fetch(url, { headers });
  return `${response.status} ${(await response.text()).trim()}`;
}

console.log(`plain request:  ${await get()}`);
console.log(`canary request: ${await get({ 'x-canary': '1' })}`);

// The canary goes away: the health check takes it out, and canary requests fall back.
const down = new Promise((resolve) => lb.once('backend-down', resolve));
await new Promise((resolve) => {
  canaryBackend.server.close(resolve);
  canaryBackend.server.closeAllConnections();
});
await down;
console.log(`canary request after the canary died: ${await get({ 'x-canary': '1' })}`);

await lb.close();
await new Promise((resolve) => {
  stable.server.close(resolve);
  stable.server.closeAllConnections();
});
console.log('closed');
