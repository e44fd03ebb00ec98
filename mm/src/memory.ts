/**
 * Page faults and zapping of user page tables (mm/memory.c, Linux 6.18).
 *
 * Faults: handle_mm_fault() -> __handle_mm_fault() -> handle_pte_fault(), which dispatches to
 *   - do_anonymous_page(): a read fault maps the shared zero page read-only (a special PTE: no
 *     refcount, no mapcount); a write fault allocates a zeroed page (GFP_HIGHUSER_MOVABLE |
 *     __GFP_ZERO), makes it the VMA's anon memory (folio_add_new_anon_rmap) and maps it writable
 *     and dirty;
 *   - do_fault(): do_read_fault() (fault-around through vm_ops->map_pages, then ->fault),
 *     do_cow_fault() (a MAP_PRIVATE write: copy the file page to a new anon page) and
 *     do_shared_fault() (->fault, ->page_mkwrite, map, dirty the folio);
 *   - do_wp_page(): a write to a present read-only PTE: reuse an exclusive anon page, copy
 *     otherwise (wp_page_copy(); from the zero page: a zeroed page), or make a shared page
 *     writable (wp_page_shared() with ->page_mkwrite);
 *   - do_swap_page(): non-present entries. hwpoison entries and poisoned markers give
 *     VM_FAULT_HWPOISON, guard markers VM_FAULT_SIGSEGV. A migration entry waits for the
 *     migration (migration_hooks: migrate.ts' migration_entry_wait()) and the access is
 *     retried. A real swap entry is read back through the swap cache (do_swap_page_swp(),
 *     swap_state.ts).
 * PMD and PUD entries: a VMA whose vm_ops has huge_fault gets the first try at a PMD-aligned
 * fault (hugetlb VMAs are faulted only through it), and finish_fault() maps a PMD-sized
 * page-cache folio by a PMD where the VMA allows (do_set_pmd()). A non-present PMD or PUD entry
 * is a THP migration entry (which waits as above) or the hwpoison entry of a poisoned hugetlb
 * page (VM_FAULT_HWPOISON_LARGE).
 *
 * References and mapcounts are the kernel's: a page mapped by a PTE holds one folio reference
 * (the one the fault handler returned, or the allocation's) and one mapcount; zapping removes the
 * rmap and drops the reference, which frees the folio when it was the last.
 *
 * Costs: page_fault_user per handle_mm_fault(), page_alloc per folio allocated, page_zero_4k per
 * page zeroed, page_copy_4k per page copied, pte_zap per entry cleared, page_free per folio
 * freed, TLB flushes through tlb.ts.
 */
import { BUG, HPAGE_PMD_NR, HPAGE_PMD_ORDER, costId, isMemPoison, type Pfn, type PgOff } from '@cocosim/core';
import { folio_add_lru, lookupMapping } from './filemap.js';
import {
  FOLIO_MAPPING_ANON,
  folio_get,
  folio_lock,
  folio_mark_dirty,
  folio_nr_pages,
  folio_order,
  folio_page_idx,
  folio_put,
  folio_ref_add,
  folio_ref_count,
  folio_test_anon,
  folio_unlock,
  page_folio,
  page_mapped,
  type Folio,
} from './folio.js';
import type { AddressSpace } from './fs.js';
import { GFP_HIGHUSER_MOVABLE, GFP_KERNEL, __GFP_FS, __GFP_IO, __GFP_ZERO, type gfp_t } from './gfp.js';
import { HugeZapResult, do_huge_pmd_anonymous_page, do_huge_pmd_wp_page, split_huge_pmd, thp_vma_allowable_anon, zap_huge_range } from './huge_memory.js';
import type { Kernel } from './kernel.js';
import {
  FAULT_FLAG_MKWRITE,
  FAULT_FLAG_UNSHARE,
  FAULT_FLAG_WRITE,
  MM_ANONPAGES,
  MM_FILEPAGES,
  MM_SHMEMPAGES,
  VM_FAULT_DONE_COW,
  VM_FAULT_ERROR,
  VM_FAULT_FALLBACK,
  VM_FAULT_HWPOISON,
  VM_FAULT_HWPOISON_LARGE,
  VM_FAULT_SET_HINDEX,
  VM_FAULT_LOCKED,
  VM_FAULT_NOPAGE,
  VM_FAULT_OOM,
  VM_FAULT_RETRY,
  VM_FAULT_SIGBUS,
  VM_FAULT_SIGSEGV,
  VM_LOCKED,
  VM_MAYSHARE,
  VM_NOHUGEPAGE,
  VM_SHARED,
  VM_SPECIAL,
  VM_WRITE,
  VmFault,
  is_vm_hugetlb_page,
  linear_page_index,
  vma_is_accessible,
  vma_is_anonymous,
  vma_pages,
  vm_sysctl,
  type MmStruct,
  type VmAreaStruct,
} from './mm_types.js';
import { mlock_new_folio } from './mlock.js';
import { folios_free_frozen } from './pagevec.js';
import { mmu_notifier_invalidate_range_end, mmu_notifier_invalidate_range_start } from './mmu_notifier.js';
import {
  PG_dirty,
  PG_head,
  PG_reclaim,
  PG_swapbacked,
  PageHWPoison,
  __folio_mark_uptodate,
  folio_test_dirty,
  folio_test_has_hwpoisoned,
  folio_test_large,
  folio_test_swapbacked,
} from './page-flags.js';
import { is_zero_pfn, type PageStore } from './page_store.js';
import {
  PTRS_PER_PTE,
  _PAGE_DIRTY,
  _PAGE_PSE,
  _PAGE_SPECIAL,
  _PAGE_SWP,
  pmd_index_of,
  pmd_none,
  pte_alloc,
  pte_free_if_empty,
  pte_index,
  pte_mkdirty,
  pte_mkspecial,
  pte_mkwrite,
  pte_mkyoung,
  pte_modify,
  pte_offset_map,
  pte_present,
  pte_protnone,
  pte_swp_type,
  pte_update_flags,
  pte_write,
  pud_index_of,
  set_pmd_at,
  set_pte_at,
  walk_pte_tables,
  type HugeEntry,
  type PteTable,
} from './pgtable.js';
import {
  PageAnonExclusive,
  RMAP_EXCLUSIVE,
  SetPageAnonExclusive,
  anon_vma_prepare,
  folio_add_file_rmap_pmd,
  folio_add_file_rmap_ptes,
  folio_add_new_anon_rmap,
  folio_remove_rmap_pte,
  vma_interval_tree_foreach,
} from './rmap.js';
import { shmem_mapping } from './shmem.js';
import {
  PTE_MARKER_GUARD,
  PTE_MARKER_POISONED,
  PTE_MARKER_UFFD_WP,
  SWP_HWPOISON,
  SWP_PFN_BITS,
  SWP_PTE_MARKER,
  is_device_type,
  is_migration_type,
} from './swapops.js';
import { flush_tlb_mm_range, flush_tlb_page } from './tlb.js';
import { mapping_unmap_hooks } from './truncate.js';
import { call_mm_hook, mm_hook_present } from './mm_hooks.js';
import { folio_free_swap, free_swap_and_cache_nr, free_swap_cache, swap_cache_alloc_folio, swap_cache_get_folio } from './swap_state.js';
import { get_swap_device, swap_free_nr, vm_swap_full } from './swapfile.js';
import { MM_SWAPENTS, VM_FAULT_MAJOR } from './mm_types.js';
import { PG_swapcache, folio_test_mlocked, folio_test_swapcache, folio_test_uptodate } from './page-flags.js';
import { pte_swp_exclusive } from './pgtable.js';
import { RMAP_NONE, folio_add_anon_rmap_ptes } from './rmap.js';
import { swp_entry } from './swapops.js';
import { Errno, IS_ERR, PTR_ERR } from '@cocosim/core';
import { NR_MM_COUNTERS, VM_MIXEDMAP, VM_PFNMAP, is_cow_mapping } from './mm_types.js';
import { PAGES_PER_PUD, _PAGE_UFFD_WP, keys_in_range, pte_mkclean, pte_mkold, pte_wrprotect, set_pud_at, set_swp_pte_at, swp_pte_flags } from './pgtable.js';
import { folio_dup_file_rmap_pmd, folio_dup_file_rmap_pte, folio_try_dup_anon_rmap_pmd, folio_try_dup_anon_rmap_pte } from './rmap.js';
import { SWP_MIGRATION_READ } from './swapops.js';
import { swap_duplicate } from './swapfile.js';
import { is_huge_zero_pfn } from './huge_memory.js';
import { alloc_hugetlb_folio, hugetlb_pool, size_to_hstate } from './hugetlb.js';
import { hugetlb_add_new_anon_rmap } from './hugetlbfs.js';

/** A huge-page fault's order for a PMD mapping (PMD_ORDER). */
export const PMD_ORDER = HPAGE_PMD_ORDER;

/* Cost entries charged on the fault and zap paths, by number (costId()). */
const PAGE_FAULT_USER = costId('page_fault_user');
const PAGE_ALLOC = costId('page_alloc');
const PAGE_ZERO_4K = costId('page_zero_4k');
const PTE_ZAP = costId('pte_zap');
const PAGE_FREE = costId('page_free');

/* Small helpers */

/** mm_counter_file(): the rss counter a page-cache folio counts in. */
export function mm_counter_file(store: PageStore, folio: number): number {
  return folio_test_swapbacked(store, folio) ? MM_SHMEMPAGES : MM_FILEPAGES;
}

/** mm_counter(): the rss counter of a mapped folio. */
export function mm_counter(store: PageStore, folio: number): number {
  return folio_test_anon(store, folio) ? MM_ANONPAGES : mm_counter_file(store, folio);
}

/** vma_is_shmem(): the VMA maps a shmem (tmpfs, memfd, MAP_SHARED|MAP_ANONYMOUS) file. */
export function vma_is_shmem(vma: VmAreaStruct): boolean {
  return vma.vm_file !== null && shmem_mapping(vma.vm_file.f_mapping);
}

/** maybe_mkwrite(): writable if the VMA is. */
function maybe_mkwrite(flags: number, vma: VmAreaStruct): number {
  return vma.vm_flags & VM_WRITE ? pte_mkwrite(flags) : flags;
}

/**
 * vm_normal_page(): the page a present PTE maps for mm's purposes, or -1 (NULL) for special
 * mappings: the zero page and raw pfns (VM_PFNMAP, VM_MIXEDMAP without struct page).
 */
