/**
 * Folios: references, mapcounts, pins and the folio lock (include/linux/mm.h,
 * include/linux/page_ref.h, include/linux/mm_types.h, mm/gup.c, mm/swap.c; Linux 6.18).
 *
 * A folio is its head pfn (`Folio`); a page is any pfn. Every function takes the host's PageStore
 * first, because the simulator's struct pages live there. The rules are the kernel's:
 *
 * - A folio's references live in the head's _refcount. Tail pages keep 0.
 * - _mapcount, _large_mapcount and _entire_mapcount are -1 based; the readers add one.
 * - FOLL_PIN on an order-0 folio adds GUP_PIN_COUNTING_BIAS (1024) to _refcount, so
 *   folio_maybe_dma_pinned() may give a false positive once a page has 1024 plain references. On
 *   a large folio it adds 1 to _refcount and 1 to _pincount per pin, which is exact.
 * - The last folio_put() frees the folio: hugetlb folios through store.free_huge_folio (the hugetlb
 *   pool), everything else through the page allocator (store.page_alloc).
 *
 * Where the kernel only has VM_BUG_ON (a put of a folio with no references, an unlock of an
 * unlocked folio), the simulator throws KernelBug; a reference count that would go negative is
 * treated the same way, because no kernel path does that on purpose.
 */
import { BUG, BUG_ON, Errno, PAGE_SHIFT, PAGE_SIZE, type Pfn } from '@cocosim/core';
import {
  PG_head,
  PG_locked,
  compound_head,
  folio_clear_reclaim,
  folio_test_dirty,
  folio_test_hugetlb,
  folio_test_large,
  folio_test_locked,
  folio_test_reclaim,
  folio_test_set_dirty,
  folio_test_slab,
  folio_test_swapcache,
  format_page_flags,
  page_mapcount_is_type,
  page_type,
  page_type_has_type,
} from './page-flags.js';
import { ZONE_MOVABLE, is_zero_pfn, type PageStore } from './page_store.js';
import { lru_release_idx } from './mm_inline.js';

/** struct folio *: the head pfn of a folio. */
export type Folio = Pfn;

/* FOLL_* flags (include/linux/mm_types.h), for try_grab_folio() and GUP. */
/** check pte is writable */
export const FOLL_WRITE = 1 << 0;
/** do get_page on page */
export const FOLL_GET = 1 << 1;
/** give error on hole if it would be zero */
export const FOLL_DUMP = 1 << 2;
/** get_user_pages read/write w/o permission */
export const FOLL_FORCE = 1 << 3;
/** if a disk transfer is needed, start the IO and return without waiting upon it */
export const FOLL_NOWAIT = 1 << 4;
/** do not fault in pages */
export const FOLL_NOFAULT = 1 << 5;
/** check page is hwpoisoned */
export const FOLL_HWPOISON = 1 << 6;
/** don't do file mappings */
export const FOLL_ANON = 1 << 7;
/** the page will be held for an indefinite time period _often_ under userspace control */
export const FOLL_LONGTERM = 1 << 8;
/** split huge pmd before returning */
export const FOLL_SPLIT_PMD = 1 << 9;
/** allow returning PCI P2PDMA pages */
export const FOLL_PCI_P2PDMA = 1 << 10;
/** allow interrupts from generic signals */
export const FOLL_INTERRUPTIBLE = 1 << 11;
/** Always honor (trigger) NUMA hinting faults. */
export const FOLL_HONOR_NUMA_FAULT = 1 << 12;
/* Internal FOLL flags (mm/internal.h) */
/** mark page accessed */
export const FOLL_TOUCH = 1 << 16;
/** a retry, previous pass started an IO */
export const FOLL_TRIED = 1 << 17;
/** we are working on non-current tsk/mm */
export const FOLL_REMOTE = 1 << 18;
/** pages must be released via unpin_user_page */
export const FOLL_PIN = 1 << 19;
/** gup_fast: prevent fall-back to slow gup */
export const FOLL_FAST_ONLY = 1 << 20;
/** allow unlocking the mmap lock */
export const FOLL_UNLOCKABLE = 1 << 21;
/** VMA lookup+checks compatible with MADV_POPULATE_(READ|WRITE) */
export const FOLL_MADV_POPULATE = 1 << 22;

