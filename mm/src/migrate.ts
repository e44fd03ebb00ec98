/**
 * Page migration (mm/migrate.c, include/linux/migrate.h, include/linux/migrate_mode.h; Linux
 * 6.18): move an isolated folio's contents, its page-cache slot and its mappings to a new folio.
 *
 * migrate_pages() takes a list of isolated folios (folio_isolate_lru(): off the LRU, with a
 * reference) and, for each, allocates a destination (get_new_folio), locks the source, replaces
 * its mappings by migration entries (try_to_migrate(), rmap.ts), then moves it
 * (move_to_new_folio(): the mapping's ->migrate_folio, generically migrate_folio(): copy the
 * contents, freeze the references and replace the page-cache entry, copy the flags) and turns the
 * migration entries into mappings of the destination (remove_migration_ptes()). A source whose
 * references are not the expected ones (a GUP pin, another lookup) fails the move with -EAGAIN:
 * its migration entries are turned back into mappings of the source and it is retried, up to
 * NR_MAX_MIGRATE_PAGES_RETRY passes (3 asynchronous, then 7 synchronous ones for MIGRATE_SYNC),
 * after which it counts as failed and stays on the list for the caller's putback. A pinned
 * exclusive anonymous page already fails in try_to_migrate() (its mapping cannot be shared).
 * The result is the number of folios not migrated, or -ENOMEM when no destination could be had.
 *
 * A fault on a migration entry waits for the migration (migration_entry_wait(), which the Kernel
 * installs in memory.ts' migration_hooks). The simulator runs a migration to completion within one call, so
 * such a fault can only come from inside the migration (an MMU notifier callback of
 * try_to_migrate(), a tracepoint handler): the waiter then finishes the migration of that folio
 * itself (its remaining move passes, or the undo) and the access is retried, as the kernel's
 * waiter would see it once the folio is unlocked. A fault on the entries of a folio still mapped
 * elsewhere cannot be served that way and is a simulator bug.
 *
 * Not modelled: hugetlb migration (hugetlb folios are reported as not migrated, as on a kernel
 * without CONFIG_ARCH_ENABLE_HUGEPAGE_MIGRATION), splitting large folios on failure, movable_ops
 * pages (zsmalloc, balloon), device-private memory, NUMA balancing and the migration syscalls.
 * Swap-cache folios move only if the swap cache installs swap_cache_migrate_hooks.
 *
 * Costs: page_alloc per destination, page_copy_4k per page copied, page_free when the source is
 * freed; the rmap walks and entry changes charge through rmap.ts.
 */
import { BUG, BUG_ON, Errno, isMemPoison, type Pfn } from '@cocosim/core';
import { folio_add_lru, lookupMapping } from './filemap.js';
import {
  folio_get,
  folio_mapped,
  folio_mapping,
  folio_nid,
  folio_nr_pages,
  folio_order,
  folio_put,
  folio_raw_mapping,
  folio_ref_add,
  folio_ref_count,
  folio_ref_freeze,
  folio_ref_unfreeze,
  folio_test_anon,
  folio_test_ksm,
  folio_try_get,
  folio_trylock,
  folio_lock,
  folio_unlock,
  folio_zonenum,
  type Folio,
} from './folio.js';
import type { AddressSpace } from './fs.js';
import { GFP_TRANSHUGE, __GFP_HIGHMEM, __GFP_RECLAIM, type gfp_t } from './gfp.js';
import type { Kernel } from './kernel.js';
import { folio_expected_ref_count } from './memfd.js';
import { linear_page_index, type MmStruct, type VmAreaStruct } from './mm_types.js';
import { lruvec_del_folio } from './mm_inline.js';
import {
  PG_lru,
  __folio_set_swapbacked,
  folio_clear_active,
  folio_clear_dirty,
  folio_clear_private,
  folio_clear_swapcache,
  folio_clear_unevictable,
  folio_mark_uptodate,
  folio_set_active,
  folio_set_checked,
  folio_set_dirty,
  folio_set_mappedtodisk,
  folio_set_readahead,
  folio_set_referenced,
  folio_set_swapcache,
  folio_set_unevictable,
  folio_set_workingset,
  folio_test_checked,
  folio_test_clear_active,
  folio_test_clear_unevictable,
  folio_test_dirty,
  folio_test_hugetlb,
  folio_test_large,
  folio_test_locked,
  folio_test_mappedtodisk,
  folio_test_mlocked,
  folio_test_readahead,
  folio_test_referenced,
  folio_test_swapbacked,
  folio_test_swapcache,
  folio_test_unevictable,
  folio_test_uptodate,
  folio_test_workingset,
  folio_test_writeback,
} from './page-flags.js';
import { NUMA_NO_NODE, ZONE_MOVABLE, type PageStore } from './page_store.js';
import {
  PTRS_PER_PTE,
  _PAGE_NX,
  _PAGE_PSE,
  _PAGE_SOFT_DIRTY,
  pte_mkdirty,
  pte_mkold,
  pte_mkwrite,
  pte_offset_map,
  pte_index,
  pte_present,
  pte_swp_type,
  set_pmd_at,
  set_pte_at,
} from './pgtable.js';
import {
  PVMW_MIGRATION,
  PVMW_SYNC,
  PageVmaMappedWalk,
  RMAP_EXCLUSIVE,
  RMAP_NONE,
  anon_vma_lookup,
  folio_add_anon_rmap_pmd,
  folio_add_anon_rmap_ptes,
  folio_add_file_rmap_pmd,
  folio_add_file_rmap_ptes,
  page_vma_mapped_walk,
  rmap_walk,
  trace_migration_pte,
  try_to_migrate,
  try_to_unmap_flush,
  TTU_BATCH_FLUSH,
} from './rmap.js';
import {
  SWP_MIGRATION_READ,
  SWP_MIGRATION_WRITE,
  SWP_PFN_BITS,
  is_migration_type,
  is_migration_entry_dirty,
  is_migration_entry_young,
  swp_entry,
} from './swapops.js';
import { mm_migrate_copy_key } from './mm_hooks.js';

