// Every key of the configuration schema is documented in docs/configuration.md, and every
// error code in src/errors.ts is listed in docs/errors.md (and the docs list no stale code).
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { z } from 'zod';
import { configSchema } from '../../src/config/schema.js';

const root = new URL('../../', import.meta.url);

function collectKeys(schema: unknown, out: Set<string>): Set<string> {
  if (schema === null || typeof schema !== 'object') return out;
  const node = schema as Record<string, unknown>;
  if (node.properties !== undefined && typeof node.properties === 'object') {
    for (const [key, child] of Object.entries(node.properties as Record<string, unknown>)) {
      out.add(key);
      collectKeys(child, out);
    }
  }
  for (const field of ['items', 'additionalProperties', 'anyOf', 'oneOf', 'allOf', 'prefixItems']) {
    const value = node[field];
    if (Array.isArray(value)) for (const v of value) collectKeys(v, out);
    else collectKeys(value, out);
  }
  if (node.$defs !== undefined)
    for (const v of Object.values(node.$defs as object)) collectKeys(v, out);
  return out;
}

test('every configuration key is documented in docs/configuration.md', async () => {
  const docs = await readFile(new URL('docs/configuration.md', root), 'utf8');
  const jsonSchema = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' });
  const keys = collectKeys(jsonSchema, new Set());
  assert.ok(keys.size > 10, `expected to find the schema's keys, found ${keys.size}`);
  const missing = [...keys].filter(
    (key) => !new RegExp(`\`[^\`\\n]*\\b${key}\\b[^\`\\n]*\``).test(docs),
  );
  assert.deepEqual(missing, [], `keys missing from docs/configuration.md: ${missing.join(', ')}`);
});

test('every error code is listed in docs/errors.md, and only those', async () => {
  const docs = await readFile(new URL('docs/errors.md', root), 'utf8');
  const { readdir } = await import('node:fs/promises');
  const sources: string[] = [];
  const walk = async (dir: URL): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) await walk(new URL(`${entry.name}/`, dir));
      else if (entry.name.endsWith('.ts'))
        sources.push(await readFile(new URL(entry.name, dir), 'utf8'));
    }
  };
  await walk(new URL('src/', root));
  const codes = new Set(
    sources
      .join('\n')
      .match(/'ANUBIS_[A-Z0-9_]+'/g)
      ?.map((c) => c.slice(1, -1)),
  );
  const documented = new Set(docs.match(/`ANUBIS_[A-Z0-9_]+`/g)?.map((c) => c.slice(1, -1)));
  assert.ok(codes.size >= 10);
  assert.deepEqual(
    [...codes].filter((c) => !documented.has(c)),
    [],
    'codes missing from docs/errors.md',
  );
  assert.deepEqual(
    [...documented].filter((c) => !codes.has(c)),
    [],
    'docs/errors.md lists codes that no longer exist',
  );
});

test('examples/anubis.yaml is a valid configuration', async () => {
  const { loadConfigFile } = await import('../../src/config/load.js');
  const config = await loadConfigFile(new URL('examples/anubis.yaml', root).pathname);
  assert.equal(config.pools.hello?.backends.length, 3);
});
