/**
 * The maple tree (lib/maple_tree.c, include/linux/maple_tree.h): a map from non-overlapping
 * inclusive index ranges [first, last] to entries. mm keeps VMAs in one (mm->mm_mt), and KVM's
 * memory attributes are ranges of gfns (kvm->mem_attr_array, filled with xa_store_range()).
 *
 * Indexes are integers in [0, MT_MAX], MT_MAX = 2^53 - 1 (Number.MAX_SAFE_INTEGER). The largest
 * page index of a 64-bit address space is 2^52 - 1 (MAX_FRAME), so page and frame numbers always
 * fit; the map takes any safe integer, so that byte offsets below 2^53 and "to the end" ranges
 * ending at MT_MAX fit too.
 *
 * Unlike the kernel, equal neighbours are always merged: two adjacent ranges never hold equal
 * entries (=== or the constructor's equality function), so setting an attribute page by page
 * over a GiB leaves one range, and `size` is the minimal number of ranges. Which of two equal
 * (but not ===) entries a merged range keeps is unspecified.
 *
 * Layout: a B+ tree. Like the kernel's tree it is a B-tree of wide nodes, but keyed by range
 * start rather than by pivots (range ends), and gaps are not stored.
 *
 *   MtLeaf    firsts[], lasts[], vals[]: up to MT_NODE_MAX ranges sorted by first, in parallel
 *             arrays; prev/next link the leaves in index order for walks.
 *   MtBranch  kids[] (up to MT_NODE_MAX) and keys[], keys[i] being exactly the smallest `first`
 *             stored under kids[i]; a search follows the last key <= the index.
 *
 * All leaves are at the same depth. Nodes other than the root hold at least a quarter of
 * MT_NODE_MAX items: an underfull node takes items from a sibling, or is merged with it
 * when the two fit in one node. With 64-wide nodes, 10^6 ranges are 4 levels deep.
 *
 * A store finds the "run" of ranges touching [first - 1, last + 1] and replaces it with at most
 * three ranges (what is left of the first, the new one, what is left of the last), merged where
 * equal; ends of the run that come out unchanged are left in place. A run inside one leaf is one
 * splice, then at most one split or merge per level: O(log n). A longer run is deleted a leaf's
 * worth at a time: O(log n + k) for k ranges. Lookups are O(log n) and walks O(log n + k),
 * following the leaf links. Everything is deterministic: no randomness anywhere.
 */
import { BUG_ON } from './bug.js';
import { Errno } from './errno.js';

/** The largest index the map takes: 2^53 - 1. */
export const MT_MAX = Number.MAX_SAFE_INTEGER;

/** A stored range as the walks report it: the stored bounds, never clipped to the query. */
export interface MapleRange<T> {
  readonly first: number;
  readonly last: number;
  readonly entry: T;
}

/** Entry equality used to merge neighbours; the default is ===. */
export type MtEqual<T> = (a: T, b: T) => boolean;

/** Callback of mt_for_each(); returning false stops the walk. */
export type MtWalkFn<T> = (entry: T, first: number, last: number) => void | boolean;

/** Default node width: items (ranges or children) per node. Nodes but the root keep a quarter. */
const MT_NODE_MAX = 64;

class MtLeaf<T> {
  readonly isLeaf = true;
  firsts: number[] = [];
  lasts: number[] = [];
  vals: T[] = [];
  prev: MtLeaf<T> | null = null;
  next: MtLeaf<T> | null = null;
}

class MtBranch<T> {
  readonly isLeaf = false;
  keys: number[] = [];
  kids: MtNode<T>[] = [];
}

type MtNode<T> = MtLeaf<T> | MtBranch<T>;

function sizeOf<T>(n: MtNode<T>): number {
  return n.isLeaf ? n.firsts.length : n.kids.length;
}

function minOf<T>(n: MtNode<T>): number {
  return n.isLeaf ? n.firsts[0] : n.keys[0];
}

/** How many elements of the sorted array a are <= key. */
function upperBound(a: number[], key: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] <= key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function mt_check_index(index: number, what: string): void {
  if (!Number.isSafeInteger(index) || index < 0) {
    throw new RangeError(`maple tree: ${what} ${index} is not an index in [0, 2^53 - 1]`);
  }
}

