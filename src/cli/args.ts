/**
 * Command-line parsing. `anubis [command] [flags]`; commands: start (default), check, demo,
 * hello, simulate. Quick-start flags (--listen, --backend, --strategy) build a one-pool configuration
 * without a file, like `caddy reverse-proxy`.
 */
import { parseArgs } from 'node:util';
import type { ConfigInput } from '../config/schema.js';
import { UsageError } from '../errors.js';
import type { SimulateFlags } from '../simulate/cli.js';

export const COMMANDS = ['start', 'check', 'demo', 'hello', 'simulate'] as const;
export type Command = (typeof COMMANDS)[number];

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  listen: { type: 'string', short: 'l' },
  backend: { type: 'string', short: 'b', multiple: true },
  strategy: { type: 'string', short: 's' },
  workers: { type: 'string', short: 'w' },
  'log-level': { type: 'string' },
  'log-format': { type: 'string' },
  'health-check': { type: 'string' },
  'access-log': { type: 'boolean' },
  admin: { type: 'string' },
  name: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
  // anubis simulate
  scenario: { type: 'string' },
  backends: { type: 'string' },
  concurrency: { type: 'string' },
  requests: { type: 'string' },
  strategies: { type: 'string' },
  seed: { type: 'string' },
  'time-limit': { type: 'string' },
  report: { type: 'string' },
} as const;

export interface CliArgs {
  readonly command: Command;
  readonly config: string | undefined;
  readonly listen: string | undefined;
  readonly backends: readonly string[];
  readonly strategy: string | undefined;
  readonly workers: string | undefined;
  readonly logLevel: string | undefined;
  readonly logFormat: string | undefined;
  /** Quick start: active HTTP health check path (docs/health.md). */
  readonly healthCheck: string | undefined;
  readonly accessLog: boolean;
  readonly admin: string | undefined;
  readonly name: string | undefined;
  readonly help: boolean;
  readonly version: boolean;
  readonly simulate: SimulateFlags;
}

export const HELP = `anubis — a load balancer and reverse proxy

Usage:
  anubis [start] --config FILE              run from a YAML configuration file
  anubis [start] --listen ADDR --backend URL [--backend URL ...] [--strategy NAME]
                                            quick start: one pool, no file needed
  anubis check --config FILE                validate a configuration file and exit
  anubis demo [--listen ADDR]               three hello-world backends behind anubis
  anubis hello --listen ADDR [--name NAME]  run one hello-world backend
  anubis simulate [--backends SPEC | --scenario FILE] [--strategies A,B] [--report FILE]
                                            compare strategies on simulated backends
  anubis --version | --help

Flags:
  -c, --config FILE        YAML configuration file (see docs/configuration.md)
  -l, --listen ADDR        address to listen on, host:port (quick start default 127.0.0.1:8080)
  -b, --backend SPEC       backend URL, repeatable; options after commas:
                           http://127.0.0.1:9002,weight=3,name=api-2,backup=true
  -s, --strategy NAME      balancing strategy: round-robin (default), least-connections,
                           least-time, random, random-two, hash; or a path to a custom
                           strategy module (./my-strategy.ts). See docs/strategies.md
      --health-check PATH  quick start: check every backend with GET PATH every 5 s
                           (2xx/3xx = healthy; see docs/health.md)
  -w, --workers N|auto     worker processes (default: auto = one per core; demo: 1)
      --log-level LEVEL    fatal, error, warn, info (default), debug, trace, silent
      --log-format FORMAT  json (default) or pretty
      --access-log         log one line per request
      --admin ADDR         admin API, /metrics and dashboard on ADDR (e.g. 127.0.0.1:9090;
                           loopback only unless admin.allowRemote is set in the file)
      --name NAME          name of the hello-world backend (hello command)
  -h, --help               show this help
  -v, --version            print the version

Simulate flags (docs/simulate.md):
      --backends SPEC      simulated backends, e.g. "fast:20ms,fast:20ms,slow:200ms±50ms";
                           latency 20ms (fixed), 200ms±50ms (normal), 50ms~400ms (log-normal
                           median~p99); later changes: slow:20ms>200ms@10s, dying:20ms>down@15s
      --scenario FILE      YAML scenario (backends, strategies, load); flags override it
      --strategies A,B     strategies to compare (default: round-robin and the
                           least-connections, least-time, random-two that exist)
      --requests N         requests per strategy (default 3000)
      --concurrency N      requests in flight, closed loop (default 32)
      --seed N             seed of latencies and request keys (default 1)
      --time-limit DUR     longest run per strategy (default 30s)
      --report FILE        write an HTML report with charts (self-contained, opens offline)

Signals: SIGHUP re-reads --config and applies it (an invalid file is rejected, the running
configuration stays); SIGTERM/SIGINT stop accepting, drain (drainTimeout) and exit 0.

Exit status: 0 on success, 1 on a runtime error, 2 on invalid usage or configuration.
`;

