/**
 * A small seeded pseudo-random generator, so fuzz tests are repeatable.
 *
 * @module
 */

/**
 * A seeded xorshift32 generator.
 *
 * @param seed Any integer; the same seed gives the same sequence.
 * @returns A function giving numbers in [0, 1).
 */
export function random(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };
}
