/**
 * PMD- and PUD-mapped folios in user page tables (mm/huge_memory.c, Linux 6.18): zapping them,
 * splitting a PMD mapping into PTEs, changing their protection.
 *
 * Which folios get PMD mappings: anonymous THPs (do_huge_pmd_anonymous_page(), when
 * transparent_hugepage is "always", or "madvise" and the VMA has MADV_HUGEPAGE; a read fault
 * maps the huge zero folio instead), page-cache folios of PMD size (finish_fault() ->
 * do_set_pmd(), memory.ts), and whatever a vm_ops->huge_fault handler installs (hugetlb,
 * guest_memfd). PUD leaves come only from huge_fault handlers (1 GiB hugetlb).
 *
 * A write to a read-only anon PMD reuses an exclusive THP in place and replaces the huge zero
 * folio by a new THP (do_huge_pmd_wp_page()); anything else splits the PMD and is handled by
 * PTEs. Khugepaged is not modelled; MADV_COLLAPSE collapses anonymous small pages (khugepaged.ts).
 *
 * Splitting (__split_huge_pmd()): an anon PMD becomes 512 PTEs mapping the same folio (one
 * reference and one mapcount per page instead of one for the PMD); a file PMD is simply zapped,
 * and later faults map its pages by PTEs, as the kernel does. Hugetlb mappings never split: their
 * VMAs are aligned to the huge page size (hugetlb's may_split refuses anything else).
 */
import { BUG, BUG_ON, HPAGE_PMD_NR, HPAGE_PMD_ORDER } from '@cocosim/core';
import { FOLIO_MAPPING_ANON, folio_mark_dirty, folio_put, folio_ref_add, folio_ref_count, page_folio, type Folio } from './folio.js';
import { GFP_TRANSHUGE, GFP_TRANSHUGE_LIGHT, __GFP_MOVABLE, __GFP_ZERO } from './gfp.js';
import { folio_zero_user } from './hugetlb.js';
import type { Kernel } from './kernel.js';
import {
  FAULT_FLAG_UNSHARE,
  FAULT_FLAG_WRITE,
  MM_ANONPAGES,
  MM_FILEPAGES,
  MM_SHMEMPAGES,
  VM_FAULT_FALLBACK,
  VM_FAULT_OOM,
  VM_HUGEPAGE,
  VM_NOHUGEPAGE,
  VM_WRITE,
  vm_sysctl,
  vma_is_anonymous,
  type VmAreaStruct,
  type VmFault,
} from './mm_types.js';
import { mmu_notifier_invalidate_range_end, mmu_notifier_invalidate_range_start } from './mmu_notifier.js';
import { __folio_mark_uptodate, folio_test_hugetlb, folio_test_swapbacked } from './page-flags.js';
import {
  PAGES_PER_PUD,
  PTRS_PER_PTE,
  _PAGE_PSE,
  _PAGE_RW,
  _PAGE_SPECIAL,
  keys_in_range,
  pmdp_huge_get_and_clear,
  pte_alloc,
  pte_dirty,
  pte_mkdirty,
  pte_mkspecial,
  pte_mkwrite,
  pte_mkyoung,
  pte_modify,
  pte_present,
  pte_swp_type,
  set_pmd_at,
  pudp_huge_get_and_clear,
  set_pte_at,
  type HugeEntry,
} from './pgtable.js';
import {
  PageAnonExclusive,
  RMAP_EXCLUSIVE,
  SetPageAnonExclusive,
  anon_vma_prepare,
  folio_add_anon_rmap_ptes,
  folio_add_new_anon_rmap,
  folio_remove_rmap_pmd,
} from './rmap.js';
import { flush_tlb_mm_range } from './tlb.js';
import { folio_add_lru_vma, mm_counter, thp_vma_suitable_order } from './memory.js';
import { SWP_PFN_BITS, is_migration_type } from './swapops.js';

const PMD_ORDER = HPAGE_PMD_ORDER;

