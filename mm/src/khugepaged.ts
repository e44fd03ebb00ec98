/**
 * mm/khugepaged.c as far as MADV_COLLAPSE reaches it: madvise_collapse(), the checks of
 * thp_vma_allowable_order(vma, vm_flags, TVA_FORCED_COLLAPSE, PMD_ORDER) (mm/huge_memory.c
 * __thp_vma_allowable_orders(), Linux 6.18) that decide -EINVAL, for anonymous memory
 * hpage_collapse_scan_pmd() and collapse_huge_page() (the small pages of an aligned 2 MiB are
 * copied into a new THP, the unmapped ones and the zero page's read as zeros, unmapped and freed,
 * and the THP is mapped by the PMD), and for shmem hpage_collapse_scan_file(), collapse_file()
 * and collapse_pte_mapped_thp().
 *
 * shmem has no large folios in cocosim (shmem.ts), so collapse_file() does everything Linux does
 * to the file but join the pages: a PMD-order block is allocated (ENOMEM when there is none), the
 * cached pages are swapped in or cleared if fallocated, unmapped from every mapping and copied
 * into it, the holes cleared and charged to the inode (st_blocks counts all 512 pages, also past
 * i_size), and the 512 pages of the block take the place of the old folios in the page cache, as
 * order-0 folios (split_page()) where Linux keeps one THP. The data, the file's accounting, the
 * memory used and the result are Linux's; the asking VMA maps the 512 pages by PTEs where Linux
 * maps the THP by a PMD (collapse_pte_mapped_thp()), a later split cannot fail, and a range
 * collapsed before is collapsed (copied) again where Linux finds its THP and only maps it: the
 * same result, but for a page of it with an extra reference (a pin): Linux 0, cocosim EAGAIN. Verified on Linux 6.18.44: trace
 * madv-collapse-shmem.
 *
 * An anonymous range with a swap or other non-present entry is not swapped in first
 * (__collapse_huge_page_swapin()) but left, as a scan that finds SCAN_PTE_NON_PRESENT leaves it.
 * A PTE-mapped THP (split by a partial unmap or mprotect) is copied like small pages, as Linux
 * does. cocosim has no khugepaged.
 */
import { Errno, HPAGE_PMD_NR, HPAGE_PMD_ORDER, isMemPoison, type PgOff, type Pfn } from '@cocosim/core';
import { folio_add_lru } from './filemap.js';
import {
  folio_get, folio_mapcount, folio_mapped, folio_mapping, folio_mark_dirty, folio_nr_pages, folio_put, folio_ref_count,
  folio_test_anon, folio_trylock, folio_unlock, page_folio, type Folio,
} from './folio.js';
import { GFP_TRANSHUGE, __GFP_COMP } from './gfp.js';
import { map_anon_folio_pmd } from './huge_memory.js';
import { mm_counter_file, set_pte_range, thp_vma_suitable_order, vm_normal_page, vma_is_shmem, zap_page_range_single } from './memory.js';
import { folio_mc_copy } from './migrate.js';
import {
  __folio_mark_uptodate, __folio_set_swapbacked, folio_clear_active, folio_clear_unevictable, folio_mark_uptodate,
  folio_test_large, folio_test_locked, folio_test_lru, folio_test_private, folio_test_swapcache, folio_test_uptodate,
} from './page-flags.js';
import { VM_HUGETLB, VM_NOHUGEPAGE, VM_SPECIAL, VmFault, linear_page_index, vm_sysctl, vma_is_anonymous, type VmAreaStruct } from './mm_types.js';
import { _PAGE_PRESENT, _PAGE_PSE, _PAGE_SPECIAL, _PAGE_SWP, pmd_index_of, pte_index, pte_offset_map, pte_present, pte_write } from './pgtable.js';
import { TTU_BATCH_FLUSH, TTU_IGNORE_MLOCK, try_to_unmap, try_to_unmap_flush } from './rmap.js';
import { SGP_NOALLOC, shmem_charge, shmem_get_folio, shmem_uncharge, type FolioRef } from './shmem.js';
import { folio_isolate_lru, folio_putback_lru } from './swap.js';
import { xa_is_value } from './swapops.js';

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
  if (!suitable_at_end(vma)) return false;
  if (vma.vm_file !== null && vma_is_shmem(vma)) return vm_sysctl(vma.vm_mm.kernel).shmem_enabled !== 'deny';
  if (!vma_is_anonymous(vma)) return false;
  return vma.anon_vma !== null;
}

