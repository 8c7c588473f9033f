/**
 * The JSON line both load tools print (bench/lib/report.lua for wrk, `POISSON_JSON` from
 * bench/tools/poisson-load.c), in µs, and its conversion into a LoadResult in ms.
 */
import type { LoadResult } from './load.js';

export interface LatencyJson {
  requests: number;
  durationUs: number;
  bytes: number;
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
  latencyUs: {
    min: number;
    mean: number;
    max: number;
    p50: number;
    p90: number;
    p99: number;
    p999: number;
  };
}

/** The counts and percentiles of `json` (connect, read, write and timeout errors summed). */
export function loadResultFromJson(tool: LoadResult['tool'], json: LatencyJson): LoadResult {
  const durationS = json.durationUs / 1e6;
  const ms = (v: number): number => v / 1_000;
  const e = json.errors;
  return {
    tool,
    requests: json.requests,
    durationS,
    bytes: json.bytes,
    errors: e.connect + e.read + e.write + e.timeout,
    badStatus: e.status,
    rps: durationS > 0 ? json.requests / durationS : 0,
    mbps: durationS > 0 ? json.bytes / durationS / 1e6 : 0,
    latencyMs: {
      mean: ms(json.latencyUs.mean),
      p50: ms(json.latencyUs.p50),
      p90: ms(json.latencyUs.p90),
      p99: ms(json.latencyUs.p99),
      p999: ms(json.latencyUs.p999),
      max: ms(json.latencyUs.max),
    },
  };
}
