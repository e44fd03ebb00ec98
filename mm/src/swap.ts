/**
 * Moving folios between the LRU lists (mm/swap.c, the isolation helpers of mm/vmscan.c; Linux
 * 6.18): deactivation (MADV_COLD), lazy-free (MADV_FREE), isolation and putback (reclaim,
 * MADV_PAGEOUT, memory-failure). The kernel batches these per CPU; the simulator's batches are
 * drained at once, so each move is done when the call returns. The lists are in mm_inline.ts;
 * joining the LRU (folio_add_lru()) and activation are in filemap.ts.
 */
import { folio_add_lru } from './filemap.js';
import { folio_get, folio_put, folio_test_anon, type Folio } from './folio.js';
import {
  PG_active,
  PG_referenced,
  PG_swapbacked,
  folio_test_active,
  folio_test_clear_lru,
  folio_test_lru,
  folio_test_swapbacked,
  folio_test_swapcache,
  folio_test_unevictable,
} from './page-flags.js';
import type { PageStore } from './page_store.js';
import { lruvec_add_folio, lruvec_del_folio } from './mm_inline.js';

/**
 * folio_deactivate() (lru_deactivate()): an active evictable folio on the LRU goes to the head
 * of its inactive list, losing PG_active and PG_referenced (MADV_COLD: reclaim it sooner).
 */
export function folio_deactivate(store: PageStore, folio: Folio): void {
  if (!folio_test_lru(store, folio) || folio_test_unevictable(store, folio)) return;
  if (!folio_test_active(store, folio)) return;
  lruvec_del_folio(store, folio);
  store.flags[store.idx(folio)] &= ~((1 << PG_active) | (1 << PG_referenced));
  lruvec_add_folio(store, folio);
}

/**
 * folio_mark_lazyfree() (lru_lazyfree()): a clean anonymous folio (MADV_FREE) loses
 * PG_swapbacked and moves to the inactive file list: reclaim may drop it without swapping, unless
 * it is written again.
 */
export function folio_mark_lazyfree(store: PageStore, folio: Folio): void {
  if (!folio_test_anon(store, folio) || !folio_test_swapbacked(store, folio) || folio_test_swapcache(store, folio) || folio_test_unevictable(store, folio)) {
    return;
  }
  const on_lru = folio_test_lru(store, folio);
  if (on_lru) lruvec_del_folio(store, folio);
  store.flags[store.idx(folio)] &= ~((1 << PG_active) | (1 << PG_referenced) | (1 << PG_swapbacked));
  if (on_lru) lruvec_add_folio(store, folio);
}

/**
 * folio_isolate_lru() (mm/vmscan.c): take a folio off the LRU for the caller, with a reference.
 * @returns false if it was not on the LRU (someone else isolated it).
 */
export function folio_isolate_lru(store: PageStore, folio: Folio): boolean {
  if (!folio_test_clear_lru(store, folio)) return false;
  folio_get(store, folio);
  lruvec_del_folio(store, folio);
  return true;
}

/** folio_putback_lru() (mm/vmscan.c): an isolated folio goes back, and the isolation's reference goes. */
export function folio_putback_lru(store: PageStore, folio: Folio): void {
  folio_add_lru(store, folio);
  folio_put(store, folio);
}
