/**
 * Strategy names → definitions. A definition carries the options schema (validated with the
 * rest of the configuration, so errors name the key path, e.g. pools.web.strategy.choices)
 * and the factory.
 *
 * A strategy name that looks like a path (`./x.ts`, `/abs/x.js`) is a custom strategy module,
 * loaded by ./create.ts.
 */
import { z } from 'zod';
import { createHash, DEFAULT_VNODES, parseHashKey } from './hash.js';
import { createLeastConnections } from './least-connections.js';
import { duration } from '../config/value-schemas.js';
import {
  createLeastTime,
  DEFAULT_DEGRADED_FACTOR,
  DEFAULT_DEGRADED_MIN_GAP_MS,
  DEFAULT_PROBE_INTERVAL_MS,
  type LatencyMeasure,
} from './least-time.js';
import { createRandom } from './random.js';
import { createRandomTwo } from './random-two.js';
import { createRoundRobin } from './round-robin.js';
import type { Strategy } from './types.js';

export interface StrategyDefinition {
  readonly name: string;
  /** One line for `--help` and docs. */
  readonly summary: string;
  /** Validates and fills in the strategy's options (the keys next to `name`). */
  readonly options: z.ZodType<Record<string, unknown>>;
  readonly create: (options: Record<string, unknown>) => Strategy;
}

const noOptions = z.strictObject({});

const leastTimeOptions = z.strictObject({
  choices: z
    .number()
    .int()
    .min(2, 'expected a whole number from 2 to 16 (2 = power of two choices)')
    .max(16, 'expected a whole number from 2 to 16 (2 = power of two choices)')
    .optional(),
  measure: z.enum(['headers', 'last-byte']).default('headers'),
  degradedFactor: z
    .number()
    .refine((f) => f === 0 || (f > 1 && f <= 1_000), {
      message: 'expected 0 (off) or a number above 1 and at most 1000',
    })
    .default(DEFAULT_DEGRADED_FACTOR),
  degradedMinGap: duration.default(DEFAULT_DEGRADED_MIN_GAP_MS),
  probeInterval: duration
    .refine((ms) => ms >= 10, { message: 'expected a duration of at least 10ms' })
    .default(DEFAULT_PROBE_INTERVAL_MS),
});

const hashOptions = z.strictObject({
  key: z
    .string()
    .refine((key) => parseHashKey(key) !== undefined, {
      message: 'expected client-ip, path, header:<name> or cookie:<name>',
    })
    .default('client-ip'),
  vnodes: z.number().int().min(1).max(10_000).default(DEFAULT_VNODES),
});

const definitions: StrategyDefinition[] = [
  {
    name: 'round-robin',
    summary: 'smooth weighted round robin (nginx): weights 5,1,1 give a a b a c a a',
    options: noOptions,
    create: () => createRoundRobin(),
  },
  {
    name: 'least-connections',
    summary: 'fewest in-flight requests per unit of weight; ties rotate by weight',
    options: noOptions,
    create: () => createLeastConnections(),
  },
  {
    name: 'least-time',
    summary:
      'lowest max(decayed latency estimate, in-flight age) × (in-flight + 1) / weight; degraded backends probed only; choices: 2 for P2C',
    options: leastTimeOptions,
    create: (options) =>
      createLeastTime({
        choices: options.choices as number | undefined,
        measure: options.measure as LatencyMeasure | undefined,
        degradedFactor: options.degradedFactor as number | undefined,
        degradedMinGapMs: options.degradedMinGap as number | undefined,
        probeIntervalMs: options.probeInterval as number | undefined,
      }),
  },
  {
    name: 'random',
    summary: 'weighted random',
    options: noOptions,
    create: () => createRandom(),
  },
  {
    name: 'random-two',
    summary: 'two weighted random draws, the one with fewer in-flight requests per weight wins',
    options: noOptions,
    create: () => createRandomTwo(),
  },
  {
    name: 'hash',
    summary: 'consistent hashing (ring) on client IP, path, a header or a cookie',
    options: hashOptions,
    create: (options) => createHash(options),
  },
];

export const builtinStrategies: ReadonlyMap<string, StrategyDefinition> = new Map(
  definitions.map((d) => [d.name, d]),
);

/** True if a strategy name denotes a module path rather than a built-in. */
export function isCustomStrategyPath(name: string): boolean {
  return (
    name.startsWith('./') ||
    name.startsWith('../') ||
    name.startsWith('/') ||
    /\.(?:[cm]?js|[cm]?ts)$/.test(name)
  );
}
