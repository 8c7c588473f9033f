/**
 * Strategies given as values rather than names: a program embedding anubis passes a Strategy
 * object or a factory function in the configuration object (`strategy: myStrategy`). YAML
 * cannot express a function, so a configuration file never reaches this path.
 */
import type { Strategy, StrategyFactory } from './types.js';

/** A Strategy object (one per pool: it keeps that pool's backends) or a factory. */
export type ProvidedStrategy = Strategy | StrategyFactory;

/** True for a factory function or an object with pick() and setBackends(). */
export function isProvidedStrategy(value: unknown): value is ProvidedStrategy {
  if (typeof value === 'function') return true;
  if (value === null || typeof value !== 'object') return false;
  const candidate = value as Partial<Strategy>;
  return typeof candidate.pick === 'function' && typeof candidate.setBackends === 'function';
}

/** The name shown for a provided strategy: the object's `name`, the function's, or `custom`. */
export function providedName(value: ProvidedStrategy): string {
  if (typeof value === 'function') return value.name === '' ? 'custom' : value.name;
  return typeof value.name === 'string' && value.name !== '' ? value.name : 'custom';
}