declare module '@cocosim/core' {
  interface TraceEventMap {
    /** @see include/trace/events/migrate.h TRACE_EVENT(mm_migrate_pages) */
    mm_migrate_pages: {
      succeeded: number;
      failed: number;
      thp_succeeded: number;
      thp_failed: number;
      thp_split: number;
      large_folio_split: number;
      mode: string;
      reason: string;
    };
    /** @see include/trace/events/migrate.h TRACE_EVENT(mm_migrate_pages_start) */
    mm_migrate_pages_start: { mode: string; reason: string };
    /** @see include/trace/events/migrate.h DECLARE_EVENT_CLASS(migration_pte) */
    set_migration_pte: { addr: bigint; pte: bigint; order: number };
    remove_migration_pte: { addr: bigint; pte: bigint; order: number };
  }
}

/* enum migrate_mode (include/linux/migrate_mode.h) */
/** Never block. */
export const MIGRATE_ASYNC = 0;
/** Allow blocking on most operations but not ->writepage. */
export const MIGRATE_SYNC_LIGHT = 1;
/** Block when necessary. */
export const MIGRATE_SYNC = 2;
const MIGRATE_MODE_NAMES = ['MIGRATE_ASYNC', 'MIGRATE_SYNC_LIGHT', 'MIGRATE_SYNC'];

/* enum migrate_reason (include/linux/migrate_mode.h) */
export const MR_COMPACTION = 0;
export const MR_MEMORY_FAILURE = 1;
export const MR_MEMORY_HOTPLUG = 2;
/** also applies to cpusets */
export const MR_SYSCALL = 3;
export const MR_MEMPOLICY_MBIND = 4;
export const MR_NUMA_MISPLACED = 5;
export const MR_CONTIG_RANGE = 6;
export const MR_LONGTERM_PIN = 7;
export const MR_DEMOTION = 8;
export const MR_DAMON = 9;
export const MR_TYPES = 10;
/** MIGRATE_REASON of include/trace/events/migrate.h: what the tracepoints print. */
export const MIGRATE_REASON_NAMES: readonly string[] = [
  'compaction',
  'memory_failure',
  'memory_hotplug',
  'syscall_or_cpuset',
  'mempolicy_mbind',
  'numa_misplaced',
  'contig_range',
  'longterm_pin',
  'demotion',
  'damon',
];

/** NR_MAX_MIGRATE_PAGES_RETRY: passes over the folios before giving up on the ones that fail with -EAGAIN. */
export const NR_MAX_MIGRATE_PAGES_RETRY = 10;
/** NR_MAX_MIGRATE_ASYNC_RETRY: the asynchronous passes that MIGRATE_SYNC starts with. */
export const NR_MAX_MIGRATE_ASYNC_RETRY = 3;
/** NR_MAX_MIGRATE_SYNC_RETRY. */
export const NR_MAX_MIGRATE_SYNC_RETRY = NR_MAX_MIGRATE_PAGES_RETRY - NR_MAX_MIGRATE_ASYNC_RETRY;
/** NR_MAX_BATCHED_MIGRATION: pages migrated per batch (HPAGE_PMD_NR with THP). */
export const NR_MAX_BATCHED_MIGRATION = 512;

/** migrate_folio_unmap()'s "unmapped, ready to move" (MIGRATEPAGE_UNMAP, internal to mm/migrate.c). */
const MIGRATEPAGE_UNMAP = 1;

/* old_page_state bits (mm/migrate.c) */
const PAGE_WAS_MAPPED = 1 << 0;
const PAGE_WAS_MLOCKED = 1 << 1;

/* remove_migration_ptes() flags */
export const RMP_LOCKED = 1 << 0;
export const RMP_USE_SHARED_ZEROPAGE = 1 << 1;

/** new_folio_t: a destination for `src`, or undefined (the kernel's NULL: -ENOMEM). */
export type NewFolio = (src: Folio) => Folio | undefined;
/** free_folio_t: give back a destination that was not used; undefined: folio_put() it. */
export type FreeFolio = (dst: Folio) => void;

/** struct migrate_pages_stats. */
export class MigratePagesStats {
  /** Normal and large folios migrated successfully, in units of base pages. */
  nr_succeeded = 0;
  /** Normal and large folios failed to be migrated, in units of base pages. */
  nr_failed_pages = 0;
  /** THP migrated successfully. */
  nr_thp_succeeded = 0;
  /** THP failed to be migrated. */
  nr_thp_failed = 0;
  /** THP split before migrating. */
  nr_thp_split = 0;
  /** Large folio (include THP) split before migrating. */
  nr_split = 0;
}

/* Isolation from the LRU (mm/vmscan.c, mm/migrate.c) */

/**
 * The LRU operations migration uses: folio_isolate_lru() and folio_putback_lru() live in
 * mm/vmscan.c, whose owner here (vmscan.ts) may install its own; the defaults work on the LRU
 * lists of mm_inline.ts (lruvec_del_folio(), folio_add_lru()).
 */
export interface MigrateLruOps {
  /** folio_isolate_lru(): take the folio off its LRU list with a reference; false if it was not on one. */
  folio_isolate_lru(store: PageStore, folio: Folio): boolean;
  /** folio_putback_lru(): back on its LRU list, dropping the isolation reference. */
  folio_putback_lru(store: PageStore, folio: Folio): void;
}

export const migrate_lru_ops: MigrateLruOps = {
  folio_isolate_lru(store, folio) {
    if (folio_ref_count(store, folio) === 0) BUG(`VM_BUG_ON_FOLIO: folio_isolate_lru() of free folio 0x${folio.toString(16)}`);
    const i = store.idx(folio);
    if (!(store.flags[i] & (1 << PG_lru))) return false;
    store.flags[i] &= ~(1 << PG_lru);
    folio_get(store, folio);
    lruvec_del_folio(store, folio);
    return true;
  },
  folio_putback_lru(store, folio) {
    folio_add_lru(store, folio);
    folio_put(store, folio);
  },
};

