// examples/docker-compose and the Dockerfile, without a Docker engine: the compose file is
// validated by `docker compose config` when the client (and its compose plugin) is installed,
// and always checked for what the demo relies on: `hello` scales (no fixed name, no host
// port), anubis finds it by DNS on the port it listens on, the files the Dockerfile copies
// exist and are not excluded from the build context.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { loadConfigFile } from '../../src/config/load.js';
import { discoveryFor } from '../../src/discovery/start.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DEMO = join(ROOT, 'examples', 'docker-compose');
const COMPOSE_FILE = join(DEMO, 'docker-compose.yml');

interface Service {
  command?: string[];
  container_name?: string;
  ports?: string[];
  volumes?: string[];
  build?: { context: string; dockerfile: string };
  deploy?: { replicas?: number };
}

function compose(): Record<string, Service> {
  const file = parse(readFileSync(COMPOSE_FILE, 'utf8'), { merge: true }) as {
    services: Record<string, Service>;
  };
  return file.services;
}

/** The compose command available here: `docker compose`, `docker-compose`, or none. */
function composeCommand(): { command: string; args: string[] } | string {
  const docker = spawnSync('docker', ['compose', 'version'], { encoding: 'utf8' });
  if (docker.error === undefined && docker.status === 0)
    return { command: 'docker', args: ['compose'] };
  const legacy = spawnSync('docker-compose', ['version'], { encoding: 'utf8' });
  if (legacy.error === undefined && legacy.status === 0)
    return { command: 'docker-compose', args: [] };
  return docker.error === undefined
    ? 'the docker client is installed but not its compose plugin (docker compose)'
    : 'no docker client installed';
}

void test('docker compose config accepts examples/docker-compose', (t) => {
  const available = composeCommand();
  if (typeof available === 'string') {
    t.skip(available);
    return;
  }
  const result = spawnSync(
    available.command,
    [...available.args, '-f', COMPOSE_FILE, 'config', '--quiet'],
    {
      encoding: 'utf8',
      cwd: DEMO,
    },
  );
  assert.equal(result.status, 0, `${result.stdout}${result.stderr}`);
});

void test('the compose demo scales: hello has no fixed name or host port, anubis discovers it', async () => {
  const services = compose();
  const hello = services.hello;
  const anubis = services.anubis;
  assert.ok(hello !== undefined && anubis !== undefined, 'services hello and anubis');
  assert.equal(hello.container_name, undefined, 'a fixed container name prevents --scale');
  assert.equal(hello.ports, undefined, 'a published host port prevents --scale');
  assert.equal(hello.deploy?.replicas, 3, 'three hello-world servers by default');
  const listen = hello.command?.[hello.command.indexOf('--listen') + 1];
  assert.equal(hello.command?.[0], 'hello');
  assert.match(listen ?? '', /^0\.0\.0\.0:\d+$/);

  const mount = anubis.volumes?.find((v) => v.endsWith(':/etc/anubis/anubis.yaml:ro'));
  assert.ok(mount !== undefined, 'anubis.yaml is mounted where the image reads it');
  const config = await loadConfigFile(join(DEMO, mount.split(':')[0] as string));
  const backend = config.pools.hello?.backends[0];
  assert.ok(backend !== undefined);
  const url = new URL(backend.url);
  assert.equal(url.hostname, 'hello', 'the backend is the compose service, by name');
  assert.equal(url.port, listen?.split(':')[1], 'on the port the hello servers listen on');
  assert.equal(discoveryFor(backend)?.type, 'dns', 'resolved to every replica');
  const listener = config.listeners[0];
  assert.equal(listener?.address.host, '0.0.0.0', 'reachable from outside the container');
  assert.ok(anubis.ports?.includes(`8080:${listener.address.port}`));
});

void test('the Dockerfile copies files that exist and that .dockerignore lets through', () => {
  const services = compose();
  const context = join(DEMO, services.anubis?.build?.context ?? '.');
  const dockerfile = readFileSync(
    join(context, services.anubis?.build?.dockerfile ?? 'Dockerfile'),
    'utf8',
  );
  const ignored = readFileSync(join(context, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const copies = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) =>
    (m[1] as string).split(/\s+/),
  );
  assert.ok(copies.length >= 5, `found COPY sources: ${copies.join(', ')}`);
  for (const source of copies) {
    assert.ok(existsSync(join(context, source)), `${source} exists`);
    assert.ok(!ignored.includes(source), `${source} is not in .dockerignore`);
  }
  assert.match(dockerfile, /^USER [1-9]\d*:[1-9]\d*$/m, 'runs as a non-root user, by number');
  assert.match(dockerfile, /^HEALTHCHECK .*\n\s+CMD \["node", "dist\/cli\/healthcheck\.js"\]/m);
  assert.ok(existsSync(join(ROOT, 'src', 'cli', 'healthcheck.ts')));
  assert.match(
    dockerfile,
    /npm ci --omit=dev/,
    'production dependencies only in the runtime stage',
  );
});
