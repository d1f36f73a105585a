/**
 * A small seeded pseudo-random generator (mulberry32) so that lossy runs
 * and generated test data repeat exactly for the same seed.
 *
 * @module
 */

/**
 * Returns a generator of numbers in [0, 1) determined by `seed`.
 *
 * @example
 * ```ts
 * import { seededRandom } from "./seeded_random.ts";
 * import { equal } from "node:assert/strict";
 * equal(seededRandom(7)(), seededRandom(7)());
 * ```
 *
 * @param seed Any integer.
 * @returns The generator.
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
