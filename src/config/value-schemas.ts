/**
 * Schemas of the value formats shared by every part of the configuration: durations ("250ms",
 * "5s", "1m" or milliseconds), sizes ("16kb", "1mb" or bytes) and listen addresses. Parsed to
 * milliseconds, bytes and {host, port}.
 */
import { z } from 'zod';
import { parseDuration, parseListenAddress, parseSize } from './units.js';

export const duration = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const ms = parseDuration(value);
  if (ms === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a duration such as 250ms, 5s or 1m (or milliseconds as a number), found ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return ms;
});

/** Default window of `busyPolling: true` (docs/performance.md#busy-polling). */
const BUSY_POLLING_DEFAULT_MS = 100;
const BUSY_POLLING_MAX_MS = 60_000;

/**
 * `busyPolling`: false (off), true (100ms) or how long the event loop keeps polling after the
 * last request (1ms to 1m). Parsed to milliseconds, 0 = off.
 */
export const busyPollingWindow = z
  .union([z.boolean(), z.number(), z.string()])
  .transform((value, ctx) => {
    if (value === false) return 0;
    if (value === true) return BUSY_POLLING_DEFAULT_MS;
    const ms = parseDuration(value);
    if (ms === undefined || ms < 1 || ms > BUSY_POLLING_MAX_MS) {
      ctx.addIssue({
        code: 'custom',
        message: `expected true, false or a duration from 1ms to 1m such as 100ms, found ${JSON.stringify(value)}`,
      });
      return z.NEVER;
    }
    return ms;
  });

export const byteSize = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const bytes = parseSize(value);
  if (bytes === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a size such as 16kb or 1mb (or bytes as a number), found ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return bytes;
});

export const listenAddress = z.string().transform((value, ctx) => {
  const parsed = parseListenAddress(value);
  if (parsed === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `expected host:port such as 127.0.0.1:8080, [::1]:8080 or :8080, found ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return { ...parsed, text: value };
});
