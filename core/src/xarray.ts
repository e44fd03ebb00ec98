/**
 * The XArray (include/linux/xarray.h, lib/xarray.c): a sparse array of entries indexed by
 * integers in [0, XA_MAX_INDEX], XA_MAX_INDEX = 2^53 - 1. The page cache maps file page offsets
 * to folios with it, and tags them dirty/writeback with its marks.
 *
 * Layout, as in the kernel: a radix tree of nodes of XA_CHUNK_SIZE = 64 slots. A node at `shift`
 * covers 2^(shift + 6) indexes starting at `base`; its slot i holds a child node covering
 * [base + i * 2^shift, base + (i + 1) * 2^shift - 1], or, at shift 0, the entry for index
 * base + i. The root is as tall as the largest index needs (9 levels for 2^53 - 1); it grows
 * (xas_expand()) and shrinks (xas_shrink()) as entries come and go.
 *
 * Each node keeps four 64-bit bitmaps, each as two 32-bit words: which slots are present, and for
 * each of the three marks which slots hold a marked entry or a subtree with one. Walks find the
 * next set bit with Math.clz32 instead of scanning slots, and never enter an empty or unmarked
 * subtree: xa_find() costs O(depth), and a walk over k clustered entries O(depth + k) (entries
 * scattered one per leaf cost up to a descent each).
 *
 * Memory is a radix tree's: a node per level on the way to each index (up to 9 for indexes
 * near 2^53), so dense or clustered indexes (the page cache) are cheap and indexes scattered over
 * the whole space are not; MapleTree suits those.
 *
 * Indexes can exceed 2^31, so slot offsets are computed with arithmetic
 * (Math.floor(index / 2^shift) % 64), never with the 32-bit bitwise operators; those only touch
 * the 32-bit bitmap words.
 */
import { Errno } from './errno.js';

export const XA_CHUNK_SHIFT = 6;
export const XA_CHUNK_SIZE = 64;
/** The largest index: 2^53 - 1. */
export const XA_MAX_INDEX = Number.MAX_SAFE_INTEGER;

/** A mark: a bit per entry, searchable (include/linux/xarray.h xa_mark_t). */
export type XaMark = 0 | 1 | 2;
export const XA_MARK_0: XaMark = 0;
export const XA_MARK_1: XaMark = 1;
export const XA_MARK_2: XaMark = 2;
export const XA_MAX_MARKS = 3;
/** Search filter meaning "any present entry" (xa_find()'s filter argument). */
export const XA_PRESENT = 8;
export type XaFilter = XaMark | typeof XA_PRESENT;

/** A found entry. */
export interface XaEntry<T> {
  readonly index: number;
  readonly entry: T;
}

/** Callback of the xa_for_each*() walks; returning false stops the walk. */
export type XaWalkFn<T> = (index: number, entry: T) => void | boolean;

/** 2^shift for every shift a node can have (0, 6, ..., 54). */
const POW2: number[] = [];
for (let s = 0; s <= 60; s++) POW2.push(2 ** s);

/** Bitmap word pairs in XaNode.bits: [present, mark 0, mark 1, mark 2], lo word then hi word. */
const PRESENT_BITS = 0;
function markBits(mark: XaMark): number {
  return 2 * (mark + 1);
}

/** One radix tree node (struct xa_node); exported for XaState, not for users. */
export class XaNode {
  /** Number of present slots (xa_node.count). */
  count = 0;
  readonly slots: unknown[] = new Array<unknown>(XA_CHUNK_SIZE);
  /** The bitmaps, as int32 words: a plain array is smaller and quicker to make than a typed one. */
  readonly bits: number[] = [0, 0, 0, 0, 0, 0, 0, 0];

  constructor(
    readonly shift: number,
    /** First index this node covers. */
    readonly base: number,
    public parent: XaNode | null,
    /** This node's slot in its parent. */
    public offset: number,
  ) {}
}