function mt_check_range(first: number, last: number): void {
  mt_check_index(first, 'first');
  mt_check_index(last, 'last');
  if (first > last) throw new RangeError(`maple tree: first ${first} > last ${last}`);
}

/** A map of non-overlapping [first, last] ranges to entries of type T (never null/undefined). */
export class MapleTree<T> {
  private root: MtNode<T> = new MtLeaf<T>();
  private count = 0;
  /** Bumped by every modification, so that a walk notices a callback changed the tree. */
  private version = 0;
  /** The branches and child indexes of the last descend(), root first. */
  private readonly pathNodes: MtBranch<T>[] = [];
  private readonly pathIdx: number[] = [];
  private depth = 0;
  /** Result of the seek*() helpers: a leaf and a slot in it (leaf null: none). */
  private cLeaf: MtLeaf<T> | null = null;
  private cPos = 0;
  /** The ranges replacing a run, built by addPiece(). */
  private readonly pf = [0, 0, 0];
  private readonly pl = [0, 0, 0];
  private readonly pv: (T | undefined)[] = [undefined, undefined, undefined];
  private np = 0;
  private readonly eq: MtEqual<T> | undefined;
  private readonly nodeMax: number;
  private readonly nodeMin: number;

  /**
   * @param eq entry equality for merging neighbours (default ===).
   * @param nodeMax node width, a multiple of 4 from 8 (default MT_NODE_MAX = 64), so that nodes
   *   keep at least two items; tests use narrow nodes to build deep trees from few ranges.
   */
  constructor(eq?: MtEqual<T>, nodeMax = MT_NODE_MAX) {
    if (!Number.isInteger(nodeMax) || nodeMax < 8 || nodeMax % 4 !== 0) {
      throw new RangeError(`maple tree: node width ${nodeMax} is not a multiple of 4 from 8`);
    }
    this.eq = eq;
    this.nodeMax = nodeMax;
    this.nodeMin = nodeMax / 4;
  }

  /** Number of stored ranges. */
  get size(): number {
    return this.count;
  }

  /**
   * The entry stored at index, or undefined.
   * @see lib/maple_tree.c mtree_load()
   */
  mtree_load(index: number): T | undefined {
    mt_check_index(index, 'index');
    const leaf = this.leafFor(index);
    const i = upperBound(leaf.firsts, index) - 1;
    return i >= 0 && leaf.lasts[i] >= index ? leaf.vals[i] : undefined;
  }

  /**
   * The stored range containing index, or undefined (mas_walk() gives the same: the entry and
   * mas->index/mas->last).
   */
  mt_range_at(index: number): MapleRange<T> | undefined {
    mt_check_index(index, 'index');
    const leaf = this.leafFor(index);
    const i = upperBound(leaf.firsts, index) - 1;
    return i >= 0 && leaf.lasts[i] >= index ? this.rangeOf(leaf, i) : undefined;
  }

  /**
   * Store entry at the single index `index`.
   * @see lib/maple_tree.c mtree_store()
   */
  mtree_store(index: number, entry: T | null | undefined): void {
    this.mtree_store_range(index, index, entry);
  }

  /**
   * Store entry over [first, last], replacing whatever overlapped it: ranges straddling first or
   * last are split, ranges inside are dropped. Storing null or undefined erases [first, last].
   * The result is merged with equal neighbours.
   * @see lib/maple_tree.c mtree_store_range()
   */
  mtree_store_range(first: number, last: number, entry: T | null | undefined): void {
    mt_check_range(first, last);
    this.storeRange(first, last, entry ?? undefined);
  }

  /**
   * Store entry at index if it is empty: 0, or -EEXIST if the index holds an entry.
   * @see lib/maple_tree.c mtree_insert()
   */
  mtree_insert(index: number, entry: T): number {
    return this.mtree_insert_range(index, index, entry);
  }

  /**
   * Store entry over [first, last] if no index in it holds an entry: 0, or -EEXIST.
   * @see lib/maple_tree.c mtree_insert_range()
   */
  mtree_insert_range(first: number, last: number, entry: T): number {
    mt_check_range(first, last);
    if (entry === undefined || entry === null) {
      throw new RangeError('maple tree: mtree_insert_range() of a null entry');
    }
    this.seekGE(first);
    if (this.cLeaf && this.cLeaf.firsts[this.cPos] <= last) return -Errno.EEXIST;
    this.storeRange(first, last, entry);
    return 0;
  }

