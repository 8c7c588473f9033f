/**
 * least-time: the backend expected to answer soonest, like nginx's `least_time`, without its
 * known failures.
 *
 *   estimate_i(now)  = ewma_i · 2^(−(now − t_i) / H)              decayed latency estimate (ms)
 *   age_i(now)       = now − p_i if awaiting_i > 0, else 0           in-flight age (ms)
 *   effective_i(now) = max(estimate_i(now), age_i(now))
 *   score_i          = effective_i · (active_i + 1) / weight_i         lower wins
 *   degraded_i       ⇔ effective_i ≥ F · best  and  effective_i − best ≥ G,
 *                      best = min_j estimate_j(now) over the eligible backends with samples
 *
 * ewma_i is the backend's EWMA of time to response headers (option `measure: last-byte`: time
 * to the last byte), t_i the time of its last sample, H = LATENCY_HALF_LIFE_MS (1 s); p_i the
 * time of its last progress while it has requests awaiting a response (Backend.awaiting,
 * Backend.lastProgressAt). All are kept on the Backend (src/upstream/backend.ts), so they
 * survive reloads. A failed request counts as a slow sample there (Backend.requestEnded).
 * F = `degradedFactor` (default 4, 0 turns it off), G = `degradedMinGap` (default 10 ms).
 *
 * Why each part:
 * - (active + 1): a request queued behind `active` others waits for them, so a slow backend
 *   that piles up in-flight requests is avoided within a few requests, well under a second.
 * - In-flight age (nginx's `inflight`): an estimate only moves when a response arrives, so a
 *   backend that stalls keeps its old, good estimate while its requests hang. A request
 *   awaited for longer than the estimate proves the backend slower than that; age_i is a lower
 *   bound of its oldest awaited request's age, kept with two numbers per backend.
 * - Degraded backends get probe traffic only. (active + 1) assumes a backend serves requests
 *   one after another; concurrent backends answer in the same time whatever their load, so
 *   with tens of connections the fast backends score (16 + 1) × 10 ms = 170 while a 100 ms one
 *   scores 100 when idle and always has a request: ~1% of traffic at 10× the latency, exactly
 *   the p99. A backend whose effective estimate is F times the best one (and G ms above it,
 *   so noise between fast backends never triggers it) is left out of normal picks and gets
 *   one probe request at a time, at most one per `probeInterval` (default 1 s), so its
 *   estimate stays current and it rejoins as soon as it is fast again — or as soon as the
 *   others slow down (overloaded: their estimates rise and the factor no longer holds; seen
 *   at its next probe or stats change). Identical backends have the same estimate: never
 *   degraded against each other.
 * - Decay: an estimate without fresh samples halves every H, so a backend that was slow once
 *   is tried again after a few seconds and its estimate re-forms (Traefik's `leasttime` keeps
 *   a plain mean forever and starves a backend that had one slow streak).
 * - No buckets: scores are compared exactly (open-source nginx rounds to 20 ms buckets, which
 *   makes a 1 ms and a 15 ms backend look equal); exact ties rotate by weight (./ordered.ts).
 * - Exploration: a backend with no sample yet (new, or never answered), or back in the
 *   eligible set after being down, drained or disabled, gets exactly one request at a time
 *   until it answers: key −∞ while it is idle, +∞ while its probe is in flight. It neither
 *   floods (Traefik scores a new backend 0) nor starves on an estimate from before. Cold
 *   start (no backend has a sample, every one has a probe in flight): all keys are +∞, an
 *   exact tie, so further requests rotate evenly — without information no split sends fewer
 *   to a slow backend on average, and this one has the smallest worst case; once any backend
 *   has answered, the others' in-flight probes rank last again.
 *
 * Cost. Taking log2, score_i = 2^(key_i − now/H) with
 *   key_i = max(log2(ewma_i) + t_i/H, log2(age_i) + now/H) + log2(active_i + 1) − log2(weight_i),
 * and 2^(−now/H) is the same for every backend. The estimate part never changes with time
 * alone, only when a backend's stats change: backends live in a heap updated on those changes
 * (O(log n)). The in-flight age part only grows with time, so a stored key is a lower bound of
 * the live one: pick() re-computes the top's key and, while it rose, lets it sink and checks
 * the new top (at most RESCORE_TOP times, O(log n) each). A degraded backend's key is raised
 * by DEMOTED (below every normal key); when its probe falls due it is re-keyed to −∞ (due
 * times live in a third index, ./min-index.ts: one comparison per pick, O(log n) per probe). The best estimate is kept in a second
 * heap of the time-invariant estimate keys (./min-index.ts, O(1) to read). `choices: 2`
 * instead compares two random backends on score_i (power of two choices, O(1), no degraded
 * state; for very large pools or many balancer instances sharing backends, where herding on
 * "the best" one hurts).
 */
