/**
 * A simulation scenario: the backends (each a latency profile over time), the load (requests,
 * concurrency, seed, time limit) and the strategies to compare. It comes from a YAML file
 * (`--scenario FILE`), from flags (`--backends "fast:20ms,slow:200ms±50ms"`), or both (flags
 * win). Both forms are validated by one zod schema, so every error names its key path.
 *
 * YAML form (every key optional except `backends` when no --backends is given):
 *
 *   seed: 7
 *   requests: 5000          # per strategy
 *   concurrency: 32         # requests in flight (closed loop: each client waits for its answer)
 *   timeLimit: 30s          # per strategy; the run stops issuing requests after it
 *   strategies: [round-robin, least-connections]
 *   backends:
 *     - name: fast
 *       latency: 20ms                          # or { fixed: 20ms }
 *     - name: slow
 *       latency: { normal: { mean: 200ms, sd: 50ms } }   # or 200ms±50ms
 *       weight: 2
 *       changes:
 *         - { at: 5s, latency: 50ms~800ms }    # log-normal: median~p99
 *         - { at: 10s, down: true }            # stops listening, drops its connections
 *   pool: { ... }            # extra anubis pool keys (timeouts, …) applied to every run
 */
import { z } from 'zod';
import { parseDuration } from '../config/units.js';
import { describeFound } from '../config/load.js';
import { formatPath } from '../config/key-path.js';
import { ConfigError, UsageError, type ConfigIssue } from '../errors.js';
import { builtinStrategies, isCustomStrategyPath } from '../strategies/registry.js';
import { checkLatency, MAX_LATENCY_MS, parseLatency, type Latency } from './latency.js';

/** Strategies compared when none are named, in this order (those that exist in the registry). */
export const PREFERRED_STRATEGIES = [
  'round-robin',
  'least-connections',
  'least-time',
  'random-two',
] as const;

export const DEFAULT_BACKENDS = 'fast:20ms,fast:20ms,slow:200ms±50ms';

/** A period of a backend's life: from `atMs` on it answers with `latency`, or is down. */
export type Phase =
  | { readonly atMs: number; readonly latency: Latency }
  | { readonly atMs: number; readonly down: true };

export interface BackendProfile {
  /** Unique id (the name, numbered when several backends share it). */
  readonly id: string;
  readonly weight: number;
  /** Sorted by `atMs`; the first starts at 0 and has a latency. */
  readonly phases: readonly Phase[];
}

export interface StrategyChoice {
  readonly name: string;
  readonly options: Record<string, unknown>;
  /** How tables and charts name this run: the name, with the options written (`hash(key=path)`). */
  readonly label: string;
}

export interface Scenario {
  readonly seed: number;
  readonly requests: number;
  readonly concurrency: number;
  readonly timeLimitMs: number;
  readonly strategies: readonly StrategyChoice[];
  readonly backends: readonly BackendProfile[];
  /** Extra pool configuration keys, validated by anubis' own schema when a run starts. */
  readonly pool: Readonly<Record<string, unknown>>;
}

