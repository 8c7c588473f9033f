/**
 * least-time: the backend expected to answer soonest, like nginx's `least_time`, without its
 * known failures.
 *
 *   estimate_i(now) = ewma_i · 2^(−(now − t_i) / H)        decayed latency estimate (ms)
 *   score_i         = estimate_i · (active_i + 1) / weight_i     lower wins
 *
 * ewma_i is the backend's EWMA of time to response headers (option `measure: last-byte`: time
 * to the last byte), t_i the time of its last sample, H = LATENCY_HALF_LIFE_MS (1 s); both are
 * kept on the Backend (src/upstream/backend.ts), so they survive reloads. A failed request
 * counts as a slow sample there (see Backend.requestEnded).
 *
 * Why each part:
 * - (active + 1): a request queued behind `active` others waits for them, so a slow backend
 *   that piles up in-flight requests is avoided within a few requests, well under a second.
 * - Decay: an estimate without fresh samples halves every H, so a backend that was slow once
 *   is tried again after a few seconds and its estimate re-forms (Traefik's `leasttime` keeps
 *   a plain mean forever and starves a backend that had one slow streak).
 * - No buckets: scores are compared exactly (open-source nginx rounds to 20 ms buckets, which
 *   makes a 1 ms and a 15 ms backend look equal); exact ties rotate by weight (./ordered.ts).
 * - Exploration: a backend with no sample yet (new, or never answered), or back in the
 *   eligible set after being down, drained or disabled, gets exactly one request at a time
 *   until it answers: key −∞ while it is idle, +∞ while its probe is in flight. It neither
 *   floods (Traefik scores a new backend 0) nor starves on an estimate from before.
 *
 * Cost. Taking log2, score_i = 2^(key_i − now/H) with
 *   key_i = log2(ewma_i) + t_i/H + log2(active_i + 1) − log2(weight_i),
 * and 2^(−now/H) is the same for every backend: the order of the keys never changes with time
 * alone, only when a backend's stats change. So backends live in a heap updated on those
 * changes (O(log n)) and pick() reads its top (O(1)). `choices: 2` instead compares two random
 * backends (power of two choices, O(1) with no per-request heap updates; for very large pools
 * or many balancer instances sharing backends, where herding on "the best" one hurts).
 */
import { LATENCY_HALF_LIFE_MS } from '../upstream/backend.js';
import { OrderedStrategy } from './ordered.js';
import {
  isExcluded,
  type BackendExplanation,
  type BackendView,
  type PickContext,
  type Strategy,
} from './types.js';
import { weightOf } from './weight.js';

export type LatencyMeasure = 'headers' | 'last-byte';

export interface LeastTimeOptions {
  /** Compare this many random backends instead of all of them (2 = power of two choices). */
  readonly choices?: number | undefined;
  /** Which latency to estimate: time to response headers (default) or to the last byte. */
  readonly measure?: LatencyMeasure | undefined;
}

/** Smallest estimate used, so log2 stays finite for sub-microsecond samples. */
const MIN_ESTIMATE_MS = 0.001;

/** The time-invariant log-domain key described above (lower is better). */
export function leastTimeKey(
  backend: BackendView,
  weight: number,
  measure: LatencyMeasure,
): number {
  const lastByte = measure === 'last-byte';
  const samples = lastByte ? (backend.lastByteSamples ?? 0) : backend.latencySamples;
  if (samples === 0) return backend.active === 0 ? -Infinity : Infinity;
  const ewma = lastByte ? (backend.lastByteEwmaMs ?? 0) : backend.latencyEwmaMs;
  const at = lastByte ? (backend.lastByteSampleAt ?? 0) : backend.lastSampleAt;
  return (
    Math.log2(ewma > MIN_ESTIMATE_MS ? ewma : MIN_ESTIMATE_MS) +
    at / LATENCY_HALF_LIFE_MS +
    Math.log2(backend.active + 1) -
    Math.log2(weight)
  );
}

/** Inputs and score (ms-scaled, as in the header formula) of one backend at `now`. */
export function describeLeastTime(
  backend: BackendView,
  weight: number,
  measure: LatencyMeasure,
  now: number,
): { score: number; inputs: Record<string, number | string> } {
  const lastByte = measure === 'last-byte';
  const samples = lastByte ? (backend.lastByteSamples ?? 0) : backend.latencySamples;
  const ewma = lastByte ? (backend.lastByteEwmaMs ?? 0) : backend.latencyEwmaMs;
  const at = lastByte ? (backend.lastByteSampleAt ?? 0) : backend.lastSampleAt;
  const inputs: Record<string, number | string> = {
    active: backend.active,
    weight,
    measure,
    samples,
  };
  if (samples === 0) {
    inputs.state = backend.active === 0 ? 'no sample yet: probed next' : 'probe in flight';
    // A probe in flight ranks last; Number.MAX_SAFE_INTEGER keeps the JSON a number.
    return { score: backend.active === 0 ? 0 : Number.MAX_SAFE_INTEGER, inputs };
  }
  const ageMs = Math.max(0, now - at);
  const estimateMs = ewma * Math.pow(2, -ageMs / LATENCY_HALF_LIFE_MS);
  inputs.ewmaMs = round(ewma);
  inputs.sampleAgeMs = round(ageMs);
  inputs.estimateMs = round(estimateMs);
  return { score: round((estimateMs * (backend.active + 1)) / weight), inputs };
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}

function samplesOf(backend: BackendView, measure: LatencyMeasure): number {
  return measure === 'last-byte' ? (backend.lastByteSamples ?? 0) : backend.latencySamples;
}