  /**
   * Erase the whole range containing index and return its entry (undefined if there was none).
   * @see lib/maple_tree.c mtree_erase()
   */
  mtree_erase(index: number): T | undefined {
    const r = this.mt_range_at(index);
    if (r) this.storeRange(r.first, r.last, undefined);
    return r?.entry;
  }

  /**
   * Erase every index in [first, last], splitting ranges that straddle either end. Simulator
   * helper: the kernel spells it mtree_store_range(mt, first, last, NULL).
   */
  mtree_erase_range(first: number, last: number): void {
    mt_check_range(first, last);
    this.storeRange(first, last, undefined);
  }

  /**
   * The first stored range intersecting [start, max] (its stored bounds, so `first` may be below
   * start), or undefined. Undefined too when start > max.
   * @see lib/maple_tree.c mt_find()
   */
  mt_find(start: number, max: number): MapleRange<T> | undefined {
    mt_check_index(start, 'start');
    mt_check_index(max, 'max');
    if (start > max) return undefined;
    this.seekGE(start);
    const leaf = this.cLeaf;
    return leaf && leaf.firsts[this.cPos] <= max ? this.rangeOf(leaf, this.cPos) : undefined;
  }

  /**
   * The first stored range starting after index (so after the range containing index, if any)
   * and at or before max, or undefined.
   * @see lib/maple_tree.c mt_next()
   */
  mt_next(index: number, max: number): MapleRange<T> | undefined {
    mt_check_index(index, 'index');
    mt_check_index(max, 'max');
    const leaf = this.leafFor(index);
    this.normalize(leaf, upperBound(leaf.firsts, index));
    const l = this.cLeaf;
    return l && l.firsts[this.cPos] <= max ? this.rangeOf(l, this.cPos) : undefined;
  }

  /**
   * The last stored range ending before index (so before the range containing index, if any)
   * and at or after min, or undefined.
   * @see lib/maple_tree.c mt_prev()
   */
  mt_prev(index: number, min: number): MapleRange<T> | undefined {
    mt_check_index(index, 'index');
    mt_check_index(min, 'min');
    this.seekLE(index);
    let leaf = this.cLeaf;
    let i = this.cPos;
    if (leaf && leaf.lasts[i] >= index) {
      i--;
      while (leaf && i < 0) {
        leaf = leaf.prev;
        i = leaf ? leaf.firsts.length - 1 : 0;
      }
    }
    return leaf && leaf.lasts[i] >= min ? this.rangeOf(leaf, i) : undefined;
  }

  /**
   * Call fn(entry, first, last) for every stored range intersecting [first, last], in index
   * order, with the stored (unclipped) bounds; fn returning false stops the walk. fn may modify
   * the tree: the walk then resumes after the range it last reported, as the kernel's
   * mt_for_each() re-walks with mt_find().
   * @see include/linux/maple_tree.h mt_for_each()
   */
  mt_for_each(first: number, last: number, fn: MtWalkFn<T>): void {
    mt_check_range(first, last);
    let v = this.version;
    this.seekGE(first);
    let leaf = this.cLeaf;
    let i = this.cPos;
    while (leaf) {
      if (i >= leaf.firsts.length) {
        leaf = leaf.next;
        i = 0;
        continue;
      }
      const f = leaf.firsts[i];
      if (f > last) return;
      const l = leaf.lasts[i];
      if (fn(leaf.vals[i], f, l) === false || l >= last) return;
      if (this.version !== v) {
        v = this.version;
        this.seekGE(l + 1);
        leaf = this.cLeaf;
        i = this.cPos;
      } else {
        i++;
      }
    }
  }

  /**
   * Iterator form of mt_for_each(): the stored ranges intersecting [first, last] in index order,
   * unclipped. Modifying the tree between steps is allowed, as for mt_for_each().
   */
  *ranges(first = 0, last = MT_MAX): Generator<MapleRange<T>, void, undefined> {
    mt_check_range(first, last);
    let v = this.version;
    this.seekGE(first);
    let leaf = this.cLeaf;
    let i = this.cPos;
    while (leaf) {
      if (i >= leaf.firsts.length) {
        leaf = leaf.next;
        i = 0;
        continue;
      }
      const r = this.rangeOf(leaf, i);
      if (r.first > last) return;
      yield r;
      if (r.last >= last) return;
      if (this.version !== v) {
        v = this.version;
        this.seekGE(r.last + 1);
        leaf = this.cLeaf;
        i = this.cPos;
      } else {
        i++;
      }
    }
  }

