/**
 * TCP mode (layer 4): anubis `mode: tcp` next to nginx's stream module and HAProxy `mode tcp`,
 * each piping connections to the same backend. Keep-alive requests measure the byte pump;
 * a new connection per request measures accept + connect + teardown.
 */
import {
  HAPROXY,
  NGINX,
  nginxStreamModule,
  startAnubis,
  startHaproxy,
  startNginxStream,
  type BenchContext,
  type RunningPeer,
  startFastBackend,
} from '../lib/peers.js';
import {
  THROUGHPUT_CASES,
  measureCases,
  type ThroughputOptions,
  type ThroughputResult,
} from './throughput.js';

export const TCP_CASE_IDS = ['small-ka-50', 'no-keepalive', 'get-1m'];

export async function runTcp(
  ctx: BenchContext,
  options: Omit<ThroughputOptions, 'cases'> & { readonly quick: boolean },
): Promise<ThroughputResult> {
  const backends = await startFastBackend(ctx);
  const backend = backends.urls[0] as string;
  const peers: RunningPeer[] = [];
  try {
    peers.push(await startAnubis(ctx, 'anubis-tcp-1w', [backend], { workers: 1, mode: 'tcp' }));
    const module = nginxStreamModule();
    if (NGINX !== undefined && module !== undefined) {
      peers.push(await startNginxStream(ctx, 'nginx-stream-1w', backend, module));
    }
    if (HAPROXY !== undefined) {
      peers.push(await startHaproxy(ctx, 'haproxy-tcp-1t', [backend], 'roundrobin', 'tcp'));
    }
    const targets = [
      { name: 'direct', url: backend },
      ...peers.map((p) => ({ name: p.name, url: p.url })),
    ];
    const ids = options.quick ? ['small-ka-50'] : TCP_CASE_IDS;
    const cases = THROUGHPUT_CASES.filter((c) => ids.includes(c.id));
    return {
      backend: backends.kind,
      peers: targets.map((t) => t.name),
      cases: await measureCases(ctx, targets, { ...options, cases }, 'tcp'),
    };
  } finally {
    for (const peer of peers) await peer.proc.stop();
    await backends.proc.stop();
  }
}
