/**
 * The buddy page allocator (mm/page_alloc.c, Linux 6.18) over a PageStore.
 *
 * What is modelled as the kernel does it:
 * - Free lists per order (0..MAX_PAGE_ORDER = 10) per zone per node; a free block is PageBuddy on
 *   its first page with buddy_order() there. Allocation takes the smallest order that has a block
 *   (__rmqueue_smallest()) and splits it, keeping the lower half (expand()); freeing merges with
 *   the buddy at `pfn ^ (1 << order)` while the buddy is free, of the same order and in the same
 *   zone (__free_one_page()).
 * - Zonelists: gfp_zone() gives the highest usable zone; zones are tried from it downwards, first
 *   on the preferred node, then on the others (node order nid, nid+1, ..., 0, ..., nid-1, which is
 *   what find_next_best_node() gives with uniform distances). __GFP_THISNODE stays on the node.
 *   Only __GFP_HIGHMEM | __GFP_MOVABLE allocations may come from ZONE_MOVABLE.
 * - Fresh pages: _refcount 1 on the first page, _mapcount -1, flags clean; __GFP_COMP makes a
 *   compound page (prep_compound_page()); folio_alloc() adds __GFP_COMP and marks large folios
 *   rmappable.
 * - The checks of free_pages_prepare() and check_new_pages(), as with CONFIG_DEBUG_VM: freeing a
 *   page that is still referenced, mapped, pinned, locked, on the LRU... is bad_page(): reported
 *   to the host's WarnSink, the taint recorded and the page leaked (never reused), not freed.
 * - Orders above MAX_PAGE_ORDER (1 GiB hugetlb folios, order 18) only come from
 *   alloc_contig_pages()/folio_alloc_gigantic(): an aligned range of free pages.
 * - Memory failure's take_page_off_buddy() / put_page_back_buddy().
 *
 * What is not: per-cpu page lists, migratetypes and pageblock stealing, watermarks and
 * lowmem_reserve, reclaim and compaction. So an allocation fails exactly when no suitable free
 * block exists. alloc_contig_range() moves the pages in use out of its range through
 * `contig_migrate` (compaction.ts, page migration) when the host has it, else it only succeeds on
 * ranges whose pages are all free.
 *
 * Allocation order is deterministic: within a free list the lowest pfn goes first (the kernel's
 * lists are LIFO; their order is not ABI). Free lists are bitmaps with a summary tree, so that
 * finding the lowest free block, adding and removing one are O(log n) and nothing scans.
 *
 * Return convention: functions that return a struct page * in the kernel return the head pfn here,
 * and -ENOMEM where the kernel returns NULL; test with IS_ERR_PFN(). The page contents live in
 * another module: listeners (addListener()) hear about pages to zero, handed out and freed.
 */
import { BUG, BUG_ON, Errno, PAGE_SIZE, type Pfn, type WarnSink } from '@cocosim/core';
import {
  __GFP_BITS_MASK,
  __GFP_COMP,
  __GFP_HIGHMEM,
  __GFP_IO,
  __GFP_FS,
  __GFP_MOVABLE,
  __GFP_NOFAIL,
  __GFP_NOWARN,
  __GFP_RECLAIM,
  __GFP_RECLAIMABLE,
  __GFP_RETRY_MAYFAIL,
  __GFP_SKIP_ZERO,
  __GFP_THISNODE,
  __GFP_HARDWALL,
  __GFP_WRITE,
  __GFP_ZERO,
  __GFP_ZEROTAGS,
  GFP_ZONEMASK,
  ZONELIST_FALLBACK,
  ZONELIST_NOFALLBACK,
  format_gfp,
  gfp_zone,
  type gfp_t,
} from './gfp.js';
import {
  PAGE_FLAGS_CHECK_AT_FREE,
  PAGE_FLAGS_CHECK_AT_PREP,
  PAGE_FLAGS_SECOND,
  PGTY_buddy,
  PG_head,
  PG_hwpoison,
  PG_mlocked,
  PG_reserved,
  folio_set_large_rmappable,
  folio_test_hugetlb,
  folio_test_large,
  page_type_has_type,
} from './page-flags.js';
import { FOLIO_MAPPING_ANON, dump_page, folio_nr_pages, folio_put, page_count, put_page_testzero } from './folio.js';
import { MAX_NR_ZONES, NUMA_NO_NODE, ZONE_NAMES, type FrozenPageFree, type PageStore } from './page_store.js';

/** MAX_PAGE_ORDER: the largest buddy block (CONFIG_ARCH_FORCE_MAX_ORDER default on x86-64). */
export const MAX_PAGE_ORDER = 10;
export const NR_PAGE_ORDERS = MAX_PAGE_ORDER + 1;
export const MAX_ORDER_NR_PAGES = 2 ** MAX_PAGE_ORDER;
/** pageblock_order: min(HPAGE_PMD_ORDER, MAX_PAGE_ORDER) with THP on x86-64. */
export const pageblock_order = 9;
export const pageblock_nr_pages = 2 ** pageblock_order;
/** Orders above this are "costly" to the allocator's retry logic. */
export const PAGE_ALLOC_COSTLY_ORDER = 3;

/** page_type of a free buddy head as the Int32 _mapcount stores it (PGTY_buddy << 24). */
const PAGE_TYPE_BUDDY = PGTY_buddy * 2 ** 24 - 2 ** 32;

/** 2^order for every buddy order. */
const ORDER_NR_PAGES: readonly number[] = Array.from({ length: NR_PAGE_ORDERS }, (_, order) => 2 ** order);

/**
 * The low 32 bits of a pfn, exactly for any pfn up to 2^53 (ToUint32 is the value modulo 2^32):
 * enough to test the alignment of a block of any buddy order.
 */
function low_bits(pfn: number): number {
  return pfn >>> 0;
}

/** acr_flags_t of alloc_contig_range(). */
export const ACR_FLAGS_NONE = 0;
export const ACR_FLAGS_CMA = 1 << 0;

/** True when an allocator result is an error (-ENOMEM) rather than a pfn. */
export function IS_ERR_PFN(pfn: number): boolean {
  return pfn < 0;
}

/** get_order() (include/asm-generic/getorder.h): the order of the block holding `size` bytes. */
export function get_order(size: number): number {
  if (!Number.isSafeInteger(size) || size <= 0) BUG(`get_order(${size})`);
  const pages = Math.ceil(size / PAGE_SIZE);
  let order = 0;
  while (2 ** order < pages) order++;
  return order;
}

/** Observers of the allocator; the memory-contents module zeroes, a tracer records. */
export interface PageAllocListener {
  /** kernel_init_pages(): the pages' contents must now read as zero (__GFP_ZERO, init_on_*). */
  onZero?(pfn: Pfn, nr_pages: number): void;
  /** Pages handed out (mm_page_alloc). */
  onAlloc?(pfn: Pfn, nr_pages: number, gfp: gfp_t): void;
  /** Pages returned to the buddy allocator (mm_page_free). */
  onFree?(pfn: Pfn, nr_pages: number): void;
  /** warn_alloc(): an allocation failed without __GFP_NOWARN; `message` is the kernel's line. */
  onAllocFail?(gfp: gfp_t, order: number, nid: number, message: string): void;
}

export interface PageAllocOptions {
  /** init_on_alloc=1: zero every allocation (CONFIG_INIT_ON_ALLOC_DEFAULT_ON); default false. */
  readonly init_on_alloc?: boolean;
  /** init_on_free=1: zero pages when they are freed; default false. */
  readonly init_on_free?: boolean;
}

/** A set of block numbers with O(log32 n) add, delete and find-lowest. */
class BlockSet {
  /** levels[0] has one bit per block; a bit at level l+1 says "word below is non-zero". */
  private readonly levels: Uint32Array[] = [];

