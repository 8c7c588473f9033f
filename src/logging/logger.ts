/**
 * Structured logging with pino: JSON lines by default, a human-friendly colourised form with
 * `format: pretty`. Disabled levels are pino no-ops, so debug logging costs nothing when off.
 */
import { createRequire } from 'node:module';
import { pino, type Logger as PinoLogger } from 'pino';
import type PinoPretty from 'pino-pretty';

/**
 * pino-pretty (and its colour and time-format dependencies) is loaded only for `format: pretty`,
 * synchronously so createLogger stays synchronous: JSON logging does not pay its memory.
 */
const require = createRequire(import.meta.url);
function loadPretty(): typeof PinoPretty {
  return require('pino-pretty') as typeof PinoPretty;
}

export type Logger = PinoLogger;

export interface LoggerOptions {
  readonly level: string;
  readonly format: 'json' | 'pretty';
}

export function createLogger(options: LoggerOptions, destination?: NodeJS.WritableStream): Logger {
  const base = { level: options.level, base: { pid: process.pid }, name: 'anubis' };
  if (options.format === 'pretty') {
    const pretty = loadPretty();
    return pino(
      base,
      pretty({
        colorize: process.stdout.isTTY,
        ignore: 'pid,hostname,name',
        translateTime: 'HH:MM:ss.l',
        destination: destination ?? 1,
        sync: true,
      }),
    );
  }
  return destination === undefined ? pino(base) : pino(base, destination);
}

/** A logger that discards everything (library use and tests). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
