/**
 * Long-lived connections that bypass the backend's undici pool, so closing that pool does not
 * end them: upgraded connections (WebSocket and other `Upgrade`s, src/proxy/upgrade.ts) and
 * TCP-mode connections (src/proxy/tcp-proxy.ts). When a backend leaves its pool (reload, admin
 * API, DNS discovery), they get `drainTimeout` to end by themselves, then are cut
 * (closeUpgraded, closeTcpSessions). Connections to backends that stay are never touched by a
 * reload: kept backends keep their objects, and both registries are keyed by them.
 */
import type { Logger } from '../logging/logger.js';
import { closeTcpSessions } from '../proxy/tcp-proxy.js';
import { closeUpgraded } from '../proxy/upgrade.js';
import type { UpstreamPool } from '../upstream/pool.js';

export function drainUpgradedOnRemoval(
  pool: UpstreamPool,
  drainMs: () => number,
  logger: Logger,
): void {
  pool.on('backend-removed', (backend) => {
    const timeoutMs = drainMs();
    Promise.all([closeUpgraded(backend, timeoutMs), closeTcpSessions(backend, timeoutMs)]).then(
      ([upgraded, tcp]) => {
        if (upgraded + tcp > 0) {
          logger.warn(
            { pool: pool.name, backend: backend.id, connections: upgraded + tcp, upgraded, tcp },
            'connections to a removed backend cut after the drain timeout',
          );
        }
      },
      (error: unknown) => {
        logger.error(
          { pool: pool.name, backend: backend.id, err: error },
          'error while draining connections to a removed backend',
        );
      },
    );
  });
}