function testBit(node: XaNode, word: number, off: number): boolean {
  return off < 32 ? ((node.bits[word] >>> off) & 1) !== 0 : ((node.bits[word + 1] >>> (off - 32)) & 1) !== 0;
}

function setBit(node: XaNode, word: number, off: number): void {
  if (off < 32) node.bits[word] |= 1 << off;
  else node.bits[word + 1] |= 1 << (off - 32);
}

function clearBit(node: XaNode, word: number, off: number): void {
  if (off < 32) node.bits[word] &= ~(1 << off);
  else node.bits[word + 1] &= ~(1 << (off - 32));
}

function anyBit(node: XaNode, word: number): boolean {
  return node.bits[word] !== 0 || node.bits[word + 1] !== 0;
}

/** Any slot of the node has any mark (the words after the present pair are the marks'). */
function anyMarkBit(node: XaNode): boolean {
  const b = node.bits;
  return (b[2] | b[3] | b[4] | b[5] | b[6] | b[7]) !== 0;
}

/** The lowest set bit at or above `from` in a bitmap word pair, or -1. */
function nextBit(node: XaNode, word: number, from: number): number {
  if (from < 32) {
    const w = node.bits[word] & (-1 << from);
    if (w !== 0) return 31 - Math.clz32(w & -w);
    from = 32;
  }
  if (from < 64) {
    const w = node.bits[word + 1] & (-1 << (from - 32));
    if (w !== 0) return 63 - Math.clz32(w & -w);
  }
  return -1;
}

function filterBits(filter: XaFilter): number {
  if (filter === XA_PRESENT) return PRESENT_BITS;
  xa_check_mark(filter);
  return markBits(filter);
}

function xa_check_index(index: number, what = 'index'): void {
  if (!Number.isSafeInteger(index) || index < 0) {
    throw new RangeError(`xarray: ${what} ${index} is not an index in [0, 2^53 - 1]`);
  }
}

function xa_check_mark(mark: number): void {
  if (mark !== XA_MARK_0 && mark !== XA_MARK_1 && mark !== XA_MARK_2) {
    throw new RangeError(`xarray: ${mark} is not a mark`);
  }
}

/** Offset of index in a node at shift. */
function slotOf(index: number, shift: number): number {
  /* not `%`: the quotient is a double, whose remainder is a libm call; this is exact and quick */
  const q = Math.floor(index / POW2[shift]);
  return q - Math.floor(q / XA_CHUNK_SIZE) * XA_CHUNK_SIZE;
}

/** Shift of the shortest root that covers index. */
function shiftFor(index: number): number {
  let shift = 0;
  while (index >= POW2[shift + XA_CHUNK_SHIFT]) shift += XA_CHUNK_SHIFT;
  return shift;
}

/** A sparse array of T (never null/undefined) over [0, 2^53 - 1], with three marks. */
export class XArray<T> {
  private head: XaNode | null = null;
  private count = 0;
  /**
   * Bumped by every change of the tree's shape, so that walks (and XaState cursors) notice
   * callbacks changing it.
   */
  version = 0;

  /** Number of present entries. */
  get size(): number {
    return this.count;
  }

  /**
   * Whether the array holds no entry.
   * @see include/linux/xarray.h xa_empty()
   */
  xa_empty(): boolean {
    return this.count === 0;
  }

  /**
   * Whether any entry has mark set.
   * @see include/linux/xarray.h xa_marked()
   */
  xa_marked(mark: XaMark): boolean {
    xa_check_mark(mark);
    return this.head !== null && anyBit(this.head, markBits(mark));
  }

  /**
   * The entry at index, or undefined.
   * @see lib/xarray.c xa_load()
   */
  xa_load(index: number): T | undefined {
    xa_check_index(index);
    const leaf = this.leafFor(index);
    return leaf ? (leaf.slots[index - leaf.base] as T | undefined) : undefined;
  }

