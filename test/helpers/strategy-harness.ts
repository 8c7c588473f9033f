/**
 * Driving strategies without sockets: fake backends whose stats behave like Backend's (same
 * latency estimate formula), a seeded random source, and a discrete-event simulation of
 * concurrent clients in virtual time. Deterministic: same seed, same picks.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { createRandom } from '../../src/simulate/prng.js';
import { BackendStats } from '../../src/upstream/backend-stats.js';
import type { BackendView, PickContext, Strategy } from '../../src/strategies/types.js';

/** The simulator's seeded PRNG (mulberry32, src/simulate/prng.ts), returning [0, 1). */
export const seededRandom = createRandom;

/**
 * A backend whose stats change as src/upstream/backend.ts's do (the same BackendStats
 * transitions), in virtual time, and whose answers are whole: headers and last byte at once.
 */
export class FakeBackend extends BackendStats implements BackendView {
  readonly id: string;
  readonly url: string;
  weight: number;
  effectiveWeight: number;
  listener: ((backend: BackendView) => void) | undefined;

  constructor(id: string, weight = 1) {
    super();
    this.id = id;
    this.url = `http://${id}`;
    this.weight = weight;
    this.effectiveWeight = weight;
  }

  /** A request starts at virtual time `at` (default: the last sample's time). */
  started(at = this.lastSampleAt): void {
    this.countStart(at);
    this.listener?.(this);
  }

  /**
   * Ends a request that answered after `ms` (sampled at `now`), or failed. The strategy is told
   * once, after the whole answer (a Backend tells it at headers, last byte and end).
   */
  ended(ms: number, now: number, failed = false): void {
    if (!failed) {
      this.countHeaders(ms, now);
      this.countLastByte(ms, now);
    }
    this.countEnd(failed, now);
    this.listener?.(this);
  }
}

export function fakeBackends(weights: readonly number[]): FakeBackend[] {
  return weights.map((w, i) => new FakeBackend(`b${i}`, w));
}

/** Hands `backends` to the strategy and wires their stats changes to it (as the pool does). */
export function attach(strategy: Strategy, backends: readonly FakeBackend[]): void {
  strategy.setBackends(backends);
  const listener =
    strategy.statsChanged === undefined
      ? undefined
      : (backend: BackendView) => strategy.statsChanged?.(backend);
  for (const backend of backends) backend.listener = listener;
}

export function context(
  overrides: {
    clientAddress?: string;
    url?: string;
    headers?: IncomingHttpHeaders;
    excluded?: ReadonlySet<BackendView>;
  } = {},
): PickContext {
  return {
    clientAddress: overrides.clientAddress ?? '127.0.0.1',
    method: 'GET',
    url: overrides.url ?? '/',
    headers: overrides.headers ?? {},
    excluded: overrides.excluded,
  };
}

export interface SimulationOptions {
  /** Requests in flight at any time (closed-loop clients). */
  readonly concurrency: number;
  readonly requests: number;
  /** Answer time (ms) of a request sent to `backend` at virtual time `now`. */
  readonly latency: (backend: FakeBackend, now: number) => number;
  /** Context of request number i (default: one fixed client). */
  readonly contextFor?: (i: number) => PickContext;
  /** Virtual ms between a client's answer and its next request (default 0). */
  readonly thinkMs?: number;
}

/** Virtual time never runs backwards: a new simulation starts after the backends' last sample. */
function clockOf(backends: readonly FakeBackend[]): number {
  return backends.reduce((latest, b) => Math.max(latest, b.lastSampleAt), 0);
}

export interface SimulationResult {
  /** Picks per backend id. */
  readonly picks: Map<string, number>;
  /** Picks per backend id per virtual second since the simulation started (index = second). */
  readonly timeline: Map<string, number>[];
  /** Virtual time at the start and at the end of the simulation. */
  readonly startMs: number;
  readonly endMs: number;
}

/**
 * Closed-loop clients in virtual time: each sends a request, waits for the answer, sends the
 * next. Backends answer after `latency()`; stats update as a real proxy would update them.
 */
export function simulate(
  strategy: Strategy,
  backends: readonly FakeBackend[],
  options: SimulationOptions,
): SimulationResult {
  attach(strategy, backends);
  const picks = new Map<string, number>(backends.map((b) => [b.id, 0]));
  const timeline: Map<string, number>[] = [];
  const inflight: { at: number; backend: FakeBackend; sentAt: number }[] = [];
  const defaultContext = context();
  let sent = 0;
  const start = clockOf(backends);
  let now = start;
  let clock = start;
  // Strategies that read a clock (least-time's in-flight age, probe interval) run on virtual time.
  if ('now' in strategy && typeof strategy.now === 'function') {
    (strategy as { now: () => number }).now = () => clock;
  }
  const send = (at: number): void => {
    const ctx = options.contextFor?.(sent) ?? defaultContext;
    sent++;
    clock = at;
    const chosen = strategy.pick(ctx) as FakeBackend | undefined;
    if (chosen === undefined) throw new Error('strategy returned no backend');
    picks.set(chosen.id, (picks.get(chosen.id) ?? 0) + 1);
    const second = Math.floor((at - start) / 1000);
    while (timeline.length <= second) timeline.push(new Map());
    const bucket = timeline[second] as Map<string, number>;
    bucket.set(chosen.id, (bucket.get(chosen.id) ?? 0) + 1);
    chosen.started(at);
    inflight.push({ at: at + options.latency(chosen, at), backend: chosen, sentAt: at });
  };
  for (let c = 0; c < options.concurrency && sent < options.requests; c++) send(start);
  while (inflight.length > 0) {
    let first = 0;
    for (let i = 1; i < inflight.length; i++) {
      if ((inflight[i]?.at as number) < (inflight[first]?.at as number)) first = i;
    }
    const done = inflight.splice(first, 1)[0] as (typeof inflight)[number];
    now = done.at;
    clock = now;
    done.backend.ended(done.at - done.sentAt, now);
    if (sent < options.requests) send(now + (options.thinkMs ?? 0));
  }
  return { picks, timeline, startMs: start, endMs: now };
}

/** Share of picks per backend id (0..1). */
export function shares(picks: ReadonlyMap<string, number>): Map<string, number> {
  const total = [...picks.values()].reduce((sum, n) => sum + n, 0);
  return new Map([...picks].map(([id, n]) => [id, n / total]));
}
