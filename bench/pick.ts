/**
 * pick() micro-benchmark: the cost of choosing a backend, per strategy, for pools of 3, 100
 * and 1,000 backends. Shows that selection stays O(1) or O(log n) as pools grow.
 *
 * Each measured pick is followed by what a real request does to the stats a strategy reads:
 * the chosen backend's `active` goes up, and the oldest of 16 in-flight requests ends with a
 * latency sample. Strategies that keep a heap (least-connections, least-time) pay for their
 * order updates there, so the figure is the whole per-request cost of the strategy, not
 * pick() alone. Backends are light stand-ins for src/upstream/backend.ts with the same stats
 * bookkeeping (BackendStats) and no sockets, so the numbers isolate the strategy.
 *
 *   node --import tsx bench/pick.ts                  all strategies, 3 / 100 / 1,000 backends
 *   node --import tsx bench/pick.ts --duration 200   CPU ms measured per case (default 300)
 *
 * bench/run.ts (`npm run bench`) calls runPickBenchmark() and folds the rows into its report.
 */
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { builtinStrategies } from '../src/strategies/registry.js';
import type { BackendView, PickContext, Strategy } from '../src/strategies/types.js';
import { BackendStats } from '../src/upstream/backend-stats.js';

export interface PickBenchmarkOptions {
  /** Pool sizes (default 3, 100, 1,000). */
  readonly sizes?: readonly number[];
  /**
   * Strategy configurations (default: every built-in, least-time with choices: 2, and an O(n)
   * scan least-connections as a reference).
   */
  readonly strategies?: readonly StrategyCase[];
  /** Measured CPU time per case in ms (default 300), after a warm-up. */
  readonly durationMs?: number;
}

export interface StrategyCase {
  /** Label in the report, e.g. `least-time choices=2`. */
  readonly label: string;
  readonly name: string;
  readonly options?: Record<string, unknown>;
}

export interface PickBenchmarkRow {
  readonly strategy: string;
  readonly backends: number;
  readonly nsPerPick: number;
  readonly picksPerSec: number;
}

/** Label of the reference case (see ScanLeastConnections). */
export const SCAN_REFERENCE = 'reference: O(n) scan';

export const DEFAULT_SIZES: readonly number[] = [3, 100, 1_000];

export const DEFAULT_CASES: readonly StrategyCase[] = [
  { label: 'round-robin', name: 'round-robin' },
  { label: 'least-connections', name: 'least-connections' },
  { label: 'least-time', name: 'least-time' },
  { label: 'least-time choices=2', name: 'least-time', options: { choices: 2 } },
  { label: 'random', name: 'random' },
  { label: 'random-two', name: 'random-two' },
  { label: 'hash', name: 'hash' },
  { label: SCAN_REFERENCE, name: SCAN_REFERENCE },
];

/**
 * A backend's stats as the proxy writes them (BackendStats), without the connection pool. An
 * answer is one time-to-headers sample and the end of the request, told to the strategy once.
 */
class BenchBackend extends BackendStats implements BackendView {
  readonly id: string;
  readonly url: string;
  readonly weight: number;
  readonly effectiveWeight: number;
  listener: ((backend: BackendView) => void) | undefined;

  constructor(index: number) {
    super();
    this.id = `10.0.${index >> 8}.${index & 255}:8080`;
    this.url = `http://${this.id}`;
    this.weight = 1 + (index % 3);
    this.effectiveWeight = this.weight;
  }

  /** A request starts at bench step `now`. */
  started(now: number): void {
    this.countStart(now);
    this.listener?.(this);
  }

  /** The request answered after `ms` and ended, at bench step `now`. */
  ended(ms: number, now: number): void {
    this.countHeaders(ms, now);
    this.countEnd(false, now);
    this.listener?.(this);
  }
}

/**
 * Reference, not shipped: least-connections as a plain scan of every backend per pick (how
 * nginx's least_conn works), to show what the heap in src/strategies/ordered.ts saves.
 */
class ScanLeastConnections implements Strategy {
  readonly name = 'least-connections (scan)';
  private backends: readonly BackendView[] = [];
  private start = 0;

  setBackends(backends: readonly BackendView[]): void {
    this.backends = backends;
  }

  pick(): BackendView | undefined {
    const n = this.backends.length;
    let best: BackendView | undefined;
    this.start = this.start + 1 >= n ? 0 : this.start + 1;
    for (let k = 0; k < n; k++) {
      const b = this.backends[
        this.start + k < n ? this.start + k : this.start + k - n
      ] as BackendView;
      if (best === undefined || b.active * best.effectiveWeight < best.active * b.effectiveWeight) {
        best = b;
      }
    }
    return best;
  }
}

const IN_FLIGHT = 16;
const BATCH = 10_000;

