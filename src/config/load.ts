/**
 * Reads a YAML configuration file and validates it against the schema. Every problem is
 * reported at once, each with the file, the key path, what was expected and what was found.
 */
import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { ConfigError, ConfigReadError, type ConfigIssue } from '../errors.js';
import { configSchema, type Config } from './schema.js';
import { formatPath } from './key-path.js';
import { validateStrategies } from './strategy-names.js';

/** Reads, parses and validates a configuration file. */
export async function loadConfigFile(file: string): Promise<Config> {
  return validateConfig(await readConfigFile(file), file);
}

/** Reads a configuration file and parses its YAML, without validating it. */
export async function readConfigFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const detail =
      (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : String(error);
    throw new ConfigReadError(file, detail, error);
  }
  return parseYaml(text, file);
}

/** Parses YAML text (JSON is valid YAML); `source` names it in errors. */
export function parseYaml(text: string, source: string): unknown {
  const document = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (document.errors.length > 0) {
    const detail = document.errors.map((e) => e.message.split('\n')[0]).join('; ');
    throw new ConfigReadError(source, `invalid YAML: ${detail}`);
  }
  const raw: unknown = document.toJS();
  return raw ?? {};
}

/** Validates a configuration object (from a file, the CLI or the library API). */
export function validateConfig(raw: unknown, source: string): Config {
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    throw new ConfigError(
      source,
      result.error.issues.map((issue) => toConfigIssue(issue, raw)),
    );
  }
  const strategyIssues = validateStrategies(result.data);
  if (strategyIssues.length > 0) throw new ConfigError(source, strategyIssues);
  return result.data;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let value = root;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/** Short human description of a value found in the config. */
export function describeFound(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (typeof value === 'object') return 'a mapping';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function expectation(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      return issue.expected === 'object' || issue.expected === 'record'
        ? 'a mapping'
        : issue.expected === 'array'
          ? 'a list'
          : `a ${issue.expected}`;
    case 'invalid_value':
      return `one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'too_small':
      if (issue.origin === 'array') return `at least ${String(issue.minimum)} item(s)`;
      if (issue.origin === 'string') return 'a non-empty string';
      return `a number ${issue.inclusive === false ? '>' : '>='} ${String(issue.minimum)}`;
    case 'too_big':
      if (issue.origin === 'array') return `at most ${String(issue.maximum)} item(s)`;
      if (issue.origin === 'string') return `at most ${String(issue.maximum)} characters`;
      return `a number ${issue.inclusive === false ? '<' : '<='} ${String(issue.maximum)}`;
    case 'invalid_union': {
      const options = issue.errors.flatMap((branch) => branch.map((i) => expectation(i)));
      return [...new Set(options)].join(' or ');
    }
    case 'not_multiple_of':
      return `a multiple of ${String(issue.divisor)}`;
    case 'invalid_format':
      return issue.format === 'regex'
        ? `text matching ${String(issue.pattern)}`
        : `a ${issue.format}`;
    default:
      return issue.message;
  }
}

function toConfigIssue(issue: z.core.$ZodIssue, raw: unknown): ConfigIssue {
  const path = formatPath(issue.path);
  if (issue.code === 'custom') return { path, message: issue.message };
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => JSON.stringify(k)).join(', ');
    return {
      path,
      message: `unknown key ${keys} (check the spelling against docs/configuration.md)`,
    };
  }
  if (issue.code === 'invalid_type' && issue.expected === 'int') {
    return {
      path,
      message: `expected a whole number, found ${describeFound(valueAt(raw, issue.path))}`,
    };
  }
  return {
    path,
    message: `expected ${expectation(issue)}, found ${describeFound(valueAt(raw, issue.path))}`,
  };
}
