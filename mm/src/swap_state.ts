/**
 * The swap cache (mm/swap_state.c, mm/swap.h; Linux 6.18): folios that stand for swap slots,
 * on their way out to swap or back in. A folio in the swap cache has PG_swapcache, folio->swap
 * (its first slot) and one reference per page held by the cache; its slot has SWAP_HAS_CACHE.
 * 6.18 keeps the cache in per-cluster swap tables; here each area keeps a slot -> folio array
 * (SwapInfoStruct.cache), and folio->swap lives in a side table, since the page store has no
 * folio->private.
 *
 * Swap-in (swap_cache_alloc_folio(), the kernel's __read_swap_cache_async() path) allocates a
 * folio, claims the slot's SWAP_HAS_CACHE, adds the folio to the cache and to the LRU, and reads
 * the slot synchronously (page_io.ts). There is no readahead: the simulated host behaves as with
 * /proc/sys/vm/page-cluster = 0 (the oracle machine has 3), so a fault reads exactly its page.
 */
import { BUG, BUG_ON, type Pfn } from '@cocosim/core';
import { folio_add_lru } from './filemap.js';
import {
  folio_mapped,
  folio_nr_pages,
  folio_order,
  folio_put,
  folio_ref_add,
  folio_ref_sub,
  folio_try_get,
  folio_trylock,
  folio_unlock,
  type Folio,
} from './folio.js';
import { GFP_HIGHUSER_MOVABLE, type gfp_t } from './gfp.js';
import type { Kernel } from './kernel.js';
import {
  PG_swapcache,
  __folio_set_locked,
  __folio_set_swapbacked,
  folio_clear_swapcache,
  folio_set_dirty,
  folio_set_swapcache,
  folio_test_locked,
  folio_test_swapcache,
  folio_test_writeback,
} from './page-flags.js';
import type { PageStore } from './page_store.js';
import { swap_read_folio } from './page_io.js';
import {
  SWAP_HAS_CACHE,
  get_swap_device,
  put_swap_slot,
  swap_alloc_slot,
  swap_free_nr,
  swapcache_prepare,
  vm_swap_full,
  type SwapInfoStruct,
} from './swapfile.js';
import { swp_entry, swp_offset, swp_type, type SwpEntry } from './swapops.js';

/** folio->swap of every swap-cache folio of a host, by head pfn. */
const folio_swaps = new WeakMap<PageStore, Map<number, SwpEntry>>();

function swaps_of(store: PageStore): Map<number, SwpEntry> {
  let m = folio_swaps.get(store);
  if (m === undefined) {
    m = new Map();
    folio_swaps.set(store, m);
  }
  return m;
}

/** folio->swap: the first swap entry of a swap-cache folio. */
export function folio_swap_entry(store: PageStore, folio: number): SwpEntry {
  const e = folio_swaps.get(store)?.get(folio);
  if (e === undefined) BUG(`folio->swap of folio 0x${folio.toString(16)}, which is not in the swap cache`);
  return e;
}

/** page_swap_entry(): the swap entry of one page of a swap-cache folio. */
export function page_swap_entry(store: PageStore, page: number): SwpEntry {
  const folio = page - store.head_offset[store.idx(page)];
  const e = folio_swap_entry(store, folio);
  return page === folio ? e : swp_entry(swp_type(e), swp_offset(e) + (page - folio));
}

/** swap_cache_get_folio(): the folio caching `entry`, with a reference taken, or undefined. */
export function swap_cache_get_folio(kernel: Kernel, entry: SwpEntry): Folio | undefined {
  const si = get_swap_device(kernel, entry);
  if (si === undefined) return undefined;
  const v = si.cache[swp_offset(entry)];
  if (v === 0) return undefined;
  const folio = (v - 1) as Folio;
  return folio_try_get(kernel.store, folio) ? folio : undefined;
}

/** The cached folio of a slot without taking a reference (filemap_get_entry()-style peek). */
export function swap_cache_peek(si: SwapInfoStruct, offset: number): Folio | undefined {
  const v = si.cache[offset];
  return v === 0 ? undefined : ((v - 1) as Folio);
}

/**
 * swap_cache_add_folio(): a locked folio becomes the swap cache's folio for the slots from
 * `entry` (whose SWAP_HAS_CACHE the caller claimed): one reference per page, PG_swapcache,
 * folio->swap.
 */
export function swap_cache_add_folio(kernel: Kernel, folio: Folio, entry: SwpEntry): void {
  const store = kernel.store;
  const si = get_swap_device(kernel, entry);
  if (si === undefined) BUG('swap_cache_add_folio: bad swap entry');
  const nr = folio_nr_pages(store, folio);
  const first = swp_offset(entry);
  for (let k = 0; k < nr; k++) {
    if (si.cache[first + k] !== 0) BUG(`swap_cache_add_folio: slot ${si.type}:${first + k} already cached`);
    si.cache[first + k] = folio + 1;
  }
  folio_ref_add(store, folio, nr);
  folio_set_swapcache(store, folio);
  swaps_of(store).set(folio, entry);
}