/**
 * GUP_PIN_COUNTING_BIAS (include/linux/mm.h): what one FOLL_PIN adds to an order-0 folio's
 * _refcount. "Only" 10 bits, so that a pinned page is still distinguishable after the refcount
 * has grown by 2^21 ordinary references.
 */
export const GUP_PIN_COUNTING_BIAS = 1 << 10;

/* folio->mapping tags (include/linux/page-flags.h) */
export const FOLIO_MAPPING_ANON = 0x1;
export const FOLIO_MAPPING_ANON_KSM = 0x2;
export const FOLIO_MAPPING_KSM = FOLIO_MAPPING_ANON | FOLIO_MAPPING_ANON_KSM;
export const FOLIO_MAPPING_FLAGS = FOLIO_MAPPING_ANON | FOLIO_MAPPING_ANON_KSM;

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/* Page and folio geometry (include/linux/mm.h) */

/** page_folio(): the folio containing `page`. */
export function page_folio(store: PageStore, page: number): Folio {
  return compound_head(store, page) as Folio;
}

/** pfn_folio(). */
export function pfn_folio(store: PageStore, pfn: number): Folio {
  return page_folio(store, pfn);
}

/** folio_pfn(): the head page's pfn. */
export function folio_pfn(store: PageStore, folio: number): Pfn {
  store.idx(folio);
  return folio as Pfn;
}

/** folio_page(): page n of the folio (not checked against the folio's size, as in the kernel). */
export function folio_page(store: PageStore, folio: number, n: number): Pfn {
  return folio_pfn(store, folio + n);
}

/** folio_page_idx(): the index of `page` within `folio`. */
export function folio_page_idx(_store: PageStore, folio: number, page: number): number {
  return page - folio;
}

/** folio_order(): log2 of the number of pages. */
export function folio_order(store: PageStore, folio: number): number {
  if (!folio_test_large(store, folio)) return 0;
  return store.order[store.idx(folio)];
}

/** folio_nr_pages(). */
export function folio_nr_pages(store: PageStore, folio: number): number {
  return 2 ** folio_order(store, folio);
}

/** folio_size(): bytes. */
export function folio_size(store: PageStore, folio: number): number {
  return PAGE_SIZE * folio_nr_pages(store, folio);
}

/** folio_shift(). */
export function folio_shift(store: PageStore, folio: number): number {
  return PAGE_SHIFT + folio_order(store, folio);
}

/** folio_next(): the pfn just after the folio. */
export function folio_next(store: PageStore, folio: number): Pfn {
  return (folio + folio_nr_pages(store, folio)) as Pfn;
}

/** compound_order(): the order of a compound head, 0 for any other page. */
export function compound_order(store: PageStore, page: number): number {
  const i = store.idx(page);
  return store.flags[i] & (1 << PG_head) ? store.order[i] : 0;
}

/** compound_nr(). */
export function compound_nr(store: PageStore, page: number): number {
  return 2 ** compound_order(store, page);
}

/** folio_nid(). */
export function folio_nid(store: PageStore, folio: number): number {
  return store.node[store.idx(folio)];
}

/** folio_zonenum(). */
export function folio_zonenum(store: PageStore, folio: number): number {
  return store.zone[store.idx(folio)];
}

/** folio_is_zone_movable(): long-term pins must not stay in ZONE_MOVABLE (GUP migrates them). */
export function folio_is_zone_movable(store: PageStore, folio: number): boolean {
  return folio_zonenum(store, folio) === ZONE_MOVABLE;
}

/** is_zero_folio(): the shared zero page. */
export function is_zero_folio(store: PageStore, folio: number): boolean {
  return is_zero_pfn(store, folio);
}

