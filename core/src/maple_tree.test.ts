import { describe, expect, test } from 'vitest';
import { KernelBug } from './bug.js';
import { Errno } from './errno.js';
import { MAX_FRAME } from './types.js';
import { MapleTree, MT_MAX, type MapleRange } from './maple_tree.js';

type R = [first: number, last: number, entry: unknown];

function dump<T>(mt: MapleTree<T>): R[] {
  mt.mt_validate();
  return [...mt].map((r) => [r.first, r.last, r.entry]);
}

function walk<T>(mt: MapleTree<T>, first: number, last: number): R[] {
  const out: R[] = [];
  mt.mt_for_each(first, last, (e, f, l) => {
    out.push([f, l, e]);
  });
  return out;
}

/** A tree holding [10,19]=a, [20,29]=b, [30,39]=c. */
function abc(): MapleTree<string> {
  const mt = new MapleTree<string>();
  mt.mtree_store_range(10, 19, 'a');
  mt.mtree_store_range(20, 29, 'b');
  mt.mtree_store_range(30, 39, 'c');
  return mt;
}

/** xorshift32 with a fixed seed. */
function prng(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}

/**
 * toEqual with a cheap check first: the differential tests compare thousands of results, and
 * vitest's matchers cost far more than the tree.
 */
function expectSame(got: unknown, want: unknown): void {
  if (JSON.stringify(got) !== JSON.stringify(want)) expect(got).toEqual(want);
}

describe('maple tree: empty map', () => {
  test('loads, walks and finds nothing; the whole space is one gap', () => {
    const mt = new MapleTree<number>();
    expect(mt.size).toBe(0);
    expect(mt.mtree_load(0)).toBeUndefined();
    expect(mt.mtree_load(MT_MAX)).toBeUndefined();
    expect(mt.mt_find(0, MT_MAX)).toBeUndefined();
    expect(mt.mt_next(0, MT_MAX)).toBeUndefined();
    expect(mt.mt_prev(MT_MAX, 0)).toBeUndefined();
    expect(walk(mt, 0, MT_MAX)).toEqual([]);
    expect([...mt]).toEqual([]);
    expect(mt.mtree_erase(5)).toBeUndefined();
    mt.mtree_erase_range(0, MT_MAX);
    expect(mt.size).toBe(0);
    expect(mt.find_gap(0, MT_MAX, MT_MAX)).toBe(0);
    expect(mt.find_gap_rev(0, MT_MAX, MT_MAX)).toBe(1);
    expect(mt.find_gap_rev(0, MT_MAX, 1)).toBe(MT_MAX);
    expect(mt.mt_range_is(0, 0, () => true)).toBe(true);
    expect(mt.mt_range_is(0, MT_MAX, (e) => e !== undefined)).toBe(false);
    mt.mt_validate();
  });
});

