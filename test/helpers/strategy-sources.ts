/**
 * Custom strategy modules that tests write to a temp dir and load through anubis (by path,
 * the way users do): the source text, importing the Strategy types from this checkout.
 */
import { fileURLToPath } from 'node:url';

/** The module specifier of anubis's public types, quoted for an import statement. */
export const STRATEGY_TYPES = JSON.stringify(
  fileURLToPath(new URL('../../src/index.ts', import.meta.url)),
);

/** A strategy that always picks the last backend not yet tried. */
export const LAST_BACKEND_STRATEGY = `import type { BackendView, Strategy } from ${STRATEGY_TYPES};
export default function createStrategy(): Strategy {
  let backends: readonly BackendView[] = [];
  return {
    name: 'last-backend',
    setBackends(b) { backends = b; },
    pick(context) {
      for (let i = backends.length - 1; i >= 0; i--) {
        const b = backends[i] as BackendView;
        if (!context.excluded?.has(b)) return b;
      }
      return undefined;
    },
  };
}
`;
