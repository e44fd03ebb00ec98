/**
 * Seeded, deterministic pseudo-random numbers (lib/random32.c, include/linux/prandom.h).
 *
 * The generator is the kernel's prandom_u32_state(): L'Ecuyer's maximally equidistributed
 * combined Tausworthe generator lfsr113 (period about 2^113), bit-exact with lib/random32.c, so
 * the kernel's own self-test vectors (CONFIG_RANDOM32_SELFTEST) are its golden values. It is a
 * simulation-quality generator, as in the kernel: never use it where unpredictability matters.
 *
 * `PRandom` wraps one `rnd_state` for simulator code:
 * - A seed is a number, a bigint or a string, reduced to a u64 (`seedToU64`). The u64 is expanded
 *   into the four state words with SplitMix64 and warmed up, as prandom_seed_full_state() does
 *   with bytes from get_random_bytes(): the kernel's prandom_seed_state() folds its seed to 32
 *   bits, too few for independent streams.
 * - `fork(label)` derives a child stream from the parent's *seed* and the label, never from the
 *   parent's position: a new consumer forks its own stream and every other stream stays as it
 *   was. The same label gives the same child; forking does not advance the parent.
 *
 * All state words are u32 and all arithmetic on them is 32-bit, where JavaScript's bitwise
 * operators are exact; 64-bit seed arithmetic uses bigint.
 */

const U64_MASK = (1n << 64n) - 1n;
const TWO_32 = 2 ** 32;
const TWO_53 = 2 ** 53;

/** struct rnd_state (include/linux/prandom.h): the four lfsr113 components, each a u32. */
export class RndState {
  s1 = 0;
  s2 = 0;
  s3 = 0;
  s4 = 0;
}

/**
 * __seed() (include/linux/prandom.h): lfsr113 needs s1 > 1, s2 > 7, s3 > 15, s4 > 127, or a
 * component degenerates (the erratum to L'Ecuyer's paper).
 */
export function __seed(x: number, m: number): number {
  return x < m ? (x + m) >>> 0 : x;
}

/**
 * prandom_u32_state() (lib/random32.c): advance the state and return the next u32.
 *
 * `TAUSWORTHE(s, a, b, c, d) ((s & c) << d) ^ (((s << a) ^ s) >> b)` on u32 components.
 */
export function prandom_u32_state(state: RndState): number {
  const { s1, s2, s3, s4 } = state;
  state.s1 = (((s1 & 0xfffffffe) << 18) ^ (((s1 << 6) ^ s1) >>> 13)) >>> 0;
  state.s2 = (((s2 & 0xfffffff8) << 2) ^ (((s2 << 2) ^ s2) >>> 27)) >>> 0;
  state.s3 = (((s3 & 0xfffffff0) << 7) ^ (((s3 << 13) ^ s3) >>> 21)) >>> 0;
  state.s4 = (((s4 & 0xffffff80) << 13) ^ (((s4 << 3) ^ s4) >>> 12)) >>> 0;
  return (state.s1 ^ state.s2 ^ state.s3 ^ state.s4) >>> 0;
}

/**
 * prandom_bytes_state() (lib/random32.c): fill `buf` with pseudo-random bytes. Whole u32s are
 * stored little-endian (put_unaligned on x86/arm64); a tail of 1-3 bytes takes the low bytes of
 * one more u32, lowest first.
 */
export function prandom_bytes_state(state: RndState, buf: Uint8Array): void {
  let i = 0;
  const n = buf.length;
  while (n - i >= 4) {
    const x = prandom_u32_state(state);
    buf[i] = x & 0xff;
    buf[i + 1] = (x >>> 8) & 0xff;
    buf[i + 2] = (x >>> 16) & 0xff;
    buf[i + 3] = x >>> 24;
    i += 4;
  }
  if (i < n) {
    let rem = prandom_u32_state(state);
    do {
      buf[i++] = rem & 0xff;
      rem >>>= 8;
    } while (i < n);
  }
}

/** prandom_warmup() (lib/random32.c): "Calling RNG ten times to satisfy recurrence condition". */
export function prandom_warmup(state: RndState): void {
  for (let i = 0; i < 10; i++) prandom_u32_state(state);
}

/**
 * prandom_seed_state() (include/linux/prandom.h): seed from a u64, of which only a 32-bit fold
 * is used: `i = ((seed >> 32) ^ (seed << 10) ^ seed) & 0xffffffff`, every component from `i`.
 * Callers in the kernel (lib/test_*.c, rbtree_test) run no warmup after it; neither does this.
 */
export function prandom_seed_state(state: RndState, seed: bigint): void {
  const s = BigInt.asUintN(64, seed);
  const i = Number(((s >> 32n) ^ (s << 10n) ^ s) & 0xffffffffn);
  state.s1 = __seed(i, 2);
  state.s2 = __seed(i, 8);
  state.s3 = __seed(i, 16);
  state.s4 = __seed(i, 128);
}

/**
 * prandom_seed_early() (lib/random32.c) with `mix_with_hwseed == false`, the repeatable seeding
 * that prandom_state_selftest() uses: a "super-duper" LCG (x * 69069) chains the components.
 * No warmup: the self-test calls prandom_warmup() itself.
 */