describe('maple tree: split and merge at boundaries', () => {
  test('store in the middle of a range splits it in three', () => {
    const mt = new MapleTree<string>();
    mt.mtree_store_range(0, 99, 'a');
    mt.mtree_store_range(40, 59, 'b');
    expect(dump(mt)).toEqual([
      [0, 39, 'a'],
      [40, 59, 'b'],
      [60, 99, 'a'],
    ]);
    expect(mt.mtree_load(39)).toBe('a');
    expect(mt.mtree_load(40)).toBe('b');
    expect(mt.mtree_load(59)).toBe('b');
    expect(mt.mtree_load(60)).toBe('a');
  });

  test('store at the first index of a range', () => {
    const mt = abc();
    mt.mtree_store(20, 'x');
    expect(dump(mt)).toEqual([
      [10, 19, 'a'],
      [20, 20, 'x'],
      [21, 29, 'b'],
      [30, 39, 'c'],
    ]);
  });

  test('store at the last index of a range', () => {
    const mt = abc();
    mt.mtree_store(29, 'x');
    expect(dump(mt)).toEqual([
      [10, 19, 'a'],
      [20, 28, 'b'],
      [29, 29, 'x'],
      [30, 39, 'c'],
    ]);
  });

  test('store exactly over a range replaces it', () => {
    const mt = abc();
    mt.mtree_store_range(20, 29, 'x');
    expect(dump(mt)).toEqual([
      [10, 19, 'a'],
      [20, 29, 'x'],
      [30, 39, 'c'],
    ]);
    expect(mt.size).toBe(3);
  });

  test('store spanning several ranges trims the outer ones and drops the inner', () => {
    const mt = abc();
    mt.mtree_store_range(40, 49, 'd');
    mt.mtree_store_range(15, 44, 'x');
    expect(dump(mt)).toEqual([
      [10, 14, 'a'],
      [15, 44, 'x'],
      [45, 49, 'd'],
    ]);
    mt.mtree_store_range(0, 100, 'y');
    expect(dump(mt)).toEqual([[0, 100, 'y']]);
  });

  test('store into a gap between ranges', () => {
    const mt = new MapleTree<string>();
    mt.mtree_store_range(0, 9, 'a');
    mt.mtree_store_range(30, 39, 'c');
    mt.mtree_store_range(15, 20, 'b');
    expect(dump(mt)).toEqual([
      [0, 9, 'a'],
      [15, 20, 'b'],
      [30, 39, 'c'],
    ]);
    expect(mt.mtree_load(12)).toBeUndefined();
    expect(mt.mtree_load(25)).toBeUndefined();
  });

  test('an equal entry adjacent on the left merges', () => {
    const mt = abc();
    mt.mtree_store_range(40, 45, 'c');
    expect(dump(mt)).toEqual([
      [10, 19, 'a'],
      [20, 29, 'b'],
      [30, 45, 'c'],
    ]);
  });

  test('an equal entry adjacent on the right merges', () => {
    const mt = abc();
    mt.mtree_store_range(5, 9, 'a');
    expect(dump(mt)).toEqual([
      [5, 19, 'a'],
      [20, 29, 'b'],
      [30, 39, 'c'],
    ]);
  });

  test('filling the gap between two equal ranges merges all three', () => {
    const mt = new MapleTree<string>();
    mt.mtree_store_range(0, 9, 'a');
    mt.mtree_store_range(20, 29, 'a');
    expect(mt.size).toBe(2);
    mt.mtree_store_range(10, 19, 'a');
    expect(dump(mt)).toEqual([[0, 29, 'a']]);
  });

  test('overwriting the middle range with its neighbours entry merges all three', () => {
    const mt = new MapleTree<string>();
    mt.mtree_store_range(0, 9, 'a');
    mt.mtree_store_range(10, 19, 'b');
    mt.mtree_store_range(20, 29, 'a');
    mt.mtree_store_range(10, 19, 'a');
    expect(dump(mt)).toEqual([[0, 29, 'a']]);
  });

  test('overlapping store of an equal entry merges with what it overlaps', () => {
    const mt = abc();
    mt.mtree_store_range(25, 34, 'c');
    expect(dump(mt)).toEqual([
      [10, 19, 'a'],
      [20, 24, 'b'],
      [25, 39, 'c'],
    ]);
    mt.mtree_store_range(12, 22, 'b');
    expect(dump(mt)).toEqual([
      [10, 11, 'a'],
      [12, 24, 'b'],
      [25, 39, 'c'],
    ]);
  });

  test('storing an equal entry inside a range changes nothing', () => {
    const mt = abc();
    mt.mtree_store_range(22, 27, 'b');
    expect(dump(mt)).toEqual(dump(abc()));
  });

  test('the equality function merges distinct but equal objects', () => {
    const attr = (bits: number) => ({ bits });
    const mt = new MapleTree<{ bits: number }>((a, b) => a.bits === b.bits);
    mt.mtree_store_range(0, 9, attr(8));
    mt.mtree_store_range(10, 19, attr(8));
    mt.mtree_store_range(20, 29, attr(1));
    mt.mtree_store_range(3, 5, attr(8));
    expect(mt.size).toBe(2);
    expect(mt.mt_range_at(7)).toMatchObject({ first: 0, last: 19 });
    const plain = new MapleTree<{ bits: number }>();
    plain.mtree_store_range(0, 9, attr(8));
    plain.mtree_store_range(10, 19, attr(8));
    expect(plain.size).toBe(2);
  });

  test('storing null or undefined erases, splitting straddlers', () => {
    const mt = abc();
    mt.mtree_store_range(15, 24, null);
    mt.mtree_store(35, undefined);
    expect(dump(mt)).toEqual([
      [10, 14, 'a'],
      [25, 29, 'b'],
      [30, 34, 'c'],
      [36, 39, 'c'],
    ]);
  });

  test('erase inside a range and across ranges', () => {
    const mt = abc();
    mt.mtree_erase_range(12, 13);
    expect(dump(mt)).toEqual([
      [10, 11, 'a'],
      [14, 19, 'a'],
      [20, 29, 'b'],
      [30, 39, 'c'],
    ]);
    mt.mtree_erase_range(18, 31);
    expect(dump(mt)).toEqual([
      [10, 11, 'a'],
      [14, 17, 'a'],
      [32, 39, 'c'],
    ]);
    mt.mtree_erase_range(0, MT_MAX);
    expect(mt.size).toBe(0);
  });

  test('mtree_erase removes the whole range containing the index and returns its entry', () => {
    const mt = abc();
    expect(mt.mtree_erase(25)).toBe('b');
    expect(dump(mt)).toEqual([
      [10, 19, 'a'],
      [30, 39, 'c'],
    ]);
    expect(mt.mtree_erase(25)).toBeUndefined();
    expect(mt.mtree_erase(39)).toBe('c');
    expect(mt.mtree_erase(10)).toBe('a');
    expect(mt.size).toBe(0);
  });

  test('mtree_insert refuses occupied indexes with -EEXIST', () => {
    const mt = abc();
    expect(mt.mtree_insert_range(40, 49, 'd')).toBe(0);
    expect(mt.mtree_insert_range(5, 10, 'x')).toBe(-Errno.EEXIST);
    expect(mt.mtree_insert_range(49, 60, 'x')).toBe(-Errno.EEXIST);
    expect(mt.mtree_insert(0, 'x')).toBe(0);
    expect(mt.mtree_insert(0, 'y')).toBe(-Errno.EEXIST);
    expect(mt.mtree_load(0)).toBe('x');
    expect(mt.size).toBe(5);
    expect(() => mt.mtree_insert(100, null as unknown as string)).toThrow(RangeError);
  });
});

