/**
 * `anubis demo`: the classic docker-compose demo (hello-world servers behind a load balancer)
 * without Docker. Three hello-world backends on loopback, anubis in front on 127.0.0.1:8080.
 *
 * `anubis hello`: one hello-world backend, for the docker-compose example and quick tests.
 */
import { validateConfig } from '../config/load.js';
import { formatAddress, parseListenAddress } from '../config/units.js';
import { ListenError, UsageError } from '../errors.js';
import { LoadBalancer } from '../load-balancer.js';
import { createLogger } from '../logging/logger.js';
import { startHelloServer, type HelloServer } from '../demo/hello-server.js';
import { applyOverrides, type CliArgs } from './args.js';

const DEMO_BACKENDS = 3;

function waitForStopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
}

export async function runDemo(args: CliArgs): Promise<number> {
  if (args.config !== undefined || args.backends.length > 0) {
    throw new UsageError(
      'demo starts its own backends; it takes --listen, --strategy and --log-* flags only',
    );
  }
  const listen = args.listen ?? '127.0.0.1:8080';
  const backends: HelloServer[] = [];
  for (let i = 1; i <= DEMO_BACKENDS; i++) backends.push(await startHelloServer(`server ${i}`));

  const config = validateConfig(
    applyOverrides(
      {
        workers: 1,
        log: { format: 'pretty' },
        listeners: [{ address: listen, pool: 'hello' }],
        pools: {
          hello: {
            strategy: args.strategy ?? 'round-robin',
            backends: backends.map((b) => ({ url: b.url, name: b.name.replace(' ', '-') })),
            exposeBackendHeader: true,
          },
        },
      },
      args,
    ),
    'demo',
  );
  const logger = createLogger(config.log);
  let balancer: LoadBalancer;
  try {
    balancer = await LoadBalancer.start(config, { logger });
  } catch (error) {
    await Promise.all(backends.map((b) => b.close()));
    if (error instanceof ListenError) {
      throw new UsageError(
        `${error.message}\nIs something else using it? Pick another address with --listen 127.0.0.1:8081`,
      );
    }
    throw error;
  }
  const bound = balancer.addresses()[0];
  const url = bound === undefined ? listen : `http://${formatAddress(bound.address, bound.port)}`;
  const lines = [
    '',
    `anubis demo: ${DEMO_BACKENDS} hello-world backends behind anubis (strategy: ${config.pools.hello?.strategy.name})`,
    ...backends.map((b) => `  backend ${b.name.padEnd(10)} ${b.url}`),
    `  load balancer     ${url}/`,
    '',
    `Try it:  for i in 1 2 3 4 5 6; do curl -s ${url}/; done`,
    'Each answer comes from the next server in turn. Press Ctrl+C to stop.',
    '',
  ];
  process.stdout.write(lines.join('\n') + '\n');
  await waitForStopSignal();
  await balancer.close(2_000);
  await Promise.all(backends.map((b) => b.close()));
  return 0;
}

export async function runHello(args: CliArgs): Promise<number> {
  const listen = args.listen ?? '127.0.0.1:8000';
  const address = parseListenAddress(listen);
  if (address === undefined)
    throw new UsageError(`--listen expects host:port, found ${JSON.stringify(listen)}`);
  const name = args.name ?? process.env.HOSTNAME ?? 'hello';
  const server = await startHelloServer(name, address.host, address.port);
  process.stdout.write(`hello-world backend "${name}" listening on ${server.url}\n`);
  await waitForStopSignal();
  await server.close();
  return 0;
}