  /**
   * Store entry at index and return the entry it replaced. Storing null or undefined erases.
   * Marks of a replaced entry stay, as in the kernel.
   * @see lib/xarray.c xa_store()
   */
  xa_store(index: number, entry: T | null | undefined): T | undefined {
    xa_check_index(index);
    if (entry === undefined || entry === null) return this.xa_erase(index);
    const leaf = this.createLeaf(index);
    const off = index - leaf.base;
    const old = leaf.slots[off] as T | undefined;
    leaf.slots[off] = entry;
    if (old === undefined) {
      leaf.count++;
      setBit(leaf, PRESENT_BITS, off);
      this.count++;
    }
    return old;
  }

  /**
   * Store entry at index if it is empty: 0, or -EBUSY if it holds an entry.
   * @see lib/xarray.c xa_insert()
   */
  xa_insert(index: number, entry: T): number {
    xa_check_index(index);
    if (entry === undefined || entry === null) throw new RangeError('xarray: xa_insert() of a null entry');
    if (this.xa_load(index) !== undefined) return -Errno.EBUSY;
    this.xa_store(index, entry);
    return 0;
  }

  /**
   * Erase the entry at index (and its marks) and return it.
   * @see lib/xarray.c xa_erase()
   */
  xa_erase(index: number): T | undefined {
    xa_check_index(index);
    const leaf = this.leafFor(index);
    if (!leaf) return undefined;
    const off = index - leaf.base;
    const old = leaf.slots[off] as T | undefined;
    if (old === undefined) return undefined;
    leaf.slots[off] = undefined;
    leaf.count--;
    this.count--;
    clearBit(leaf, PRESENT_BITS, off);
    if (anyMarkBit(leaf)) {
      for (let m = 0; m < XA_MAX_MARKS; m++) this.clearMarkUp(leaf, off, markBits(m as XaMark));
    }
    if (leaf.count === 0) this.deleteNode(leaf);
    return old;
  }

  /**
   * Store entry at every index of [first, last] (null/undefined erases them). O(last - first)
   * node visits here: the kernel stores one multi-index entry (CONFIG_XARRAY_MULTI), which this
   * port does not have, so callers with big ranges use MapleTree. Erasing only visits present
   * entries, and drops a leaf the range covers whole at once.
   * @see lib/xarray.c xa_store_range()
   */
  xa_store_range(first: number, last: number, entry: T | null | undefined): void {
    xa_check_index(first, 'first');
    xa_check_index(last, 'last');
    if (first > last) throw new RangeError(`xarray: first ${first} > last ${last}`);
    if (entry === undefined || entry === null) {
      this.erase_range(first, last);
      return;
    }
    for (let i = first; i <= last; i++) this.xa_store(i, entry);
  }

  /**
   * Erase [first, last]: a leaf inside the range without marks is unlinked whole (what erasing
   * its entries one by one would end in: the empty leaf freed), the others entry by entry with
   * their marks.
   */
  private erase_range(first: number, last: number): void {
    let leaf = this.seek(first, PRESENT_BITS);
    while (leaf !== null && leaf.base <= last) {
      const base = leaf.base;
      const end = base + XA_CHUNK_SIZE - 1;
      if (base >= first && end <= last && !anyMarkBit(leaf)) {
        this.count -= leaf.count;
        leaf.count = 0;
        leaf.bits[PRESENT_BITS] = 0;
        leaf.bits[PRESENT_BITS + 1] = 0;
        this.deleteNode(leaf);
      } else {
        for (let off = this.foundOff; off >= 0 && base + off <= last; off = nextBit(leaf, PRESENT_BITS, off + 1)) this.xa_erase(base + off);
      }
      if (end >= last) return;
      leaf = this.seek(end + 1, PRESENT_BITS);
    }
  }

  /**
   * Set mark on the entry at index; nothing if there is no entry.
   * @see lib/xarray.c xa_set_mark()
   */
  xa_set_mark(index: number, mark: XaMark): void {
    xa_check_index(index);
    xa_check_mark(mark);
    const leaf = this.leafFor(index);
    if (!leaf || leaf.slots[index - leaf.base] === undefined) return;
    const off = index - leaf.base;
    const word = markBits(mark);
    let node: XaNode | null = leaf;
    let o = off;
    while (node && !testBit(node, word, o)) {
      setBit(node, word, o);
      o = node.offset;
      node = node.parent;
    }
  }

