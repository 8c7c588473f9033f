/**
 * One debug log line per pick, naming the chosen backend with the per-backend inputs and
 * scores the strategy decided on (its explain(), taken just before the pick).
 *
 * Zero cost when debug logging is off: the level is checked once, when the pool's strategy is
 * built, and then the strategy is returned unwrapped, so the hot path is unchanged. With debug
 * on, each pick pays for explain() (pools above MAX_EXPLAINED backends log the chosen
 * backend's entry only).
 */
import type { Logger } from '../logging/logger.js';
import type { BackendExplanation, BackendView, PickContext, Strategy } from './types.js';

const MAX_EXPLAINED = 16;

export function withDecisionLog(strategy: Strategy, logger: Logger, pool: string): Strategy {
  if (!logger.isLevelEnabled('debug')) return strategy;
  let size = 0;
  const logged: Strategy = {
    name: strategy.name,
    setBackends(backends: readonly BackendView[]): void {
      size = backends.length;
      strategy.setBackends(backends);
    },
    pick(context: PickContext): BackendView | undefined {
      const scores: readonly BackendExplanation[] | undefined = strategy.explain?.();
      const chosen = strategy.pick(context);
      logger.debug(
        {
          pool,
          strategy: strategy.name,
          backend: chosen?.id,
          client: context.clientAddress,
          excluded: context.excluded?.size ?? 0,
          scores:
            size <= MAX_EXPLAINED
              ? scores
              : scores?.filter((entry) => entry.backend === chosen?.id),
        },
        'strategy pick',
      );
      return chosen;
    },
  };
  if (strategy.explain !== undefined) logged.explain = () => strategy.explain?.() ?? [];
  if (strategy.statsChanged !== undefined) {
    logged.statsChanged = (backend: BackendView) => strategy.statsChanged?.(backend);
  }
  return logged;
}
