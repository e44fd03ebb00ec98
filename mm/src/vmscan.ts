/**
 * Page reclaim (mm/vmscan.c, Linux 6.18 with the classic two-list LRU: the oracle machine has
 * CONFIG_LRU_GEN unset): shrink_node() ages the active lists and reclaims from the inactive
 * ones, shrink_folio_list() frees what it can:
 *
 *   - an anonymous folio gets a swap slot and enters the swap cache (folio_alloc_swap()), its
 *     PTEs become swap entries (try_to_unmap(), rmap.ts), it is written out (page_io.ts) and
 *     freed; without swap space it is activated instead;
 *   - a shmem folio is unmapped, moved to swap by shmem_writeout() (a swap entry takes its place
 *     in the page cache) and freed; a clean one (never written: it reads as zeros) is just dropped
 *     from the page cache, as the kernel does;
 *   - a lazy-free (MADV_FREE) folio that was not written again is dropped;
 *   - mlocked folios and folios of AS_UNEVICTABLE mappings (guest_memfd) are unevictable: they
 *     sit on LRU_UNEVICTABLE, which reclaim never scans; pinned folios (folio_maybe_dma_pinned())
 *     are kept: an anon one before it is unmapped, a shmem one after;
 *   - a folio referenced since the last scan is kept or activated (folio_check_references()).
 *
 * Entry points: try_to_free_pages() (direct reclaim; the page allocator does not call it on its
 * own: an allocation fails when no free block exists), reclaim() (a write to memory.reclaim of
 * the root cgroup: proactive reclaim, a Process-independent command for tests and traces), and
 * reclaim_pages() (MADV_PAGEOUT).
 *
 * Simplifications, all deterministic: no kswapd, watermarks or per-memcg lruvecs (one lruvec per
 * node); the anon/file scan balance uses swappiness with equal recent costs (lru_note_cost()
 * history is not kept), so SCAN_FRACT scans anon:file as swappiness:(200 - swappiness); no
 * workingset shadow entries or refault detection; large folios are kept (activated), since the
 * simulator does not split folios and hands out no swap clusters; every swap write completes at
 * once, so a written-out folio is freed in the same pass.
 *
 * Tracepoints: mm_vmscan_lru_isolate, mm_vmscan_lru_shrink_inactive, mm_vmscan_lru_shrink_active,
 * mm_vmscan_write_folio, mm_vmscan_reclaim_pages, mm_vmscan_direct_reclaim_begin/end.
 */
import { Errno } from '@cocosim/core';
import { __filemap_remove_folio, folio_address_space, folio_evictable } from './filemap.js';
import {
  folio_mapped,
  folio_maybe_dma_pinned,
  folio_nr_pages,
  folio_put,
  folio_put_testzero,
  folio_ref_count,
  folio_ref_freeze,
  folio_test_anon,
  folio_trylock,
  folio_try_get,
  folio_unlock,
  type Folio,
} from './folio.js';
import { GFP_KERNEL, __GFP_IO, gfp_zone, type gfp_t } from './gfp.js';
import type { Kernel } from './kernel.js';
import {
  LRU_ACTIVE,
  LRU_ACTIVE_ANON,
  LRU_ACTIVE_FILE,
  LRU_INACTIVE_ANON,
  LRU_INACTIVE_FILE,
  LRU_NAMES,
  NR_LRU_LISTS,
  folio_is_file_lru,
  is_active_lru,
  is_file_lru,
  lru_lists,
  lru_unlink_idx,
  lruvec_add_folio,
  lruvec_lru_size,
} from './mm_inline.js';
import { VM_EXEC, VM_LOCKED, vm_flags_test } from './mm_types.js';
import { AOP_WRITEPAGE_ACTIVATE, swap_writeout } from './page_io.js';
import {
  PG_lru,
  folio_clear_active,
  folio_clear_reclaim,
  folio_contain_hwpoisoned_page,
  folio_set_active,
  folio_set_reclaim,
  folio_set_referenced,
  folio_test_clear_dirty,
  folio_test_clear_referenced,
  folio_test_dirty,
  folio_test_large,
  folio_test_mlocked,
  folio_test_private,
  folio_test_swapbacked,
  folio_test_swapcache,
  folio_test_writeback,
  folio_set_workingset,
} from './page-flags.js';
import { MAX_NR_ZONES } from './page_store.js';
import { folios_free_frozen } from './pagevec.js';
import {
  TTU_BATCH_FLUSH,
  TTU_SPLIT_HUGE_PMD,
  TTU_SYNC,
  folio_referenced,
  try_to_unmap,
  try_to_unmap_flush,
  try_to_unmap_flush_dirty,
} from './rmap.js';
import { shmem_mapping, shmem_writeout } from './shmem.js';
import { folio_putback_lru } from './swap.js';
import {
  __swap_cache_del_folio,
  folio_alloc_swap,
  folio_free_swap,
  folio_swap_entry,
} from './swap_state.js';
import { get_nr_swap_pages, put_swap_slot, total_swap_pages, vm_swap_full } from './swapfile.js';