export function vm_normal_page(store: PageStore, flags: number, pfn: number): number {
  if (flags & _PAGE_SPECIAL) return -1;
  if (is_zero_pfn(store, pfn)) return -1;
  return pfn;
}

/** __get_fault_gfp_mask(): the GFP of page-cache allocations for a fault of `vma`. */
function __get_fault_gfp_mask(vma: VmAreaStruct): gfp_t {
  if (vma.vm_file !== null) return vma.vm_file.f_mapping.gfp_mask | __GFP_FS | __GFP_IO;
  return GFP_KERNEL;
}

/** fault_around_pages: fault_around_bytes rounded down to a power of two, in pages (>= 1). */
function fault_around_pages(kernel: Kernel): number {
  const bytes = vm_sysctl(kernel).fault_around_bytes;
  let p = 1;
  while (p * 2 * 4096 <= bytes) p *= 2;
  return p;
}

/**
 * folio_add_lru_vma() (mm/swap.c): a new folio of `vma` joins the LRU, or the unevictable list
 * mlocked when the VMA is VM_LOCKED. The per-CPU batch is drained at once, so PG_lru is set now.
 */
export function folio_add_lru_vma(store: PageStore, folio: Folio, vma: VmAreaStruct): void {
  if ((vma.vm_flags & (VM_LOCKED | VM_SPECIAL)) === VM_LOCKED) mlock_new_folio(store, folio);
  else folio_add_lru(store, folio);
}

/** Charge the allocation (and zeroing) of a user folio and return it, or undefined on failure. */
function alloc_user_folio(kernel: Kernel, gfp: gfp_t): Folio | undefined {
  const pfn = kernel.page_alloc.folio_alloc(gfp, 0);
  if (pfn < 0) return undefined;
  kernel.cost.chargeId(PAGE_ALLOC);
  if (gfp & __GFP_ZERO) kernel.cost.chargeId(PAGE_ZERO_4K);
  return pfn as Folio;
}

/* The fault path */

/**
 * handle_mm_fault(): resolve a fault at page `vpn` of `vma` (byte `offset` within the page),
 * FAULT_FLAG_* in `flags`. The caller has checked the access against the VMA (x86
 * access_error(), GUP's check_vma_flags()). Returns VM_FAULT_* bits, 0 when the PTE is in place.
 */
export function handle_mm_fault(vma: VmAreaStruct, vpn: number, flags: number, offset = 0): number {
  const mm = vma.vm_mm;
  const kernel = mm.kernel;
  kernel.cost.chargeId(PAGE_FAULT_USER);
  if (mm_hook_present(kernel, 'handle_mm_fault')) {
    const hook = call_mm_hook(kernel, 'handle_mm_fault', vma, vpn, flags);
    if (hook) return hook;
  }
  const depth = mm.vmf_depth;
  let vmf = mm.vmf_pool[depth];
  if (vmf === undefined) {
    vmf = new VmFault(vma);
    mm.vmf_pool.push(vmf);
  } else {
    vmf.reset(vma);
  }
  vmf.vpn = vpn;
  vmf.offset_in_page = offset;
  vmf.flags = flags;
  vmf.pgoff = linear_page_index(vma, vpn);
  vmf.gfp_mask = __get_fault_gfp_mask(vma);
  mm.vmf_depth = depth + 1;
  try {
    return is_vm_hugetlb_page(vma) ? hugetlb_fault(vmf) : __handle_mm_fault(vmf);
  } finally {
    mm.vmf_depth = depth;
  }
}

/**
 * hugetlb_fault() (mm/hugetlb.c): hugetlb VMAs are faulted by their vm_ops->huge_fault, which
 * installs the PMD or PUD entry of the VMA's huge page size.
 */
function hugetlb_fault(vmf: VmFault): number {
  const pt = vmf.vma.vm_mm.pgd;
  const pud = pt.puds.size !== 0 ? pt.puds.get(pud_index_of(vmf.vpn)) : undefined;
  const e = pud ?? (pt.pmds.size !== 0 ? pt.pmds.get(pmd_index_of(vmf.vpn)) : undefined);
  if (e !== undefined && !pte_present(e.flags)) return do_huge_swap_entry(vmf, e, pud !== undefined ? 2 * PMD_ORDER : PMD_ORDER);
  const ops = vmf.vma.vm_ops;
  if (ops === null || ops.huge_fault === undefined) return VM_FAULT_SIGBUS;
  return ops.huge_fault(vmf, PMD_ORDER);
}

/**
 * A fault on a non-present PMD or PUD entry of `order`: a migration entry waits for the
 * migration (the access is retried); a hwpoison entry (a poisoned hugetlb page, unmapped by
 * memory-failure) is VM_FAULT_HWPOISON_LARGE with the page's order as its index.
 */
function do_huge_swap_entry(vmf: VmFault, e: HugeEntry, order: number): number {
  const type = pte_swp_type(e.flags);
  if (type === SWP_HWPOISON) return VM_FAULT_HWPOISON_LARGE | VM_FAULT_SET_HINDEX(order);
  if (!is_migration_type(type)) BUG(`fault on a non-present huge entry of type ${type} at vpn ${vmf.vpn}`);
  const wait = migration_hooks.migration_entry_wait;
  if (wait === undefined) BUG(`fault on a PMD migration entry at vpn ${vmf.vpn}: migration_entry_wait() would never return`);
  wait!(vmf.vma.vm_mm, vmf.vpn);
  return 0;
}

/** thp_vma_suitable_order(): a naturally aligned 2^order range around `vpn` fits the VMA (and the file). */
export function thp_vma_suitable_order(vma: VmAreaStruct, vpn: number, order: number): boolean {
  const nr = 2 ** order;
  if (!vma_is_anonymous(vma) && (vma.start_vpn - vma.vm_pgoff) % nr !== 0) return false;
  const hvpn = vpn - (vpn % nr);
  return hvpn >= vma.start_vpn && hvpn + nr <= vma.end_vpn;
}

function __handle_mm_fault(vmf: VmFault): number {
  const vma = vmf.vma;
  const pt = vma.vm_mm.pgd;
  const pmd = pmd_index_of(vmf.vpn);
  if (pt.puds.size !== 0 && pt.puds.has(pud_index_of(vmf.vpn))) {
    /* A PUD leaf is only ever installed by a huge_fault handler: let it handle the fault. */
    return vma.vm_ops?.huge_fault !== undefined ? vma.vm_ops.huge_fault(vmf, PMD_ORDER) : VM_FAULT_SIGBUS;
  }
  const huge = pt.pmds.size !== 0 ? pt.pmds.get(pmd) : undefined;
  if (huge !== undefined) {
    if (!pte_present(huge.flags)) return do_huge_swap_entry(vmf, huge, PMD_ORDER);
    if (vmf.flags & (FAULT_FLAG_WRITE | FAULT_FLAG_UNSHARE) && !pte_write(huge.flags)) return wp_huge_pmd(vmf);
    huge.flags = pte_mkyoung(vmf.flags & FAULT_FLAG_WRITE ? pte_mkdirty(huge.flags) : huge.flags);
    return 0;
  }
  if (pt.ptes.lookup(pmd) === undefined) {
    /* create_huge_pmd() */
    let ret = VM_FAULT_FALLBACK;
    if (thp_vma_allowable_anon(vma)) ret = do_huge_pmd_anonymous_page(vmf);
    else if (vma.vm_ops?.huge_fault !== undefined && thp_vma_suitable_order(vma, vmf.vpn, PMD_ORDER) && !(vma.vm_flags & VM_NOHUGEPAGE)) {
      ret = vma.vm_ops.huge_fault(vmf, PMD_ORDER);
    }
    if (!(ret & VM_FAULT_FALLBACK)) return ret;
  }
  return handle_pte_fault(vmf);
}

/**
 * wp_huge_pmd(): a write to a read-only PMD leaf. Anonymous memory: do_huge_pmd_wp_page()
 * (reuse, or a THP in place of the huge zero folio). A shared mapping asks its huge_fault
 * handler. Anything else (COW of a page-cache THP, write-notify) splits and goes by PTEs; the
 * split of a file PMD just unmaps it, so the fault refaults by PTEs.
 */
function wp_huge_pmd(vmf: VmFault): number {
  const vma = vmf.vma;
  if (vma_is_anonymous(vma)) {
    const ret = do_huge_pmd_wp_page(vmf);
    if (!(ret & VM_FAULT_FALLBACK)) return ret;
    return handle_pte_fault(vmf);
  }
  if (vma.vm_flags & (VM_SHARED | VM_MAYSHARE) && vma.vm_ops?.huge_fault !== undefined) {
    const ret = vma.vm_ops.huge_fault(vmf, PMD_ORDER);
    if (!(ret & VM_FAULT_FALLBACK)) return ret;
  }
  split_huge_pmd(vma, pmd_index_of(vmf.vpn));
  return handle_pte_fault(vmf);
}

function handle_pte_fault(vmf: VmFault): number {
  const vma = vmf.vma;
  const t = pte_offset_map(vma.vm_mm.pgd, vmf.vpn);
  if (t === undefined) return vma_is_anonymous(vma) ? do_anonymous_page(vmf) : do_fault(vmf);
  const i = pte_index(vmf.vpn);
  let f = t.flags[i];
  vmf.pte = t;
  vmf.pte_idx = i;
  vmf.orig_pte_flags = f;
  vmf.orig_pte_val = t.val[i];
  if (f === 0) return vma_is_anonymous(vma) ? do_anonymous_page(vmf) : do_fault(vmf);
  if (!pte_present(f)) return do_swap_page(vmf);
  if (pte_protnone(f) && vma_is_accessible(vma)) return do_numa_page(vmf);
  if (vmf.flags & (FAULT_FLAG_WRITE | FAULT_FLAG_UNSHARE)) {
    if (!pte_write(f)) return do_wp_page(vmf);
    if (vmf.flags & FAULT_FLAG_WRITE) f = pte_mkdirty(f);
  }
  /* A spurious fault: the PTE was made usable by someone else; mark it young. */
  pte_update_flags(t, i, pte_mkyoung(f));
  return 0;
}

/**
 * do_numa_page(): a PROT_NONE PTE in an accessible VMA is a NUMA hinting entry. The simulator
 * never creates them (it has no NUMA balancing), but one restored by mprotect is handled as the
 * kernel does: the PTE gets the VMA's protection back.
 */
function do_numa_page(vmf: VmFault): number {
  const t = vmf.pte!;
  pte_update_flags(t, vmf.pte_idx, pte_mkyoung(pte_modify(t.flags[vmf.pte_idx], vmf.vma.vm_page_prot)));
  return 0;
}