/**
 * thp_vma_suitable_order(vma, vma->vm_end - HPAGE_PMD_SIZE, PMD_ORDER) in unsigned long: for a
 * VMA that ends below 2 MiB the address wraps, the aligned address plus 2 MiB wraps to 0, and only
 * the file offset's alignment is left to check (Linux 6.18.44: MADV_COLLAPSE of a page mapped at
 * address 0 is 0, not EINVAL; found by fuzz --kernel-diff).
 */
function suitable_at_end(vma: VmAreaStruct): boolean {
  if (vma.end_vpn >= HPAGE_PMD_NR) return thp_vma_suitable_order(vma, vma.end_vpn - HPAGE_PMD_NR, HPAGE_PMD_ORDER);
  return vma_is_anonymous(vma) || (vma.start_vpn - vma.vm_pgoff) % HPAGE_PMD_NR === 0;
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
  FAIL,
  TRUNCATED,
  PAGE_COMPOUND,
  DEL_PAGE_LRU,
  PTE_MAPPED_HUGEPAGE,
}

/** The results after which madvise_collapse() goes on to the next 2 MiB. */
const GO_ON: ReadonlySet<Scan> = new Set([
  Scan.PMD_NULL, Scan.PTE_NON_PRESENT, Scan.PAGE_RO, Scan.PAGE_NULL, Scan.PAGE_COUNT, Scan.PAGE_LOCK,
  Scan.PAGE_COMPOUND, Scan.PAGE_LRU, Scan.DEL_PAGE_LRU,
]);

