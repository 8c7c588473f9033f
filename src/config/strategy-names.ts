/**
 * Checks each pool's strategy against the strategy registry: a known name with valid options,
 * or a path to a custom strategy module (loaded, and checked, at start-up).
 */
import type { ConfigIssue } from '../errors.js';
import { builtinStrategies, isCustomStrategyPath } from '../strategies/registry.js';
import { formatPath } from './key-path.js';
import type { Config } from './schema.js';

export function validateStrategies(config: Config): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  for (const [poolName, pool] of Object.entries(config.pools)) {
    const { name, options } = pool.strategy;
    const path = ['pools', poolName, 'strategy'];
    // Modules are checked when loaded; provided objects and factories when built.
    if (pool.strategy.provided !== undefined || isCustomStrategyPath(name)) continue;
    const definition = builtinStrategies.get(name);
    if (definition === undefined) {
      issues.push({
        path: formatPath(path),
        message: `expected one of ${[...builtinStrategies.keys()].join(', ')} or a path to a strategy module (./my-strategy.ts), found ${JSON.stringify(name)}`,
      });
      continue;
    }
    const parsed = definition.options.safeParse(options);
    if (parsed.success) {
      pool.strategy.options = parsed.data;
    } else {
      for (const issue of parsed.error.issues) {
        const keys = issue.code === 'unrecognized_keys' ? ` ${issue.keys.join(', ')}` : '';
        issues.push({
          path: formatPath([...path, ...issue.path]),
          message: `${issue.message}${keys} (options of strategy ${name})`,
        });
      }
    }
  }
  return issues;
}
