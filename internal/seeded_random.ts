/**
 * A small seeded pseudo-random generator (mulberry32): fuzz loops and simulations whose
 * failures must be replayable from the printed seed, and the benchmark's key choice.
 *
 * @module
 */

/** mulberry32 as a function returning uniform floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** A deterministic random source. */
export class SeededRandom {
  /** A uniform float in [0, 1). */
  readonly next: () => number;

  /** Starts the sequence at `seed` (any 32-bit integer). */
  constructor(readonly seed: number) {
    this.next = mulberry32(seed);
  }

  /** A uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** One element of `items`. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  /** `n` random bytes. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
}

/** A fresh seed: from `$envName` when set (to replay a failure), otherwise random. */
export function seedFromEnv(envName: string): number {
  const given = Deno.env.get(envName);
  if (given !== undefined && given !== "") return Number(given) >>> 0;
  return crypto.getRandomValues(new Uint32Array(1))[0];
}