/** vmf_anon_prepare(): the VMA needs an anon_vma before an anon page can be added. */
function vmf_anon_prepare(vmf: VmFault): number {
  return anon_vma_prepare(vmf.vma) ? VM_FAULT_OOM : 0;
}

/** do_anonymous_page(): the first touch of a page of anonymous private memory. */
function do_anonymous_page(vmf: VmFault): number {
  const vma = vmf.vma;
  const mm = vma.vm_mm;
  const kernel = mm.kernel;
  const store = kernel.store;
  /* File mapping without ->vm_ops ? */
  if (vma.vm_flags & VM_SHARED) return VM_FAULT_SIGBUS;
  const t = pte_alloc(mm.pgd, vmf.vpn);
  const i = pte_index(vmf.vpn);
  /* Use the zero-page for reads */
  if (!(vmf.flags & FAULT_FLAG_WRITE) && store.zero_pfn >= 0) {
    set_pte_at(t, i, store.zero_pfn, pte_mkspecial(vma.vm_page_prot));
    return 0;
  }
  const ret = vmf_anon_prepare(vmf);
  if (ret) return ret;
  const folio = alloc_user_folio(kernel, GFP_HIGHUSER_MOVABLE | __GFP_ZERO);
  if (folio === undefined) {
    if (t.nr === 0) pte_free_if_empty(mm.pgd, pmd_index_of(vmf.vpn));
    return VM_FAULT_OOM;
  }
  __folio_mark_uptodate(store, folio);
  let entry = pte_mkyoung(vma.vm_page_prot);
  if (vma.vm_flags & VM_WRITE) entry = pte_mkwrite(pte_mkdirty(entry));
  mm.add_mm_counter(MM_ANONPAGES, 1);
  folio_add_new_anon_rmap(store, folio, vma, vmf.vpn, RMAP_EXCLUSIVE);
  folio_add_lru_vma(store, folio, vma);
  set_pte_at(t, i, folio, entry);
  return 0;
}

/** do_fault(): a fault on a file (or shmem) mapping with no PTE yet. */
function do_fault(vmf: VmFault): number {
  const vma = vmf.vma;
  if (vma.vm_ops === null || vma.vm_ops.fault === undefined) {
    /* The VMA was not fully populated on mmap() or missing VM_DONTEXPAND */
    const t = pte_offset_map(vma.vm_mm.pgd, vmf.vpn);
    return t === undefined || t.flags[pte_index(vmf.vpn)] === 0 ? VM_FAULT_SIGBUS : VM_FAULT_NOPAGE;
  }
  if (!(vmf.flags & FAULT_FLAG_WRITE)) return do_read_fault(vmf);
  if (!(vma.vm_flags & VM_SHARED)) return do_cow_fault(vmf);
  return do_shared_fault(vmf);
}

/**
 * __do_fault(): ask vm_ops->fault for the page. On success vmf.page holds a reference and its
 * folio is locked. A poisoned page is refused (VM_FAULT_HWPOISON) after being unmapped.
 */
function __do_fault(vmf: VmFault): number {
  const vma = vmf.vma;
  const store = vma.vm_mm.kernel.store;
  vmf.page = undefined;
  const ret = vma.vm_ops!.fault!(vmf);
  if (ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY | VM_FAULT_DONE_COW)) return ret;
  if (vmf.page === undefined) BUG('vm_ops->fault returned success without a page');
  const page = vmf.page!;
  const folio = page_folio(store, page);
  if (PageHWPoison(store, page)) {
    if (ret & VM_FAULT_LOCKED) {
      if (page_mapped(store, page)) unmap_mapping_folio(vma.vm_mm.kernel, folio);
      folio_unlock(store, folio);
    }
    folio_put(store, folio);
    vmf.page = undefined;
    return VM_FAULT_HWPOISON;
  }
  if (!(ret & VM_FAULT_LOCKED)) folio_lock(store, folio);
  return ret;
}

/** should_fault_around(): the VMA can map page-cache pages without ->fault. */
function should_fault_around(vmf: VmFault): boolean {
  return vmf.vma.vm_ops?.map_pages !== undefined && fault_around_pages(vmf.vma.vm_mm.kernel) > 1;
}

/**
 * do_fault_around(): call ->map_pages for the fault_around_pages-aligned window of pages around
 * the fault, clamped to the VMA and to the PTE table.
 */
function do_fault_around(vmf: VmFault): number {
  const nr_pages = fault_around_pages(vmf.vma.vm_mm.kernel);
  const pte_off = pte_index(vmf.vpn);
  /* The page offset of vmf->address within the VMA. */
  const vma_off = vmf.pgoff - vmf.vma.vm_pgoff;
  /* The PTE offset of the start address, clamped to the VMA. */
  const from_pte = Math.max(pte_off - (pte_off % nr_pages), pte_off - Math.min(pte_off, vma_off));
  /* The PTE offset of the end address, clamped to the VMA and PTE. */
  const to_pte = Math.min(from_pte + nr_pages, PTRS_PER_PTE, pte_off + vma_pages(vmf.vma) - vma_off) - 1;
  return vmf.vma.vm_ops!.map_pages!(vmf, (vmf.pgoff + from_pte - pte_off) as PgOff, (vmf.pgoff + to_pte - pte_off) as PgOff);
}

function do_read_fault(vmf: VmFault): number {
  const store = vmf.vma.vm_mm.kernel.store;
  let ret = 0;
  /*
   * Let's call ->map_pages() first and use ->fault() as fallback if page by the offset is not
   * ready to be mapped (cold cache or something).
   */
  if (should_fault_around(vmf)) {
    ret = do_fault_around(vmf);
    if (ret) return ret;
  }
  ret = __do_fault(vmf);
  if (ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY)) return ret;
  ret |= finish_fault(vmf);
  const folio = page_folio(store, vmf.page!);
  folio_unlock(store, folio);
  if (ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY)) folio_put(store, folio);
  return ret;
}

function do_cow_fault(vmf: VmFault): number {
  const vma = vmf.vma;
  const kernel = vma.vm_mm.kernel;
  const store = kernel.store;
  let ret = vmf_anon_prepare(vmf);
  if (ret) return ret;
  const folio = alloc_user_folio(kernel, GFP_HIGHUSER_MOVABLE);
  if (folio === undefined) return VM_FAULT_OOM;
  vmf.cow_page = folio;
  ret = __do_fault(vmf);
  if (ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY)) {
    free_user_folio(kernel, folio);
    return ret;
  }
  if (ret & VM_FAULT_DONE_COW) return ret;
  const src = vmf.page!;
  /* copy_mc_user_highpage(): a machine-check-safe copy; poisoned source lines fail it */
  if (isMemPoison(kernel.phys.copy(folio, src as Pfn))) {
    ret = VM_FAULT_HWPOISON;
  } else {
    kernel.cost.charge('page_copy_4k');
    __folio_mark_uptodate(store, folio);
    ret |= finish_fault(vmf);
  }
  const src_folio = page_folio(store, src);
  folio_unlock(store, src_folio);
  folio_put(store, src_folio);
  if (ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY)) free_user_folio(kernel, folio);
  return ret;
}

function do_shared_fault(vmf: VmFault): number {
  const vma = vmf.vma;
  const store = vma.vm_mm.kernel.store;
  let ret = __do_fault(vmf);
  if (ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY)) return ret;
  const folio = page_folio(store, vmf.page!);
  /* Check if the backing address space wants to know that the page is about to become writable */
  if (vma.vm_ops!.page_mkwrite !== undefined) {
    folio_unlock(store, folio);
    const tmp = do_page_mkwrite(vmf, folio);
    if (!tmp || tmp & (VM_FAULT_ERROR | VM_FAULT_NOPAGE)) {
      folio_put(store, folio);
      return tmp;
    }
  }
  ret |= finish_fault(vmf);
  if (ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY)) {
    folio_unlock(store, folio);
    folio_put(store, folio);
    return ret;
  }
  fault_dirty_shared_page(store, folio);
  return ret;
}

/** fault_dirty_shared_page(): a page of a shared mapping was written: dirty it, unlock it. */
function fault_dirty_shared_page(store: PageStore, folio: Folio): void {
  folio_mark_dirty(store, folio);
  folio_unlock(store, folio);
}

/**
 * do_page_mkwrite(): tell the file system the page is about to be written. Returns the
 * handler's bits with VM_FAULT_LOCKED (the folio locked), or 0 if the folio was truncated
 * meanwhile (retry).
 */
function do_page_mkwrite(vmf: VmFault, folio: Folio): number {
  const store = vmf.vma.vm_mm.kernel.store;
  const old_flags = vmf.flags;
  vmf.flags = FAULT_FLAG_WRITE | FAULT_FLAG_MKWRITE;
  let ret = vmf.vma.vm_ops!.page_mkwrite!(vmf);
  vmf.flags = old_flags;
  if (ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE)) return ret;
  if (!(ret & VM_FAULT_LOCKED)) {
    folio_lock(store, folio);
    if (store.mapping[store.idx(folio)] === 0) {
      folio_unlock(store, folio);
      return 0;
    }
    ret |= VM_FAULT_LOCKED;
  }
  return ret;
}

/**
 * finish_fault(): map vmf.page (or the COW copy) at the fault address. A PMD-sized page-cache
 * folio is mapped by a PMD where the VMA allows; a large shmem folio by all its PTEs that fit
 * the VMA and the PTE table; anything else by one PTE.
 */