describe('maple tree: index space edges', () => {
  test('ranges across 2^32 and near 2^52 and 2^53', () => {
    const mt = new MapleTree<string>();
    mt.mtree_store_range(2 ** 32 - 1, 2 ** 32, 'a');
    mt.mtree_store_range(2 ** 52 - 2, 2 ** 52 - 1, 'b');
    mt.mtree_store_range(MT_MAX - 1, MT_MAX, 'c');
    expect(mt.mtree_load(2 ** 32 - 2)).toBeUndefined();
    expect(mt.mtree_load(2 ** 32 - 1)).toBe('a');
    expect(mt.mtree_load(2 ** 32)).toBe('a');
    expect(mt.mtree_load(2 ** 32 + 1)).toBeUndefined();
    expect(mt.mtree_load(2 ** 52 - 3)).toBeUndefined();
    expect(mt.mtree_load(MAX_FRAME)).toBe('b');
    expect(mt.mtree_load(2 ** 52)).toBeUndefined();
    expect(mt.mtree_load(MT_MAX)).toBe('c');
    mt.mtree_store(2 ** 32, 'x');
    expect(dump(mt)).toEqual([
      [2 ** 32 - 1, 2 ** 32 - 1, 'a'],
      [2 ** 32, 2 ** 32, 'x'],
      [2 ** 52 - 2, 2 ** 52 - 1, 'b'],
      [MT_MAX - 1, MT_MAX, 'c'],
    ]);
    mt.mtree_store_range(2 ** 52, MT_MAX - 2, 'b');
    expect(dump(mt).slice(2)).toEqual([
      [2 ** 52 - 2, MT_MAX - 2, 'b'],
      [MT_MAX - 1, MT_MAX, 'c'],
    ]);
    expect(mt.mt_find(2 ** 33, MT_MAX)).toEqual({ first: 2 ** 52 - 2, last: MT_MAX - 2, entry: 'b' });
    expect(mt.mt_prev(MT_MAX, 0)).toEqual({ first: 2 ** 52 - 2, last: MT_MAX - 2, entry: 'b' });
    expect(mt.find_gap(2 ** 32 - 1, MT_MAX, 1)).toBe(2 ** 32 + 1);
    expect(mt.find_gap_rev(0, MT_MAX, 1)).toBe(2 ** 52 - 3);
  });

  test('the full range [0, 2^53 - 1]', () => {
    const mt = new MapleTree<string>();
    mt.mtree_store_range(0, MT_MAX, 'all');
    expect(mt.size).toBe(1);
    expect(mt.mtree_load(0)).toBe('all');
    expect(mt.mtree_load(MT_MAX)).toBe('all');
    expect(mt.find_gap(0, MT_MAX, 1)).toBeUndefined();
    expect(mt.mt_range_is(0, MT_MAX, (e) => e === 'all')).toBe(true);
    mt.mtree_store(MT_MAX, 'top');
    mt.mtree_store(0, 'bottom');
    expect(dump(mt)).toEqual([
      [0, 0, 'bottom'],
      [1, MT_MAX - 1, 'all'],
      [MT_MAX, MT_MAX, 'top'],
    ]);
    mt.mtree_store_range(0, MT_MAX, 'all');
    expect(dump(mt)).toEqual([[0, MT_MAX, 'all']]);
    expect(mt.mtree_erase(2 ** 40)).toBe('all');
    expect(mt.size).toBe(0);
  });

  test('single-index ranges', () => {
    const mt = new MapleTree<number>();
    for (let i = 0; i < 100; i += 2) mt.mtree_store(i, i);
    expect(mt.size).toBe(50);
    expect(mt.mtree_load(42)).toBe(42);
    expect(mt.mtree_load(43)).toBeUndefined();
    expect(mt.mt_range_at(42)).toEqual({ first: 42, last: 42, entry: 42 });
    expect(walk(mt, 41, 45)).toEqual([
      [42, 42, 42],
      [44, 44, 44],
    ]);
    expect(mt.mt_next(42, 100)).toEqual({ first: 44, last: 44, entry: 44 });
    expect(mt.mt_next(43, 100)).toEqual({ first: 44, last: 44, entry: 44 });
    expect(mt.mt_next(98, 1000)).toBeUndefined();
    expect(mt.mt_prev(42, 0)).toEqual({ first: 40, last: 40, entry: 40 });
    expect(mt.mt_prev(0, 0)).toBeUndefined();
    expect(mt.find_gap(0, 200, 2)).toBe(99);
    expect(mt.find_gap(0, 200, 1)).toBe(1);
    expect(mt.find_gap_rev(0, 98, 1)).toBe(97);
    expect(mt.find_gap_rev(0, 98, 2)).toBeUndefined();
    mt.mt_validate();
  });

  test('misuse throws RangeError', () => {
    const mt = new MapleTree<number>();
    expect(() => mt.mtree_store_range(5, 4, 1)).toThrow(RangeError);
    expect(() => mt.mtree_store_range(-1, 4, 1)).toThrow(RangeError);
    expect(() => mt.mtree_store_range(0, 2 ** 53, 1)).toThrow(RangeError);
    expect(() => mt.mtree_store(1.5, 1)).toThrow(RangeError);
    expect(() => mt.mtree_load(NaN)).toThrow(RangeError);
    expect(() => mt.mtree_erase_range(3, 2)).toThrow(RangeError);
    expect(() => mt.mt_for_each(3, 2, () => undefined)).toThrow(RangeError);
    expect(() => mt.find_gap(0, 10, 0)).toThrow(RangeError);
    expect(() => mt.find_gap(0, 10, 1.5)).toThrow(RangeError);
    expect(() => mt.mt_find(Infinity, 1)).toThrow(RangeError);
    expect(mt.mt_find(5, 4)).toBeUndefined();
    expect(mt.size).toBe(0);
  });
});

