/**
 * The admin listener: JSON API, Prometheus metrics and the live dashboard, on an address of
 * its own (loopback unless `admin.allowRemote`), never on a public listener. Optional bearer
 * token (`admin.token`) on everything but the dashboard page itself, which is static and
 * reads the token from the URL fragment (`/#token=...`, never sent to a server).
 *
 *   GET    /                                      dashboard (HTML)
 *   GET    /metrics                               Prometheus text format
 *   GET    /api/pools                             live state of every pool and backend
 *   GET    /api/pools/:pool                       one pool
 *   GET    /api/pools/:pool/explain               the strategy's scores (if it explains)
 *   POST   /api/pools/:pool/backends              add a backend {url, weight?, name?}
 *   PUT    /api/pools/:pool/backends/:backend     change {weight?, state?}
 *   POST   /api/pools/:pool/backends/:backend/(drain|disable|enable)
 *   DELETE /api/pools/:pool/backends/:backend     remove (drains first)
 *   POST   /api/reload                            re-read the configuration file
 *
 * Errors are JSON: {"error": {"code": "ANUBIS_ADMIN_NOT_FOUND", "message": "..."}}.
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import type { AdminConfig } from '../config/admin-schema.js';
import { formatAddress } from '../config/units.js';
import {
  AdminRequestError,
  AnubisError,
  ConfigError,
  ConfigReadError,
  ListenError,
  StrategyLoadError,
} from '../errors.js';
import type { Logger } from '../logging/logger.js';
import {
  backendStateSchema,
  runtimeChangeSchema,
  type ControlPlane,
  type RuntimeChange,
} from './control.js';
import { DASHBOARD_HTML } from './dashboard-page.js';
import { MetricsRenderer } from './metrics.js';

const MAX_BODY_BYTES = 64 * 1024;

const backendUpdateSchema = z
  .strictObject({
    weight: z.number().int().min(1).max(10_000).optional(),
    state: backendStateSchema.optional(),
  })
  .refine((b) => b.weight !== undefined || b.state !== undefined, {
    message: 'expected weight and/or state',
  });

const ACTION_STATES = { drain: 'draining', disable: 'disabled', enable: 'enabled' } as const;

type Route = (
  match: RegExpExecArray,
  req: IncomingMessage,
) => Promise<{ status: number; body: unknown }>;

export class AdminServer {
  readonly server: Server;
  readonly control: ControlPlane;
  private readonly config: AdminConfig;
  private readonly logger: Logger;
  private readonly metrics = new MetricsRenderer();
  private readonly token: Buffer | undefined;
  private readonly routes: [string, RegExp, Route][];

  constructor(config: AdminConfig, control: ControlPlane, logger: Logger) {
    this.config = config;
    this.control = control;
    this.logger = logger;
    this.token = config.token === undefined ? undefined : Buffer.from(`Bearer ${config.token}`);
    this.server = createServer({ keepAliveTimeout: 5_000 }, (req, res) => {
      this.handle(req, res).catch((error: unknown) => this.sendError(res, error));
    });
    const seg = '([^/]+)';
    this.routes = [
      ['GET', /^\/api\/pools$/, async () => ({ status: 200, body: await control.sampler.view() })],
      [
        'GET',
        new RegExp(`^/api/pools/${seg}$`),
        async (m) => ({ status: 200, body: await this.pool(param(m, 1)) }),
      ],
      [
        'GET',
        new RegExp(`^/api/pools/${seg}/explain$`),
        async (m) => ({ status: 200, body: await control.explain(param(m, 1)) }),
      ],
      [
        'POST',
        new RegExp(`^/api/pools/${seg}/backends$`),
        async (m, req) => {
          const backend = (await readJson(req)) as Record<string, unknown>;
          return {
            status: 201,
            body: await this.change({ op: 'add', pool: param(m, 1), backend }),
          };
        },
      ],
      [
        'PUT',
        new RegExp(`^/api/pools/${seg}/backends/${seg}$`),
        async (m, req) => {
          const update = parseWith(backendUpdateSchema, await readJson(req));
          const pool = param(m, 1);
          const backend = param(m, 2);
          if (update.weight !== undefined)
            await this.change({ op: 'weight', pool, backend, weight: update.weight });
          if (update.state !== undefined)
            await this.change({ op: 'state', pool, backend, state: update.state });
          return { status: 200, body: await this.backendView(pool, backend) };
        },
      ],
      [
        'POST',
        new RegExp(`^/api/pools/${seg}/backends/${seg}/(drain|disable|enable)$`),
        async (m) => {
          const pool = param(m, 1);
          const backend = param(m, 2);
          const state = ACTION_STATES[m[3] as keyof typeof ACTION_STATES];
          await this.change({ op: 'state', pool, backend, state });
          return { status: 200, body: await this.backendView(pool, backend) };
        },
      ],
      [
        'DELETE',
        new RegExp(`^/api/pools/${seg}/backends/${seg}$`),
        async (m) => ({
          status: 200,
          body: await this.change({ op: 'remove', pool: param(m, 1), backend: param(m, 2) }),
        }),
      ],
      [
        'POST',
        /^\/api\/reload$/,
        async () => ({ status: 200, body: { reloaded: true, ...(await control.reload()) } }),
      ],
    ];
  }

  async listen(): Promise<AddressInfo> {
    const { host, port } = this.config.address;
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error): void =>
        reject(new ListenError(`admin ${formatAddress(host, port)}`, error));
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    this.control.sampler.start();
    await this.control.sampler.sample();
    const bound = this.server.address() as AddressInfo;
    this.logger.info({ address: formatAddress(bound.address, bound.port) }, 'admin API listening');
    return bound;
  }

  boundAddress(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  async close(): Promise<void> {
    this.control.sampler.stop();
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] as string;
    const method = req.method ?? 'GET';
    if (method === 'GET' && (path === '/' || path === '/index.html')) {
      send(res, 200, DASHBOARD_HTML, 'text/html; charset=utf-8');
      return;
    }
    this.authorize(req);
    if (method === 'GET' && path === '/metrics') {
      const snapshot = await this.control.sampler.sample(true);
      send(res, 200, await this.metrics.render(snapshot), this.metrics.contentType);
      return;
    }
    let allowed: string[] = [];
    for (const [routeMethod, pattern, route] of this.routes) {
      const match = pattern.exec(path);
      if (match === null) continue;
      if (routeMethod !== method) {
        allowed.push(routeMethod);
        continue;
      }
      const { status, body } = await route(match, req);
      sendJson(res, status, body);
      return;
    }
    if (allowed.length > 0) {
      allowed = [...new Set(allowed)];
      res.setHeader('allow', allowed.join(', '));
      sendJson(res, 405, {
        error: {
          code: 'ANUBIS_ADMIN_BAD_REQUEST',
          message: `${method} not allowed on ${path} (allowed: ${allowed.join(', ')})`,
        },
      });
      return;
    }
    throw new AdminRequestError('ANUBIS_ADMIN_NOT_FOUND', `no such endpoint: ${method} ${path}`);
  }

  private authorize(req: IncomingMessage): void {
    if (this.token === undefined) return;
    const given = Buffer.from(req.headers.authorization ?? '');
    if (given.length !== this.token.length || !timingSafeEqual(given, this.token)) {
      throw new AdminRequestError(
        'ANUBIS_ADMIN_UNAUTHORIZED',
        'missing or wrong bearer token (Authorization: Bearer <admin.token>)',
      );
    }
  }

  private async change(change: RuntimeChange): Promise<unknown> {
    return this.control.change(parseWith(runtimeChangeSchema, change));
  }

  private async pool(name: string): Promise<unknown> {
    const view = await this.control.sampler.view();
    const pool = view.pools.find((p) => p.name === name);
    if (pool === undefined)
      throw new AdminRequestError('ANUBIS_ADMIN_NOT_FOUND', `no pool ${JSON.stringify(name)}`);
    return pool;
  }

  private async backendView(poolName: string, id: string): Promise<unknown> {
    const pool = (await this.pool(poolName)) as { backends: { id: string }[] };
    return pool.backends.find((b) => b.id === id) ?? { id, removed: true };
  }

  private sendError(res: ServerResponse, error: unknown): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (error instanceof ConfigError) {
      sendJson(res, 400, {
        error: { code: error.code, message: error.message, issues: error.issues },
      });
      return;
    }
    if (error instanceof ConfigReadError || error instanceof StrategyLoadError) {
      sendJson(res, 400, { error: { code: error.code, message: error.message } });
      return;
    }
    if (error instanceof AnubisError) {
      sendJson(res, error.status >= 400 && error.status < 600 ? error.status : 500, {
        error: { code: error.code, message: error.message },
      });
      return;
    }
    this.logger.error({ err: error }, 'admin API request failed');
    sendJson(res, 500, { error: { code: 'ANUBIS_ADMIN_INTERNAL', message: String(error) } });
  }
}

function param(match: RegExpExecArray, index: number): string {
  try {
    return decodeURIComponent(match[index] as string);
  } catch {
    throw new AdminRequestError(
      'ANUBIS_ADMIN_BAD_REQUEST',
      `malformed path segment ${match[index]}`,
    );
  }
}

function parseWith<T>(schema: z.ZodType<T>, value: unknown): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const detail = parsed.error.issues
    .map((i) => `${i.path.length > 0 ? i.path.join('.') : 'body'}: ${i.message}`)
    .join('; ');
  throw new AdminRequestError('ANUBIS_ADMIN_BAD_REQUEST', `invalid request: ${detail}`);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) {
      throw new AdminRequestError(
        'ANUBIS_ADMIN_BAD_REQUEST',
        `request body larger than ${MAX_BODY_BYTES} bytes`,
      );
    }
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '')
    throw new AdminRequestError('ANUBIS_ADMIN_BAD_REQUEST', 'expected a JSON body');
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new AdminRequestError(
      'ANUBIS_ADMIN_BAD_REQUEST',
      `invalid JSON body: ${(error as Error).message}`,
    );
  }
}

function send(res: ServerResponse, status: number, body: string, contentType: string): void {
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  send(res, status, `${JSON.stringify(body, null, 2)}\n`, 'application/json; charset=utf-8');
}
