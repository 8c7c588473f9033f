/**
 * The systems under test and the backends behind them, each started as its own process from
 * a configuration file written to the bench's temp directory, on free 127.0.0.1 ports, and
 * stopped by PID. Nothing here touches the system's nginx or HAProxy services.
 */
import type { AcceptSocketsSetting } from '../../src/server/accept-sockets.js';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  freePort,
  freePorts,
  spawnProcess,
  waitForPort,
  which,
  type ManagedProcess,
} from './procs.js';

export const NGINX = which('nginx');
export const HAPROXY = which('haproxy');
/** HAProxy needs ~2 descriptors per connection: this fits a 20,000 open-file limit. */
export const HAPROXY_MAXCONN = 9_000;

export interface BenchContext {
  /** Temp directory for configuration files, logs and pid files. */
  readonly dir: string;
  /** Compiled anubis and child scripts (…/src/cli/main.js, …/bench/children/*.js). */
  readonly buildDir: string;
  /** CPU list for proxies (undefined: not pinned). */
  readonly proxyCpus: string | undefined;
  /** CPU list for load generator and backends. */
  readonly loadCpus: string | undefined;
  /** Node binary used for anubis and the Node peers. */
  readonly node: string;
}

/** CPUs of a run: pinned, the proxy under test on CPU 0 and the load and backends on CPU 1. */
export function benchCpus(pinned: boolean): Pick<BenchContext, 'proxyCpus' | 'loadCpus'> {
  return pinned ? { proxyCpus: '0', loadCpus: '1' } : { proxyCpus: undefined, loadCpus: undefined };
}

export interface RunningPeer {
  readonly name: string;
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  readonly proc: ManagedProcess;
}

export interface BackendSpec {
  readonly delayMs: number;
  readonly degraded: boolean;
}

export interface RunningBackends {
  readonly urls: string[];
  readonly proc: ManagedProcess;
  readonly kind: 'nginx' | 'node';
}

/** Waits for a started process's port; if it never listens, stops it (no process left behind). */
async function ready(port: number, timeoutMs: number, proc: ManagedProcess): Promise<void> {
  try {
    await waitForPort(port, timeoutMs, proc);
  } catch (error) {
    await proc.stop(1_000);
    throw error;
  }
}

/** The Node backend process with one listener per spec. */
export async function startNodeBackends(
  ctx: BenchContext,
  specs: readonly BackendSpec[],
  stalls = false,
): Promise<RunningBackends> {
  const ports = await freePorts(specs.length);
  const proc = spawnProcess(
    'node-backend',
    ctx.node,
    [join(ctx.buildDir, 'bench/children/backend.js')],
    {
      cpus: ctx.loadCpus,
      env: {
        ...process.env,
        BENCH_STALLS: stalls ? '1' : '0',
        BENCH_BACKENDS: JSON.stringify(specs.map((s, i) => ({ ...s, port: ports[i] }))),
      },
    },
  );
  for (const port of ports) await ready(port, 15_000, proc);
  return { urls: ports.map((p) => `http://127.0.0.1:${p}`), proc, kind: 'node' };
}

const nginxCommon = (dir: string): string => `
worker_processes 1;
worker_rlimit_nofile 30000;
${process.getuid?.() === 0 ? 'user root root;' : ''}
daemon off;
pid ${dir}/nginx-PORT.pid;
error_log ${dir}/nginx-PORT.error.log warn;
events { worker_connections 25000; multi_accept on; }
`;

const nginxHttpCommon = (dir: string): string => `
  access_log off;
  client_body_temp_path ${dir}/nginx-body;
  proxy_temp_path ${dir}/nginx-proxy;
  fastcgi_temp_path ${dir}/nginx-fastcgi;
  uwsgi_temp_path ${dir}/nginx-uwsgi;
  scgi_temp_path ${dir}/nginx-scgi;
  keepalive_requests 10000000;
  keepalive_timeout 60s;
  client_max_body_size 0;
  client_body_buffer_size 1m;
`;

function startNginx(
  ctx: BenchContext,
  name: string,
  port: number,
  conf: string,
  cpus: string | undefined,
): ManagedProcess {
  const file = join(ctx.dir, `${name}-${port}.conf`);
  writeFileSync(file, conf.replaceAll('PORT', String(port)));
  return spawnProcess(
    name,
    NGINX as string,
    ['-e', join(ctx.dir, `nginx-${port}.stderr.log`), '-p', ctx.dir, '-c', file],
    { cpus },
  );
}

