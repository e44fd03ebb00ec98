/**
 * mm/khugepaged.c as far as MADV_COLLAPSE reaches it: madvise_collapse(), the checks of
 * thp_vma_allowable_order(vma, vm_flags, TVA_FORCED_COLLAPSE, PMD_ORDER) (mm/huge_memory.c
 * __thp_vma_allowable_orders(), Linux 6.18) that decide -EINVAL, and for anonymous memory
 * hpage_collapse_scan_pmd() and collapse_huge_page(): the small pages of an aligned 2 MiB are
 * copied into a new THP (the unmapped ones and the zero page's read as zeros), unmapped and freed,
 * and the THP is mapped by the PMD.
 *
 * cocosim has no khugepaged, and two cases are simplified: a shmem range of small pages
 * (collapse_file()) is not collapsed, -EINVAL where Linux collapses it and says 0 (a known
 * difference, test/traces/disagreements.json); an anonymous range with a swap or other
 * non-present entry is not swapped in first (__collapse_huge_page_swapin()) but left, as a scan
 * that finds SCAN_PTE_NON_PRESENT leaves it. A PTE-mapped THP (split by a partial unmap or
 * mprotect) is copied like small pages, as Linux does.
 */
import { Errno, HPAGE_PMD_NR, HPAGE_PMD_ORDER, isMemPoison, type Pfn } from '@cocosim/core';
import { folio_mapcount, folio_nr_pages, folio_put, folio_ref_count, folio_test_anon, page_folio, type Folio } from './folio.js';
import { GFP_TRANSHUGE } from './gfp.js';
import { map_anon_folio_pmd } from './huge_memory.js';
import { thp_vma_suitable_order, vma_is_shmem, zap_page_range_single } from './memory.js';
import { __folio_mark_uptodate, folio_test_locked, folio_test_lru, folio_test_swapcache } from './page-flags.js';
import { VM_HUGETLB, VM_NOHUGEPAGE, VM_SPECIAL, vm_sysctl, vma_is_anonymous, type VmAreaStruct } from './mm_types.js';
import { _PAGE_PRESENT, _PAGE_PSE, _PAGE_SPECIAL, _PAGE_SWP, pmd_index_of, pte_index, pte_offset_map, pte_write } from './pgtable.js';

/** VM_NO_KHUGEPAGED: VMAs khugepaged and MADV_COLLAPSE leave alone. */
const VM_NO_KHUGEPAGED = VM_SPECIAL | VM_HUGETLB;

/**
 * vma_thp_disabled() for a forced collapse: VM_NOHUGEPAGE only (the process-wide prctl is not
 * modelled; MADV_COLLAPSE is itself the advice that MMF_DISABLE_THP_EXCEPT_ADVISED asks for).
 */
function vma_thp_disabled(vma: VmAreaStruct): boolean {
  return (vma.vm_flags & VM_NOHUGEPAGE) !== 0;
}

/**
 * thp_vma_allowable_order(vma, vma->vm_flags, TVA_FORCED_COLLAPSE, PMD_ORDER): the sysfs
 * "enabled" setting is ignored (forced), the VMA must take THPs (not VM_NOHUGEPAGE, not special or
 * hugetlb), must hold a 2 MiB range aligned in memory and in the file (thp_vma_suitable_order() at
 * vm_end - 2 MiB), and then: a shmem file unless shmem_enabled is "deny"
 * (shmem_allowable_huge_orders() with shmem_huge_force), an anonymous VMA once it has an anon_vma.
 * Other files (devices, guest_memfd) are neither shmem nor regular files with THP: no.
 */
export function thp_vma_allowable_collapse(vma: VmAreaStruct): boolean {
  if (vma_thp_disabled(vma)) return false;
  if (vma.vm_flags & VM_NO_KHUGEPAGED) return false;
  if (!thp_vma_suitable_order(vma, vma.end_vpn - HPAGE_PMD_NR, HPAGE_PMD_ORDER)) return false;
  if (vma.vm_file !== null && vma_is_shmem(vma)) return vm_sysctl(vma.vm_mm.kernel).shmem_enabled !== 'deny';
  if (!vma_is_anonymous(vma)) return false;
  return vma.anon_vma !== null;
}

/** The enum scan_result values madvise_collapse() tells apart. */
const enum Scan {
  SUCCEED,
  PMD_NULL,
  PMD_MAPPED,
  PTE_NON_PRESENT,
  PAGE_RO,
  PAGE_NULL,
  PAGE_ANON,
  PAGE_LOCK,
  PAGE_LRU,
  PAGE_COUNT,
  ALLOC_HUGE_PAGE_FAIL,
  COPY_MC,
  /** a shmem range of small pages: collapse_file() is not modelled */
  FILE_NOT_MODELLED,
}

/** The results after which madvise_collapse() goes on to the next 2 MiB. */
const GO_ON: ReadonlySet<Scan> = new Set([
  Scan.PMD_NULL, Scan.PTE_NON_PRESENT, Scan.PAGE_RO, Scan.PAGE_NULL, Scan.PAGE_COUNT, Scan.PAGE_LOCK,
  Scan.PAGE_LRU, Scan.FILE_NOT_MODELLED,
]);

/** madvise_collapse_errno(). */
function madvise_collapse_errno(r: Scan): number {
  if (r === Scan.ALLOC_HUGE_PAGE_FAIL) return -Errno.ENOMEM;
  if (r === Scan.PAGE_COUNT || r === Scan.PAGE_LOCK || r === Scan.PAGE_LRU) return -Errno.EAGAIN;
  return -Errno.EINVAL;
}

