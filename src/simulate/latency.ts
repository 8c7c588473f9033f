/**
 * Latency distributions of simulated backends, their compact text form, and sampling.
 *
 *   20ms            fixed: every answer after 20 ms
 *   200ms±50ms      normal: mean 200 ms, standard deviation 50 ms (also written 200ms+-50ms);
 *                   samples below 0 are clamped to 0
 *   50ms~400ms      log-normal: median 50 ms, 99th percentile 400 ms. With z₉₉ = 2.3263 (the
 *                   standard normal's 99th percentile): μ = ln(median), σ = ln(p99/median)/z₉₉,
 *                   sample = e^(μ + σ·z). A long right tail, as real services have.
 *
 * Every sample is capped at MAX_LATENCY_MS so that a simulation always ends.
 */
import { parseDuration } from '../config/units.js';
import { standardNormal, type Random } from './prng.js';

/** Longest answer delay a simulated backend will ever wait (ms). */
export const MAX_LATENCY_MS = 60_000;

/** The standard normal distribution's 99th percentile. */
const Z_99 = 2.3263478740408408;

export type Latency =
  | { readonly kind: 'fixed'; readonly ms: number }
  | { readonly kind: 'normal'; readonly meanMs: number; readonly sdMs: number }
  | { readonly kind: 'lognormal'; readonly medianMs: number; readonly p99Ms: number };

/** One delay (ms) drawn from `latency`. */
export function sampleLatency(latency: Latency, random: Random): number {
  let ms: number;
  switch (latency.kind) {
    case 'fixed':
      ms = latency.ms;
      break;
    case 'normal':
      ms = latency.meanMs + latency.sdMs * standardNormal(random);
      break;
    case 'lognormal': {
      const sigma = Math.log(latency.p99Ms / latency.medianMs) / Z_99;
      ms = latency.medianMs * Math.exp(sigma * standardNormal(random));
      break;
    }
  }
  return Math.min(MAX_LATENCY_MS, Math.max(0, ms));
}

/** `20ms`, `1.5s`: a duration as short as it can be written. */
export function formatMs(ms: number): string {
  if (ms >= 1000 && ms % 100 === 0) return `${ms / 1000}s`;
  return `${Number.isInteger(ms) ? ms : ms.toFixed(1)}ms`;
}

/** The compact text form of a latency (`20ms`, `200ms±50ms`, `50ms~400ms`). */
export function describeLatency(latency: Latency): string {
  switch (latency.kind) {
    case 'fixed':
      return formatMs(latency.ms);
    case 'normal':
      return `${formatMs(latency.meanMs)}±${formatMs(latency.sdMs)}`;
    case 'lognormal':
      return `${formatMs(latency.medianMs)}~${formatMs(latency.p99Ms)}`;
  }
}

const LATENCY_FORMS =
  'a latency such as 20ms (fixed), 200ms±50ms (normal: mean±sd) or 50ms~400ms (log-normal: median~p99)';

/** Parses the compact text form; returns a message on error. */
export function parseLatency(text: string): Latency | string {
  const value = text.trim();
  const found = `expected ${LATENCY_FORMS}, found ${JSON.stringify(text)}`;
  const normal = /^([^±~+]+)(?:±|\+-)([^±~+]+)$/.exec(value);
  if (normal !== null) {
    const meanMs = parseDuration(normal[1] as string);
    const sdMs = parseDuration(normal[2] as string);
    if (meanMs === undefined || sdMs === undefined) return found;
    return checkLatency({ kind: 'normal', meanMs, sdMs });
  }
  const lognormal = /^([^±~+]+)~([^±~+]+)$/.exec(value);
  if (lognormal !== null) {
    const medianMs = parseDuration(lognormal[1] as string);
    const p99Ms = parseDuration(lognormal[2] as string);
    if (medianMs === undefined || p99Ms === undefined) return found;
    return checkLatency({ kind: 'lognormal', medianMs, p99Ms });
  }
  const ms = parseDuration(value);
  if (ms === undefined) return found;
  return checkLatency({ kind: 'fixed', ms });
}

/** Range checks shared by the text and the YAML object forms; returns a message on error. */
export function checkLatency(latency: Latency): Latency | string {
  const limit = formatMs(MAX_LATENCY_MS);
  switch (latency.kind) {
    case 'fixed':
      if (latency.ms > MAX_LATENCY_MS)
        return `expected a latency <= ${limit}, found ${formatMs(latency.ms)}`;
      return latency;
    case 'normal':
      if (latency.meanMs > MAX_LATENCY_MS)
        return `expected a mean <= ${limit}, found ${formatMs(latency.meanMs)}`;
      if (latency.sdMs > MAX_LATENCY_MS)
        return `expected a standard deviation <= ${limit}, found ${formatMs(latency.sdMs)}`;
      return latency;
    case 'lognormal':
      if (latency.medianMs <= 0)
        return `expected a log-normal median > 0, found ${formatMs(latency.medianMs)}`;
      if (latency.p99Ms < latency.medianMs)
        return `expected a log-normal p99 >= its median (${formatMs(latency.medianMs)}), found ${formatMs(latency.p99Ms)}`;
      if (latency.medianMs > MAX_LATENCY_MS)
        return `expected a median <= ${limit}, found ${formatMs(latency.medianMs)}`;
      return latency;
  }
}
