/**
 * Long-lived upgraded connections (WebSocket and other `Upgrade`s) bypass the backend's undici
 * pool, so closing that pool does not end them. When a backend leaves its pool (reload, admin
 * API, DNS discovery), its upgraded connections get `drainTimeout` to end by themselves, then
 * are cut (src/proxy/upgrade.ts closeUpgraded). Connections to backends that stay are never
 * touched by a reload: kept backends keep their objects, and the registry is keyed by them.
 */
import type { Logger } from '../logging/logger.js';
import { closeUpgraded } from '../proxy/upgrade.js';
import type { UpstreamPool } from '../upstream/pool.js';

export function drainUpgradedOnRemoval(
  pool: UpstreamPool,
  drainMs: () => number,
  logger: Logger,
): void {
  pool.on('backend-removed', (backend) => {
    closeUpgraded(backend, drainMs()).then(
      (cut) => {
        if (cut > 0) {
          logger.warn(
            { pool: pool.name, backend: backend.id, connections: cut },
            'upgraded connections to a removed backend cut after the drain timeout',
          );
        }
      },
      (error: unknown) => {
        logger.error(
          { pool: pool.name, backend: backend.id, err: error },
          'error while draining upgraded connections',
        );
      },
    );
  });
}
