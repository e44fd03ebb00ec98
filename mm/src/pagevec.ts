/**
 * struct folio_batch (include/linux/pagevec.h, mm/swap.c): up to PAGEVEC_SIZE folios gathered by
 * a page-cache lookup so that the work on them (locking, removal, the final folio_put) is done a
 * batch at a time, as truncation and hole punching do. A batch is reused across the whole
 * operation: the hot paths allocate one, not one object per folio.
 */
import { BUG } from '@cocosim/core';
import type { PageStore } from './page_store.js';
import { __folio_put, type Folio } from './folio.js';
import { PGTY_hugetlb } from './page-flags.js';
import { lru_release_idx } from './mm_inline.js';

/** PAGEVEC_SIZE: 31 folios, so that struct folio_batch fits in 256 bytes. */
export const PAGEVEC_SIZE = 31;

export class FolioBatch {
  /** Number of folios held. */
  nr = 0;
  /** Iteration cursor of folio_batch_next(). */
  i = 0;
  readonly folios: Folio[] = new Array<Folio>(PAGEVEC_SIZE).fill(0 as Folio);
  /** The page-cache index each folio was found at (the `indices` array the lookups fill). */
  readonly indices: number[] = new Array<number>(PAGEVEC_SIZE).fill(0);
}

/** folio_batch_init(). */
export function folio_batch_init(fbatch: FolioBatch): void {
  fbatch.nr = 0;
  fbatch.i = 0;
}

/** folio_batch_reinit(). */
export const folio_batch_reinit = folio_batch_init;

/** folio_batch_count(). */
export function folio_batch_count(fbatch: FolioBatch): number {
  return fbatch.nr;
}

/** folio_batch_space(): free slots. */
export function folio_batch_space(fbatch: FolioBatch): number {
  return PAGEVEC_SIZE - fbatch.nr;
}

/**
 * folio_batch_add(): append a folio (found at `index`); returns the slots left, so that 0 means
 * "full, process it now".
 */
export function folio_batch_add(fbatch: FolioBatch, folio: Folio, index = 0): number {
  fbatch.indices[fbatch.nr] = index;
  fbatch.folios[fbatch.nr++] = folio;
  return folio_batch_space(fbatch);
}

/**
 * folios_put_refs() (mm/swap.c): drop `refs[k]` references (1 without `refs`) on each folio of
 * the batch; the folios whose last reference that was are freed together (see
 * folios_free_frozen()). The batch is emptied.
 * @returns how many folios lost their last reference (the callers charge page_free for them)
 */
export function folios_put_refs(store: PageStore, fbatch: FolioBatch, refs?: ArrayLike<number>): number {
  const refcount = store._refcount;
  const folios = fbatch.folios;
  const base = store.base_pfn;
  const nr_pages = store.nr_pages;
  let freed = 0;
  let j = 0;
  for (let k = 0; k < fbatch.nr; k++) {
    const folio = folios[k];
    let i = folio - base;
    if (!(i >= 0 && i < nr_pages)) i = store.idx(folio);
    const nr_refs = refs === undefined ? 1 : refs[k];
    const ref = refcount[i];
    /* folio_put_testzero() */
    if (ref < nr_refs) BUG(`VM_BUG_ON_FOLIO: folio_put on 0x${folio.toString(16)} with refcount ${ref} - ${nr_refs}`);
    refcount[i] = ref - nr_refs;
    if (ref !== nr_refs) continue;
    freed++;
    if (release_frozen(store, folio, i)) folios[j++] = folio;
  }
  free_unref(store, folios, j);
  folio_batch_init(fbatch);
  return freed;
}

/**
 * The freeing half of folios_put_refs(), for the first `nr` of `folios`, folios whose last
 * reference is gone (the TLB gather of a zap, which dropped them, calls it after its flush): a
 * hugetlb folio goes back to its pool; the others leave the LRU (__page_cache_release()) and go
 * to the page allocator's free_unref_folios() together. `folios` is reused as scratch.
 */
export function folios_free_frozen(store: PageStore, folios: Folio[] | Float64Array, nr: number): void {
  const base = store.base_pfn;
  const nr_pages = store.nr_pages;
  let j = 0;
  for (let k = 0; k < nr; k++) {
    const folio = folios[k];
    let i = folio - base;
    if (!(i >= 0 && i < nr_pages)) i = store.idx(folio);
    if (release_frozen(store, folio, i)) folios[j++] = folio;
  }
  free_unref(store, folios, j);
}

/**
 * One folio of folios_put_refs() whose last reference is gone (array index i): a hugetlb folio
 * goes back to its pool now (false); any other leaves the LRU and is to be freed (true).
 */
function release_frozen(store: PageStore, folio: number, i: number): boolean {
  /* hugetlb has its own memcg (folio_test_hugetlb(): the page type in _mapcount) */
  if (store._mapcount[i] >>> 24 === PGTY_hugetlb) {
    __folio_put(store, folio);
    return false;
  }
  /* __page_cache_release(): lruvec_del_folio() then __folio_clear_lru_flags() */
  lru_release_idx(store, i);
  return true;
}

/** free_unref_folios() of the first `nr` of `folios`. */
function free_unref(store: PageStore, folios: ArrayLike<number>, nr: number): void {
  if (nr === 0) return;
  if (store.page_alloc === undefined) BUG(`folios_put_refs: ${nr} folios to free but no page allocator`);
  store.page_alloc!.free_unref_folios(folios, nr);
}

/**
 * folio_batch_release() (release_pages()): drop the batch's reference on every folio and free
 * those for which it was the last, then empty the batch.
 * @returns how many folios that freed (the callers charge page_free for them)
 */
export function folio_batch_release(store: PageStore, fbatch: FolioBatch): number {
  return folios_put_refs(store, fbatch);
}
