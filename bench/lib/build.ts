/**
 * Compiles anubis (src/) and the bench's child scripts to .cache/bench-build with tsc, so the
 * processes under test run plain JavaScript (no tsx loader thread in their memory or CPU).
 *
 * With a git ref (`--ref HEAD`), src/ is taken from that commit (`git archive`) instead of the
 * working tree: a stable snapshot while the tree is being edited.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface BuildResult {
  /** Directory holding src/cli/main.js and bench/children/*.js. */
  readonly dir: string;
  /** tsc's complaints (the output is emitted anyway), or '' when clean. */
  readonly typeErrors: string;
}

/**
 * `name` picks the cache folders (`.cache/<name>-build`, `.cache/<name>-src`), so that a tool
 * other than `npm run bench` (bench/fast-path-ceiling.ts) does not delete a build in use.
 */
export function buildForBench(root: string, ref?: string, name = 'bench'): BuildResult {
  const dir = join(root, `.cache/${name}-build`);
  const tsc = join(root, 'node_modules/typescript/bin/tsc');
  rmSync(dir, { recursive: true, force: true });
  let project = join(root, 'bench/tsconfig.build.json');
  if (ref !== undefined) {
    const source = join(root, `.cache/${name}-src`);
    rmSync(source, { recursive: true, force: true });
    mkdirSync(source, { recursive: true });
    const archive = spawnSync(
      'sh',
      ['-c', `git -C "${root}" archive "${ref}" src | tar -x -C "${source}"`],
      {
        encoding: 'utf8',
      },
    );
    if (archive.status !== 0) throw new Error(`cannot export src/ at ${ref}: ${archive.stderr}`);
    cpSync(join(root, 'bench/children'), join(source, 'bench/children'), { recursive: true });
    project = join(source, 'tsconfig.json');
    writeFileSync(
      project,
      JSON.stringify({
        extends: join(root, 'tsconfig.json'),
        compilerOptions: {
          rootDir: '.',
          outDir: dir,
          noEmit: false,
          declaration: false,
          sourceMap: false,
        },
        include: ['src', 'bench/children'],
      }),
    );
  }
  const out = spawnSync(process.execPath, [tsc, '-p', project, '--outDir', dir], {
    encoding: 'utf8',
  });
  if (!existsSync(join(dir, 'src/cli/main.js'))) {
    throw new Error(`build failed: no src/cli/main.js emitted\n${out.stdout.slice(0, 2_000)}`);
  }
  // src/version.ts reads ../package.json relative to itself, as it does from dist/.
  copyFileSync(join(root, 'package.json'), join(dir, 'package.json'));
  return { dir, typeErrors: out.status === 0 ? '' : out.stdout };
}
