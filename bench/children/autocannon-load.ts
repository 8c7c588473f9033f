/**
 * Fallback load generator when wrk is not installed: runs autocannon with the LoadSpec given
 * as JSON in argv[2] and prints `AUTOCANNON_JSON {LoadResult}`.
 */
import autocannon from 'autocannon';

interface Spec {
  url: string;
  connections: number;
  durationS: number;
  method?: string;
  bodyBytes?: number;
  close?: boolean;
  timeoutS?: number;
  paceMs?: number;
}

const spec = JSON.parse(process.argv[2] ?? '{}') as Spec;
const headers: Record<string, string> = {};
if (spec.close === true) headers.connection = 'close';
if ((spec.bodyBytes ?? 0) > 0) headers['content-type'] = 'application/octet-stream';

const result = await autocannon({
  url: spec.url,
  connections: spec.connections,
  duration: spec.durationS,
  method: spec.method ?? 'GET',
  headers,
  ...((spec.bodyBytes ?? 0) > 0 ? { body: Buffer.alloc(spec.bodyBytes ?? 0, 120) } : {}),
  timeout: spec.timeoutS ?? 5,
  // autocannon paces by rate per connection rather than by a pause; the same offered load.
  ...((spec.paceMs ?? 0) > 0 ? { connectionRate: Math.floor(1000 / (spec.paceMs ?? 1)) } : {}),
});
const durationS = result.duration;
const latency = result.latency;
process.stdout.write(
  `AUTOCANNON_JSON ${JSON.stringify({
    tool: 'autocannon',
    requests: result.requests.total,
    durationS,
    bytes: result.throughput.total,
    errors: result.errors + result.timeouts,
    badStatus: result.non2xx,
    rps: result.requests.total / durationS,
    mbps: result.throughput.total / durationS / 1e6,
    latencyMs: {
      mean: latency.average ?? Number.NaN,
      p50: latency.p50 ?? Number.NaN,
      p90: latency.p90 ?? Number.NaN,
      p99: latency.p99 ?? Number.NaN,
      p999: latency.p99_9 ?? Number.NaN,
      max: latency.max ?? Number.NaN,
    },
  })}\n`,
);
