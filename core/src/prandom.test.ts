import { describe, expect, test } from 'vitest';
import {
  PRandom,
  RndState,
  __seed,
  prandom_bytes_state,
  prandom_seed_early,
  prandom_seed_state,
  prandom_u32_state,
  prandom_warmup,
  seedToU64,
} from './prandom.js';

function take(r: PRandom, n: number): number[] {
  return Array.from({ length: n }, () => r.u32());
}

describe('prandom_u32_state (lib/random32.c lfsr113)', () => {
  // prandom_state_selftest() test1[]: seed boundary cases, first output after the warmup.
  test.each([
    [1, 3484351685],
    [2, 2623130059],
    [3, 3125133893],
    [4, 984847254],
  ])('self-test test1: seed %i gives %i', (seed, result) => {
    const s = new RndState();
    prandom_seed_early(s, seed);
    prandom_warmup(s);
    expect(prandom_u32_state(s)).toBe(result);
  });

  // prandom_state_selftest() test2[] ("Test cases against taus113 from GSL library"), a sample.
  test.each([
    [931557656, 959, 2975593782],
    [1339693295, 876, 3887776532],
    [1545556285, 961, 1615538833],
    [601730776, 723, 1776162651],
    [1027516047, 687, 511983079],
    [1967883163, 508, 10734624],
    [1516232129, 557, 3173877],
    [1817269927, 693, 4279122573],
    [635482502, 779, 4200489746],
    [47485338, 558, 3521120834],
    [1535432887, 998, 42610943],
    [407983964, 921, 728767059],
  ])('self-test test2: seed %i, iteration %i gives %i', (seed, iteration, result) => {
    const s = new RndState();
    prandom_seed_early(s, seed);
    prandom_warmup(s);
    for (let j = 0; j < iteration - 1; j++) prandom_u32_state(s);
    expect(prandom_u32_state(s)).toBe(result);
  });

  test('__seed lifts components below their minimum', () => {
    expect(__seed(0, 2)).toBe(2);
    expect(__seed(1, 2)).toBe(3);
    expect(__seed(2, 2)).toBe(2);
    expect(__seed(127, 128)).toBe(255);
    expect(__seed(0xffffffff, 128)).toBe(0xffffffff);
  });

  test('prandom_seed_state folds the u64 seed to 32 bits', () => {
    const s = new RndState();
    prandom_seed_state(s, 0n);
    expect([s.s1, s.s2, s.s3, s.s4]).toEqual([2, 8, 16, 128]);
    // (seed >> 32) ^ (seed << 10) ^ seed, low 32 bits: 1 ^ 0 ^ 0.
    prandom_seed_state(s, 1n << 32n);
    expect([s.s1, s.s2, s.s3, s.s4]).toEqual([3, 9, 17, 129]);
    prandom_seed_state(s, 1000n);
    const i = (1000 ^ (1000 * 1024)) >>> 0;
    expect([s.s1, s.s2, s.s3, s.s4]).toEqual([i, i, i, i]);
  });

  test('prandom_bytes_state stores whole words little-endian and the tail from the low byte up', () => {
    const a = new RndState();
    prandom_seed_early(a, 42);
    const b = new RndState();
    prandom_seed_early(b, 42);
    const buf = new Uint8Array(7);
    prandom_bytes_state(a, buf);
    const w0 = prandom_u32_state(b);
    const w1 = prandom_u32_state(b);
    expect(Array.from(buf)).toEqual([w0 & 0xff, (w0 >>> 8) & 0xff, (w0 >>> 16) & 0xff, w0 >>> 24, w1 & 0xff, (w1 >>> 8) & 0xff, (w1 >>> 16) & 0xff]);
    // Both consumed exactly two words.
    expect(prandom_u32_state(a)).toBe(prandom_u32_state(b));
  });
});