/**
 * __swap_cache_del_folio(): the folio leaves the swap cache (PG_swapcache and folio->swap
 * cleared). The caller drops SWAP_HAS_CACHE and the cache's references.
 */
export function __swap_cache_del_folio(kernel: Kernel, folio: Folio, entry: SwpEntry): void {
  const store = kernel.store;
  const si = get_swap_device(kernel, entry);
  if (si === undefined) BUG('__swap_cache_del_folio: bad swap entry');
  const nr = folio_nr_pages(store, folio);
  const first = swp_offset(entry);
  for (let k = 0; k < nr; k++) {
    if (si.cache[first + k] !== folio + 1) BUG(`__swap_cache_del_folio: slot ${si.type}:${first + k} caches another folio`);
    si.cache[first + k] = 0;
  }
  folio_clear_swapcache(store, folio);
  swaps_of(store).delete(folio);
}

/**
 * __swap_cache_replace_folio(): migration moved a swap-cache folio: `nw` takes `old`'s slots in
 * the swap cache and its folio->swap (migrate.ts has moved the references and PG_swapcache).
 */
export function __swap_cache_replace_folio(kernel: Kernel, old: Folio, nw: Folio): void {
  const store = kernel.store;
  const entry = folio_swap_entry(store, old);
  const si = get_swap_device(kernel, entry);
  if (si === undefined) BUG('__swap_cache_replace_folio: bad swap entry');
  const nr = folio_nr_pages(store, old);
  const first = swp_offset(entry);
  for (let k = 0; k < nr; k++) {
    if (si.cache[first + k] !== old + 1) BUG(`__swap_cache_replace_folio: slot ${si.type}:${first + k} caches another folio`);
    si.cache[first + k] = nw + 1;
  }
  const swaps = swaps_of(store);
  swaps.delete(old);
  swaps.set(nw, entry);
}

/**
 * swap_cache_del_folio() (the kernel's delete_from_swap_cache()): take a locked folio out of the
 * swap cache, release its slots' SWAP_HAS_CACHE (freeing slots nothing else references) and the
 * cache's references.
 */
export function swap_cache_del_folio(kernel: Kernel, folio: Folio): void {
  const store = kernel.store;
  const entry = folio_swap_entry(store, folio);
  __swap_cache_del_folio(kernel, folio, entry);
  put_swap_slot(kernel, entry);
  folio_ref_sub(store, folio, folio_nr_pages(store, folio));
}

/**
 * folio_alloc_swap() (mm/swapfile.c): give a locked, uptodate folio a swap slot and put it in the
 * swap cache. 0, -ENOMEM (no slot: swap full or absent), or -EAGAIN for a large folio.
 */
export function folio_alloc_swap(kernel: Kernel, folio: Folio): number {
  const store = kernel.store;
  BUG_ON(folio_test_swapcache(store, folio), 'folio_alloc_swap of a folio already in the swap cache');
  const entry = swap_alloc_slot(kernel, folio_order(store, folio));
  if (typeof entry === 'number') return entry;
  swap_cache_add_folio(kernel, folio, entry);
  return 0;
}

/**
 * swap_cache_alloc_folio() (__read_swap_cache_async() of 6.18): the swap-cache folio for
 * `entry`, read from swap if it was not cached, with a reference for the caller and unlocked.
 * `new_folio` says whether this call read it (a major fault). Undefined when memory is
 * exhausted or the slot was freed meanwhile.
 */
export function swap_cache_alloc_folio(kernel: Kernel, entry: SwpEntry, gfp: gfp_t = GFP_HIGHUSER_MOVABLE): { folio: Folio; new_folio: boolean } | undefined {
  const store = kernel.store;
  const cached = swap_cache_get_folio(kernel, entry);
  if (cached !== undefined) return { folio: cached, new_folio: false };
  const pfn = kernel.page_alloc.folio_alloc(gfp, 0);
  if (pfn < 0) return undefined;
  kernel.cost.charge('page_alloc');
  const folio = pfn as Folio;
  /* Swap entry may have been freed since our caller observed it. */
  if (swapcache_prepare(kernel, entry) !== 0) {
    folio_put(store, folio);
    kernel.cost.charge('page_free');
    return undefined;
  }
  /* May fail (-ENOMEM) if XArray node allocation failed: not in the simulator. */
  __folio_set_locked(store, folio);
  __folio_set_swapbacked(store, folio);
  swap_cache_add_folio(kernel, folio, entry);
  /* Caller will initiate read into locked new_folio */
  folio_add_lru(store, folio);
  swap_read_folio(kernel, folio, entry);
  folio_unlock(store, folio);
  return { folio, new_folio: true };
}