  [Symbol.iterator](): Generator<MapleRange<T>, void, undefined> {
    return this.ranges();
  }

  /**
   * The lowest start s with [s, s + size - 1] inside [min, max] and holding no entry, or
   * undefined (the kernel's -EBUSY). O(log n + k), k the ranges below the gap found; the kernel
   * keeps per-node gap sizes to make this O(log n).
   * @see lib/maple_tree.c mas_empty_area()
   */
  find_gap(min: number, max: number, size: number): number | undefined {
    mt_check_range(min, max);
    this.checkSize(size);
    if (max - min + 1 < size) return undefined;
    const lastStart = max - size + 1;
    let cursor = min;
    this.seekGE(min);
    let leaf = this.cLeaf;
    let i = this.cPos;
    while (leaf) {
      if (i >= leaf.firsts.length) {
        leaf = leaf.next;
        i = 0;
        continue;
      }
      const f = leaf.firsts[i];
      if (f > max) break;
      if (f - cursor >= size) return cursor;
      cursor = leaf.lasts[i] + 1;
      if (cursor > lastStart) return undefined;
      i++;
    }
    return cursor <= lastStart ? cursor : undefined;
  }

  /**
   * The highest start s with [s, s + size - 1] inside [min, max] and holding no entry, or
   * undefined: the top-down search of get_unmapped_area(). O(log n + k), k the ranges above the
   * gap found.
   * @see lib/maple_tree.c mas_empty_area_rev()
   */
  find_gap_rev(min: number, max: number, size: number): number | undefined {
    mt_check_range(min, max);
    this.checkSize(size);
    if (max - min + 1 < size) return undefined;
    let end = max;
    this.seekLE(max);
    let leaf = this.cLeaf;
    let i = this.cPos;
    while (leaf) {
      if (i < 0) {
        leaf = leaf.prev;
        i = leaf ? leaf.firsts.length - 1 : 0;
        continue;
      }
      const l = leaf.lasts[i];
      if (l < min) break;
      if (end - l >= size) return end - size + 1;
      end = leaf.firsts[i] - 1;
      if (end - min + 1 < size) return undefined;
      i--;
    }
    return end - min + 1 >= size ? end - size + 1 : undefined;
  }

  /**
   * Whether every index in [first, last] holds an entry satisfying pred. Gaps are tested as
   * pred(undefined), so they fail unless pred accepts undefined. pred runs once per stored range
   * and once per gap, and the walk stops at the first failure: O(log n + k). This is the question
   * kvm_range_has_memory_attributes() asks.
   */
  mt_range_is(first: number, last: number, pred: (entry: T | undefined) => boolean): boolean {
    mt_check_range(first, last);
    let expect = first;
    this.seekGE(first);
    let leaf = this.cLeaf;
    let i = this.cPos;
    while (leaf) {
      if (i >= leaf.firsts.length) {
        leaf = leaf.next;
        i = 0;
        continue;
      }
      const f = leaf.firsts[i];
      if (f > last) break;
      if (f > expect && !pred(undefined)) return false;
      if (!pred(leaf.vals[i])) return false;
      const l = leaf.lasts[i];
      if (l >= last) return true;
      expect = l + 1;
      i++;
    }
    return pred(undefined);
  }

  /** Drop every range. */
  clear(): void {
    this.root = new MtLeaf<T>();
    this.count = 0;
    this.version++;
  }

  /**
   * Free the tree: the same as clear().
   * @see lib/maple_tree.c mtree_destroy()
   */
  mtree_destroy(): void {
    this.clear();
  }

