/**
 * madvise(2) (mm/madvise.c, Linux 6.18).
 *
 * Order of checks (verified on Linux 6.18): unknown advice -> EINVAL (before anything else);
 * start not page aligned -> EINVAL; a length that rounds up from a small negative to 0, or a
 * range that wraps -> EINVAL; an empty range -> 0 (even unmapped). Then the advice is applied VMA
 * by VMA; pages of the range not covered by any VMA make the call fail with ENOMEM at the end
 * (after the mapped parts were advised), and a range with no VMA at all is ENOMEM at once.
 *
 * What each advice does here:
 *   - MADV_DONTNEED / MADV_DONTNEED_LOCKED: zap the range (anon pages: zero-filled on the next
 *     touch; file pages: refaulted from the page cache, MAP_PRIVATE copies dropped; hwpoison
 *     entries go too, guard markers stay). EINVAL on VM_PFNMAP, and on VM_LOCKED for DONTNEED.
 *   - MADV_FREE: anon private only (else EINVAL); the pages become lazily freeable (clean,
 *     !swapbacked, on the inactive file list) and keep their contents until reclaim drops them
 *     (unless written again); swapped-out pages and hwpoison entries of the range go at once.
 *   - MADV_REMOVE: punch a hole in the file through f_op->fallocate (shmem): EINVAL on VM_LOCKED
 *     or without a file, EACCES unless the mapping is shared and may be written.
 *   - MADV_POPULATE_READ/WRITE: fault the range in with the mapping's permissions: ENOMEM for a
 *     hole, EINVAL for a VMA that cannot be populated that way (no read/write permission,
 *     VM_IO/VM_PFNMAP), EFAULT for SIGBUS/SIGSEGV faults (past EOF), EHWPOISON for poison.
 *   - MADV_HWPOISON / MADV_SOFT_OFFLINE: unknown advice (EINVAL) unless the host is configured
 *     with memory-failure support (vm_sysctl().memory_failure, off like the oracle's kernel) and
 *     memory-failure.ts has installed its handlers in `memory_failure_hooks`.
 *   - MADV_NORMAL, RANDOM, SEQUENTIAL, DONTFORK, DOFORK, WIPEONFORK, KEEPONFORK, DONTDUMP,
 *     DODUMP, MERGEABLE, UNMERGEABLE, HUGEPAGE, NOHUGEPAGE: VMA flags (splitting and merging
 *     VMAs), with the kernel's EINVAL cases; a -ENOMEM from a split becomes EAGAIN.
 *   - MADV_COLD / MADV_PAGEOUT (EINVAL on VM_LOCKED, VM_PFNMAP, hugetlb): the LRU folios mapped
 *     only by this process are deactivated (COLD, clearing the young bits) or reclaimed at once,
 *     their references ignored (PAGEOUT, vmscan.ts reclaim_pages(): swapped out if there is swap,
 *     else kept and activated; a shmem page is unmapped even then). Large folios are left alone
 *     (the kernel would split them).
 *   - MADV_WILLNEED: nothing to read ahead (no readahead is modelled).
 *   - MADV_GUARD_INSTALL / MADV_GUARD_REMOVE: guard PTE markers (access: SIGSEGV SEGV_MAPERR);
 *     install zaps what is mapped first; EINVAL on VM_SPECIAL, hugetlb, and (install) VM_LOCKED.
 *   - MADV_COLLAPSE (khugepaged.ts madvise_collapse()): EINVAL for a VMA that cannot take a PMD
 *     (thp_vma_allowable_order() with TVA_FORCED_COLLAPSE), 0 for a range that holds no whole
 *     aligned 2 MiB or only PMD-mapped THPs; anonymous small pages are collapsed into a THP,
 *     shmem pages by collapse_file() (its holes filled; kept as small folios, see khugepaged.ts).
 */