export function prandom_seed_early(state: RndState, seed: number): void {
  const lcg = (x: number): number => Math.imul(x, 69069) >>> 0;
  state.s1 = __seed(lcg(seed >>> 0), 2);
  state.s2 = __seed(lcg(state.s1), 8);
  state.s3 = __seed(lcg(state.s2), 16);
  state.s4 = __seed(lcg(state.s3), 128);
}

/** What a PRandom can be seeded from. */
export type PRandomSeed = number | bigint | string;

const FNV64_OFFSET = 0xcbf29ce484222325n;
const FNV64_PRIME = 0x100000001b3n;

/** FNV-1a, 64-bit, over bytes; `h` continues an earlier hash. */
function fnv1a64(bytes: Uint8Array, h = FNV64_OFFSET): bigint {
  for (const b of bytes) h = ((h ^ BigInt(b)) * FNV64_PRIME) & U64_MASK;
  return h;
}

/** The SplitMix64 output function (Steele, Lea, Flood 2014): a bijective 64-bit avalanche mix. */
function mix64(z: bigint): bigint {
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & U64_MASK;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & U64_MASK;
  return z ^ (z >> 31n);
}

const GOLDEN_GAMMA = 0x9e3779b97f4a7c15n;

function u64Bytes(x: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, x, true);
  return b;
}

/**
 * Reduce a seed to the u64 a stream is derived from: an integer number or a bigint modulo 2^64
 * (so -1 and 2^64 - 1 are the same seed), a string through FNV-1a-64 of its UTF-8 bytes and a
 * SplitMix64 mix. Throws RangeError for a number that is not a safe integer.
 */
export function seedToU64(seed: PRandomSeed): bigint {
  if (typeof seed === 'string') return mix64(fnv1a64(Buffer.from(seed, 'utf8')));
  if (typeof seed === 'number') {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`PRandom seed ${seed} is not a safe integer`);
    return BigInt.asUintN(64, BigInt(seed));
  }
  return BigInt.asUintN(64, seed);
}

/**
 * A deterministic stream of pseudo-random numbers: prandom_u32_state() on a private rnd_state.
 */
export class PRandom {
  /** The u64 this stream was seeded from: print it to reproduce a run. */
  readonly seed: bigint;
  private readonly state = new RndState();

  constructor(seed: PRandomSeed = 0) {
    this.seed = seedToU64(seed);
    const a = mix64((this.seed + GOLDEN_GAMMA) & U64_MASK);
    const b = mix64((this.seed + 2n * GOLDEN_GAMMA) & U64_MASK);
    this.state.s1 = __seed(Number(a & 0xffffffffn), 2);
    this.state.s2 = __seed(Number(a >> 32n), 8);
    this.state.s3 = __seed(Number(b & 0xffffffffn), 16);
    this.state.s4 = __seed(Number(b >> 32n), 128);
    prandom_warmup(this.state);
  }

  /** The next u32. */
  u32(): number {
    return prandom_u32_state(this.state);
  }

  /**
   * An unbiased integer in [0, n), for an integer 1 <= n <= 2^53, by rejection: draws beyond the
   * largest multiple of n that fits are redrawn, so every value is equally likely. n <= 2^32
   * consumes one u32 per draw, larger n two. Throws RangeError for any other n.
   */
  below(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > TWO_53) throw new RangeError(`PRandom.below(${n}): need an integer in [1, 2^53]`);
    if (n <= TWO_32) {
      const limit = TWO_32 - (TWO_32 % n);
      for (;;) {
        const x = this.u32();
        if (x < limit) return x % n;
      }
    }
    const limit = TWO_53 - (TWO_53 % n);
    for (;;) {
      const x = (this.u32() >>> 11) * TWO_32 + this.u32();
      if (x < limit) return x % n;
    }
  }

  /** A double in [0, 1) with 53 random bits. */
  float(): number {
    const hi = this.u32() >>> 5;
    const lo = this.u32() >>> 6;
    return (hi * 2 ** 26 + lo) / TWO_53;
  }

  /** n pseudo-random bytes, as prandom_bytes_state() lays them out. */
  bytes(n: number): Uint8Array {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`PRandom.bytes(${n}): need a non-negative integer`);
    const buf = new Uint8Array(n);
    prandom_bytes_state(this.state, buf);
    return buf;
  }

  /** A uniformly chosen element; throws RangeError on an empty array. */
  pick<T>(arr: readonly T[]): T {
    if (arr.length === 0) throw new RangeError('PRandom.pick() of an empty array');
    return arr[this.below(arr.length)];
  }

  /** Fisher-Yates shuffle of `arr` in place; returns `arr`. */
  shuffle<T>(arr: T[]): T[] {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = this.below(i + 1);
      const t = arr[i];
      arr[i] = arr[j];
      arr[j] = t;
    }
    return arr;
  }

  /**
   * An independent child stream named `label`, derived from this stream's seed (not its
   * position): the same parent seed and label always give the same child, whatever the parent
   * or any sibling has drawn. Does not advance this stream.
   */
  fork(label: string): PRandom {
    const h = fnv1a64(Buffer.from(label, 'utf8'), fnv1a64(u64Bytes(this.seed)));
    return new PRandom(mix64(h));
  }
}
