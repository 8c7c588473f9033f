/**
 * Configuration of health and failover, per pool: `health` (active checks, passive outlier
 * ejection, panic threshold, slow start), `retry` (which failures are retried, attempts,
 * deadline, replay buffer, retry budget) and `concurrency` (max concurrent requests per backend and
 * the queue in front of a full pool). docs/health.md explains every behaviour; each key is in
 * docs/configuration.md.
 *
 * Defaults follow nginx: passive health and retries of idempotent requests are on without
 * configuration, active checks only when `health.active` is given.
 */
import { z } from 'zod';
import { byteSize, duration } from './value-schemas.js';

/** `200-399`, `200`, or a number: the statuses an HTTP check accepts. */
const statusRange = z.union([z.number().int(), z.string()]).transform((value, ctx) => {
  const text = String(value).trim();
  const match = /^(\d{3})(?:\s*-\s*(\d{3}))?$/.exec(text);
  const low = match === null ? NaN : Number(match[1]);
  const high = match === null ? NaN : Number(match[2] ?? match[1]);
  if (!(low >= 100 && high <= 599 && low <= high)) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a status or range such as 200 or 200-399 (100-599), found ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return { low, high };
});

export const activeCheckSchema = z.strictObject({
  /** `http`: a request must get an expected status (and body); `tcp`: a connect must succeed. */
  type: z.enum(['http', 'tcp']).default('http'),
  /** Path (and query) of the HTTP check. */
  path: z.string().startsWith('/').default('/'),
  /** Statuses that count as healthy. */
  expectStatus: statusRange.default({ low: 200, high: 399 }),
  /** If set, the response body (its first 64 KiB) must contain this text. */
  bodyContains: z.string().min(1).optional(),
  /** Host header of the check (default: the backend's host:port). */
  host: z.string().min(1).optional(),
  /** Time between two checks of one backend. */
  interval: duration.default(5_000),
  /** A check that takes longer fails. */
  timeout: duration.default(2_000),
  /** Consecutive successes that bring a down backend up. */
  rise: z.number().int().min(1).max(100).default(2),
  /** Consecutive failures that take an up backend down. */
  fall: z.number().int().min(1).max(100).default(3),
  /** Random spread of each interval, as a share of it (0.1 = ±10 %), so checks do not align. */
  jitter: z.number().min(0).max(0.5).default(0.1),
});

export const passiveHealthSchema = z.strictObject({
  /** Passive health (outlier ejection) from real traffic; on by default. */
  enabled: z.boolean().default(true),
  /** Consecutive failed requests that eject a backend. */
  failures: z.number().int().min(1).max(1_000).default(3),
  /** The failures must all fall within this window (counted from the first of the run). */
  window: duration.default(10_000),
  /** How long an ejected backend stays out before it is tried again (half-open). */
  cooldown: duration.default(10_000),
  /** Which outcomes count as a failure. */
  on: z
    .array(z.enum(['connect', 'reset', 'timeout', 'protocol', '5xx']))
    .min(1)
    .default(['connect', 'reset', 'timeout']),
});

export const healthSchema = z.strictObject({
  /** Active checks (off unless given). */
  active: activeCheckSchema.optional(),
  passive: passiveHealthSchema.prefault({}),
  /**
   * Panic: when some but fewer than this share (0–1; 0 disables) of the primary backends are
   * healthy, requests are balanced over every primary that can still be reached.
   */
  panicThreshold: z.number().min(0).max(1).default(0.5),
  /** A backend that comes (back) up ramps its effective weight from 10 % to 100 % over this; 0 = off. */
  slowStart: duration.default(0),
});

export const retrySchema = z.strictObject({
  /** Attempts per request, the first included (1 disables retries). */
  attempts: z.number().int().min(1).max(10).default(3),
  /** No new attempt starts later than this after the request arrived; 0 = no limit. */
  deadline: duration.default(10_000),
  /** Failures that are retried (as nginx proxy_next_upstream): see docs/health.md. */
  on: z
    .array(z.enum(['connect', 'reset', 'timeout', '502', '503', '504']))
    .default(['connect', 'reset']),
  /** Methods retried even after the request reached a backend (idempotent ones). */
  methods: z
    .array(z.string().regex(/^[A-Z]+$/))
    .default(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']),
  /** Also retry any method that carries an `Idempotency-Key` header. */
  idempotencyKey: z.boolean().default(false),
  /** Request body kept in memory to resend it; a longer body makes the request not retryable. */
  replayLimit: byteSize.default(64 * 1024),
  /** Retry budget: retries within `window` are limited to `ratio` × requests + `min`. */
  budget: z
    .strictObject({
      ratio: z.number().min(0).max(10).default(0.2),
      min: z.number().int().min(0).default(10),
      window: duration.default(10_000),
    })
    .prefault({}),
});

export const concurrencySchema = z.strictObject({
  /** Concurrent requests per backend; 0 = unlimited. */
  maxPerBackend: z.number().int().min(0).default(0),
  /** Requests that may wait when every backend is full (beyond: 503 at once). */
  queueLength: z.number().int().min(0).default(100),
  /** Longest wait in the queue before a 503. */
  queueTimeout: duration.default(5_000),
});

export type HealthConfig = z.output<typeof healthSchema>;
export type ActiveCheckConfig = z.output<typeof activeCheckSchema>;
export type PassiveHealthConfig = z.output<typeof passiveHealthSchema>;
export type RetryConfig = z.output<typeof retrySchema>;
export type ConcurrencyConfig = z.output<typeof concurrencySchema>;
