/** Command-line options of `npm run bench` (node:util parseArgs). */
import { parseArgs } from 'node:util';

export const SECTIONS = ['throughput', 'balancing', 'stream', 'idle', 'pick', 'tcp'] as const;
export type Section = (typeof SECTIONS)[number];

export interface BenchOptions {
  readonly quick: boolean;
  readonly sections: readonly Section[];
  /** Seconds per measured throughput run. */
  readonly durationS: number;
  /** Seconds of warm-up per peer before the throughput runs (0: none). */
  readonly warmupS: number;
  /** Interleaved repetitions of every throughput configuration. */
  readonly repeats: number;
  /**
   * Repetitions of the Poisson added-latency case (small-paced-50): its p99 is the target
   * that a shared machine's stalls move most, so a full run takes more of them.
   */
  readonly pacedRepeats: number;
  /**
   * Seconds of warm-up per Node peer before the Poisson case: V8 is still re-optimising that
   * case's code paths (on helper threads that share the proxy's CPU) for about 10 s into
   * that load, after the saturating cases (docs/performance.md, "JIT work in the paced tail").
   */
  readonly pacedWarmupS: number;
  readonly balancingDurationS: number;
  readonly balancingRepeats: number;
  readonly balancingConnections: number;
  readonly idleConnections: number;
  /** Pin proxy and load generator to separate CPUs with taskset. */
  readonly pin: boolean;
  /** Node binary for anubis and the Node peers. */
  readonly node: string;
  /** Throughput case ids to run (all when empty). */
  readonly cases: readonly string[];
  /** Benchmark src/ as of this git ref instead of the working tree. */
  readonly ref: string | undefined;
  readonly help: boolean;
}

export const BENCH_HELP = `npm run bench -- [options]

  --quick                 a short run (about 2 minutes) to check the harness: throughput cases
                          small-ka-50, small-paced-50, post-64k, get-1m; TCP small-ka-50; balancing against
                          nginx least_conn and HAProxy leastconn/random(2) only, no warm-up
  --only LIST             comma-separated sections: ${SECTIONS.join(', ')}
  --cases LIST            throughput case ids (small-ka-50, small-paced-50, small-paced-50-steady,
                          small-clumped-50, small-burst-50, small-ka-256, no-keepalive, post-64k,
                          get-1m); small-paced-50 is Poisson arrivals from bench/tools/poisson-load.c
                          (needs gcc, else wrk's ms pauses), -steady the same with each peer's runs
                          back to back instead of interleaved
  --duration S            seconds per throughput run (quick 1, full 5)
  --repeats N             interleaved repetitions per configuration (quick 2, full 3)
  --paced-repeats N       repetitions of small-paced-50 and -steady, the added-p99 cases (default:
                          the larger of --repeats and 7; quick: as --repeats)
  --warmup S              warm-up seconds per Node peer before each case (quick 1, full 2)
  --paced-warmup S        warm-up seconds per Node peer before small-paced-50 and -steady (quick:
                          as --warmup, full 12: V8 re-optimises that case's code for about 10 s)
  --balancing-duration S  seconds per balancing run (quick 1, full 10)
  --balancing-repeats N   (quick 1, full 3)
  --idle-connections N    idle keep-alive connections to hold (default 10000)
  --no-pin                do not pin processes to CPUs with taskset
  --node PATH             Node binary for anubis and the Node peers (default: this one)
  --ref REF               benchmark src/ as committed at git REF (e.g. HEAD), not the working tree
`;

/** A full run's repetitions of the Poisson case (3 left its median p99 at the machine's mercy). */
const FULL_PACED_REPEATS = 7;
/** A full run's warm-up before the Poisson case (its JIT work lasts ≈ 10 s). */
const FULL_PACED_WARMUP_S = 12;

function positiveNumber(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0)
    throw new Error(`--${name}: expected a number >= 0, found ${JSON.stringify(value)}`);
  return n;
}

/** A whole count of at least 1 (repetitions, seconds) from a --flag. */
function atLeastOne(name: string, value: string | undefined, fallback: number): number {
  return Math.max(1, Math.round(positiveNumber(name, value, fallback)));
}

export function parseBenchArgs(argv: readonly string[]): BenchOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      cases: { type: 'string' },
      duration: { type: 'string' },
      repeats: { type: 'string' },
      'paced-repeats': { type: 'string' },
      warmup: { type: 'string' },
      'paced-warmup': { type: 'string' },
      'balancing-duration': { type: 'string' },
      'balancing-repeats': { type: 'string' },
      'idle-connections': { type: 'string' },
      'no-pin': { type: 'boolean', default: false },
      node: { type: 'string' },
      ref: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const quick = values.quick === true;
  let sections: Section[] = [...SECTIONS];
  if (values.only !== undefined) {
    sections = values.only
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '') as Section[];
    const unknown = sections.filter((s) => !(SECTIONS as readonly string[]).includes(s));
    if (unknown.length > 0)
      throw new Error(
        `--only: unknown section(s) ${unknown.join(', ')}; expected ${SECTIONS.join(', ')}`,
      );
  }
  const repeats = atLeastOne('repeats', values.repeats, quick ? 2 : 3);
  const warmupS = Math.round(positiveNumber('warmup', values.warmup, quick ? 1 : 2));
  return {
    quick,
    sections,
    durationS: atLeastOne('duration', values.duration, quick ? 1 : 5),
    warmupS,
    repeats,
    pacedRepeats: atLeastOne(
      'paced-repeats',
      values['paced-repeats'],
      quick ? repeats : Math.max(repeats, FULL_PACED_REPEATS),
    ),
    pacedWarmupS: Math.round(
      positiveNumber(
        'paced-warmup',
        values['paced-warmup'],
        quick || values.warmup !== undefined ? warmupS : FULL_PACED_WARMUP_S,
      ),
    ),
    balancingDurationS: atLeastOne(
      'balancing-duration',
      values['balancing-duration'],
      quick ? 1 : 10,
    ),
    balancingRepeats: atLeastOne('balancing-repeats', values['balancing-repeats'], quick ? 1 : 3),
    balancingConnections: 16,
    idleConnections: Math.round(
      positiveNumber('idle-connections', values['idle-connections'], 10_000),
    ),
    pin: values['no-pin'] !== true,
    node: values.node ?? process.execPath,
    cases: values.cases === undefined ? [] : values.cases.split(',').map((s) => s.trim()),
    ref: values.ref,
    help: values.help === true,
  };
}
