/**
 * The LRU lists (include/linux/mm_inline.h, include/linux/mmzone.h struct lruvec, the list
 * primitives of mm/swap.c; Linux 6.18 without CONFIG_LRU_GEN, like the oracle machine): each
 * node's folios on five lists, the order in which reclaim (vmscan.ts) finds them.
 *
 *   LRU_INACTIVE_ANON, LRU_ACTIVE_ANON   swap-backed folios: anonymous memory and shmem;
 *   LRU_INACTIVE_FILE, LRU_ACTIVE_FILE   the others (page cache without swap backing, and
 *                                        MADV_FREE'd anonymous folios, which lost PG_swapbacked);
 *   LRU_UNEVICTABLE                      mlocked folios and folios of AS_UNEVICTABLE mappings
 *                                        (guest_memfd, SHM_LOCK, an evicted shmem inode).
 *
 * folio_lru_list() derives a folio's list from PG_unevictable, PG_swapbacked and PG_active, as
 * the kernel does. A folio is added at the head of its list; reclaim takes from the tail, so the
 * tail holds the folios that went longest without being added or rotated.
 *
 * Layout: one doubly linked list per (node, lru), kept in typed arrays indexed like the page
 * store (entry i is pfn base_pfn + i): `next`/`prev` (Int32 array indexes, -1 = none), `on` (the
 * list id node * NR_LRU_LISTS + lru the folio is linked on, -1 = none), and per list its head,
 * tail and page count (lruvec->lists[] and the NR_LRU_BASE + lru node counters). Only folio
 * heads are linked. The arrays are allocated on first use, 10 bytes per page.
 *
 * `on` is the physical truth, PG_lru the kernel's: they agree except between a flag change and the
 * move that follows it (folio_lru_refile()), as the kernel's per-CPU folio batches delay moves.
 * A folio freed while still linked (a free path that cleared PG_lru without lruvec_del_folio())
 * is unlinked when met again: by lruvec_add_folio() or by the reclaim scan.
 */
import { BUG } from '@cocosim/core';
import {
  PG_active,
  PG_head,
  PG_lru,
  PG_mlocked,
  PG_swapbacked,
  PG_unevictable,
} from './page-flags.js';
import type { PageStore } from './page_store.js';

/* enum lru_list (include/linux/mmzone.h) */
export const LRU_BASE = 0;
export const LRU_ACTIVE = 1;
export const LRU_FILE = 2;
export const LRU_INACTIVE_ANON = LRU_BASE;
export const LRU_ACTIVE_ANON = LRU_BASE + LRU_ACTIVE;
export const LRU_INACTIVE_FILE = LRU_BASE + LRU_FILE;
export const LRU_ACTIVE_FILE = LRU_BASE + LRU_FILE + LRU_ACTIVE;
export const LRU_UNEVICTABLE = 4;
export const NR_LRU_LISTS = 5;
/** The names /proc/vmstat and the mm_vmscan_* tracepoints print (nr_inactive_anon...). */
export const LRU_NAMES: readonly string[] = ['inactive_anon', 'active_anon', 'inactive_file', 'active_file', 'unevictable'];

/** is_file_lru(). */
export function is_file_lru(lru: number): boolean {
  return lru === LRU_INACTIVE_FILE || lru === LRU_ACTIVE_FILE;
}
/** is_active_lru(). */
export function is_active_lru(lru: number): boolean {
  return lru === LRU_ACTIVE_ANON || lru === LRU_ACTIVE_FILE;
}

const LRU_BIT = 1 << PG_lru;
const ACTIVE_BIT = 1 << PG_active;
const UNEVICTABLE_BIT = 1 << PG_unevictable;
const SWAPBACKED_BIT = 1 << PG_swapbacked;
const HEAD_BIT = 1 << PG_head;
const MLOCKED_BIT = 1 << PG_mlocked;

/** The LRU lists of every node of one host (the lruvecs of the root memcg). */
export class LruLists {
  readonly next: Int32Array;
  readonly prev: Int32Array;
  /** The list (node * NR_LRU_LISTS + lru) each folio head is linked on, -1 = none. */
  readonly on: Int16Array;
  readonly head: Int32Array;
  readonly tail: Int32Array;
  /** Pages (not folios) on each list. */
  readonly nr_pages: Float64Array;

  constructor(readonly store: PageStore) {
    const n = store.nr_pages;
    this.next = new Int32Array(n).fill(-1);
    this.prev = new Int32Array(n).fill(-1);
    this.on = new Int16Array(n).fill(-1);
    const lists = store.nr_node_ids * NR_LRU_LISTS;
    this.head = new Int32Array(lists).fill(-1);
    this.tail = new Int32Array(lists).fill(-1);
    this.nr_pages = new Float64Array(lists);
  }
}

