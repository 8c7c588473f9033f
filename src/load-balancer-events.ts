/**
 * Events of a running load balancer, for programs that embed it: a backend went up or down
 * (health checks: the pool's `backend-health`), or joined or left a pool at runtime (DNS
 * discovery, admin API, reload). Listeners run off the request path; an exception thrown by
 * one is not caught (as with any EventEmitter).
 */
import type { EventEmitter } from 'node:events';
import type { Backend } from './upstream/backend.js';
import type { UpstreamPool } from './upstream/pool.js';

/** What an event says about one backend. */
export interface BackendEvent {
  readonly pool: string;
  /** The backend's id (its `name`, host:port, or `<name>@<address>:<port>` when discovered). */
  readonly backend: string;
  readonly url: string;
  /** Why, e.g. `check: ECONNREFUSED (3 in a row)`; `added`/`removed` for membership changes. */
  readonly reason: string;
}

export interface LoadBalancerEvents {
  'backend-up': [event: BackendEvent];
  'backend-down': [event: BackendEvent];
  'backend-added': [event: BackendEvent];
  'backend-removed': [event: BackendEvent];
}

function backendEvent(pool: UpstreamPool, backend: Backend, reason: string): BackendEvent {
  return { pool: pool.name, backend: backend.id, url: backend.url, reason };
}

/** Re-emits a pool's backend events on the load balancer. */
export function forwardPoolEvents(
  pool: UpstreamPool,
  target: EventEmitter<LoadBalancerEvents>,
): void {
  pool.on('backend-health', (change) => {
    const event = backendEvent(pool, change.backend, change.reason);
    target.emit(change.healthy ? 'backend-up' : 'backend-down', event);
  });
  pool.on('backend-added', (backend) => {
    target.emit('backend-added', backendEvent(pool, backend, 'added'));
  });
  pool.on('backend-removed', (backend) => {
    target.emit('backend-removed', backendEvent(pool, backend, 'removed'));
  });
}