const durationMs = (max: number) =>
  z.unknown().transform((value, ctx) => {
    const ms =
      typeof value === 'number' || typeof value === 'string' ? parseDuration(value) : undefined;
    if (ms === undefined || ms > max) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a duration such as 250ms or 5s${ms === undefined ? '' : ` (at most ${max / 1000}s)`}, found ${describeFound(value)}`,
      });
      return z.NEVER;
    }
    return ms;
  });

const LATENCY_EXPECTED =
  'a latency such as 20ms, 200ms±50ms or 50ms~400ms, or one of { fixed: D }, { normal: { mean: D, sd: D } }, { lognormal: { median: D, p99: D } }';

const latencyObjectSchemas = {
  fixed: durationMs(MAX_LATENCY_MS),
  normal: z.strictObject({ mean: durationMs(MAX_LATENCY_MS), sd: durationMs(MAX_LATENCY_MS) }),
  lognormal: z.strictObject({
    median: durationMs(MAX_LATENCY_MS),
    p99: durationMs(MAX_LATENCY_MS),
  }),
} as const;

/**
 * A latency: the compact text form, or `{ fixed }`, `{ normal: { mean, sd } }`,
 * `{ lognormal: { median, p99 } }`. Parsed by hand (not a zod union) so that an error inside
 * one form names its own key path (`latency.normal.sd`) instead of "none of the forms".
 */
const latencySchema = z.unknown().transform((value, ctx): Latency => {
  let result: Latency | string;
  if (typeof value === 'string') {
    result = parseLatency(value);
  } else {
    const entries =
      value !== null && typeof value === 'object' && !Array.isArray(value)
        ? Object.entries(value)
        : [];
    const [key, inner] = entries[0] ?? [];
    if (entries.length !== 1 || key === undefined || !(key in latencyObjectSchemas)) {
      ctx.addIssue({
        code: 'custom',
        message: `expected ${LATENCY_EXPECTED}, found ${describeFound(value)}`,
      });
      return z.NEVER;
    }
    const kind = key as keyof typeof latencyObjectSchemas;
    const parsed = latencyObjectSchemas[kind].safeParse(inner);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        const { message } = describeIssue(issue, inner);
        ctx.addIssue({ code: 'custom', path: [kind, ...issue.path], message });
      }
      return z.NEVER;
    }
    const data = parsed.data as number | Record<string, number>;
    if (typeof data === 'number') result = checkLatency({ kind: 'fixed', ms: data });
    else if (kind === 'normal')
      result = checkLatency({ kind, meanMs: data.mean as number, sdMs: data.sd as number });
    else
      result = checkLatency({
        kind: 'lognormal',
        medianMs: data.median as number,
        p99Ms: data.p99 as number,
      });
  }
  if (typeof result === 'string') {
    ctx.addIssue({ code: 'custom', message: result });
    return z.NEVER;
  }
  return result;
});

const changeSchema = z
  .strictObject({
    at: durationMs(3_600_000),
    latency: latencySchema.optional(),
    down: z.literal(true).optional(),
  })
  .transform((change, ctx): Phase => {
    if ((change.latency === undefined) === (change.down === undefined)) {
      ctx.addIssue({
        code: 'custom',
        message:
          'expected either latency (a new latency from then on) or down: true (the backend dies)',
      });
      return z.NEVER;
    }
    return change.latency !== undefined
      ? { atMs: change.at, latency: change.latency }
      : { atMs: change.at, down: true };
  });

const backendSchema = z.strictObject({
  name: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,40}$/)
    .optional(),
  latency: latencySchema,
  weight: z.number().int().min(1).max(1000).default(1),
  changes: z.array(changeSchema).max(100).default([]),
});

const strategySchema = z.union([z.string().min(1), z.looseObject({ name: z.string().min(1) })]);

export const scenarioSchema = z.strictObject({
  seed: z.number().int().min(0).max(4_294_967_295).default(1),
  requests: z.number().int().min(1).max(1_000_000).default(3_000),
  concurrency: z.number().int().min(1).max(1_024).default(32),
  timeLimit: durationMs(600_000).default(30_000),
  strategies: z.array(strategySchema).min(1).max(20).optional(),
  backends: z.array(backendSchema).min(1).max(50),
  pool: z.record(z.string(), z.unknown()).default({}),
});

export type ScenarioInput = z.input<typeof scenarioSchema>;

/** Built-in strategy names available right now (the registry may grow at any time). */
export function availableStrategies(): string[] {
  return [...builtinStrategies.keys()];
}

/** The default comparison: the preferred strategies the registry has. */
export function defaultStrategies(): StrategyChoice[] {
  return PREFERRED_STRATEGIES.filter((name) => builtinStrategies.has(name)).map((name) => ({
    name,
    options: {},
    label: name,
  }));
}

/** `hash(key=path)`: the name, with the options the user wrote (not the defaults). */
export function strategyLabel(name: string, options: Record<string, unknown>): string {
  const written = Object.entries(options).map(
    ([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`,
  );
  return written.length === 0 ? name : `${name}(${written.join(',')})`;
}

/** Validates a raw scenario (from YAML, flags, or code); `source` names it in errors. */
export function validateScenario(raw: unknown, source: string): Scenario {
  const result = scenarioSchema.safeParse(raw);
  const issues: ConfigIssue[] = result.success
    ? []
    : result.error.issues.map((issue) => describeIssue(issue, raw));
  if (!result.success) throw new ConfigError(source, issues);
  const input = result.data;

  const strategies = (input.strategies ?? []).map((entry, index): StrategyChoice => {
    const { name, ...options } = typeof entry === 'string' ? { name: entry } : entry;
    const path = formatPath(['strategies', index]);
    const label = strategyLabel(name, options);
    if (isCustomStrategyPath(name)) return { name, options, label };
    const definition = builtinStrategies.get(name);
    if (definition === undefined) {
      issues.push({
        path,
        message: `expected one of ${availableStrategies().join(', ')} or a path to a strategy module (./my-strategy.ts), found ${JSON.stringify(name)}`,
      });
      return { name, options, label };
    }
    const parsed = definition.options.safeParse(options);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        issues.push({
          path: formatPath(['strategies', index, ...issue.path]),
          message: `${issue.message} (options of strategy ${name})`,
        });
      }
      return { name, options, label };
    }
    return { name, options: parsed.data, label };
  });

  const backends = input.backends.map((backend, index) => {
    const phases: Phase[] = [{ atMs: 0, latency: backend.latency }];
    backend.changes.forEach((change, changeIndex) => {
      const previous = phases[phases.length - 1] as Phase;
      const path = formatPath(['backends', index, 'changes', changeIndex]);
      if ('down' in previous) {
        issues.push({
          path,
          message: 'expected nothing after down: true (a dead backend stays down)',
        });
      } else if (change.atMs <= previous.atMs) {
        issues.push({
          path: `${path}.at`,
          message: `expected a time later than the previous change (${previous.atMs}ms), found ${change.atMs}ms`,
        });
      }
      phases.push(change);
    });
    return { name: backend.name, weight: backend.weight, phases };
  });
  if (issues.length > 0) throw new ConfigError(source, issues);

  return {
    seed: input.seed,
    requests: input.requests,
    concurrency: input.concurrency,
    timeLimitMs: input.timeLimit,
    strategies: strategies.length > 0 ? strategies : defaultStrategies(),
    backends: assignIds(backends),
    pool: input.pool,
  };
}