import { Errno, type Pfn } from '@cocosim/core';
import { folio_mapcount, folio_nr_pages, folio_test_anon, folio_trylock, folio_unlock, page_folio, type Folio } from './folio.js';
import { faultin_page_range, get_user_pages_fast } from './gup.js';
import type { Kernel } from './kernel.js';
import { madvise_collapse } from './khugepaged.js';
import { zap_page_range_single } from './memory.js';
import {
  MADV_COLD,
  MADV_COLLAPSE,
  MADV_DODUMP,
  MADV_DOFORK,
  MADV_DONTDUMP,
  MADV_DONTFORK,
  MADV_DONTNEED,
  MADV_DONTNEED_LOCKED,
  MADV_FREE,
  MADV_GUARD_INSTALL,
  MADV_GUARD_REMOVE,
  MADV_HUGEPAGE,
  MADV_HWPOISON,
  MADV_KEEPONFORK,
  MADV_MERGEABLE,
  MADV_NOHUGEPAGE,
  MADV_NORMAL,
  MADV_PAGEOUT,
  MADV_POPULATE_READ,
  MADV_POPULATE_WRITE,
  MADV_RANDOM,
  MADV_REMOVE,
  MADV_SEQUENTIAL,
  MADV_SOFT_OFFLINE,
  MADV_UNMERGEABLE,
  MADV_WILLNEED,
  MADV_WIPEONFORK,
  int_arg,
  ulong_arg,
} from './mman.js';
import {
  MM_SWAPENTS,
  VM_DONTCOPY,
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_DROPPABLE,
  VM_HUGEPAGE,
  VM_HUGETLB,
  VM_IO,
  VM_LOCKED,
  VM_MAYSHARE,
  VM_MERGEABLE,
  VM_MIXEDMAP,
  VM_NOHUGEPAGE,
  VM_PFNMAP,
  VM_RAND_READ,
  VM_SEQ_READ,
  VM_SHARED,
  VM_SPECIAL,
  VM_WIPEONFORK,
  is_vm_hugetlb_page,
  vm_flags_andnot,
  vm_flags_or,
  vm_flags_test,
  vm_sysctl,
  vma_is_anonymous,
  vma_is_shared_maywrite,
  type MmStruct,
  type VmAreaStruct,
} from './mm_types.js';
import { vfs_fallocate } from './open.js';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE } from './uapi/falloc.js';
import {
  folio_clear_dirty,
  folio_clear_referenced,
  folio_set_workingset,
  folio_test_active,
  folio_test_dirty,
  folio_test_large,
  folio_test_lru,
  folio_test_swapcache,
  folio_test_unevictable,
} from './page-flags.js';
import { folio_deactivate, folio_isolate_lru, folio_mark_lazyfree, folio_putback_lru } from './swap.js';
import { folio_free_swap, free_swap_and_cache_nr } from './swap_state.js';
import { reclaim_pages } from './vmscan.js';
import {
  PTRS_PER_PTE,
  _PAGE_ACCESSED,
  _PAGE_SPECIAL,
  _PAGE_DIRTY,
  is_swap_pte,
  pte_alloc,
  pte_clear,
  pte_free_if_empty,
  pte_present,
  pte_swp_type,
  set_swp_pte_at,
  walk_pte_tables,
} from './pgtable.js';
import { anon_vma_prepare } from './rmap.js';
import { MAX_SWAPFILES, PTE_MARKER_GUARD, PTE_MARKER_POISONED, SWP_HWPOISON, SWP_PTE_MARKER, swp_entry } from './swapops.js';
import { flush_tlb_mm_range } from './tlb.js';
import { find_vma, vma_modify_flags } from './vma.js';
import { vm_normal_page } from './memory.js';

/** MF_* flags of memory_failure() (include/linux/mm.h) that MADV_HWPOISON passes. */
export const MF_COUNT_INCREASED = 1 << 0;
export const MF_ACTION_REQUIRED = 1 << 1;
export const MF_SW_SIMULATED = 1 << 5;