/** The backend that is never the bottleneck: nginx when installed, else the Node backend. */
export function startFastBackend(ctx: BenchContext): Promise<RunningBackends> {
  return NGINX !== undefined
    ? startNginxBackend(ctx)
    : startNodeBackends(ctx, [{ delayMs: 0, degraded: false }]);
}

/**
 * nginx as the never-bottleneck backend: `return 200` for small answers, a static 1 MiB file,
 * and /check, whose response header x-seen-xff echoes the request's X-Forwarded-For.
 */
export async function startNginxBackend(ctx: BenchContext): Promise<RunningBackends> {
  const port = await freePort();
  writeFileSync(join(ctx.dir, '1m.bin'), Buffer.alloc(1 << 20, 97));
  const conf = `${nginxCommon(ctx.dir)}
http {
${nginxHttpCommon(ctx.dir)}
  default_type text/plain;
  server {
    listen 127.0.0.1:${port};
    location = /1m { alias ${ctx.dir}/1m.bin; }
    # Echoes the X-Forwarded-For it received, for tools that check a proxy forwards it.
    location = /check { add_header x-seen-xff "$http_x_forwarded_for" always; return 200 "check\\n"; }
    location / { return 200 "hello world\\n"; }
  }
}
`;
  const proc = startNginx(ctx, 'nginx-backend', port, conf, ctx.loadCpus);
  await ready(port, 15_000, proc);
  return { urls: [`http://127.0.0.1:${port}`], proc, kind: 'nginx' };
}

/** anubis from the compiled CLI, with a configuration file (JSON is YAML). */
export async function startAnubis(
  ctx: BenchContext,
  name: string,
  backends: readonly string[],
  options: {
    workers: number | 'auto';
    strategy?: string;
    mode?: 'http' | 'tcp';
    /** Upstream HTTP/1.1 client (the pool's `client` setting); anubis's own by default. */
    client?: 'anubis' | 'undici';
    /** The listener's HTTP/1.1 fast path (on by default); false: node:http serves all. */
    fastPath?: boolean;
    /** `busyPolling` (off by default): the event loop polls while requests arrive. */
    busyPolling?: boolean;
    /** The listener's `acceptSockets` (`auto` by default). */
    acceptSockets?: AcceptSocketsSetting;
  },
): Promise<RunningPeer> {
  const port = await freePort();
  const config = {
    workers: options.workers,
    log: { level: 'warn' },
    // Like the nginx and HAProxy configurations: 60 s client keep-alive, no connection cap
    // below what the idle-connection scenario holds.
    limits: { keepAliveTimeout: '60s', maxConnections: 100_000 },
    ...(options.busyPolling === true ? { busyPolling: true } : {}),
    listeners: [
      {
        address: `127.0.0.1:${port}`,
        pool: 'bench',
        ...(options.mode === 'tcp' ? { mode: 'tcp' } : {}),
        ...(options.fastPath === false ? { fastPath: false } : {}),
        ...(options.acceptSockets === undefined ? {} : { acceptSockets: options.acceptSockets }),
      },
    ],
    pools: {
      bench: {
        strategy: options.strategy ?? 'round-robin',
        backends: backends.map((url) => ({
          url: options.mode === 'tcp' ? url.replace('http://', 'tcp://') : url,
        })),
        keepAliveTimeout: '60s',
        ...(options.client === undefined ? {} : { client: options.client }),
      },
    },
  };
  const file = join(ctx.dir, `anubis-${port}.yaml`);
  writeFileSync(file, JSON.stringify(config, null, 2));
  const proc = spawnProcess(
    name,
    ctx.node,
    [join(ctx.buildDir, 'src/cli/main.js'), '--config', file],
    // workers: auto spreads over every core; pinning it to one would defeat the point.
    { cpus: options.workers === 1 ? ctx.proxyCpus : undefined },
  );
  await ready(port, 20_000, proc);
  return { name, url: `http://127.0.0.1:${port}`, proc };
}

