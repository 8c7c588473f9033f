/**
 * Settings a reload cannot apply to a running process: the number of workers, the admin
 * listener, the log format, the kind of a listener kept at its address (mode, tls, http2
 * or redirectToHttps changed: it keeps serving as before), and a plain HTTP listener's
 * fastPath and acceptSockets. A reload keeps the running ones and says so (log line, and
 * `restartNeeded` in the answer of `POST /api/reload`).
 *
 * Listener kinds are compared between the two configurations, so a kind change reported once
 * and not restarted is not reported again by a later reload.
 */
import type { Config } from '../config/schema.js';
import { formatAddress } from '../config/units.js';
import { configuredKind } from '../server/create-listener.js';

export function restartOnlyChanges(current: Config, next: Config): string[] {
  const changed: string[] = [];
  if (current.workers !== next.workers) changed.push('workers');
  if (JSON.stringify(current.admin) !== JSON.stringify(next.admin)) changed.push('admin');
  if (current.log.format !== next.log.format) changed.push('log.format');
  const running = new Map(
    current.listeners.map((l) => [formatAddress(l.address.host, l.address.port), l]),
  );
  for (const [index, listener] of next.listeners.entries()) {
    const address = formatAddress(listener.address.host, listener.address.port);
    const before = running.get(address);
    if (before === undefined) continue;
    const was = configuredKind(before);
    const now = configuredKind(listener);
    if (was !== now) {
      changed.push(`listeners[${index}] (${address}: ${was} → ${now})`);
      continue;
    }
    for (const key of ['fastPath', 'acceptSockets'] as const) {
      if (before[key] !== listener[key]) {
        changed.push(`listeners[${index}].${key} (${address}: ${before[key]} → ${listener[key]})`);
      }
    }
  }
  return changed;
}