/* References (include/linux/page_ref.h). Tail pages read 0, as in the kernel. */

function ref_sub(store: PageStore, page: number, nr: number): number {
  const i = store.idx(page);
  const v = store._refcount[i] - nr;
  if (v < 0 && store._refcount[i] >= 0) BUG(`page ${hex(page)}: _refcount underflow (${store._refcount[i]} - ${nr})`);
  store._refcount[i] = v;
  return store._refcount[i];
}

function ref_add(store: PageStore, page: number, nr: number): number {
  const i = store.idx(page);
  store._refcount[i] += nr;
  return store._refcount[i];
}

/** page_ref_count(). */
export function page_ref_count(store: PageStore, page: number): number {
  return store._refcount[store.idx(page)];
}

/** page_count(): the references of the page's folio. */
export function page_count(store: PageStore, page: number): number {
  return folio_ref_count(store, page_folio(store, page));
}

/** set_page_count(). */
export function set_page_count(store: PageStore, page: number, v: number): void {
  store._refcount[store.idx(page)] = v;
}

/** init_page_count(): a fresh page has one reference. */
export function init_page_count(store: PageStore, page: number): void {
  set_page_count(store, page, 1);
}

/** set_page_refcounted() (mm/internal.h): a frozen page gets its first reference. */
export function set_page_refcounted(store: PageStore, page: number): void {
  if (PageTailRaw(store, page)) BUG(`VM_BUG_ON_PAGE: set_page_refcounted on tail ${hex(page)}`);
  if (page_ref_count(store, page) !== 0) BUG(`VM_BUG_ON_PAGE: set_page_refcounted on referenced ${hex(page)}`);
  set_page_count(store, page, 1);
}

function PageTailRaw(store: PageStore, page: number): boolean {
  return store.head_offset[store.idx(page)] !== 0;
}

export function page_ref_add(store: PageStore, page: number, nr: number): void {
  ref_add(store, page, nr);
}
export function page_ref_sub(store: PageStore, page: number, nr: number): void {
  ref_sub(store, page, nr);
}
export function page_ref_inc(store: PageStore, page: number): void {
  ref_add(store, page, 1);
}
export function page_ref_dec(store: PageStore, page: number): void {
  ref_sub(store, page, 1);
}
export function page_ref_sub_return(store: PageStore, page: number, nr: number): number {
  return ref_sub(store, page, nr);
}
export function page_ref_sub_and_test(store: PageStore, page: number, nr: number): boolean {
  return ref_sub(store, page, nr) === 0;
}
export function page_ref_inc_return(store: PageStore, page: number): number {
  return ref_add(store, page, 1);
}
export function page_ref_dec_and_test(store: PageStore, page: number): boolean {
  return ref_sub(store, page, 1) === 0;
}
export function page_ref_dec_return(store: PageStore, page: number): number {
  return ref_sub(store, page, 1);
}

/** page_ref_add_unless(): add nr unless the count is u; true if added. */
export function page_ref_add_unless(store: PageStore, page: number, nr: number, u: number): boolean {
  if (page_ref_count(store, page) === u) return false;
  ref_add(store, page, nr);
  return true;
}

/** page_ref_freeze(): set the count to 0 if it is exactly `count`. */
export function page_ref_freeze(store: PageStore, page: number, count: number): boolean {
  const i = store.idx(page);
  if (store._refcount[i] !== count) return false;
  store._refcount[i] = 0;
  return true;
}

/** page_ref_unfreeze(): give a frozen page `count` references back. */
export function page_ref_unfreeze(store: PageStore, page: number, count: number): void {
  if (page_ref_count(store, page) !== 0) BUG(`VM_BUG_ON_PAGE: page_ref_unfreeze of unfrozen ${hex(page)}`);
  BUG_ON(count === 0, 'VM_BUG_ON: page_ref_unfreeze(0)');
  set_page_count(store, page, count);
}