/** nginx as a reverse proxy, one worker, upstream keep-alive, X-Forwarded-* like anubis. */
export async function startNginxProxy(
  ctx: BenchContext,
  name: string,
  backends: readonly string[],
  balance: string,
): Promise<RunningPeer> {
  const port = await freePort();
  const servers = backends
    .map((b) => `    server ${b.replace('http://', '')} max_fails=0;`)
    .join('\n');
  const conf = `${nginxCommon(ctx.dir)}
http {
${nginxHttpCommon(ctx.dir)}
  upstream bench {
${balance === '' ? '' : `    ${balance};\n`}${servers}
    keepalive 512;
    keepalive_requests 10000000;
    keepalive_timeout 60s;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://bench;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
      proxy_max_temp_file_size 0;
      proxy_next_upstream off;
      proxy_read_timeout 60s;
    }
  }
}
`;
  const proc = startNginx(ctx, name, port, conf, ctx.proxyCpus);
  await ready(port, 15_000, proc);
  return { name, url: `http://127.0.0.1:${port}`, proc };
}

/** HAProxy, one thread: HTTP mode (keep-alive both sides, X-Forwarded-For) or TCP mode. */
export async function startHaproxy(
  ctx: BenchContext,
  name: string,
  backends: readonly string[],
  balance: string,
  mode: 'http' | 'tcp' = 'http',
): Promise<RunningPeer> {
  const port = await freePort();
  const servers = backends.map((b, i) => `  server s${i} ${b.replace('http://', '')}`).join('\n');
  const conf = `global
  nbthread 1
  maxconn ${HAPROXY_MAXCONN}
  log stderr format raw local0 emerg

defaults
  mode ${mode}
  timeout connect 5s
  timeout client 60s
  timeout server 60s
${mode === 'http' ? '  timeout http-keep-alive 60s\n  option forwardfor\n  http-reuse always\n' : ''}
frontend fe
  bind 127.0.0.1:${port}
  default_backend be

backend be
  balance ${balance}
${servers}
`;
  const file = join(ctx.dir, `haproxy-${port}.cfg`);
  writeFileSync(file, conf);
  const proc = spawnProcess(name, HAPROXY as string, ['-db', '-f', file], { cpus: ctx.proxyCpus });
  await ready(port, 15_000, proc);
  return { name, url: `http://127.0.0.1:${port}`, proc };
}

/** fastify + @fastify/reply-from. */
export async function startFastifyPeer(
  ctx: BenchContext,
  name: string,
  backends: readonly string[],
): Promise<RunningPeer> {
  const port = await freePort();
  const proc = spawnProcess(
    name,
    ctx.node,
    [join(ctx.buildDir, 'bench/children/fastify-proxy.js'), String(port), ...backends],
    { cpus: ctx.proxyCpus },
  );
  await ready(port, 20_000, proc);
  return { name, url: `http://127.0.0.1:${port}`, proc };
}

/** http-proxy (node-http-proxy). */
export async function startHttpProxyPeer(
  ctx: BenchContext,
  name: string,
  backend: string,
): Promise<RunningPeer> {
  const port = await freePort();
  const proc = spawnProcess(
    name,
    ctx.node,
    [join(ctx.buildDir, 'bench/children/http-proxy-peer.js'), String(port), backend],
    { cpus: ctx.proxyCpus },
  );
  await ready(port, 20_000, proc);
  return { name, url: `http://127.0.0.1:${port}`, proc };
}

/** nginx's stream module (layer 4), when the installed nginx has it. */
export function nginxStreamModule(): string | undefined {
  for (const file of [
    '/usr/lib/nginx/modules/ngx_stream_module.so',
    '/usr/share/nginx/modules/ngx_stream_module.so',
  ]) {
    if (existsSync(file)) return file;
  }
  return undefined;
}

/** nginx as a TCP proxy (stream module), one worker. */
export async function startNginxStream(
  ctx: BenchContext,
  name: string,
  backend: string,
  module: string,
): Promise<RunningPeer> {
  const port = await freePort();
  const conf = `load_module ${module};
${nginxCommon(ctx.dir)}
stream {
  server {
    listen 127.0.0.1:${port};
    proxy_pass ${backend.replace('http://', '')};
  }
}
`;
  const proc = startNginx(ctx, name, port, conf, ctx.proxyCpus);
  await ready(port, 15_000, proc);
  return { name, url: `http://127.0.0.1:${port}`, proc };
}