/* The huge zero folio (mm_get_huge_zero_folio()): a zeroed PMD-sized folio mapped read-only by
 * read faults of THP-enabled anonymous memory. Allocated on first use, kept for the host's life. */
const huge_zero = new WeakMap<Kernel, Folio>();

/** mm_get_huge_zero_folio(): the huge zero folio, allocated if needed; undefined when memory is short. */
export function mm_get_huge_zero_folio(kernel: Kernel): Folio | undefined {
  let f = huge_zero.get(kernel);
  if (f === undefined) {
    const pfn = kernel.page_alloc.folio_alloc((GFP_TRANSHUGE | __GFP_ZERO) & ~__GFP_MOVABLE, PMD_ORDER);
    if (pfn < 0) return undefined;
    kernel.cost.charge('page_alloc');
    kernel.cost.charge('page_zero_2m');
    f = pfn as Folio;
    huge_zero.set(kernel, f);
  }
  return f;
}

/** The huge zero folio if one was allocated, without allocating it (debug walks). */
export function huge_zero_folio_if_any(kernel: Kernel): Folio | undefined {
  return huge_zero.get(kernel);
}

/** is_huge_zero_pfn(): a page of the huge zero folio. */
export function is_huge_zero_pfn(kernel: Kernel, pfn: number): boolean {
  const f = huge_zero.get(kernel);
  return f !== undefined && pfn >= f && pfn < f + HPAGE_PMD_NR;
}

/**
 * thp_vma_allowable_order() for PMD-sized anonymous THPs at fault time: the sysfs setting
 * ("always", or "madvise" with VM_HUGEPAGE), not VM_NOHUGEPAGE.
 */
export function thp_vma_allowable_anon(vma: VmAreaStruct): boolean {
  if (!vma_is_anonymous(vma) || vma.vm_flags & VM_NOHUGEPAGE) return false;
  const setting = vm_sysctl(vma.vm_mm.kernel).transparent_hugepage;
  return setting === 'always' || (setting === 'madvise' && (vma.vm_flags & VM_HUGEPAGE) !== 0);
}

/**
 * vma_alloc_anon_folio_pmd(): a zeroed PMD-sized folio for an anon fault, GFP as
 * vma_thp_gfp_mask() gives it with defrag "madvise" (the default): direct reclaim only for
 * MADV_HUGEPAGE VMAs. Undefined when none is free (the fault falls back to small pages).
 */
function vma_alloc_anon_folio_pmd(vma: VmAreaStruct): Folio | undefined {
  const kernel = vma.vm_mm.kernel;
  const gfp = vma.vm_flags & VM_HUGEPAGE ? GFP_TRANSHUGE : GFP_TRANSHUGE_LIGHT;
  const pfn = kernel.page_alloc.folio_alloc(gfp, PMD_ORDER);
  if (pfn < 0) return undefined;
  kernel.cost.charge('page_alloc');
  folio_zero_user(kernel, pfn as Folio);
  __folio_mark_uptodate(kernel.store, pfn);
  return pfn as Folio;
}

/** map_anon_folio_pmd(): map a new anon THP at the PMD of page `vpn` of `vma`, writable and dirty if the VMA is. */
export function map_anon_folio_pmd(vma: VmAreaStruct, vpn: number, folio: Folio): void {
  const mm = vma.vm_mm;
  const store = mm.kernel.store;
  const pmd = Math.floor(vpn / PTRS_PER_PTE);
  let entry = pte_mkyoung(vma.vm_page_prot) | _PAGE_PSE;
  if (vma.vm_flags & VM_WRITE) entry = pte_mkwrite(pte_mkdirty(entry));
  folio_add_new_anon_rmap(store, folio, vma, pmd * PTRS_PER_PTE, RMAP_EXCLUSIVE);
  folio_add_lru_vma(store, folio, vma);
  set_pmd_at(mm.pgd, pmd, folio, entry);
  mm.add_mm_counter(MM_ANONPAGES, HPAGE_PMD_NR);
}