declare module '@cocosim/core' {
  interface TraceEventMap {
    /** @see include/trace/events/vmscan.h TRACE_EVENT(mm_vmscan_lru_isolate); `lru` as printed. */
    mm_vmscan_lru_isolate: {
      highest_zoneidx: number;
      order: number;
      nr_requested: number;
      nr_scanned: number;
      nr_skipped: number;
      nr_taken: number;
      lru: string;
    };
    /** @see include/trace/events/vmscan.h TRACE_EVENT(mm_vmscan_lru_shrink_inactive) */
    mm_vmscan_lru_shrink_inactive: {
      nid: number;
      nr_scanned: number;
      nr_reclaimed: number;
      nr_dirty: number;
      nr_writeback: number;
      nr_congested: number;
      nr_immediate: number;
      nr_activate0: number;
      nr_activate1: number;
      nr_ref_keep: number;
      nr_unmap_fail: number;
      priority: number;
      reclaim_flags: string;
    };
    /** @see include/trace/events/vmscan.h TRACE_EVENT(mm_vmscan_lru_shrink_active) */
    mm_vmscan_lru_shrink_active: {
      nid: number;
      nr_taken: number;
      nr_active: number;
      nr_deactivated: number;
      nr_referenced: number;
      priority: number;
      reclaim_flags: string;
    };
    /** @see include/trace/events/vmscan.h TRACE_EVENT(mm_vmscan_write_folio) */
    mm_vmscan_write_folio: { pfn: number; reclaim_flags: string };
    /** @see include/trace/events/vmscan.h TRACE_EVENT(mm_vmscan_reclaim_pages) */
    mm_vmscan_reclaim_pages: {
      nid: number;
      nr_scanned: number;
      nr_reclaimed: number;
      nr_dirty: number;
      nr_writeback: number;
      nr_congested: number;
      nr_immediate: number;
      nr_activate0: number;
      nr_activate1: number;
      nr_ref_keep: number;
      nr_unmap_fail: number;
    };
    /** @see include/trace/events/vmscan.h DEFINE_EVENT(mm_vmscan_direct_reclaim_begin_template, ...) */
    mm_vmscan_direct_reclaim_begin: { order: number; gfp_flags: number };
    /** @see include/trace/events/vmscan.h DEFINE_EVENT(mm_vmscan_direct_reclaim_end_template, ...) */
    mm_vmscan_direct_reclaim_end: { nr_reclaimed: number };
  }
}

/** DEF_PRIORITY (include/linux/mmzone.h): scan 1/2^12 of each list at first. */
export const DEF_PRIORITY = 12;
/** SWAP_CLUSTER_MAX (include/linux/swap.h). */
export const SWAP_CLUSTER_MAX = 32;
/** MAX_RECLAIM_RETRIES (mm/internal.h). */
export const MAX_RECLAIM_RETRIES = 16;
/** MAX_SWAPPINESS. */
export const MAX_SWAPPINESS = 200;

/* reclaim_flags of the tracepoints (include/trace/events/vmscan.h) */
const RECLAIM_WB_ANON = 'RECLAIM_WB_ANON|RECLAIM_WB_ASYNC';
const RECLAIM_WB_FILE = 'RECLAIM_WB_FILE|RECLAIM_WB_ASYNC';
/** trace_reclaim_flags(file). */
function trace_reclaim_flags(file: boolean): string {
  return file ? RECLAIM_WB_FILE : RECLAIM_WB_ANON;
}

/** Reclaim tunables of a host (/proc/sys/vm). */
export interface VmscanSysctl {
  /** /proc/sys/vm/swappiness: 60, as on the oracle machine. */
  swappiness: number;
}

const sysctls = new WeakMap<Kernel, VmscanSysctl>();

/** The reclaim tunables of a host. */
export function vmscan_sysctl(kernel: Kernel): VmscanSysctl {
  let s = sysctls.get(kernel);
  if (s === undefined) {
    s = { swappiness: 60 };
    sysctls.set(kernel, s);
  }
  return s;
}

/* sc->may_deactivate */
const DEACTIVATE_ANON = 1;
const DEACTIVATE_FILE = 2;

/** struct scan_control: what one reclaim invocation may do and has done. */
export class ScanControl {
  /** How many pages shrink_list() should reclaim. */
  nr_to_reclaim = SWAP_CLUSTER_MAX;
  /** This context's GFP mask. */
  gfp_mask: gfp_t = GFP_KERNEL;
  /** The highest zone to reclaim from. */
  reclaim_idx = MAX_NR_ZONES - 1;
  /** Scan (total_size >> priority) pages at once. */
  priority = DEF_PRIORITY;
  may_writepage = true;
  /** Can mapped pages be reclaimed? */
  may_unmap = true;
  /** Can pages be swapped as part of reclaim? */
  may_swap = true;
  /** Can active folios be deactivated as part of reclaim? (DEACTIVATE_ANON | DEACTIVATE_FILE) */
  may_deactivate = 0;
  force_deactivate = false;
  skipped_deactivate = false;
  /** Proactive reclaim invoked by userspace (memory.reclaim). */
  proactive = false;
  /** There is easily reclaimable cold cache in the current node. */
  cache_trim_mode = false;
  /** Incremented by the number of inactive pages that were scanned. */
  nr_scanned = 0;
  /** Number of pages freed so far during a call to shrink_zones(). */
  nr_reclaimed = 0;
}