  /**
   * Clear mark on the entry at index.
   * @see lib/xarray.c xa_clear_mark()
   */
  xa_clear_mark(index: number, mark: XaMark): void {
    xa_check_index(index);
    xa_check_mark(mark);
    const leaf = this.leafFor(index);
    if (leaf) this.clearMarkUp(leaf, index - leaf.base, markBits(mark));
  }

  /**
   * Whether the entry at index has mark set.
   * @see lib/xarray.c xa_get_mark()
   */
  xa_get_mark(index: number, mark: XaMark): boolean {
    xa_check_index(index);
    xa_check_mark(mark);
    const leaf = this.leafFor(index);
    return leaf !== null && testBit(leaf, markBits(mark), index - leaf.base);
  }

  /**
   * The first entry at an index in [start, max] matching filter (XA_PRESENT or a mark), or
   * undefined (also when start > max).
   * @see lib/xarray.c xa_find()
   */
  xa_find(start: number, max: number, filter: XaFilter = XA_PRESENT): XaEntry<T> | undefined {
    xa_check_index(start, 'start');
    xa_check_index(max, 'max');
    const word = filterBits(filter);
    if (start > max) return undefined;
    const leaf = this.seek(start, word);
    if (!leaf) return undefined;
    const index = leaf.base + this.foundOff;
    return index <= max ? { index, entry: leaf.slots[this.foundOff] as T } : undefined;
  }

  /**
   * The first entry at an index in [index + 1, max] matching filter, or undefined.
   * @see lib/xarray.c xa_find_after()
   */
  xa_find_after(index: number, max: number, filter: XaFilter = XA_PRESENT): XaEntry<T> | undefined {
    xa_check_index(index);
    xa_check_index(max, 'max');
    if (index >= XA_MAX_INDEX) return undefined;
    return this.xa_find(index + 1, max, filter);
  }

  /**
   * fn(index, entry) for every entry, in index order.
   * @see include/linux/xarray.h xa_for_each()
   */
  xa_for_each(fn: XaWalkFn<T>): void {
    this.walk(0, XA_MAX_INDEX, PRESENT_BITS, fn);
  }

  /**
   * fn(index, entry) for every entry in [first, last], in index order; fn returning false stops.
   * fn may modify the array: the walk then resumes after the index it last reported.
   * @see include/linux/xarray.h xa_for_each_range()
   */
  xa_for_each_range(first: number, last: number, fn: XaWalkFn<T>): void {
    xa_check_index(first, 'first');
    xa_check_index(last, 'last');
    this.walk(first, last, PRESENT_BITS, fn);
  }

  /**
   * fn(index, entry) for every entry in [first, last] with mark set, in index order. Unmarked
   * subtrees are skipped whole.
   * @see include/linux/xarray.h xa_for_each_marked()
   */
  xa_for_each_marked(first: number, last: number, mark: XaMark, fn: XaWalkFn<T>): void {
    xa_check_index(first, 'first');
    xa_check_index(last, 'last');
    xa_check_mark(mark);
    this.walk(first, last, markBits(mark), fn);
  }

  /**
   * Iterator form of xa_for_each_range(), or of xa_for_each_marked() when filter is a mark. The
   * array may change between steps, as for the callback walks.
   */
  *entries(first = 0, last = XA_MAX_INDEX, filter: XaFilter = XA_PRESENT): Generator<XaEntry<T>, void, undefined> {
    xa_check_index(first, 'first');
    xa_check_index(last, 'last');
    const word = filterBits(filter);
    if (first > last) return;
    let leaf = this.seek(first, word);
    let v = this.version;
    while (leaf) {
      let off = this.foundOff;
      let index = leaf.base + off;
      for (;;) {
        if (index > last) return;
        yield { index, entry: leaf.slots[off] as T };
        if (index >= last || this.version !== v) break;
        off = nextBit(leaf, word, off + 1);
        if (off < 0) break;
        index = leaf.base + off;
      }
      if (index >= last) return;
      const changed = this.version !== v;
      v = this.version;
      leaf = this.seekNextLeaf(leaf, index, last, word, changed);
    }
  }