/** madvise_collapse_errno(). */
function madvise_collapse_errno(r: Scan): number {
  if (r === Scan.ALLOC_HUGE_PAGE_FAIL) return -Errno.ENOMEM;
  if (r === Scan.PAGE_COUNT || r === Scan.PAGE_LOCK || r === Scan.PAGE_LRU || r === Scan.DEL_PAGE_LRU) return -Errno.EAGAIN;
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
 * hpage_collapse_scan_file() for MADV_COLLAPSE: the 2 MiB of the file at page `start` (mapped at
 * `hvpn` in `vma`) is collapsed by collapse_file() unless a folio cached there is large, off the
 * LRU, or has a reference beyond the page cache's and its mappings' (a pin). Swapped-out entries
 * and holes do not stop it (max_ptes_none and max_ptes_swap are khugepaged's limits only).
 */
function hpage_collapse_scan_file(vma: VmAreaStruct, hvpn: number, start: number): Scan {
  const store = vma.vm_mm.kernel.store;
  const i_pages = vma.vm_file!.f_mapping.i_pages;
  for (let index = start; index < start + HPAGE_PMD_NR; index++) {
    const folio = i_pages.xa_load(index);
    if (folio === undefined || xa_is_value(folio)) continue;
    /* shmem here holds no large folio (a PMD-order one at `start` would be SCAN_PTE_MAPPED_HUGEPAGE) */
    if (folio_test_large(store, folio)) return Scan.PAGE_COMPOUND;
    if (!folio_test_lru(store, folio)) return Scan.PAGE_LRU;
    if (folio_ref_count(store, folio) !== 1 + folio_mapcount(store, folio) + (folio_test_private(store, folio) ? 1 : 0)) {
      return Scan.PAGE_COUNT;
    }
  }
  const r = collapse_file(vma, start);
  return r === Scan.PTE_MAPPED_HUGEPAGE ? collapse_pte_mapped_thp(vma, hvpn, start) : r;
}

/**
 * collapse_file() of a shmem file (see the file comment for how the THP is kept): allocate the
 * PMD-order block, take every cached folio of the 2 MiB locked, isolated and unmapped from all
 * its mappings (TTU_IGNORE_MLOCK), count the holes; fail and roll back on an empty range
 * (SCAN_TRUNCATED), a locked folio, a folio off the LRU, or a reference beyond the three
 * collapse_file() holds (SCAN_PAGE_COUNT: the unmapping stays done, as in Linux). Then charge the
 * holes, copy (a poisoned source: SCAN_COPY_MC, rolled back), and put the block's pages in the
 * page cache, dirty and on the LRU. SCAN_PTE_MAPPED_HUGEPAGE on success (MADV_COLLAPSE).
 */
function collapse_file(vma: VmAreaStruct, start: number): Scan {
  const kernel = vma.vm_mm.kernel;
  const store = kernel.store;
  const mapping = vma.vm_file!.f_mapping;
  const inode = mapping.host;
  const end = start + HPAGE_PMD_NR;
  /* alloc_charge_folio(): the block, not compound here (split below once the collapse holds) */
  const block = kernel.page_alloc.alloc_pages(GFP_TRANSHUGE & ~__GFP_COMP, HPAGE_PMD_ORDER);
  if (block < 0) return Scan.ALLOC_HUGE_PAGE_FAIL;
  kernel.cost.charge('page_alloc');
  const pagelist: Folio[] = [];
  let nr_none = 0;
  let result = Scan.SUCCEED;
  const ref: FolioRef = { folio: null };
  for (let index = start; index < end && result === Scan.SUCCEED; index++) {
    const entry = mapping.i_pages.xa_load(index);
    if (entry === undefined) {
      /* Stop if extent has been truncated or hole-punched, and is now completely empty. */
      if (index === start && mapping.i_pages.xa_find(start, end - 1) === undefined) result = Scan.TRUNCATED;
      else nr_none++;
      continue;
    }
    let folio: Folio;
    if (xa_is_value(entry) || !folio_test_uptodate(store, entry)) {
      /* swap in or instantiate fallocated page */
      if (shmem_get_folio(inode, index, 0n, ref, SGP_NOALLOC)) {
        result = Scan.FAIL;
        break;
      }
      folio = ref.folio!;
    } else if (folio_trylock(store, entry)) {
      folio = entry as Folio;
      folio_get(store, folio);
    } else {
      result = Scan.PAGE_LOCK;
      break;
    }
    if (!folio_test_uptodate(store, folio)) result = Scan.FAIL;
    else if (folio_test_large(store, folio)) result = Scan.PAGE_COMPOUND;
    else if (folio_mapping(store, folio) !== mapping.id) result = Scan.TRUNCATED;
    else if (!folio_isolate_lru(store, folio)) result = Scan.DEL_PAGE_LRU;
    if (result !== Scan.SUCCEED) {
      folio_unlock(store, folio);
      folio_put(store, folio);
      break;
    }
    if (folio_mapped(store, folio)) try_to_unmap(kernel, folio, TTU_IGNORE_MLOCK | TTU_BATCH_FLUSH);
    /* ours, the page cache's and the isolation's: any other is a user that must not lose the page */
    if (folio_ref_count(store, folio) !== 3) {
      result = Scan.PAGE_COUNT;
      folio_putback_lru(store, folio);
      folio_unlock(store, folio);
      folio_put(store, folio);
      break;
    }
    pagelist.push(folio);
  }
  try_to_unmap_flush(kernel);
  let charged = 0;
  if (result === Scan.SUCCEED && nr_none && shmem_charge(inode, nr_none)) charged = nr_none;
  if (result === Scan.SUCCEED) {
    let next = 0;
    for (let index = start; index < end; index++) {
      const dst = (block + index - start) as Folio;
      const old = pagelist[next];
      if (old === undefined || store.index[store.idx(old)] !== index) {
        kernel.phys.clear(dst as number as Pfn);
        kernel.cost.charge('page_zero_4k');
        continue;
      }
      next++;
      if (folio_mc_copy(kernel, dst, old)) {
        result = Scan.COPY_MC;
        break;
      }
      store.owner[store.idx(dst)] = store.owner[store.idx(old)];
    }
  }
  if (result !== Scan.SUCCEED) {
    /* rollback: Something went wrong: roll back page cache changes */
    if (charged) {
      mapping.nrpages -= charged;
      shmem_uncharge(inode, charged);
    }
    for (const folio of pagelist) {
      folio_unlock(store, folio);
      folio_putback_lru(store, folio);
      folio_put(store, folio);
    }
    kernel.page_alloc.__free_pages(block, HPAGE_PMD_ORDER);
    return result;
  }
  /* The block's pages join the page cache (each with the allocation's reference as the cache's) */
  kernel.page_alloc.split_page(block, HPAGE_PMD_ORDER);
  for (let index = start; index < end; index++) {
    const folio = (block + index - start) as Folio;
    const i = store.idx(folio);
    store.mapping[i] = mapping.id;
    store.index[i] = index;
    __folio_set_swapbacked(store, folio);
    folio_mark_uptodate(store, folio);
    folio_mark_dirty(store, folio);
    mapping.i_pages.xa_store(index, folio);
    folio_add_lru(store, folio);
  }
  /* The collapse has succeeded, so free the old folios. */
  for (const folio of pagelist) {
    store.mapping[store.idx(folio)] = 0;
    folio_clear_active(store, folio);
    folio_clear_unevictable(store, folio);
    folio_unlock(store, folio);
    folio_put(store, folio);
    folio_put(store, folio);
    folio_put(store, folio);
  }
  return Scan.PTE_MAPPED_HUGEPAGE;
}

/**
 * collapse_pte_mapped_thp(install_pmd) for the VMA that asked: every PTE left in its 2 MiB must
 * map the new page of its index (collapse_file() unmapped the old ones, so any present PTE is an
 * anonymous copy of a MAP_PRIVATE mapping: SCAN_FAIL; a swap or marker entry:
 * SCAN_PTE_NON_PRESENT). Then set_huge_pmd(): Linux maps the THP by the PMD, as do_set_pmd()
 * does for a read fault; cocosim maps its 512 pages by PTEs with the same protection, so that
 * the whole 2 MiB is mapped at once, past i_size too (a load there reads zeros, not SIGBUS,
 * until a truncation unmaps it).
 */
function collapse_pte_mapped_thp(vma: VmAreaStruct, hvpn: number, start: number): Scan {
  const mm = vma.vm_mm;
  const store = mm.kernel.store;
  const i_pages = vma.vm_file!.f_mapping.i_pages;
  const t = pte_offset_map(mm.pgd, hvpn);
  const base = pte_index(hvpn);
  if (t !== undefined) {
    for (let k = 0; k < HPAGE_PMD_NR; k++) {
      const f = t.flags[base + k];
      if (f === 0) continue;
      if (!pte_present(f)) return Scan.PTE_NON_PRESENT;
      if (vm_normal_page(store, f, t.val[base + k]) !== i_pages.xa_load(start + k)) return Scan.FAIL;
    }
  }
  const vmf = new VmFault(vma);
  for (let k = 0; k < HPAGE_PMD_NR; k++) {
    const page = i_pages.xa_load(start + k)! as Folio;
    if (t !== undefined && t.flags[base + k] !== 0) continue;
    vmf.vpn = hvpn + k;
    vmf.pgoff = (start + k) as PgOff;
    folio_get(store, page);
    set_pte_range(vmf, page, page, 1, hvpn + k);
    mm.add_mm_counter(mm_counter_file(store, page), 1);
  }
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
    else r = anon ? collapse_anon(vma, vpn) : hpage_collapse_scan_file(vma, vpn, linear_page_index(vma, vpn));
    if (r === Scan.SUCCEED || r === Scan.PMD_MAPPED) {
      thps++;
      continue;
    }
    last_fail = r;
    if (!GO_ON.has(r)) return madvise_collapse_errno(r);
  }
  return thps === (hend - hstart) / HPAGE_PMD_NR ? 0 : madvise_collapse_errno(last_fail);
}
