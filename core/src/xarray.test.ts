import { describe, expect, test } from 'vitest';
import { Errno } from './errno.js';
import { MAX_FRAME } from './types.js';
import {
  XArray,
  XA_MARK_0,
  XA_MARK_1,
  XA_MARK_2,
  XA_MAX_INDEX,
  XA_PRESENT,
  XaState,
  type XaEntry,
  type XaMark,
} from './xarray.js';

function all<T>(xa: XArray<T>, first = 0, last = XA_MAX_INDEX): [number, T][] {
  const out: [number, T][] = [];
  xa.xa_for_each_range(first, last, (i, e) => {
    out.push([i, e]);
  });
  return out;
}

function marked<T>(xa: XArray<T>, mark: XaMark, first = 0, last = XA_MAX_INDEX): number[] {
  const out: number[] = [];
  xa.xa_for_each_marked(first, last, mark, (i) => {
    out.push(i);
  });
  return out;
}

/** xas_for_each() (or xas_for_each_marked()) over [first, last], collected. */
function xasWalk<T>(xa: XArray<T>, first: number, last: number, mark?: XaMark): XaEntry<T>[] {
  const out: XaEntry<T>[] = [];
  const xas = new XaState(xa, first);
  const next = (): T | undefined => (mark === undefined ? xas.xas_find(last) : xas.xas_find_marked(last, mark));
  for (let e = next(); e !== undefined; e = mark === undefined ? xas.xas_next_entry(last) : next()) out.push({ index: xas.xa_index, entry: e });
  return out;
}