  [Symbol.iterator](): Generator<XaEntry<T>, void, undefined> {
    return this.entries();
  }

  /**
   * Erase every entry.
   * @see lib/xarray.c xa_destroy()
   */
  xa_destroy(): void {
    this.head = null;
    this.count = 0;
    this.version++;
  }

  /** Offset found by the last seek() (read by XaState). */
  foundOff = 0;
  /**
   * The leaf the last lookup reached, valid while `version` is `cachedVersion` (no node was added
   * or freed since): sequential accesses (the page cache of a file, read or truncated in order)
   * find their leaf without descending from the root, as an xa_state kept across steps does.
   */
  private cachedLeaf: XaNode | null = null;
  private cachedVersion = -1;

  /** The cached leaf if it covers index, else null. */
  private cachedLeafFor(index: number): XaNode | null {
    const c = this.cachedLeaf;
    if (c !== null && this.cachedVersion === this.version && index >= c.base && index - c.base < XA_CHUNK_SIZE) return c;
    return null;
  }

  private cacheLeaf(leaf: XaNode): XaNode {
    this.cachedLeaf = leaf;
    this.cachedVersion = this.version;
    return leaf;
  }

  /** The leaf node holding index, or null. */
  private leafFor(index: number): XaNode | null {
    const cached = this.cachedLeafFor(index);
    if (cached !== null) return cached;
    let node = this.head;
    if (!node || index >= POW2[node.shift + XA_CHUNK_SHIFT]) return null;
    while (node.shift > 0) {
      const child = node.slots[slotOf(index, node.shift)] as XaNode | undefined;
      if (!child) return null;
      node = child;
    }
    return this.cacheLeaf(node);
  }

  /** The leaf for index, creating it and the nodes above it (xas_create()). */
  private createLeaf(index: number): XaNode {
    const cached = this.cachedLeafFor(index);
    if (cached !== null) return cached;
    let node: XaNode | null = this.head;
    if (!node) {
      node = this.head = new XaNode(shiftFor(index), 0, null, 0);
      this.version++;
    } else {
      // xas_expand(): grow the root until it covers index; the old root becomes slot 0.
      while (index >= POW2[node.shift + XA_CHUNK_SHIFT]) {
        const root: XaNode = new XaNode(node.shift + XA_CHUNK_SHIFT, 0, null, 0);
        root.slots[0] = node;
        root.count = 1;
        setBit(root, PRESENT_BITS, 0);
        for (let m = 0; m < XA_MAX_MARKS; m++) {
          if (anyBit(node, markBits(m as XaMark))) setBit(root, markBits(m as XaMark), 0);
        }
        node.parent = root;
        node.offset = 0;
        node = this.head = root;
        this.version++;
      }
    }
    while (node.shift > 0) {
      const off = slotOf(index, node.shift);
      let child = node.slots[off] as XaNode | undefined;
      if (!child) {
        child = new XaNode(node.shift - XA_CHUNK_SHIFT, node.base + off * POW2[node.shift], node, off);
        node.slots[off] = child;
        node.count++;
        setBit(node, PRESENT_BITS, off);
        this.version++;
      }
      node = child;
    }
    return this.cacheLeaf(node);
  }

  /** Clear a mark bit in node and, while that empties the node's mark word, in its ancestors. */
  private clearMarkUp(node: XaNode, off: number, word: number): void {
    let n: XaNode | null = node;
    let o = off;
    while (n && testBit(n, word, o)) {
      clearBit(n, word, o);
      if (anyBit(n, word)) return;
      o = n.offset;
      n = n.parent;
    }
  }