/**
 * folio_isolate_hugetlb() (mm/hugetlb.c): a hugetlb folio is taken for migration with a
 * reference (it is on no LRU). False if it is free or already isolated.
 */
export function folio_isolate_hugetlb(kernel: Kernel, folio: Folio, list: Folio[]): boolean {
  if (list.includes(folio) || !folio_try_get(kernel.store, folio)) return false;
  list.push(folio);
  return true;
}

/**
 * isolate_folio_to_list(): isolate `folio` (hugetlb, or an LRU folio: movable_ops pages are not
 * modelled) and append it to `list`.
 */
export function isolate_folio_to_list(kernel: Kernel, folio: Folio, list: Folio[]): boolean {
  const store = kernel.store;
  if (folio_test_hugetlb(store, folio)) return folio_isolate_hugetlb(kernel, folio, list);
  if (!migrate_lru_ops.folio_isolate_lru(store, folio)) return false;
  list.push(folio);
  return true;
}

/** putback_movable_pages(): put back every folio left on `list` (folio_putback_hugetlb() for hugetlb) and empty it. */
export function putback_movable_pages(kernel: Kernel, list: Folio[]): void {
  const store = kernel.store;
  for (const folio of list) {
    if (folio_test_hugetlb(store, folio)) folio_put(store, folio);
    else migrate_lru_ops.folio_putback_lru(store, folio);
  }
  list.length = 0;
}

/* The destination */

/** struct migration_target_control. */
export interface MigrationTargetControl {
  /** Node to allocate on, NUMA_NO_NODE for the source's. */
  nid: number;
  gfp_mask: gfp_t;
  reason: number;
}

/**
 * alloc_migration_target(): a folio of the source's order on the requested node: THP gfp for
 * large folios, __GFP_HIGHMEM (ZONE_MOVABLE allowed) if the source was in ZONE_MOVABLE.
 * Hugetlb sources get nothing (hugetlb migration is not modelled).
 */
export function alloc_migration_target(kernel: Kernel, src: Folio, mtc: MigrationTargetControl): Folio | undefined {
  const store = kernel.store;
  let gfp = mtc.gfp_mask;
  const nid = mtc.nid === NUMA_NO_NODE ? folio_nid(store, src) : mtc.nid;
  if (folio_test_hugetlb(store, src)) return undefined;
  let order = 0;
  if (folio_test_large(store, src)) {
    /* clear __GFP_RECLAIM to make the migration callback consistent with regular THP allocations */
    gfp &= ~__GFP_RECLAIM;
    gfp |= GFP_TRANSHUGE;
    order = folio_order(store, src);
  }
  if (folio_zonenum(store, src) === ZONE_MOVABLE) gfp |= __GFP_HIGHMEM;
  const pfn = kernel.page_alloc.__folio_alloc(gfp, order, nid);
  if (pfn < 0) return undefined;
  kernel.cost.charge('page_alloc');
  return pfn as Folio;
}

/* Moving one folio */

/**
 * The swap cache's side of moving a swap-cache folio (__swap_cache_replace_folio(),
 * mm/swap_state.c): installed by the swap cache. Without it swap-cache folios cannot move
 * (-EBUSY).
 */
export interface SwapCacheMigrateHooks {
  __swap_cache_replace_folio?(kernel: Kernel, old: Folio, nw: Folio): void;
}
export const swap_cache_migrate_hooks: SwapCacheMigrateHooks = {};

/**
 * __folio_migrate_mapping(): `dst` takes over `src`'s place: folio->mapping and ->index, the
 * page-cache (or swap-cache) entries with their references, PG_swapbacked, PG_dirty. The
 * references of `src` must be exactly `expected_count` (frozen while the entries change).
 * @returns 0, or -EAGAIN (other references), -EBUSY (a swap-cache folio without swap-cache support)
 */
export function __folio_migrate_mapping(kernel: Kernel, mapping: AddressSpace | null, dst: Folio, src: Folio, expected_count: number): number {
  const store = kernel.store;
  const si = store.idx(src);
  const di = store.idx(dst);
  const nr = folio_nr_pages(store, src);
  const swapcache = folio_test_swapcache(store, src);
  if (mapping === null && !swapcache) {
    /* No turning back from here */
    store.index[di] = store.index[si];
    store.mapping[di] = store.mapping[si];
    if (folio_test_swapbacked(store, src)) __folio_set_swapbacked(store, dst);
    return 0;
  }
  if (swapcache && swap_cache_migrate_hooks.__swap_cache_replace_folio === undefined) return -Errno.EBUSY;
  if (!folio_ref_freeze(store, src, expected_count)) return -Errno.EAGAIN;
  /* Now we know that no one else is looking at the folio: no turning back from here. */
  store.index[di] = store.index[si];
  store.mapping[di] = store.mapping[si];
  /* add cache reference */
  folio_ref_add(store, dst, nr);
  if (folio_test_swapbacked(store, src)) __folio_set_swapbacked(store, dst);
  if (swapcache) folio_set_swapcache(store, dst);
  /* Move dirty while folio refs frozen and newfolio not yet exposed */
  if (folio_test_dirty(store, src)) {
    folio_clear_dirty(store, src);
    folio_set_dirty(store, dst);
  }
  if (swapcache) {
    swap_cache_migrate_hooks.__swap_cache_replace_folio!(kernel, src, dst);
  } else {
    const index = store.index[si];
    for (let k = 0; k < nr; k++) mapping!.i_pages.xa_store(index + k, dst);
  }
  /* Drop cache reference from old folio by unfreezing to one less reference. */
  folio_ref_unfreeze(store, src, expected_count - nr);
  return 0;
}

