/**
 * The bench's C tools (bench/tools/*.c): compiled with gcc into .cache/<name> on first use,
 * again only when the source is newer than the binary.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { which } from './procs.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Source and binary of the tool `name` (bench/tools/<name>.c → .cache/<name>). */
export function toolPaths(name: string): { readonly source: string; readonly binary: string } {
  return { source: join(ROOT, `bench/tools/${name}.c`), binary: join(ROOT, `.cache/${name}`) };
}

function mtimeMs(path: string): number | undefined {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return undefined;
  }
}

/**
 * Path of the compiled tool, compiling it when the binary is missing or older than its
 * source; undefined when gcc is not installed. A compile error throws (with gcc's output):
 * the source is ours, so a failure is a bug to see, not a reason to fall back quietly.
 */
export function compiledTool(
  name: string,
  libraries: readonly string[] = [],
  gcc: string | undefined = which('gcc'),
): string | undefined {
  const { source, binary } = toolPaths(name);
  const built = mtimeMs(binary);
  const written = mtimeMs(source);
  if (written === undefined) throw new Error(`${source} is missing`);
  if (built !== undefined && built >= written) return binary;
  if (gcc === undefined) return undefined;
  mkdirSync(join(ROOT, '.cache'), { recursive: true });
  // Compiled under a name of its own, then renamed: a test and a bench compiling at the same
  // time never run a half-written binary.
  const temp = `${binary}.${process.pid}.tmp`;
  const out = spawnSync(
    gcc,
    ['-std=c11', '-O2', '-Wall', '-Wextra', '-o', temp, source, ...libraries],
    { encoding: 'utf8' },
  );
  if (out.status !== 0) {
    rmSync(temp, { force: true });
    throw new Error(`gcc failed on ${source}:\n${out.stderr}${out.stdout}`);
  }
  renameSync(temp, binary);
  return binary;
}