/** struct reclaim_stat: what shrink_folio_list() saw. */
export class ReclaimStat {
  nr_dirty = 0;
  nr_unqueued_dirty = 0;
  nr_congested = 0;
  nr_writeback = 0;
  nr_immediate = 0;
  nr_pageout = 0;
  /** [anon, file] */
  readonly nr_activate = [0, 0];
  nr_ref_keep = 0;
  nr_unmap_fail = 0;
  nr_lazyfree_fail = 0;
}

/* enum folio_references */
const FOLIOREF_RECLAIM = 0;
const FOLIOREF_RECLAIM_CLEAN = 1;
const FOLIOREF_KEEP = 2;
const FOLIOREF_ACTIVATE = 3;

/** folio_check_references(): should reclaim take, keep or activate this folio? */
function folio_check_references(kernel: Kernel, folio: Folio): number {
  const store = kernel.store;
  const out = { vm_flags: 0 };
  const referenced_ptes = folio_referenced(kernel, folio, true, out);
  /*
   * The supposedly reclaimable folio was found to be in a VM_LOCKED vma. Let the folio, now
   * marked Mlocked, be moved to the unevictable list.
   */
  if (vm_flags_test(out.vm_flags, VM_LOCKED)) return FOLIOREF_ACTIVATE;
  /* Rmap lock contention: rotate. */
  if (referenced_ptes === -1) return FOLIOREF_KEEP;
  const referenced_folio = folio_test_clear_referenced(store, folio);
  if (referenced_ptes) {
    /*
     * All mapped folios start out with page table references from the instantiating fault, so
     * we need to look twice if a mapped file/anon folio is used more than once. Mark it and give
     * it another trip around the inactive list.
     */
    folio_set_referenced(store, folio);
    if (referenced_folio || referenced_ptes > 1) return FOLIOREF_ACTIVATE;
    /* Activate file-backed executable folios after first usage. */
    if (out.vm_flags & VM_EXEC && folio_is_file_lru(store, folio)) return FOLIOREF_ACTIVATE;
    return FOLIOREF_KEEP;
  }
  /* Reclaim if clean, defer dirty folios to writeback */
  if (referenced_folio && folio_is_file_lru(store, folio)) return FOLIOREF_RECLAIM_CLEAN;
  return FOLIOREF_RECLAIM;
}

/* enum pageout_t */
const PAGE_KEEP = 0;
const PAGE_ACTIVATE = 1;
const PAGE_SUCCESS = 2;
const PAGE_CLEAN = 3;

/**
 * is_page_cache_freeable(): nobody but the page/swap cache and the isolation holds the folio
 * (a pin, a GUP reference or a racing lookup keeps it).
 */
function is_page_cache_freeable(kernel: Kernel, folio: Folio): boolean {
  const store = kernel.store;
  return folio_ref_count(store, folio) - (folio_test_private(store, folio) ? 1 : 0) === 1 + folio_nr_pages(store, folio);
}

/**
 * writeout(): hand a dirty-cleared folio to shmem_writeout() or swap_writeout(). The simulated
 * swap device completes the write at once.
 */
function writeout(kernel: Kernel, folio: Folio, shmem: boolean): number {
  const store = kernel.store;
  folio_set_reclaim(store, folio);
  const res = shmem ? shmem_writeout(kernel, folio) : swap_writeout(kernel, folio);
  if (res === AOP_WRITEPAGE_ACTIVATE) {
    folio_clear_reclaim(store, folio);
    return PAGE_ACTIVATE;
  }
  /* synchronous write? */
  if (!folio_test_writeback(store, folio)) folio_clear_reclaim(store, folio);
  if (kernel.tracer.enabled('mm_vmscan_write_folio')) {
    kernel.tracer.emit('mm_vmscan_write_folio', { pfn: folio, reclaim_flags: trace_reclaim_flags(folio_is_file_lru(store, folio)) });
  }
  return PAGE_SUCCESS;
}

/**
 * pageout(): write a dirty folio that reclaim wants to free: only shmem and swap-cache folios
 * are written from reclaim (file systems' folios are left to writeback: PAGE_ACTIVATE).
 */
function pageout(kernel: Kernel, folio: Folio): number {
  const store = kernel.store;
  if (!is_page_cache_freeable(kernel, folio)) return PAGE_KEEP;
  const swapcache = folio_test_swapcache(store, folio);
  const mapping = swapcache ? undefined : folio_address_space(store, folio);
  if (!swapcache && mapping === undefined) return PAGE_KEEP;
  const shmem = mapping !== undefined && shmem_mapping(mapping);
  if (!shmem && !folio_test_anon(store, folio)) return PAGE_ACTIVATE;
  /* folio_clear_dirty_for_io(): neither shmem nor swap does writeback accounting */
  if (!folio_test_clear_dirty(store, folio)) return PAGE_CLEAN;
  return writeout(kernel, folio, shmem);
}

/**
 * __remove_mapping(): the last step of reclaiming a locked, clean folio: if only the isolation
 * and the page or swap cache hold it, freeze its count to 0 and take it out of the cache.
 * @returns true if the folio can be freed.
 */