export function finish_fault(vmf: VmFault): number {
  const vma = vmf.vma;
  const mm = vma.vm_mm;
  const store = mm.kernel.store;
  const is_cow = (vmf.flags & FAULT_FLAG_WRITE) !== 0 && !(vma.vm_flags & VM_SHARED);
  let page = (is_cow ? vmf.cow_page : vmf.page)!;
  const folio = page_folio(store, page);
  let needs_fallback = false;
  if (vma.vm_file !== null) {
    const mapping = vma.vm_file.f_mapping;
    /* Do not map with PTEs beyond i_size, nor with a PMD across it (shmem excepted). */
    needs_fallback = !shmem_mapping(mapping) &&
      Math.ceil(Number(mapping.host.i_size) / 4096) < store.index[store.idx(folio)] + folio_nr_pages(store, folio);
  }
  const pmd = pmd_index_of(vmf.vpn);
  if (pmd_none(mm.pgd, pmd) && !needs_fallback && folio_order(store, folio) === HPAGE_PMD_ORDER) {
    const ret = do_set_pmd(vmf, folio);
    if (ret !== VM_FAULT_FALLBACK) return ret;
  }
  let nr_pages = folio_nr_pages(store, folio);
  let vpn = vmf.vpn;
  if (!vma_is_shmem(vma) || needs_fallback) {
    nr_pages = 1;
  } else if (nr_pages > 1) {
    const idx = folio_page_idx(store, folio, page);
    const vma_off = vmf.pgoff - vma.vm_pgoff;
    const pte_off = pte_index(vmf.vpn);
    if (vma_off < idx || vma_off + (nr_pages - idx) > vma_pages(vma) || pte_off < idx || pte_off + (nr_pages - idx) > PTRS_PER_PTE) {
      nr_pages = 1;
    } else {
      vpn = vmf.vpn - idx;
      page = folio as Pfn;
    }
  }
  const t = pte_alloc(mm.pgd, vpn);
  const i = pte_index(vpn);
  if (nr_pages === 1) {
    /* Re-check under ptl: someone mapped it meanwhile (fault-around did). */
    if (t.flags[i] !== 0) return VM_FAULT_NOPAGE;
  } else {
    for (let k = 0; k < nr_pages; k++) {
      if (t.flags[i + k] !== 0) {
        nr_pages = 1;
        vpn = vmf.vpn;
        page = (is_cow ? vmf.cow_page : vmf.page)!;
        if (t.flags[pte_index(vpn)] !== 0) return VM_FAULT_NOPAGE;
        break;
      }
    }
  }
  folio_ref_add(store, folio, nr_pages - 1);
  set_pte_range(vmf, folio, page, nr_pages, vpn);
  mm.add_mm_counter(is_cow ? MM_ANONPAGES : mm_counter_file(store, folio), nr_pages);
  return 0;
}

/**
 * set_pte_range(): map `nr` pages [page, page + nr) of `folio` at pages [vpn, vpn + nr), with the
 * rmap (a COW copy becomes new anon memory, anything else a file mapping). The folio references
 * (one per page mapped) are the caller's. For ->map_pages implementations (filemap_map_pages).
 */
export function set_pte_range(vmf: VmFault, folio: Folio, page: number, nr: number, vpn: number): void {
  const vma = vmf.vma;
  const store = vma.vm_mm.kernel.store;
  const write = (vmf.flags & FAULT_FLAG_WRITE) !== 0;
  let entry = pte_mkyoung(vma.vm_page_prot);
  if (write) entry = maybe_mkwrite(pte_mkdirty(entry), vma);
  else if (pte_write(entry) && folio_test_dirty(store, folio)) entry = pte_mkdirty(entry);
  entry = (mm_hook_present(vma.vm_mm.kernel, 'pte_prot') && call_mm_hook(vma.vm_mm.kernel, 'pte_prot', vmf, folio)) || entry;
  if (write && !(vma.vm_flags & VM_SHARED)) {
    /* copy-on-write page */
    if (nr !== 1) BUG('set_pte_range: a COW copy of more than one page');
    folio_add_new_anon_rmap(store, folio, vma, vpn, RMAP_EXCLUSIVE);
    folio_add_lru_vma(store, folio, vma);
  } else {
    folio_add_file_rmap_ptes(store, folio, page, nr, vma);
  }
  const t = pte_alloc(vma.vm_mm.pgd, vpn);
  const i = pte_index(vpn);
  for (let k = 0; k < nr; k++) set_pte_at(t, i + k, page + k, entry);
}

/**
 * do_set_pmd(): map a PMD-sized page-cache folio by one PMD leaf. VM_FAULT_FALLBACK when the
 * VMA does not allow it (VM_NOHUGEPAGE, misaligned, too small) or a page of the folio is
 * poisoned (it must be PTE-mapped so that the poisoned page alone faults).
 */
export function do_set_pmd(vmf: VmFault, folio: Folio): number {
  const vma = vmf.vma;
  const mm = vma.vm_mm;
  const store = mm.kernel.store;
  if (vma.vm_flags & VM_NOHUGEPAGE) return VM_FAULT_FALLBACK;
  if (!thp_vma_suitable_order(vma, vmf.vpn, PMD_ORDER)) return VM_FAULT_FALLBACK;
  if (folio_order(store, folio) !== HPAGE_PMD_ORDER) return VM_FAULT_FALLBACK;
  if (folio_test_has_hwpoisoned(store, folio)) return VM_FAULT_FALLBACK;
  const pmd = pmd_index_of(vmf.vpn);
  if (!pmd_none(mm.pgd, pmd)) return VM_FAULT_FALLBACK;
  let entry = pte_mkyoung(vma.vm_page_prot) | _PAGE_PSE;
  if (vmf.flags & FAULT_FLAG_WRITE) entry = maybe_mkwrite(pte_mkdirty(entry), vma);
  const prot = mm_hook_present(mm.kernel, 'pte_prot') ? call_mm_hook(mm.kernel, 'pte_prot', vmf, folio) : 0;
  if (prot) entry = prot | _PAGE_PSE;
  mm.add_mm_counter(mm_counter_file(store, folio), HPAGE_PMD_NR);
  folio_add_file_rmap_pmd(store, folio, vma);
  set_pmd_at(mm.pgd, pmd, folio, entry);
  return 0;
}

/* Write-protect faults */

/**
 * do_wp_page(): a write to a present PTE without write permission, or FAULT_FLAG_UNSHARE (a
 * read-only pin, GUP) on a private page the pin must have exclusive: reuse or copy the same
 * way, leaving the PTE read-only.
 */
function do_wp_page(vmf: VmFault): number {
  const vma = vmf.vma;
  const store = vma.vm_mm.kernel.store;
  const page = vm_normal_page(store, vmf.orig_pte_flags, vmf.orig_pte_val);
  vmf.page = page >= 0 ? (page as Pfn) : undefined;
  const folio = page >= 0 ? page_folio(store, page) : undefined;
  /* Shared mapping: we are guaranteed to have VM_WRITE and FAULT_FLAG_WRITE set at this point. */
  if (vma.vm_flags & (VM_SHARED | VM_MAYSHARE)) {
    if (folio === undefined) return wp_pfn_shared(vmf);
    return wp_page_shared(vmf, folio);
  }
  /*
   * Private mapping: create an exclusive anonymous page copy if reuse is impossible. If we
   * encounter a page that is marked exclusive, we must reuse the page without further checks.
   */
  if (folio !== undefined && folio_test_anon(store, folio) && (PageAnonExclusive(store, page) || wp_can_reuse_anon_folio(store, folio))) {
    if (!PageAnonExclusive(store, page)) SetPageAnonExclusive(store, page);
    /* FAULT_FLAG_UNSHARE: exclusive now, and it stays read-only */
    if (vmf.flags & FAULT_FLAG_UNSHARE) return 0;
    wp_page_reuse(vmf);
    return 0;
  }
  /* Ok, we need to copy. Oh, well.. */
  if (folio !== undefined) folio_get(store, folio);
  return wp_page_copy(vmf, folio);
}

/**
 * wp_can_reuse_anon_folio(): a small anon folio mapped only here, with no other reference than
 * the mapping's, may be reused (an anon page that lost PG_anon_exclusive, e.g. after GUP).
 */
function wp_can_reuse_anon_folio(store: PageStore, folio: number): boolean {
  if (folio_test_large(store, folio)) return false;
  return folio_ref_count(store, folio) === 1;
}

/** wp_page_reuse(): make the PTE writable, dirty and young in place (no TLB flush needed). */
function wp_page_reuse(vmf: VmFault): void {
  const t = vmf.pte!;
  const f = pte_mkyoung(maybe_mkwrite(pte_mkdirty(t.flags[vmf.pte_idx]), vmf.vma));
  pte_update_flags(t, vmf.pte_idx, f);
}

/** wp_pfn_shared(): a shared VM_PFNMAP/VM_MIXEDMAP page: ->pfn_mkwrite, then writable. */
function wp_pfn_shared(vmf: VmFault): number {
  const ops = vmf.vma.vm_ops;
  if (ops !== null && ops.pfn_mkwrite !== undefined) {
    vmf.flags |= FAULT_FLAG_MKWRITE;
    const ret = ops.pfn_mkwrite(vmf);
    if (ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE)) return ret;
  }
  wp_page_reuse(vmf);
  return 0;
}

/** wp_page_shared(): a shared page becomes writable, after ->page_mkwrite if the file wants it. */
function wp_page_shared(vmf: VmFault, folio: Folio): number {
  const vma = vmf.vma;
  const store = vma.vm_mm.kernel.store;
  folio_get(store, folio);
  if (vma.vm_ops !== null && vma.vm_ops.page_mkwrite !== undefined) {
    const tmp = do_page_mkwrite(vmf, folio);
    if (!tmp || tmp & (VM_FAULT_ERROR | VM_FAULT_NOPAGE)) {
      folio_put(store, folio);
      return tmp;
    }
    /* finish_mkwrite_fault(): the PTE may have changed while ->page_mkwrite ran */
    const t = pte_offset_map(vma.vm_mm.pgd, vmf.vpn);
    const i = pte_index(vmf.vpn);
    if (t === undefined || t.flags[i] !== vmf.orig_pte_flags || t.val[i] !== vmf.orig_pte_val) {
      folio_unlock(store, folio);
      folio_put(store, folio);
      return VM_FAULT_NOPAGE;
    }
    vmf.pte = t;
    wp_page_reuse(vmf);
  } else {
    wp_page_reuse(vmf);
    folio_lock(store, folio);
  }
  fault_dirty_shared_page(store, folio);
  folio_put(store, folio);
  return 0;
}

/**
 * wp_page_copy(): replace the read-only page by a private copy (a zeroed page when the old one
 * is the zero page). The caller holds a reference on `old_folio` (undefined: the zero page).
 */