/**
 * The memory-failure entry points MADV_HWPOISON and MADV_SOFT_OFFLINE call; memory-failure.ts
 * installs them. Results are 0 | -errno.
 */
export interface MemoryFailureHooks {
  /** memory_failure(); `current` is the caller's mm (MF_ACTION_REQUIRED signals its task). */
  memory_failure?(kernel: Kernel, pfn: Pfn, flags: number, current?: MmStruct): number;
  soft_offline_page?(kernel: Kernel, pfn: Pfn, flags: number): number;
}
export const memory_failure_hooks: MemoryFailureHooks = {};

/** CONFIG_MEMORY_FAILURE on this host: configured, and the handlers are there. */
function memory_failure_enabled(kernel: Kernel): boolean {
  return vm_sysctl(kernel).memory_failure && memory_failure_hooks.memory_failure !== undefined;
}

/** madvise_behavior_valid(). */
function madvise_behavior_valid(kernel: Kernel, behavior: number): boolean {
  switch (behavior) {
    case MADV_DOFORK:
    case MADV_DONTFORK:
    case MADV_NORMAL:
    case MADV_SEQUENTIAL:
    case MADV_RANDOM:
    case MADV_REMOVE:
    case MADV_WILLNEED:
    case MADV_DONTNEED:
    case MADV_DONTNEED_LOCKED:
    case MADV_FREE:
    case MADV_COLD:
    case MADV_PAGEOUT:
    case MADV_POPULATE_READ:
    case MADV_POPULATE_WRITE:
    case MADV_MERGEABLE:
    case MADV_UNMERGEABLE:
    case MADV_HUGEPAGE:
    case MADV_NOHUGEPAGE:
    case MADV_COLLAPSE:
    case MADV_DONTDUMP:
    case MADV_DODUMP:
    case MADV_WIPEONFORK:
    case MADV_KEEPONFORK:
    case MADV_GUARD_INSTALL:
    case MADV_GUARD_REMOVE:
      return true;
    case MADV_SOFT_OFFLINE:
    case MADV_HWPOISON:
      return memory_failure_enabled(kernel);
    default:
      return false;
  }
}

/** The result of advising one VMA: an errno and the VMA now covering the range (prev). */
interface VmaAdvice {
  error: number;
  /** The VMA that covers the advised range afterwards; undefined when the lock was dropped. */
  prev: VmAreaStruct | undefined;
}

/** madvise_update_vma(): give pages [start, end) of `vma` the flags `new_flags`. */
function madvise_update_vma(vma: VmAreaStruct, start: number, end: number, new_flags: number): VmaAdvice {
  if (new_flags === vma.vm_flags) return { error: 0, prev: vma };
  const nv = vma_modify_flags(vma, start, end, new_flags);
  if (typeof nv === 'number') return { error: nv, prev: vma };
  nv.vm_flags = new_flags;
  return { error: 0, prev: nv };
}

/** madvise_dontneed_free_valid_vma(): DONTNEED and FREE refuse VM_PFNMAP (and VM_LOCKED). */
function madvise_dontneed_free_valid_vma(vma: VmAreaStruct, behavior: number): boolean {
  if (!is_vm_hugetlb_page(vma)) {
    let forbidden = VM_PFNMAP;
    if (behavior !== MADV_DONTNEED_LOCKED) forbidden |= VM_LOCKED;
    return !(vma.vm_flags & forbidden);
  }
  return behavior === MADV_DONTNEED || behavior === MADV_DONTNEED_LOCKED;
}

/**
 * madvise_free_single_vma() (madvise_free_pte_range()): anon pages in [start, end) become lazily
 * freeable: clean PTEs and folio, out of the swap cache, on the inactive file list
 * (folio_mark_lazyfree()). A swapped-out page is dropped with its slot, and hwpoison entries go.
 */