/**
 * do_huge_pmd_anonymous_page(): the first touch of a THP-sized, aligned range of anonymous
 * memory: the huge zero folio for a read, a new zeroed THP for a write. VM_FAULT_FALLBACK when
 * the range does not fit or no THP is free.
 */
export function do_huge_pmd_anonymous_page(vmf: VmFault): number {
  const vma = vmf.vma;
  const kernel = vma.vm_mm.kernel;
  if (!thp_vma_suitable_order(vma, vmf.vpn, PMD_ORDER)) return VM_FAULT_FALLBACK;
  if (anon_vma_prepare(vma)) return VM_FAULT_OOM;
  const pmd = Math.floor(vmf.vpn / PTRS_PER_PTE);
  if (!(vmf.flags & FAULT_FLAG_WRITE) && kernel.store.zero_pfn >= 0) {
    const zero = mm_get_huge_zero_folio(kernel);
    if (zero === undefined) return VM_FAULT_FALLBACK;
    set_pmd_at(vma.vm_mm.pgd, pmd, zero, pte_mkspecial(pte_mkyoung(vma.vm_page_prot)) | _PAGE_PSE);
    return 0;
  }
  const folio = vma_alloc_anon_folio_pmd(vma);
  if (folio === undefined) return VM_FAULT_FALLBACK;
  map_anon_folio_pmd(vmf.vma, vmf.vpn, folio);
  return 0;
}

/**
 * do_huge_pmd_wp_page(): a write to a read-only anon PMD: replace the huge zero folio with a new
 * THP, reuse an exclusive THP in place; otherwise split (the caller retries by PTEs) and return
 * VM_FAULT_FALLBACK.
 */
export function do_huge_pmd_wp_page(vmf: VmFault): number {
  const vma = vmf.vma;
  const mm = vma.vm_mm;
  const kernel = mm.kernel;
  const store = kernel.store;
  const pmd = Math.floor(vmf.vpn / PTRS_PER_PTE);
  const e = mm.pgd.pmds.get(pmd)!;
  const start = pmd * PTRS_PER_PTE;
  if (e.flags & _PAGE_SPECIAL && is_huge_zero_pfn(kernel, e.val)) {
    const folio = vma_alloc_anon_folio_pmd(vma);
    if (folio !== undefined) {
      mmu_notifier_invalidate_range_start(mm, start, start + HPAGE_PMD_NR);
      pmdp_huge_get_and_clear(mm.pgd, pmd);
      flush_tlb_mm_range(mm, start, start + HPAGE_PMD_NR, HPAGE_PMD_NR);
      map_anon_folio_pmd(vmf.vma, vmf.vpn, folio);
      mmu_notifier_invalidate_range_end(mm, start, start + HPAGE_PMD_NR);
      return 0;
    }
  } else if (store.mapping[store.idx(e.val)] & FOLIO_MAPPING_ANON && (PageAnonExclusive(store, e.val) || folio_ref_count(store, e.val) === 1)) {
    if (!PageAnonExclusive(store, e.val)) SetPageAnonExclusive(store, e.val);
    /* reuse: FAULT_FLAG_UNSHARE (a R/O pin) only needed it exclusive */
    if (vmf.flags & FAULT_FLAG_UNSHARE) return 0;
    e.flags = pte_mkyoung(vma.vm_flags & VM_WRITE ? pte_mkwrite(pte_mkdirty(e.flags)) : pte_mkdirty(e.flags));
    return 0;
  }
  split_huge_pmd(vma, pmd);
  return VM_FAULT_FALLBACK;
}

/** What zapping or splitting huge entries did, for the caller's mmu_gather. */
export class HugeZapResult {
  /** Entries cleared. */
  nr_cleared = 0;
  /** Folios freed. */
  nr_freed = 0;
  /** Pages whose translations must be flushed. */
  flush_start = Infinity;
  flush_end = -Infinity;