  constructor(nbits: number) {
    let n = Math.max(1, nbits);
    for (;;) {
      const words = Math.ceil(n / 32);
      this.levels.push(new Uint32Array(words));
      if (words === 1) break;
      n = words;
    }
  }

  add(i: number): void {
    const levels = this.levels;
    for (let l = 0; l < levels.length; l++) {
      const w = i >>> 5;
      const old = levels[l][w];
      levels[l][w] = old | (1 << (i & 31));
      if (old !== 0) return;
      i = w;
    }
  }

  del(i: number): void {
    const levels = this.levels;
    for (let l = 0; l < levels.length; l++) {
      const w = i >>> 5;
      const v = levels[l][w] & ~(1 << (i & 31));
      levels[l][w] = v;
      if (v !== 0) return;
      i = w;
    }
  }

  has(i: number): boolean {
    return (this.levels[0][i >>> 5] & (1 << (i & 31))) !== 0;
  }

  /** Members, counted bit by bit (for consistency checks). */
  count(): number {
    let n = 0;
    for (const word of this.levels[0]) {
      let w = word;
      while (w !== 0) {
        w &= w - 1;
        n++;
      }
    }
    return n;
  }

  /** The lowest member, or -1. */
  first(): number {
    const levels = this.levels;
    let l = levels.length - 1;
    if (levels[l][0] === 0) return -1;
    let i = 0;
    for (; l >= 0; l--) {
      const word = levels[l][i];
      i = i * 32 + (31 - Math.clz32(word & -word));
    }
    return i;
  }
}

/** struct free_area: the free blocks of one order in one zone. */
export class FreeArea {
  /** Number of free blocks of this order. */
  nr_free = 0;
  private readonly blocks: BlockSet;
  private readonly size: number;

  constructor(
    private readonly base: number,
    readonly order: number,
    end_pfn: number,
  ) {
    this.size = 2 ** order;
    this.blocks = new BlockSet(Math.ceil((end_pfn - base) / this.size));
  }

  add(pfn: number): void {
    this.blocks.add((pfn - this.base) / this.size);
    this.nr_free++;
  }

  del(pfn: number): void {
    this.blocks.del((pfn - this.base) / this.size);
    this.nr_free--;
  }

  has(pfn: number): boolean {
    return this.blocks.has((pfn - this.base) / this.size);
  }

  /** Blocks actually on the list, counted (nr_free must agree). */
  count(): number {
    return this.blocks.count();
  }

  /** The lowest free block's pfn, or -1. */
  first(): number {
    const b = this.blocks.first();
    return b < 0 ? -1 : this.base + b * this.size;
  }
}

/** struct zone: one zone of one node with its free lists. */
export class Zone {
  readonly name: string;
  /** Pages handed to the buddy allocator at boot (managed_pages). */
  managed_pages = 0;
  /** NR_FREE_PAGES of this zone. */
  free_pages = 0;
  readonly free_area: readonly FreeArea[];

  constructor(
    readonly nid: number,
    readonly zone_idx: number,
    readonly zone_start_pfn: number,
    readonly spanned_pages: number,
    readonly present_pages: number,
  ) {
    this.name = ZONE_NAMES[zone_idx];
    /* Block numbers count from a MAX_ORDER-aligned base so that every order's blocks are whole. */
    const base = zone_start_pfn - (zone_start_pfn % MAX_ORDER_NR_PAGES);
    const areas: FreeArea[] = [];
    for (let order = 0; order < NR_PAGE_ORDERS; order++) {
      areas.push(new FreeArea(base, order, zone_start_pfn + spanned_pages));
    }
    this.free_area = areas;
  }

  zone_end_pfn(): number {
    return this.zone_start_pfn + this.spanned_pages;
  }

  /** zone_spans_pfn(). */
  zone_spans_pfn(pfn: number): boolean {
    return pfn >= this.zone_start_pfn && pfn < this.zone_end_pfn();
  }
}

export class PageAllocator implements FrozenPageFree {
  readonly warn: WarnSink;
  /** Populated zones by node, then zone index. */
  readonly zones: readonly Zone[];
  readonly init_on_alloc: boolean;
  readonly init_on_free: boolean;
  /** add_taint(TAINT_BAD_PAGE) happened. */
  tainted_bad_page = false;
  /** Allocations that failed (with or without __GFP_NOWARN). */
  nr_alloc_failures = 0;
  /**
   * current->flags & PF_MEMALLOC_PIN (memalloc_pin_save(), set by a FOLL_LONGTERM pin): the
   * running task's allocations leave ZONE_MOVABLE alone (current_gfp_context()).
   */
  pf_memalloc_pin = false;
  /**
   * __alloc_contig_migrate_range(): move the pages in use out of [start, end) before
   * alloc_contig_range() takes it (0 or -errno). Installed by compaction.ts for the host; without
   * it a range must already be free.
   */
  contig_migrate: ((start: number, end: number, gfp: gfp_t) => number) | undefined = undefined;

  private readonly zone_table: (Zone | undefined)[];
  /** zonelists[nid][ZONELIST_FALLBACK | ZONELIST_NOFALLBACK] */
  private readonly zonelists: Zone[][][];
  private readonly listeners: PageAllocListener[] = [];
  /** How many of them listen to frees (free_unref_folios() then frees folio by folio). */
  private free_listeners = 0;
  /** Listeners with onAlloc: the allocation fast path skips notify_alloc() without one. */
  private alloc_listeners = 0;
  /** Pages whose page->private is MAGIC_HWPOISON: taken off the buddy by memory failure. */
  private readonly hwpoison_taken_off = new Set<number>();
  /** Open free_unref_defer() windows. */
  private defer_depth = 0;
  /** The run of order-0 pages [pending_start, pending_end) of pending_zone held back by them. */
  private pending_zone: Zone | undefined = undefined;
  private pending_zone_id = -1;
  private pending_start = 0;
  private pending_end = -1;

  constructor(
    readonly store: PageStore,
    options: PageAllocOptions = {},
  ) {
    BUG_ON(store.page_alloc !== undefined, 'PageAllocator: the store already has a page allocator');
    this.warn = store.warn;
    this.init_on_alloc = options.init_on_alloc ?? false;
    this.init_on_free = options.init_on_free ?? false;
    this.zones = store.zones.map((z) => new Zone(z.nid, z.zone_idx, z.zone_start_pfn, z.spanned_pages, z.present_pages));
    this.zone_table = new Array<Zone | undefined>(store.nr_node_ids * MAX_NR_ZONES).fill(undefined);
    for (const z of this.zones) this.zone_table[z.nid * MAX_NR_ZONES + z.zone_idx] = z;
    this.zonelists = [];
    for (let nid = 0; nid < store.nr_node_ids; nid++) {
      const own = (n: number): Zone[] => this.zones.filter((z) => z.nid === n).sort((a, b) => b.zone_idx - a.zone_idx);
      const order: number[] = [];
      for (let k = 0; k < store.nr_node_ids; k++) order.push((nid + k) % store.nr_node_ids);
      const lists: Zone[][] = [];
      lists[ZONELIST_FALLBACK] = order.flatMap(own);
      lists[ZONELIST_NOFALLBACK] = own(nid);
      this.zonelists.push(lists);
    }
    store.page_alloc = this;
    this.memblock_free_all();
  }

