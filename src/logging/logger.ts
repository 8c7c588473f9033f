/**
 * Structured logging with pino: JSON lines by default, a human-friendly colourised form with
 * `format: pretty`. Disabled levels are pino no-ops, so debug logging costs nothing when off.
 */
import { pino, type Logger as PinoLogger } from 'pino';
import pretty from 'pino-pretty';

export type Logger = PinoLogger;

export interface LoggerOptions {
  readonly level: string;
  readonly format: 'json' | 'pretty';
}

export function createLogger(options: LoggerOptions, destination?: NodeJS.WritableStream): Logger {
  const base = { level: options.level, base: { pid: process.pid }, name: 'anubis' };
  if (options.format === 'pretty') {
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