function __remove_mapping(kernel: Kernel, folio: Folio): boolean {
  const store = kernel.store;
  const refcount = 1 + folio_nr_pages(store, folio);
  if (!folio_ref_freeze(store, folio, refcount)) return false;
  if (folio_test_dirty(store, folio)) {
    store._refcount[store.idx(folio)] = refcount;
    return false;
  }
  if (folio_test_swapcache(store, folio)) {
    const swap = folio_swap_entry(store, folio);
    __swap_cache_del_folio(kernel, folio, swap);
    put_swap_slot(kernel, swap);
  } else {
    const mapping = folio_address_space(store, folio)!;
    __filemap_remove_folio(kernel, folio);
    mapping.a_ops.free_folio?.(folio);
  }
  return true;
}

/**
 * shrink_folio_list(): try to free each isolated folio of `folios` (each held by the isolation's
 * reference). The ones freed are freed here; `folios` is left holding the others, some marked
 * active, for the caller to put back.
 * @returns the number of pages reclaimed.
 */
export function shrink_folio_list(kernel: Kernel, folios: Folio[], sc: ScanControl, stat: ReclaimStat, ignore_references: boolean): number {
  const store = kernel.store;
  const ret: Folio[] = [];
  const free_folios: Folio[] = [];
  let nr_reclaimed = 0;
  const keep = (folio: Folio, locked: boolean): void => {
    if (locked) folio_unlock(store, folio);
    ret.push(folio);
  };
  const activate = (folio: Folio, nr_pages: number): void => {
    /* Not a candidate for swapping, so reclaim swap space. */
    if (folio_test_swapcache(store, folio) && (vm_swap_full(kernel) || folio_test_mlocked(store, folio))) folio_free_swap(kernel, folio);
    if (!folio_test_mlocked(store, folio)) {
      folio_set_active(store, folio);
      stat.nr_activate[folio_is_file_lru(store, folio) ? 1 : 0] += nr_pages;
    }
    keep(folio, true);
  };
  for (const folio of folios) {
    if (!folio_trylock(store, folio)) {
      keep(folio, false);
      continue;
    }
    if (folio_contain_hwpoisoned_page(store, folio)) {
      /* unmap_poisoned_folio() can't handle large folio, just skip it. */
      if (folio_test_large(store, folio)) {
        keep(folio, true);
        continue;
      }
      mf_hooks.unmap_poisoned_folio?.(kernel, folio, folio as number, false);
      folio_unlock(store, folio);
      folio_put(store, folio);
      continue;
    }
    const nr_pages = folio_nr_pages(store, folio);
    sc.nr_scanned += nr_pages;
    if (!folio_evictable(store, folio)) {
      activate(folio, nr_pages);
      continue;
    }
    if (!sc.may_unmap && folio_mapped(store, folio)) {
      keep(folio, true);
      continue;
    }
    let references = FOLIOREF_RECLAIM;
    if (!ignore_references) references = folio_check_references(kernel, folio);
    if (references === FOLIOREF_ACTIVATE) {
      activate(folio, nr_pages);
      continue;
    }
    if (references === FOLIOREF_KEEP) {
      stat.nr_ref_keep += nr_pages;
      keep(folio, true);
      continue;
    }
    /* Anonymous process memory has backing store? Try to allocate it some swap space here. */
    if (folio_test_anon(store, folio) && folio_test_swapbacked(store, folio)) {
      if (!folio_test_swapcache(store, folio)) {
        if (!(sc.gfp_mask & __GFP_IO) || folio_maybe_dma_pinned(store, folio)) {
          keep(folio, true);
          continue;
        }
        /* Large folios would be split: the simulator cannot, as when the split fails. */
        if (folio_test_large(store, folio) || folio_alloc_swap(kernel, folio)) {
          activate(folio, nr_pages);
          continue;
        }
      }
    } else if (folio_test_swapbacked(store, folio) && folio_test_large(store, folio)) {
      /* Split shmem folio: not possible here */
      keep(folio, true);
      continue;
    }
    /* The folio is mapped into the page tables of one or more processes. Try to unmap it here. */
    if (folio_mapped(store, folio)) {
      let flags = TTU_BATCH_FLUSH;
      const was_swapbacked = folio_test_swapbacked(store, folio);
      if (folio_test_large(store, folio)) flags |= TTU_SPLIT_HUGE_PMD | TTU_SYNC;
      try_to_unmap(kernel, folio, flags);
      if (folio_mapped(store, folio)) {
        stat.nr_unmap_fail += nr_pages;
        if (!was_swapbacked && folio_test_swapbacked(store, folio)) stat.nr_lazyfree_fail += nr_pages;
        activate(folio, nr_pages);
        continue;
      }
    }
    /*
     * Folio is unmapped now so it cannot be newly pinned anymore. No point in trying to reclaim
     * a pinned folio.
     */
    if (folio_maybe_dma_pinned(store, folio)) {
      activate(folio, nr_pages);
      continue;
    }
    if (folio_test_dirty(store, folio)) {
      /* Only shmem and swap-cache folios are written from reclaim; file folios wait for writeback. */
      if (folio_is_file_lru(store, folio)) {
        folio_set_reclaim(store, folio);
        activate(folio, nr_pages);
        continue;
      }
      if (references === FOLIOREF_RECLAIM_CLEAN || !sc.may_writepage) {
        keep(folio, true);
        continue;
      }
      /* Folio is dirty. Flush the TLB if a writable entry potentially exists. */
      try_to_unmap_flush_dirty(kernel);
      const po = pageout(kernel, folio);
      if (po === PAGE_KEEP) {
        keep(folio, true);
        continue;
      }
      if (po === PAGE_ACTIVATE) {
        activate(folio, nr_pages);
        continue;
      }
      if (po === PAGE_SUCCESS) {
        stat.nr_pageout += nr_pages;
        if (folio_test_writeback(store, folio) || folio_test_dirty(store, folio)) {
          keep(folio, false);
          continue;
        }
        /* A synchronous write - probably a ramdisk. Go ahead and try to reclaim the folio. */
        if (!folio_trylock(store, folio)) {
          keep(folio, false);
          continue;
        }
        if (folio_test_dirty(store, folio) || folio_test_writeback(store, folio)) {
          keep(folio, true);
          continue;
        }
      }
    }
    if (folio_test_anon(store, folio) && !folio_test_swapbacked(store, folio)) {
      /* A lazy-free folio: only the isolation's reference is left. */
      if (!folio_ref_freeze(store, folio, 1)) {
        keep(folio, true);
        continue;
      }
    } else if ((!folio_test_swapcache(store, folio) && folio_address_space(store, folio) === undefined) || !__remove_mapping(kernel, folio)) {
      /*
       * `if (!mapping || !__remove_mapping(...))`: no mapping for an anon folio outside the swap
       * cache, nor for a file folio truncated while it was isolated.
       */
      keep(folio, true);
      continue;
    }
    folio_unlock(store, folio);
    nr_reclaimed += nr_pages;
    free_folios.push(folio);
  }
  /* The TLB flush the unmapping deferred, then the frees */
  try_to_unmap_flush(kernel);
  if (free_folios.length !== 0) {
    const n = free_folios.length;
    folios_free_frozen(store, free_folios, n);
    kernel.cost.charge('page_free', n);
  }
  folios.length = 0;
  for (const f of ret) folios.push(f);
  return nr_reclaimed;
}