function wp_page_copy(vmf: VmFault, old_folio: Folio | undefined): number {
  const vma = vmf.vma;
  const mm = vma.vm_mm;
  const kernel = mm.kernel;
  const store = kernel.store;
  const put_old = (): void => {
    if (old_folio !== undefined) folio_put(store, old_folio);
  };
  if (vmf_anon_prepare(vmf)) {
    put_old();
    return VM_FAULT_OOM;
  }
  const pfn_is_zero = is_zero_pfn(store, vmf.orig_pte_val);
  const new_folio = alloc_user_folio(kernel, pfn_is_zero ? GFP_HIGHUSER_MOVABLE | __GFP_ZERO : GFP_HIGHUSER_MOVABLE);
  if (new_folio === undefined) {
    put_old();
    return VM_FAULT_OOM;
  }
  if (!pfn_is_zero) {
    /* __wp_page_copy_user(): copy_mc_user_highpage(); -EHWPOISON is not retried */
    if (isMemPoison(kernel.phys.copy(new_folio, vmf.orig_pte_val as Pfn))) {
      folio_put(store, new_folio);
      put_old();
      return VM_FAULT_HWPOISON;
    }
    kernel.cost.charge('page_copy_4k');
  }
  __folio_mark_uptodate(store, new_folio);
  mmu_notifier_invalidate_range_start(mm, vmf.vpn, vmf.vpn + 1);
  const t = vmf.pte!;
  const i = vmf.pte_idx;
  if (old_folio !== undefined) {
    if (!folio_test_anon(store, old_folio)) {
      mm.add_mm_counter(mm_counter_file(store, old_folio), -1);
      mm.add_mm_counter(MM_ANONPAGES, 1);
    }
  } else {
    mm.add_mm_counter(MM_ANONPAGES, 1);
  }
  /* FAULT_FLAG_UNSHARE (a R/O pin): an exclusive copy, still read-only and clean */
  const entry = vmf.flags & FAULT_FLAG_UNSHARE ? pte_mkyoung(vma.vm_page_prot) : maybe_mkwrite(pte_mkdirty(pte_mkyoung(vma.vm_page_prot)), vma);
  /* ptep_clear_flush(): clear and flush before installing the new page */
  flush_tlb_page(mm, vmf.vpn);
  folio_add_new_anon_rmap(store, new_folio, vma, vmf.vpn, RMAP_EXCLUSIVE);
  folio_add_lru_vma(store, new_folio, vma);
  set_pte_at(t, i, new_folio, entry);
  if (old_folio !== undefined) {
    folio_remove_rmap_pte(store, old_folio, vmf.orig_pte_val, vma);
    /* the reference the old PTE held */
    folio_put(store, old_folio);
  }
  mmu_notifier_invalidate_range_end(mm, vmf.vpn, vmf.vpn + 1);
  put_old();
  return 0;
}

/* Non-present entries */

/** do_swap_page(): a fault on a non-present, non-none PTE. */
function do_swap_page(vmf: VmFault): number {
  const f = vmf.orig_pte_flags;
  const type = pte_swp_type(f);
  if (type === SWP_HWPOISON) return VM_FAULT_HWPOISON;
  if (type === SWP_PTE_MARKER) return handle_pte_marker(vmf.orig_pte_val);
  if (is_migration_type(type)) {
    const wait = migration_hooks.migration_entry_wait;
    if (wait === undefined) BUG(`fault on a migration entry at vpn ${vmf.vpn}: migration_entry_wait() would never return`);
    wait!(vmf.vma.vm_mm, vmf.vpn);
    /* the access is retried */
    return 0;
  }
  if (is_device_type(type)) BUG(`fault on a device entry at vpn ${vmf.vpn}: device-private memory is not modelled`);
  return do_swap_page_swp(vmf, type);
}

/**
 * should_try_to_free_swap(): after a swap-in, drop the swap-cache copy when swap is more than
 * half full, the VMA or folio is mlocked, or a write fault is about to make the page exclusive
 * (only our reference and the swap cache's are left).
 */
function should_try_to_free_swap(kernel: Kernel, folio: Folio, vma: VmAreaStruct, fault_flags: number): boolean {
  const store = kernel.store;
  if (!folio_test_swapcache(store, folio)) return false;
  if (vm_swap_full(kernel) || vma.vm_flags & VM_LOCKED || folio_test_mlocked(store, folio)) return true;
  return (fault_flags & FAULT_FLAG_WRITE) !== 0 && folio_ref_count(store, folio) === 1 + folio_nr_pages(store, folio);
}

/**
 * The swap-entry part of do_swap_page(): find the folio in the swap cache or read it from the
 * swap area (VM_FAULT_MAJOR), drop the PTE's slot reference, and map the page: writable when the
 * entry was exclusive (or nobody else holds the folio) and the VMA is writable, dirty if this is
 * a write fault; any other write fault goes on to do_wp_page(). A folio that failed to read is
 * VM_FAULT_SIGBUS. There is no readahead (page-cluster 0, swap_state.ts).
 */
function do_swap_page_swp(vmf: VmFault, type: number): number {
  const vma = vmf.vma;
  const mm = vma.vm_mm;
  const kernel = mm.kernel;
  const store = kernel.store;
  const entry = swp_entry(type, vmf.orig_pte_val);
  if (get_swap_device(kernel, entry) === undefined) BUG(`fault on a bad swap entry ${type}:${vmf.orig_pte_val} at vpn ${vmf.vpn}`);
  let ret = 0;
  let folio = swap_cache_get_folio(kernel, entry);
  if (folio !== undefined && PageHWPoison(store, folio)) {
    /* hwpoisoned dirty swapcache pages are kept for killing owner processes */
    folio_put(store, folio);
    return VM_FAULT_HWPOISON;
  }
  if (folio === undefined) {
    const got = swap_cache_alloc_folio(kernel, entry, GFP_HIGHUSER_MOVABLE);
    if (got === undefined) return VM_FAULT_OOM;
    folio = got.folio;
    /* Had to read the page from swap area: Major fault */
    ret = VM_FAULT_MAJOR;
  }
  folio_lock(store, folio);
  if (!folio_test_uptodate(store, folio)) {
    folio_unlock(store, folio);
    folio_put(store, folio);
    return VM_FAULT_SIGBUS;
  }
  const exclusive = pte_swp_exclusive(vmf.orig_pte_flags);
  /* Remove the swap entry and conditionally try to free up the swapcache. */
  swap_free_nr(kernel, entry, 1);
  if (should_try_to_free_swap(kernel, folio, vma, vmf.flags)) folio_free_swap(kernel, folio);
  mm.add_mm_counter(MM_ANONPAGES, 1);
  mm.add_mm_counter(MM_SWAPENTS, -1);
  let pte = vma.vm_page_prot;
  let rmap_flags = RMAP_NONE;
  if (exclusive || folio_ref_count(store, folio) === 1) {
    if (vma.vm_flags & VM_WRITE) {
      pte = pte_mkwrite(pte);
      if (vmf.flags & FAULT_FLAG_WRITE) {
        pte = pte_mkdirty(pte);
        vmf.flags &= ~FAULT_FLAG_WRITE;
      }
    }
    rmap_flags |= RMAP_EXCLUSIVE;
  }
  if (!folio_test_anon(store, folio)) folio_add_new_anon_rmap(store, folio, vma, vmf.vpn, rmap_flags);
  else folio_add_anon_rmap_ptes(store, folio, folio, 1, vma, rmap_flags);
  const t = vmf.pte!;
  set_pte_at(t, vmf.pte_idx, folio, pte);
  folio_unlock(store, folio);
  if (vmf.flags & FAULT_FLAG_WRITE) {
    vmf.orig_pte_flags = pte;
    vmf.orig_pte_val = folio;
    ret |= do_wp_page(vmf);
    if (ret & VM_FAULT_ERROR) ret &= VM_FAULT_ERROR;
  }
  return ret;
}

/**
 * The seam between faults and page migration: migration.ts installs migration_entry_wait(), which
 * lets the migration of the page under the entry finish (the kernel sleeps until it does).
 */
export interface MigrationHooks {
  migration_entry_wait?(mm: MmStruct, vpn: number): void;
}
export const migration_hooks: MigrationHooks = {};

/** handle_pte_marker(). */
function handle_pte_marker(marker: number): number {
  if (marker === 0) return VM_FAULT_SIGBUS;
  /* Higher priority than uffd-wp when data corrupted */
  if (marker & PTE_MARKER_POISONED) return VM_FAULT_HWPOISON;
  /* Hitting a guard page is always a fatal condition. */
  if (marker & PTE_MARKER_GUARD) return VM_FAULT_SIGSEGV;
  if (marker & PTE_MARKER_UFFD_WP) BUG('userfaultfd write-protect markers are not modelled');
  return VM_FAULT_SIGBUS;
}

/* Zapping */

/** struct zap_details. */
export interface ZapDetails {
  /** Zap private COW copies (anon folios) too; without, only page-cache pages go. */
  even_cows: boolean;
  /** ZAP_FLAG_DROP_MARKER: remove PTE markers (guard regions, uffd-wp) as well. */
  drop_markers: boolean;
}

/** The zap of a whole VMA at munmap/exit (unmap_vmas()'s details). */
export const ZAP_ALL: ZapDetails = Object.freeze({ even_cows: true, drop_markers: true });

const PG_DIRTY_BIT = 1 << PG_dirty;
const PG_RECLAIM_BIT = 1 << PG_reclaim;
const PG_SWAPBACKED_BIT = 1 << PG_swapbacked;
const PG_HEAD_BIT = 1 << PG_head;
/* PG_swapcache (PG_owner_priv_1): on a page-cache folio it is another flag, which only costs the slow path */
const PG_SWAPCACHE_BIT = 1 << PG_swapcache;

/** Counters of one zap operation (struct mmu_gather, the parts the simulator needs). */
class ZapState {
  /** Entries cleared (present or not). */
  nr_cleared = 0;
  /** Present entries cleared: they need a TLB flush. */
  nr_present = 0;
  /** Page range of the present entries cleared (tlb->start, tlb->end). */
  flush_start = Infinity;
  flush_end = -Infinity;
  /** Folios freed by the zap's puts. */
  nr_freed = 0;
  /**
   * Small folios whose last reference a PTE held (the first nr_gathered): as in the kernel's
   * mmu_gather, they are freed together after the TLB flush (tlb_finish_mmu() ->
   * free_pages_and_swap_cache()). A typed array that doubles as it fills: a zap can free a GiB.
   */
  gather = new Float64Array(64);
  nr_gathered = 0;

  /** __tlb_remove_folio_pages() of a folio whose last reference the zap dropped. */
  gather_folio(folio: number): void {
    if (this.nr_gathered === this.gather.length) {
      const bigger = new Float64Array(this.gather.length * 2);
      bigger.set(this.gather);
      this.gather = bigger;
    }
    this.gather[this.nr_gathered++] = folio;
  }
  readonly rss = new Float64Array(4);