/** toEqual, with a cheap check first: the differential test compares long lists thousands of times. */
function expectSame(got: unknown, want: unknown): void {
  if (JSON.stringify(got) !== JSON.stringify(want)) expect(got).toEqual(want);
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

const SPARSE = [0, 63, 64, 4095, 4096, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 64, MAX_FRAME, XA_MAX_INDEX];

describe('xarray: empty', () => {
  test('an empty array loads, finds and walks nothing', () => {
    const xa = new XArray<string>();
    expect(xa.xa_empty()).toBe(true);
    expect(xa.size).toBe(0);
    expect(xa.xa_load(0)).toBeUndefined();
    expect(xa.xa_load(XA_MAX_INDEX)).toBeUndefined();
    expect(xa.xa_find(0, XA_MAX_INDEX)).toBeUndefined();
    expect(xa.xa_find_after(0, XA_MAX_INDEX)).toBeUndefined();
    expect(xa.xa_erase(7)).toBeUndefined();
    expect(all(xa)).toEqual([]);
    expect(marked(xa, XA_MARK_0)).toEqual([]);
    expect(xa.xa_marked(XA_MARK_0)).toBe(false);
    xa.xa_set_mark(3, XA_MARK_0);
    expect(xa.xa_get_mark(3, XA_MARK_0)).toBe(false);
    expect(xa.xa_empty()).toBe(true);
  });
});

describe('xarray: sparse indexes', () => {
  test('entries far apart load back and walk in index order', () => {
    const xa = new XArray<string>();
    for (const i of [...SPARSE].reverse()) expect(xa.xa_store(i, `e${i}`)).toBeUndefined();
    expect(xa.size).toBe(SPARSE.length);
    for (const i of SPARSE) expect(xa.xa_load(i)).toBe(`e${i}`);
    for (const i of [1, 62, 65, 2 ** 32 + 1, MAX_FRAME - 1, 2 ** 52, XA_MAX_INDEX - 1]) {
      expect(xa.xa_load(i)).toBeUndefined();
    }
    expect(all(xa).map(([i]) => i)).toEqual(SPARSE);
    expect([...xa].map((e) => e.index)).toEqual(SPARSE);
    expect(all(xa, 64, 2 ** 32).map(([i]) => i)).toEqual([64, 4095, 4096, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32]);
  });

  test('xa_find and xa_find_after step through the entries', () => {
    const xa = new XArray<number>();
    for (const i of SPARSE) xa.xa_store(i, i);
    expect(xa.xa_find(1, XA_MAX_INDEX)).toEqual({ index: 63, entry: 63 });
    expect(xa.xa_find(63, XA_MAX_INDEX)).toEqual({ index: 63, entry: 63 });
    expect(xa.xa_find(65, 4094)).toBeUndefined();
    expect(xa.xa_find(65, 4095)).toEqual({ index: 4095, entry: 4095 });
    expect(xa.xa_find(2 ** 32 + 1, XA_MAX_INDEX)).toEqual({ index: 2 ** 32 + 64, entry: 2 ** 32 + 64 });
    expect(xa.xa_find(10, 5)).toBeUndefined();
    const seen: number[] = [];
    for (let e = xa.xa_find(0, XA_MAX_INDEX); e; e = xa.xa_find_after(e.index, XA_MAX_INDEX)) seen.push(e.index);
    expect(seen).toEqual(SPARSE);
    expect(xa.xa_find_after(XA_MAX_INDEX, XA_MAX_INDEX)).toBeUndefined();
  });

  test('store returns the old entry; null erases; xa_insert refuses with -EBUSY', () => {
    const xa = new XArray<string>();
    expect(xa.xa_store(2 ** 40, 'a')).toBeUndefined();
    expect(xa.xa_store(2 ** 40, 'b')).toBe('a');
    expect(xa.size).toBe(1);
    expect(xa.xa_insert(2 ** 40, 'c')).toBe(-Errno.EBUSY);
    expect(xa.xa_insert(2 ** 40 + 1, 'c')).toBe(0);
    expect(xa.xa_store(2 ** 40, null)).toBe('b');
    expect(xa.xa_store(2 ** 40 + 1, undefined)).toBe('c');
    expect(xa.xa_empty()).toBe(true);
  });

  test('erasing everything empties and shrinks the tree; it grows again', () => {
    const xa = new XArray<number>();
    for (const i of SPARSE) xa.xa_store(i, i);
    for (const i of SPARSE) expect(xa.xa_erase(i)).toBe(i);
    expect(xa.xa_empty()).toBe(true);
    expect(xa.size).toBe(0);
    expect(all(xa)).toEqual([]);
    xa.xa_store(5, 5);
    expect(all(xa)).toEqual([[5, 5]]);
    const rootShift = () => (xa as unknown as { head: { shift: number } }).head.shift;
    expect(rootShift()).toBe(0);
    xa.xa_store(MAX_FRAME, 1);
    expect(rootShift()).toBe(48);
    xa.xa_erase(MAX_FRAME);
    expect(rootShift()).toBe(0);
    expect(all(xa)).toEqual([[5, 5]]);
    expect(xa.xa_load(5)).toBe(5);
  });

  test('misuse throws RangeError', () => {
    const xa = new XArray<number>();
    expect(() => xa.xa_store(-1, 1)).toThrow(RangeError);
    expect(() => xa.xa_store(2 ** 53, 1)).toThrow(RangeError);
    expect(() => xa.xa_load(0.5)).toThrow(RangeError);
    expect(() => xa.xa_set_mark(0, 3 as XaMark)).toThrow(RangeError);
    expect(() => xa.xa_find(0, 10, 5 as XaMark)).toThrow(RangeError);
    expect(() => xa.xa_store_range(5, 4, 1)).toThrow(RangeError);
    expect(() => xa.xa_insert(0, undefined as unknown as number)).toThrow(RangeError);
  });
});

describe('xarray: ranges', () => {
  test('xa_store_range stores every index and erases with null', () => {
    const xa = new XArray<string>();
    xa.xa_store_range(2 ** 32 - 3, 2 ** 32 + 2, 'r');
    expect(xa.size).toBe(6);
    expect(xa.xa_load(2 ** 32 - 4)).toBeUndefined();
    expect(xa.xa_load(2 ** 32 - 3)).toBe('r');
    expect(xa.xa_load(2 ** 32 + 2)).toBe('r');
    expect(xa.xa_load(2 ** 32 + 3)).toBeUndefined();
    xa.xa_store(2 ** 40, 'far');
    xa.xa_store_range(0, 2 ** 33, null);
    expect(all(xa)).toEqual([[2 ** 40, 'far']]);
  });

  test('erasing a range drops whole leaves and leaves the array as erasing entry by entry would', () => {
    /* dense runs over several leaves, a marked entry inside the range, entries just outside it */
    for (const [first, last] of [[64, 191], [60, 200], [0, 4095], [130, 130], [2 ** 32 - 70, 2 ** 32 + 70]]) {
      const a = new XArray<number>();
      const b = new XArray<number>();
      for (const xa of [a, b]) {
        for (let i = Math.max(0, first - 5); i <= last + 5; i++) if (i % 7 !== 3) xa.xa_store(i, i + 1);
        xa.xa_set_mark(first + 1, XA_MARK_1);
        xa.xa_set_mark(first, XA_MARK_1);
        xa.xa_set_mark(last + 2, XA_MARK_0);
      }
      a.xa_store_range(first, last, null);
      for (let i = first; i <= last; i++) b.xa_erase(i);
      expect(all(a), `[${first}, ${last}]`).toEqual(all(b));
      expect(a.size).toBe(b.size);
      for (const m of [XA_MARK_0, XA_MARK_1]) expect(a.xa_marked(m)).toBe(b.xa_marked(m));
      expect(a.xa_get_mark(first, XA_MARK_1)).toBe(false);
      expect(a.xa_get_mark(first + 1, XA_MARK_1)).toBe(b.xa_get_mark(first + 1, XA_MARK_1));
      expect(a.xa_get_mark(last + 2, XA_MARK_0)).toBe(b.xa_get_mark(last + 2, XA_MARK_0));
      /* the array still grows and walks after the leaves went */
      a.xa_store(first, 1);
      expect(a.xa_load(first)).toBe(1);
      expect(all(a, first, last)).toEqual([[first, 1]]);
    }
    const e = new XArray<number>();
    for (let i = 0; i < 128; i++) e.xa_store(i, i + 1);
    e.xa_store_range(0, 127, null);
    expect(e.xa_empty()).toBe(true);
  });

  test('xa_for_each_range clips to the range and stops on false', () => {
    const xa = new XArray<number>();
    for (let i = 0; i < 300; i += 3) xa.xa_store(i, i);
    expect(all(xa, 61, 70).map(([i]) => i)).toEqual([63, 66, 69]);
    expect(all(xa, 63, 63).map(([i]) => i)).toEqual([63]);
    expect(all(xa, 64, 65)).toEqual([]);
    const seen: number[] = [];
    xa.xa_for_each((i) => {
      seen.push(i);
      return i < 120;
    });
    expect(seen.at(-1)).toBe(120);
    expect(seen).toHaveLength(41);
    expect([...xa.entries(290, 1000)].map((e) => e.index)).toEqual([291, 294, 297]);
  });

  test('a walk callback may erase and store', () => {
    const xa = new XArray<number>();
    for (let i = 0; i < 1000; i++) xa.xa_store(i * 7, i);
    const seen: number[] = [];
    xa.xa_for_each((i, e) => {
      seen.push(e);
      xa.xa_erase(i);
      if (e === 500) xa.xa_store(2 ** 45, -1);
    });
    expect(seen).toHaveLength(1001);
    expect(seen.at(-1)).toBe(-1);
    expect(xa.xa_empty()).toBe(true);
  });
});

describe('xarray: marks', () => {
  test('set, get, clear; walks see only marked entries', () => {
    const xa = new XArray<number>();
    for (const i of SPARSE) xa.xa_store(i, i);
    xa.xa_set_mark(64, XA_MARK_0);
    xa.xa_set_mark(2 ** 32, XA_MARK_0);
    xa.xa_set_mark(MAX_FRAME, XA_MARK_0);
    xa.xa_set_mark(63, XA_MARK_1);
    xa.xa_set_mark(1, XA_MARK_0);
    expect(xa.xa_get_mark(64, XA_MARK_0)).toBe(true);
    expect(xa.xa_get_mark(64, XA_MARK_1)).toBe(false);
    expect(xa.xa_get_mark(1, XA_MARK_0)).toBe(false);
    expect(marked(xa, XA_MARK_0)).toEqual([64, 2 ** 32, MAX_FRAME]);
    expect(marked(xa, XA_MARK_1)).toEqual([63]);
    expect(marked(xa, XA_MARK_2)).toEqual([]);
    expect(marked(xa, XA_MARK_0, 65, MAX_FRAME - 1)).toEqual([2 ** 32]);
    expect(xa.xa_marked(XA_MARK_0)).toBe(true);
    expect(xa.xa_marked(XA_MARK_2)).toBe(false);
    expect(xa.xa_find(0, XA_MAX_INDEX, XA_MARK_0)).toEqual({ index: 64, entry: 64 });
    expect(xa.xa_find_after(64, XA_MAX_INDEX, XA_MARK_0)).toEqual({ index: 2 ** 32, entry: 2 ** 32 });
    expect([...xa.entries(0, XA_MAX_INDEX, XA_MARK_1)].map((e) => e.index)).toEqual([63]);

    xa.xa_clear_mark(2 ** 32, XA_MARK_0);
    expect(xa.xa_get_mark(2 ** 32, XA_MARK_0)).toBe(false);
    expect(marked(xa, XA_MARK_0)).toEqual([64, MAX_FRAME]);
    xa.xa_clear_mark(64, XA_MARK_0);
    xa.xa_clear_mark(MAX_FRAME, XA_MARK_0);
    expect(xa.xa_marked(XA_MARK_0)).toBe(false);
    expect(marked(xa, XA_MARK_0)).toEqual([]);
  });

  test('replacing an entry keeps its marks; erasing clears them', () => {
    const xa = new XArray<string>();
    xa.xa_store(100, 'a');
    xa.xa_set_mark(100, XA_MARK_2);
    xa.xa_store(100, 'b');
    expect(xa.xa_get_mark(100, XA_MARK_2)).toBe(true);
    xa.xa_store(101, 'c');
    xa.xa_erase(100);
    expect(xa.xa_get_mark(100, XA_MARK_2)).toBe(false);
    expect(xa.xa_marked(XA_MARK_2)).toBe(false);
    xa.xa_store(100, 'd');
    expect(xa.xa_get_mark(100, XA_MARK_2)).toBe(false);
    expect(marked(xa, XA_MARK_2)).toEqual([]);
  });

  test('marks survive the root growing and shrinking', () => {
    const xa = new XArray<number>();
    xa.xa_store(3, 3);
    xa.xa_set_mark(3, XA_MARK_1);
    xa.xa_store(2 ** 50, 1);
    expect(marked(xa, XA_MARK_1)).toEqual([3]);
    xa.xa_erase(2 ** 50);
    expect(xa.xa_get_mark(3, XA_MARK_1)).toBe(true);
    expect(xa.xa_marked(XA_MARK_1)).toBe(true);
    expect(marked(xa, XA_MARK_1)).toEqual([3]);
  });

  test('a marked walk skips unmarked subtrees of a dense array', () => {
    const xa = new XArray<number>();
    for (let i = 0; i < 100_000; i++) xa.xa_store(i, i);
    xa.xa_set_mark(99_999, XA_MARK_0);
    xa.xa_set_mark(12_345, XA_MARK_0);
    expect(marked(xa, XA_MARK_0)).toEqual([12_345, 99_999]);
    expect(xa.xa_find(12_346, XA_MAX_INDEX, XA_MARK_0)?.index).toBe(99_999);
    expect(xa.size).toBe(100_000);
  });
});

describe('xarray: XaState cursor', () => {
  test('xas_find then xas_next_entry walk the entries of [index, max] in order', () => {
    const xa = new XArray<string>();
    for (const i of [3, 63, 64, 65, 4095, 4096, 2 ** 40]) xa.xa_store(i, `e${i}`);
    expect(xasWalk(xa, 0, XA_MAX_INDEX).map((e) => e.index)).toEqual([3, 63, 64, 65, 4095, 4096, 2 ** 40]);
    expect(xasWalk(xa, 4, 4095).map((e) => e.index)).toEqual([63, 64, 65, 4095]);
    expect(xasWalk(xa, 64, 64)).toEqual([{ index: 64, entry: 'e64' }]);
    expect(xasWalk(xa, 66, 4094)).toEqual([]);
    expect(xasWalk(xa, 10, 5)).toEqual([]);
    expect(xasWalk(new XArray<number>(), 0, XA_MAX_INDEX)).toEqual([]);
  });

  test('a cursor that found nothing stays put and finds what is stored later', () => {
    const xa = new XArray<number>();
    xa.xa_store(5, 50);
    const xas = new XaState(xa, 0);
    expect(xas.xas_find(100)).toBe(50);
    expect(xas.xa_index).toBe(5);
    expect(xas.xas_next_entry(100)).toBeUndefined();
    expect(xas.xa_index).toBe(5);
    xa.xa_store(6, 60);
    xa.xa_store(2, 20);
    /* after the current entry, never before it */
    expect(xas.xas_next_entry(100)).toBe(60);
    expect(xas.xa_index).toBe(6);
    /* an unwalked cursor looks at its own index */
    xas.xas_set(2);
    expect(xas.xas_find(100)).toBe(20);
    expect(xas.xas_load()).toBe(20);
  });

  test('the array may change between steps: erasing the current entry, or its whole leaf', () => {
    const xa = new XArray<number>();
    for (let i = 0; i < 200; i++) xa.xa_store(i, i);
    const seen: number[] = [];
    const xas = new XaState(xa, 0);
    for (let e = xas.xas_find(199); e !== undefined; e = xas.xas_next_entry(199)) {
      seen.push(e);
      /* page_cache_delete_batch(): store NULL at the cursor, which frees leaves as they empty */
      expect(xas.xas_store(null)).toBe(e);
      if (e === 10) xa.xa_erase(11);
      if (e === 20) xa.xa_store(150, 1150);
      if (e === 30) for (let i = 64; i < 128; i++) xa.xa_erase(i);
    }
    const want = [...Array(200).keys()].filter((i) => i !== 11 && (i < 64 || i >= 128)).map((i) => (i === 150 ? 1150 : i));
    expect(seen).toEqual(want);
    expect(xa.xa_empty()).toBe(true);
  });

  test('marked walks and the top index', () => {
    const xa = new XArray<number>();
    for (const i of [1, 2, 70, XA_MAX_INDEX - 1, XA_MAX_INDEX]) xa.xa_store(i, i);
    xa.xa_set_mark(2, XA_MARK_1);
    xa.xa_set_mark(XA_MAX_INDEX, XA_MARK_1);
    expect(xasWalk(xa, 0, XA_MAX_INDEX, XA_MARK_1).map((e) => e.index)).toEqual([2, XA_MAX_INDEX]);
    expect(xasWalk(xa, XA_MAX_INDEX - 1, XA_MAX_INDEX).map((e) => e.index)).toEqual([XA_MAX_INDEX - 1, XA_MAX_INDEX]);
    const xas = new XaState(xa, XA_MAX_INDEX);
    expect(xas.xas_find(XA_MAX_INDEX)).toBe(XA_MAX_INDEX);
    expect(xas.xas_next_entry(XA_MAX_INDEX)).toBeUndefined();
    expect(xas.xas_find(XA_MAX_INDEX)).toBeUndefined();
  });

  test('bad indexes and marks throw RangeError', () => {
    const xa = new XArray<number>();
    expect(() => new XaState(xa, -1)).toThrow(RangeError);
    expect(() => new XaState(xa, 0).xas_find(0.5)).toThrow(RangeError);
    expect(() => new XaState(xa, 0).xas_next_entry(NaN)).toThrow(RangeError);
    expect(() => new XaState(xa, 0).xas_find_marked(1, 3 as XaMark)).toThrow(RangeError);
    expect(() => new XaState(xa, 0).xas_set(2 ** 53)).toThrow(RangeError);
  });
});

describe('xarray: the cached leaf', () => {
  test('is not used once its node is freed, nor across a root that grew or shrank', () => {
    const xa = new XArray<number>();
    xa.xa_store(10, 1);
    expect(xa.xa_load(10)).toBe(1);
    /* the leaf empties and is freed; a new one takes its place */
    expect(xa.xa_erase(10)).toBe(1);
    expect(xa.xa_load(11)).toBeUndefined();
    xa.xa_store(11, 2);
    expect(xa.xa_load(11)).toBe(2);
    expect(xa.xa_load(10)).toBeUndefined();
    /* the root grows above the cached leaf, then shrinks back to it */
    xa.xa_store(2 ** 30, 3);
    expect(xa.xa_load(11)).toBe(2);
    xa.xa_erase(2 ** 30);
    xa.xa_store(12, 4);
    expect(all(xa)).toEqual([[11, 2], [12, 4]]);
    xa.xa_destroy();
    expect(xa.xa_load(11)).toBeUndefined();
    xa.xa_store(11, 5);
    expect(all(xa)).toEqual([[11, 5]]);
  });

  test('sequential store, load and erase of a GiB of page indexes', () => {
    const xa = new XArray<number>();
    const n = 262144;
    for (let i = 0; i < n; i++) xa.xa_store(i, i + 1);
    let sum = 0;
    for (let i = 0; i < n; i++) sum += xa.xa_load(i)!;
    expect(sum).toBe((n * (n + 1)) / 2);
    for (let i = 0; i < n; i += 2) xa.xa_erase(i);
    expect(xa.size).toBe(n / 2);
    expect(xa.xa_find(0, XA_MAX_INDEX)).toEqual({ index: 1, entry: 2 });
    for (let i = 1; i < n; i += 2) xa.xa_erase(i);
    expect(xa.xa_empty()).toBe(true);
  });
});

describe('xarray: differential test against Map + sort', () => {
  test.each([1, 2])('seed %i: random stores, erases, marks and walks', (seed) => {
    const rnd = prng(0xa11a0000 + seed);
    const xa = new XArray<number>();
    const model = new Map<number, number>();
    const marks = [new Set<number>(), new Set<number>(), new Set<number>()];
    // Clusters at several scales so that nodes fill, empty, split levels and the root resizes.
    const bases = [0, 60, 4000, 2 ** 31 - 30, 2 ** 32 - 10, 2 ** 45, MAX_FRAME - 100, XA_MAX_INDEX - 70];
    const pick = () => bases[rnd(bases.length)] + rnd(rnd(3) === 0 ? 5000 : 80);
    const clamp = (i: number) => Math.min(i, XA_MAX_INDEX);
    // The model's indexes, kept sorted.
    const keys: number[] = [];
    const lowerBound = (i: number) => {
      let lo = 0;
      let hi = keys.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (keys[mid] < i) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    };
    const sorted = (first: number, last: number, only?: Set<number>): XaEntry<number>[] =>
      keys
        .slice(lowerBound(first), lowerBound(last + 1))
        .filter((i) => !only || only.has(i))
        .map((index) => ({ index, entry: model.get(index)! }));
    for (let op = 0; op < 3000; op++) {
      const i = clamp(pick());
      const mark = rnd(3) as XaMark;
      // What the array shows after the operation, and what the model says; one comparison each.
      const got: Record<string, unknown> = { op };
      const want: Record<string, unknown> = { op };
      switch (rnd(7)) {
        case 0:
        case 1:
        case 2: {
          const v = rnd(1000);
          got.old = xa.xa_store(i, v);
          want.old = model.get(i);
          if (!model.has(i)) keys.splice(lowerBound(i), 0, i);
          model.set(i, v);
          break;
        }
        case 3:
        case 4:
          got.old = xa.xa_erase(i);
          want.old = model.get(i);
          if (model.delete(i)) keys.splice(lowerBound(i), 1);
          for (const m of marks) m.delete(i);
          break;
        case 5:
          xa.xa_set_mark(i, mark);
          if (model.has(i)) marks[mark].add(i);
          break;
        default:
          xa.xa_clear_mark(i, mark);
          marks[mark].delete(i);
      }
      got.load = xa.xa_load(i);
      want.load = model.get(i);
      got.mark = xa.xa_get_mark(i, mark);
      want.mark = marks[mark].has(i);
      got.size = xa.size;
      want.size = model.size;
      const a = clamp(pick());
      const b = rnd(8) === 0 ? XA_MAX_INDEX : clamp(a + rnd(2 ** (1 + rnd(32))));
      const inRange = sorted(a, b);
      got.find = xa.xa_find(a, b, XA_PRESENT);
      want.find = inRange[0];
      got.entries = [...xa.entries(a, b)];
      want.entries = inRange;
      got.range = all(xa, a, b).map(([index, entry]) => ({ index, entry }));
      want.range = inRange;
      got.xas = xasWalk(xa, a, b);
      want.xas = inRange;
      got.xasMarked = xasWalk(xa, a, b, mark);
      want.xasMarked = sorted(a, b, marks[mark]);
      got.findMarked = xa.xa_find(a, b, mark);
      want.findMarked = sorted(a, b, marks[mark])[0];
      got.after = xa.xa_find_after(a, b, mark);
      want.after = sorted(a + 1, b, marks[mark])[0];
      if (op % 20 === 0) {
        const every: XaEntry<number>[] = [];
        xa.xa_for_each((index, entry) => {
          every.push({ index, entry });
        });
        got.all = every;
        want.all = sorted(0, XA_MAX_INDEX);
        got.marked = [XA_MARK_0, XA_MARK_1, XA_MARK_2].map((m) => [marked(xa, m), xa.xa_marked(m)]);
        want.marked = [0, 1, 2].map((m) => [sorted(0, XA_MAX_INDEX, marks[m]).map((e) => e.index), marks[m].size > 0]);
      }
      expectSame(got, want);
    }
    xa.xa_destroy();
    expect(xa.xa_empty()).toBe(true);
    expect(all(xa)).toEqual([]);
    expect(xa.xa_marked(XA_MARK_0)).toBe(false);
  });
});