function madvise_free_single_vma(vma: VmAreaStruct, start: number, end: number): number {
  /* MADV_FREE works for only anon vma at the moment */
  if (!vma_is_anonymous(vma)) return -Errno.EINVAL;
  const mm = vma.vm_mm;
  const kernel = mm.kernel;
  const store = kernel.store;
  let flush = false;
  let nr_swap = 0;
  walk_pte_tables(mm.pgd, start, end, (t, _pmd, from, to) => {
    for (let i = from; i < to; i++) {
      const f = t.flags[i];
      if (f === 0) continue;
      if (!pte_present(f)) {
        const type = pte_swp_type(f);
        if (type < MAX_SWAPFILES) {
          nr_swap--;
          free_swap_and_cache_nr(kernel, swp_entry(type, t.val[i]), 1);
          pte_clear(t, i);
        } else if (type === SWP_HWPOISON || (type === SWP_PTE_MARKER && t.val[i] & PTE_MARKER_POISONED)) {
          pte_clear(t, i);
        }
        continue;
      }
      const page = vm_normal_page(store, f, t.val[i]);
      if (page < 0) continue;
      const folio = page_folio(store, page);
      if (folio_test_swapcache(store, folio) || folio_test_dirty(store, folio)) {
        if (!folio_trylock(store, folio)) continue;
        /* A large folio fully mapped here is exclusive when its mapcount is its size. */
        if (folio_mapcount(store, folio) !== folio_nr_pages(store, folio) || (folio_test_swapcache(store, folio) && !folio_free_swap(kernel, folio))) {
          folio_unlock(store, folio);
          continue;
        }
        folio_clear_dirty(store, folio);
        folio_unlock(store, folio);
      }
      if (f & (_PAGE_ACCESSED | _PAGE_DIRTY)) {
        t.flags[i] = f & ~(_PAGE_ACCESSED | _PAGE_DIRTY);
        flush = true;
      }
      folio_mark_lazyfree(store, folio);
    }
  });
  if (nr_swap) mm.add_mm_counter(MM_SWAPENTS, nr_swap);
  if (flush) flush_tlb_mm_range(mm, start, end);
  return 0;
}

/** madvise_dontneed_free(). */
function madvise_dontneed_free(vma: VmAreaStruct, start: number, end: number, behavior: number): number {
  if (!madvise_dontneed_free_valid_vma(vma, behavior)) return -Errno.EINVAL;
  if (start === end) return 0;
  if (behavior === MADV_FREE) return madvise_free_single_vma(vma, start, end);
  zap_page_range_single(vma, start, end - start, null);
  return 0;
}

/** madvise_remove(): punch a hole in the shared file under [start, end). */
function madvise_remove(vma: VmAreaStruct, start: number, end: number): number {
  if (vma.vm_flags & VM_LOCKED) return -Errno.EINVAL;
  const f = vma.vm_file;
  if (f === null) return -Errno.EINVAL;
  if (!vma_is_shared_maywrite(vma)) return -Errno.EACCES;
  const offset = BigInt(start - vma.start_vpn + vma.vm_pgoff) * 4096n;
  f.get_file();
  const error = vfs_fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, BigInt(end - start) * 4096n);
  f.fput();
  return error;
}

/** is_valid_guard_vma(). */
function is_valid_guard_vma(vma: VmAreaStruct, allow_locked: boolean): boolean {
  let disallowed = VM_SPECIAL | VM_HUGETLB;
  if (!allow_locked) disallowed |= VM_LOCKED;
  return !(vma.vm_flags & disallowed);
}

function is_guard_pte(f: number, val: number): boolean {
  return is_swap_pte(f) && pte_swp_type(f) === SWP_PTE_MARKER && (val & PTE_MARKER_GUARD) !== 0;
}

/**
 * madvise_guard_install(): every page of [start, end) becomes a guard marker; what is mapped
 * there is zapped first (guard markers already there stay).
 */