/** folio_mc_copy(): copy every page, machine-check safe. 0 or -EHWPOISON (a poisoned source line). */
export function folio_mc_copy(kernel: Kernel, dst: Folio, src: Folio): number {
  const store = kernel.store;
  const nr = folio_nr_pages(store, src);
  for (let k = 0; k < nr; k++) {
    const key = mm_migrate_copy_key(kernel, dst + k, src + k);
    if (isMemPoison(kernel.phys.copy((dst + k) as Pfn, (src + k) as Pfn, key, key))) return -Errno.EHWPOISON;
    kernel.cost.charge('page_copy_4k');
  }
  return 0;
}

/**
 * folio_migrate_flags(): the page flags that follow the contents (referenced, uptodate, active
 * or unevictable, workingset, checked, mappedtodisk, dirty, readahead); PG_swapcache and
 * PG_private leave the source. PG_mlocked is rebuilt by remove_migration_ptes(). The simulator's
 * page owner (the VM a page belongs to) follows too (folio_copy_owner()).
 */
export function folio_migrate_flags(store: PageStore, dst: Folio, src: Folio): void {
  if (folio_test_referenced(store, src)) folio_set_referenced(store, dst);
  if (folio_test_uptodate(store, src)) folio_mark_uptodate(store, dst);
  if (folio_test_clear_active(store, src)) {
    BUG_ON(folio_test_unevictable(store, src), 'VM_BUG_ON_FOLIO: an active unevictable folio');
    folio_set_active(store, dst);
  } else if (folio_test_clear_unevictable(store, src)) {
    folio_set_unevictable(store, dst);
  }
  if (folio_test_workingset(store, src)) folio_set_workingset(store, dst);
  if (folio_test_checked(store, src)) folio_set_checked(store, dst);
  /* PG_anon_exclusive (-> PG_mappedtodisk) is always migrated via migration entries... except on unmapped first sub-pages. */
  if (folio_test_mappedtodisk(store, src)) folio_set_mappedtodisk(store, dst);
  /* Move dirty on pages not done by folio_migrate_mapping() */
  if (folio_test_dirty(store, src)) folio_set_dirty(store, dst);
  if (folio_test_swapcache(store, src)) folio_clear_swapcache(store, src);
  folio_clear_private(store, src);
  /* PG_readahead shares the same bit with PG_reclaim */
  if (folio_test_readahead(store, src)) folio_set_readahead(store, dst);
  const nr = folio_nr_pages(store, src);
  const si = store.idx(src);
  const di = store.idx(dst);
  store.owner.copyWithin(di, si, si + nr);
}

/**
 * migrate_folio(): the generic ->migrate_folio (mm/migrate.c): check the references, copy the
 * contents, move the mapping's entry and the flags. 0, -EAGAIN (unexpected references: a pin, a
 * lookup in flight), -EHWPOISON.
 */
export function migrate_folio(kernel: Kernel, mapping: AddressSpace | null, dst: Folio, src: Folio, _mode: number): number {
  const store = kernel.store;
  /* Writeback must be complete */
  BUG_ON(folio_test_writeback(store, src), 'BUG_ON: migrate_folio() of a folio under writeback');
  const expected_count = folio_expected_ref_count(store, src) + 1;
  /* Check whether src does not have extra refs before we do more work */
  if (folio_ref_count(store, src) !== expected_count) return -Errno.EAGAIN;
  let rc = folio_mc_copy(kernel, dst, src);
  if (rc) return rc;
  rc = __folio_migrate_mapping(kernel, mapping, dst, src, expected_count);
  if (rc) return rc;
  folio_migrate_flags(store, dst, src);
  return 0;
}

/**
 * fallback_migrate_folio(): a mapping without ->migrate_folio: dirty folios cannot move (no
 * writeout from migration in 6.18), clean ones move generically.
 */
function fallback_migrate_folio(kernel: Kernel, mapping: AddressSpace, dst: Folio, src: Folio, mode: number): number {
  if (folio_test_dirty(kernel.store, src)) return -Errno.EBUSY;
  return migrate_folio(kernel, mapping, dst, src, mode);
}

/** move_to_new_folio(): through the mapping's ->migrate_folio; a page-cache source loses folio->mapping. */
function move_to_new_folio(kernel: Kernel, dst: Folio, src: Folio, mode: number): number {
  const store = kernel.store;
  BUG_ON(!folio_test_locked(store, src), 'VM_BUG_ON_FOLIO: move_to_new_folio() of an unlocked source');
  BUG_ON(!folio_test_locked(store, dst), 'VM_BUG_ON_FOLIO: move_to_new_folio() to an unlocked destination');
  const mapping = lookupMapping(store, folio_mapping(store, src)) ?? null;
  let rc: number;
  if (mapping === null) rc = migrate_folio(kernel, null, dst, src, mode);
  else if (mapping.mapping_inaccessible()) rc = -Errno.EOPNOTSUPP;
  else if (mapping.a_ops.migrate_folio !== undefined) rc = mapping.a_ops.migrate_folio(mapping, dst, src, mode);
  else rc = fallback_migrate_folio(kernel, mapping, dst, src, mode);
  /* For pagecache folios, src->mapping must be cleared before src is freed. */
  if (rc === 0 && !folio_test_anon(store, src)) store.mapping[store.idx(src)] = 0;
  return rc;
}

/* Migration entries back to mappings */

/** pte_val() of a present entry as x86 stores it (for the tracepoint). */
function pte_val(pfn: number, flags: number): bigint {
  return BigInt(pfn) * 4096n + BigInt(flags & 0xfff) + (flags & _PAGE_NX ? 1n << 63n : 0n);
}