  /** Back to a fresh gather (tlb_gather_mmu()), keeping the arrays. */
  reset(): void {
    this.nr_cleared = 0;
    this.nr_present = 0;
    this.flush_start = Infinity;
    this.flush_end = -Infinity;
    this.nr_freed = 0;
    this.nr_gathered = 0;
    this.rss.fill(0);
    /* a GiB's gather is not kept for the zaps of a page that follow */
    if (this.gather.length > 4096) this.gather = new Float64Array(64);
  }
}

/**
 * ZapStates not in use. A zap of one folio (truncate_cleanup_folio() -> unmap_mapping_folio(),
 * once per folio of a guest_memfd punch) would otherwise spend most of its time making the two
 * typed arrays; a zap that starts inside another (a notifier's) takes another state.
 */
const zap_states: ZapState[] = [];

/** tlb_gather_mmu(): a fresh gather. */
function zap_state_get(): ZapState {
  return zap_states.pop() ?? new ZapState();
}

/** After tlb_finish_mmu(): the gather goes back for the next zap. */
function zap_state_put(zs: ZapState): void {
  zs.reset();
  zap_states.push(zs);
}

function should_zap_cows(details: ZapDetails | null): boolean {
  return details === null || details.even_cows;
}

/**
 * zap_pte_range(): clear the entries [from, to) of one PTE table of `vma`, removing rmaps and
 * dropping references. Entries that `details` keeps (anon folios without even_cows, markers
 * without drop_markers) stay. Unmapping a GiB goes through here page by page, so the loop works
 * on the typed arrays and local counters, written back once per table.
 */
function zap_pte_range(zs: ZapState, vma: VmAreaStruct, t: PteTable, base: number, from: number, to: number, details: ZapDetails | null): void {
  const store = vma.vm_mm.kernel.store;
  const flags = t.flags;
  const val = t.val;
  const base_pfn = store.base_pfn;
  const zero_pfn = store.zero_pfn;
  const head_offset = store.head_offset;
  const mapping = store.mapping;
  const mapcount = store._mapcount;
  const refcount = store._refcount;
  const pflags = store.flags;
  const zap_cows = should_zap_cows(details);
  /* munlock_vma_folio() has work only in a VM_LOCKED VMA: elsewhere small folios take the fast path */
  const locked = (vma.vm_flags & VM_LOCKED) !== 0;
  let nr = t.nr;
  let cleared = 0;
  let present = 0;
  let first = -1;
  let last = -1;
  let anon_pages = 0;
  let shmem_pages = 0;
  let file_pages = 0;
  for (let i = from; i < to; i++) {
    const f = flags[i];
    if (f === 0) continue;
    if (f & _PAGE_SWP) {
      if (zap_nonpresent_pte(zs, vma, f, val[i], details)) {
        flags[i] = 0;
        val[i] = 0;
        nr--;
        cleared++;
      }
      continue;
    }
    const pfn = val[i];
    if (f & _PAGE_SPECIAL || pfn === zero_pfn) {
      flags[i] = 0;
      val[i] = 0;
      nr--;
      cleared++;
      present++;
      if (first < 0) first = i;
      last = i;
      continue;
    }
    const folio = pfn - head_offset[pfn - base_pfn];
    const fi = folio - base_pfn;
    const anon = (mapping[fi] & FOLIO_MAPPING_ANON) !== 0;
    if (!zap_cows && anon) continue;
    flags[i] = 0;
    val[i] = 0;
    nr--;
    cleared++;
    present++;
    if (first < 0) first = i;
    last = i;
    const pf = pflags[fi];
    if (anon) {
      anon_pages++;
    } else {
      /*
       * folio_mark_dirty() of a dirty PTE's folio. The dirty_folio ops of cocosim's files
       * (noop_dirty_folio, filemap_dirty_folio) do nothing to a folio already dirty and not
       * under reclaim, so that case skips the call.
       */
      if (f & _PAGE_DIRTY && (pf & (PG_DIRTY_BIT | PG_RECLAIM_BIT)) !== PG_DIRTY_BIT) folio_mark_dirty(store, folio);
      if (pf & PG_SWAPBACKED_BIT) shmem_pages++;
      else file_pages++;
    }
    if (!locked && !(pf & (PG_HEAD_BIT | PG_SWAPCACHE_BIT))) {
      /* folio_remove_rmap_pte() and the PTE's folio_put() of a small folio, inlined */
      if (mapcount[fi] < 0) BUG(`zap: page 0x${pfn.toString(16)} is mapped by a PTE but its mapcount is ${mapcount[fi]}`);
      mapcount[fi]--;
      const ref = refcount[fi] - 1;
      if (ref < 0) BUG(`zap: folio 0x${folio.toString(16)} mapped with refcount 0`);
      refcount[fi] = ref;
      if (ref === 0) zs.gather_folio(folio);
      continue;
    }
    t.nr = nr;
    folio_remove_rmap_pte(store, folio, pfn, vma);
    /* free_pages_and_swap_cache(): an anon folio no longer mapped leaves the swap cache */
    if (anon) free_swap_cache(vma.vm_mm.kernel, folio as Folio);
    if (refcount[fi] === 1) zs.nr_freed++;
    folio_put(store, folio);
  }
  t.nr = nr;
  zs.nr_cleared += cleared;
  if (present !== 0) {
    zs.nr_present += present;
    if (base + first < zs.flush_start) zs.flush_start = base + first;
    if (base + last + 1 > zs.flush_end) zs.flush_end = base + last + 1;
  }
  zs.rss[MM_ANONPAGES] -= anon_pages;
  zs.rss[MM_SHMEMPAGES] -= shmem_pages;
  zs.rss[MM_FILEPAGES] -= file_pages;
}

/** zap_nonpresent_ptes() for one entry: true if it is to be cleared. */
function zap_nonpresent_pte(zs: ZapState, vma: VmAreaStruct, f: number, offset: number, details: ZapDetails | null): boolean {
  const type = pte_swp_type(f);
  const store = vma.vm_mm.kernel.store;
  if (is_migration_type(type)) {
    const folio = page_folio(store, offset % 2 ** SWP_PFN_BITS);
    if (!should_zap_cows(details) && folio_test_anon(store, folio)) return false;
    zs.rss[mm_counter(store, folio)]--;
    return true;
  }
  if (type === SWP_PTE_MARKER) {
    if (offset & PTE_MARKER_GUARD) return details !== null && details.drop_markers;
    if (offset & PTE_MARKER_POISONED) return should_zap_cows(details);
    /* uffd-wp: always dropped for anon, for file only if asked */
    return vma_is_anonymous(vma) || (details !== null && details.drop_markers);
  }
  if (type === SWP_HWPOISON) return should_zap_cows(details);
  if (is_device_type(type)) BUG('zap of a device entry: device-private memory is not modelled');
  /* Genuine swap entries, hence a private anon page */
  if (!should_zap_cows(details)) return false;
  zs.rss[MM_SWAPENTS]--;
  free_swap_and_cache_nr(vma.vm_mm.kernel, swp_entry(type, offset), 1);
  return true;
}

/**
 * unmap_page_range(): zap pages [start, end) of `vma` (PMD/PUD entries first, then PTEs) into
 * `zs`. No TLB flush, no notifier: the caller brackets it.
 */
function unmap_page_range(zs: ZapState, vma: VmAreaStruct, start: number, end: number, details: ZapDetails | null): void {
  const pt = vma.vm_mm.pgd;
  if (pt.pmds.size !== 0 || pt.puds.size !== 0) {
    const r = new HugeZapResult();
    zap_huge_range(vma, start, end, r);
    if (r.nr_cleared !== 0) {
      zs.nr_cleared += r.nr_cleared;
      zs.nr_present += r.nr_cleared;
      zs.nr_freed += r.nr_freed;
      zs.flush_start = Math.min(zs.flush_start, r.flush_start);
      zs.flush_end = Math.max(zs.flush_end, r.flush_end);
    }
  }
  if (pt.ptes.size === 0 || end <= start) return;
  const first = pmd_index_of(start);
  const last = pmd_index_of(end - 1);
  /* one table (a zap of a folio's pages, once per folio of a punch): no walk to set up */
  if (first === last) {
    const t = pt.ptes.get(first);
    if (t !== undefined) zap_pte_table(zs, vma, t, first, start - first * PTRS_PER_PTE, end - first * PTRS_PER_PTE, details);
    return;
  }
  walk_pte_tables(pt, start, end, (t, pmd, from, to) => zap_pte_table(zs, vma, t, pmd, from, to, details));
}

/** zap_pte_range() over entries [from, to) of the table of `pmd`, freeing the table once empty. */
function zap_pte_table(zs: ZapState, vma: VmAreaStruct, t: PteTable, pmd: number, from: number, to: number, details: ZapDetails | null): void {
  zap_pte_range(zs, vma, t, pmd * PTRS_PER_PTE, from, to, details);
  if (t.nr === 0) pte_free_if_empty(vma.vm_mm.pgd, pmd);
}

/** tlb_finish_mmu(): flush what the zap cleared, charge it, settle the rss counters. */
function zap_finish(mm: MmStruct, zs: ZapState): void {
  const cost = mm.kernel.cost;
  if (zs.nr_cleared !== 0) cost.chargeId(PTE_ZAP, zs.nr_cleared);
  if (zs.nr_present !== 0) flush_tlb_mm_range(mm, zs.flush_start, zs.flush_end);
  if (zs.nr_gathered !== 0) {
    zs.nr_freed += zs.nr_gathered;
    folios_free_frozen(mm.kernel.store, zs.gather, zs.nr_gathered);
    zs.nr_gathered = 0;
  }
  if (zs.nr_freed !== 0) cost.chargeId(PAGE_FREE, zs.nr_freed);
  for (let k = 0; k < zs.rss.length; k++) if (zs.rss[k] !== 0) mm.add_mm_counter(k, zs.rss[k]);
}

/**
 * zap_page_range_single(): remove the user pages [start, start + nr) of `vma` (clipped to it)
 * with their rmaps and references, notifying secondary MMUs and flushing the TLB.
 * `details` null: everything but guard markers (MADV_DONTNEED).
 */
export function zap_page_range_single(vma: VmAreaStruct, start: number, nr: number, details: ZapDetails | null): void {
  const mm = vma.vm_mm;
  const s = Math.max(start, vma.start_vpn);
  const e = Math.min(start + nr, vma.end_vpn);
  if (s >= e) return;
  mmu_notifier_invalidate_range_start(mm, s, e);
  const zs = zap_state_get();
  try {
    unmap_page_range(zs, vma, s, e, details);
    zap_finish(mm, zs);
  } finally {
    zap_state_put(zs);
  }
  mmu_notifier_invalidate_range_end(mm, s, e);
}