  /**
   * Check every invariant: node fill, exact branch keys, equal leaf depth, the leaf chain, order,
   * no overlap, no equal neighbours, size. BUG_ON on a broken one. For tests; O(n).
   * @see lib/maple_tree.c mt_validate()
   */
  mt_validate(): void {
    const leaves: MtLeaf<T>[] = [];
    let leafDepth = -1;
    const visit = (node: MtNode<T>, depth: number): number => {
      const size = sizeOf(node);
      BUG_ON(size > this.nodeMax, `mt_validate: node of ${size} items`);
      if (node !== this.root) BUG_ON(size < this.nodeMin, `mt_validate: underfull node of ${size} items`);
      if (node.isLeaf) {
        if (leafDepth < 0) leafDepth = depth;
        BUG_ON(depth !== leafDepth, `mt_validate: leaves at depths ${leafDepth} and ${depth}`);
        BUG_ON(node.lasts.length !== size || node.vals.length !== size, 'mt_validate: ragged leaf');
        leaves.push(node);
        return node.firsts[0];
      }
      BUG_ON(node === this.root && size < 2, 'mt_validate: root branch with one child');
      BUG_ON(node.keys.length !== size, 'mt_validate: keys and kids differ in number');
      for (let i = 0; i < size; i++) {
        const m = visit(node.kids[i], depth + 1);
        BUG_ON(node.keys[i] !== m, `mt_validate: key ${node.keys[i]} but child minimum ${m}`);
      }
      return node.keys[0];
    };
    visit(this.root, 0);
    let seen = 0;
    let prevLast = -1;
    let prevVal: T | undefined;
    for (let j = 0; j < leaves.length; j++) {
      const leaf = leaves[j];
      BUG_ON(leaf.prev !== (j > 0 ? leaves[j - 1] : null), 'mt_validate: broken prev link');
      BUG_ON(leaf.next !== (j + 1 < leaves.length ? leaves[j + 1] : null), 'mt_validate: broken next link');
      for (let i = 0; i < leaf.firsts.length; i++) {
        const f = leaf.firsts[i];
        const l = leaf.lasts[i];
        const v = leaf.vals[i];
        BUG_ON(v === undefined || v === null, `mt_validate: no entry at ${f}`);
        BUG_ON(!(f <= l) || !Number.isSafeInteger(f) || !Number.isSafeInteger(l), `mt_validate: bad range [${f}, ${l}]`);
        BUG_ON(f <= prevLast, `mt_validate: ${f} overlaps or precedes ${prevLast}`);
        BUG_ON(
          seen > 0 && prevLast + 1 === f && this.same(prevVal as T, v),
          `mt_validate: equal neighbours at ${f} not merged`,
        );
        prevLast = l;
        prevVal = v;
        seen++;
      }
    }
    BUG_ON(seen !== this.count, `mt_validate: ${seen} ranges but size ${this.count}`);
  }

  private same(a: T, b: T): boolean {
    return a === b || (this.eq !== undefined && this.eq(a, b));
  }

  private checkSize(size: number): void {
    if (!Number.isSafeInteger(size) || size < 1) {
      throw new RangeError(`maple tree: gap size ${size} is not a positive integer`);
    }
  }

  private rangeOf(leaf: MtLeaf<T>, i: number): MapleRange<T> {
    return { first: leaf.firsts[i], last: leaf.lasts[i], entry: leaf.vals[i] };
  }

  /** The leaf where `key` belongs: the last key <= it at each level (or the first child). */
  private leafFor(key: number): MtLeaf<T> {
    let node = this.root;
    while (!node.isLeaf) {
      const i = upperBound(node.keys, key) - 1;
      node = node.kids[i > 0 ? i : 0];
    }
    return node;
  }

  /** leafFor(), recording the path in pathNodes/pathIdx/depth for the fix-ups. */
  private descend(key: number): MtLeaf<T> {
    let node = this.root;
    let d = 0;
    while (!node.isLeaf) {
      let i = upperBound(node.keys, key) - 1;
      if (i < 0) i = 0;
      this.pathNodes[d] = node;
      this.pathIdx[d] = i;
      d++;
      node = node.kids[i];
    }
    this.depth = d;
    return node;
  }

  /** Point cLeaf/cPos at slot i of leaf, or at the first slot after it if i is past the end. */
  private normalize(leaf: MtLeaf<T> | null, i: number): void {
    while (leaf && i >= leaf.firsts.length) {
      leaf = leaf.next;
      i = 0;
    }
    this.cLeaf = leaf;
    this.cPos = i;
  }