/** remove_migration_pmd() (mm/huge_memory.c): a PMD migration entry becomes a PMD mapping of `folio`. */
function remove_migration_pmd(store: PageStore, folio: Folio, pvmw: PageVmaMappedWalk): void {
  const vma = pvmw.vma;
  const mm = vma.vm_mm;
  const e = mm.pgd.pmds.get(pvmw.pmd)!;
  const type = pte_swp_type(e.flags);
  const entry = swp_entry(type, e.val);
  folio_get(store, folio);
  let pmde = (vma.vm_page_prot | _PAGE_PSE) & ~_PAGE_SOFT_DIRTY;
  if (type === SWP_MIGRATION_WRITE) pmde = pte_mkwrite(pmde);
  if (!is_migration_entry_young(entry)) pmde = pte_mkold(pmde);
  if (folio_test_dirty(store, folio) && is_migration_entry_dirty(entry)) pmde = pte_mkdirty(pmde);
  if (folio_test_anon(store, folio)) folio_add_anon_rmap_pmd(store, folio, vma, type !== SWP_MIGRATION_READ ? RMAP_EXCLUSIVE : RMAP_NONE);
  else folio_add_file_rmap_pmd(store, folio, vma);
  set_pmd_at(mm.pgd, pvmw.pmd, folio, pmde);
  trace_migration_pte(mm.kernel, 'remove_migration_pte', pvmw.address, pte_val(folio, pmde), folio_order(store, folio));
}

/**
 * remove_migration_pte(): turn `vma`'s migration entries of `src` into mappings of the matching
 * pages of `folio` (the destination, or `src` itself when the migration is undone), with the
 * VMA's protection, writable if the entry was, young and dirty as it remembers.
 */
function remove_migration_pte(kernel: Kernel, folio: Folio, src: Folio, vma: VmAreaStruct, vpn: number): boolean {
  const store = kernel.store;
  const pvmw = PageVmaMappedWalk.of(store, src, vma, vpn, PVMW_SYNC | PVMW_MIGRATION);
  while (page_vma_mapped_walk(pvmw)) {
    let idx = 0;
    if (folio_test_large(store, folio) && !folio_test_hugetlb(store, folio)) idx = linear_page_index(vma, pvmw.address) - pvmw.pgoff;
    const nw = folio + idx;
    if (pvmw.pmd >= 0) {
      remove_migration_pmd(store, folio, pvmw);
      continue;
    }
    const t = pvmw.pte!;
    const i = pvmw.pte_idx;
    const type = pte_swp_type(t.flags[i]);
    const entry = swp_entry(type, t.val[i]);
    folio_get(store, folio);
    let pte = vma.vm_page_prot;
    if (!is_migration_entry_young(entry)) pte = pte_mkold(pte);
    if (folio_test_dirty(store, folio) && is_migration_entry_dirty(entry)) pte = pte_mkdirty(pte);
    /* the simulator's swap entries keep no soft-dirty bit: pte_clear_soft_dirty() */
    pte &= ~_PAGE_SOFT_DIRTY;
    if (type === SWP_MIGRATION_WRITE) pte = pte_mkwrite(pte);
    if (folio_test_anon(store, folio)) {
      folio_add_anon_rmap_ptes(store, folio, nw, 1, vma, type !== SWP_MIGRATION_READ ? RMAP_EXCLUSIVE : RMAP_NONE);
    } else {
      folio_add_file_rmap_ptes(store, folio, nw, 1, vma);
    }
    set_pte_at(t, i, nw, pte);
    trace_migration_pte(kernel, 'remove_migration_pte', pvmw.address, pte_val(nw, pte), folio_order(store, folio));
  }
  return true;
}

/**
 * remove_migration_ptes(): every migration entry of `src` becomes a mapping of `dst` (the same
 * folio when a migration is undone). The walk is over `dst`'s VMAs (it has src's mapping and
 * index by now).
 */
export function remove_migration_ptes(kernel: Kernel, src: Folio, dst: Folio, flags: number): void {
  BUG_ON(flags & RMP_USE_SHARED_ZEROPAGE && src !== dst, 'VM_BUG_ON_FOLIO: RMP_USE_SHARED_ZEROPAGE with src != dst');
  rmap_walk(kernel, dst, {
    arg: src,
    rmap_one: (folio, vma, vpn, s) => remove_migration_pte(kernel, folio, s, vma, vpn),
  });
}

/* migrate_pages() */

/** The migration of one folio between its unmap and its move (mm/migrate.c keeps this in dst->private). */
class FolioMigration {
  old_page_state = 0;
  /** The source's anon_vma kept alive (get_anon_vma()) while the source is unmapped. */
  has_anon_vma = false;
  /** The migration was completed by a fault that waited on its entries: its final result. */
  finished = false;
  rc = 0;

  constructor(
    readonly kernel: Kernel,
    readonly src: Folio,
    readonly dst: Folio,
    readonly put_new_folio: FreeFolio | undefined,
    readonly mode: number,
    readonly reason: number,
  ) {}
}

/** The migrations whose source is unmapped (or being unmapped), by source folio, per host. */
const in_flight = new WeakMap<Kernel, Map<number, FolioMigration>>();

function in_flight_of(kernel: Kernel): Map<number, FolioMigration> {
  let m = in_flight.get(kernel);
  if (m === undefined) {
    m = new Map();
    in_flight.set(kernel, m);
  }
  return m;
}

/** migrate_folio_done(): the source is finished with; the isolation reference goes (memory-failure drops it itself). */
function migrate_folio_done(kernel: Kernel, src: Folio, reason: number): void {
  if (reason === MR_MEMORY_FAILURE) return;
  if (folio_ref_count(kernel.store, src) === 1) kernel.cost.charge('page_free');
  folio_put(kernel.store, src);
}

/** migrate_folio_undo_src(): restore the source's mappings and unlock it. */
function migrate_folio_undo_src(kernel: Kernel, src: Folio, page_was_mapped: boolean, locked: boolean): void {
  if (page_was_mapped) remove_migration_ptes(kernel, src, src, 0);
  if (locked) folio_unlock(kernel.store, src);
}