/**
 * unmap_vmas(): zap pages [start, end) of each of `vmas` (munmap, mmap over an old mapping,
 * exit), markers included, as one gather: one notifier bracket and one TLB flush.
 */
export function unmap_vmas(mm: MmStruct, vmas: readonly VmAreaStruct[], start: number, end: number): void {
  if (vmas.length === 0) return;
  mmu_notifier_invalidate_range_start(mm, start, end);
  const zs = zap_state_get();
  try {
    for (const vma of vmas) {
      const s = Math.max(start, vma.start_vpn);
      const e = Math.min(end, vma.end_vpn);
      if (s < e) unmap_page_range(zs, vma, s, e, ZAP_ALL);
    }
    zap_finish(mm, zs);
  } finally {
    zap_state_put(zs);
  }
  mmu_notifier_invalidate_range_end(mm, start, end);
}

/* Unmapping a file range from every process */

/** The largest page index (ULONG_MAX for pgoff_t, as far as the simulator's indexes go). */
const PGOFF_MAX = Number.MAX_SAFE_INTEGER;

/**
 * unmap_mapping_range_tree(): zap the pages of file offsets [first, last] in every VMA of the
 * mapping.
 */
function unmap_mapping_range_tree(mapping: AddressSpace, first: number, last: number, details: ZapDetails): void {
  /* one VMA (a file mapped once, the common case of a punch folio by folio): no walk to set up */
  if (mapping.i_mmap.size === 1) {
    for (const vma of mapping.i_mmap) unmap_mapping_vma(vma, first, last, details);
    return;
  }
  vma_interval_tree_foreach(mapping, first, last, (vma) => unmap_mapping_vma(vma, first, last, details));
}

/** The zap of file pages [first, last] in one VMA of unmap_mapping_range_tree(). */
function unmap_mapping_vma(vma: VmAreaStruct, first: number, last: number, details: ZapDetails): void {
  const vba = vma.vm_pgoff;
  const vea = vba + vma_pages(vma) - 1;
  if (vba > last || vea < first) return;
  const zap_start = Math.max(first, vba);
  const zap_end = Math.min(last, vea);
  zap_page_range_single(vma, vma.start_vpn + (zap_start - vba), zap_end - zap_start + 1, details);
}

/**
 * unmap_mapping_pages(): unmap `nr` file pages from `start` in every process (nr 0: to the end
 * of the file). With even_cows the MAP_PRIVATE COW copies go too.
 */
export function unmap_mapping_pages(mapping: AddressSpace, start: number, nr: number, even_cows: boolean): void {
  const first = start;
  let last = start + nr - 1;
  if (last < first) last = PGOFF_MAX;
  unmap_mapping_range_tree(mapping, first, last, { even_cows, drop_markers: false });
}

/**
 * unmap_mapping_range(): unmap the file bytes [holebegin, holebegin + holelen), rounded out to
 * whole pages (holelen 0: to the end of the file), from every process.
 */
function unmap_mapping_range(_kernel: Kernel, mapping: AddressSpace, holebegin: bigint, holelen: bigint, even_cows: boolean): void {
  const hba = Number(holebegin >> 12n);
  let hlen = Number((holelen + 4095n) >> 12n);
  /* Check for overflow. */
  const holeend = (holebegin + holelen + 4095n) >> 12n;
  if (holeend > BigInt(PGOFF_MAX)) hlen = PGOFF_MAX - hba + 1;
  unmap_mapping_pages(mapping, hba, hlen, even_cows);
}

/**
 * unmap_mapping_folio(): unmap one page-cache folio from every process; the private COW copies
 * stay, guard markers go.
 */
function unmap_mapping_folio(kernel: Kernel, folio: Folio): void {
  const store = kernel.store;
  const mapping = lookupMapping(store, store.mapping[store.idx(folio)]);
  if (mapping === undefined) return;
  const first = store.index[store.idx(folio)];
  const last = first + folio_nr_pages(store, folio) - 1;
  unmap_mapping_range_tree(mapping, first, last, UNMAP_FOLIO);
}

/** unmap_mapping_folio()'s details: the COW copies stay, the markers go. */
const UNMAP_FOLIO: ZapDetails = Object.freeze({ even_cows: false, drop_markers: true });

/** Release a user folio allocated by a fault that did not map it. */
function free_user_folio(kernel: Kernel, folio: Folio): void {
  if (folio_ref_count(kernel.store, folio) === 1) kernel.cost.chargeId(PAGE_FREE);
  folio_put(kernel.store, folio);
}

/* The page cache's truncation and hole punching reach page tables through these hooks. */
mapping_unmap_hooks.unmap_mapping_range = unmap_mapping_range;
mapping_unmap_hooks.unmap_mapping_folio = unmap_mapping_folio;

/* Copying page tables at fork (copy_page_range() and its helpers) */

/**
 * vma_needs_copy(): does fork copy this VMA's page tables? Only where a fault could not rebuild
 * them: raw pfn mappings and VMAs with anon pages (an anon_vma). Shared and read-only file
 * mappings are left to the child's faults, which find the same page-cache pages.
 */
export function vma_needs_copy(_dst_vma: VmAreaStruct, src_vma: VmAreaStruct): boolean {
  if (src_vma.vm_flags & (VM_PFNMAP | VM_MIXEDMAP)) return true;
  return src_vma.anon_vma !== null;
}

/**
 * copy_present_page(): the parent's anon page may be pinned (folio_maybe_dma_pinned), so the
 * child gets its own copy at once, exclusive, writable if its VMA is, dirty. -ENOMEM when no
 * page is left, -EHWPOISON when the source page is poisoned (copy_mc_user_highpage()).
 */
function copy_present_page(dst_vma: VmAreaStruct, dt: PteTable, i: number, vpn: number, page: number, rss: Float64Array): number {
  const kernel = dst_vma.vm_mm.kernel;
  const store = kernel.store;
  /* folio_prealloc(): vma_alloc_folio(GFP_HIGHUSER_MOVABLE) */
  const new_folio = alloc_user_folio(kernel, GFP_HIGHUSER_MOVABLE);
  if (new_folio === undefined) return -Errno.ENOMEM;
  if (isMemPoison(kernel.phys.copy(new_folio, page as Pfn))) {
    folio_put(store, new_folio);
    return -Errno.EHWPOISON;
  }
  kernel.cost.charge('page_copy_4k');
  __folio_mark_uptodate(store, new_folio);
  folio_add_new_anon_rmap(store, new_folio, dst_vma, vpn, RMAP_EXCLUSIVE);
  folio_add_lru_vma(store, new_folio, dst_vma);
  rss[MM_ANONPAGES]++;
  set_pte_at(dt, i, new_folio, maybe_mkwrite(pte_mkdirty(dst_vma.vm_page_prot), dst_vma));
  return 0;
}

/**
 * copy_present_ptes() for one PTE (the simulator maps small folios only by PTEs, large ones
 * page by page, so no batching): the child maps the same page with one more reference and
 * mapcount; an anon page stops being exclusive, unless it may be pinned and is copied for the
 * child instead (copy_present_page()). __copy_present_ptes(): in a COW mapping a writable entry
 * is write-protected in both processes, so that the first write in either copies; a shared
 * mapping's entry is clean in the child; the child's is old and without uffd-wp.
 */
function copy_present_pte(dst_vma: VmAreaStruct, src_vma: VmAreaStruct, dt: PteTable, st: PteTable, i: number, vpn: number, rss: Float64Array): number {
  const store = src_vma.vm_mm.kernel.store;
  let pte = st.flags[i];
  const pfn = st.val[i];
  const page = vm_normal_page(store, pte, pfn);
  if (page >= 0) {
    const folio = page_folio(store, page);
    folio_get(store, folio);
    if (folio_test_anon(store, folio)) {
      if (folio_try_dup_anon_rmap_pte(store, folio, page)) {
        /* Page may be pinned, we have to copy. */
        folio_put(store, folio);
        return copy_present_page(dst_vma, dt, i, vpn, page, rss);
      }
      rss[MM_ANONPAGES]++;
    } else {
      folio_dup_file_rmap_pte(store, folio, page);
      rss[mm_counter_file(store, folio)]++;
    }
  }
  if (is_cow_mapping(src_vma.vm_flags) && pte_write(pte)) {
    pte_update_flags(st, i, pte_wrprotect(pte));
    pte = pte_wrprotect(pte);
  }
  if (src_vma.vm_flags & VM_SHARED) pte = pte_mkclean(pte);
  pte = pte_mkold(pte) & ~_PAGE_UFFD_WP;
  set_pte_at(dt, i, pfn, pte);
  return 0;
}

/**
 * copy_nonpresent_pte(): a swap entry takes one more reference on its slot (swap_duplicate();
 * -ENOMEM at SWAP_MAP_MAX, where the kernel would add a swap-count continuation) and stops
 * being exclusive in the parent; a migration entry is copied, made readable in a COW mapping
 * (in both processes) and counted in the child's rss; a hwpoison entry is copied as is, so the
 * child's access gets SIGBUS too; of a PTE marker only the poison and guard bits are copied
 * (copy_pte_marker(): the child has no userfaultfd).
 */
function copy_nonpresent_pte(dst_vma: VmAreaStruct, src_vma: VmAreaStruct, dt: PteTable, st: PteTable, i: number, rss: Float64Array): number {
  const kernel = src_vma.vm_mm.kernel;
  const f = st.flags[i];
  const type = pte_swp_type(f);
  const offset = st.val[i];
  if (type === SWP_PTE_MARKER) {
    const marker = offset & (PTE_MARKER_POISONED | PTE_MARKER_GUARD);
    if (marker) set_swp_pte_at(dt, i, SWP_PTE_MARKER, marker);
    return 0;
  }
  let dst_type = type;
  if (is_migration_type(type)) {
    rss[mm_counter(kernel.store, page_folio(kernel.store, offset % 2 ** SWP_PFN_BITS))]++;
    if (type !== SWP_MIGRATION_READ && is_cow_mapping(dst_vma.vm_flags)) {
      /* COW mappings require pages in both parent and child to be set to read. */
      dst_type = SWP_MIGRATION_READ;
      set_swp_pte_at(st, i, SWP_MIGRATION_READ, offset);
    }
  } else if (is_device_type(type)) {
    BUG('fork of a device entry: device-private memory is not modelled');
  } else if (type !== SWP_HWPOISON) {
    if (swap_duplicate(kernel, swp_entry(type, offset)) < 0) return -Errno.ENOMEM;
    /* Mark the swap entry as shared. */
    if (pte_swp_exclusive(f)) set_swp_pte_at(st, i, type, offset, false);
    rss[MM_SWAPENTS]++;
  }
  /* hwpoison and migration entries keep their bits; a migration entry made readable is a new one */
  const keep = type === SWP_HWPOISON || (is_migration_type(type) && dst_type === type);
  set_swp_pte_at(dt, i, dst_type, offset, keep && pte_swp_exclusive(f));
  return 0;
}