/**
 * The memory-failure hook reclaim needs (memory-failure.ts installs it): unmap_poisoned_folio()
 * for a folio with PG_hwpoison found on the LRU.
 */
export interface VmscanMfHooks {
  unmap_poisoned_folio?(kernel: Kernel, folio: Folio, pfn: number, must_kill: boolean): number;
}
export const mf_hooks: VmscanMfHooks = {};

/**
 * move_folios_to_lru(): put back folios that shrink_*_list() kept (holding the isolation's
 * reference): an unevictable one through folio_putback_lru(), the others at the head of their
 * list (the active list if they were activated). A folio whose isolation reference was the last
 * is freed. @returns the pages moved.
 */
function move_folios_to_lru(kernel: Kernel, folios: readonly Folio[]): number {
  const store = kernel.store;
  let nr_moved = 0;
  const free: Folio[] = [];
  for (const folio of folios) {
    if (!folio_evictable(store, folio)) {
      folio_putback_lru(store, folio);
      continue;
    }
    store.flags[store.idx(folio)] |= 1 << PG_lru;
    if (folio_put_testzero(store, folio)) {
      free.push(folio);
      continue;
    }
    lruvec_add_folio(store, folio);
    nr_moved += folio_nr_pages(store, folio);
  }
  if (free.length !== 0) folios_free_frozen(store, free, free.length);
  return nr_moved;
}

/**
 * isolate_lru_folios(): take up to `nr_to_scan` pages' worth of folios from the tail of list
 * `lru` of node `nid` into `dst`, each with a reference and PG_lru cleared. Folios in zones above
 * sc.reclaim_idx are skipped, folios that cannot be taken are rotated to the head.
 * @returns [nr_taken, nr_scanned] in pages.
 */
function isolate_lru_folios(kernel: Kernel, nr_to_scan: number, nid: number, lru: number, dst: Folio[], sc: ScanControl): [number, number] {
  const store = kernel.store;
  const l = lru_lists(store);
  const id = nid * NR_LRU_LISTS + lru;
  const base = store.base_pfn;
  let nr_taken = 0;
  let total_scan = 0;
  let scan = 0;
  let skipped = 0;
  const rotate: Folio[] = [];
  const skip: Folio[] = [];
  let i = l.tail[id];
  while (scan < nr_to_scan && i !== -1) {
    const prev = l.prev[i];
    const folio = (base + i) as Folio;
    if (!(store.flags[i] & (1 << PG_lru))) {
      /* freed by a path that did not unlink it (mm_inline.ts): drop the stale entry */
      lru_unlink_idx(l, i);
      i = prev;
      continue;
    }
    const nr_pages = folio_nr_pages(store, folio);
    total_scan += nr_pages;
    if (store.zone[i] > sc.reclaim_idx) {
      skipped += nr_pages;
      lru_unlink_idx(l, i);
      skip.push(folio);
      i = prev;
      continue;
    }
    scan += nr_pages;
    if ((!sc.may_unmap && folio_mapped(store, folio)) || !folio_try_get(store, folio)) {
      lru_unlink_idx(l, i);
      rotate.push(folio);
      i = prev;
      continue;
    }
    store.flags[i] &= ~(1 << PG_lru);
    lru_unlink_idx(l, i);
    nr_taken += nr_pages;
    dst.push(folio);
    i = prev;
  }
  /* list_move() to the head of src, in scan order; the skipped ones are spliced back there too */
  for (const f of rotate) lruvec_add_folio(store, f);
  for (const f of skip) lruvec_add_folio(store, f);
  if (kernel.tracer.enabled('mm_vmscan_lru_isolate')) {
    kernel.tracer.emit('mm_vmscan_lru_isolate', {
      highest_zoneidx: sc.reclaim_idx,
      order: 0,
      nr_requested: nr_to_scan,
      nr_scanned: total_scan,
      nr_skipped: skipped,
      nr_taken,
      lru: LRU_NAMES[lru],
    });
  }
  return [nr_taken, total_scan];
}