  record(start: number, end: number): void {
    this.nr_cleared++;
    if (start < this.flush_start) this.flush_start = start;
    if (end > this.flush_end) this.flush_end = end;
  }
}

/** Remove one leaf mapping `nr` pages of its folio: rss, rmap, the mapping's reference. */
function zap_huge_entry(vma: VmAreaStruct, e: HugeEntry, nr: number, res: HugeZapResult): void {
  const mm = vma.vm_mm;
  const store = mm.kernel.store;
  if (!pte_present(e.flags)) {
    /*
     * A hwpoison entry (a poisoned hugetlb page) or a migration entry: the page is already
     * unmapped and its reference dropped; a THP's migration entry still counts in rss.
     */
    const type = pte_swp_type(e.flags);
    if (!is_migration_type(type)) return;
    const folio = page_folio(store, e.val % 2 ** SWP_PFN_BITS);
    if (!folio_test_hugetlb(store, folio)) mm.add_mm_counter(mm_counter(store, folio), -nr);
    return;
  }
  /* the huge zero folio: no rss, no rmap, no reference */
  if (e.flags & _PAGE_SPECIAL) return;
  const folio = e.val;
  const anon = (store.mapping[store.idx(folio)] & FOLIO_MAPPING_ANON) !== 0;
  if (!anon && pte_dirty(e.flags)) folio_mark_dirty(store, folio);
  /* hugetlb pages are not rss (they count in hugetlb_usage) */
  if (!folio_test_hugetlb(store, folio)) {
    mm.add_mm_counter(anon ? MM_ANONPAGES : folio_test_swapbacked(store, folio) ? MM_SHMEMPAGES : MM_FILEPAGES, -nr);
  }
  folio_remove_rmap_pmd(store, folio, vma);
  if (folio_ref_count(store, folio) === 1) res.nr_freed++;
  folio_put(store, folio);
}

/**
 * split_huge_pmd_locked(): the PMD leaf at `pmd` becomes PTEs (anon) or goes (file), recorded in
 * `res`.
 */
function split_huge_pmd_locked(vma: VmAreaStruct, pmd: number, res: HugeZapResult): void {
  const mm = vma.vm_mm;
  const store = mm.kernel.store;
  const start = pmd * PTRS_PER_PTE;
  const e = pmdp_huge_get_and_clear(mm.pgd, pmd);
  if (e === undefined) return;
  const folio = e.val;
  BUG_ON(folio_test_hugetlb(store, folio), 'split of a hugetlb PMD mapping');
  if (e.flags & _PAGE_SPECIAL && is_huge_zero_pfn(mm.kernel, folio)) {
    /* __split_huge_zero_page_pmd(): 512 PTEs of the (small) zero page */
    const t = pte_alloc(mm.pgd, start);
    const flags = e.flags & ~_PAGE_PSE;
    for (let k = 0; k < HPAGE_PMD_NR; k++) set_pte_at(t, k, store.zero_pfn, flags);
    res.record(start, start + HPAGE_PMD_NR);
    return;
  }
  if (!(store.mapping[store.idx(folio)] & FOLIO_MAPPING_ANON)) {
    zap_huge_entry(vma, e, HPAGE_PMD_NR, res);
    res.record(start, start + HPAGE_PMD_NR);
    return;
  }
  /* One reference and one mapcount per PTE from now on; PG_anon_exclusive on every page. */
  const exclusive = PageAnonExclusive(store, folio);
  folio_ref_add(store, folio, HPAGE_PMD_NR - 1);
  folio_add_anon_rmap_ptes(store, folio, folio, HPAGE_PMD_NR, vma, exclusive ? RMAP_EXCLUSIVE : 0);
  folio_remove_rmap_pmd(store, folio, vma);
  const t = pte_alloc(mm.pgd, start);
  const flags = e.flags & ~_PAGE_PSE;
  for (let k = 0; k < HPAGE_PMD_NR; k++) set_pte_at(t, k, folio + k, flags);
  /* pmdp_invalidate(): the old PMD translation must go */
  res.record(start, start + HPAGE_PMD_NR);
}