function createCase(spec: StrategyCase): Strategy {
  if (spec.name === SCAN_REFERENCE) return new ScanLeastConnections();
  const definition = builtinStrategies.get(spec.name);
  if (definition === undefined) throw new Error(`unknown strategy ${spec.name}`);
  const options = definition.options.parse(spec.options ?? {});
  return definition.create(options);
}

/** Runs `picks` request cycles; returns nothing (the work is the point). */
function cycle(
  strategy: Strategy,
  contexts: readonly PickContext[],
  inFlight: (BenchBackend | undefined)[],
  state: { step: number },
  picks: number,
): void {
  for (let i = 0; i < picks; i++) {
    const step = state.step++;
    const backend = strategy.pick(contexts[step & 255] as PickContext) as BenchBackend;
    backend.started(step);
    const slot = step % IN_FLIGHT;
    const oldest = inFlight[slot];
    // Latency varies by backend so least-time's order really moves.
    if (oldest !== undefined) oldest.ended(5 + (step % 7) + (oldest.weight === 1 ? 10 : 0), step);
    inFlight[slot] = backend;
  }
}

function measure(spec: StrategyCase, size: number, durationMs: number): PickBenchmarkRow {
  const strategy = createCase(spec);
  const backends = Array.from({ length: size }, (_, i) => new BenchBackend(i));
  // Timestamps are bench steps: a strategy with a clock (least-time) reads the same one.
  const state = { step: 0 };
  if ('now' in strategy && typeof strategy.now === 'function') {
    (strategy as { now: () => number }).now = () => state.step;
  }
  strategy.setBackends(backends);
  const listener =
    strategy.statsChanged === undefined
      ? undefined
      : (b: BackendView): void => strategy.statsChanged?.(b);
  for (const backend of backends) backend.listener = listener;
  const contexts: PickContext[] = Array.from({ length: 256 }, (_, i) => ({
    clientAddress: `192.168.${i >> 4}.${i & 15}`,
    method: 'GET',
    url: `/items/${i}`,
    headers: {},
    excluded: undefined,
  }));
  const inFlight: (BenchBackend | undefined)[] = new Array<BenchBackend | undefined>(IN_FLIGHT);
  cycle(strategy, contexts, inFlight, state, 5 * BATCH); // warm-up: let the JIT settle
  // CPU time, not wall time: on a shared machine the process may wait for a core, and that
  // wait is not the strategy's cost.
  let picks = 0;
  const started = process.cpuUsage();
  let elapsedNs = 0;
  while (elapsedNs < durationMs * 1e6) {
    cycle(strategy, contexts, inFlight, state, BATCH);
    picks += BATCH;
    const used = process.cpuUsage(started);
    elapsedNs = (used.user + used.system) * 1_000;
  }
  const nsPerPick = elapsedNs / picks;
  return {
    strategy: spec.label,
    backends: size,
    nsPerPick: Math.round(nsPerPick * 10) / 10,
    picksPerSec: Math.round(1e9 / nsPerPick),
  };
}

/** Measures every strategy at every size; rows in strategy order, then size. */
export async function runPickBenchmark(
  options: PickBenchmarkOptions = {},
): Promise<PickBenchmarkRow[]> {
  const sizes = options.sizes ?? DEFAULT_SIZES;
  const cases = options.strategies ?? DEFAULT_CASES;
  const durationMs = options.durationMs ?? 300;
  const rows: PickBenchmarkRow[] = [];
  for (const spec of cases) {
    for (const size of sizes) {
      rows.push(measure(spec, size, durationMs));
      // Let timers and I/O of a caller (bench/run.ts) breathe between cases.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }
  return rows;
}

/** A plain-text table of the rows, one line per strategy, one column per size. */
export function formatPickTable(rows: readonly PickBenchmarkRow[]): string {
  const sizes = [...new Set(rows.map((r) => r.backends))];
  const strategies = [...new Set(rows.map((r) => r.strategy))];
  const header = ['strategy'.padEnd(22), ...sizes.map((s) => `${s} backends`.padStart(16))].join(
    '',
  );
  const lines = strategies.map((strategy) =>
    [
      strategy.padEnd(22),
      ...sizes.map((size) => {
        const row = rows.find((r) => r.strategy === strategy && r.backends === size);
        return (row === undefined ? '-' : `${row.nsPerPick.toFixed(1)} ns`).padStart(16);
      }),
    ].join(''),
  );
  return [header, ...lines].join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({ options: { duration: { type: 'string' } } });
  const durationMs = values.duration === undefined ? undefined : Number(values.duration);
  const rows = await runPickBenchmark(durationMs === undefined ? {} : { durationMs });
  process.stdout.write(
    `pick() + stats updates per request, ns (Node ${process.version}, lower is better)\n`,
  );
  process.stdout.write(`${formatPickTable(rows)}\n`);
}
