#!/usr/bin/env node
/**
 * The `anubis` command. Exit status: 0 success, 1 runtime error, 2 usage or configuration error.
 */
import { dirname, resolve } from 'node:path';
import { readConfigFile, validateConfig } from '../config/load.js';
import type { ConfigInput } from '../config/schema.js';
import { AnubisError, ConfigError, ConfigReadError, UsageError } from '../errors.js';
import { createLogger } from '../logging/logger.js';
import { VERSION } from '../version.js';
import { isClusterWorker, resolveWorkerCount } from '../server/workers.js';
import type { LoadedConfig } from '../server/cluster-primary.js';
import { applyOverrides, HELP, parseCli, quickStartConfig, type CliArgs } from './args.js';

// Each command and process role loads its own modules when it runs (`await import()`), so a
// plain `start` does not pay for the admin server and prom-client (cluster primary), the
// simulator or the demo (docs/performance.md, Memory).

async function loadFromArgs(args: CliArgs): Promise<LoadedConfig> {
  let raw: ConfigInput;
  let source: string;
  let baseDir: string;
  if (args.config !== undefined) {
    if (
      args.backends.length > 0 ||
      args.listen !== undefined ||
      args.strategy !== undefined ||
      args.healthCheck !== undefined
    ) {
      throw new UsageError(
        '--listen, --backend, --strategy and --health-check build a configuration; do not combine them with --config',
      );
    }
    raw = (await readConfigFile(args.config)) as ConfigInput;
    source = args.config;
    baseDir = dirname(resolve(args.config));
  } else {
    raw = quickStartConfig(args);
    source = 'command line';
    baseDir = process.cwd();
  }
  const input = applyOverrides(raw, args);
  return { config: validateConfig(input, source), raw: input, source, baseDir };
}

/**
 * Runs the load balancer: one process (`workers: 1`), or a primary and its workers. A worker
 * gets its configuration from the primary, not from the file. Reload (SIGHUP, POST
 * /api/reload) re-reads the file; the quick start has none to re-read.
 */
async function start(args: CliArgs): Promise<number> {
  if (isClusterWorker()) return (await import('../server/cluster-worker.js')).runWorker();
  const load = (): Promise<LoadedConfig> => loadFromArgs(args);
  const initial = await load();
  const reload = args.config === undefined ? undefined : load;
  const workers = resolveWorkerCount(initial.config.workers);
  if (workers > 1) {
    const logger = createLogger(initial.config.log);
    const { runPrimary } = await import('../server/cluster-primary.js');
    return runPrimary({ count: workers, logger, initial, reload });
  }
  return (await import('../server/single.js')).runSingle(initial, reload);
}

async function check(args: CliArgs): Promise<number> {
  if (args.config === undefined) throw new UsageError('check needs --config FILE');
  const { config } = await loadFromArgs(args);
  const pools = Object.keys(config.pools).length;
  const backends = Object.values(config.pools).reduce((n, p) => n + p.backends.length, 0);
  process.stdout.write(
    `${args.config}: configuration is valid (${config.listeners.length} listener(s), ${pools} pool(s), ${backends} backend(s))\n`,
  );
  return 0;
}

export async function main(argv: readonly string[]): Promise<number> {
  try {
    const args = parseCli(argv);
    if (args.help) {
      process.stdout.write(HELP);
      return 0;
    }
    if (args.version) {
      process.stdout.write(`anubis ${VERSION}\n`);
      return 0;
    }
    // Only a mistaken simulate flag (rare) loads the simulator's module to word the error.
    if (args.command !== 'simulate' && Object.values(args.simulate).some((v) => v !== undefined))
      (await import('../simulate/cli.js')).rejectSimulateFlags(args.command, args.simulate);
    switch (args.command) {
      case 'start':
        return await start(args);
      case 'check':
        return await check(args);
      case 'demo':
        return await (await import('./demo.js')).runDemo(args);
      case 'hello':
        return await (await import('./demo.js')).runHello(args);
      case 'simulate':
        return await (await import('../simulate/cli.js')).runSimulateCommand(args);
    }
  } catch (error) {
    if (
      error instanceof ConfigError ||
      error instanceof ConfigReadError ||
      error instanceof UsageError
    ) {
      process.stderr.write(`anubis: ${error.message}\n`);
      return 2;
    }
    if (error instanceof AnubisError) {
      process.stderr.write(`anubis: ${error.message} [${error.code}]\n`);
      return 1;
    }
    process.stderr.write(
      `anubis: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Servers are closed by now; pino's stream and stray timers must not keep the process up.
    setTimeout(() => process.exit(code), 50).unref();
  },
  (error: unknown) => {
    process.stderr.write(`anubis: ${String(error)}\n`);
    process.exit(1);
  },
);