  /** Unlink an empty node, then its parents as they empty, then shrink the root (xas_shrink()). */
  private deleteNode(node: XaNode): void {
    this.version++;
    let n: XaNode = node;
    while (n.count === 0) {
      const parent = n.parent;
      n.parent = null;
      if (!parent) {
        this.head = null;
        return;
      }
      parent.slots[n.offset] = undefined;
      parent.count--;
      // No mark bits to clear: erasing the node's last marked entry already cleared them.
      clearBit(parent, PRESENT_BITS, n.offset);
      n = parent;
    }
    let head = this.head!;
    while (head.shift > 0 && head.count === 1 && head.slots[0] !== undefined) {
      const child = head.slots[0] as XaNode;
      child.parent = null;
      head = this.head = child;
    }
  }

  /**
   * Find the first index >= start whose bit is set in bitmap `word` of its leaf: return the
   * leaf and put the offset in foundOff, or return null. (XaState walks with it too.) With `max`,
   * an entry past it counts as none, and the search stops as soon as what is left is all past it.
   */
  seek(start: number, word: number, max: number = XA_MAX_INDEX): XaNode | null {
    let node = this.head;
    if (!node || start >= POW2[node.shift + XA_CHUNK_SHIFT]) return null;
    // Walk down towards start; whenever the slot towards it is empty, take the next set bit at
    // that level, or climb and retry after this node. A search starting in the cached leaf (the
    // page cache's next index, fault-around's window) starts there and climbs from it instead.
    let off: number;
    const cached = this.cachedLeafFor(start);
    if (cached !== null) {
      node = cached;
      off = start - cached.base;
    } else {
      off = slotOf(start, node.shift);
    }
    let exact = true;
    for (;;) {
      const found = nextBit(node, word, off);
      if (found < 0) {
        /* nothing left in this node: anything else lies past its end */
        if (node.base + POW2[node.shift + XA_CHUNK_SHIFT] > max) return null;
        const parent: XaNode | null = node.parent;
        if (!parent) return null;
        off = node.offset + 1;
        node = parent;
        exact = false;
        continue;
      }
      if (node.shift === 0) {
        this.foundOff = found;
        return node;
      }
      const child = node.slots[found] as XaNode;
      if (found !== off) exact = false;
      node = child;
      off = exact ? slotOf(start, node.shift) : 0;
    }
  }

  /**
   * The next leaf of a walk up to `last` that has just reported `index` in `leaf`: the leaf after
   * it, or, when the array changed under the walk, wherever index + 1 now lives.
   */
  private seekNextLeaf(leaf: XaNode, index: number, last: number, word: number, changed: boolean): XaNode | null {
    if (changed) return this.seek(index + 1, word);
    const next = leaf.base + XA_CHUNK_SIZE;
    return next > last ? null : this.seek(next, word);
  }

  private walk(first: number, last: number, word: number, fn: XaWalkFn<T>): void {
    if (first > last) return;
    let leaf = this.seek(first, word);
    let v = this.version;
    while (leaf) {
      let off = this.foundOff;
      let index = leaf.base + off;
      // Report the rest of this leaf without searching from the root again.
      for (;;) {
        if (index > last) return;
        if (fn(index, leaf.slots[off] as T) === false || index >= last) return;
        if (this.version !== v) break;
        off = nextBit(leaf, word, off + 1);
        if (off < 0) break;
        index = leaf.base + off;
      }
      const changed = this.version !== v;
      v = this.version;
      leaf = this.seekNextLeaf(leaf, index, last, word, changed);
    }
  }
}

/**
 * struct xa_state (XA_STATE()): a cursor into an XArray that remembers the leaf it is at, so that
 * walking consecutive entries (xas_for_each(): xas_find() then xas_next_entry()) costs a bitmap
 * search per entry rather than a descent from the root, and without a callback. The array may be
 * changed between steps: a change of the tree's shape makes the next step search again from the
 * index after the current one, as the kernel's xas_pause() arranges.
 */