function madvise_guard_install(vma: VmAreaStruct, start: number, end: number): number {
  if (!is_valid_guard_vma(vma, false)) return -Errno.EINVAL;
  anon_vma_prepare(vma);
  const mm = vma.vm_mm;
  const pt = mm.pgd;
  let mapped = false;
  for (const pmd of pt.pmds.keys()) if (pmd * PTRS_PER_PTE < end && (pmd + 1) * PTRS_PER_PTE > start) mapped = true;
  walk_pte_tables(pt, start, end, (t, _pmd, from, to) => {
    for (let i = from; i < to; i++) if (t.flags[i] !== 0 && !is_guard_pte(t.flags[i], t.val[i])) mapped = true;
  });
  if (mapped) zap_page_range_single(vma, start, end - start, null);
  for (let vpn = start; vpn < end; vpn++) {
    const t = pte_alloc(pt, vpn);
    const i = vpn % PTRS_PER_PTE;
    if (t.flags[i] === 0) set_swp_pte_at(t, i, SWP_PTE_MARKER, PTE_MARKER_GUARD);
  }
  return 0;
}

/** madvise_guard_remove(): the guard markers of [start, end) go; nothing else changes. */
function madvise_guard_remove(vma: VmAreaStruct, start: number, end: number): number {
  if (!is_valid_guard_vma(vma, true)) return -Errno.EINVAL;
  const pt = vma.vm_mm.pgd;
  walk_pte_tables(pt, start, end, (t, pmd, from, to) => {
    for (let i = from; i < to; i++) if (is_guard_pte(t.flags[i], t.val[i])) pte_clear(t, i);
    if (t.nr === 0) pte_free_if_empty(pt, pmd);
  });
  return 0;
}

/** can_madv_lru_vma(): COLD and PAGEOUT need an evictable, page-backed, non-hugetlb VMA. */
function can_madv_lru_vma(vma: VmAreaStruct): boolean {
  return !(vma.vm_flags & (VM_LOCKED | VM_PFNMAP | VM_HUGETLB));
}

/**
 * can_do_file_pageout(): the process may page out the file's pages: it owns the file or may
 * write it (simulated processes run as root, so any file).
 */
function can_do_file_pageout(vma: VmAreaStruct): boolean {
  return vma.vm_file !== null;
}

/**
 * madvise_cold_or_pageout_pte_range() over pages [start, end) of `vma`: each LRU folio mapped
 * only here (mapcount equal to its size) loses PG_referenced (and, for COLD, its PTEs' young
 * bits) and is deactivated (COLD) or isolated and reclaimed at the end (PAGEOUT). PMD-mapped
 * THPs count when the range covers them whole; large folios mapped by PTEs are skipped (the
 * kernel would split them).
 */
function madvise_cold_or_pageout_range(vma: VmAreaStruct, start: number, end: number, pageout: boolean): void {
  const mm = vma.vm_mm;
  const kernel = mm.kernel;
  const store = kernel.store;
  const pageout_anon_only_filter = pageout && !vma_is_anonymous(vma) && !can_do_file_pageout(vma);
  const folio_list: Folio[] = [];
  let flush = false;
  const handle = (folio: Folio): void => {
    /* Do not interfere with other mappings of this folio and non-LRU folio. */
    if (!folio_test_lru(store, folio) || folio_mapcount(store, folio) !== 1) return;
    if (pageout_anon_only_filter && !folio_test_anon(store, folio)) return;
    /* We are deactivating a folio for accelerating reclaiming. */
    folio_clear_referenced(store, folio);
    if (folio_test_active(store, folio)) folio_set_workingset(store, folio);
    if (pageout) {
      if (folio_isolate_lru(store, folio)) {
        if (folio_test_unevictable(store, folio)) folio_putback_lru(store, folio);
        else folio_list.push(folio);
      }
    } else {
      folio_deactivate(store, folio);
    }
  };
  const pt = mm.pgd;
  for (const [pmd, e] of [...pt.pmds]) {
    const s = pmd * PTRS_PER_PTE;
    if (s < start || s + PTRS_PER_PTE > end || !pte_present(e.flags) || e.flags & _PAGE_SPECIAL) continue;
    if (!pageout && e.flags & _PAGE_ACCESSED) {
      e.flags &= ~_PAGE_ACCESSED;
      flush = true;
    }
    handle(e.val as Folio);
  }
  walk_pte_tables(pt, start, end, (t, _pmd, from, to) => {
    for (let i = from; i < to; i++) {
      const f = t.flags[i];
      if (!pte_present(f)) continue;
      const page = vm_normal_page(store, f, t.val[i]);
      if (page < 0) continue;
      const folio = page_folio(store, page);
      if (folio_test_large(store, folio)) continue;
      if (!pageout && f & _PAGE_ACCESSED && folio_test_lru(store, folio) && folio_mapcount(store, folio) === 1) {
        t.flags[i] = f & ~_PAGE_ACCESSED;
        flush = true;
      }
      handle(folio);
    }
  });
  if (flush) flush_tlb_mm_range(mm, start, end);
  if (pageout) reclaim_pages(kernel, folio_list);
}

