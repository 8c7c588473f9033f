/**
 * Strategy names → definitions. A definition carries the options schema (validated with the
 * rest of the configuration, so errors name the key path) and the factory.
 *
 * A strategy name that looks like a path (`./x.ts`, `/abs/x.js`) is a custom strategy module,
 * loaded by ./custom.ts.
 */
import { z } from 'zod';
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

export const builtinStrategies: ReadonlyMap<string, StrategyDefinition> = new Map(
  [
    {
      name: 'round-robin',
      summary: 'smooth weighted round robin (nginx): weights 5,1,1 give a a b a c a a',
      options: noOptions,
      create: () => createRoundRobin(),
    },
  ].map((d) => [d.name, d as StrategyDefinition]),
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