/**
 * Backends that became eligible again (back up after a failure, undrained, re-enabled), with
 * their sample count at that moment. Until they answer once more they are treated like a new
 * backend — one probe at a time — so an estimate from before (possibly penalised by the
 * failures that took them down) neither floods nor starves them.
 */
class ReturningBackends {
  private readonly baseline = new Map<BackendView, number>();
  private previous: ReadonlySet<BackendView> | undefined;

  /** The eligible set changed (the first set is not a return: the strategy just started). */
  update(backends: readonly BackendView[], measure: LatencyMeasure): void {
    const current = new Set(backends);
    if (this.previous !== undefined) {
      for (const backend of backends) {
        if (!this.previous.has(backend)) this.baseline.set(backend, samplesOf(backend, measure));
      }
    }
    for (const backend of this.baseline.keys()) {
      if (!current.has(backend)) this.baseline.delete(backend);
    }
    this.previous = current;
  }

  /** ∓∞ while a returned backend has not answered again (idle: probe it; busy: wait); else undefined. */
  override(backend: BackendView, measure: LatencyMeasure): number | undefined {
    if (this.baseline.size === 0) return undefined;
    const baseline = this.baseline.get(backend);
    if (baseline === undefined) return undefined;
    if (samplesOf(backend, measure) > baseline) {
      this.baseline.delete(backend);
      return undefined;
    }
    return backend.active === 0 ? -Infinity : Infinity;
  }
}

/** Exact least-time over every backend, kept in a heap. */
export class LeastTimeStrategy extends OrderedStrategy {
  readonly name: string = 'least-time';
  readonly measure: LatencyMeasure;
  private readonly returning = new ReturningBackends();

  constructor(measure: LatencyMeasure = 'headers') {
    super();
    this.measure = measure;
  }

  override setBackends(backends: readonly BackendView[]): void {
    this.returning.update(backends, this.measure);
    super.setBackends(backends);
  }

  protected keyOf(backend: BackendView, weight: number): number {
    return (
      this.returning.override(backend, this.measure) ?? leastTimeKey(backend, weight, this.measure)
    );
  }

  protected describe(slot: number): { score: number; inputs: Record<string, number | string> } {
    const backend = this.backends[slot] as BackendView;
    const described = describeLeastTime(
      backend,
      this.weights[slot] as number,
      this.measure,
      performance.now(),
    );
    const override = this.returning.override(backend, this.measure);
    if (override === undefined) return described;
    return {
      score: override < 0 ? 0 : Number.MAX_SAFE_INTEGER,
      inputs: {
        ...described.inputs,
        state: override < 0 ? 'back after a pause: probed next' : 'back: probe in flight',
      },
    };
  }
}

/** least-time over `choices` backends drawn at random (power of k choices). */
export class LeastTimeChoicesStrategy implements Strategy {
  readonly name: string = 'least-time';
  readonly measure: LatencyMeasure;
  readonly choices: number;
  private backends: readonly BackendView[] = [];
  private weights = new Float64Array(0);
  private readonly random: () => number;

  constructor(choices: number, measure: LatencyMeasure = 'headers', random = Math.random) {
    this.choices = choices;
    this.measure = measure;
    this.random = random;
  }

  private readonly returning = new ReturningBackends();

  setBackends(backends: readonly BackendView[]): void {
    this.returning.update(backends, this.measure);
    this.backends = backends;
    this.weights = Float64Array.from(backends, weightOf);
  }

  private keyOf(backend: BackendView, weight: number): number {
    return (
      this.returning.override(backend, this.measure) ?? leastTimeKey(backend, weight, this.measure)
    );
  }

  pick(context: PickContext): BackendView | undefined {
    const n = this.backends.length;
    if (n === 0) return undefined;
    let best = -1;
    let bestKey = Infinity;
    // The first draw is any backend; the next ones are drawn among the others so two
    // choices always compare two different backends.
    const first = (this.random() * n) | 0;
    for (let c = 0; c < this.choices; c++) {
      let slot = first;
      if (c > 0 && n > 1) {
        slot = (first + 1 + ((this.random() * (n - 1)) | 0)) % n;
      }
      const backend = this.backends[slot] as BackendView;
      if (isExcluded(context, backend)) continue;
      const key = this.keyOf(backend, this.weights[slot] as number);
      if (best < 0 || key < bestKey) {
        best = slot;
        bestKey = key;
      }
    }
    if (best < 0) best = this.bestNotExcluded(context);
    return best < 0 ? undefined : this.backends[best];
  }

  explain(): BackendExplanation[] {
    const now = performance.now();
    return this.backends.map((backend, slot) => ({
      backend: backend.id,
      ...describeLeastTime(backend, this.weights[slot] as number, this.measure, now),
    }));
  }

  /** Every sampled choice was excluded (retries): the best of the rest, by a scan. */
  private bestNotExcluded(context: PickContext): number {
    let best = -1;
    let bestKey = Infinity;
    for (let slot = 0; slot < this.backends.length; slot++) {
      const backend = this.backends[slot] as BackendView;
      if (isExcluded(context, backend)) continue;
      const key = this.keyOf(backend, this.weights[slot] as number);
      if (best < 0 || key < bestKey) {
        best = slot;
        bestKey = key;
      }
    }
    return best;
  }
}

export function createLeastTime(options: LeastTimeOptions = {}): Strategy {
  const measure = options.measure ?? 'headers';
  return options.choices === undefined
    ? new LeastTimeStrategy(measure)
    : new LeastTimeChoicesStrategy(options.choices, measure);
}