  /** Simulator plumbing: observe the allocator; returns the function that stops observing. */
  addListener(listener: PageAllocListener): () => void {
    this.listeners.push(listener);
    if (listener.onFree !== undefined) this.free_listeners++;
    if (listener.onAlloc !== undefined) this.alloc_listeners++;
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i < 0) return;
      this.listeners.splice(i, 1);
      if (listener.onFree !== undefined) this.free_listeners--;
      if (listener.onAlloc !== undefined) this.alloc_listeners--;
    };
  }

  /** page_zone(). */
  page_zone(pfn: number): Zone {
    const i = this.store.idx(pfn);
    return this.zone_table[this.store.node[i] * MAX_NR_ZONES + this.store.zone[i]]!;
  }

  /** The zone of `zone_idx` on node `nid`, if populated. */
  zone(nid: number, zone_idx: number): Zone | undefined {
    return this.zone_table[nid * MAX_NR_ZONES + zone_idx];
  }

  /** nr_free_pages(): NR_FREE_PAGES over all zones. */
  nr_free_pages(): number {
    this.free_unref_flush_run();
    let n = 0;
    for (const z of this.zones) n += z.free_pages;
    return n;
  }

  /** Simulator plumbing: /proc/buddyinfo, free block counts per order for each zone. */
  buddyinfo(): { nid: number; zone: string; nr_free: number[] }[] {
    this.free_unref_flush_run();
    return this.zones.map((z) => ({ nid: z.nid, zone: z.name, nr_free: z.free_area.map((a) => a.nr_free) }));
  }

  /**
   * Simulator plumbing for tests and debug mode: walk the whole memory map and report every way
   * the free lists and page states disagree (an empty list means consistent). O(nr_pages).
   */
  checkConsistency(): string[] {
    this.free_unref_flush_run();
    const store = this.store;
    const problems: string[] = [];
    const counted = new Map<Zone, number[]>(this.zones.map((z) => [z, new Array<number>(NR_PAGE_ORDERS).fill(0)]));
    const at = (i: number): string => `pfn 0x${(store.base_pfn + i).toString(16)}`;
    /* locals, not imported bindings: under the test runner those are property reads in the loop */
    const buddy = PGTY_buddy;
    const at_prep = PAGE_FLAGS_CHECK_AT_PREP;
    const head = 1 << PG_head;
    for (let i = 0; i < store.nr_pages; ) {
      const pfn = store.base_pfn + i;
      if (store._mapcount[i] >>> 24 === buddy) {
        const order = store.order[i];
        const nr = 2 ** order;
        const zone = this.zone_table[store.node[i] * MAX_NR_ZONES + store.zone[i]]!;
        if (pfn % nr !== 0) problems.push(`${at(i)}: free block of order ${order} is not aligned`);
        if (i + nr > store.nr_pages) problems.push(`${at(i)}: free block of order ${order} runs past the end`);
        if (!zone.free_area[order].has(pfn)) problems.push(`${at(i)}: PageBuddy order ${order} but not on the free list`);
        counted.get(zone)![order]++;
        for (let j = i; j < Math.min(i + nr, store.nr_pages); j++) {
          if (store._refcount[j] !== 0) problems.push(`${at(j)}: free but _refcount ${store._refcount[j]}`);
          if (store.head_offset[j] !== 0) problems.push(`${at(j)}: free but a tail page`);
          if (j > i && store._mapcount[j] !== -1) problems.push(`${at(j)}: free but _mapcount ${store._mapcount[j]}`);
          if (store.node[j] !== store.node[i] || store.zone[j] !== store.zone[i]) problems.push(`${at(j)}: free block crosses a zone`);
          if (store.flags[j] & at_prep) problems.push(`${at(j)}: free with flags 0x${store.flags[j].toString(16)}`);
        }
        i += nr;
        continue;
      }
      if (store.flags[i] & head) {
        const nr = 2 ** store.order[i];
        if (store.order[i] === 0 || pfn % nr !== 0) problems.push(`${at(i)}: compound head of order ${store.order[i]} is not aligned`);
        for (let j = i + 1; j < Math.min(i + nr, store.nr_pages); j++) {
          if (store.head_offset[j] !== j - i) problems.push(`${at(j)}: tail page with head_offset ${store.head_offset[j]}`);
          if (store._refcount[j] !== 0) problems.push(`${at(j)}: tail page with _refcount ${store._refcount[j]}`);
        }
        if (store._pincount[i] > store._refcount[i]) problems.push(`${at(i)}: _pincount ${store._pincount[i]} > _refcount ${store._refcount[i]}`);
      }
      i++;
    }
    for (const zone of this.zones) {
      let free = 0;
      for (let order = 0; order < NR_PAGE_ORDERS; order++) {
        const area = zone.free_area[order];
        const seen = counted.get(zone)![order];
        if (area.nr_free !== seen || area.count() !== seen) {
          problems.push(`zone ${zone.nid}/${zone.name} order ${order}: nr_free ${area.nr_free}, on list ${area.count()}, PageBuddy ${seen}`);
        }
        free += seen * 2 ** order;
      }
      if (zone.free_pages !== free) problems.push(`zone ${zone.nid}/${zone.name}: free_pages ${zone.free_pages} != ${free}`);
    }
    return problems;
  }

  /* Allocation */

  /**
   * __alloc_pages(): allocate 2^order contiguous pages.
   * @returns the first pfn, or -ENOMEM (the kernel's NULL).
   */
  __alloc_pages(gfp: gfp_t, order: number, preferred_nid: number = NUMA_NO_NODE): Pfn {
    if (this.pending_zone !== undefined) this.free_unref_flush_run();
    if (!Number.isInteger(gfp) || gfp < 0) BUG(`__alloc_pages: bad gfp ${gfp}`);
    if (!Number.isInteger(order) || order < 0) BUG(`__alloc_pages: bad order ${order}`);
    if (order > MAX_PAGE_ORDER) {
      this.WARN_ON_ONCE_GFP(true, gfp, '__alloc_pages_order', `__alloc_pages: order ${order} > MAX_PAGE_ORDER`);
      this.nr_alloc_failures++;
      return -Errno.ENOMEM as Pfn;
    }
    gfp &= __GFP_BITS_MASK;
    /* current_gfp_context(): PF_MEMALLOC_PIN ensures movable zones are not used */
    if (this.pf_memalloc_pin) gfp &= ~__GFP_MOVABLE;
    const nid = this.node_or_local(preferred_nid);
    const highest = gfp_zone(gfp);
    const zonelist = this.zonelists[nid][gfp & __GFP_THISNODE ? ZONELIST_NOFALLBACK : ZONELIST_FALLBACK];
    for (let z = 0; z < zonelist.length; z++) {
      const zone = zonelist[z];
      if (zone.zone_idx > highest) continue;
      const pfn = this.rmqueue(zone, order);
      if (pfn < 0) continue;
      this.prep_new_page(pfn, order, gfp);
      this.store._refcount[pfn - this.store.base_pfn] = 1;
      if (this.alloc_listeners !== 0) this.notify_alloc(pfn, 1 << order, gfp);
      return pfn as Pfn;
    }
    return this.alloc_failed(gfp, order, nid);
  }

  /** alloc_pages(): on the local node, or on `nid` when given (the kernel's alloc_pages_node()). */
  alloc_pages(gfp: gfp_t, order: number, nid: number = NUMA_NO_NODE): Pfn {
    return this.__alloc_pages(gfp, order, nid);
  }

  /** alloc_pages_node(). */
  alloc_pages_node(nid: number, gfp: gfp_t, order: number): Pfn {
    return this.__alloc_pages(gfp, order, nid);
  }

  /** alloc_page(). */
  alloc_page(gfp: gfp_t): Pfn {
    return this.__alloc_pages(gfp, 0);
  }

  /** __folio_alloc(): a compound folio; large folios are marked rmappable (page_rmappable_folio()). */
  __folio_alloc(gfp: gfp_t, order: number, preferred_nid: number): Pfn {
    const pfn = this.__alloc_pages(gfp | __GFP_COMP, order, preferred_nid);
    if (pfn >= 0 && folio_test_large(this.store, pfn)) folio_set_large_rmappable(this.store, pfn);
    return pfn;
  }

  /** folio_alloc(). */
  folio_alloc(gfp: gfp_t, order: number): Pfn {
    return this.__folio_alloc(gfp, order, NUMA_NO_NODE);
  }

  /** __folio_alloc_node(). */
  __folio_alloc_node(gfp: gfp_t, order: number, nid: number): Pfn {
    if (!Number.isInteger(nid) || nid < 0 || nid >= this.store.nr_node_ids) BUG(`VM_BUG_ON: nid ${nid}`);
    return this.__folio_alloc(gfp, order, nid);
  }

  /**
   * alloc_pages_exact(): ceil(size / PAGE_SIZE) pages, each with its own reference, from a
   * non-compound block whose excess pages are freed (make_alloc_exact()). Returns the first pfn
   * (the kernel returns its address) or -ENOMEM.
   */
  alloc_pages_exact(size: number, gfp: gfp_t): Pfn {
    const order = get_order(size);
    if (this.warn.WARN_ON_ONCE((gfp & (__GFP_COMP | __GFP_HIGHMEM)) !== 0, 'alloc_pages_exact', 'alloc_pages_exact: __GFP_COMP or __GFP_HIGHMEM')) {
      gfp &= ~(__GFP_COMP | __GFP_HIGHMEM);
    }
    const pfn = this.__alloc_pages(gfp, order);
    if (pfn < 0) return pfn;
    const nr = Math.ceil(size / PAGE_SIZE);
    for (let i = nr - 1; i >= 1; i--) set_refcounted(this.store, pfn + i);
    for (let i = nr; i < 2 ** order; i++) this.free_frozen_pages(pfn + i, 0);
    return pfn;
  }

  /** free_pages_exact(): free what alloc_pages_exact() gave, page by page. */
  free_pages_exact(pfn: number, size: number): void {
    const nr = Math.ceil(size / PAGE_SIZE);
    for (let i = 0; i < nr; i++) this.__free_pages(pfn + i, 0);
  }

  /**
   * split_page(): turn a non-compound high-order allocation into 2^order order-0 pages, each
   * with one reference.
   */
  split_page(pfn: number, order: number): void {
    if (isCompound(this.store, pfn)) BUG(`VM_BUG_ON_PAGE: split_page of compound page 0x${pfn.toString(16)}`);
    if (page_count(this.store, pfn) === 0) BUG(`VM_BUG_ON_PAGE: split_page of free page 0x${pfn.toString(16)}`);
    for (let i = 1; i < 2 ** order; i++) set_refcounted(this.store, pfn + i);
  }

  /* Freeing */

  /**
   * __free_pages(): drop the caller's reference; free the block when it was the last. For a
   * non-compound high-order block whose first page is still referenced elsewhere, the other pages
   * are freed now and the first page when its last reference goes.
   */
  __free_pages(pfn: number, order: number): void {
    if (!Number.isInteger(order) || order < 0 || order > 30) BUG(`__free_pages: bad order ${order}`);
    const store = this.store;
    const i = store.idx(pfn);
    const head = (store.flags[i] & (1 << PG_head)) !== 0;
    /* put_page_testzero() */
    const ref = store._refcount[i];
    if (ref === 0) BUG(`VM_BUG_ON_PAGE: put_page_testzero on 0x${pfn.toString(16)} with refcount 0`);
    store._refcount[i] = ref - 1;
    if (ref === 1) {
      this.__free_frozen_pages(pfn, i, order);
    } else if (!head) {
      while (order-- > 0) this.free_frozen_pages(pfn + 2 ** order, order);
    }
  }

  /** __free_page(). */
  __free_page(pfn: number): void {
    this.__free_pages(pfn, 0);
  }

  /**
   * free_frozen_pages(): free a page whose refcount is already zero (folio_put() ends here).
   * Freeing the head of a free block again is a simulator bug (it would corrupt the free lists);
   * __free_pages() and folio_put() catch every other double free as a put of a zero refcount.
   */
  free_frozen_pages(pfn: number, order: number): void {
    this.__free_frozen_pages(pfn, this.store.idx(pfn), order);
  }

  private __free_frozen_pages(pfn: number, i: number, order: number): void {
    const store = this.store;
    if (store._mapcount[i] >>> 24 === PGTY_buddy) BUG(`free_frozen_pages: double free of pfn 0x${pfn.toString(16)}`);
    if (!this.free_pages_prepare(pfn, i, order)) return;
    this.free_one_page(this.zone_table[store.node[i] * MAX_NR_ZONES + store.zone[i]]!, pfn, order);
    if (this.listeners.length !== 0) this.notify_free(pfn, 1 << order);
  }

  /**
   * free_unref_folios(): free the first `nr` of `folios`, folios whose last reference is gone
   * (folios_put_refs(), so release_pages() and the TLB gather of a zap, end here). Each goes
   * through free_pages_prepare() as a folio freed alone does. The kernel then puts order-0 pages
   * on the per-cpu lists; the simulator has none and gives each run of order-0 pages that are
   * contiguous in the batch (truncation frees a file's pages in index order, which is mostly pfn
   * order) back to the buddy allocator as whole aligned blocks. Buddy merging is canonical (a
   * free aligned block whose halves are free is always one block), so the free lists end exactly
   * as freeing the folios one by one leaves them, for a fraction of the merges.
   */
  free_unref_folios(folios: ArrayLike<number>, nr: number): void {
    const store = this.store;
    if (this.free_listeners !== 0) {
      /* Listeners of frees hear of each folio as it goes, as from free_frozen_pages() */
      this.free_unref_flush_run();
      for (let k = 0; k < nr; k++) this.free_frozen_pages(folios[k], folio_order_of(store, store.idx(folios[k])));
      return;
    }
    const node = store.node;
    const zone_of = store.zone;
    const base = store.base_pfn;
    /* in a free_unref_defer() window, the run the last call left pending goes on */
    let run_start = this.pending_start;
    let run_end = this.pending_end;
    let run_zone = this.pending_zone;
    let run_zone_id = this.pending_zone_id;
    this.pending_zone = undefined;
    this.pending_zone_id = -1;
    this.pending_end = -1;
    for (let k = 0; k < nr; k++) {
      const pfn = folios[k];
      const i = pfn - base;
      if (!(i >= 0 && i < store.nr_pages)) store.idx(pfn);
      if (store._mapcount[i] >>> 24 === PGTY_buddy) BUG(`free_frozen_pages: double free of pfn 0x${pfn.toString(16)}`);
      const zone_id = node[i] * MAX_NR_ZONES + zone_of[i];
      if (this.free_small_page_prepare(i)) {
        if (pfn === run_end && zone_id === run_zone_id) {
          run_end++;
          continue;
        }
        if (run_zone !== undefined) this.free_range(run_zone, run_start, run_end);
        run_zone = this.zone_table[zone_id]!;
        run_zone_id = zone_id;
        run_start = pfn;
        run_end = pfn + 1;
        continue;
      }
      const order = folio_order_of(store, i);
      if (!this.free_pages_prepare(pfn, i, order)) continue;
      if (run_zone !== undefined) this.free_range(run_zone, run_start, run_end);
      run_zone = undefined;
      run_zone_id = -1;
      run_end = -1;
      this.free_one_page(this.zone_table[zone_id]!, pfn, order);
    }
    if (run_zone === undefined) return;
    if (this.defer_depth === 0) {
      this.free_range(run_zone, run_start, run_end);
      return;
    }
    this.pending_zone = run_zone;
    this.pending_zone_id = run_zone_id;
    this.pending_start = run_start;
    this.pending_end = run_end;
  }

  /**
   * Open a window in which free_unref_folios() leaves the run of contiguous order-0 pages it ends
   * with off the free lists, prepared, so that the next call carries it on: truncation frees a
   * file a folio batch (PAGEVEC_SIZE) at a time, and freeing each batch's run alone splits it into
   * small blocks that the next batch merges again. The kernel's per-cpu lists hold freed pages
   * back in the same way. free_unref_flush() closes the window and frees what is pending; buddy
   * merging is canonical, so the free lists end as the batch-by-batch frees leave them. Windows
   * nest. Whatever allocates or reads the free lists frees the pending run first.
   */
  free_unref_defer(): void {
    this.defer_depth++;
  }

  /** Close a free_unref_defer() window; the last one to close frees the pending run. */
  free_unref_flush(): void {
    if (this.defer_depth === 0) BUG('free_unref_flush() without free_unref_defer()');
    if (--this.defer_depth === 0) this.free_unref_flush_run();
  }

  /** Free the run a free_unref_defer() window holds back, if any. */
  private free_unref_flush_run(): void {
    const zone = this.pending_zone;
    if (zone === undefined) return;
    this.pending_zone = undefined;
    this.pending_zone_id = -1;
    this.free_range(zone, this.pending_start, this.pending_end);
    this.pending_end = -1;
  }

  /* Gigantic and contiguous ranges */

  /**
   * alloc_contig_range(): allocate the pfn range [start, end) in one zone. With __GFP_COMP the
   * range must be a naturally aligned power of two and becomes one compound page with refcount 1;
   * without it every page gets its own reference.
   * @returns 0, -EINVAL for bad arguments or gfp flags, -EBUSY when a page of the range is not
   * free and could not be migrated away (contig_migrate), or contig_migrate's -errno.
   */
  alloc_contig_range(start: number, end: number, alloc_flags: number, gfp: gfp_t): number {
    this.free_unref_flush_run();
    if (alloc_flags !== ACR_FLAGS_NONE && alloc_flags !== ACR_FLAGS_CMA) return -Errno.EINVAL;
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start >= end) return -Errno.EINVAL;
    if (!this.store.pfn_valid(start) || !this.store.pfn_valid(end - 1)) return -Errno.EINVAL;
    if (alloc_contig_verify_gfp_mask(gfp) < 0) return -Errno.EINVAL;
    const nr = end - start;
    let order = 0;
    if (gfp & __GFP_COMP) {
      while (2 ** order < nr) order++;
      if (2 ** order !== nr || start % nr !== 0) {
        this.warn.WARN_ON(true, `alloc_contig_range: PFN range [${start}, ${end}) is not an aligned power of two for __GFP_COMP`);
        return -Errno.EINVAL;
      }
    }
    const i = this.store.idx(start);
    let blocks = this.free_blocks_covering(start, end, this.store.node[i], this.store.zone[i]);
    if (blocks === null && this.contig_migrate !== undefined) {
      const ret = this.contig_migrate(start, end, gfp);
      if (ret) return ret;
      /* test_pages_isolated(): every page must be free now */
      blocks = this.free_blocks_covering(start, end, this.store.node[i], this.store.zone[i]);
    }
    if (blocks === null) return -Errno.EBUSY;
    this.take_blocks(blocks, start, end);
    if (gfp & __GFP_COMP) {
      this.prep_new_page(start, order, gfp);
      set_refcounted(this.store, start);
    } else {
      /* split_free_pages(): every page is an order-0 page of its own */
      if (this.want_init_on_alloc(gfp)) this.notify_zero(start, nr);
      this.store._refcount.fill(1, i, i + nr);
    }
    this.notify_alloc(start, nr, gfp);
    return 0;
  }

  /**
   * alloc_contig_pages(): find and allocate nr_pages contiguous pages, aligned to nr_pages, in the
   * zones the gfp mask allows (gfp_zone() and below) starting at node `nid`.
   * @returns the first pfn, or -ENOMEM.
   */
  alloc_contig_pages(nr_pages: number, gfp: gfp_t, nid: number = NUMA_NO_NODE): Pfn {
    if (!Number.isSafeInteger(nr_pages) || nr_pages <= 0) BUG(`alloc_contig_pages: bad nr_pages ${nr_pages}`);
    if (alloc_contig_verify_gfp_mask(gfp) < 0) return -Errno.ENOMEM as Pfn;
    const node = this.node_or_local(nid);
    const highest = gfp_zone(gfp);
    for (const zone of this.zonelists[node][gfp & __GFP_THISNODE ? ZONELIST_NOFALLBACK : ZONELIST_FALLBACK]) {
      if (zone.zone_idx > highest) continue;
      let pfn = Math.ceil(zone.zone_start_pfn / nr_pages) * nr_pages;
      while (zone.zone_spans_pfn(pfn + nr_pages - 1)) {
        /* pfn_range_valid_contig(); without migration, "valid" means "all free in this zone" */
        const valid = this.contig_migrate !== undefined
          ? this.pfn_range_valid_contig(zone, pfn, nr_pages)
          : this.free_blocks_covering(pfn, pfn + nr_pages, zone.nid, zone.zone_idx) !== null;
        if (valid) {
          if (this.alloc_contig_range(pfn, pfn + nr_pages, ACR_FLAGS_NONE, gfp) === 0) return pfn as Pfn;
        }
        pfn += nr_pages;
      }
    }
    this.nr_alloc_failures++;
    return -Errno.ENOMEM as Pfn;
  }

  /**
   * folio_alloc_gigantic() (include/linux/gfp.h): a folio of any order through
   * alloc_contig_pages(); needs __GFP_COMP and order > 0 (WARN otherwise).
   */
  folio_alloc_gigantic(order: number, gfp: gfp_t, nid: number = NUMA_NO_NODE): Pfn {
    if (order === 0 || (gfp & __GFP_COMP) === 0) {
      this.warn.WARN_ON(true, `folio_alloc_gigantic: order ${order} gfp ${format_gfp(gfp)}`);
      return -Errno.ENOMEM as Pfn;
    }
    return this.alloc_contig_pages(2 ** order, gfp, nid);
  }

  /**
   * free_contig_range(): free what alloc_contig_range() gave. A compound range is freed by
   * folio_put() and must be passed whole; otherwise each page is __free_page()d and pages still
   * referenced by someone else are reported.
   */
  free_contig_range(pfn: number, nr_pages: number): void {
    const store = this.store;
    if (folio_test_large(store, pfn)) {
      const expected = folio_nr_pages(store, pfn);
      if (nr_pages === expected) folio_put(store, pfn);
      else this.warn.WARN_ON(true, `PFN ${pfn}: nr_pages ${nr_pages} != expected ${expected}`);
      return;
    }
    let count = 0;
    for (let p = pfn; p < pfn + nr_pages; p++) {
      if (page_count(store, p) !== 1) count++;
      this.__free_page(p);
    }
    if (count !== 0) this.warn.WARN_ON(true, `${count} pages are still in use!`);
  }

  /* Memory failure */

  /** is_free_buddy_page(): the page lies in a free buddy block. */
  is_free_buddy_page(pfn: number): boolean {
    this.free_unref_flush_run();
    return this.find_buddy_head(pfn) >= 0;
  }

  /**
   * take_page_off_buddy(): pull a free page out of the buddy allocator so that it is never handed
   * out again (memory failure on a free page). The rest of its block stays free. The page is left
   * with refcount 0 and marked "taken off" (page->private = MAGIC_HWPOISON).
   * @returns true if the page was free and is now taken off.
   */
  take_page_off_buddy(pfn: number): boolean {
    this.free_unref_flush_run();
    const head = this.find_buddy_head(pfn);
    if (head < 0) return false;
    const store = this.store;
    const zone = this.page_zone(head);
    const order = store.order[store.idx(head)];
    this.del_page_from_free_list(head, zone, order);
    this.break_down_buddy_pages(zone, head, pfn, 0, order);
    this.hwpoison_taken_off.add(pfn);
    return true;
  }

  /**
   * put_page_back_buddy(): undo take_page_off_buddy() when the last reference goes (unpoison).
   * @returns true if the page went back and PG_hwpoison was cleared.
   */
  put_page_back_buddy(pfn: number): boolean {
    this.free_unref_flush_run();
    const store = this.store;
    if (!put_page_testzero(store, pfn)) return false;
    this.ClearPageHWPoisonTakenOff(pfn);
    this.__free_one_page(pfn, this.page_zone(pfn), 0);
    const i = store.idx(pfn);
    const was = (store.flags[i] & (1 << PG_hwpoison)) !== 0;
    store.flags[i] &= ~(1 << PG_hwpoison);
    return was;
  }

  /** PageHWPoisonTakenOff(): PG_hwpoison and page->private == MAGIC_HWPOISON. */
  PageHWPoisonTakenOff(pfn: number): boolean {
    return (this.store.flags[this.store.idx(pfn)] & (1 << PG_hwpoison)) !== 0 && this.hwpoison_taken_off.has(pfn);
  }

  SetPageHWPoisonTakenOff(pfn: number): void {
    this.hwpoison_taken_off.add(pfn);
  }

  ClearPageHWPoisonTakenOff(pfn: number): void {
    if (this.store.flags[this.store.idx(pfn)] & (1 << PG_hwpoison)) this.hwpoison_taken_off.delete(pfn);
  }

  /* Internals */

  private node_or_local(nid: number): number {
    if (nid === NUMA_NO_NODE) return 0;
    if (!Number.isInteger(nid) || nid < 0 || nid >= this.store.nr_node_ids) BUG(`VM_BUG_ON: nid ${nid} not online`);
    return nid;
  }

  /** WARN_ON_ONCE_GFP(): WARN_ON_ONCE unless the caller passed __GFP_NOWARN. */
  private WARN_ON_ONCE_GFP(cond: boolean, gfp: gfp_t, site: string, message: string): boolean {
    if (cond && !(gfp & __GFP_NOWARN)) this.warn.WARN_ON_ONCE(true, site, message);
    return cond;
  }

  private want_init_on_alloc(gfp: gfp_t): boolean {
    return this.init_on_alloc || (gfp & __GFP_ZERO) !== 0;
  }

  private notify_alloc(pfn: number, nr: number, gfp: gfp_t): void {
    for (const l of this.listeners) l.onAlloc?.(pfn as Pfn, nr, gfp);
  }

  private notify_free(pfn: number, nr: number): void {
    for (const l of this.listeners) l.onFree?.(pfn as Pfn, nr);
  }

  /** kernel_init_pages(): the contents module zeroes. */
  private notify_zero(pfn: number, nr: number): void {
    for (const l of this.listeners) l.onZero?.(pfn as Pfn, nr);
  }

  /** The slow path's end: __GFP_NOFAIL may not fail, others report (warn_alloc()) and fail. */
  private alloc_failed(gfp: gfp_t, order: number, nid: number): Pfn {
    this.nr_alloc_failures++;
    if (gfp & __GFP_NOFAIL) {
      BUG(`__GFP_NOFAIL allocation of order ${order} cannot be satisfied: the kernel would retry forever (no reclaim in the simulator)`);
    }
    if (!(gfp & __GFP_NOWARN)) {
      const message = `page allocation failure: order:${order}, mode:${format_gfp(gfp)}, nodemask=(null)`;
      for (const l of this.listeners) l.onAllocFail?.(gfp, order, nid, message);
    }
    return -Errno.ENOMEM as Pfn;
  }

  /** rmqueue() -> __rmqueue_smallest(), retried while check_new_pages() finds a bad page. */
  private rmqueue(zone: Zone, order: number): number {
    for (;;) {
      let pfn = -1;
      let current = order;
      for (; current < NR_PAGE_ORDERS; current++) {
        const area = zone.free_area[current];
        if (area.nr_free === 0) continue;
        pfn = area.first();
        break;
      }
      if (pfn < 0) return -1;
      this.del_page_from_free_list(pfn, zone, current);
      this.expand(zone, pfn, order, current);
      if (!this.check_new_pages(pfn, order)) return pfn;
    }
  }

  /** expand(): split a 2^high block, putting the upper halves back, down to 2^low. */
  private expand(zone: Zone, pfn: number, low: number, high: number): void {
    let size = 1 << high;
    while (high > low) {
      high--;
      size /= 2;
      this.add_to_free_list(pfn + size, zone, high);
    }
  }

  /** break_down_buddy_pages(): split a free block until `target` is an order-`low` block of its own. */
  private break_down_buddy_pages(zone: Zone, pfn: number, target: number, low: number, high: number): void {
    let size = 2 ** high;
    while (high > low) {
      high--;
      size /= 2;
      let current_buddy: number;
      if (target >= pfn + size) {
        current_buddy = pfn;
        pfn = pfn + size;
      } else {
        current_buddy = pfn + size;
      }
      this.add_to_free_list(current_buddy, zone, high);
    }
  }

  /** __add_to_free_list() + set_buddy_order(): `pfn` heads a free block of `order`. */
  private add_to_free_list(pfn: number, zone: Zone, order: number): void {
    const store = this.store;
    const i = pfn - store.base_pfn;
    zone.free_area[order].add(pfn);
    store.order[i] = order;
    store._mapcount[i] = PAGE_TYPE_BUDDY;
    zone.free_pages += 1 << order;
  }

  /** del_page_from_free_list(): remove the block, clear PageBuddy and buddy_order. */
  private del_page_from_free_list(pfn: number, zone: Zone, order: number): void {
    const store = this.store;
    const i = pfn - store.base_pfn;
    zone.free_area[order].del(pfn);
    store.order[i] = 0;
    store._mapcount[i] = -1;
    zone.free_pages -= 1 << order;
  }

  /**
   * page_is_buddy(): `buddy` heads a free block of exactly `order` in the same zone as `pfn`
   * (page_zone_id() compares node and zone).
   */
  private page_is_buddy(pfn: number, buddy: number, order: number): boolean {
    const store = this.store;
    const bi = buddy - store.base_pfn;
    if (bi < 0 || bi >= store.nr_pages) return false;
    if (store._mapcount[bi] >>> 24 !== PGTY_buddy || store.order[bi] !== order) return false;
    const i = pfn - store.base_pfn;
    return store.node[bi] === store.node[i] && store.zone[bi] === store.zone[i];
  }

  /**
   * __free_one_page(): put a block back, merging with its buddy while possible. The buddy of the
   * block at pfn is pfn ^ 2^order: bit `order` of the pfn (order < 32) says which way it lies.
   */
  private __free_one_page(pfn: number, zone: Zone, order: number): void {
    while (order < MAX_PAGE_ORDER) {
      const size = 1 << order;
      const buddy = (low_bits(pfn) & size) === 0 ? pfn + size : pfn - size;
      if (!this.page_is_buddy(pfn, buddy, order)) break;
      this.del_page_from_free_list(buddy, zone, order);
      if (buddy < pfn) pfn = buddy;
      order++;
    }
    this.add_to_free_list(pfn, zone, order);
  }

  /** free_one_page() -> split_large_buddy(): blocks above pageblock_order go back per pageblock. */
  private free_one_page(zone: Zone, pfn: number, order: number): void {
    if (order <= pageblock_order) {
      this.__free_one_page(pfn, zone, order);
      return;
    }
    const end = pfn + 2 ** order;
    for (let p = pfn; p < end; p += pageblock_nr_pages) this.__free_one_page(p, zone, pageblock_order);
  }

  /** Hand [start, end) of one zone to the buddy allocator in maximal aligned blocks. */
  private free_range(zone: Zone, start: number, end: number): void {
    let pfn = start;
    while (pfn < end) {
      /* the pfn's alignment, at most MAX_PAGE_ORDER, then no further than end */
      const low = low_bits(pfn) & (MAX_ORDER_NR_PAGES - 1);
      let order = low === 0 ? MAX_PAGE_ORDER : 31 - Math.clz32(low & -low);
      while (pfn + ORDER_NR_PAGES[order] > end) order--;
      this.__free_one_page(pfn, zone, order);
      pfn += ORDER_NR_PAGES[order];
    }
  }

  /**
   * memblock_free_all(): every page not reserved goes to the buddy allocator
   * (__free_pages_core(): PG_reserved cleared, refcount 0).
   */
  private memblock_free_all(): void {
    const store = this.store;
    for (const seg of store.segments) {
      const zone = this.zone(seg.nid, seg.zone_idx)!;
      let pfn = seg.start_pfn;
      for (const r of store.reserved) {
        const rend = r.start_pfn + r.nr_pages;
        if (rend <= pfn || r.start_pfn >= seg.end_pfn) continue;
        if (r.start_pfn > pfn) this.free_boot_range(zone, pfn, r.start_pfn);
        pfn = Math.max(pfn, rend);
      }
      if (pfn < seg.end_pfn) this.free_boot_range(zone, pfn, seg.end_pfn);
    }
  }

  private free_boot_range(zone: Zone, start: number, end: number): void {
    const store = this.store;
    const a = start - store.base_pfn;
    const b = end - store.base_pfn;
    store.flags.fill(0, a, b);
    store._refcount.fill(0, a, b);
    zone.managed_pages += end - start;
    this.free_range(zone, start, end);
  }

  /** The head of the free buddy block containing pfn, or -1 (the loop of is_free_buddy_page()). */
  private find_buddy_head(pfn: number): number {
    const store = this.store;
    store.idx(pfn);
    for (let order = 0; order < NR_PAGE_ORDERS; order++) {
      const head = pfn - (pfn % 2 ** order);
      const hi = head - store.base_pfn;
      if (hi < 0) break;
      if (store._mapcount[hi] >>> 24 === PGTY_buddy && store.order[hi] >= order) return head;
      if (store._refcount[hi] > 0) break;
    }
    return -1;
  }

  /**
   * pfn_range_valid_contig(): every page of [start, start + nr) is in `zone`, not reserved and
   * not part of a hugetlb folio (free blocks and folios are skipped whole).
   */
  private pfn_range_valid_contig(zone: Zone, start: number, nr: number): boolean {
    const store = this.store;
    const end = start + nr;
    for (let pfn = start; pfn < end; ) {
      if (!store.pfn_valid(pfn)) return false;
      const i = pfn - store.base_pfn;
      if (store.node[i] !== zone.nid || store.zone[i] !== zone.zone_idx) return false;
      if (store._mapcount[i] >>> 24 === PGTY_buddy) {
        pfn += 2 ** store.order[i];
        continue;
      }
      if (store.flags[i] & (1 << PG_reserved)) return false;
      const head = i - store.head_offset[i];
      if (store.flags[head] & (1 << PG_head)) {
        if (folio_test_hugetlb(store, store.base_pfn + head)) return false;
        pfn = store.base_pfn + head + 2 ** store.order[head];
        continue;
      }
      pfn++;
    }
    return true;
  }

  /** The free blocks exactly covering [start, end) in one zone, or null if a page is not free. */
  private free_blocks_covering(start: number, end: number, nid: number, zone_idx: number): number[] | null {
    const store = this.store;
    const blocks: number[] = [];
    let pfn = start;
    while (pfn < end) {
      if (!store.pfn_valid(pfn)) return null;
      const head = this.find_buddy_head(pfn);
      if (head < 0) return null;
      const hi = head - store.base_pfn;
      if (store.node[hi] !== nid || store.zone[hi] !== zone_idx) return null;
      blocks.push(head);
      pfn = head + 2 ** store.order[hi];
    }
    return blocks;
  }

  /** Take whole free blocks off the lists and give back their parts outside [start, end). */
  private take_blocks(blocks: readonly number[], start: number, end: number): void {
    const store = this.store;
    const spans: [number, number][] = [];
    for (const head of blocks) {
      const order = store.order[head - store.base_pfn];
      this.del_page_from_free_list(head, this.page_zone(head), order);
      spans.push([head, head + 2 ** order]);
    }
    for (const [a, b] of spans) {
      if (a < start) this.free_range(this.page_zone(a), a, start);
      if (b > end) this.free_range(this.page_zone(end), end, b);
    }
  }

  /** prep_new_page(): post_alloc_hook() and, for __GFP_COMP, prep_compound_page(). */
  private prep_new_page(pfn: number, order: number, gfp: gfp_t): void {
    /* post_alloc_hook(): set_page_private(page, 0) is the buddy order, already cleared */
    if (this.want_init_on_alloc(gfp)) this.notify_zero(pfn, 1 << order);
    if (order && gfp & __GFP_COMP) prep_compound_page(this.store, pfn, order);
  }

  /**
   * check_new_pages(): a page leaving the allocator must be pristine. A poisoned page is skipped
   * silently; anything else is bad_page(). Either way the block is not handed out.
   * @returns true if the block is bad.
   */
  private check_new_pages(pfn: number, order: number): boolean {
    const store = this.store;
    const i0 = pfn - store.base_pfn;
    for (let i = i0, end = i0 + (1 << order); i < end; i++) {
      if (page_expected_state(store, i, PAGE_FLAGS_CHECK_AT_PREP)) continue;
      if (store.flags[i] & (1 << PG_hwpoison)) return true;
      this.bad_page(store.base_pfn + i, page_bad_reason(store, i, PAGE_FLAGS_CHECK_AT_PREP));
      return true;
    }
    return false;
  }

  /**
   * free_pages_prepare(): the checks and clean-up before a block goes back. A poisoned order-0
   * page is kept out of the allocator. A bad page anywhere in the block leaks the whole block.
   * @returns true if the block may be freed.
   */
  private free_pages_prepare(pfn: number, i: number, order: number): boolean {
    const store = this.store;
    const flags = store.flags;
    if (store.head_offset[i] !== 0) BUG(`VM_BUG_ON_PAGE: freeing tail page 0x${pfn.toString(16)}`);
    if (order === 0 && this.free_small_page_prepare(i)) return true;
    const compound = (flags[i] & (1 << PG_head)) !== 0;
    /* A truncation or hole punch that raced with munlock may leave PG_mlocked: just clear it. */
    flags[i] &= ~(1 << PG_mlocked);
    if (flags[i] & (1 << PG_hwpoison) && order === 0) {
      /* Do not let hwpoison pages hit pcplists/buddy */
      if (store.owners_set) store.owner[i] = 0;
      return false;
    }
    if (compound && store.order[i] !== order) BUG(`VM_BUG_ON_PAGE: free of order-${store.order[i]} compound page as order ${order}`);
    let bad = 0;
    const nr = 1 << order;
    if (order) {
      if (compound) flags[i + 1] &= ~PAGE_FLAGS_SECOND;
      for (let j = 1; j < nr; j++) {
        if (compound) bad += this.free_tail_page_prepare(i, i + j);
        if (this.free_page_is_bad(i + j)) {
          bad++;
          continue;
        }
        flags[i + j] &= ~PAGE_FLAGS_CHECK_AT_PREP;
      }
    }
    if (store.mapping[i] & FOLIO_MAPPING_ANON) store.mapping[i] = 0;
    /* Reset the page_type (which overlays _mapcount) */
    if (page_type_has_type(store._mapcount[i])) store._mapcount[i] = -1;
    if (this.free_page_is_bad(i)) bad++;
    if (bad) return false;
    flags[i] &= ~PAGE_FLAGS_CHECK_AT_PREP;
    store.order[i] = 0;
    if (store.owners_set) store.owner.fill(0, i, i + nr);
    if (this.init_on_free) this.notify_zero(pfn, nr);
    return true;
  }

  /**
   * The common case of free_pages_prepare(), its steps in one test: a small page (array index i)
   * that is not poisoned, whose page_type is unset and which is in the state page_expected_state()
   * wants once an anon mapping is cleared and PG_mlocked dropped, without init_on_free. Such a
   * page is prepared (true); any other is left untouched for the full path (false).
   */
  private free_small_page_prepare(i: number): boolean {
    if (this.init_on_free) return false;
    const store = this.store;
    const f = store.flags[i] & ~(1 << PG_mlocked);
    const m = store.mapping[i];
    if (
      (f & (PAGE_FLAGS_CHECK_AT_FREE | (1 << PG_head) | (1 << PG_hwpoison))) !== 0 || store._mapcount[i] !== -1 ||
      store._refcount[i] !== 0 || store.head_offset[i] !== 0 || (m !== 0 && (m & FOLIO_MAPPING_ANON) === 0)
    ) {
      return false;
    }
    store.mapping[i] = 0;
    store.flags[i] = f & ~PAGE_FLAGS_CHECK_AT_PREP;
    store.order[i] = 0;
    if (store.owners_set) store.owner[i] = 0;
    return true;
  }

  /** free_tail_page_prepare(): a tail page of a compound block being freed. @returns 1 if bad. */
  private free_tail_page_prepare(hi: number, i: number): number {
    const store = this.store;
    let reason: string | undefined;
    switch (i - hi) {
      case 1:
        /* the first tail page: these may be in place of ->mapping */
        if (store._large_mapcount[hi] + 1 !== 0) reason = 'nonzero large_mapcount';
        else if (store._nr_pages_mapped[hi] !== 0) reason = 'nonzero nr_pages_mapped';
        else if (store._entire_mapcount[hi] + 1 !== 0) reason = 'nonzero entire_mapcount';
        else if (store._pincount[hi] !== 0) reason = 'nonzero pincount';
        break;
      case 2:
        /* the second tail page: ->mapping is deferred_list.next -- ignore value. */
        break;
      default:
        if (store.mapping[i] !== 0) reason = 'corrupted mapping in tail page';
        break;
    }
    if (reason === undefined) {
      if (store.head_offset[i] === 0) reason = 'PageTail not set';
      else if (i - store.head_offset[i] !== hi) reason = 'compound_head not consistent';
    }
    if (reason !== undefined) this.bad_page(store.base_pfn + i, reason);
    store.mapping[i] = 0;
    store.head_offset[i] = 0;
    return reason === undefined ? 0 : 1;
  }

  /** free_page_is_bad(): page_expected_state() at free, with bad_page() on failure. */
  private free_page_is_bad(i: number): boolean {
    if (page_expected_state(this.store, i, PAGE_FLAGS_CHECK_AT_FREE)) return false;
    this.bad_page(this.store.base_pfn + i, page_bad_reason(this.store, i, PAGE_FLAGS_CHECK_AT_FREE));
    return true;
  }

  /**
   * bad_page(): "BUG: Bad page state". The kernel prints, taints and carries on with the page
   * leaked; the simulator records the report in the host's WarnSink (tests fail on it unless they
   * expect it).
   */
  private bad_page(pfn: number, reason: string): void {
    const store = this.store;
    const hex = pfn.toString(16).padStart(5, '0');
    store.warn.record('bad_page', `BUG: Bad page state  pfn:${hex}\n${dump_page(store, pfn)}\npage dumped because: ${reason}`);
    this.tainted_bad_page = true;
    /* Leave bad fields for debug, except PageBuddy could make trouble */
    const i = store.idx(pfn);
    if (store._mapcount[i] >>> 24 === PGTY_buddy) store._mapcount[i] = -1;
  }
}

