/**
 * Deterministic randomness for tests, the simulator, fault injection and benchmarks: the same seed
 * gives the same sequence on every machine. Not for anything secret.
 */

/** mulberry32: a small, fast 32-bit PRNG. Returns a function yielding numbers in [0, 1). */
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

/** FNV-1a's 32-bit offset basis (the default seed of `fnv1a32`). */
export const FNV1A_OFFSET = 0x811c9dc5;
/** FNV-1a's 32-bit prime. */
export const FNV1A_PRIME = 0x01000193;

/**
 * FNV-1a 32-bit over the UTF-16 code units of `text`, as an unsigned number. `seed` replaces the
 * offset basis and `prime` the multiplier (a second, independent hash of the same text). Stable
 * across processes and versions: interface names and MACs are derived from it.
 */
export function fnv1a32(text: string, seed: number = FNV1A_OFFSET, prime: number = FNV1A_PRIME): number {
  let h = seed >>> 0;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), prime) >>> 0;
  return h;
}

/** `fnv1a32` as 8 lowercase hex digits (zero-padded). */
export function fnv1a32Hex(text: string, seed: number = FNV1A_OFFSET, prime: number = FNV1A_PRIME): string {
  return fnv1a32(text, seed, prime).toString(16).padStart(8, "0");
}

/** A 32-bit seed from a string (FNV-1a), e.g. from `${clusterSeed}/${node}/${generation}`. */
export function seedFromString(text: string): number {
  return fnv1a32(text);
}