/** shrink_inactive_list(): reclaim from the tail of an inactive list. @returns pages reclaimed. */
function shrink_inactive_list(kernel: Kernel, nr_to_scan: number, nid: number, lru: number, sc: ScanControl): number {
  const folios: Folio[] = [];
  const [nr_taken, nr_scanned] = isolate_lru_folios(kernel, nr_to_scan, nid, lru, folios, sc);
  if (nr_taken === 0) return 0;
  const stat = new ReclaimStat();
  const nr_reclaimed = shrink_folio_list(kernel, folios, sc, stat, false);
  move_folios_to_lru(kernel, folios);
  if (kernel.tracer.enabled('mm_vmscan_lru_shrink_inactive')) {
    kernel.tracer.emit('mm_vmscan_lru_shrink_inactive', {
      nid,
      nr_scanned,
      nr_reclaimed,
      nr_dirty: stat.nr_dirty,
      nr_writeback: stat.nr_writeback,
      nr_congested: stat.nr_congested,
      nr_immediate: stat.nr_immediate,
      nr_activate0: stat.nr_activate[0],
      nr_activate1: stat.nr_activate[1],
      nr_ref_keep: stat.nr_ref_keep,
      nr_unmap_fail: stat.nr_unmap_fail,
      priority: sc.priority,
      reclaim_flags: trace_reclaim_flags(is_file_lru(lru)),
    });
  }
  return nr_reclaimed;
}

/**
 * shrink_active_list(): age folios from the tail of an active list: they go to the inactive
 * list, except referenced executable file folios, which get another trip around the active list.
 */
function shrink_active_list(kernel: Kernel, nr_to_scan: number, nid: number, lru: number, sc: ScanControl): void {
  const store = kernel.store;
  const hold: Folio[] = [];
  const [nr_taken] = isolate_lru_folios(kernel, nr_to_scan, nid, lru, hold, sc);
  const l_active: Folio[] = [];
  const l_inactive: Folio[] = [];
  let nr_rotated = 0;
  for (const folio of hold) {
    if (!folio_evictable(store, folio)) {
      folio_putback_lru(store, folio);
      continue;
    }
    const out = { vm_flags: 0 };
    /* Referenced or rmap lock contention: rotate */
    if (folio_referenced(kernel, folio, false, out) !== 0) {
      /* Identify referenced, file-backed active folios and give them one more trip around the active list. */
      if (out.vm_flags & VM_EXEC && folio_is_file_lru(store, folio)) {
        nr_rotated += folio_nr_pages(store, folio);
        l_active.push(folio);
        continue;
      }
    }
    /* we are de-activating */
    folio_clear_active(store, folio);
    folio_set_workingset(store, folio);
    l_inactive.push(folio);
  }
  const nr_activate = move_folios_to_lru(kernel, l_active);
  const nr_deactivate = move_folios_to_lru(kernel, l_inactive);
  if (kernel.tracer.enabled('mm_vmscan_lru_shrink_active')) {
    kernel.tracer.emit('mm_vmscan_lru_shrink_active', {
      nid,
      nr_taken,
      nr_active: nr_activate,
      nr_deactivated: nr_deactivate,
      nr_referenced: nr_rotated,
      priority: sc.priority,
      reclaim_flags: trace_reclaim_flags(is_file_lru(lru)),
    });
  }
}

/** int_sqrt(). */
function int_sqrt(x: number): number {
  return Math.floor(Math.sqrt(x));
}

/**
 * inactive_is_low(): the inactive list of a type is smaller than the target ratio to its active
 * list (1:1 below 1 GiB, then 1:sqrt(10 * GiB)).
 */
function inactive_is_low(kernel: Kernel, nid: number, inactive_lru: number): boolean {
  const store = kernel.store;
  const inactive = lruvec_lru_size(store, nid, inactive_lru);
  const active = lruvec_lru_size(store, nid, inactive_lru + LRU_ACTIVE);
  const gb = Math.floor((inactive + active) / 2 ** 18);
  const inactive_ratio = gb ? int_sqrt(10 * gb) : 1;
  return inactive * inactive_ratio < active;
}

/** can_reclaim_anon_pages(): anonymous memory can go somewhere (a swap slot is free). */
function can_reclaim_anon_pages(kernel: Kernel): boolean {
  return get_nr_swap_pages(kernel) > 0;
}

