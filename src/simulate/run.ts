/**
 * Runs a scenario: for each strategy in turn, fresh simulated backends (same seed, so the
 * same latency streams), the real anubis load balancer in this process (one worker, port 0)
 * with that strategy, and the same generated load. Everything a run starts is closed before
 * the next one begins, whatever happens.
 */
import { validateConfig } from '../config/load.js';
import type { ConfigInput } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import { createLoadBalancer } from '../load-balancer.js';
import { createStrategy } from '../strategies/create.js';
import { isCustomStrategyPath } from '../strategies/registry.js';
import { startSimulatedBackends } from './backends.js';
import { generateLoad, type LoadProgress } from './load-generator.js';
import type { Scenario, StrategyChoice } from './scenario.js';
import { summarize, type RunSummary } from './stats.js';

const POOL = 'simulated';
/** Pool keys the simulator sets itself. */
const RESERVED_POOL_KEYS = ['backends', 'strategy', 'exposeBackendHeader'];

export interface SimulationObserver {
  /** A strategy's run starts; `progress.completed` counts its finished requests live. */
  onRunStart?(strategy: string, index: number, count: number, progress: LoadProgress): void;
  onRunEnd?(summary: RunSummary, index: number, count: number): void;
}

export interface SimulationResult {
  readonly scenario: Scenario;
  readonly runs: readonly RunSummary[];
}

export interface SimulationOptions {
  /** Names the scenario in error messages (default "scenario"). */
  readonly source?: string;
  /** Directory against which custom strategy paths resolve (default: cwd). */
  readonly baseDir?: string;
  readonly observer?: SimulationObserver;
}

/** The anubis configuration of one run. */
export function runConfig(
  scenario: Scenario,
  strategy: StrategyChoice,
  urls: readonly string[],
): ConfigInput {
  return {
    workers: 1,
    log: { level: 'silent' },
    // The load generator sends each simulated client's address in X-Forwarded-For.
    trustedProxies: ['127.0.0.1'],
    listeners: [{ address: '127.0.0.1:0', pool: POOL }],
    pools: {
      [POOL]: {
        ...scenario.pool,
        strategy: { ...strategy.options, name: strategy.name },
        backends: scenario.backends.map((b, i) => ({
          url: urls[i],
          name: b.id,
          weight: b.weight,
        })),
        exposeBackendHeader: true,
      },
    },
  } as ConfigInput;
}

/**
 * Checks the scenario's extra `pool` keys and strategy options against anubis' own schema
 * before anything starts; errors name the scenario's key paths (`pool.timeouts.headers`).
 */
export function checkRunConfig(scenario: Scenario, source: string): void {
  const reserved = RESERVED_POOL_KEYS.filter((key) => key in scenario.pool);
  if (reserved.length > 0) {
    throw new ConfigError(
      source,
      reserved.map((key) => ({
        path: `pool.${key}`,
        message: 'set by the simulator (use backends and strategies instead)',
      })),
    );
  }
  const placeholders = scenario.backends.map((_, i) => `http://127.0.0.1:${i + 1}`);
  for (const strategy of scenario.strategies) {
    try {
      validateConfig(runConfig(scenario, strategy, placeholders), source);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      const prefix = `pools.${POOL}.`;
      throw new ConfigError(
        source,
        error.issues.map((issue) => ({
          path: issue.path.startsWith(`${prefix}strategy`)
            ? `strategies (${strategy.name})${issue.path.slice(prefix.length + 'strategy'.length)}`
            : issue.path.startsWith(prefix)
              ? `pool.${issue.path.slice(prefix.length)}`
              : issue.path,
          message: issue.message,
        })),
      );
    }
  }
}

export async function runSimulation(
  scenario: Scenario,
  options: SimulationOptions = {},
): Promise<SimulationResult> {
  const source = options.source ?? 'scenario';
  checkRunConfig(scenario, source);
  // Custom strategy modules load now, so a bad path fails before any run rather than after.
  for (const strategy of scenario.strategies) {
    if (isCustomStrategyPath(strategy.name)) {
      await createStrategy(
        { name: strategy.name, options: strategy.options },
        options.baseDir ?? process.cwd(),
      );
    }
  }
  const runs: RunSummary[] = [];
  const count = scenario.strategies.length;
  for (const [index, strategy] of scenario.strategies.entries()) {
    const progress: LoadProgress = { completed: 0, total: scenario.requests };
    options.observer?.onRunStart?.(strategy.label, index, count, progress);
    const summary = await runOne(scenario, strategy, progress, source, options.baseDir);
    runs.push(summary);
    options.observer?.onRunEnd?.(summary, index, count);
  }
  return { scenario, runs };
}

async function runOne(
  scenario: Scenario,
  strategy: StrategyChoice,
  progress: LoadProgress,
  source: string,
  baseDir: string | undefined,
): Promise<RunSummary> {
  const backends = await startSimulatedBackends(scenario.backends, scenario.seed);
  try {
    const config = runConfig(
      scenario,
      strategy,
      backends.map((b) => b.url),
    );
    const balancer = await createLoadBalancer(config, {
      source,
      ...(baseDir === undefined ? {} : { baseDir }),
    });
    try {
      const port = balancer.addresses()[0]?.port as number;
      for (const backend of backends) backend.begin();
      const result = await generateLoad(
        {
          url: `http://127.0.0.1:${port}`,
          requests: scenario.requests,
          concurrency: scenario.concurrency,
          timeLimitMs: scenario.timeLimitMs,
          seed: scenario.seed,
          backendIds: scenario.backends.map((b) => b.id),
        },
        progress,
      );
      return summarize(strategy.label, result, scenario.backends.length);
    } finally {
      await balancer.close(1_000);
    }
  } finally {
    await Promise.all(backends.map((b) => b.close()));
  }
}