/** migrate_folio_undo_dst(): give back the unused destination. */
function migrate_folio_undo_dst(kernel: Kernel, dst: Folio, locked: boolean, put_new_folio: FreeFolio | undefined): void {
  if (locked) folio_unlock(kernel.store, dst);
  if (put_new_folio !== undefined) put_new_folio(dst);
  else folio_put(kernel.store, dst);
}

/** What migrate_folio_unmap() did: rc and, for MIGRATEPAGE_UNMAP, the migration record. */
interface UnmapResult {
  rc: number;
  m?: FolioMigration;
}

/**
 * migrate_folio_unmap(): get a destination, lock the source, replace its mappings by migration
 * entries. MIGRATEPAGE_UNMAP with the record when it is ready to move; 0 when the source turned
 * out to be free already; -ENOMEM (no destination), -EAGAIN (locked in async mode, or still
 * mapped: retry), -EBUSY (writeback in a non-sync mode).
 */
function migrate_folio_unmap(kernel: Kernel, get_new_folio: NewFolio, put_new_folio: FreeFolio | undefined, src: Folio, mode: number, reason: number): UnmapResult {
  const store = kernel.store;
  if (folio_ref_count(store, src) === 1) {
    /* Folio was freed from under us. So we are done. */
    folio_clear_active(store, src);
    folio_clear_unevictable(store, src);
    migrate_folio_done(kernel, src, reason);
    return { rc: 0 };
  }
  const dst = get_new_folio(src);
  if (dst === undefined) return { rc: -Errno.ENOMEM };
  const m = new FolioMigration(kernel, src, dst, put_new_folio, mode, reason);
  let rc = -Errno.EAGAIN;
  let locked = false;
  let dst_locked = false;
  const fail = (): UnmapResult => {
    in_flight_of(kernel).delete(src);
    migrate_folio_undo_src(kernel, src, (m.old_page_state & PAGE_WAS_MAPPED) !== 0, locked);
    migrate_folio_undo_dst(kernel, dst, dst_locked, put_new_folio);
    return { rc };
  };
  if (!folio_trylock(store, src)) {
    if (mode === MIGRATE_ASYNC) return fail();
    /* the kernel sleeps for the lock; a folio locked here stays locked: a simulator bug */
    folio_lock(store, src);
  }
  locked = true;
  if (folio_test_mlocked(store, src)) m.old_page_state |= PAGE_WAS_MLOCKED;
  if (folio_test_writeback(store, src)) {
    if (mode !== MIGRATE_SYNC) {
      rc = -Errno.EBUSY;
      return fail();
    }
    BUG('migrate_folio_unmap(): waiting for writeback is not modelled');
  }
  /* get_anon_vma(): the anon_vma must outlive the unmapped source */
  if (folio_test_anon(store, src) && !folio_test_ksm(store, src)) {
    m.has_anon_vma = anon_vma_lookup(kernel, folio_raw_mapping(store, src)) !== undefined;
  }
  /* Block others from accessing the new page when we get around to establishing additional references. */
  if (!folio_trylock(store, dst)) return fail();
  dst_locked = true;
  if (store.mapping[store.idx(src)] !== 0 && folio_mapped(store, src)) {
    /* Establish migration ptes */
    BUG_ON(folio_test_anon(store, src) && !folio_test_ksm(store, src) && !m.has_anon_vma, 'VM_BUG_ON_FOLIO: a mapped anon folio without anon_vma');
    m.old_page_state |= PAGE_WAS_MAPPED;
    in_flight_of(kernel).set(src, m);
    try_to_migrate(kernel, src, mode === MIGRATE_ASYNC ? TTU_BATCH_FLUSH : 0);
  }
  if (m.finished) return { rc: MIGRATEPAGE_UNMAP, m };
  if (!folio_mapped(store, src)) {
    in_flight_of(kernel).set(src, m);
    return { rc: MIGRATEPAGE_UNMAP, m };
  }
  return fail();
}

/**
 * migrate_folio_move(): move the unmapped source to its destination and map the destination
 * where the source was. 0 (the source is released), -EAGAIN (kept unmapped for another pass),
 * or another error after undoing everything.
 */
function migrate_folio_move(m: FolioMigration): number {
  const { kernel, src, dst, mode, reason } = m;
  const store = kernel.store;
  const rc = move_to_new_folio(kernel, dst, src, mode);
  if (rc) {
    /* A folio that has not been migrated will be restored to right list unless we want to retry. */
    if (rc === -Errno.EAGAIN) return rc;
    in_flight_of(kernel).delete(src);
    migrate_folio_undo_src(kernel, src, (m.old_page_state & PAGE_WAS_MAPPED) !== 0, true);
    migrate_folio_undo_dst(kernel, dst, true, m.put_new_folio);
    return rc;
  }
  /* When successful, push dst to LRU immediately: remove_migration_ptes() builds its mlock_count. */
  folio_add_lru(store, dst);
  if (m.old_page_state & PAGE_WAS_MAPPED) remove_migration_ptes(kernel, src, dst, 0);
  in_flight_of(kernel).delete(src);
  folio_unlock(store, dst);
  /* If migration is successful, decrease refcount of dst, which will not free the page because new page owner increased refcounter. */
  folio_put(store, dst);
  folio_unlock(store, src);
  migrate_folio_done(kernel, src, reason);
  return 0;
}

/** migrate_folios_undo() for one pair still unmapped after the last pass: map the source again. */
function migrate_folio_give_up(m: FolioMigration): void {
  in_flight_of(m.kernel).delete(m.src);
  migrate_folio_undo_src(m.kernel, m.src, (m.old_page_state & PAGE_WAS_MAPPED) !== 0, true);
  migrate_folio_undo_dst(m.kernel, m.dst, true, m.put_new_folio);
}

/**
 * The waiter's side (migration_entry_wait()): a fault found a migration entry of `m`'s source.
 * Run what the migration still has to do for it, as the kernel's waiter would find it done when
 * the source is unlocked: the move, retried over the remaining passes, or the undo.
 */