const lists_of = new WeakMap<PageStore, LruLists>();
/* One-entry cache in front of the WeakMap: the hot paths run on one host at a time. */
let cached_store: PageStore | undefined;
let cached_lists: LruLists | undefined;

/** The host's LRU lists, allocated on first use. */
export function lru_lists(store: PageStore): LruLists {
  if (store === cached_store) return cached_lists!;
  let l = lists_of.get(store);
  if (l === undefined) {
    l = new LruLists(store);
    lists_of.set(store, l);
  }
  cached_store = store;
  cached_lists = l;
  return l;
}

/** The host's LRU lists if any folio ever joined one (no allocation). */
export function lru_lists_if_any(store: PageStore): LruLists | undefined {
  if (store === cached_store) return cached_lists;
  return lists_of.get(store);
}

/** folio_is_file_lru(): the folio belongs on a file list (it is not swap-backed). */
export function folio_is_file_lru(store: PageStore, folio: number): boolean {
  return (store.flags[store.idx(folio)] & SWAPBACKED_BIT) === 0;
}

/** folio_lru_list() on a flags word: LRU_UNEVICTABLE, else inactive/active anon/file. */
export function lru_list_of_flags(f: number): number {
  if (f & UNEVICTABLE_BIT) return LRU_UNEVICTABLE;
  const lru = f & SWAPBACKED_BIT ? LRU_INACTIVE_ANON : LRU_INACTIVE_FILE;
  return f & ACTIVE_BIT ? lru + LRU_ACTIVE : lru;
}

/** folio_lru_list(). PG_active together with PG_unevictable is a bug (VM_BUG_ON_FOLIO). */
export function folio_lru_list(store: PageStore, folio: number): number {
  const f = store.flags[store.idx(folio)];
  if (f & ACTIVE_BIT && f & UNEVICTABLE_BIT) BUG(`VM_BUG_ON_FOLIO: folio 0x${folio.toString(16)} is both active and unevictable`);
  return lru_list_of_flags(f);
}

function nr_of(store: PageStore, i: number): number {
  return store.flags[i] & HEAD_BIT ? 2 ** store.order[i] : 1;
}

/** Link array index i at the head (newest end) or the tail (oldest end) of list `id`. */
function link(l: LruLists, i: number, id: number, at_tail: boolean): void {
  if (l.on[i] !== -1) unlink(l, i);
  if (at_tail) {
    const t = l.tail[id];
    l.prev[i] = t;
    l.next[i] = -1;
    if (t === -1) l.head[id] = i;
    else l.next[t] = i;
    l.tail[id] = i;
  } else {
    const h = l.head[id];
    l.next[i] = h;
    l.prev[i] = -1;
    if (h === -1) l.tail[id] = i;
    else l.prev[h] = i;
    l.head[id] = i;
  }
  l.on[i] = id;
  l.nr_pages[id] += nr_of(l.store, i);
}

/** Unlink array index i from whatever list it is on. */
function unlink(l: LruLists, i: number): void {
  const id = l.on[i];
  if (id === -1) return;
  const n = l.next[i];
  const p = l.prev[i];
  if (p === -1) l.head[id] = n;
  else l.next[p] = n;
  if (n === -1) l.tail[id] = p;
  else l.prev[n] = p;
  l.next[i] = -1;
  l.prev[i] = -1;
  l.on[i] = -1;
  l.nr_pages[id] -= nr_of(l.store, i);
}

/** lruvec_add_folio(): link the folio at the head of the list its flags name, on its node. */
export function lruvec_add_folio(store: PageStore, folio: number): void {
  const i = store.idx(folio);
  link(lru_lists(store), i, store.node[i] * NR_LRU_LISTS + lru_list_of_flags(store.flags[i]), false);
}

/** lruvec_add_folio_tail(): link the folio at the tail, the next to be reclaimed. */
export function lruvec_add_folio_tail(store: PageStore, folio: number): void {
  const i = store.idx(folio);
  link(lru_lists(store), i, store.node[i] * NR_LRU_LISTS + lru_list_of_flags(store.flags[i]), true);
}

/** lruvec_del_folio(): take the folio off its list (nothing if it is on none). */
export function lruvec_del_folio(store: PageStore, folio: number): void {
  const l = lru_lists_if_any(store);
  if (l !== undefined) unlink(l, store.idx(folio));
}