export function folio_ref_count(store: PageStore, folio: number): number {
  return page_ref_count(store, folio);
}
export function folio_set_count(store: PageStore, folio: number, v: number): void {
  set_page_count(store, folio, v);
}
export function folio_ref_add(store: PageStore, folio: number, nr: number): void {
  ref_add(store, folio, nr);
}
export function folio_ref_sub(store: PageStore, folio: number, nr: number): void {
  ref_sub(store, folio, nr);
}
export function folio_ref_sub_return(store: PageStore, folio: number, nr: number): number {
  return ref_sub(store, folio, nr);
}
export function folio_ref_inc(store: PageStore, folio: number): void {
  ref_add(store, folio, 1);
}
export function folio_ref_dec(store: PageStore, folio: number): void {
  ref_sub(store, folio, 1);
}
export function folio_ref_sub_and_test(store: PageStore, folio: number, nr: number): boolean {
  return ref_sub(store, folio, nr) === 0;
}
export function folio_ref_inc_return(store: PageStore, folio: number): number {
  return ref_add(store, folio, 1);
}
export function folio_ref_dec_and_test(store: PageStore, folio: number): boolean {
  return ref_sub(store, folio, 1) === 0;
}
export function folio_ref_dec_return(store: PageStore, folio: number): number {
  return ref_sub(store, folio, 1);
}
export function folio_ref_add_unless(store: PageStore, folio: number, nr: number, u: number): boolean {
  return page_ref_add_unless(store, folio, nr, u);
}
/** folio_try_get(): take a reference unless the folio is frozen or free (count 0). */
export function folio_try_get(store: PageStore, folio: number): boolean {
  return folio_ref_add_unless(store, folio, 1, 0);
}
/** folio_ref_try_add(): add `count` references unless the count is 0. */
export function folio_ref_try_add(store: PageStore, folio: number, count: number): boolean {
  return folio_ref_add_unless(store, folio, count, 0);
}
export function folio_ref_freeze(store: PageStore, folio: number, count: number): boolean {
  return page_ref_freeze(store, folio, count);
}
export function folio_ref_unfreeze(store: PageStore, folio: number, count: number): void {
  page_ref_unfreeze(store, folio, count);
}

/** folio_ref_zero_or_close_to_overflow(): the count is 0 or within 127 of wrapping. */
export function folio_ref_zero_or_close_to_overflow(store: PageStore, folio: number): boolean {
  return ((folio_ref_count(store, folio) + 127) >>> 0) <= 127;
}

/** folio_get(): take a reference on a folio the caller already holds one on. */
export function folio_get(store: PageStore, folio: number): void {
  if (folio_ref_zero_or_close_to_overflow(store, folio)) BUG(`VM_BUG_ON_FOLIO: folio_get on ${hex(folio)} with refcount ${folio_ref_count(store, folio)}`);
  folio_ref_inc(store, folio);
}

/** get_page(). */
export function get_page(store: PageStore, page: number): void {
  folio_get(store, page_folio(store, page));
}

/** try_get_page(): as get_page() but fails (false) when the count is not positive. */
export function try_get_page(store: PageStore, page: number): boolean {
  const folio = page_folio(store, page);
  if (store.warn.WARN_ON_ONCE(folio_ref_count(store, folio) <= 0, 'try_get_page')) return false;
  folio_ref_inc(store, folio);
  return true;
}

/** folio_put_testzero(): drop a reference; true if it was the last. */
export function folio_put_testzero(store: PageStore, folio: number): boolean {
  if (folio_ref_count(store, folio) === 0) BUG(`VM_BUG_ON_FOLIO: folio_put on ${hex(folio)} with refcount 0`);
  return folio_ref_dec_and_test(store, folio);
}

/** put_page_testzero(). */
export function put_page_testzero(store: PageStore, page: number): boolean {
  if (page_ref_count(store, page) === 0) BUG(`VM_BUG_ON_PAGE: put_page_testzero on ${hex(page)} with refcount 0`);
  return page_ref_dec_and_test(store, page);
}