/** shrink_list(). */
function shrink_list(kernel: Kernel, lru: number, nr_to_scan: number, nid: number, sc: ScanControl): number {
  if (is_active_lru(lru)) {
    if (sc.may_deactivate & (is_file_lru(lru) ? DEACTIVATE_FILE : DEACTIVATE_ANON)) shrink_active_list(kernel, nr_to_scan, nid, lru, sc);
    else sc.skipped_deactivate = true;
    return 0;
  }
  return shrink_inactive_list(kernel, nr_to_scan, nid, lru, sc);
}

/* enum scan_balance */
const SCAN_EQUAL = 0;
const SCAN_FRACT = 1;
const SCAN_ANON = 2;
const SCAN_FILE = 3;

/** get_scan_count(): how many pages of each evictable list to scan at this priority. */
function get_scan_count(kernel: Kernel, nid: number, sc: ScanControl): number[] {
  const store = kernel.store;
  const swappiness = vmscan_sysctl(kernel).swappiness;
  let scan_balance: number;
  const fraction = [0, 0];
  let denominator = 0;
  if (!sc.may_swap || !can_reclaim_anon_pages(kernel)) {
    /* If we have no swap space, do not bother scanning anon folios. */
    scan_balance = SCAN_FILE;
  } else if (!sc.priority && swappiness) {
    /* Do not apply any pressure balancing cleverness when the system is close to OOM. */
    scan_balance = SCAN_EQUAL;
  } else if (sc.cache_trim_mode) {
    /* If there is enough inactive page cache, reclaim that first. */
    scan_balance = SCAN_FILE;
  } else {
    /* Equal recent costs: anon and file in the ratio swappiness : (200 - swappiness) */
    scan_balance = SCAN_FRACT;
    fraction[0] = swappiness;
    fraction[1] = MAX_SWAPPINESS - swappiness;
    denominator = fraction[0] + fraction[1];
  }
  const nr = [0, 0, 0, 0];
  for (const lru of [LRU_INACTIVE_ANON, LRU_ACTIVE_ANON, LRU_INACTIVE_FILE, LRU_ACTIVE_FILE]) {
    const file = is_file_lru(lru);
    let scan = Math.floor(lruvec_lru_size(store, nid, lru) / 2 ** sc.priority);
    if (scan_balance === SCAN_FRACT) scan = Math.floor((scan * fraction[file ? 1 : 0]) / denominator);
    else if (scan_balance === SCAN_FILE || scan_balance === SCAN_ANON) {
      if ((scan_balance === SCAN_FILE) !== file) scan = 0;
    }
    nr[lru] = scan;
  }
  return nr;
}

/** shrink_lruvec(): reclaim from one node's lists at sc.priority. */
function shrink_lruvec(kernel: Kernel, nid: number, sc: ScanControl): void {
  const nr = get_scan_count(kernel, nid, sc);
  const nr_to_reclaim = sc.nr_to_reclaim;
  let nr_reclaimed = 0;
  const proportional_reclaim = !sc.proactive && sc.priority === DEF_PRIORITY;
  while (nr[LRU_INACTIVE_ANON] || nr[LRU_ACTIVE_FILE] || nr[LRU_INACTIVE_FILE]) {
    for (const lru of [LRU_INACTIVE_ANON, LRU_ACTIVE_ANON, LRU_INACTIVE_FILE, LRU_ACTIVE_FILE]) {
      if (nr[lru]) {
        const nr_to_scan = Math.min(nr[lru], SWAP_CLUSTER_MAX);
        nr[lru] -= nr_to_scan;
        nr_reclaimed += shrink_list(kernel, lru, nr_to_scan, nid, sc);
      }
    }
    if (nr_reclaimed < nr_to_reclaim || proportional_reclaim) continue;
    break;
  }
  sc.nr_reclaimed += nr_reclaimed;
  /* Even if we did not try to evict anon pages at all, we want to rebalance the anon lru active/inactive ratio. */
  if (total_swap_pages(kernel) > 0 && inactive_is_low(kernel, nid, LRU_INACTIVE_ANON)) {
    shrink_active_list(kernel, SWAP_CLUSTER_MAX, nid, LRU_ACTIVE_ANON, sc);
  }
}

/** prepare_scan_control(): which active lists may be aged, and whether to trim the page cache first. */
function prepare_scan_control(kernel: Kernel, nid: number, sc: ScanControl): void {
  if (!sc.force_deactivate) {
    if (inactive_is_low(kernel, nid, LRU_INACTIVE_ANON)) sc.may_deactivate |= DEACTIVATE_ANON;
    else sc.may_deactivate &= ~DEACTIVATE_ANON;
    if (inactive_is_low(kernel, nid, LRU_INACTIVE_FILE)) sc.may_deactivate |= DEACTIVATE_FILE;
    else sc.may_deactivate &= ~DEACTIVATE_FILE;
  } else {
    sc.may_deactivate = DEACTIVATE_ANON | DEACTIVATE_FILE;
  }
  /* If we have plenty of inactive file pages that aren't thrashing, try to reclaim those first. */
  const file = lruvec_lru_size(kernel.store, nid, LRU_INACTIVE_FILE);
  sc.cache_trim_mode = Math.floor(file / 2 ** sc.priority) > 0 && !(sc.may_deactivate & DEACTIVATE_FILE);
}

/** shrink_node(): one reclaim pass over a node at sc.priority. */
export function shrink_node(kernel: Kernel, nid: number, sc: ScanControl): void {
  prepare_scan_control(kernel, nid, sc);
  shrink_lruvec(kernel, nid, sc);
}

