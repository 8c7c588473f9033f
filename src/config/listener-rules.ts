/**
 * Cross-field rules of listeners, checked with the rest of the schema so every problem is
 * reported with its key path: a listener names an existing pool (unless it only redirects),
 * options fit the listener's mode, and a pool's backend schemes fit the listeners it serves
 * (`tcp://` exactly in pools of `mode: tcp` listeners, `http(s)://` everywhere else).
 */
import type { z } from 'zod';
import type { Config } from './schema.js';

type Listener = Config['listeners'][number];

function issue(ctx: z.RefinementCtx, path: (string | number)[], message: string): void {
  ctx.addIssue({ code: 'custom', path, message });
}

function checkModeOptions(listener: Listener, index: number, ctx: z.RefinementCtx): void {
  const at = (key: string): (string | number)[] => ['listeners', index, key];
  if (listener.mode === 'tcp') {
    if (listener.tls !== undefined)
      issue(
        ctx,
        at('tls'),
        'expected no tls on a mode: tcp listener (TCP mode passes bytes as they are)',
      );
    if (listener.http2 !== undefined)
      issue(ctx, at('http2'), 'expected no http2 on a mode: tcp listener');
    if (listener.redirectToHttps !== undefined)
      issue(ctx, at('redirectToHttps'), 'expected no redirectToHttps on a mode: tcp listener');
    return;
  }
  if (listener.tcp !== undefined)
    issue(ctx, at('tcp'), 'expected tcp options only on a listener with mode: tcp');
  if (listener.redirectToHttps !== undefined && listener.tls !== undefined)
    issue(ctx, at('redirectToHttps'), 'expected redirectToHttps only on a listener without tls');
}

export function checkListeners(config: Config, ctx: z.RefinementCtx): void {
  const poolNames = Object.keys(config.pools);
  /** Mode of the first listener using each pool, to report pools shared across modes. */
  const poolModes = new Map<string, { mode: Listener['mode']; index: number }>();
  config.listeners.forEach((listener, index) => {
    checkModeOptions(listener, index, ctx);
    const pool = listener.pool;
    if (pool === undefined) {
      if (listener.redirectToHttps === undefined) {
        issue(
          ctx,
          ['listeners', index, 'pool'],
          `expected the name of a pool (${poolNames.join(', ') || 'none defined'}), found nothing`,
        );
      }
      return;
    }
    if (!(pool in config.pools)) {
      issue(
        ctx,
        ['listeners', index, 'pool'],
        `expected the name of a pool (${poolNames.join(', ') || 'none defined'}), found ${JSON.stringify(pool)}`,
      );
      return;
    }
    const seen = poolModes.get(pool);
    if (seen === undefined) poolModes.set(pool, { mode: listener.mode, index });
    else if (seen.mode !== listener.mode) {
      issue(
        ctx,
        ['listeners', index, 'pool'],
        `expected a pool not also used by a mode: ${seen.mode} listener (listeners[${seen.index}]), found ${JSON.stringify(pool)}`,
      );
    }
  });
  for (const [pool, { mode, index }] of poolModes) {
    config.pools[pool]?.backends.forEach((backend, b) => {
      const isTcp = backend.url.startsWith('tcp://');
      if (mode === 'tcp' && !isTcp) {
        issue(
          ctx,
          ['pools', pool, 'backends', b, 'url'],
          `expected tcp://host:port (pool ${pool} serves the mode: tcp listener listeners[${index}]), found ${JSON.stringify(backend.url)}`,
        );
      } else if (mode === 'http' && isTcp) {
        issue(
          ctx,
          ['pools', pool, 'backends', b, 'url'],
          `expected an http:// or https:// URL (tcp:// backends serve only mode: tcp listeners; pool ${pool} serves listeners[${index}]), found ${JSON.stringify(backend.url)}`,
        );
      }
    });
  }
}

/**
 * For a backend added at runtime (admin API): why `url` does not fit a pool whose backends
 * are `existing`, or undefined if it fits. A pool's backends are all `tcp://` (it serves
 * mode: tcp listeners) or all `http(s)://`.
 */
export function backendSchemeMismatch(
  existing: readonly { readonly url: string }[],
  url: string,
): string | undefined {
  const first = existing[0];
  if (first === undefined) return undefined;
  const poolIsTcp = first.url.startsWith('tcp://');
  if (poolIsTcp === url.startsWith('tcp://')) return undefined;
  return poolIsTcp
    ? `expected tcp://host:port (the pool serves mode: tcp listeners), found ${JSON.stringify(url)}`
    : `expected an http:// or https:// URL (tcp:// backends serve only mode: tcp listeners), found ${JSON.stringify(url)}`;
}