/**
 * __folio_put() (mm/swap.c): the last reference is gone. A hugetlb folio goes back to its pool;
 * any other folio leaves the LRU (page_cache_release()) and is freed.
 */
export function __folio_put(store: PageStore, folio: number): void {
  if (folio_test_hugetlb(store, folio)) {
    if (store.free_huge_folio === undefined) BUG(`__folio_put: hugetlb folio ${hex(folio)} but no hugetlb pool`);
    store.free_huge_folio!(folio as Folio);
    return;
  }
  /* __page_cache_release(): lruvec_del_folio() then __folio_clear_lru_flags() */
  lru_release_idx(store, store.idx(folio));
  if (store.page_alloc === undefined) BUG(`__folio_put: folio ${hex(folio)} but no page allocator`);
  store.page_alloc!.free_frozen_pages(folio, folio_order(store, folio));
}

/** folio_put(): drop a reference; the last one frees the folio. */
export function folio_put(store: PageStore, folio: number): void {
  if (folio_put_testzero(store, folio)) __folio_put(store, folio);
}

/** folio_put_refs(): drop `refs` references at once. */
export function folio_put_refs(store: PageStore, folio: number, refs: number): void {
  if (folio_ref_sub_and_test(store, folio, refs)) __folio_put(store, folio);
}

/** put_page(). */
export function put_page(store: PageStore, page: number): void {
  folio_put(store, page_folio(store, page));
}

/* Mapcounts (include/linux/mm.h, mm/internal.h). */

/** folio_entire_mapcount(): PMD/PUD mappings of the whole large folio. */
export function folio_entire_mapcount(store: PageStore, folio: number): number {
  if (!folio_test_large(store, folio)) BUG(`VM_BUG_ON_FOLIO: folio_entire_mapcount of small folio ${hex(folio)}`);
  return store._entire_mapcount[store.idx(folio)] + 1;
}

/** folio_large_mapcount(): all mappings of all pages of a large folio. */
export function folio_large_mapcount(store: PageStore, folio: number): number {
  if (!folio_test_large(store, folio)) BUG(`VM_BUG_ON_FOLIO: folio_large_mapcount of small folio ${hex(folio)}`);
  return store._large_mapcount[store.idx(folio)] + 1;
}

/**
 * folio_mapcount(): the number of page-table mappings of the folio. A PMD mapping of a 2 MiB folio
 * counts once; mapping each of its 512 pages by PTE counts 512 times.
 */
export function folio_mapcount(store: PageStore, folio: number): number {
  if (!folio_test_large(store, folio)) {
    const mapcount = store._mapcount[store.idx(folio)] + 1;
    return page_mapcount_is_type(mapcount) ? 0 : mapcount;
  }
  return folio_large_mapcount(store, folio);
}

/** folio_mapped(): any page of the folio is mapped into user space. */
export function folio_mapped(store: PageStore, folio: number): boolean {
  return folio_mapcount(store, folio) >= 1;
}

/** page_mapped(). */
export function page_mapped(store: PageStore, page: number): boolean {
  return folio_mapped(store, page_folio(store, page));
}

/**
 * folio_precise_page_mapcount() (mm/internal.h, CONFIG_PAGE_MAPCOUNT): how often this page is
 * mapped: its own PTE mappings plus the PMD/PUD mappings of its whole folio.
 */
export function folio_precise_page_mapcount(store: PageStore, folio: number, page: number): number {
  let mapcount = store._mapcount[store.idx(page)] + 1;
  if (page_mapcount_is_type(mapcount)) mapcount = 0;
  if (folio_test_large(store, folio)) mapcount += folio_entire_mapcount(store, folio);
  return mapcount;
}

/* Pins (include/linux/mm.h, mm/gup.c). */

/** folio_has_pincount(): on 64-bit every large folio has a _pincount. */
export function folio_has_pincount(store: PageStore, folio: number): boolean {
  return folio_test_large(store, folio);
}