  /** Seek the first range ending at or after index. */
  private seekGE(index: number): void {
    const leaf = this.leafFor(index);
    const i = upperBound(leaf.firsts, index) - 1;
    this.normalize(leaf, i >= 0 && leaf.lasts[i] >= index ? i : i + 1);
  }

  /** Seek the last range starting at or before index. */
  private seekLE(index: number): void {
    let leaf: MtLeaf<T> | null = this.leafFor(index);
    let i = upperBound(leaf.firsts, index) - 1;
    while (leaf && i < 0) {
      leaf = leaf.prev;
      i = leaf ? leaf.firsts.length - 1 : 0;
    }
    this.cLeaf = leaf;
    this.cPos = i;
  }

  /** Append a replacement range, merging it into the previous one when adjacent and equal. */
  private addPiece(f: number, l: number, v: T): void {
    const n = this.np;
    if (n > 0 && this.pl[n - 1] + 1 === f && this.same(this.pv[n - 1] as T, v)) {
      this.pl[n - 1] = l;
      return;
    }
    this.pf[n] = f;
    this.pl[n] = l;
    this.pv[n] = v;
    this.np = n + 1;
  }

  private storeRange(lo: number, hi: number, entry: T | undefined): void {
    // The run: the ranges touching [lo - 1, hi + 1], i.e. those overlapping [lo, hi] and the
    // neighbours an equal entry merges with. It starts at slot s of sLeaf and ends at slot e of
    // eLeaf; when empty, (sLeaf, s) is where the new range goes.
    const key = lo > 0 ? lo - 1 : 0;
    const end = hi + 1;
    const leaf = this.descend(key);
    const n = leaf.firsts.length;
    let s = upperBound(leaf.firsts, key) - 1;
    if (s < 0 || leaf.lasts[s] < key) s++;
    let sLeaf = leaf;
    if (s === n && leaf.next !== null && leaf.next.firsts[0] <= end) {
      sLeaf = leaf.next;
      s = 0;
    }
    let eLeaf: MtLeaf<T> | null = null;
    let e = -1;
    if (s < sLeaf.firsts.length && sLeaf.firsts[s] <= end) {
      let q = s;
      while (q + 1 < sLeaf.firsts.length && sLeaf.firsts[q + 1] <= end) q++;
      if (q + 1 < sLeaf.firsts.length || sLeaf.next === null || sLeaf.next.firsts[0] > end) {
        eLeaf = sLeaf;
        e = q;
      } else {
        eLeaf = this.leafFor(end);
        e = upperBound(eLeaf.firsts, end) - 1;
      }
    }

    // What replaces the run: the part of its first range before lo, the new range, the part of
    // its last range after hi; merged where adjacent and equal.
    this.np = 0;
    if (eLeaf !== null) {
      const rpFirst = sLeaf.firsts[s];
      if (rpFirst < lo) this.addPiece(rpFirst, Math.min(sLeaf.lasts[s], lo - 1), sLeaf.vals[s]);
    }
    if (entry !== undefined) this.addPiece(lo, hi, entry);
    if (eLeaf !== null && eLeaf.lasts[e] > hi) {
      this.addPiece(Math.max(eLeaf.firsts[e], end), eLeaf.lasts[e], eLeaf.vals[e]);
    }
    const { pf, pl, pv } = this;
    let p0 = 0;
    let p1 = this.np;

    // Leave alone the run's ends that come out unchanged (neighbours that do not merge), so that
    // the change mostly stays inside one leaf.
    if (eLeaf !== null && p0 < p1 && pf[p0] === sLeaf.firsts[s] && pl[p0] === sLeaf.lasts[s] && pv[p0] === sLeaf.vals[s]) {
      p0++;
      s++;
      if (s === sLeaf.firsts.length && sLeaf.next !== null) {
        sLeaf = sLeaf.next;
        s = 0;
      }
      if (s === sLeaf.firsts.length || sLeaf.firsts[s] > eLeaf.firsts[e]) eLeaf = null;
    }
    if (eLeaf !== null && p0 < p1 && pf[p1 - 1] === eLeaf.firsts[e] && pl[p1 - 1] === eLeaf.lasts[e] && pv[p1 - 1] === eLeaf.vals[e]) {
      p1--;
      e--;
      if (e < 0) {
        eLeaf = eLeaf.prev;
        e = eLeaf !== null ? eLeaf.firsts.length - 1 : -1;
      }
      if (eLeaf === null || sLeaf.firsts[s] > eLeaf.firsts[e]) eLeaf = null;
    }

    if (eLeaf === null && p0 === p1) {
      for (let i = 0; i < this.np; i++) pv[i] = undefined;
      return;
    }
    this.version++;
    if (eLeaf === null || eLeaf === sLeaf) {
      if (sLeaf !== leaf) this.descend(sLeaf.firsts[0]);
      this.spliceLeaf(sLeaf, s, eLeaf === null ? 0 : e - s + 1, p0, p1);
    } else {
      this.deleteFirsts(sLeaf.firsts[s], eLeaf.firsts[e]);
      for (let i = p0; i < p1; i++) this.insertOne(pf[i], pl[i], pv[i] as T);
    }
    for (let i = 0; i < this.np; i++) pv[i] = undefined;
  }