describe('maple tree: walks', () => {
  test('mt_for_each reports stored, unclipped bounds and stops on false', () => {
    const mt = abc();
    expect(walk(mt, 15, 35)).toEqual([
      [10, 19, 'a'],
      [20, 29, 'b'],
      [30, 39, 'c'],
    ]);
    expect(walk(mt, 19, 20)).toEqual([
      [10, 19, 'a'],
      [20, 29, 'b'],
    ]);
    expect(walk(mt, 0, 9)).toEqual([]);
    expect(walk(mt, 40, 50)).toEqual([]);
    const seen: string[] = [];
    mt.mt_for_each(0, MT_MAX, (e) => {
      seen.push(e);
      return e !== 'b';
    });
    expect(seen).toEqual(['a', 'b']);
    expect([...mt.ranges(21, 30)].map((r) => r.entry)).toEqual(['b', 'c']);
  });

  test('a callback that modifies the tree does not break the walk', () => {
    const mt = new MapleTree<number>();
    for (let i = 0; i < 200; i++) mt.mtree_store_range(i * 10, i * 10 + 4, i);
    const seen: number[] = [];
    mt.mt_for_each(0, MT_MAX, (e, f) => {
      seen.push(e);
      mt.mtree_erase(f);
      if (e % 2 === 0) mt.mtree_store_range(f + 5, f + 5, -1);
    });
    expect(seen.filter((e) => e >= 0)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(seen.filter((e) => e < 0)).toHaveLength(100);
    expect(mt.size).toBe(0);

    for (let i = 0; i < 50; i++) mt.mtree_store_range(i * 10, i * 10 + 4, i);
    let n = 0;
    for (const r of mt.ranges()) {
      mt.mtree_erase(r.first);
      n++;
    }
    expect(n).toBe(50);
    expect(mt.size).toBe(0);
  });

  test('mt_find returns the range containing start or the next one, up to max', () => {
    const mt = abc();
    expect(mt.mt_find(25, 100)).toEqual({ first: 20, last: 29, entry: 'b' });
    expect(mt.mt_find(0, 9)).toBeUndefined();
    expect(mt.mt_find(0, 10)).toEqual({ first: 10, last: 19, entry: 'a' });
    expect(mt.mt_find(40, MT_MAX)).toBeUndefined();
  });

  test('find_gap and find_gap_rev find the lowest and highest fitting hole', () => {
    const mt = new MapleTree<string>();
    mt.mtree_store_range(0, 9, 'a');
    mt.mtree_store_range(13, 19, 'b');
    mt.mtree_store_range(30, 39, 'c');
    mt.mtree_store_range(45, 99, 'd');
    expect(mt.find_gap(0, 99, 3)).toBe(10);
    expect(mt.find_gap(0, 99, 4)).toBe(20);
    expect(mt.find_gap(0, 99, 10)).toBe(20);
    expect(mt.find_gap(0, 99, 11)).toBeUndefined();
    expect(mt.find_gap(0, 150, 11)).toBe(100);
    expect(mt.find_gap(21, 29, 9)).toBe(21);
    expect(mt.find_gap(21, 29, 10)).toBeUndefined();
    expect(mt.find_gap(5, 12, 3)).toBe(10);
    expect(mt.find_gap(5, 11, 3)).toBeUndefined();
    expect(mt.find_gap_rev(0, 99, 3)).toBe(42);
    expect(mt.find_gap_rev(0, 99, 6)).toBe(24);
    expect(mt.find_gap_rev(0, 99, 11)).toBeUndefined();
    expect(mt.find_gap_rev(0, 44, 5)).toBe(40);
    expect(mt.find_gap_rev(0, 43, 5)).toBe(25);
    expect(mt.find_gap_rev(0, 43, 11)).toBeUndefined();
    expect(mt.find_gap_rev(0, 200, 101)).toBe(100);
    expect(mt.find_gap_rev(100, 200, 101)).toBe(100);
    expect(mt.find_gap_rev(100, 199, 101)).toBeUndefined();
  });

  test('mt_range_is: every index must satisfy pred, gaps are pred(undefined)', () => {
    const PRIVATE = 8;
    const mt = new MapleTree<number>();
    mt.mtree_store_range(0, 99, PRIVATE);
    mt.mtree_store_range(100, 199, PRIVATE | 1);
    mt.mtree_store_range(300, 399, PRIVATE);
    const isPrivate = (e: number | undefined) => e !== undefined && (e & PRIVATE) !== 0;
    expect(mt.mt_range_is(0, 199, isPrivate)).toBe(true);
    expect(mt.mt_range_is(50, 150, (e) => e === PRIVATE)).toBe(false);
    expect(mt.mt_range_is(0, 200, isPrivate)).toBe(false);
    expect(mt.mt_range_is(199, 300, isPrivate)).toBe(false);
    expect(mt.mt_range_is(200, 299, isPrivate)).toBe(false);
    expect(mt.mt_range_is(200, 299, (e) => e === undefined)).toBe(true);
    expect(mt.mt_range_is(150, 350, (e) => e === undefined || isPrivate(e))).toBe(true);
    let calls = 0;
    expect(
      mt.mt_range_is(0, 1000, () => {
        calls++;
        return true;
      }),
    ).toBe(true);
    // three ranges, the hole [200, 299] and the tail [400, 1000]
    expect(calls).toBe(5);
  });
});

describe('maple tree: scale', () => {
  test('storing the same entry page by page over 262144 pages leaves one range', () => {
    const mt = new MapleTree<number>();
    const base = 2 ** 40;
    for (let i = 0; i < 262144; i++) mt.mtree_store(base + i, 8);
    expect(mt.size).toBe(1);
    expect(mt.mt_range_at(base + 1000)).toEqual({ first: base, last: base + 262143, entry: 8 });
    for (let i = 262143; i >= 0; i -= 2) mt.mtree_store(base + i, 0);
    expect(mt.size).toBe(262144);
    mt.mt_validate();
    for (let i = 0; i < 262144; i += 2) mt.mtree_store(base + i, 0);
    expect(mt.size).toBe(1);
    expect(mt.mtree_load(base + 262143)).toBe(0);
  });

  test('replacing a hundred thousand ranges with one store', () => {
    const mt = new MapleTree<number>();
    for (let i = 0; i < 100_000; i++) mt.mtree_store_range(i * 4, i * 4 + 2, i);
    expect(mt.size).toBe(100_000);
    mt.mtree_store_range(1, 399_990, -1);
    expect(dump(mt)).toEqual([
      [0, 0, 0],
      [1, 399_990, -1],
      [399_992, 399_994, 99_998],
      [399_996, 399_998, 99_999],
    ]);
    // Freed nodes are reused.
    for (let i = 0; i < 100_000; i++) mt.mtree_store(i * 2, i);
    mt.mt_validate();
  });
});

describe('maple tree: differential test against a flat array', () => {
  type V = number | undefined;

  /** The maximal runs of equal defined values of model intersecting [first, last]. */
  function runs(model: V[], first: number, last: number): MapleRange<number>[] {
    const out: MapleRange<number>[] = [];
    let i = Math.max(0, first);
    while (i > 0 && model[i - 1] === model[i]) i--;
    while (i < model.length && i <= last) {
      const e = model[i];
      let j = i;
      while (j + 1 < model.length && model[j + 1] === e) j++;
      if (e !== undefined) out.push({ first: i, last: j, entry: e });
      i = j + 1;
    }
    return out;
  }

  /**
   * Random stores, inserts and erases, mostly short, over `space` indexes; after each op the
   * touched indexes and a random window are compared through every query.
   */
  function differential(seed: number, space: number, ops: number, fill: boolean, width?: number): MapleTree<number> {
    const rnd = prng(seed);
    const mt = new MapleTree<number>(undefined, width);
    const model: V[] = new Array<V>(space).fill(undefined);
    const asList = (rs: MapleRange<number>[]) => rs.map((r): R => [r.first, r.last, r.entry]);
    if (fill) {
      for (let i = 0; i < space; i++) {
        const v = rnd(3);
        mt.mtree_store(i, v);
        model[i] = v;
      }
      expect(mt.size).toBe(runs(model, 0, space).length);
      mt.mt_validate();
    }
    // Half the operations hit a hot spot that moves every 100, so that nodes there fill up and
    // drain; entries are mostly from a small set, so that neighbours often merge.
    let hot = 0;
    for (let op = 0; op < ops; op++) {
      if (op % 100 === 0) hot = rnd(space);
      const a = rnd(2) === 0 ? Math.min(space - 1, hot + rnd(24)) : rnd(space);
      const len = rnd(48) === 0 ? rnd(space) : rnd(rnd(6) === 0 ? 40 : 4);
      const b = Math.min(space - 1, a + len);
      const v: V = rnd(5) === 0 ? undefined : rnd(3) === 0 ? 100 + rnd(1000) : rnd(4);
      // Everything observed after the operation, and what the model says it should be; compared
      // as one object per operation, which keeps the test fast and its failures readable.
      const got: Record<string, unknown> = { op };
      const want: Record<string, unknown> = { op };
      switch (rnd(6)) {
        case 0: {
          const run = runs(model, a, a).find((r) => r.first <= a && a <= r.last);
          got.erased = mt.mtree_erase(a);
          want.erased = run?.entry;
          if (run) model.fill(undefined, run.first, run.last + 1);
          break;
        }
        case 1:
          mt.mtree_erase_range(a, b);
          model.fill(undefined, a, b + 1);
          break;
        case 2: {
          let free = true;
          for (let i = a; i <= b; i++) free &&= model[i] === undefined;
          got.inserted = mt.mtree_insert_range(a, b, 7);
          want.inserted = free ? 0 : -Errno.EEXIST;
          if (free) model.fill(7, a, b + 1);
          break;
        }
        default:
          mt.mtree_store_range(a, b, v);
          model.fill(v, a, b + 1);
      }
      got.loads = [mt.mtree_load(a), mt.mtree_load(b)];
      want.loads = [model[a], model[b]];
      got.around = walk(mt, Math.max(0, a - 2), b + 2);
      want.around = asList(runs(model, a - 2, b + 2));
      if (op % 100 === 0 || op === ops - 1) {
        got.all = dump(mt);
        want.all = asList(runs(model, 0, space));
        got.size = mt.size;
        want.size = runs(model, 0, space).length;
      }
      const q1 = rnd(space);
      const q2 = Math.min(space + 10, q1 + rnd(40));
      const inside = runs(model, q1, q2);
      got.walk = walk(mt, q1, q2);
      want.walk = asList(inside);
      got.iter = [...mt.ranges(q1, q2)];
      want.iter = inside;
      got.find = mt.mt_find(q1, q2);
      want.find = inside[0];
      got.next = mt.mt_next(q1, q2);
      want.next = runs(model, q1, q2 + 50).find((r) => r.first > q1 && r.first <= q2);
      got.prev = mt.mt_prev(q2, q1);
      want.prev = runs(model, q1 - 50, q2)
        .filter((r) => r.last < q2 && r.last >= q1)
        .at(-1);
      const size = 1 + rnd(8);
      const fits = (s: number) => {
        for (let i = s; i < s + size; i++) if (model[i] !== undefined) return false;
        return s + size - 1 <= q2;
      };
      let low: number | undefined;
      for (let s = q1; s + size - 1 <= q2; s++) {
        if (fits(s)) {
          low = s;
          break;
        }
      }
      let high: number | undefined;
      for (let s = q2 - size + 1; s >= q1; s--) {
        if (fits(s)) {
          high = s;
          break;
        }
      }
      got.gaps = [mt.find_gap(q1, q2, size), mt.find_gap_rev(q1, q2, size)];
      want.gaps = [low, high];
      const want2 = rnd(4);
      const pred = (e: V) => e === want2 || (want2 === 0 && e === undefined);
      let all = true;
      for (let i = q1; i <= q2; i++) all &&= pred(model[i]);
      got.rangeIs = mt.mt_range_is(q1, q2, pred);
      want.rangeIs = all;
      expectSame(got, want);
      if (width !== undefined) mt.mt_validate();
    }
    mt.mt_validate();
    return mt;
  }

  test.each([1, 2, 3])('seed %i: 3000 operations over 160 indexes, every query compared', (seed) => {
    differential(0x5eed0000 + seed, 160, 3000, false);
  });

  // Nodes of 8 and 12 make trees 4 to 6 levels deep out of a few hundred ranges, so that every
  // split, merge and redistribution of branches happens many times; mt_validate runs after
  // every operation.
  test.each([
    [1, 8],
    [2, 8],
    [3, 12],
  ])('seed %i: 5000 operations on %i-wide nodes, validated after each', (seed, width) => {
    differential(0x0de50000 + seed, 600, 5000, true, width);
  });

  test('4000 operations over a 64-wide tree of 12000 indexes', () => {
    differential(0xdee90001, 12000, 4000, true);
  });

  test('node width must be a multiple of 4 from 8', () => {
    expect(() => new MapleTree<number>(undefined, 10)).toThrow(RangeError);
    expect(() => new MapleTree<number>(undefined, 4)).toThrow(RangeError);
    const mt = new MapleTree<number>(undefined, 8);
    for (let i = 0; i < 1000; i++) mt.mtree_store(i * 2, i);
    mt.mt_validate();
    expect(mt.size).toBe(1000);
    mt.mtree_erase_range(1, 1997);
    expect(dump(mt)).toEqual([
      [0, 0, 0],
      [1998, 1998, 999],
    ]);
  });

  // With 8-wide nodes these sequences leave a node underfull next to a full sibling, at leaf
  // and at branch level, and on either side, so that the two share items instead of merging.
  test('narrow nodes: underfull nodes refill from full siblings on either side', () => {
    const model = new Map<number, number>();
    const check = (mt: MapleTree<number>) => {
      mt.mt_validate();
      expect(dump(mt)).toEqual([...model].sort((a, b) => a[0] - b[0]).map(([i, v]): R => [i, i, v]));
    };
    const store = (mt: MapleTree<number>, i: number, v: number) => {
      mt.mtree_store(i, v);
      model.set(i, v);
    };
    const erase = (mt: MapleTree<number>, i: number) => {
      expect(mt.mtree_erase(i)).toBe(model.get(i));
      model.delete(i);
      check(mt);
    };

    const a = new MapleTree<number>(undefined, 8);
    for (let i = 0; i < 64; i++) store(a, i * 4, i);
    for (let i = 0; i < 60; i += 2) store(a, i + 1, 1000 + i);
    check(a);
    for (let i = 64; i < 128; i += 4) erase(a, i);

    model.clear();
    const b = new MapleTree<number>(undefined, 8);
    for (let i = 0; i < 64; i++) store(b, i * 4, i);
    for (let i = 64; i < 128; i += 2) store(b, i + 1, 1000 + i);
    check(b);
    for (let i = 60; i >= 0; i -= 4) erase(b, i);
    expect(b.size).toBe(64 + 32 - 16);
  });

  test('mt_validate catches a broken tree', () => {
    const mt = abc();
    (mt as unknown as { root: { lasts: number[] } }).root.lasts[0] = 25;
    expect(() => mt.mt_validate()).toThrow(KernelBug);
  });
});

describe('maple tree: clear and destroy', () => {
  test('clear() and mtree_destroy() empty the tree, which stays usable', () => {
    const mt = abc();
    mt.clear();
    expect(mt.size).toBe(0);
    expect(mt.mtree_load(15)).toBeUndefined();
    mt.mtree_store_range(1, 2, 'z');
    expect(dump(mt)).toEqual([[1, 2, 'z']]);
    mt.mtree_destroy();
    expect([...mt]).toEqual([]);
    expect(mt.mtree_insert(1, 'q')).toBe(0);
  });
});