/**
 * Gives every backend a unique id: its name, or `b<position>` without one; names used more
 * than once are numbered (`fast-1`, `fast-2`).
 */
function assignIds(
  backends: readonly { name: string | undefined; weight: number; phases: Phase[] }[],
): BackendProfile[] {
  const names = backends.map((b, i) => b.name ?? `b${i + 1}`);
  const counts = new Map<string, number>();
  for (const name of names) counts.set(name, (counts.get(name) ?? 0) + 1);
  const seen = new Map<string, number>();
  return backends.map((backend, i) => {
    const name = names[i] as string;
    const nth = (seen.get(name) ?? 0) + 1;
    seen.set(name, nth);
    const id = (counts.get(name) as number) > 1 ? `${name}-${nth}` : name;
    return { id, weight: backend.weight, phases: backend.phases };
  });
}

/**
 * `--backends` text → the YAML form of `backends`. Grammar (whitespace around tokens is ignored):
 *
 *   backends = backend *( "," backend )
 *   backend  = [ name ":" ] latency *( ">" ( latency / "down" ) "@" time )
 *
 * `fast:20ms`, `slow:200ms±50ms`, `tail:50ms~400ms`, `aging:20ms>200ms@10s` (slower from
 * t = 10 s), `dying:20ms>down@15s` (dies at t = 15 s); times count from the start of each
 * strategy's run. Latency and time values are checked by the schema, with key paths.
 */
export function parseBackendsFlag(text: string): Record<string, unknown>[] {
  const specs = text.split(',').map((s) => s.trim());
  return specs.map((spec, index) => {
    const where = `--backends: backend ${index + 1} (${JSON.stringify(spec)})`;
    if (spec === '') throw new UsageError(`${where}: expected name:latency, found nothing`);
    const colon = spec.indexOf(':');
    const name = colon === -1 ? undefined : spec.slice(0, colon).trim();
    const [first, ...steps] = spec.slice(colon + 1).split('>');
    const backend: Record<string, unknown> = { latency: (first as string).trim() };
    if (name !== undefined) backend.name = name;
    if (steps.length > 0) {
      backend.changes = steps.map((step) => {
        const at = step.lastIndexOf('@');
        if (at === -1) {
          throw new UsageError(
            `${where}: expected LATENCY@TIME or down@TIME after ">", found ${JSON.stringify(step)}`,
          );
        }
        const what = step.slice(0, at).trim();
        const time = step.slice(at + 1).trim();
        return what === 'down' ? { at: time, down: true } : { at: time, latency: what };
      });
    }
    return backend;
  });
}

/** One zod issue as `{ path, message }`: what was expected and what was found. */
function describeIssue(issue: z.core.$ZodIssue, raw: unknown): ConfigIssue {
  const path = formatPath(issue.path);
  const found = describeFound(valueAt(raw, issue.path));
  switch (issue.code) {
    case 'custom':
      return { path, message: issue.message };
    case 'unrecognized_keys':
      return {
        path,
        message: `unknown key ${issue.keys.map((k) => JSON.stringify(k)).join(', ')} (see docs/simulate.md)`,
      };
    case 'invalid_type':
      return {
        path,
        message: `expected ${issue.expected === 'int' ? 'a whole number' : issue.expected === 'object' ? 'a mapping' : issue.expected === 'array' ? 'a list' : `a ${issue.expected}`}, found ${found}`,
      };
    case 'too_small':
      return {
        path,
        message:
          issue.origin === 'array'
            ? `expected at least ${String(issue.minimum)} item(s), found ${found}`
            : `expected a number >= ${String(issue.minimum)}, found ${found}`,
      };
    case 'too_big':
      return {
        path,
        message:
          issue.origin === 'array'
            ? `expected at most ${String(issue.maximum)} item(s), found ${found}`
            : `expected a number <= ${String(issue.maximum)}, found ${found}`,
      };
    case 'invalid_format':
      return {
        path,
        message: `expected letters, digits, _ . - (at most 40), found ${found}`,
      };
    case 'invalid_union':
      return {
        path,
        message: `expected a strategy name or a mapping with a name, found ${found}`,
      };
    case 'invalid_value':
      return {
        path,
        message: `expected ${issue.values.map((v) => JSON.stringify(v)).join(' or ')}, found ${found}`,
      };
    default:
      return { path, message: `${issue.message}, found ${found}` };
  }
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let value = root;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}