  /**
   * Replace del ranges at slot s of leaf (the leaf of the current path) with pieces [p0, p1),
   * then fix the keys and node sizes above it.
   */
  private spliceLeaf(leaf: MtLeaf<T>, s: number, del: number, p0: number, p1: number): void {
    const { firsts, lasts, vals } = leaf;
    const { pf, pl, pv } = this;
    const add = p1 - p0;
    const oldMin = firsts[0];
    if (add === del) {
      for (let i = 0; i < add; i++) {
        firsts[s + i] = pf[p0 + i];
        lasts[s + i] = pl[p0 + i];
        vals[s + i] = pv[p0 + i] as T;
      }
    } else if (add === 0) {
      firsts.splice(s, del);
      lasts.splice(s, del);
      vals.splice(s, del);
    } else if (add === 1) {
      firsts.splice(s, del, pf[p0]);
      lasts.splice(s, del, pl[p0]);
      vals.splice(s, del, pv[p0] as T);
    } else {
      firsts.splice(s, del, ...pf.slice(p0, p1));
      lasts.splice(s, del, ...pl.slice(p0, p1));
      vals.splice(s, del, ...(pv.slice(p0, p1) as T[]));
    }
    this.count += add - del;
    if (firsts.length > 0 && firsts[0] !== oldMin) this.propagateMin(this.depth, firsts[0]);
    if (firsts.length > this.nodeMax) this.fixOverflow(leaf, this.depth);
    else if (firsts.length < this.nodeMin) this.fixUnderflow(leaf, this.depth);
  }

  /** Delete every range whose first is in [x, y], a leaf's share at a time. */
  private deleteFirsts(x: number, y: number): void {
    for (;;) {
      let leaf = this.descend(x);
      let i = upperBound(leaf.firsts, x - 1);
      if (i === leaf.firsts.length) {
        // Nothing at or after x here: the next range is the first of the next leaf.
        if (!leaf.next || leaf.next.firsts[0] > y) return;
        x = leaf.next.firsts[0];
        leaf = this.descend(x);
        i = 0;
      }
      const { firsts } = leaf;
      let j = i;
      while (j < firsts.length && firsts[j] <= y) j++;
      if (j === i) return;
      firsts.splice(i, j - i);
      leaf.lasts.splice(i, j - i);
      leaf.vals.splice(i, j - i);
      this.count -= j - i;
      if (i === 0 && firsts.length > 0) this.propagateMin(this.depth, firsts[0]);
      if (firsts.length < this.nodeMin) this.fixUnderflow(leaf, this.depth);
    }
  }

  /** Insert a range that overlaps nothing. */
  private insertOne(f: number, l: number, v: T): void {
    const leaf = this.descend(f);
    const i = upperBound(leaf.firsts, f);
    leaf.firsts.splice(i, 0, f);
    leaf.lasts.splice(i, 0, l);
    leaf.vals.splice(i, 0, v);
    this.count++;
    if (i === 0) this.propagateMin(this.depth, f);
    if (leaf.firsts.length > this.nodeMax) this.fixOverflow(leaf, this.depth);
  }

  /** The node at depth d of the current path now starts at m: fix the keys above it. */
  private propagateMin(d: number, m: number): void {
    for (let lvl = d - 1; lvl >= 0; lvl--) {
      const idx = this.pathIdx[lvl];
      this.pathNodes[lvl].keys[idx] = m;
      if (idx !== 0) return;
    }
  }