/** madvise_cold(): deactivate the range's folios so that reclaim takes them first. */
function madvise_cold(vma: VmAreaStruct, start: number, end: number): number {
  if (!can_madv_lru_vma(vma)) return -Errno.EINVAL;
  madvise_cold_or_pageout_range(vma, start, end, false);
  return 0;
}

/** madvise_pageout(): reclaim the range's folios now. */
function madvise_pageout(vma: VmAreaStruct, start: number, end: number): number {
  if (!can_madv_lru_vma(vma)) return -Errno.EINVAL;
  /*
   * If the VMA belongs to a private file mapping, there can be private dirty pages which can be
   * paged out if even this process is neither owner nor write capable of the file.
   */
  if (!vma_is_anonymous(vma) && !can_do_file_pageout(vma) && vma.vm_flags & VM_MAYSHARE) return 0;
  madvise_cold_or_pageout_range(vma, start, end, true);
  return 0;
}

/** vma_ksm_compatible(). */
function vma_ksm_compatible(vma: VmAreaStruct): boolean {
  if (vma.vm_flags & (VM_SHARED | VM_MAYSHARE | VM_PFNMAP | VM_IO | VM_DONTEXPAND | VM_HUGETLB | VM_MIXEDMAP)) return false;
  return !vm_flags_test(vma.vm_flags, VM_DROPPABLE);
}