/**
 * page_expected_state(): nothing maps, references or owns the page (array index i), and none of
 * `check_flags` is set.
 */
function page_expected_state(store: PageStore, i: number, check_flags: number): boolean {
  return store._mapcount[i] === -1 && store.mapping[i] === 0 && store._refcount[i] === 0 && (store.flags[i] & check_flags) === 0;
}

/** page_bad_reason(): the last matching reason wins, as in the kernel. */
function page_bad_reason(store: PageStore, i: number, flags: number): string {
  let reason = 'unknown';
  if (store._mapcount[i] !== -1) reason = 'nonzero mapcount';
  if (store.mapping[i] !== 0) reason = 'non-NULL mapping';
  if (store._refcount[i] !== 0) reason = 'nonzero _refcount';
  if (store.flags[i] & flags) {
    reason = flags === PAGE_FLAGS_CHECK_AT_PREP ? 'PAGE_FLAGS_CHECK_AT_PREP flag(s) set' : 'PAGE_FLAGS_CHECK_AT_FREE flag(s) set';
  }
  return reason;
}

/**
 * __alloc_contig_verify_gfp_mask(): placement hints are ignored; beyond them only the reclaim
 * flags and a few action flags are allowed.
 */
function alloc_contig_verify_gfp_mask(gfp: gfp_t): number {
  const reclaim_mask = __GFP_IO | __GFP_FS | __GFP_RECLAIM;
  const action_mask = __GFP_COMP | __GFP_RETRY_MAYFAIL | __GFP_NOWARN | __GFP_ZERO | __GFP_ZEROTAGS | __GFP_SKIP_ZERO;
  if (!Number.isInteger(gfp) || gfp < 0) return -Errno.EINVAL;
  gfp &= ~(GFP_ZONEMASK | __GFP_RECLAIMABLE | __GFP_WRITE | __GFP_HARDWALL | __GFP_THISNODE | __GFP_MOVABLE);
  if (gfp & ~(reclaim_mask | action_mask)) return -Errno.EINVAL;
  return 0;
}