export class XaState<T> {
  /** The index the cursor is at (xas.xa_index). */
  xa_index: number;
  /** Whether the cursor is at an entry it found (else it is at a position to search from: XAS_RESTART). */
  private walked = false;
  /** The leaf of the entry last found, while the tree's shape has not changed since (version). */
  private node: XaNode | null = null;
  private offset = 0;
  private version = -1;

  constructor(
    readonly xa: XArray<T>,
    index = 0,
  ) {
    xa_check_index(index);
    this.xa_index = index;
  }

  /** xas_set(): move to `index`; the next xas_find() looks at `index` itself. */
  xas_set(index: number): void {
    xa_check_index(index);
    this.xa_index = index;
    this.walked = false;
    this.node = null;
  }

  /**
   * xas_find(): the first entry at an index >= xa_index (after xa_index once the cursor has found
   * an entry) and <= max, with xa_index moved to it; undefined when there is none (xa_index then
   * stays, and the next call searches from it again).
   */
  xas_find(max: number): T | undefined {
    return this.find(max, PRESENT_BITS);
  }

  /**
   * xas_next_entry(): the next entry after the current one, up to max (xas_find() after a find).
   * The fast path of a walk: the next present slot of the same leaf.
   */
  xas_next_entry(max: number): T | undefined {
    const node = this.node;
    if (node !== null && this.walked && this.version === this.xa.version) {
      const next = this.offset + 1;
      const bits = node.bits;
      let w = 0;
      let base = 0;
      if (next < 32) {
        w = bits[PRESENT_BITS] & (-1 << next);
        if (w === 0) {
          w = bits[PRESENT_BITS + 1];
          base = 32;
        }
      } else if (next < 64) {
        w = bits[PRESENT_BITS + 1] & (-1 << (next - 32));
        base = 32;
      }
      if (w !== 0) {
        const off = base + 31 - Math.clz32(w & -w);
        const index = node.base + off;
        if (index <= max && Number.isSafeInteger(max)) {
          this.offset = off;
          this.xa_index = index;
          return node.slots[off] as T;
        }
      }
    }
    return this.find(max, PRESENT_BITS);
  }

  /** xas_find_marked(): as xas_find(), for entries with `mark` set. */
  xas_find_marked(max: number, mark: XaMark): T | undefined {
    xa_check_mark(mark);
    return this.find(max, markBits(mark));
  }

  /** xas_load(): the entry at xa_index. */
  xas_load(): T | undefined {
    return this.xa.xa_load(this.xa_index);
  }

  /** xas_store(): store `entry` at xa_index (null or undefined erases); returns the old entry. */
  xas_store(entry: T | null | undefined): T | undefined {
    return this.xa.xa_store(this.xa_index, entry);
  }

  private find(max: number, word: number): T | undefined {
    xa_check_index(max, 'max');
    const xa = this.xa;
    let leaf: XaNode | null;
    const node = this.node;
    if (this.walked && node !== null && this.version === xa.version) {
      const off = nextBit(node, word, this.offset + 1);
      if (off >= 0) {
        xa.foundOff = off;
        leaf = node;
      } else {
        const next = node.base + XA_CHUNK_SIZE;
        leaf = next > max ? null : xa.seek(next, word, max);
      }
    } else {
      if (this.walked && this.xa_index >= XA_MAX_INDEX) return undefined;
      const start = this.walked ? this.xa_index + 1 : this.xa_index;
      leaf = start > max ? null : xa.seek(start, word, max);
    }
    const off = xa.foundOff;
    if (leaf === null || leaf.base + off > max) {
      /* Nothing more up to max: the cursor stays where it was, and searches from there again. */
      this.node = null;
      return undefined;
    }
    this.walked = true;
    this.node = leaf;
    this.offset = off;
    this.version = xa.version;
    this.xa_index = leaf.base + off;
    return leaf.slots[off] as T;
  }
}
