/**
 * A small seeded pseudo-random generator for the simulator: the same seed gives the same
 * latency samples and the same request keys, so two runs (and two strategies in one run) see
 * the same workload.
 *
 * mulberry32: 32-bit state, period 2^32, passes the gjrand/PractRand tests that matter for
 * simulation; fast and allocation-free. Independent streams (one per backend, one for the
 * load) come from `deriveSeed(seed, stream)`, a splitmix32-style mix of the two numbers.
 */

/** A source of uniform numbers in [0, 1). */
export type Random = () => number;

/** mulberry32 seeded with a 32-bit integer. */
export function createRandom(seed: number): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** A 32-bit seed for stream `stream` of the run seeded with `seed` (splitmix32 finaliser). */
export function deriveSeed(seed: number, stream: number): number {
  let z = (Math.imul(seed >>> 0, 0x9e3779b9) + Math.imul(stream + 1, 0x85ebca6b)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad) >>> 0;
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97) >>> 0;
  return (z ^ (z >>> 15)) >>> 0;
}

/**
 * A standard normal sample (mean 0, sd 1) by Box–Muller: z = √(−2 ln u₁) · cos(2π u₂).
 * The sine half is discarded to keep the generator stateless beyond `random`.
 */
export function standardNormal(random: Random): number {
  // 1 − u keeps u₁ in (0, 1], so ln never sees 0.
  const u1 = 1 - random();
  const u2 = random();
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}