/**
 * folio_maybe_dma_pinned(): report if a folio may be pinned for DMA. For large folios the answer
 * is exact (_pincount). For small folios false is exact and true may be a false positive: a page
 * with GUP_PIN_COUNTING_BIAS ordinary references looks pinned. The u32 comparison keeps the
 * answer right when the refcount has overflowed into the sign bit.
 */
export function folio_maybe_dma_pinned(store: PageStore, folio: number): boolean {
  if (folio_has_pincount(store, folio)) return store._pincount[store.idx(folio)] > 0;
  return folio_ref_count(store, folio) >>> 0 >= GUP_PIN_COUNTING_BIAS;
}

/** page_maybe_dma_pinned(). */
export function page_maybe_dma_pinned(store: PageStore, page: number): boolean {
  return folio_maybe_dma_pinned(store, page_folio(store, page));
}

/** folio_pincount(): simulator accessor for a large folio's exact pin count. */
export function folio_pincount(store: PageStore, folio: number): number {
  return store._pincount[store.idx(folio)];
}

/**
 * try_grab_folio() (mm/gup.c): add a folio's refcount by a flag-dependent amount. The caller
 * holds a stable reference.
 *
 * - FOLL_GET: refcount += refs.
 * - FOLL_PIN on a large folio: refcount += refs and _pincount += refs.
 * - FOLL_PIN on an order-0 folio: refcount += refs * GUP_PIN_COUNTING_BIAS.
 * - The zero page is never pinned (it is not going anywhere); neither flag: nothing.
 *
 * @returns 0, or -ENOMEM when the folio has no reference to grab (WARN_ON_ONCE). The simulator has
 * no PCI P2PDMA memory, so the -EREMOTEIO case never arises.
 */
export function try_grab_folio(store: PageStore, folio: number, refs: number, flags: number): number {
  if (folio_ref_count(store, folio) <= 0) {
    store.warn.WARN_ON_ONCE(true, 'try_grab_folio', `try_grab_folio: folio ${hex(folio)} refcount ${folio_ref_count(store, folio)}`);
    return -Errno.ENOMEM;
  }
  if (flags & FOLL_GET) {
    folio_ref_add(store, folio, refs);
  } else if (flags & FOLL_PIN) {
    if (is_zero_folio(store, folio)) return 0;
    if (folio_has_pincount(store, folio)) {
      folio_ref_add(store, folio, refs);
      store._pincount[store.idx(folio)] += refs;
    } else {
      folio_ref_add(store, folio, refs * GUP_PIN_COUNTING_BIAS);
    }
  }
  return 0;
}

/**
 * gup_put_folio() (mm/gup.c): undo try_grab_folio() with the same flags. Dropping the last
 * reference frees the folio.
 */
export function gup_put_folio(store: PageStore, folio: number, refs: number, flags: number): void {
  if (flags & FOLL_PIN) {
    if (is_zero_folio(store, folio)) return;
    if (folio_has_pincount(store, folio)) {
      const i = store.idx(folio);
      if (store._pincount[i] < refs) BUG(`folio ${hex(folio)}: _pincount underflow (${store._pincount[i]} - ${refs})`);
      store._pincount[i] -= refs;
    } else {
      refs *= GUP_PIN_COUNTING_BIAS;
    }
  }
  folio_put_refs(store, folio, refs);
}

/** unpin_user_page(): release one FOLL_PIN pin taken through pin_user_pages*(). */
export function unpin_user_page(store: PageStore, page: number): void {
  gup_put_folio(store, page_folio(store, page), 1, FOLL_PIN);
}

/** unpin_folio(): release a pin taken by memfd_pin_folios() or similar. */
export function unpin_folio(store: PageStore, folio: number): void {
  gup_put_folio(store, folio, 1, FOLL_PIN);
}

/** unpin_user_folio(): release `npages` pins of one folio. */
export function unpin_user_folio(store: PageStore, folio: number, npages: number): void {
  gup_put_folio(store, folio, npages, FOLL_PIN);
}