/** copy_pte_range(): the entries [from, to) of the PTE table `st` at `pmd`, into the child's. */
function copy_pte_range(dst_vma: VmAreaStruct, src_vma: VmAreaStruct, st: PteTable, pmd: number, from: number, to: number, rss: Float64Array): number {
  const base = pmd * PTRS_PER_PTE;
  let dt: PteTable | undefined;
  for (let i = from; i < to; i++) {
    const f = st.flags[i];
    if (f === 0) continue;
    dt ??= pte_alloc(dst_vma.vm_mm.pgd, base);
    const ret = pte_present(f) ? copy_present_pte(dst_vma, src_vma, dt, st, i, base + i, rss) : copy_nonpresent_pte(dst_vma, src_vma, dt, st, i, rss);
    if (ret) return ret;
  }
  return 0;
}

/**
 * copy_huge_pmd() (mm/huge_memory.c): an anonymous PMD entry is shared with the child
 * write-protected in both (the huge zero folio as well); a migration entry is copied, made
 * readable. -EAGAIN when the THP may be pinned: the PMD is split and its PTEs copied instead.
 * File PMDs are left to the child's faults (0).
 */
function copy_huge_pmd(dst_vma: VmAreaStruct, src_vma: VmAreaStruct, pmd: number, e: HugeEntry): number {
  const kernel = src_vma.vm_mm.kernel;
  const store = kernel.store;
  const dst_mm = dst_vma.vm_mm;
  /* Skip if can be re-fill on fault */
  if (!vma_is_anonymous(dst_vma)) return 0;
  if (!pte_present(e.flags)) {
    const type = pte_swp_type(e.flags);
    if (!is_migration_type(type)) BUG(`fork of a PMD swap entry of type ${type}`);
    let flags = e.flags;
    if (type !== SWP_MIGRATION_READ) {
      flags = swp_pte_flags(SWP_MIGRATION_READ);
      set_pmd_at(src_vma.vm_mm.pgd, pmd, e.val, flags);
    }
    dst_mm.add_mm_counter(MM_ANONPAGES, HPAGE_PMD_NR);
    set_pmd_at(dst_mm.pgd, pmd, e.val, flags);
    return 0;
  }
  if (!is_huge_zero_pfn(kernel, e.val)) {
    const folio = page_folio(store, e.val);
    folio_get(store, folio);
    if (folio_try_dup_anon_rmap_pmd(store, folio, e.val)) {
      /* Page maybe pinned: split and retry the fault on PTEs. */
      folio_put(store, folio);
      split_huge_pmd(src_vma, pmd);
      return -Errno.EAGAIN;
    }
    dst_mm.add_mm_counter(MM_ANONPAGES, HPAGE_PMD_NR);
  }
  set_pmd_at(src_vma.vm_mm.pgd, pmd, e.val, pte_wrprotect(e.flags));
  set_pmd_at(dst_mm.pgd, pmd, e.val, pte_mkold(pte_wrprotect(e.flags)) & ~_PAGE_UFFD_WP);
  return 0;
}

/**
 * copy_page_range(): copy the page tables of the parent's `src_vma` into the child's copy
 * `dst_vma` (dup_mmap()), where vma_needs_copy() says so. A COW mapping is bracketed by an
 * invalidation of the parent's range (MMU_NOTIFY_PROTECTION_PAGE: its entries lose write
 * permission, and secondary MMUs such as KVM's drop theirs). The child's rss counters are
 * added as entries are copied, also when the copy fails half way (-ENOMEM, -EHWPOISON), so
 * that the caller's teardown of the child balances them.
 */
export function copy_page_range(dst_vma: VmAreaStruct, src_vma: VmAreaStruct): number {
  if (!vma_needs_copy(dst_vma, src_vma)) return 0;
  if (is_vm_hugetlb_page(src_vma)) return copy_hugetlb_page_range(dst_vma, src_vma);
  const src_mm = src_vma.vm_mm;
  const start = src_vma.start_vpn;
  const end = src_vma.end_vpn;
  const is_cow = is_cow_mapping(src_vma.vm_flags);
  if (is_cow) mmu_notifier_invalidate_range_start(src_mm, start, end);
  const rss = new Float64Array(NR_MM_COUNTERS);
  const pt = src_mm.pgd;
  const first = pmd_index_of(start);
  const last = pmd_index_of(end - 1);
  const pmds = [...new Set([...keys_in_range(pt.pmds, first, last), ...keys_in_range(pt.ptes, first, last)])].sort((a, b) => a - b);
  let ret = 0;
  for (const pmd of pmds) {
    const e = pt.pmds.get(pmd);
    if (e !== undefined) {
      const err = copy_huge_pmd(dst_vma, src_vma, pmd, e);
      if (err !== -Errno.EAGAIN) {
        ret = err;
        if (ret) break;
        continue;
      }
    }
    const st = pt.ptes.get(pmd);
    if (st === undefined) continue;
    const b = pmd * PTRS_PER_PTE;
    ret = copy_pte_range(dst_vma, src_vma, st, pmd, Math.max(start, b) - b, Math.min(end, b + PTRS_PER_PTE) - b, rss);
    if (ret) break;
  }
  for (let k = 0; k < NR_MM_COUNTERS; k++) if (rss[k] !== 0) dst_vma.vm_mm.add_mm_counter(k, rss[k]);
  if (is_cow) mmu_notifier_invalidate_range_end(src_mm, start, end);
  return ret;
}

/**
 * copy_hugetlb_page_range() (mm/hugetlb.c): the huge leaves (PMD or PUD) of a hugetlb VMA with
 * private pages. hwpoison entries are copied; migration entries copied, made readable in a COW
 * mapping; markers as copy_pte_marker() says; a page-cache page is mapped once more
 * (hugetlb_add_file_rmap()); an anon page is shared (hugetlb_try_dup_anon_rmap()) or, when it
 * may be pinned, copied at once into a new huge page from the pool (not reserved: the error of
 * alloc_hugetlb_folio() fails the fork). A COW mapping's leaves are write-protected in both.
 * Hugetlb pages count in no rss counter.
 */
function copy_hugetlb_page_range(dst_vma: VmAreaStruct, src_vma: VmAreaStruct): number {
  const kernel = src_vma.vm_mm.kernel;
  const store = kernel.store;
  const src = src_vma.vm_mm.pgd;
  const dst = dst_vma.vm_mm.pgd;
  const cow = is_cow_mapping(src_vma.vm_flags);
  const start = src_vma.start_vpn;
  const end = src_vma.end_vpn;
  if (cow) mmu_notifier_invalidate_range_start(src_vma.vm_mm, start, end);
  const leaves: [boolean, number][] = [
    ...keys_in_range(src.puds, pud_index_of(start), pud_index_of(end - 1)).map((k): [boolean, number] => [true, k]),
    ...keys_in_range(src.pmds, pmd_index_of(start), pmd_index_of(end - 1)).map((k): [boolean, number] => [false, k]),
  ];
  let ret = 0;
  for (const [pud, key] of leaves) {
    const e = (pud ? src.puds : src.pmds).get(key)!;
    const set_src = (flags: number): void => (pud ? set_pud_at(src, key, e.val, flags) : set_pmd_at(src, key, e.val, flags));
    const set_dst = (val: number, flags: number): void => (pud ? set_pud_at(dst, key, val, flags) : set_pmd_at(dst, key, val, flags));
    if (!pte_present(e.flags)) {
      const type = pte_swp_type(e.flags);
      if (type === SWP_PTE_MARKER) {
        const marker = e.val & (PTE_MARKER_POISONED | PTE_MARKER_GUARD);
        if (marker) set_dst(marker, e.flags);
      } else if (is_migration_type(type) && type !== SWP_MIGRATION_READ && cow) {
        set_src(swp_pte_flags(SWP_MIGRATION_READ));
        set_dst(e.val, swp_pte_flags(SWP_MIGRATION_READ));
      } else {
        set_dst(e.val, e.flags);
      }
      continue;
    }
    const folio = e.val as Folio;
    folio_get(store, folio);
    if (!folio_test_anon(store, folio)) {
      folio_dup_file_rmap_pmd(store, folio);
    } else if (folio_try_dup_anon_rmap_pmd(store, folio, folio)) {
      const h = size_to_hstate(hugetlb_pool(kernel), folio_nr_pages(store, folio) * 4096)!;
      /* Do not use reserve as it's private owned */
      const new_folio = alloc_hugetlb_folio(kernel, h);
      if (IS_ERR(new_folio)) {
        folio_put(store, folio);
        ret = PTR_ERR(new_folio);
        break;
      }
      const nr = folio_nr_pages(store, folio);
      let poisoned = false;
      for (let k = 0; k < nr && !poisoned; k++) poisoned = isMemPoison(kernel.phys.copy((new_folio + k) as Pfn, (folio + k) as Pfn));
      folio_put(store, folio);
      if (poisoned) {
        folio_put(store, new_folio);
        ret = -Errno.EHWPOISON;
        break;
      }
      kernel.cost.charge('page_copy_4k', nr);
      /* hugetlb_install_folio() */
      __folio_mark_uptodate(store, new_folio);
      hugetlb_add_new_anon_rmap(store, new_folio, dst_vma, pud ? key * PAGES_PER_PUD : key * PTRS_PER_PTE);
      set_dst(new_folio, pte_mkyoung(dst_vma.vm_flags & VM_WRITE ? pte_mkwrite(pte_mkdirty(dst_vma.vm_page_prot)) : pte_wrprotect(dst_vma.vm_page_prot)) | _PAGE_PSE);
      continue;
    }
    let entry = e.flags;
    if (cow) {
      set_src(pte_wrprotect(entry));
      entry = pte_wrprotect(entry);
    }
    set_dst(folio, entry & ~_PAGE_UFFD_WP);
  }
  if (cow) mmu_notifier_invalidate_range_end(src_vma.vm_mm, start, end);
  return ret;
}