/** madvise_vma_behavior(): apply `behavior` to pages [start, end) of `vma`. */
function madvise_vma_behavior(vma: VmAreaStruct, start: number, end: number, behavior: number): VmaAdvice {
  let new_flags = vma.vm_flags;
  switch (behavior) {
    case MADV_REMOVE:
      return { error: madvise_remove(vma, start, end), prev: undefined };
    case MADV_WILLNEED:
      return { error: 0, prev: vma };
    case MADV_COLD:
      return { error: madvise_cold(vma, start, end), prev: vma };
    case MADV_PAGEOUT:
      return { error: madvise_pageout(vma, start, end), prev: vma };
    case MADV_FREE:
    case MADV_DONTNEED:
    case MADV_DONTNEED_LOCKED:
      return { error: madvise_dontneed_free(vma, start, end, behavior), prev: vma };
    case MADV_COLLAPSE:
      return { error: madvise_collapse(vma, start, end), prev: vma };
    case MADV_GUARD_INSTALL:
      return { error: madvise_guard_install(vma, start, end), prev: vma };
    case MADV_GUARD_REMOVE:
      return { error: madvise_guard_remove(vma, start, end), prev: vma };
    case MADV_NORMAL:
      new_flags = vm_flags_andnot(new_flags, VM_RAND_READ | VM_SEQ_READ);
      break;
    case MADV_SEQUENTIAL:
      new_flags = vm_flags_or(vm_flags_andnot(new_flags, VM_RAND_READ), VM_SEQ_READ);
      break;
    case MADV_RANDOM:
      new_flags = vm_flags_or(vm_flags_andnot(new_flags, VM_SEQ_READ), VM_RAND_READ);
      break;
    case MADV_DONTFORK:
      new_flags = vm_flags_or(new_flags, VM_DONTCOPY);
      break;
    case MADV_DOFORK:
      if (new_flags & VM_IO) return { error: -Errno.EINVAL, prev: vma };
      new_flags = vm_flags_andnot(new_flags, VM_DONTCOPY);
      break;
    case MADV_WIPEONFORK:
      /* MADV_WIPEONFORK is only supported on anonymous memory. */
      if (vma.vm_file !== null || new_flags & VM_SHARED) return { error: -Errno.EINVAL, prev: vma };
      new_flags = vm_flags_or(new_flags, VM_WIPEONFORK);
      break;
    case MADV_KEEPONFORK:
      if (vm_flags_test(new_flags, VM_DROPPABLE)) return { error: -Errno.EINVAL, prev: vma };
      new_flags = vm_flags_andnot(new_flags, VM_WIPEONFORK);
      break;
    case MADV_DONTDUMP:
      new_flags = vm_flags_or(new_flags, VM_DONTDUMP);
      break;
    case MADV_DODUMP:
      if ((!is_vm_hugetlb_page(vma) && new_flags & VM_SPECIAL) || vm_flags_test(new_flags, VM_DROPPABLE)) {
        return { error: -Errno.EINVAL, prev: vma };
      }
      new_flags = vm_flags_andnot(new_flags, VM_DONTDUMP);
      break;
    case MADV_MERGEABLE:
      /* ksm_madvise(): flags only; cocosim has no ksmd to merge pages */
      if (!vm_flags_test(new_flags, VM_MERGEABLE) && vma_ksm_compatible(vma)) new_flags = vm_flags_or(new_flags, VM_MERGEABLE);
      break;
    case MADV_UNMERGEABLE:
      new_flags = vm_flags_andnot(new_flags, VM_MERGEABLE);
      break;
    case MADV_HUGEPAGE:
      new_flags = vm_flags_or(vm_flags_andnot(new_flags, VM_NOHUGEPAGE), VM_HUGEPAGE);
      break;
    case MADV_NOHUGEPAGE:
      new_flags = vm_flags_or(vm_flags_andnot(new_flags, VM_HUGEPAGE), VM_NOHUGEPAGE);
      break;
  }
  const r = madvise_update_vma(vma, start, end, new_flags);
  /* madvise() returns EAGAIN if kernel resources, such as slab, are temporarily unavailable. */
  if (r.error === -Errno.ENOMEM) r.error = -Errno.EAGAIN;
  return r;
}

/** madvise_walk_vmas(): apply `behavior` VMA by VMA over pages [start, end). */
function madvise_walk_vmas(mm: MmStruct, start: number, end: number, behavior: number): number {
  let unmapped_error = 0;
  let vma = find_vma(mm, start);
  for (;;) {
    /* Still start < end. */
    if (vma === undefined) return -Errno.ENOMEM;
    /* Here start < (end|vma->vm_end). */
    if (start < vma.start_vpn) {
      unmapped_error = -Errno.ENOMEM;
      start = vma.start_vpn;
      if (start >= end) break;
    }
    /* Here vma->vm_start <= start < (end|vma->vm_end) */
    const tmp = Math.min(vma.end_vpn, end);
    const r = madvise_vma_behavior(vma, start, tmp, behavior);
    if (r.error) return r.error;
    start = tmp;
    const prev = r.prev;
    if (prev !== undefined && start < prev.end_vpn) start = prev.end_vpn;
    if (start >= end) break;
    vma = find_vma(mm, prev !== undefined ? prev.end_vpn : start);
  }
  return unmapped_error;
}