function finish_migration(m: FolioMigration): void {
  let rc = -Errno.EAGAIN;
  for (let pass = 0; pass < NR_MAX_MIGRATE_PAGES_RETRY && rc === -Errno.EAGAIN; pass++) rc = migrate_folio_move(m);
  if (rc === -Errno.EAGAIN) migrate_folio_give_up(m);
  m.finished = true;
  m.rc = rc;
}

/**
 * migration_entry_wait() (mm/migrate.c): a fault at page `vpn` of `mm` found a migration entry.
 * The kernel sleeps until the migration of its folio ends; see the file comment for how the
 * simulator gets there. The faulting access is retried by the caller.
 */
export function migration_entry_wait(mm: MmStruct, vpn: number): void {
  const kernel = mm.kernel;
  const store = kernel.store;
  let offset: number;
  const t = pte_offset_map(mm.pgd, vpn);
  if (t !== undefined) {
    const i = pte_index(vpn);
    if (pte_present(t.flags[i]) || !is_migration_type(pte_swp_type(t.flags[i]))) return;
    offset = t.val[i];
  } else {
    const e = mm.pgd.pmds.get(Math.floor(vpn / PTRS_PER_PTE));
    if (e === undefined || pte_present(e.flags) || !is_migration_type(pte_swp_type(e.flags))) return;
    offset = e.val;
  }
  const pfn = offset % 2 ** SWP_PFN_BITS;
  const folio = (pfn - store.head_offset[store.idx(pfn)]) as Folio;
  const m = in_flight.get(kernel)?.get(folio);
  const what = `migration_entry_wait() at vpn ${vpn}: folio 0x${folio.toString(16)}`;
  if (m === undefined || m.finished) BUG(`${what} is not being migrated; the waiter would sleep forever`);
  if (folio_mapped(store, folio)) BUG(`${what} is still being unmapped; the simulator cannot wait for that`);
  finish_migration(m);
}

/** The per-call state of migrate_pages(). */
interface MigrateCtl {
  readonly kernel: Kernel;
  readonly get_new_folio: NewFolio;
  readonly put_new_folio: FreeFolio | undefined;
  readonly reason: number;
  readonly stats: MigratePagesStats;
}

function is_thp(store: PageStore, folio: Folio): boolean {
  return folio_order(store, folio) === 9;
}

/**
 * migrate_pages_batch(): up to `nr_pass` passes of unmapping every folio of `from`, then up to
 * `nr_pass` passes of moving the unmapped ones. Folios that succeed leave `from`; those failing
 * for good go to `ret_folios`; those still failing with -EAGAIN (or left by -ENOMEM) stay.
 * @returns the number of folios not migrated, or -ENOMEM
 */
function migrate_pages_batch(ctl: MigrateCtl, from: Folio[], mode: number, ret_folios: Folio[], nr_pass: number): number {
  const { kernel, stats } = ctl;
  const store = kernel.store;
  let retry = 1;
  let thp_retry = 0;
  let nr_failed = 0;
  let nr_retry_pages = 0;
  let rc_saved = 0;
  const unmapped: FolioMigration[] = [];
  let out_early = false;
  for (let pass = 0; pass < nr_pass && retry; pass++) {
    retry = 0;
    thp_retry = 0;
    nr_retry_pages = 0;
    for (let k = 0; k < from.length; ) {
      const folio = from[k];
      const thp = is_thp(store, folio) ? 1 : 0;
      const nr_pages = folio_nr_pages(store, folio);
      const r = migrate_folio_unmap(kernel, ctl.get_new_folio, ctl.put_new_folio, folio, mode, ctl.reason);
      /*
       * The rules are:
       *   0: folio will be freed
       *   -EAGAIN: stay on the from list
       *   -ENOMEM: stay on the from list
       *   Other errno: put on ret_folios list
       */
      if (r.rc === -Errno.ENOMEM) {
        /* When memory is low, don't bother to try to migrate other folios, move unmapped folios, then exit. */
        nr_failed++;
        stats.nr_thp_failed += thp;
        stats.nr_failed_pages += nr_pages + nr_retry_pages;
        stats.nr_thp_failed += thp_retry;
        rc_saved = r.rc;
        out_early = unmapped.length === 0;
        break;
      }
      if (r.rc === -Errno.EAGAIN) {
        retry++;
        thp_retry += thp;
        nr_retry_pages += nr_pages;
        k++;
        continue;
      }
      from.splice(k, 1);
      if (r.rc === 0) {
        stats.nr_succeeded += nr_pages;
        stats.nr_thp_succeeded += thp;
      } else if (r.rc === MIGRATEPAGE_UNMAP) {
        unmapped.push(r.m!);
      } else {
        /* Permanent failure (-EBUSY, etc.): not retried in the next outer loop. */
        nr_failed++;
        stats.nr_thp_failed += thp;
        stats.nr_failed_pages += nr_pages;
        ret_folios.push(folio);
      }
    }
    if (rc_saved) break;
  }
  if (!rc_saved) {
    nr_failed += retry;
    stats.nr_thp_failed += thp_retry;
    stats.nr_failed_pages += nr_retry_pages;
  }
  if (out_early) return rc_saved;
  /* Flush TLBs for all unmapped folios */
  try_to_unmap_flush(kernel);
  retry = 1;
  for (let pass = 0; pass < nr_pass && retry; pass++) {
    retry = 0;
    thp_retry = 0;
    nr_retry_pages = 0;
    for (let k = 0; k < unmapped.length; ) {
      const m = unmapped[k];
      const thp = is_thp(store, m.src) ? 1 : 0;
      const nr_pages = folio_nr_pages(store, m.src);
      const rc = m.finished ? m.rc : migrate_folio_move(m);
      /*
       * The rules are:
       *   0: folio will be freed
       *   -EAGAIN: stay on the unmap_folios list
       *   Other errno: put on ret_folios list
       */
      if (rc === -Errno.EAGAIN && !m.finished) {
        retry++;
        thp_retry += thp;
        nr_retry_pages += nr_pages;
        k++;
        continue;
      }
      unmapped.splice(k, 1);
      if (rc === 0) {
        stats.nr_succeeded += nr_pages;
        stats.nr_thp_succeeded += thp;
      } else {
        nr_failed++;
        stats.nr_thp_failed += thp;
        stats.nr_failed_pages += nr_pages;
        ret_folios.push(m.src);
      }
    }
  }
  nr_failed += retry;
  stats.nr_thp_failed += thp_retry;
  stats.nr_failed_pages += nr_retry_pages;
  /* Cleanup remaining folios: migrate_folios_undo() */
  for (const m of unmapped) {
    migrate_folio_give_up(m);
    ret_folios.push(m.src);
  }
  return rc_saved ? rc_saved : nr_failed;
}