/**
 * __page_cache_release() for a folio whose last reference is gone: off its LRU list, PG_lru,
 * PG_active and PG_unevictable cleared (__folio_clear_lru_flags()). Takes the array index.
 */
export function lru_release_idx(store: PageStore, i: number): void {
  const flags = store.flags;
  if (flags[i] & LRU_BIT) flags[i] &= ~(LRU_BIT | ACTIVE_BIT | UNEVICTABLE_BIT);
  const l = store === cached_store ? cached_lists : lists_of.get(store);
  if (l !== undefined && l.on[i] !== -1) unlink(l, i);
}

/**
 * lru_add() of folio_add_lru()'s batch (mm/swap.c): PG_lru set, and the folio linked at the head
 * of its list. An unevictable folio (`evictable` false: mlocked, or its mapping is AS_UNEVICTABLE)
 * loses PG_active and goes to LRU_UNEVICTABLE; an evictable one loses a stale PG_unevictable.
 */
export function lru_add(store: PageStore, folio: number, evictable: boolean): void {
  const i = store.idx(folio);
  let f = store.flags[i] | LRU_BIT;
  if (evictable) f &= ~UNEVICTABLE_BIT;
  else f = (f & ~ACTIVE_BIT) | UNEVICTABLE_BIT;
  store.flags[i] = f;
  link(lru_lists(store), i, store.node[i] * NR_LRU_LISTS + lru_list_of_flags(f), false);
}

/**
 * Move a folio that is on an LRU list to the list its flags now name (the kernel's del, flag
 * change, add under the lruvec lock: lru_activate(), __mlock_folio(), lru_lazyfree()...). An
 * unevictable folio loses PG_active, as __mlock_folio() clears it. Nothing for a folio off the LRU.
 */
export function folio_lru_refile(store: PageStore, folio: number): void {
  const i = store.idx(folio);
  let f = store.flags[i];
  if (!(f & LRU_BIT)) return;
  if (f & UNEVICTABLE_BIT && f & ACTIVE_BIT) {
    f &= ~ACTIVE_BIT;
    store.flags[i] = f;
  }
  const l = lru_lists(store);
  const id = store.node[i] * NR_LRU_LISTS + lru_list_of_flags(f);
  if (l.on[i] !== id) link(l, i, id, false);
}

/**
 * lru_activate() (mm/swap.c, folio_activate()'s batch): an inactive evictable folio on the LRU
 * becomes active and moves to the head of the active list.
 * @returns true if it was activated (the kernel then emits mm_lru_activate).
 */
export function lru_activate(store: PageStore, folio: number): boolean {
  const i = store.idx(folio);
  const f = store.flags[i];
  if (!(f & LRU_BIT) || f & (ACTIVE_BIT | UNEVICTABLE_BIT)) return false;
  store.flags[i] = f | ACTIVE_BIT;
  link(lru_lists(store), i, store.node[i] * NR_LRU_LISTS + lru_list_of_flags(f | ACTIVE_BIT), false);
  return true;
}

/** folio_test_mlocked() on the raw flags, for folio_evictable(). */
export function folio_flags_mlocked(store: PageStore, folio: number): boolean {
  return (store.flags[store.idx(folio)] & MLOCKED_BIT) !== 0;
}

/** lruvec_lru_size() for the whole node: pages on list `lru` of node `nid`. */
export function lruvec_lru_size(store: PageStore, nid: number, lru: number): number {
  const l = lru_lists_if_any(store);
  return l === undefined ? 0 : l.nr_pages[nid * NR_LRU_LISTS + lru];
}

/** Simulator plumbing: the folios on list `lru` of node `nid`, head (newest) first. */
export function lru_list_folios(store: PageStore, nid: number, lru: number): number[] {
  const l = lru_lists_if_any(store);
  const out: number[] = [];
  if (l === undefined) return out;
  for (let i = l.head[nid * NR_LRU_LISTS + lru]; i !== -1; i = l.next[i]) out.push(store.base_pfn + i);
  return out;
}

/** Simulator plumbing: the list (lru index) a folio is linked on, or -1. */
export function folio_lru_linked(store: PageStore, folio: number): number {
  const l = lru_lists_if_any(store);
  if (l === undefined) return -1;
  const id = l.on[store.idx(folio)];
  return id === -1 ? -1 : id % NR_LRU_LISTS;
}

/** Simulator plumbing: unlink array index i (the reclaim scan dropping a stale entry). */
export function lru_unlink_idx(l: LruLists, i: number): void {
  unlink(l, i);
}