import { LATENCY_HALF_LIFE_MS } from '../upstream/backend.js';
import { MinIndex } from './min-index.js';
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
  /** F: degraded at F × the best estimate (default 4; 0 = never degraded). */
  readonly degradedFactor?: number | undefined;
  /** G: and at least this many ms above the best estimate (default 10). */
  readonly degradedMinGapMs?: number | undefined;
  /** At most one probe request per this many ms to a degraded backend (default 1,000). */
  readonly probeIntervalMs?: number | undefined;
}

export const DEFAULT_DEGRADED_FACTOR = 4;
export const DEFAULT_DEGRADED_MIN_GAP_MS = 10;
export const DEFAULT_PROBE_INTERVAL_MS = 1_000;

/** Smallest estimate used, so log2 stays finite for sub-microsecond samples. */
const MIN_ESTIMATE_MS = 0.001;
/** Added to a degraded backend's key: above any normal key (keys are log2 values + now/H). */
const DEMOTED = 1e12;
/** Top-of-heap re-scores per pick (see the header's Cost). */
const RESCORE_TOP = 4;

/** The estimate part of the key, log2(ewma) + t/H (time-invariant); +∞ with no sample. */
export function estimateKey(backend: BackendView, measure: LatencyMeasure): number {
  const lastByte = measure === 'last-byte';
  const samples = lastByte ? (backend.lastByteSamples ?? 0) : backend.latencySamples;
  if (samples === 0) return Infinity;
  const ewma = lastByte ? (backend.lastByteEwmaMs ?? 0) : backend.latencyEwmaMs;
  const at = lastByte ? (backend.lastByteSampleAt ?? 0) : backend.lastSampleAt;
  return Math.log2(ewma > MIN_ESTIMATE_MS ? ewma : MIN_ESTIMATE_MS) + at / LATENCY_HALF_LIFE_MS;
}

/** age_i(now): how long this backend's oldest awaited request has waited, at least (ms). */
export function inflightAgeMs(backend: BackendView, now: number): number {
  const awaiting = backend.awaiting;
  if (awaiting === undefined || awaiting <= 0) return 0;
  const age = now - (backend.lastProgressAt ?? now);
  return age > 0 ? age : 0;
}

/** log2(effective_i) + now/H: the estimate part of the key with the in-flight age. */
function effectiveKey(estimate: number, backend: BackendView, now: number | undefined): number {
  if (now === undefined) return estimate;
  const age = inflightAgeMs(backend, now);
  if (age <= MIN_ESTIMATE_MS) return estimate;
  const ageKey = Math.log2(age) + now / LATENCY_HALF_LIFE_MS;
  return ageKey > estimate ? ageKey : estimate;
}

/**
 * The log-domain key described above (lower is better). Without `now` the in-flight age is
 * left out (the time-invariant key of the estimate alone).
 */