describe('PRandom', () => {
  test('golden first outputs', () => {
    expect(take(new PRandom(0), 4)).toEqual([1324959350, 3894398163, 2215815033, 178200864]);
    const r = new PRandom('cocosim');
    expect(r.seed).toBe(0x2b580d0452b48fe6n);
    expect(take(r, 3)).toEqual([3646862524, 866176596, 2432738875]);
    expect(Array.from(r.bytes(7))).toEqual([214, 236, 244, 19, 9, 194, 7]);
    const f = new PRandom(42).fork('mm');
    expect(f.seed).toBe(0x081e4b6b27b21996n);
    expect(take(f, 2)).toEqual([4177536925, 3859308367]);
  });

  test('the same seed gives the same sequence, whatever its type', () => {
    expect(take(new PRandom(12345), 50)).toEqual(take(new PRandom(12345), 50));
    expect(take(new PRandom(12345), 50)).toEqual(take(new PRandom(12345n), 50));
    expect(take(new PRandom(-1), 5)).toEqual(take(new PRandom(2n ** 64n - 1n), 5));
    expect(take(new PRandom('x'), 5)).toEqual(take(new PRandom('x'), 5));
    expect(new PRandom().seed).toBe(0n);
  });

  test('different seeds differ', () => {
    const seen = new Set<string>();
    for (let s = 0; s < 200; s++) seen.add(take(new PRandom(s), 2).join(','));
    expect(seen.size).toBe(200);
    expect(take(new PRandom('5'), 4)).not.toEqual(take(new PRandom(5), 4));
    expect(take(new PRandom('a'), 4)).not.toEqual(take(new PRandom('b'), 4));
    expect(take(new PRandom(2n ** 63n), 4)).not.toEqual(take(new PRandom(0), 4));
  });

  test('seedToU64 reduces integers modulo 2^64 and refuses non-integers', () => {
    expect(seedToU64(7)).toBe(7n);
    expect(seedToU64(-1)).toBe(2n ** 64n - 1n);
    expect(seedToU64(2n ** 64n + 3n)).toBe(3n);
    expect(() => seedToU64(1.5)).toThrow(RangeError);
    expect(() => seedToU64(Number.NaN)).toThrow(RangeError);
    expect(() => seedToU64(2 ** 53)).toThrow(RangeError);
  });

  test('fork: deterministic, independent of the parent position, and does not advance it', () => {
    const p = new PRandom(7);
    const before = p.fork('vcpu0');
    const parentNext = take(new PRandom(7), 3);
    expect(take(p, 3)).toEqual(parentNext);
    const after = p.fork('vcpu0');
    expect(take(before, 10)).toEqual(take(after, 10));

    const a = new PRandom(7).fork('a');
    const b = new PRandom(7).fork('b');
    const other = new PRandom(8).fork('a');
    const aSeq = take(a, 10);
    expect(aSeq).not.toEqual(take(b, 10));
    expect(aSeq).not.toEqual(take(other, 10));
    expect(aSeq).not.toEqual(take(new PRandom(7), 10));
  });

  test('fork: adding a consumer does not perturb the others', () => {
    const run = (extraConsumer: boolean): number[] => {
      const root = new PRandom('host');
      if (extraConsumer) {
        const extra = root.fork('new-consumer');
        take(extra, 100);
      }
      const mm = root.fork('mm');
      const kvm = root.fork('kvm');
      return [...take(mm, 5), ...take(kvm, 5), ...take(root, 5)];
    };
    expect(run(true)).toEqual(run(false));
  });

  test('nested forks are deterministic and distinct from flat ones', () => {
    const x = new PRandom(1).fork('a').fork('b');
    const y = new PRandom(1).fork('a').fork('b');
    expect(take(x, 5)).toEqual(take(y, 5));
    expect(take(new PRandom(1).fork('a').fork('b'), 5)).not.toEqual(take(new PRandom(1).fork('ab'), 5));
  });

  test('below(1) is always 0', () => {
    const r = new PRandom(3);
    for (let i = 0; i < 100; i++) expect(r.below(1)).toBe(0);
  });

  test('below stays in bounds at the edges', () => {
    const r = new PRandom(4);
    for (const n of [2, 3, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 52 + 1, 2 ** 53 - 1, 2 ** 53]) {
      for (let i = 0; i < 200; i++) {
        const x = r.below(n);
        expect(Number.isInteger(x)).toBe(true);
        expect(x).toBeGreaterThanOrEqual(0);
        expect(x).toBeLessThan(n);
      }
    }
  });

  test('below is uniform over small n', () => {
    const r = new PRandom(5);
    const counts = [0, 0, 0, 0, 0, 0];
    for (let i = 0; i < 60000; i++) counts[r.below(6)]++;
    // Expected 10000 each, standard deviation about 91.
    for (const c of counts) expect(Math.abs(c - 10000)).toBeLessThan(500);
  });

  test('below uses all 53 bits for large n', () => {
    const r = new PRandom(6);
    const n = 3 * 2 ** 50;
    const thirds = [0, 0, 0];
    let high = 0;
    for (let i = 0; i < 3000; i++) {
      const x = r.below(n);
      thirds[Math.floor(x / 2 ** 50)]++;
      if (x >= 2 ** 32) high++;
    }
    for (const c of thirds) expect(Math.abs(c - 1000)).toBeLessThan(150);
    expect(high).toBeGreaterThan(2990);
  });

  test('below refuses n outside [1, 2^53]', () => {
    const r = new PRandom(0);
    for (const n of [0, -1, 1.5, 2 ** 53 + 2, Number.NaN, Number.POSITIVE_INFINITY]) expect(() => r.below(n)).toThrow(RangeError);
  });

  test('float is in [0, 1) with mean near 1/2', () => {
    const r = new PRandom(9);
    let sum = 0;
    for (let i = 0; i < 20000; i++) {
      const f = r.float();
      expect(f).toBeGreaterThanOrEqual(0);
      expect(f).toBeLessThan(1);
      sum += f;
    }
    expect(Math.abs(sum / 20000 - 0.5)).toBeLessThan(0.01);
  });

  test('bytes gives the requested length, and refuses bad lengths', () => {
    const r = new PRandom(10);
    expect(r.bytes(0).length).toBe(0);
    const b = r.bytes(4096);
    expect(b.length).toBe(4096);
    expect(new Set(b).size).toBeGreaterThan(200);
    expect(() => r.bytes(-1)).toThrow(RangeError);
    expect(() => r.bytes(2.5)).toThrow(RangeError);
  });

  test('pick reaches every element and refuses an empty array', () => {
    const r = new PRandom(11);
    const arr = ['a', 'b', 'c', 'd'] as const;
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) seen.add(r.pick(arr));
    expect([...seen].sort()).toEqual(['a', 'b', 'c', 'd']);
    expect(() => r.pick([])).toThrow(RangeError);
  });

  test('shuffle permutes in place, deterministically', () => {
    const a = Array.from({ length: 20 }, (_, i) => i);
    const out = new PRandom(12).shuffle(a);
    expect(out).toBe(a);
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(a).not.toEqual(Array.from({ length: 20 }, (_, i) => i));
    const b = new PRandom(12).shuffle(Array.from({ length: 20 }, (_, i) => i));
    expect(b).toEqual(a);
    expect(new PRandom(12).shuffle([])).toEqual([]);
  });
});