/** folio_order() of the folio at array index i. */
function folio_order_of(store: PageStore, i: number): number {
  return store.flags[i] & (1 << PG_head) ? store.order[i] : 0;
}

function isCompound(store: PageStore, pfn: number): boolean {
  const i = store.idx(pfn);
  return (store.flags[i] & (1 << PG_head)) !== 0 || store.head_offset[i] !== 0;
}

function set_refcounted(store: PageStore, pfn: number): void {
  store._refcount[store.idx(pfn)] = 1;
}

/**
 * prep_compound_tail() (mm/internal.h): page `tail_idx` of the compound page at `head`. The
 * kernel's TAIL_MAPPING poison is 0 here.
 */
export function prep_compound_tail(store: PageStore, head: number, tail_idx: number): void {
  const i = store.idx(head + tail_idx);
  store.mapping[i] = 0;
  store.head_offset[i] = tail_idx;
}

/** prep_compound_head() (mm/internal.h): folio_set_order() and the large-folio counters. */
export function prep_compound_head(store: PageStore, head: number, order: number): void {
  const i = store.idx(head);
  store.order[i] = order;
  store._large_mapcount[i] = -1;
  store._entire_mapcount[i] = -1;
  store._nr_pages_mapped[i] = 0;
  store._pincount[i] = 0;
}

/** prep_compound_page() (mm/page_alloc.c): make 2^order pages at `head` one compound page. */
export function prep_compound_page(store: PageStore, head: number, order: number): void {
  if (order < 1) BUG(`prep_compound_page: order ${order}`);
  const nr = 2 ** order;
  store.idx(head + nr - 1);
  store.flags[store.idx(head)] |= 1 << PG_head;
  for (let t = 1; t < nr; t++) prep_compound_tail(store, head, t);
  prep_compound_head(store, head, order);
}
