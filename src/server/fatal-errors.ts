/**
 * The last resort for an error nothing caught: a bug, or a custom strategy that throws from a
 * timer of its own. Node's default prints a stack to stderr and exits at once, cutting every
 * in-flight request and leaving no line in the JSON log.
 *
 * Here the error is logged once at `fatal` level (message, stack, and whether it was a thrown
 * exception or an unhandled promise rejection), then the process stops accepting, lets
 * in-flight requests finish for at most FATAL_DRAIN_MS (or `drainTimeout` if shorter), and
 * exits with EXIT_FATAL. In a cluster the primary forks a replacement worker right away; with
 * `workers: 1` the supervisor (systemd `Restart=`, Docker's restart policy, Kubernetes)
 * restarts the process. A second uncaught error during that drain exits at once.
 *
 * Carrying on as if nothing happened is not offered: after an uncaught error the process's
 * state is unknown (Node's documentation says the same of `uncaughtException`).
 */
import type { Logger } from '../logging/logger.js';

/** Exit code after an uncaught error (EX_SOFTWARE of sysexits.h). */
export const EXIT_FATAL = 70;

/** The longest an uncaught error lets in-flight requests run before the process exits. */
export const FATAL_DRAIN_MS = 5_000;

export interface FatalErrorOptions {
  readonly logger: Logger;
  /** `drainTimeout` in force: the drain after a fatal error is never longer. */
  readonly drainTimeoutMs: () => number;
  /** Stops accepting and resolves once in-flight requests ended or `ms` passed. */
  readonly drain: (ms: number) => Promise<void>;
  /** Ends the process (tests pass their own). */
  readonly exit?: (code: number) => void;
}

/**
 * Installs the process-wide handler; returns a function that removes it. Call once per
 * process, after the load balancer has started.
 */
export function exitOnUncaughtError(options: FatalErrorOptions): () => void {
  const exit = options.exit ?? ((code: number) => process.exit(code));
  let failing = false;
  const onError = (error: unknown, origin: NodeJS.UncaughtExceptionOrigin): void => {
    options.logger.fatal(
      { err: error, origin },
      failing ? 'second uncaught error while draining: exiting now' : 'uncaught error: draining',
    );
    if (failing) {
      exit(EXIT_FATAL);
      return;
    }
    failing = true;
    const ms = Math.min(FATAL_DRAIN_MS, options.drainTimeoutMs());
    // The hard stop does not wait for the drain's promise: a drain that hangs still ends.
    setTimeout(() => exit(EXIT_FATAL), ms + 500);
    options.drain(ms).then(
      () => exit(EXIT_FATAL),
      () => exit(EXIT_FATAL),
    );
  };
  process.on('uncaughtException', onError);
  return () => process.off('uncaughtException', onError);
}