export function leastTimeKey(
  backend: BackendView,
  weight: number,
  measure: LatencyMeasure,
  now?: number,
): number {
  const estimate = estimateKey(backend, measure);
  if (estimate === Infinity) return backend.active === 0 ? -Infinity : Infinity;
  return effectiveKey(estimate, backend, now) + Math.log2(backend.active + 1) - Math.log2(weight);
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
  const inflightMs = inflightAgeMs(backend, now);
  const effectiveMs = Math.max(estimateMs, inflightMs);
  inputs.ewmaMs = round(ewma);
  inputs.sampleAgeMs = round(ageMs);
  inputs.estimateMs = round(estimateMs);
  inputs.inflightAgeMs = round(inflightMs);
  inputs.effectiveMs = round(effectiveMs);
  return { score: round((effectiveMs * (backend.active + 1)) / weight), inputs };
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

/** Exact least-time over every backend, kept in a heap, with degraded backends probed only. */
export class LeastTimeStrategy extends OrderedStrategy {
  readonly name: string = 'least-time';
  readonly measure: LatencyMeasure;
  readonly degradedFactor: number;
  readonly degradedMinGapMs: number;
  readonly probeIntervalMs: number;
  /** The clock of every timestamp on the backends: performance.now(); tests use virtual time. */
  now: () => number = () => performance.now();
  private readonly log2Factor: number;
  private readonly returning = new ReturningBackends();
  /** Time-invariant estimate key of each slot; its min is the best estimate. */
  private estimates = new MinIndex(0);
  /** Degraded backends currently left out of normal picks (key + DEMOTED). */
  private readonly demoted = new Set<BackendView>();
  /** Degraded backends whose probe is due (key −∞ until picked). */
  private readonly probeDue = new Set<BackendView>();
  /** When each degraded backend last got a probe (or became degraded). */
  private readonly probedAt = new Map<BackendView, number>();
  /** When each demoted, idle slot's probe falls due (+∞: not demoted, or busy); min = next. */
  private dueAt = new MinIndex(0);

  constructor(measure: LatencyMeasure | Omit<LeastTimeOptions, 'choices'> = 'headers') {
    super();
    const options: Omit<LeastTimeOptions, 'choices'> =
      typeof measure === 'string' ? { measure } : measure;
    this.measure = options.measure ?? 'headers';
    this.degradedFactor = options.degradedFactor ?? DEFAULT_DEGRADED_FACTOR;
    this.degradedMinGapMs = options.degradedMinGapMs ?? DEFAULT_DEGRADED_MIN_GAP_MS;
    this.probeIntervalMs = options.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS;
    this.log2Factor = this.degradedFactor > 0 ? Math.log2(this.degradedFactor) : Infinity;
    this.rescoreTop = RESCORE_TOP;
  }

  override setBackends(backends: readonly BackendView[]): void {
    this.returning.update(backends, this.measure);
    this.estimates = new MinIndex(backends.length);
    for (let slot = 0; slot < backends.length; slot++) {
      this.estimates.set(slot, this.estimateOf(backends[slot] as BackendView));
    }
    const current = new Set(backends);
    for (const backend of this.probedAt.keys()) {
      if (!current.has(backend)) this.probedAt.delete(backend);
    }
    this.demoted.clear();
    this.probeDue.clear();
    this.dueAt = new MinIndex(backends.length);
    super.setBackends(backends);
    // Backends demoted while the heap was built had no slot yet: schedule their probes now.
    for (const backend of this.demoted) this.scheduleProbe(backend);
  }

  override statsChanged(backend: BackendView): void {
    const slot = this.slots.get(backend);
    if (slot === undefined) return;
    this.estimates.set(slot, this.estimateOf(backend));
    super.statsChanged(backend);
  }

  override pick(context: PickContext): BackendView | undefined {
    const due = this.dueAt.min();
    if (due !== Infinity && due <= this.now()) this.wakeProbes();
    const chosen = super.pick(context);
    if (chosen !== undefined && this.probeDue.size > 0 && this.probeDue.delete(chosen)) {
      // The probe is sent: the next one waits a probe interval (and this one's answer).
      this.probedAt.set(chosen, this.now());
      super.statsChanged(chosen);
    }
    return chosen;
  }

  /** Estimate key for the best-estimate index (returning backends do not count). */
  private estimateOf(backend: BackendView): number {
    if (this.returning.override(backend, this.measure) !== undefined) return Infinity;
    return estimateKey(backend, this.measure);
  }

  /** Re-keys the demoted backends whose probe fell due: O(log n) each, once per interval. */
  private wakeProbes(): void {
    const now = this.now();
    while (this.dueAt.min() <= now) {
      const slot = this.dueAt.minSlot();
      this.dueAt.set(slot, Infinity);
      super.statsChanged(this.backends[slot] as BackendView);
    }
  }

  /** Files a demoted backend's next probe time (a busy one is re-keyed when its request ends). */
  private scheduleProbe(backend: BackendView): void {
    const slot = this.slots.get(backend);
    if (slot === undefined) return;
    const due =
      backend.active === 0 ? (this.probedAt.get(backend) ?? 0) + this.probeIntervalMs : Infinity;
    this.dueAt.set(slot, due);
  }

  private unscheduleProbe(backend: BackendView): void {
    const slot = this.slots.get(backend);
    if (slot !== undefined) this.dueAt.set(slot, Infinity);
  }

  /** degraded_i at `now` (see the header), from the effective key and the best estimate. */
  private isDegraded(effective: number, clock: number): boolean {
    const best = this.estimates.min();
    if (best === Infinity || effective - best < this.log2Factor) return false;
    const now = clock === clock ? clock : this.now();
    const scale = now / LATENCY_HALF_LIFE_MS;
    return Math.pow(2, effective - scale) - Math.pow(2, best - scale) >= this.degradedMinGapMs;
  }

  protected keyOf(backend: BackendView, weight: number): number {
    const override = this.returning.override(backend, this.measure);
    if (override !== undefined) {
      this.forgetDegraded(backend);
      return override;
    }
    const estimate = estimateKey(backend, this.measure);
    if (estimate === Infinity) return backend.active === 0 ? -Infinity : Infinity;
    // The clock is read only when needed (NaN: not read yet), so a pick on a pool without
    // awaited requests or degraded backends allocates nothing.
    let now = NaN;
    const awaiting = backend.awaiting;
    if (awaiting !== undefined && awaiting > 0) now = this.now();
    const effective = now === now ? effectiveKey(estimate, backend, now) : estimate;
    const key = effective + Math.log2(backend.active + 1) - Math.log2(weight);
    // Once degraded, its estimate decays between probes (a half-life apart) towards the best
    // one; what keeps it out, or lets it back, is what its latest probe measured.
    let judged = effective;
    const wasDegraded = this.probedAt.size > 0 && this.probedAt.has(backend);
    if (wasDegraded) {
      const last = this.measure === 'last-byte' ? backend.lastLastByteMs : backend.lastLatencyMs;
      if (last !== undefined && last > MIN_ESTIMATE_MS) {
        if (now !== now) now = this.now();
        const lastKey = Math.log2(last) + now / LATENCY_HALF_LIFE_MS;
        if (lastKey > judged) judged = lastKey;
      }
    }
    if (this.degradedFactor === 0 || !this.isDegraded(judged, now)) {
      if (wasDegraded) this.forgetDegraded(backend);
      return key;
    }
    if (now !== now) now = this.now();
    let probedAt = this.probedAt.get(backend);
    if (probedAt === undefined) {
      // Just became degraded: the request that showed it counts as the last probe.
      probedAt = now;
      this.probedAt.set(backend, now);
    }
    const due = probedAt + this.probeIntervalMs;
    if (backend.active === 0 && due <= now) {
      this.demoted.delete(backend);
      this.probeDue.add(backend);
      this.unscheduleProbe(backend);
      return -Infinity;
    }
    this.probeDue.delete(backend);
    this.demoted.add(backend);
    this.scheduleProbe(backend);
    return key + DEMOTED;
  }

  private forgetDegraded(backend: BackendView): void {
    if (this.probedAt.size === 0) return;
    if (this.probedAt.delete(backend)) {
      this.demoted.delete(backend);
      this.probeDue.delete(backend);
      this.unscheduleProbe(backend);
    }
  }

  protected describe(slot: number): { score: number; inputs: Record<string, number | string> } {
    const backend = this.backends[slot] as BackendView;
    const now = this.now();
    const described = describeLeastTime(backend, this.weights[slot] as number, this.measure, now);
    const best = this.estimates.min();
    if (best !== Infinity) {
      described.inputs.bestEstimateMs = round(Math.pow(2, best - now / LATENCY_HALF_LIFE_MS));
    }
    if (this.probeDue.has(backend)) {
      described.inputs.state = 'degraded: probe due, sent next';
    } else if (this.demoted.has(backend)) {
      const due = (this.probedAt.get(backend) ?? now) + this.probeIntervalMs;
      described.inputs.state =
        backend.active > 0
          ? 'degraded: probe only (one in flight)'
          : `degraded: probe only (next in ${round(Math.max(0, due - now))} ms)`;
    }
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
  /** The clock of every timestamp on the backends: performance.now(); tests use virtual time. */
  now: () => number = () => performance.now();
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
    const override = this.returning.override(backend, this.measure);
    if (override !== undefined) return override;
    // The clock is read only when the in-flight age can matter (keeps pick() allocation-free).
    const awaiting = backend.awaiting;
    return leastTimeKey(
      backend,
      weight,
      this.measure,
      awaiting === undefined || awaiting === 0 ? undefined : this.now(),
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
    const now = this.now();
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
    ? new LeastTimeStrategy(options)
    : new LeastTimeChoicesStrategy(options.choices, measure);
}