/**
 * do_try_to_free_pages(): shrink every node at decreasing priorities until nr_to_reclaim pages
 * are freed or priority 0 is done; retried once with forced deactivation if active lists were
 * skipped. @returns the pages reclaimed.
 */
function do_try_to_free_pages(kernel: Kernel, sc: ScanControl): number {
  const initial_priority = sc.priority;
  for (;;) {
    do {
      sc.nr_scanned = 0;
      for (let nid = 0; nid < kernel.store.nr_node_ids; nid++) shrink_node(kernel, nid, sc);
      if (sc.nr_reclaimed >= sc.nr_to_reclaim) break;
    } while (--sc.priority >= 0);
    if (sc.nr_reclaimed) return sc.nr_reclaimed;
    if (sc.skipped_deactivate) {
      sc.priority = initial_priority;
      sc.force_deactivate = true;
      sc.skipped_deactivate = false;
      continue;
    }
    return 0;
  }
}

/**
 * try_to_free_pages(): direct reclaim of `nr_to_reclaim` pages (at least SWAP_CLUSTER_MAX) for an
 * allocation of `gfp_mask`, from the zones it may use. @returns the pages reclaimed.
 */
export function try_to_free_pages(kernel: Kernel, nr_to_reclaim: number, gfp_mask: gfp_t = GFP_KERNEL): number {
  const sc = new ScanControl();
  sc.nr_to_reclaim = Math.max(nr_to_reclaim, SWAP_CLUSTER_MAX);
  sc.gfp_mask = gfp_mask;
  sc.reclaim_idx = gfp_zone(gfp_mask);
  if (kernel.tracer.enabled('mm_vmscan_direct_reclaim_begin')) kernel.tracer.emit('mm_vmscan_direct_reclaim_begin', { order: 0, gfp_flags: gfp_mask });
  const nr_reclaimed = do_try_to_free_pages(kernel, sc);
  if (kernel.tracer.enabled('mm_vmscan_direct_reclaim_end')) kernel.tracer.emit('mm_vmscan_direct_reclaim_end', { nr_reclaimed });
  return nr_reclaimed;
}

/**
 * reclaim(): the simulator's "reclaim N pages" command, as a write of N * PAGE_SIZE to the root
 * cgroup's memory.reclaim (user_proactive_reclaim()): batches of a quarter of what is left (at
 * least SWAP_CLUSTER_MAX, so it may reclaim more than asked), swapping allowed, from every zone.
 * @returns 0 once `nr_pages` were reclaimed, -EAGAIN when MAX_RECLAIM_RETRIES batches in a row
 * reclaimed nothing, -EINVAL for a count that is not a non-negative integer.
 */
export function reclaim(kernel: Kernel, nr_pages: number): number {
  if (!Number.isSafeInteger(nr_pages) || nr_pages < 0) return -Errno.EINVAL;
  let nr_retries = MAX_RECLAIM_RETRIES;
  let nr_reclaimed = 0;
  while (nr_reclaimed < nr_pages) {
    /* Will converge on zero, but reclaim enforces a minimum */
    const batch_size = Math.floor((nr_pages - nr_reclaimed) / 4);
    const sc = new ScanControl();
    sc.nr_to_reclaim = Math.max(batch_size, SWAP_CLUSTER_MAX);
    sc.proactive = true;
    const reclaimed = do_try_to_free_pages(kernel, sc);
    if (!reclaimed && !nr_retries--) return -Errno.EAGAIN;
    nr_reclaimed += reclaimed;
  }
  return 0;
}

/**
 * reclaim_pages(): reclaim a list of isolated folios (MADV_PAGEOUT), ignoring their references;
 * the ones kept go back to the LRU. @returns the pages reclaimed.
 */
export function reclaim_pages(kernel: Kernel, folios: Folio[]): number {
  const store = kernel.store;
  let nr_reclaimed = 0;
  const by_node = new Map<number, Folio[]>();
  for (const folio of folios) {
    folio_clear_active(store, folio);
    const nid = store.node[store.idx(folio)];
    let list = by_node.get(nid);
    if (list === undefined) by_node.set(nid, (list = []));
    list.push(folio);
  }
  for (const [nid, list] of by_node) {
    const sc = new ScanControl();
    const stat = new ReclaimStat();
    const reclaimed = shrink_folio_list(kernel, list, sc, stat, true);
    for (const folio of list) folio_putback_lru(store, folio);
    nr_reclaimed += reclaimed;
    if (kernel.tracer.enabled('mm_vmscan_reclaim_pages')) {
      kernel.tracer.emit('mm_vmscan_reclaim_pages', {
        nid,
        nr_scanned: sc.nr_scanned,
        nr_reclaimed: reclaimed,
        nr_dirty: stat.nr_dirty,
        nr_writeback: stat.nr_writeback,
        nr_congested: stat.nr_congested,
        nr_immediate: stat.nr_immediate,
        nr_activate0: stat.nr_activate[0],
        nr_activate1: stat.nr_activate[1],
        nr_ref_keep: stat.nr_ref_keep,
        nr_unmap_fail: stat.nr_unmap_fail,
      });
    }
  }
  folios.length = 0;
  return nr_reclaimed;
}