  /** Split node (at depth d of the current path) and its ancestors while they are too big. */
  private fixOverflow(node: MtNode<T>, d: number): void {
    while (sizeOf(node) > this.nodeMax) {
      const right = this.splitNode(node);
      if (d === 0) {
        const root = new MtBranch<T>();
        root.kids = [node, right];
        root.keys = [minOf(node), minOf(right)];
        this.root = root;
        return;
      }
      d--;
      const parent = this.pathNodes[d];
      const idx = this.pathIdx[d];
      parent.kids.splice(idx + 1, 0, right);
      parent.keys.splice(idx + 1, 0, minOf(right));
      node = parent;
    }
  }

  private splitNode(node: MtNode<T>): MtNode<T> {
    const mid = sizeOf(node) >>> 1;
    if (node.isLeaf) {
      const right = new MtLeaf<T>();
      right.firsts = node.firsts.splice(mid);
      right.lasts = node.lasts.splice(mid);
      right.vals = node.vals.splice(mid);
      right.next = node.next;
      if (right.next) right.next.prev = right;
      right.prev = node;
      node.next = right;
      return right;
    }
    const right = new MtBranch<T>();
    right.kids = node.kids.splice(mid);
    right.keys = node.keys.splice(mid);
    return right;
  }

  /**
   * Refill node (at depth d of the current path) from a sibling, or merge it with the sibling,
   * and go up while that leaves the parent underfull; collapse a root with one child.
   */
  private fixUnderflow(node: MtNode<T>, d: number): void {
    while (d > 0 && sizeOf(node) < this.nodeMin) {
      d--;
      const parent = this.pathNodes[d];
      const idx = this.pathIdx[d];
      const li = idx > 0 ? idx - 1 : idx;
      const ri = li + 1;
      const left = parent.kids[li];
      const right = parent.kids[ri];
      if (sizeOf(left) + sizeOf(right) <= this.nodeMax) {
        this.mergeNodes(left, right);
        parent.kids.splice(ri, 1);
        parent.keys.splice(ri, 1);
      } else {
        this.redistribute(left, right);
        parent.keys[ri] = minOf(right);
      }
      if (parent.keys[li] !== minOf(left)) {
        parent.keys[li] = minOf(left);
        if (li === 0) this.propagateMin(d, minOf(left));
      }
      node = parent;
    }
    while (!this.root.isLeaf && this.root.kids.length === 1) this.root = this.root.kids[0];
  }

  private mergeNodes(left: MtNode<T>, right: MtNode<T>): void {
    if (left.isLeaf) {
      const r = right as MtLeaf<T>;
      for (let i = 0; i < r.firsts.length; i++) {
        left.firsts.push(r.firsts[i]);
        left.lasts.push(r.lasts[i]);
        left.vals.push(r.vals[i]);
      }
      left.next = r.next;
      if (r.next) r.next.prev = left;
    } else {
      const r = right as MtBranch<T>;
      for (let i = 0; i < r.kids.length; i++) {
        left.kids.push(r.kids[i]);
        left.keys.push(r.keys[i]);
      }
    }
  }

  /** Share the items of two siblings evenly. */
  private redistribute(left: MtNode<T>, right: MtNode<T>): void {
    const target = (sizeOf(left) + sizeOf(right)) >>> 1;
    const move = sizeOf(left) - target;
    if (left.isLeaf) {
      const r = right as MtLeaf<T>;
      if (move > 0) {
        r.firsts.unshift(...left.firsts.splice(target));
        r.lasts.unshift(...left.lasts.splice(target));
        r.vals.unshift(...left.vals.splice(target));
      } else {
        left.firsts.push(...r.firsts.splice(0, -move));
        left.lasts.push(...r.lasts.splice(0, -move));
        left.vals.push(...r.vals.splice(0, -move));
      }
    } else {
      const r = right as MtBranch<T>;
      if (move > 0) {
        r.kids.unshift(...left.kids.splice(target));
        r.keys.unshift(...left.keys.splice(target));
      } else {
        left.kids.push(...r.kids.splice(0, -move));
        left.keys.push(...r.keys.splice(0, -move));
      }
    }
  }
}
