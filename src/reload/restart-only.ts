/**
 * Settings a reload cannot apply to a running process: the number of workers, the admin
 * listener and the log format. A reload keeps the running ones and says so (log line, and
 * `restartNeeded` in the answer of `POST /api/reload`).
 */
import type { Config } from '../config/schema.js';

export function restartOnlyChanges(current: Config, next: Config): string[] {
  const changed: string[] = [];
  if (current.workers !== next.workers) changed.push('workers');
  if (JSON.stringify(current.admin) !== JSON.stringify(next.admin)) changed.push('admin');
  if (current.log.format !== next.log.format) changed.push('log.format');
  return changed;
}