/**
 * unpin_user_pages(): release an array of pinned pages, one gup_put_folio() per run of pages of
 * the same folio (gup_folio_next()). A negative npages is an -errno the caller should not have
 * passed: WARN and do nothing, as the kernel does.
 */
export function unpin_user_pages(store: PageStore, pages: readonly number[], npages: number): void {
  if (npages < 0) {
    store.warn.WARN_ON(true, `unpin_user_pages: npages ${npages} is an error value`);
    return;
  }
  for (let i = 0; i < npages; ) {
    const folio = page_folio(store, pages[i]);
    let nr = i + 1;
    while (nr < npages && page_folio(store, pages[nr]) === folio) nr++;
    gup_put_folio(store, folio, nr - i, FOLL_PIN);
    i = nr;
  }
}

/**
 * folio_add_pin(): one more pin on a folio the caller already holds a pin on; nothing for the
 * zero page.
 */
export function folio_add_pin(store: PageStore, folio: number): void {
  if (is_zero_folio(store, folio)) return;
  if (folio_has_pincount(store, folio)) {
    const i = store.idx(folio);
    if (store._pincount[i] < 1) store.warn.WARN_ON_ONCE(true, 'folio_add_pin', `folio_add_pin: folio ${hex(folio)} is not pinned`);
    folio_ref_inc(store, folio);
    store._pincount[i]++;
  } else {
    if (folio_ref_count(store, folio) < GUP_PIN_COUNTING_BIAS) {
      store.warn.WARN_ON_ONCE(true, 'folio_add_pin', `folio_add_pin: folio ${hex(folio)} is not pinned`);
    }
    folio_ref_add(store, folio, GUP_PIN_COUNTING_BIAS);
  }
}

/* The folio lock (include/linux/pagemap.h, mm/filemap.c). */

/** folio_trylock(): true if the lock was taken. */
export function folio_trylock(store: PageStore, folio: number): boolean {
  const i = store.idx(folio);
  if (store.head_offset[i] !== 0) BUG(`VM_BUG_ON_PGFLAGS: folio_trylock on tail page ${hex(folio)}`);
  if (store.flags[i] & (1 << PG_locked)) return false;
  store.flags[i] |= 1 << PG_locked;
  return true;
}

/**
 * folio_lock(): the kernel sleeps until the holder unlocks. The simulator runs one operation at a
 * time, so a folio that is locked here stays locked forever: that is a self-deadlock, a bug.
 */
export function folio_lock(store: PageStore, folio: number): void {
  if (!folio_trylock(store, folio)) BUG(`folio_lock: folio ${hex(folio)} is already locked (would deadlock)`);
}

/** folio_unlock(). */
export function folio_unlock(store: PageStore, folio: number): void {
  if (!folio_test_locked(store, folio)) BUG(`VM_BUG_ON_FOLIO: folio_unlock of unlocked folio ${hex(folio)}`);
  store.flags[store.idx(folio)] &= ~(1 << PG_locked);
}

/** lock_page(), trylock_page(), unlock_page(): the page's folio. */
export function lock_page(store: PageStore, page: number): void {
  folio_lock(store, page_folio(store, page));
}
export function trylock_page(store: PageStore, page: number): boolean {
  return folio_trylock(store, page_folio(store, page));
}
export function unlock_page(store: PageStore, page: number): void {
  folio_unlock(store, page_folio(store, page));
}

/* folio->mapping (include/linux/page-flags.h, mm/util.c) */

/** folio_test_anon(): mapping points to an anon_vma. */
export function folio_test_anon(store: PageStore, folio: number): boolean {
  return (store.mapping[store.idx(folio)] & FOLIO_MAPPING_ANON) !== 0;
}

/** folio_test_ksm(). */
export function folio_test_ksm(store: PageStore, folio: number): boolean {
  return (store.mapping[store.idx(folio)] & FOLIO_MAPPING_FLAGS) === FOLIO_MAPPING_KSM;
}

/** folio_raw_mapping(): the mapping id without its tag bits (address_space, anon_vma or KSM node). */
export function folio_raw_mapping(store: PageStore, folio: number): number {
  return (store.mapping[store.idx(folio)] & ~FOLIO_MAPPING_FLAGS) >>> 0;
}