/** Charge and flush what `res` recorded (tlb_finish_mmu() of a standalone operation). */
function huge_finish(vma: VmAreaStruct, res: HugeZapResult): void {
  const mm = vma.vm_mm;
  if (res.nr_cleared === 0) return;
  mm.kernel.cost.charge('pte_zap', res.nr_cleared);
  if (res.nr_freed !== 0) mm.kernel.cost.charge('page_free', res.nr_freed);
  flush_tlb_mm_range(mm, res.flush_start, res.flush_end);
}

/** __split_huge_pmd(): split (or, for a file folio, unmap) the PMD leaf at index `pmd`. */
export function split_huge_pmd(vma: VmAreaStruct, pmd: number): void {
  const res = new HugeZapResult();
  split_huge_pmd_locked(vma, pmd, res);
  huge_finish(vma, res);
}

/**
 * split_huge_pmd_address(): split the PMD leaf around page `vpn` if `vpn` is not PMD aligned
 * (a VMA boundary is about to fall inside it: vma_adjust_trans_huge()).
 */
export function split_huge_pmd_address(vma: VmAreaStruct, vpn: number): void {
  if (vpn % PTRS_PER_PTE === 0) return;
  const pmd = Math.floor(vpn / PTRS_PER_PTE);
  if (vma.vm_mm.pgd.pmds.has(pmd)) split_huge_pmd(vma, pmd);
}

/**
 * Zap the PMD and PUD leaves of `vma` in pages [start, end) into `res`. Leaves inside the range
 * go (zap_huge_pmd(), zap_huge_pud()); a PMD leaf straddling start or end is split first, so that
 * the PTE walk that follows zaps only the part in range. Like zap_huge_pmd(), the zap of a huge
 * entry does not look at zap_details.
 */
export function zap_huge_range(vma: VmAreaStruct, start: number, end: number, res: HugeZapResult): void {
  const pt = vma.vm_mm.pgd;
  if (pt.puds.size !== 0) {
    for (const pud of keys_in_range(pt.puds, Math.floor(start / PAGES_PER_PUD), Math.floor((end - 1) / PAGES_PER_PUD))) {
      const s = pud * PAGES_PER_PUD;
      if (s < start || s + PAGES_PER_PUD > end) BUG(`partial zap of the PUD leaf at pud ${pud}`);
      const e = pudp_huge_get_and_clear(pt, pud)!;
      zap_huge_entry(vma, e, PAGES_PER_PUD, res);
      res.record(s, s + PAGES_PER_PUD);
    }
  }
  if (pt.pmds.size !== 0) {
    for (const pmd of keys_in_range(pt.pmds, Math.floor(start / PTRS_PER_PTE), Math.floor((end - 1) / PTRS_PER_PTE))) {
      const s = pmd * PTRS_PER_PTE;
      if (s < start || s + PTRS_PER_PTE > end) {
        split_huge_pmd_locked(vma, pmd, res);
        continue;
      }
      const e = pmdp_huge_get_and_clear(pt, pmd)!;
      zap_huge_entry(vma, e, HPAGE_PMD_NR, res);
      res.record(s, s + PTRS_PER_PTE);
    }
  }
}

/**
 * change_huge_pmd(): apply `newprot` (the VMA's new vm_page_prot) to the PMD leaf at `pmd`,
 * write permission kept only where `writable` allows. Returns HPAGE_PMD_NR if it changed.
 */
export function change_huge_pmd(vma: VmAreaStruct, pmd: number, newprot: number, writable: boolean): number {
  const e = vma.vm_mm.pgd.pmds.get(pmd);
  if (e === undefined || !pte_present(e.flags)) return 0;
  let f = pte_modify(e.flags, newprot) | _PAGE_PSE;
  if (writable) f |= _PAGE_RW;
  if (f === e.flags) return 0;
  e.flags = f;
  return HPAGE_PMD_NR;
}
