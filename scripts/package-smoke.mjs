#!/usr/bin/env node
// The npm package, as a user gets it: `npm pack` (which builds through `prepare`), install the
// tarball into an empty folder (dependencies come from the registry), then
//   1. `anubis --version`;
//   2. a one-backend proxy: `anubis --listen 127.0.0.1:0 --backend URL`, one request through it;
//   3. the library example (examples/library/embed.mjs, as shipped) against the installed package;
//   4. the published type declarations: a TypeScript file using the API type-checks.
// Everything runs in a temporary folder, removed at the end. Run: npm run test:package (CI).
/* global setTimeout, clearTimeout, fetch */
import { spawn, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const work = mkdtempSync(join(tmpdir(), 'anubis-package-'));
const app = join(work, 'app');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const children = new Set();

function step(text) {
  process.stdout.write(`package: ${text}\n`);
}

function run(command, args, cwd) {
  return execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function fail(message) {
  throw new Error(message);
}

/** Resolves with the first match of `pattern` in the child's output. */
function waitForOutput(child, pattern, timeoutMs = 20_000) {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(
      () => reject(new Error(`timed out waiting for ${pattern}:\n${seen}`)),
      timeoutMs,
    );
    const onData = (chunk) => {
      seen += chunk.toString();
      const match = seen.match(pattern);
      if (match !== null) {
        clearTimeout(timer);
        resolve(match);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited (${code}) before ${pattern}:\n${seen}`));
    });
  });
}

async function main() {
  step(`npm pack (builds through prepare) into ${work}`);
  const packed = JSON.parse(run(npm, ['pack', '--json', '--pack-destination', work], root));
  const tarball = join(work, packed[0].filename);
  const files = packed[0].files.map((f) => f.path);
  for (const required of ['dist/cli/main.js', 'dist/index.js', 'dist/index.d.ts', 'README.md']) {
    if (!files.includes(required)) fail(`the package lacks ${required}`);
  }
  const stray = files.filter((f) => /^(src|test|bench|scripts)\//.test(f) || f.endsWith('.map'));
  if (stray.length > 0) fail(`the package ships files it should not: ${stray.join(', ')}`);
  step(`${files.length} files, ${(packed[0].size / 1024).toFixed(0)} KiB packed`);

  mkdirSync(app);
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'smoke', private: true, type: 'module' }),
  );
  step('npm install the tarball into an empty folder');
  run(npm, ['install', '--no-audit', '--no-fund', '--loglevel=error', tarball], app);
  const bin = join(app, 'node_modules', '.bin', 'anubis');

  const version = run(bin, ['--version'], app).trim();
  if (version !== `anubis ${manifest.version}`)
    fail(`anubis --version printed ${JSON.stringify(version)}`);
  step(`anubis --version: ${version}`);

  const backend = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('hello from the smoke backend\n'));
  });
  await new Promise((resolve) => backend.listen(0, '127.0.0.1', resolve));
  try {
    const backendUrl = `http://127.0.0.1:${backend.address().port}`;
    const child = spawn(
      bin,
      ['--listen', '127.0.0.1:0', '--backend', backendUrl, '--workers', '1'],
      {
        cwd: app,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    children.add(child);
    const [, port] = await waitForOutput(child, /"address":"127\.0\.0\.1:(\d+)"/);
    const response = await fetch(`http://127.0.0.1:${port}/smoke?q=1`);
    const body = await response.text();
    if (response.status !== 200 || body !== 'hello from the smoke backend\n') {
      fail(`proxy answered ${response.status} ${JSON.stringify(body)}`);
    }
    step(`one-backend proxy: GET through anubis answered ${response.status} from ${backendUrl}`);
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const [code] = await exited;
    children.delete(child);
    if (code !== 0) fail(`anubis exited with ${code} after SIGTERM`);
  } finally {
    backend.closeAllConnections();
    backend.close();
  }

  copyFileSync(
    join(app, 'node_modules', 'anubis', 'examples', 'library', 'embed.mjs'),
    join(app, 'embed.mjs'),
  );
  const output = run(process.execPath, ['embed.mjs'], app);
  for (const line of [
    'canary request: 200 Hello from canary',
    'event: backend-down web/canary',
    'closed',
  ]) {
    if (!output.includes(line))
      fail(`examples/library/embed.mjs did not print ${JSON.stringify(line)}:\n${output}`);
  }
  step('examples/library/embed.mjs ran against the installed package');

  writeFileSync(
    join(app, 'check.ts'),
    `import { createLoadBalancer, type BackendEvent, type Strategy } from 'anubis';
const strategy: Strategy = { name: 'first', setBackends() {}, pick: () => undefined };
const lb = await createLoadBalancer({
  listeners: [{ address: '127.0.0.1:0', pool: 'p' }],
  pools: { p: { strategy, backends: [{ url: 'http://127.0.0.1:9', weight: 2 }] } },
});
lb.on('backend-down', (event: BackendEvent) => console.log(event.backend, event.reason));
await lb.close();
// @ts-expect-error: weight is a number
void createLoadBalancer({ listeners: [], pools: { p: { backends: [{ url: 'x', weight: 'heavy' }] } } });
`,
  );
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  run(
    process.execPath,
    [
      tsc,
      '--noEmit',
      '--strict',
      '--module',
      'nodenext',
      '--moduleResolution',
      'nodenext',
      '--target',
      'es2022',
      '--skipLibCheck',
      '--typeRoots',
      join(root, 'node_modules', '@types'),
      '--types',
      'node',
      'check.ts',
    ],
    app,
  );
  step('the published type declarations type-check a program using the API');
}

main().then(
  () => {
    rmSync(work, { recursive: true, force: true });
    step('ok');
  },
  (error) => {
    for (const child of children) child.kill('SIGKILL');
    process.stderr.write(
      `package: FAILED: ${error.stack ?? error}\n${error.stdout ?? ''}${error.stderr ?? ''}\n`,
    );
    rmSync(work, { recursive: true, force: true });
    process.exitCode = 1;
  },
);