/**
 * hpage_collapse_scan_pmd() then collapse_huge_page() for the anonymous 2 MiB at `hvpn`: every
 * present page an exclusive small anon folio on the LRU, unlocked, with no reference beyond its
 * mappings (is_refcount_suitable()), and one PTE writable.
 */
function collapse_anon(vma: VmAreaStruct, hvpn: number): Scan {
  const mm = vma.vm_mm;
  const kernel = mm.kernel;
  const store = kernel.store;
  const t = pte_offset_map(mm.pgd, hvpn);
  if (t === undefined) return Scan.PMD_NULL;
  const base = pte_index(hvpn);
  let writable = false;
  for (let k = 0; k < HPAGE_PMD_NR; k++) {
    const f = t.flags[base + k];
    if (f === 0) continue;
    if (f & _PAGE_SWP) return Scan.PTE_NON_PRESENT;
    const pfn = t.val[base + k];
    if (pfn === store.zero_pfn) continue;
    if (f & _PAGE_SPECIAL) return Scan.PAGE_NULL;
    if (pte_write(f)) writable = true;
    const folio = page_folio(store, pfn);
    if (!folio_test_anon(store, folio)) return Scan.PAGE_ANON;
    if (folio_test_locked(store, folio)) return Scan.PAGE_LOCK;
    if (!folio_test_lru(store, folio)) return Scan.PAGE_LRU;
    /* is_refcount_suitable(): a reference per mapping (and the swap cache's), no pin, none other */
    const expected = folio_mapcount(store, folio) + (folio_test_swapcache(store, folio) ? folio_nr_pages(store, folio) : 0);
    if (folio_ref_count(store, folio) !== expected) return Scan.PAGE_COUNT;
  }
  if (!writable) return Scan.PAGE_RO;
  const thp = kernel.page_alloc.folio_alloc(GFP_TRANSHUGE, HPAGE_PMD_ORDER);
  if (thp < 0) return Scan.ALLOC_HUGE_PAGE_FAIL;
  kernel.cost.charge('page_alloc');
  /* __collapse_huge_page_copy(): each page copied, the holes and the zero page cleared */
  let copied = 0;
  for (let k = 0; k < HPAGE_PMD_NR; k++) {
    const f = t.flags[base + k];
    const pfn = t.val[base + k];
    if (f === 0 || pfn === store.zero_pfn) {
      kernel.phys.clear((thp + k) as Pfn);
      continue;
    }
    if (isMemPoison(kernel.phys.copy((thp + k) as Pfn, pfn as Pfn))) {
      folio_put(store, thp);
      return Scan.COPY_MC;
    }
    copied++;
  }
  kernel.cost.charge('page_copy_4k', copied);
  kernel.cost.charge('page_zero_4k', HPAGE_PMD_NR - copied);
  __folio_mark_uptodate(store, thp);
  /* pmdp_collapse_flush() and the old pages released: their PTEs, rmaps and references go */
  zap_page_range_single(vma, hvpn, HPAGE_PMD_NR, null);
  map_anon_folio_pmd(vma, hvpn, thp as Folio);
  return Scan.SUCCEED;
}

/**
 * madvise_collapse(): collapse the 2 MiB-aligned ranges inside pages [start, end) of `vma` (the
 * part of the madvise range in this VMA). 0 when each is a THP mapped by a PMD at the end.
 */
export function madvise_collapse(vma: VmAreaStruct, start: number, end: number): number {
  if (!thp_vma_allowable_collapse(vma)) return -Errno.EINVAL;
  const hstart = Math.ceil(start / HPAGE_PMD_NR) * HPAGE_PMD_NR;
  const hend = Math.floor(end / HPAGE_PMD_NR) * HPAGE_PMD_NR;
  /*
   * A range inside one 2 MiB that does not start on its boundary has hstart > hend: the kernel's
   * "thps == (hend - hstart) >> HPAGE_PMD_SHIFT" compares 0 with an unsigned wrap and returns
   * madvise_collapse_errno(SCAN_FAIL), -EINVAL (Linux 6.18.44: madvise(p + 4096, 4096) is
   * EINVAL where madvise(p, 4096) is 0).
   */
  if (hstart > hend) return -Errno.EINVAL;
  const pmds = vma.vm_mm.pgd.pmds;
  const anon = vma_is_anonymous(vma);
  let thps = 0;
  let last_fail = Scan.PAGE_NULL;
  for (let vpn = hstart; vpn < hend; vpn += HPAGE_PMD_NR) {
    const e = pmds.get(pmd_index_of(vpn));
    let r: Scan;
    if (e !== undefined) r = (e.flags & (_PAGE_PRESENT | _PAGE_PSE)) === (_PAGE_PRESENT | _PAGE_PSE) ? Scan.PMD_MAPPED : Scan.PMD_NULL;
    else r = anon ? collapse_anon(vma, vpn) : Scan.FILE_NOT_MODELLED;
    if (r === Scan.SUCCEED || r === Scan.PMD_MAPPED) {
      thps++;
      continue;
    }
    last_fail = r;
    if (!GO_ON.has(r)) return madvise_collapse_errno(r);
  }
  return thps === (hend - hstart) / HPAGE_PMD_NR ? 0 : madvise_collapse_errno(last_fail);
}