/**
 * folio_mapping(): the address_space of a page-cache folio, 0 for anonymous, slab and unmapped
 * folios. The kernel returns the swap cache's address_space for a swap-cache folio; the
 * simulator's swap cache (swap_state.ts) has no address_space object, so that case gives 0 too
 * and callers that care test folio_test_swapcache() first.
 */
export function folio_mapping(store: PageStore, folio: number): number {
  if (folio_test_slab(store, folio)) return 0;
  if (folio_test_swapcache(store, folio)) return 0;
  const mapping = store.mapping[store.idx(folio)];
  return mapping & FOLIO_MAPPING_FLAGS ? 0 : mapping;
}

/** folio_pgoff(): folio->index. */
export function folio_pgoff(store: PageStore, folio: number): number {
  return store.index[store.idx(folio)];
}

/** noop_dirty_folio() (mm/page-writeback.c): set PG_dirty; true if it was clean. */
export function noop_dirty_folio(store: PageStore, _mapping: number, folio: number): boolean {
  if (!folio_test_dirty(store, folio)) return !folio_test_set_dirty(store, folio);
  return false;
}

/**
 * folio_mark_dirty() (mm/page-writeback.c): through the mapping's dirty_folio (store.dirty_folio,
 * registered by the page cache) when the folio has one, else noop_dirty_folio().
 * @returns true if the folio was newly dirtied.
 */
export function folio_mark_dirty(store: PageStore, folio: number): boolean {
  const mapping = folio_mapping(store, folio);
  if (mapping !== 0 && store.dirty_folio !== undefined) {
    if (folio_test_reclaim(store, folio)) folio_clear_reclaim(store, folio);
    return store.dirty_folio(mapping, folio as Folio);
  }
  return noop_dirty_folio(store, mapping, folio);
}

/** set_page_dirty(): folio_mark_dirty(page_folio(page)). */
export function set_page_dirty(store: PageStore, page: number): boolean {
  return folio_mark_dirty(store, page_folio(store, page));
}

/** set_page_dirty_lock(): as set_page_dirty() with the folio locked around it. */
export function set_page_dirty_lock(store: PageStore, page: number): boolean {
  const folio = page_folio(store, page);
  folio_lock(store, folio);
  const ret = folio_mark_dirty(store, folio);
  folio_unlock(store, folio);
  return ret;
}

/**
 * dump_page() (mm/debug.c): the struct page as the kernel prints it in bad_page() and
 * VM_BUG_ON_PAGE() reports.
 */
export function dump_page(store: PageStore, page: number): string {
  const i = store.idx(page);
  const head = compound_head(store, page);
  const hi = store.idx(head);
  const lines: string[] = [];
  const type = page_type(store, page);
  const mapcount = page_type_has_type(type) ? 0 : store._mapcount[i] + 1;
  lines.push(
    `page: refcount:${store._refcount[hi]} mapcount:${mapcount} mapping:${store.mapping[hi].toString(16).padStart(16, '0')} ` +
      `index:${hex(store.index[hi])} pfn:${hex(page)}`,
  );
  if (store.flags[hi] & (1 << PG_head)) {
    lines.push(
      `head: order:${store.order[hi]} mapcount:${store._large_mapcount[hi] + 1} entire_mapcount:${store._entire_mapcount[hi] + 1} ` +
        `nr_pages_mapped:${store._nr_pages_mapped[hi]} pincount:${store._pincount[hi]}`,
    );
  }
  if (head !== page) lines.push(`head: pfn:${hex(head)}`);
  lines.push(`flags: ${format_page_flags(store.flags[hi])}(node=${store.node[i]}|zone=${store.zone[i]})`);
  if (page_type_has_type(type)) lines.push(`page_type: ${hex(type >>> 24)}`);
  lines.push(`owner: ${store.owner[i]}`);
  return lines.join('\n');
}
