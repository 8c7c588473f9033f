// `node --import tsx --import ./test/helpers/anubis-from-source.mjs program.mjs` runs a
// program that imports 'anubis' against the TypeScript sources (src/index.ts) instead of a
// built package: the examples are tested without a build.
import { register } from 'node:module';

const source = new URL('../../src/index.ts', import.meta.url).href;
const hooks = `export async function resolve(specifier, context, next) {
  if (specifier === 'anubis') return next(${JSON.stringify(source)}, context);
  return next(specifier, context);
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`);