/**
 * migrate_pages_sync(): a first batch in MIGRATE_ASYNC mode, then what failed one folio at a
 * time in the requested mode.
 */
function migrate_pages_sync(ctl: MigrateCtl, from: Folio[], mode: number, ret_folios: Folio[]): number {
  const astats = new MigratePagesStats();
  const actl: MigrateCtl = { ...ctl, stats: astats };
  const folios: Folio[] = [];
  /* Try to migrate in batch with MIGRATE_ASYNC mode firstly */
  let rc = migrate_pages_batch(actl, from, MIGRATE_ASYNC, folios, NR_MAX_MIGRATE_ASYNC_RETRY);
  const stats = ctl.stats;
  stats.nr_succeeded += astats.nr_succeeded;
  stats.nr_thp_succeeded += astats.nr_thp_succeeded;
  stats.nr_thp_split += astats.nr_thp_split;
  stats.nr_split += astats.nr_split;
  if (rc < 0) {
    stats.nr_failed_pages += astats.nr_failed_pages;
    stats.nr_thp_failed += astats.nr_thp_failed;
    ret_folios.push(...folios, ...from.splice(0));
    return rc;
  }
  stats.nr_thp_failed += astats.nr_thp_split;
  let nr_failed = astats.nr_split;
  /* Fall back to migrate all failed folios one by one synchronously. */
  from.push(...folios.splice(0));
  while (from.length !== 0) {
    const one = [from.shift()!];
    rc = migrate_pages_batch(ctl, one, mode, ret_folios, NR_MAX_MIGRATE_SYNC_RETRY);
    ret_folios.push(...one);
    if (rc < 0) {
      ret_folios.push(...from.splice(0));
      return rc;
    }
    nr_failed += rc;
  }
  return nr_failed;
}

/**
 * migrate_pages(): migrate the isolated folios of `from` to destinations from `get_new_folio`
 * (given back through `put_new_folio`, or folio_put(), when unused). The folios that could not
 * be migrated are left in `from` for the caller to put back (putback_movable_pages()).
 * @returns the number of folios not migrated (0: all of them moved), or -ENOMEM
 */
export function migrate_pages(
  kernel: Kernel,
  from: Folio[],
  get_new_folio: NewFolio,
  put_new_folio: FreeFolio | undefined,
  mode: number,
  reason: number,
  ret_succeeded?: { nr: number },
): number {
  const store = kernel.store;
  const tracer = kernel.tracer;
  if (tracer.enabled('mm_migrate_pages_start')) {
    tracer.emit('mm_migrate_pages_start', { mode: MIGRATE_MODE_NAMES[mode], reason: MIGRATE_REASON_NAMES[reason] });
  }
  const stats = new MigratePagesStats();
  const ctl: MigrateCtl = { kernel, get_new_folio, put_new_folio, reason, stats };
  const ret_folios: Folio[] = [];
  let rc_gather = 0;
  /* migrate_hugetlbs(): hugepage_migration_supported() is false here */
  for (let k = 0; k < from.length; ) {
    if (!folio_test_hugetlb(store, from[k])) {
      k++;
      continue;
    }
    rc_gather++;
    stats.nr_failed_pages += folio_nr_pages(store, from[k]);
    ret_folios.push(...from.splice(k, 1));
  }
  while (from.length !== 0) {
    let nr_pages = 0;
    let cut = from.length;
    for (let k = 0; k < from.length; k++) {
      nr_pages += folio_nr_pages(store, from[k]);
      if (nr_pages >= NR_MAX_BATCHED_MIGRATION) {
        cut = k + 1;
        break;
      }
    }
    const folios = from.splice(0, cut);
    const rc = mode === MIGRATE_ASYNC
      ? migrate_pages_batch(ctl, folios, mode, ret_folios, NR_MAX_MIGRATE_PAGES_RETRY)
      : migrate_pages_sync(ctl, folios, mode, ret_folios);
    ret_folios.push(...folios);
    if (rc < 0) {
      rc_gather = rc;
      ret_folios.push(...from.splice(0));
      break;
    }
    rc_gather += rc;
  }
  /* Put the permanent failure folio back to migration list, they will be put back to the right list by the caller. */
  from.push(...ret_folios);
  if (from.length === 0) rc_gather = 0;
  if (tracer.enabled('mm_migrate_pages')) {
    tracer.emit('mm_migrate_pages', {
      succeeded: stats.nr_succeeded,
      failed: stats.nr_failed_pages,
      thp_succeeded: stats.nr_thp_succeeded,
      thp_failed: stats.nr_thp_failed,
      thp_split: stats.nr_thp_split,
      large_folio_split: stats.nr_split,
      mode: MIGRATE_MODE_NAMES[mode],
      reason: MIGRATE_REASON_NAMES[reason],
    });
  }
  if (ret_succeeded !== undefined) ret_succeeded.nr = stats.nr_succeeded;
  return rc_gather;
}