/** The pfn of each page of a swap-cache folio's slots, for page_io.ts. */
export function folio_swap_slot_pfns(kernel: Kernel, folio: Folio): { si: SwapInfoStruct; first: number; nr: number } {
  const store = kernel.store;
  const entry = folio_swap_entry(store, folio);
  const si = get_swap_device(kernel, entry);
  if (si === undefined) BUG('folio_swap_slot_pfns: bad swap entry');
  return { si, first: swp_offset(entry), nr: folio_nr_pages(store, folio) };
}

/** folio_swapped() (mm/swapfile.c): a slot of the swap-cache folio is still referenced. */
export function folio_swapped(kernel: Kernel, folio: Folio): boolean {
  const { si, first, nr } = folio_swap_slot_pfns(kernel, folio);
  for (let k = 0; k < nr; k++) if (si.swap_map[first + k] & ~SWAP_HAS_CACHE) return true;
  return false;
}

/**
 * folio_free_swap() (mm/swapfile.c): if nothing references the slots of a locked swap-cache
 * folio any more, take the folio out of the swap cache (freeing the slots) and mark it dirty, its
 * memory being the only copy now.
 * @returns true if the folio left the swap cache.
 */
export function folio_free_swap(kernel: Kernel, folio: Folio): boolean {
  const store = kernel.store;
  BUG_ON(!folio_test_locked(store, folio), 'folio_free_swap of an unlocked folio');
  if (!folio_test_swapcache(store, folio)) return false;
  if (folio_test_writeback(store, folio)) return false;
  if (folio_swapped(kernel, folio)) return false;
  swap_cache_del_folio(kernel, folio);
  folio_set_dirty(store, folio);
  return true;
}

/* __try_to_reclaim_swap() flags (mm/swapfile.c) */
/** Reclaim the swap entry anyway */
export const TTRS_ANYWAY = 0x1;
/** Reclaim the swap entry if there are no more mappings of the folio */
export const TTRS_UNMAPPED = 0x2;
/** Reclaim the swap entry if swap is getting full */
export const TTRS_FULL = 0x4;

/**
 * __try_to_reclaim_swap() (mm/swapfile.c): drop the swap-cache folio of a slot that only the
 * cache still holds, when `flags` allow it.
 * @returns the pages freed, 0 when no folio caches the slot, -1 when it could not be freed.
 */
export function __try_to_reclaim_swap(kernel: Kernel, si: SwapInfoStruct, offset: number, flags: number): number {
  const store = kernel.store;
  const folio = swap_cache_get_folio(kernel, swp_entry(si.type, offset));
  if (folio === undefined) return 0;
  const nr = folio_nr_pages(store, folio);
  let ret = -1;
  if (folio_trylock(store, folio)) {
    const need_reclaim =
      (flags & TTRS_ANYWAY) !== 0 ||
      ((flags & TTRS_UNMAPPED) !== 0 && !folio_mapped(store, folio)) ||
      ((flags & TTRS_FULL) !== 0 && vm_swap_full(kernel));
    if (need_reclaim && !folio_test_writeback(store, folio) && !folio_swapped(kernel, folio)) {
      swap_cache_del_folio(kernel, folio);
      folio_set_dirty(store, folio);
      ret = nr;
    }
    folio_unlock(store, folio);
  }
  folio_put(store, folio);
  return ret;
}

/**
 * free_swap_and_cache_nr() (mm/swapfile.c): a zap dropped `nr` swap PTEs from `entry` on: drop
 * their slot references, and drop the swap-cache folio of a slot nothing else references if the
 * folio is not mapped or swap is more than half full.
 */
export function free_swap_and_cache_nr(kernel: Kernel, entry: SwpEntry, nr: number): void {
  const si = get_swap_device(kernel, entry);
  if (si === undefined) return;
  const first = swp_offset(entry);
  swap_free_nr(kernel, entry, nr);
  for (let offset = first; offset < first + nr; offset++) {
    if (si.swap_map[offset] === SWAP_HAS_CACHE) __try_to_reclaim_swap(kernel, si, offset, TTRS_UNMAPPED | TTRS_FULL);
  }
}

/** PG_swapcache's bit, for code that tests flag words directly. */
export const PG_SWAPCACHE_BIT = 1 << PG_swapcache;

/** Simulator plumbing: the number of folios in the swap cache of a host. */
export function swap_cache_nr_folios(store: PageStore): number {
  return folio_swaps.get(store)?.size ?? 0;
}

/** Simulator plumbing: the head pfn of every swap-cache folio. */
export function swap_cache_folios(store: PageStore): Pfn[] {
  return [...(folio_swaps.get(store)?.keys() ?? [])] as Pfn[];
}

/**
 * free_swap_cache() (mm/swap_state.c): a zap dropped a mapping of a swap-cache folio; if no page
 * table maps it any more, drop it from the swap cache when its slots are unreferenced.
 */
export function free_swap_cache(kernel: Kernel, folio: Folio): void {
  const store = kernel.store;
  if (folio_test_swapcache(store, folio) && !folio_mapped(store, folio) && folio_trylock(store, folio)) {
    folio_free_swap(kernel, folio);
    folio_unlock(store, folio);
  }
}