/** madvise_populate(): MADV_POPULATE_(READ|WRITE) over pages [start, end). */
function madvise_populate(mm: MmStruct, start: number, end: number, write: boolean): number {
  while (start < end) {
    /* Populate (prefault) page tables readable/writable. */
    const pages = faultin_page_range(mm, start, end, write);
    if (pages < 0) {
      switch (pages) {
        case -Errno.EINTR:
        case -Errno.EINVAL: /* Incompatible mappings / permissions. */
        case -Errno.EHWPOISON:
        case -Errno.EFAULT: /* VM_FAULT_SIGBUS or VM_FAULT_SIGSEGV */
          return pages;
        default:
          /* No VMA or out of memory. */
          return -Errno.ENOMEM;
      }
    }
    start += pages;
  }
  return 0;
}

/**
 * madvise_inject_error(): MADV_HWPOISON / MADV_SOFT_OFFLINE: fault in each page of the byte range
 * [start, end) with a reference and hand its pfn to memory_failure() / soft_offline_page(),
 * which keep the reference (MF_COUNT_INCREASED).
 */
function madvise_inject_error(mm: MmStruct, start: bigint, end: bigint, behavior: number): number {
  const kernel = mm.kernel;
  const store = kernel.store;
  for (let s = start; s < end; ) {
    const pages: number[] = [];
    const ret = get_user_pages_fast(mm, Number(s / 4096n), 1, 0, pages);
    if (ret !== 1) return ret;
    const pfn = pages[0] as Pfn;
    const head = page_folio(store, pfn);
    const size = BigInt(4096 * 2 ** store.order[store.idx(head)]);
    let err: number;
    if (behavior === MADV_SOFT_OFFLINE) {
      const so = memory_failure_hooks.soft_offline_page;
      err = so === undefined ? -Errno.EINVAL : so(kernel, pfn, MF_COUNT_INCREASED);
    } else {
      err = memory_failure_hooks.memory_failure!(kernel, pfn, MF_ACTION_REQUIRED | MF_COUNT_INCREASED | MF_SW_SIMULATED, mm);
      if (err === -Errno.EOPNOTSUPP) err = 0;
    }
    if (err) return err;
    s = (s / size) * size + size;
  }
  return 0;
}

/** do_madvise(). */
export function do_madvise(mm: MmStruct, ustart: unknown, ulen: unknown, ubehavior: unknown): number {
  const kernel = mm.kernel;
  const behavior = int_arg(ubehavior);
  if (behavior === undefined || !madvise_behavior_valid(kernel, behavior)) return -Errno.EINVAL;
  const start = ulong_arg(ustart);
  const len_in = ulong_arg(ulen);
  if (start === undefined || len_in === undefined) return -Errno.EINVAL;
  /* is_valid_madvise() */
  if (start % 4096n !== 0n) return -Errno.EINVAL;
  const len = BigInt.asUintN(64, len_in + 4095n) & ~4095n;
  /* Check to see whether len was rounded up from small -ve to zero */
  if (len_in !== 0n && len === 0n) return -Errno.EINVAL;
  const endb = BigInt.asUintN(64, start + len);
  if (endb < start) return -Errno.EINVAL;
  if (endb === start) return 0;
  if (behavior === MADV_HWPOISON || behavior === MADV_SOFT_OFFLINE) {
    return madvise_inject_error(mm, start, start + len_in, behavior);
  }
  const s = Number(start / 4096n);
  const e = Number(endb / 4096n);
  if (behavior === MADV_POPULATE_READ || behavior === MADV_POPULATE_WRITE) {
    return madvise_populate(mm, s, e, behavior === MADV_POPULATE_WRITE);
  }
  return madvise_walk_vmas(mm, s, e, behavior);
}

/** SYSCALL_DEFINE3(madvise). */
export function sys_madvise(mm: MmStruct, start: unknown, len: unknown, behavior: unknown): number {
  mm.kernel.cost.charge('syscall_entry');
  return do_madvise(mm, start, len, behavior);
}