export function parseCli(argv: readonly string[]): CliArgs {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\nRun anubis --help for usage.`);
  }
  const { values, positionals } = parsed;
  if (positionals.length > 1) {
    throw new UsageError(
      `unexpected argument ${JSON.stringify(positionals[1])}; run anubis --help`,
    );
  }
  const first = positionals[0] ?? 'start';
  if (!(COMMANDS as readonly string[]).includes(first)) {
    throw new UsageError(
      `unknown command ${JSON.stringify(first)}; expected one of ${COMMANDS.join(', ')}`,
    );
  }
  return {
    command: first as Command,
    config: values.config,
    listen: values.listen,
    backends: values.backend ?? [],
    strategy: values.strategy,
    workers: values.workers,
    logLevel: values['log-level'],
    logFormat: values['log-format'],
    healthCheck: values['health-check'],
    accessLog: values['access-log'] ?? false,
    admin: values.admin,
    name: values.name,
    help: values.help ?? false,
    version: values.version ?? false,
    simulate: {
      scenario: values.scenario,
      backends: values.backends,
      concurrency: values.concurrency,
      requests: values.requests,
      strategies: values.strategies,
      seed: values.seed,
      timeLimit: values['time-limit'],
      report: values.report,
    },
  };
}

/** `http://h:p,weight=3,name=x` → backend config entry. */
export function parseBackendSpec(spec: string): Record<string, unknown> {
  const [url, ...options] = spec.split(',');
  if (url === undefined || url === '')
    throw new UsageError(`--backend needs a URL, found ${JSON.stringify(spec)}`);
  const backend: Record<string, unknown> = { url: url.trim() };
  for (const option of options) {
    const [key, value, extra] = option.split('=');
    if (key === undefined || value === undefined || extra !== undefined) {
      throw new UsageError(
        `--backend option must be key=value, found ${JSON.stringify(option)} in ${JSON.stringify(spec)}`,
      );
    }
    switch (key.trim()) {
      case 'weight': {
        const weight = Number(value);
        if (!Number.isInteger(weight) || weight < 1) {
          throw new UsageError(
            `--backend weight must be a whole number >= 1, found ${JSON.stringify(value)}`,
          );
        }
        backend.weight = weight;
        break;
      }
      case 'backup':
        if (value !== 'true' && value !== 'false') {
          throw new UsageError(
            `--backend backup must be true or false, found ${JSON.stringify(value)}`,
          );
        }
        backend.backup = value === 'true';
        break;
      case 'name':
        backend.name = value.trim();
        break;
      default:
        throw new UsageError(
          `unknown --backend option ${JSON.stringify(key)} (expected weight, name or backup)`,
        );
    }
  }
  return backend;
}

/** Parses --workers: `auto` or a whole number. */
export function parseWorkers(value: string): 'auto' | number {
  if (value === 'auto') return 'auto';
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new UsageError(
      `--workers must be auto or a whole number >= 1, found ${JSON.stringify(value)}`,
    );
  return n;
}

/** Builds the configuration of the quick start (no file). */
export function quickStartConfig(args: CliArgs): ConfigInput {
  if (args.backends.length === 0) {
    throw new UsageError('give --config FILE, or at least one --backend URL (run anubis --help)');
  }
  const config: Record<string, unknown> = {
    listeners: [{ address: args.listen ?? '127.0.0.1:8080', pool: 'default' }],
    pools: {
      default: {
        strategy: args.strategy ?? 'round-robin',
        backends: args.backends.map(parseBackendSpec),
        ...(args.healthCheck === undefined
          ? {}
          : { health: { active: { path: args.healthCheck } } }),
      },
    },
  };
  return config as ConfigInput;
}

/** Applies flags that override a configuration (file or quick start). */
export function applyOverrides(config: ConfigInput, args: CliArgs): ConfigInput {
  const out = { ...config } as Record<string, unknown>;
  if (args.workers !== undefined) out.workers = parseWorkers(args.workers);
  const log = { ...((out.log as Record<string, unknown> | undefined) ?? {}) };
  if (args.logLevel !== undefined) log.level = args.logLevel;
  if (args.logFormat !== undefined) log.format = args.logFormat;
  if (args.accessLog) log.access = true;
  if (args.admin !== undefined) {
    const admin = (out.admin ?? {}) as Record<string, unknown>;
    out.admin = { ...admin, address: args.admin };
  }
  if (Object.keys(log).length > 0) out.log = log;
  return out as ConfigInput;
}
