/**
 * Turns a pool's `strategy` configuration into a Strategy instance: a built-in from the
 * registry, or a custom module (`./my-strategy.ts` or `.js`) loaded from disk. TypeScript
 * modules load through tsx, so Node 20 runs them without a build step.
 *
 * A custom module exports a factory (default export, or a named `createStrategy`) that takes
 * the options written next to `name` in the config and returns a Strategy.
 */
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { StrategyConfig } from '../config/schema.js';
import { StrategyLoadError } from '../errors.js';
import { builtinStrategies, isCustomStrategyPath } from './registry.js';
import type { Strategy, StrategyFactory } from './types.js';

/** Imports a custom strategy module and returns its factory. */
export async function loadStrategyFactory(path: string, baseDir: string): Promise<StrategyFactory> {
  const file = isAbsolute(path) ? path : resolve(baseDir, path);
  let module: Record<string, unknown>;
  try {
    if (/\.[cm]?ts$/.test(file)) {
      const { tsImport } = await import('tsx/esm/api');
      module = (await tsImport(pathToFileURL(file).href, import.meta.url)) as Record<
        string,
        unknown
      >;
    } else {
      module = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
    }
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    throw new StrategyLoadError(`cannot load strategy module ${file}: ${detail}`, error);
  }
  const factory = findFactory(module);
  if (factory === undefined) {
    throw new StrategyLoadError(
      `strategy module ${file} must export a factory function (default export or createStrategy)`,
    );
  }
  return factory;
}

/**
 * The factory a module exports: `createStrategy` or the default export. A .ts file outside an
 * ESM package (no `"type": "module"` nearby) is compiled as CommonJS, and its exports then
 * arrive one level down, under `default`.
 */
function findFactory(module: Record<string, unknown>): StrategyFactory | undefined {
  const nested =
    typeof module.default === 'object' && module.default !== null
      ? (module.default as Record<string, unknown>)
      : {};
  for (const candidate of [
    module.createStrategy,
    module.default,
    nested.createStrategy,
    nested.default,
  ]) {
    if (typeof candidate === 'function') return candidate as StrategyFactory;
  }
  return undefined;
}

/** Checks that a value returned by a factory has the Strategy shape. */
export function assertStrategy(value: unknown, origin: string): Strategy {
  const candidate = value as Partial<Strategy> | null;
  if (
    candidate === null ||
    typeof candidate !== 'object' ||
    typeof candidate.pick !== 'function' ||
    typeof candidate.setBackends !== 'function'
  ) {
    throw new StrategyLoadError(
      `${origin} did not return a strategy (an object with pick() and setBackends())`,
    );
  }
  if (typeof candidate.name !== 'string') {
    return Object.assign(candidate, { name: origin }) as Strategy;
  }
  return candidate as Strategy;
}

/** Builds the strategy for a pool. `baseDir` resolves relative module paths. */
export async function createStrategy(config: StrategyConfig, baseDir: string): Promise<Strategy> {
  if (config.provided !== undefined) return createProvidedStrategy(config);
  if (isCustomStrategyPath(config.name)) {
    const factory = await loadStrategyFactory(config.name, baseDir);
    let strategy: unknown;
    try {
      strategy = factory(config.options);
    } catch (error) {
      throw new StrategyLoadError(
        `strategy factory in ${config.name} threw: ${String(error)}`,
        error,
      );
    }
    return assertStrategy(strategy, config.name);
  }
  const definition = builtinStrategies.get(config.name);
  if (definition === undefined) throw new StrategyLoadError(`unknown strategy ${config.name}`);
  return definition.create(config.options);
}

/** A Strategy object, or a factory, given in a configuration object (library API). */
function createProvidedStrategy(config: StrategyConfig): Strategy {
  const provided = config.provided;
  if (typeof provided !== 'function') return assertStrategy(provided, config.name);
  let strategy: unknown;
  try {
    strategy = provided(config.options);
  } catch (error) {
    throw new StrategyLoadError(`strategy factory ${config.name} threw: ${String(error)}`, error);
  }
  return assertStrategy(strategy, `strategy factory ${config.name}`);
}
