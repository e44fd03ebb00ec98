/**
 * Reverse mapping, the part the address-space side maintains (mm/rmap.c, include/linux/rmap.h,
 * mm/interval_tree.c): the mapcounts of folios mapped by page tables, anon_vmas, and each
 * address_space's i_mmap (the VMAs mapping it).
 *
 * Mapcounts follow the kernel with CONFIG_PAGE_MAPCOUNT (6.18):
 *   - a small folio: page->_mapcount counts its PTE mappings (-1 based);
 *   - a large folio mapped by PTEs: each page's _mapcount counts its PTE mappings,
 *     _large_mapcount counts all mappings, _nr_pages_mapped the pages mapped at least once;
 *   - a large folio mapped by a PMD (or PUD): _entire_mapcount, _large_mapcount, and
 *     ENTIRELY_MAPPED added to _nr_pages_mapped.
 * Every page-table entry mapping a folio also holds one folio reference (taken by the fault path
 * or the caller), dropped by the zap after the rmap is removed.
 *
 * Reverse lookups:
 *   - file folios: folio->mapping is the address_space; the VMAs mapping page `index` are those
 *     in the mapping's i_mmap whose [vm_pgoff, vm_pgoff + pages) contains it (i_mmap_of());
 *   - anon folios: folio->mapping is the anon_vma's id | FOLIO_MAPPING_ANON and folio->index the
 *     linear page index (vm_pgoff-based); anon_vma_lookup() resolves the id, and the VMAs are the
 *     anon_vma's.
 * The kernel keeps both as interval trees; the simulator keeps sets and tests overlap, which is
 * linear in the (few) VMAs mapping one object.
 *
 * Walks (mm/rmap.c, mm/page_vma_mapped.c): rmap_walk() visits those VMAs (charging
 * rmap_walk_per_mapping for each), page_vma_mapped_walk() finds the entries of one VMA that map
 * the folio, and on them: try_to_unmap() (reclaim, memory-failure: swap, hwpoison or nothing
 * left behind), try_to_migrate() (migration entries), folio_referenced() (young bits) and
 * folio_mkclean() (write-protect for writeback). Each cleared entry charges pte_zap; TLB flushes
 * go through tlb.ts, or are deferred by TTU_BATCH_FLUSH to try_to_unmap_flush().
 */
import { BUG, BUG_ON, Errno, costId } from '@cocosim/core';
import { lookupMapping } from './filemap.js';
import {
  FOLIO_MAPPING_ANON,
  FOLIO_MAPPING_FLAGS,
  folio_mapcount,
  folio_mapped,
  folio_mapping,
  folio_mark_dirty,
  folio_maybe_dma_pinned,
  folio_nr_pages,
  folio_order,
  folio_put,
  folio_raw_mapping,
  folio_ref_count,
  folio_test_anon,
  folio_test_ksm,
  folio_trylock,
  folio_unlock,
  type Folio,
} from './folio.js';
import type { AddressSpace } from './fs.js';
import { split_huge_pmd } from './huge_memory.js';
import type { Kernel } from './kernel.js';
import { mm_counter, mm_counter_file } from './memory.js';
import { mmu_notifier_invalidate_range_end, mmu_notifier_invalidate_range_start } from './mmu_notifier.js';
import {
  PG_anon_exclusive,
  PG_head,
  PG_hwpoison,
  PG_locked,
  PageHWPoison,
  __folio_set_swapbacked,
  folio_set_swapbacked,
  folio_test_dirty,
  folio_test_hugetlb,
  folio_test_large,
  folio_test_locked,
  folio_test_mlocked,
  folio_test_swapbacked,
  folio_test_swapcache,
} from './page-flags.js';
import { mlock_vma_folio, munlock_vma_folio } from './mlock.js';
import { find_mergeable_anon_vma } from './vma.js';
import type { PageStore } from './page_store.js';
import {
  MM_ANONPAGES,
  MM_SWAPENTS,
  VM_DROPPABLE,
  VM_LOCKED,
  VM_RAND_READ,
  VM_SEQ_READ,
  VM_SHARED,
  is_vm_hugetlb_page,
  linear_page_index,
  vm_flags_andnot,
  vm_flags_or,
  vm_flags_test,
  type MmStruct,
  type VmAreaStruct,
} from './mm_types.js';
import {
  PTRS_PER_PTE,
  is_swap_pte,
  pmd_index_of,
  pmdp_huge_get_and_clear,
  pte_clear,
  pte_dirty,
  pte_index,
  pte_mkclean,
  pte_mkold,
  pte_present,
  pte_swp_type,
  pte_write,
  pte_wrprotect,
  pte_young,
  pud_index_of,
  pudp_huge_get_and_clear,
  set_pmd_at,
  set_pte_at,
  set_pud_at,
  set_swp_pte_at,
  swp_pte_flags,
  type HugeEntry,
  type PteTable,
} from './pgtable.js';
import {
  SWP_HWPOISON,
  SWP_MIGRATION_READ,
  SWP_MIGRATION_READ_EXCLUSIVE,
  SWP_MIGRATION_WRITE,
  SWP_MIG_DIRTY_BIT,
  SWP_MIG_YOUNG_BIT,
  SWP_PFN_BITS,
  is_migration_type,
  swp_entry,
  swp_offset,
  swp_type,
} from './swapops.js';
import { page_swap_entry } from './swap_state.js';
import { swap_duplicate, swap_free } from './swapfile.js';
import { flush_tlb_mm_range } from './tlb.js';

/** ENTIRELY_MAPPED (mm/internal.h): added to _nr_pages_mapped by a PMD/PUD mapping. */
export const ENTIRELY_MAPPED = 0x800000;
/** FOLIO_PAGES_MAPPED: the part of _nr_pages_mapped counting PTE-mapped pages. */
export const FOLIO_PAGES_MAPPED = ENTIRELY_MAPPED - 1;

/* rmap_t flags (include/linux/rmap.h) */
export const RMAP_NONE = 0;
/** The (sub)page is exclusive to a single process. */
export const RMAP_EXCLUSIVE = 1 << 0;

/** PageAnonExclusive(). */
export function PageAnonExclusive(store: PageStore, page: number): boolean {
  return (store.flags[store.idx(page)] & (1 << PG_anon_exclusive)) !== 0;
}
/** SetPageAnonExclusive(). */
export function SetPageAnonExclusive(store: PageStore, page: number): void {
  store.flags[store.idx(page)] |= 1 << PG_anon_exclusive;
}
/** ClearPageAnonExclusive(). */
export function ClearPageAnonExclusive(store: PageStore, page: number): void {
  store.flags[store.idx(page)] &= ~(1 << PG_anon_exclusive);
}

/**
 * struct anon_vma: the VMAs that may map a set of anonymous pages. Without fork every anon_vma
 * is its own root and belongs to the VMAs of one mm (those split or merged from one another).
 */
export class AnonVma {
  /** The VMAs linked to this anon_vma (its anon_vma_chain / rb_root). */
  readonly vmas = new Set<VmAreaStruct>();
  /**
   * The oldest anon_vma of its fork tree (anon_vma->root): itself, or the first ancestor's
   * (anon_vma_fork()). Every VMA of the tree is linked to it.
   */
  root: AnonVma = this;
  constructor(
    /** Tagged into folio->mapping (a multiple of 4). */
    readonly id: number,
  ) {}
}

const anon_vmas = new WeakMap<Kernel, Map<number, AnonVma>>();

function anon_vma_registry(kernel: Kernel): Map<number, AnonVma> {
  let m = anon_vmas.get(kernel);
  if (m === undefined) {
    m = new Map();
    anon_vmas.set(kernel, m);
  }
  return m;
}

/** anon_vma_alloc(). */
export function anon_vma_alloc(kernel: Kernel): AnonVma {
  const av = new AnonVma(kernel.next_mapping_id());
  anon_vma_registry(kernel).set(av.id, av);
  return av;
}

/**
 * The anon_vma whose id folio->mapping holds (without the FOLIO_MAPPING_ANON tag), or undefined
 * once all its VMAs are gone (folio_get_anon_vma() then finds the folio unmapped).
 */
export function anon_vma_lookup(kernel: Kernel, id: number): AnonVma | undefined {
  return anon_vmas.get(kernel)?.get(id);
}

/** Link `vma` to `anon_vma` (anon_vma_chain_link()). */
export function anon_vma_link(vma: VmAreaStruct, anon_vma: AnonVma): void {
  vma.anon_vma = anon_vma;
  anon_vma.vmas.add(vma);
}

/**
 * unlink_anon_vmas(): the VMA is going away or is being merged into another; an anon_vma left
 * without VMAs is freed.
 */
export function unlink_anon_vmas(vma: VmAreaStruct): void {
  const inherited = anon_vma_chains.get(vma);
  if (inherited !== undefined) {
    anon_vma_chains.delete(vma);
    for (const p of inherited) {
      p.vmas.delete(vma);
      if (p.vmas.size === 0) anon_vmas.get(vma.vm_mm.kernel)?.delete(p.id);
    }
  }
  const av = vma.anon_vma;
  if (av === null) return;
  av.vmas.delete(vma);
  vma.anon_vma = null;
  if (av.vmas.size === 0) anon_vmas.get(vma.vm_mm.kernel)?.delete(av.id);
}

/**
 * The rest of each VMA's anon_vma_chain after fork: the anon_vmas of its ancestors' VMAs
 * (anon_vma_fork()), whose pages it may map until it COWs them, nearest parent first. A VMA
 * never forked from has none.
 */
const anon_vma_chains = new WeakMap<VmAreaStruct, AnonVma[]>();

/** vma->anon_vma_chain: every anon_vma the VMA is linked to, its own (vma->anon_vma) first. */
export function anon_vma_chain_of(vma: VmAreaStruct): readonly AnonVma[] {
  const inherited = anon_vma_chains.get(vma) ?? [];
  return vma.anon_vma === null ? inherited : [vma.anon_vma, ...inherited];
}

/** Link `vma` to the ancestors' anon_vmas `chain` (anon_vma_clone()'s loop over the chain). */
function anon_vma_chain_link_all(vma: VmAreaStruct, chain: readonly AnonVma[]): void {
  if (chain.length === 0) return;
  const mine = anon_vma_chains.get(vma) ?? [];
  for (const av of chain) {
    if (av === vma.anon_vma || mine.includes(av)) continue;
    mine.push(av);
    av.vmas.add(vma);
  }
  anon_vma_chains.set(vma, mine);
}

/**
 * anon_vma_fork(): the child's copy `vma` of the parent's `pvma` is linked to every anon_vma of
 * pvma's chain, so that rmap walks of the pages they share find the child's mappings, and gets
 * an anon_vma of its own for the pages it will COW. Nothing when the parent has no anon_vma
 * here. 0 (the simulator does not fail the allocation). The kernel's reuse of an anon_vma left
 * without VMAs (num_active_vmas == 0, num_children < 2) is not modelled: the child always gets
 * a new one.
 */
export function anon_vma_fork(vma: VmAreaStruct, pvma: VmAreaStruct): number {
  if (pvma.anon_vma === null) return 0;
  vma.anon_vma = null;
  anon_vma_chain_link_all(vma, anon_vma_chain_of(pvma));
  const av = anon_vma_alloc(vma.vm_mm.kernel);
  av.root = pvma.anon_vma.root;
  anon_vma_link(vma, av);
  return 0;
}

/**
 * anon_vma_prepare(): make sure `vma` has an anon_vma before an anon page is added to it: a
 * neighbour's it could share (find_mergeable_anon_vma()), or a new one. 0 (the simulator does
 * not fail the allocation).
 */
export function anon_vma_prepare(vma: VmAreaStruct): number {
  if (vma.anon_vma !== null) return 0;
  anon_vma_link(vma, find_mergeable_anon_vma(vma) ?? anon_vma_alloc(vma.vm_mm.kernel));
  return 0;
}

/** anon_vma_clone(): `dst` (split from `src`) shares src's anon_vma. */
export function anon_vma_clone(dst: VmAreaStruct, src: VmAreaStruct): void {
  if (src.anon_vma !== null) anon_vma_link(dst, src.anon_vma);
  anon_vma_chain_link_all(dst, anon_vma_chains.get(src) ?? []);
}

/* i_mmap: the VMAs mapping each address_space */

/** mapping->i_mmap: the VMAs mapping `mapping`. */
export function i_mmap_of(mapping: AddressSpace): ReadonlySet<VmAreaStruct> {
  return mapping.i_mmap;
}

/** vma_interval_tree_insert(). */
export function vma_interval_tree_insert(vma: VmAreaStruct, mapping: AddressSpace): void {
  mapping.i_mmap.add(vma);
}

/** vma_interval_tree_remove(). */
export function vma_interval_tree_remove(vma: VmAreaStruct, mapping: AddressSpace): void {
  BUG_ON(!mapping.i_mmap.delete(vma), 'vma_interval_tree_remove of a VMA not in i_mmap');
}

/** mapping_mapped(): some VMA maps the file. */
export function mapping_mapped(mapping: AddressSpace): boolean {
  return mapping.i_mmap.size > 0;
}

/**
 * vma_interval_tree_foreach(): call fn for each VMA of `mapping` mapping some page offset in
 * [first, last], in no particular order. fn may unmap pages but must not change i_mmap.
 */
export function vma_interval_tree_foreach(
  mapping: AddressSpace,
  first: number,
  last: number,
  fn: (vma: VmAreaStruct) => void,
): void {
  const s = mapping.i_mmap;
  if (s.size === 0) return;
  /* fn may map or unmap: it walks what was there when the walk began (one VMA needs no copy) */
  if (s.size === 1) {
    for (const vma of s) if (vma_overlaps_pgoff(vma, first, last)) fn(vma);
    return;
  }
  for (const vma of [...s]) if (vma_overlaps_pgoff(vma, first, last)) fn(vma);
}

/** The VMA maps some of file pages [first, last]. */
function vma_overlaps_pgoff(vma: VmAreaStruct, first: number, last: number): boolean {
  return vma.vm_pgoff <= last && vma.vm_pgoff + (vma.end_vpn - vma.start_vpn) - 1 >= first;
}

/* Mapcounts (mm/rmap.c __folio_add_rmap / __folio_remove_rmap) */

/** Add `nr` PTE mappings of pages [page, page + nr) of `folio`. */
function __folio_add_rmap_ptes(store: PageStore, folio: number, page: number, nr: number): void {
  if (!folio_test_large(store, folio)) {
    BUG_ON(nr !== 1, 'PTE-mapping more than one page of a small folio');
    store._mapcount[store.idx(folio)]++;
    return;
  }
  const hi = store.idx(folio);
  const pi = store.idx(page);
  let first = 0;
  for (let k = 0; k < nr; k++) if (++store._mapcount[pi + k] === 0) first++;
  store._large_mapcount[hi] += nr;
  store._nr_pages_mapped[hi] += first;
}

/** Remove `nr` PTE mappings of pages [page, page + nr) of `folio`. */
function __folio_remove_rmap_ptes(store: PageStore, folio: number, page: number, nr: number): void {
  if (!folio_test_large(store, folio)) {
    const i = store.idx(folio);
    if (store._mapcount[i] < 0) BUG(`folio_remove_rmap_pte: folio 0x${folio.toString(16)} is not mapped`);
    store._mapcount[i]--;
    return;
  }
  const hi = store.idx(folio);
  const pi = store.idx(page);
  let last = 0;
  for (let k = 0; k < nr; k++) {
    if (store._mapcount[pi + k] < 0) BUG(`folio_remove_rmap_ptes: page 0x${(page + k).toString(16)} is not mapped`);
    if (--store._mapcount[pi + k] === -1) last++;
  }
  store._large_mapcount[hi] -= nr;
  store._nr_pages_mapped[hi] -= last;
}

/**
 * folio_dup_file_rmap_pte() (fork): the child maps page `page` of a page-cache folio as the
 * parent does: one more PTE mapping, no mlock (the child's VMA is never VM_LOCKED).
 */
export function folio_dup_file_rmap_pte(store: PageStore, folio: number, page: number): void {
  __folio_add_rmap_ptes(store, folio, page, 1);
}

/**
 * folio_try_dup_anon_rmap_pte() (include/linux/rmap.h __folio_try_dup_anon_rmap(), fork): the
 * child shares the parent's anon page, which stops being exclusive. -EBUSY, having changed
 * nothing, when the page is exclusive and the folio may be pinned: the caller copies it for the
 * child instead (a pin must keep seeing the page the parent maps).
 */
export function folio_try_dup_anon_rmap_pte(store: PageStore, folio: number, page: number): number {
  if (PageAnonExclusive(store, page) && folio_maybe_dma_pinned(store, folio)) return -Errno.EBUSY;
  if (PageAnonExclusive(store, page)) ClearPageAnonExclusive(store, page);
  __folio_add_rmap_ptes(store, folio, page, 1);
  return 0;
}

/** folio_try_dup_anon_rmap_pmd(): the same for a PMD mapping of the whole folio. */
export function folio_try_dup_anon_rmap_pmd(store: PageStore, folio: number, page: number): number {
  if (PageAnonExclusive(store, page)) {
    if (folio_maybe_dma_pinned(store, folio)) return -Errno.EBUSY;
    ClearPageAnonExclusive(store, page);
  }
  __folio_add_rmap_entire(store, folio);
  return 0;
}

/** folio_dup_file_rmap_pmd() and hugetlb_add_file_rmap() at fork: one more mapping of the whole folio. */
export function folio_dup_file_rmap_pmd(store: PageStore, folio: number): void {
  __folio_add_rmap_entire(store, folio);
}

/** A PMD (or PUD) mapping of the whole folio. */
function __folio_add_rmap_entire(store: PageStore, folio: number): void {
  const hi = store.idx(folio);
  BUG_ON(!folio_test_large(store, folio), 'PMD-mapping a small folio');
  store._large_mapcount[hi]++;
  /* hugetlb_add_file_rmap() / hugetlb_add_anon_rmap() leave _nr_pages_mapped alone */
  if (++store._entire_mapcount[hi] === 0 && !folio_test_hugetlb(store, folio)) store._nr_pages_mapped[hi] += ENTIRELY_MAPPED;
}

function __folio_remove_rmap_entire(store: PageStore, folio: number): void {
  const hi = store.idx(folio);
  if (store._entire_mapcount[hi] < 0) BUG(`folio_remove_rmap_pmd: folio 0x${folio.toString(16)} is not PMD-mapped`);
  store._large_mapcount[hi]--;
  if (--store._entire_mapcount[hi] === -1 && !folio_test_hugetlb(store, folio)) store._nr_pages_mapped[hi] -= ENTIRELY_MAPPED;
}

/**
 * folio_add_file_rmap_ptes(): `vma` maps `nr` pages [page, page + nr) of a page-cache folio by
 * PTEs. A small folio mapped into a VM_LOCKED VMA is mlocked (mlock_vma_folio()).
 */
export function folio_add_file_rmap_ptes(store: PageStore, folio: number, page: number, nr: number, vma: VmAreaStruct): void {
  __folio_add_rmap_ptes(store, folio, page, nr);
  if (!folio_test_large(store, folio)) mlock_vma_folio(store, folio, vma);
}
/** folio_add_file_rmap_pte(). */
export function folio_add_file_rmap_pte(store: PageStore, folio: number, page: number, vma: VmAreaStruct): void {
  folio_add_file_rmap_ptes(store, folio, page, 1, vma);
}
/** folio_add_file_rmap_pmd() and folio_add_file_rmap_pud(): map the whole folio by one entry. */
export function folio_add_file_rmap_pmd(store: PageStore, folio: number, vma: VmAreaStruct): void {
  __folio_add_rmap_entire(store, folio);
  mlock_vma_folio(store, folio, vma);
}

/** folio_add_anon_rmap_ptes(): map pages of an anon folio already set up (swap-in, migration). */
export function folio_add_anon_rmap_ptes(store: PageStore, folio: number, page: number, nr: number, vma: VmAreaStruct, flags: number): void {
  __folio_add_rmap_ptes(store, folio, page, nr);
  if (flags & RMAP_EXCLUSIVE) for (let k = 0; k < nr; k++) SetPageAnonExclusive(store, page + k);
  if (!folio_test_large(store, folio)) mlock_vma_folio(store, folio, vma);
}
/** folio_add_anon_rmap_pmd(). */
export function folio_add_anon_rmap_pmd(store: PageStore, folio: number, vma: VmAreaStruct, flags: number): void {
  __folio_add_rmap_entire(store, folio);
  if (flags & RMAP_EXCLUSIVE) SetPageAnonExclusive(store, folio);
  mlock_vma_folio(store, folio, vma);
}

/**
 * folio_add_new_anon_rmap(): a freshly allocated folio becomes anonymous memory of `vma`,
 * mapped at page `vpn`: folio->mapping = anon_vma | FOLIO_MAPPING_ANON, folio->index = the
 * linear page index, mapcounts set for one mapping (by a PTE for a small folio, by a PMD for a
 * PMD-sized one), swapbacked, and PG_anon_exclusive when `flags` has RMAP_EXCLUSIVE. (The mlock
 * of a new folio happens in folio_add_lru_vma(), memory.ts.)
 */
export function folio_add_new_anon_rmap(store: PageStore, folio: Folio, vma: VmAreaStruct, vpn: number, flags: number): void {
  const av = vma.anon_vma;
  BUG_ON(av === null, 'folio_add_new_anon_rmap: the VMA has no anon_vma (anon_vma_prepare() not called)');
  if (!folio_test_swapbacked(store, folio) && !vm_flags_test(vma.vm_flags, VM_DROPPABLE)) __folio_set_swapbacked(store, folio);
  const hi = store.idx(folio);
  const exclusive = (flags & RMAP_EXCLUSIVE) !== 0;
  /* __folio_set_anon(): a folio not exclusive to this VMA must use the oldest possible anon_vma */
  store.mapping[hi] = (exclusive ? av! : av!.root).id | FOLIO_MAPPING_ANON;
  store.index[hi] = linear_page_index(vma, vpn);
  if (!folio_test_large(store, folio)) {
    store._mapcount[hi] = 0;
    if (exclusive) SetPageAnonExclusive(store, folio);
    return;
  }
  const nr = folio_nr_pages(store, folio);
  BUG_ON(vpn + nr > vma.end_vpn || vpn < vma.start_vpn, 'folio_add_new_anon_rmap: folio beyond the VMA');
  /* A PMD-sized folio is mapped by one PMD entry (do_huge_pmd_anonymous_page). */
  store._entire_mapcount[hi] = 0;
  store._large_mapcount[hi] = 0;
  store._nr_pages_mapped[hi] = ENTIRELY_MAPPED;
  if (exclusive) SetPageAnonExclusive(store, folio);
}

/**
 * folio_remove_rmap_ptes(): `vma`'s `nr` PTE mappings of pages [page, page + nr) are gone; a
 * folio no longer mapped by a VM_LOCKED VMA is munlocked.
 */
export function folio_remove_rmap_ptes(store: PageStore, folio: number, page: number, nr: number, vma: VmAreaStruct): void {
  __folio_remove_rmap_ptes(store, folio, page, nr);
  munlock_vma_folio(store, folio, vma);
}
/** folio_remove_rmap_pte(). */
export function folio_remove_rmap_pte(store: PageStore, folio: number, page: number, vma: VmAreaStruct): void {
  folio_remove_rmap_ptes(store, folio, page, 1, vma);
}
/** folio_remove_rmap_pmd() and folio_remove_rmap_pud(). */
export function folio_remove_rmap_pmd(store: PageStore, folio: number, vma: VmAreaStruct): void {
  __folio_remove_rmap_entire(store, folio);
  munlock_vma_folio(store, folio, vma);
}

/* Reverse-map walks (mm/rmap.c, mm/page_vma_mapped.c, mm/internal.h; Linux 6.18) */

/**
 * vma_address(): the page of `vma` where an object of `nr_pages` pages starting at file (or
 * anon) page `pgoff` is mapped: its first page's, or the VMA's start when the object begins
 * before the VMA; -1 (-EFAULT) when no part of it lies in the VMA.
 */
export function vma_address(vma: VmAreaStruct, pgoff: number, nr_pages: number): number {
  if (pgoff >= vma.vm_pgoff) {
    const vpn = vma.start_vpn + (pgoff - vma.vm_pgoff);
    /* Check for address beyond vma */
    return vpn < vma.end_vpn ? vpn : -1;
  }
  if (pgoff + nr_pages - 1 >= vma.vm_pgoff) return vma.start_vpn;
  return -1;
}

/**
 * page_address_in_vma() for the page at `page` of `folio`: its page number in `vma`, or -1
 * (-EFAULT) when the folio's object is not the VMA's or the page falls outside it.
 */
export function page_address_in_vma(kernel: Kernel, folio: Folio, page: number, vma: VmAreaStruct): number {
  const store = kernel.store;
  if (folio_test_anon(store, folio)) {
    const av = anon_vma_lookup(kernel, folio_raw_mapping(store, folio));
    if (av === undefined || vma.anon_vma !== av) return -1;
  } else {
    const mapping = store.mapping[store.idx(folio)];
    if (vma.vm_file === null || vma.vm_file.f_mapping.id !== mapping) return -1;
  }
  return vma_address(vma, store.index[store.idx(folio)] + (page - folio), 1);
}

/** struct rmap_walk_control (include/linux/rmap.h). */
export interface RmapWalkControl<T = unknown> {
  arg: T;
  /**
   * Called for each VMA that may map the folio, with the page number where the folio's first
   * page (or the VMA's start) would be mapped. Returning false stops the walk.
   */
  rmap_one(folio: Folio, vma: VmAreaStruct, vpn: number, arg: T): boolean;
  /** Checked after each rmap_one(): true stops the walk (folio_not_mapped()). */
  done?(folio: Folio): boolean;
  /** true skips the VMA. */
  invalid_vma?(vma: VmAreaStruct, arg: T): boolean;
}

/** folio_not_mapped(): the rmap_walk_control.done of the unmapping walks. */
export function folio_not_mapped(store: PageStore, folio: Folio): boolean {
  return !folio_mapped(store, folio);
}

/** The VMAs of `set` whose object range overlaps [first, last], as the interval tree yields them. */
function vmas_overlapping(set: ReadonlySet<VmAreaStruct>, first: number, last: number): VmAreaStruct[] {
  const out: VmAreaStruct[] = [];
  for (const vma of set) {
    const vfirst = vma.vm_pgoff;
    const vlast = vma.vm_pgoff + (vma.end_vpn - vma.start_vpn) - 1;
    if (vfirst <= last && vlast >= first) out.push(vma);
  }
  return out;
}

const RMAP_WALK_PER_MAPPING = costId('rmap_walk_per_mapping');

/** One VMA of rmap_walk_vmas(): false when the walk stops there. */
function rmap_walk_one<T>(kernel: Kernel, folio: Folio, vma: VmAreaStruct, pgoff: number, nr: number, rwc: RmapWalkControl<T>): boolean {
  const vpn = vma_address(vma, pgoff, nr);
  BUG_ON(vpn < 0, 'VM_BUG_ON_VMA: rmap walk found a VMA that cannot map the folio');
  kernel.cost.chargeId(RMAP_WALK_PER_MAPPING);
  if (rwc.invalid_vma?.(vma, rwc.arg)) return true;
  if (!rwc.rmap_one(folio, vma, vpn, rwc.arg)) return false;
  return !rwc.done?.(folio);
}

/** The common loop of rmap_walk_anon() and __rmap_walk_file(). */
function rmap_walk_vmas<T>(kernel: Kernel, folio: Folio, vmas: readonly VmAreaStruct[], pgoff: number, nr: number, rwc: RmapWalkControl<T>): void {
  for (const vma of vmas) if (!rmap_walk_one(kernel, folio, vma, pgoff, nr, rwc)) return;
}

/**
 * rmap_walk_vmas() over the VMAs of `set` overlapping the folio. The VMAs are taken from the set
 * before the first rmap_one() call, as the interval tree walk under the rmap lock sees them; a set
 * of one VMA (a file mapped once, the common case) needs no copy for that.
 */
function rmap_walk_set<T>(kernel: Kernel, folio: Folio, set: ReadonlySet<VmAreaStruct>, pgoff: number, nr: number, rwc: RmapWalkControl<T>): void {
  if (set.size !== 1) {
    rmap_walk_vmas(kernel, folio, vmas_overlapping(set, pgoff, pgoff + nr - 1), pgoff, nr, rwc);
    return;
  }
  const vma: VmAreaStruct = set.values().next().value!;
  const vfirst = vma.vm_pgoff;
  const vlast = vma.vm_pgoff + (vma.end_vpn - vma.start_vpn) - 1;
  if (vfirst <= pgoff + nr - 1 && vlast >= pgoff) rmap_walk_one(kernel, folio, vma, pgoff, nr, rwc);
}

/**
 * rmap_walk(): call rwc.rmap_one for every VMA that may map `folio`: for an anon folio the VMAs
 * of its anon_vma, for a page-cache folio those of mapping->i_mmap, in both cases only those
 * whose range covers the folio's index. A page-cache folio must be locked (VM_BUG_ON_FOLIO); an
 * anon one is walked under its anon_vma's lock, which the simulator does not need.
 */
export function rmap_walk<T>(kernel: Kernel, folio: Folio, rwc: RmapWalkControl<T>): void {
  const store = kernel.store;
  const i = store.idx(folio);
  const nr = folio_nr_pages(store, folio);
  const pgoff = store.index[i];
  if (folio_test_ksm(store, folio)) BUG('rmap_walk_ksm(): KSM is not modelled');
  if (folio_test_anon(store, folio)) {
    /* rmap_walk_anon_lock(): folio_get_anon_vma() finds nothing once every VMA is gone */
    const av = anon_vma_lookup(kernel, folio_raw_mapping(store, folio));
    if (av === undefined) return;
    rmap_walk_set(kernel, folio, av.vmas, pgoff, nr, rwc);
    return;
  }
  if (!folio_test_locked(store, folio)) BUG(`VM_BUG_ON_FOLIO: rmap_walk_file() of unlocked folio 0x${folio.toString(16)}`);
  const mapping = lookupMapping(store, store.mapping[i]);
  if (mapping === undefined) return;
  rmap_walk_set(kernel, folio, i_mmap_of(mapping), pgoff, nr, rwc);
}

/* page_vma_mapped_walk() flags */
/** Wait for the page-table lock (the simulator never races: no effect). */
export const PVMW_SYNC = 1 << 0;
/** Look for migration entries rather than present PTEs. */
export const PVMW_MIGRATION = 1 << 1;

/**
 * struct page_vma_mapped_walk: where `nr_pages` pages from `pfn` (a folio whose first page is
 * `pgoff` of its object) are mapped in `vma`, from page `address` on. Each successful
 * page_vma_mapped_walk() leaves the hit in `address` and in `pte`/`pte_idx` (a PTE), `pmd` (a
 * PMD leaf or PMD migration entry of a THP) or `huge` (the PMD or PUD leaf of a hugetlb folio).
 */
export class PageVmaMappedWalk {
  pte: PteTable | undefined = undefined;
  pte_idx = 0;
  /** The PMD index of a PMD hit, -1 otherwise. */
  pmd = -1;
  /** The hugetlb leaf of a hugetlb hit. */
  huge: HugeEntry | undefined = undefined;
  /** The next page the walk looks at. */
  next: number;
  /** One past the last page the walk looks at (vma_address_end()). */
  readonly end: number;

  constructor(
    readonly pfn: number,
    readonly nr_pages: number,
    readonly pgoff: number,
    readonly vma: VmAreaStruct,
    public address: number,
    readonly flags: number,
  ) {
    this.next = address;
    this.end = vma_address_end(this);
  }

  /** DEFINE_FOLIO_VMA_WALK(). */
  static of(store: PageStore, folio: Folio, vma: VmAreaStruct, vpn: number, flags: number): PageVmaMappedWalk {
    return new PageVmaMappedWalk(folio, folio_nr_pages(store, folio), store.index[store.idx(folio)], vma, vpn, flags);
  }

  /** page_vma_mapped_walk_done(): no more hits. */
  done(): void {
    this.next = this.end;
  }

  /** page_vma_mapped_walk_restart(): look again from the hit (a PMD just split into PTEs). */
  restart(): void {
    this.next = this.pmd >= 0 ? this.pmd * PTRS_PER_PTE : this.address;
  }

  /** The range check of check_pte()/check_pmd(): do `n` pages from `pfn` overlap the walk's? */
  overlaps(pfn: number, n: number): boolean {
    return pfn + n - 1 >= this.pfn && pfn <= this.pfn + this.nr_pages - 1;
  }
}

/** vma_address_end(): one past the last page where the walk's pages may be mapped in its VMA. */
function vma_address_end(pvmw: PageVmaMappedWalk): number {
  const vma = pvmw.vma;
  if (pvmw.nr_pages === 1) return pvmw.address + 1;
  const vpn = vma.start_vpn + (pvmw.pgoff + pvmw.nr_pages - vma.vm_pgoff);
  return vpn < vma.start_vpn || vpn > vma.end_vpn ? vma.end_vpn : vpn;
}

/** check_pte(): does the entry `flags`/`val` map (or, for PVMW_MIGRATION, migrate) one of the walk's pages? */
function check_pte(pvmw: PageVmaMappedWalk, flags: number, val: number, n: number): boolean {
  let pfn: number;
  if (pvmw.flags & PVMW_MIGRATION) {
    if (!is_swap_pte(flags) || !is_migration_type(pte_swp_type(flags))) return false;
    pfn = val % 2 ** SWP_PFN_BITS;
  } else {
    /* device-private and device-exclusive entries are not modelled */
    if (!pte_present(flags)) return false;
    pfn = val;
  }
  return pvmw.overlaps(pfn, n);
}

/**
 * page_vma_mapped_walk(): advance to the next place in the walk's range where its pages are
 * mapped; false when there is none left. A PMD entry that does not map the folio ends the walk
 * (a PMD-mappable folio has no other place in the VMA), as in the kernel.
 */
export function page_vma_mapped_walk(pvmw: PageVmaMappedWalk): boolean {
  const vma = pvmw.vma;
  const pt = vma.vm_mm.pgd;
  pvmw.pte = undefined;
  pvmw.huge = undefined;
  pvmw.pmd = -1;
  const end = pvmw.end;
  let vpn = pvmw.next;
  if (is_vm_hugetlb_page(vma)) {
    /* The only possible mapping is the huge leaf at the walk's address */
    if (vpn >= end) return false;
    pvmw.next = end;
    const pud = pt.puds.size !== 0 ? pt.puds.get(pud_index_of(vpn)) : undefined;
    const e = pud ?? pt.pmds.get(pmd_index_of(vpn));
    if (e === undefined || !check_pte(pvmw, e.flags, e.val, 1)) return false;
    pvmw.huge = e;
    pvmw.address = vpn;
    return true;
  }
  while (vpn < end) {
    const pmd = pmd_index_of(vpn);
    const next_pmd = (pmd + 1) * PTRS_PER_PTE;
    const e = pt.pmds.size !== 0 ? pt.pmds.get(pmd) : undefined;
    if (e !== undefined) {
      pvmw.next = end;
      if (!pte_present(e.flags)) {
        if (!(pvmw.flags & PVMW_MIGRATION) || !is_migration_type(pte_swp_type(e.flags))) return false;
        if (!pvmw.overlaps(e.val % 2 ** SWP_PFN_BITS, PTRS_PER_PTE)) return false;
      } else if (pvmw.flags & PVMW_MIGRATION || !pvmw.overlaps(e.val, PTRS_PER_PTE)) {
        return false;
      }
      pvmw.next = next_pmd;
      pvmw.pmd = pmd;
      pvmw.address = pmd * PTRS_PER_PTE;
      return true;
    }
    const t = pt.ptes.lookup(pmd);
    if (t === undefined) {
      vpn = next_pmd;
      continue;
    }
    const stop = Math.min(end, next_pmd);
    for (; vpn < stop; vpn++) {
      const i = pte_index(vpn);
      if (t.flags[i] === 0 || !check_pte(pvmw, t.flags[i], t.val[i], 1)) continue;
      pvmw.next = vpn + 1;
      pvmw.pte = t;
      pvmw.pte_idx = i;
      pvmw.address = vpn;
      return true;
    }
  }
  pvmw.next = end;
  return false;
}

/* try_to_unmap() and try_to_migrate() */

/* enum ttu_flags (include/linux/rmap.h) */
/** Split a PMD mapping into PTEs first (anon) or zap it (file). */
export const TTU_SPLIT_HUGE_PMD = 0x4;
/** Unmap from VM_LOCKED VMAs too. */
export const TTU_IGNORE_MLOCK = 0x8;
/** Avoid racy checks with PVMW_SYNC (no races in the simulator: no effect). */
export const TTU_SYNC = 0x10;
/** Replace the PTEs of poisoned pages by hwpoison entries. */
export const TTU_HWPOISON = 0x20;
/** Defer the TLB flush; the caller flushes with try_to_unmap_flush(). */
export const TTU_BATCH_FLUSH = 0x40;
/** The caller holds the rmap lock (i_mmap_rwsem or anon_vma lock). */
export const TTU_RMAP_LOCKED = 0x80;

/**
 * struct tlbflush_unmap_batch (current->tlb_ubc): TLB flushes deferred by TTU_BATCH_FLUSH, per
 * mm, until try_to_unmap_flush(). The kernel defers only when the mm may be live on another
 * CPU (arch_tlbbatch_should_defer()); the simulator's reclaim and migration act on behalf of no
 * process (kswapd, kcompactd), so it defers whenever asked.
 */
class TlbUnmapBatch {
  readonly ranges = new Map<MmStruct, [number, number]>();
  /** A writable PTE was cleared: its TLB entry may still let a CPU dirty the folio. */
  writable = false;
}
const tlb_ubcs = new WeakMap<Kernel, TlbUnmapBatch>();

function tlb_ubc(kernel: Kernel): TlbUnmapBatch {
  let b = tlb_ubcs.get(kernel);
  if (b === undefined) {
    b = new TlbUnmapBatch();
    tlb_ubcs.set(kernel, b);
  }
  return b;
}

/** should_defer_flush(). */
function should_defer_flush(flags: number): boolean {
  return (flags & TTU_BATCH_FLUSH) !== 0;
}

/** set_tlb_ubc_flush_pending(): remember pages [start, end) of `mm` for try_to_unmap_flush(). */
function set_tlb_ubc_flush_pending(mm: MmStruct, pte_flags: number, start: number, end: number): void {
  const b = tlb_ubc(mm.kernel);
  const r = b.ranges.get(mm);
  if (r === undefined) {
    b.ranges.set(mm, [start, end]);
  } else {
    if (start < r[0]) r[0] = start;
    if (end > r[1]) r[1] = end;
  }
  if (pte_write(pte_flags)) b.writable = true;
}

/** try_to_unmap_flush(): do the TLB flushes TTU_BATCH_FLUSH deferred, one per mm. */
export function try_to_unmap_flush(kernel: Kernel): void {
  const b = tlb_ubcs.get(kernel);
  if (b === undefined || b.ranges.size === 0) return;
  for (const [mm, [start, end]] of b.ranges) flush_tlb_mm_range(mm, start, end);
  b.ranges.clear();
  b.writable = false;
}

/** try_to_unmap_flush_dirty(): flush only if a deferred entry was writable (it could still dirty the folio). */
export function try_to_unmap_flush_dirty(kernel: Kernel): void {
  const b = tlb_ubcs.get(kernel);
  if (b !== undefined && b.writable) try_to_unmap_flush(kernel);
}

/** Clear a present PTE for unmapping: flush now (ptep_clear_flush()) or defer the flush. */
const PTE_ZAP = costId('pte_zap');

function clear_present_pte(mm: MmStruct, t: PteTable, i: number, vpn: number, flags: number): void {
  const old = t.flags[i];
  pte_clear(t, i);
  mm.kernel.cost.chargeId(PTE_ZAP);
  if (should_defer_flush(flags)) set_tlb_ubc_flush_pending(mm, old, vpn, vpn + 1);
  else flush_tlb_mm_range(mm, vpn, vpn + 1);
}

/**
 * folio_try_share_anon_rmap_pte() / _pmd(): the page stops being exclusive before its mapping
 * becomes a swap or migration entry; -EBUSY if the folio may be pinned (the pin must keep seeing
 * the page the process maps).
 */
export function folio_try_share_anon_rmap(store: PageStore, folio: Folio, page: number): number {
  if (folio_maybe_dma_pinned(store, folio)) return -Errno.EBUSY;
  ClearPageAnonExclusive(store, page);
  return 0;
}

/** The hugetlb leaf's page-table slot: [pud?, index]. */
function huge_slot_of(vma: VmAreaStruct, e: HugeEntry, vpn: number): [boolean, number] {
  const pt = vma.vm_mm.pgd;
  const pud = pud_index_of(vpn);
  return pt.puds.get(pud) === e ? [true, pud] : [false, pmd_index_of(vpn)];
}

/**
 * try_to_unmap_one() for a hugetlb folio (only ever a poisoned one): clear the leaf, dirty the
 * folio from it and, with TTU_HWPOISON, leave a hwpoison entry. Hugetlb pages count in no rss.
 */
function try_to_unmap_hugetlb(store: PageStore, folio: Folio, pvmw: PageVmaMappedWalk, flags: number): void {
  const vma = pvmw.vma;
  const mm = vma.vm_mm;
  const e = pvmw.huge!;
  BUG_ON(!PageHWPoison(store, folio), 'VM_BUG_ON_PAGE: try_to_unmap() of a hugetlb folio that is not poisoned');
  if (!folio_test_anon(store, folio)) BUG_ON(!(flags & TTU_RMAP_LOCKED), 'VM_BUG_ON: try_to_unmap() of a file hugetlb folio without TTU_RMAP_LOCKED');
  const nr = folio_nr_pages(store, folio);
  const [pud, key] = huge_slot_of(vma, e, pvmw.address);
  const old = e.flags;
  /* huge_ptep_clear_flush() */
  if (pud) pudp_huge_get_and_clear(mm.pgd, key);
  else pmdp_huge_get_and_clear(mm.pgd, key);
  mm.kernel.cost.charge('pte_zap');
  flush_tlb_mm_range(mm, pvmw.address, pvmw.address + nr, nr);
  if (pte_dirty(old)) folio_mark_dirty(store, folio);
  if (flags & TTU_HWPOISON) {
    if (pud) set_pud_at(mm.pgd, key, folio, swp_pte_flags(SWP_HWPOISON));
    else set_pmd_at(mm.pgd, key, folio, swp_pte_flags(SWP_HWPOISON));
  }
  /* hugetlb_remove_rmap() */
  folio_remove_rmap_pmd(store, folio, vma);
  folio_put(store, folio);
}

/**
 * try_to_unmap_one(): remove `vma`'s mappings of `folio`. Returns false to stop the rmap walk
 * (a VM_LOCKED VMA without TTU_IGNORE_MLOCK, an anon page that cannot get a swap entry, a lazy-free
 * page that was redirtied or is referenced elsewhere).
 */
function try_to_unmap_one(kernel: Kernel, folio: Folio, vma: VmAreaStruct, vpn: number, flags: number): boolean {
  const store = kernel.store;
  const mm = vma.vm_mm;
  const pvmw = PageVmaMappedWalk.of(store, folio, vma, vpn, 0);
  let ret = true;
  const range_start = vpn;
  const range_end = pvmw.end;
  mmu_notifier_invalidate_range_start(mm, range_start, range_end);
  while (page_vma_mapped_walk(pvmw)) {
    /* If the folio is in an mlock()d vma, we must not swap it out. */
    if (!(flags & TTU_IGNORE_MLOCK) && vma.vm_flags & VM_LOCKED) {
      /* Restore the mlock which got missed (once: the simulator's mlock_count is exact) */
      if ((!folio_test_large(store, folio) || (pvmw.pmd >= 0 && flags & TTU_SPLIT_HUGE_PMD)) && !folio_test_mlocked(store, folio)) {
        mlock_vma_folio(store, folio, vma);
      }
      ret = false;
      break;
    }
    if (pvmw.huge !== undefined) {
      try_to_unmap_hugetlb(store, folio, pvmw, flags);
      continue;
    }
    if (pvmw.pmd >= 0) {
      if (flags & TTU_SPLIT_HUGE_PMD) {
        /* We temporarily have to drop the PTL and restart so we can process the PTE-mapped THP. */
        split_huge_pmd(vma, pvmw.pmd);
        flags &= ~TTU_SPLIT_HUGE_PMD;
        pvmw.restart();
        continue;
      }
      BUG('VM_BUG_ON_FOLIO: try_to_unmap() of a PMD-mapped folio without TTU_SPLIT_HUGE_PMD');
    }
    const t = pvmw.pte!;
    const i = pvmw.pte_idx;
    const address = pvmw.address;
    const pteval = t.flags[i];
    /* device-exclusive PFN swap PTEs are not modelled: every hit is present */
    const subpage = t.val[i];
    const anon = folio_test_anon(store, folio);
    const anon_exclusive = anon && PageAnonExclusive(store, subpage);
    clear_present_pte(mm, t, i, address, flags);
    if (pte_dirty(pteval)) folio_mark_dirty(store, folio);
    if (PageHWPoison(store, subpage) && flags & TTU_HWPOISON) {
      set_swp_pte_at(t, i, SWP_HWPOISON, subpage);
      mm.add_mm_counter(mm_counter(store, folio), -1);
    } else if (anon) {
      if (folio_test_swapbacked(store, folio) !== folio_test_swapcache(store, folio)) {
        store.warn.WARN_ON_ONCE(true, 'try_to_unmap_one_swapcache', 'WARN_ON_ONCE: try_to_unmap_one() of an anon folio that is not in the swap cache');
        set_pte_at(t, i, subpage, pteval);
        ret = false;
        break;
      }
      if (!folio_test_swapbacked(store, folio)) {
        /* MADV_FREE page check */
        const ref_count = folio_ref_count(store, folio);
        const map_count = folio_mapcount(store, folio);
        if (folio_test_dirty(store, folio) && !vm_flags_test(vma.vm_flags, VM_DROPPABLE)) {
          /* redirtied either using the page table or a previously obtained GUP reference */
          set_pte_at(t, i, subpage, pteval);
          folio_set_swapbacked(store, folio);
          ret = false;
          break;
        } else if (ref_count !== 1 + map_count) {
          /* Additional reference: GUP or speculative; act just like nothing happened. */
          set_pte_at(t, i, subpage, pteval);
          ret = false;
          break;
        }
        mm.add_mm_counter(MM_ANONPAGES, -1);
      } else {
        /* Store the swap location in the pte. */
        const entry = page_swap_entry(store, subpage);
        if (swap_duplicate(kernel, entry) < 0) {
          set_pte_at(t, i, subpage, pteval);
          ret = false;
          break;
        }
        /* See folio_try_share_anon_rmap(): clear PTE first. */
        if (anon_exclusive && folio_try_share_anon_rmap(store, folio, subpage)) {
          swap_free(kernel, entry);
          set_pte_at(t, i, subpage, pteval);
          ret = false;
          break;
        }
        mm.add_mm_counter(MM_ANONPAGES, -1);
        mm.add_mm_counter(MM_SWAPENTS, 1);
        set_swp_pte_at(t, i, swp_type(entry), swp_offset(entry), anon_exclusive);
      }
    } else {
      /* A locked page-cache folio cannot leave the cache before the notifier's end. */
      mm.add_mm_counter(mm_counter_file(store, folio), -1);
    }
    /* discard: */
    folio_remove_rmap_pte(store, folio, subpage, vma);
    folio_put(store, folio);
  }
  mmu_notifier_invalidate_range_end(mm, range_start, range_end);
  return ret;
}

/**
 * try_to_unmap(): try to remove every page-table mapping of a locked folio. Mappings in
 * VM_LOCKED VMAs stay unless TTU_IGNORE_MLOCK; anon folios need a swap-cache slot (their PTEs
 * become swap entries) unless they are lazy-free; pages with PG_hwpoison become hwpoison entries with
 * TTU_HWPOISON (memory-failure). The caller checks folio_mapped() afterwards.
 */
export function try_to_unmap(kernel: Kernel, folio: Folio, flags: number): void {
  if (try_to_unmap_small_file(kernel, folio, flags)) return;
  let rwc = ttu_rwcs.get(kernel);
  if (rwc === undefined) {
    rwc = {
      arg: 0,
      rmap_one: (f, vma, vpn, fl) => try_to_unmap_one(kernel, f, vma, vpn, fl),
      done: (f) => folio_not_mapped(kernel.store, f),
    };
    ttu_rwcs.set(kernel, rwc);
  }
  /* one rmap_walk_control per host, its arg set for this walk (and put back for a walk it nests in) */
  const outer = rwc.arg;
  rwc.arg = flags;
  try {
    rmap_walk(kernel, folio, rwc);
  } finally {
    rwc.arg = outer;
  }
}

/** try_to_unmap()'s rmap_walk_control of each host: reclaim unmaps folio after folio. */
const ttu_rwcs = new WeakMap<Kernel, RmapWalkControl<number>>();

/**
 * try_to_unmap() of what reclaim meets most: a locked order-0 page-cache folio (not poisoned)
 * mapped by a single PTE, in the one VMA of its file, which is neither hugetlb nor VM_LOCKED. It
 * takes the steps rmap_walk() and try_to_unmap_one() take for it (one rmap_walk_per_mapping, the
 * notifier bracket, the PTE cleared and its flush deferred or done, the folio dirtied from a
 * dirty PTE, the rss counter, the rmap and the PTE's reference dropped), without the walk's
 * objects. false, having done nothing, for any other folio: the general walk handles it.
 */
function try_to_unmap_small_file(kernel: Kernel, folio: Folio, flags: number): boolean {
  const store = kernel.store;
  const i = folio - store.base_pfn;
  if (!(i >= 0 && i < store.nr_pages)) return false;
  const m = store.mapping[i];
  if (
    store._mapcount[i] !== 0 || m === 0 || (m & FOLIO_MAPPING_FLAGS) !== 0 || store.head_offset[i] !== 0 ||
    (store.flags[i] & ((1 << PG_head) | (1 << PG_hwpoison) | (1 << PG_locked))) !== 1 << PG_locked
  ) {
    return false;
  }
  const mapping = lookupMapping(store, m);
  if (mapping === undefined) return false;
  const set = i_mmap_of(mapping);
  if (set.size !== 1) return false;
  const vma: VmAreaStruct = set.values().next().value!;
  if (vma.vm_flags & VM_LOCKED || is_vm_hugetlb_page(vma)) return false;
  const vpn = vma_address(vma, store.index[i], 1);
  if (vpn < 0) return false;
  const mm = vma.vm_mm;
  const pt = mm.pgd;
  const pmd = pmd_index_of(vpn);
  if (pt.pmds.size !== 0 && pt.pmds.has(pmd)) return false;
  const t = pt.ptes.lookup(pmd);
  if (t === undefined) return false;
  const pi = pte_index(vpn);
  const pteval = t.flags[pi];
  if (!pte_present(pteval) || t.val[pi] !== folio) return false;
  kernel.cost.chargeId(RMAP_WALK_PER_MAPPING);
  mmu_notifier_invalidate_range_start(mm, vpn, vpn + 1);
  clear_present_pte(mm, t, pi, vpn, flags);
  if (pte_dirty(pteval)) folio_mark_dirty(store, folio);
  mm.add_mm_counter(mm_counter_file(store, folio), -1);
  folio_remove_rmap_pte(store, folio, folio, vma);
  folio_put(store, folio);
  mmu_notifier_invalidate_range_end(mm, vpn, vpn + 1);
  return true;
}

/** A migration entry's swap offset for `pfn` with the old entry's young and dirty bits. */
function migration_offset(pfn: number, young: boolean, dirty: boolean): number {
  return pfn + (young ? 2 ** SWP_MIG_YOUNG_BIT : 0) + (dirty ? 2 ** SWP_MIG_DIRTY_BIT : 0);
}

/** The migration entry type for an old entry: writable, readable-exclusive or readable. */
function migration_type(writable: boolean, anon_exclusive: boolean): number {
  if (writable) return SWP_MIGRATION_WRITE;
  return anon_exclusive ? SWP_MIGRATION_READ_EXCLUSIVE : SWP_MIGRATION_READ;
}

/** set_pmd_migration_entry() (mm/huge_memory.c): the PMD leaf of a THP becomes a migration entry. 0 or -EBUSY (pinned exclusive anon THP). */
function set_pmd_migration_entry(store: PageStore, folio: Folio, pvmw: PageVmaMappedWalk): number {
  const vma = pvmw.vma;
  const mm = vma.vm_mm;
  const e = mm.pgd.pmds.get(pvmw.pmd)!;
  const pmdval = e.flags;
  /* pmdp_invalidate() */
  flush_tlb_mm_range(mm, pvmw.address, pvmw.address + PTRS_PER_PTE, PTRS_PER_PTE);
  mm.kernel.cost.charge('pte_zap');
  const anon_exclusive = folio_test_anon(store, folio) && PageAnonExclusive(store, folio);
  if (anon_exclusive && folio_try_share_anon_rmap(store, folio, folio)) return -Errno.EBUSY;
  if (pte_dirty(pmdval)) folio_mark_dirty(store, folio);
  const type = migration_type(pte_write(pmdval), anon_exclusive);
  set_pmd_at(mm.pgd, pvmw.pmd, migration_offset(folio, pte_young(pmdval), pte_dirty(pmdval)), swp_pte_flags(type));
  folio_remove_rmap_pmd(store, folio, vma);
  folio_put(store, folio);
  trace_migration_pte(mm.kernel, 'set_migration_pte', pvmw.address, swp_entry(type, migration_offset(folio, false, false)), folio_order(store, folio));
  return 0;
}

/**
 * try_to_migrate_one(): replace `vma`'s mappings of `folio` by migration entries (hwpoison
 * entries for poisoned pages). false stops the walk: a pinned exclusive anon page cannot be
 * shared, so its mapping is restored and the migration fails.
 */
function try_to_migrate_one(kernel: Kernel, folio: Folio, vma: VmAreaStruct, vpn: number, flags: number): boolean {
  const store = kernel.store;
  const mm = vma.vm_mm;
  const pvmw = PageVmaMappedWalk.of(store, folio, vma, vpn, 0);
  let ret = true;
  const range_start = vpn;
  const range_end = pvmw.end;
  mmu_notifier_invalidate_range_start(mm, range_start, range_end);
  while (page_vma_mapped_walk(pvmw)) {
    if (pvmw.huge !== undefined) BUG('try_to_migrate(): hugetlb migration is not modelled');
    if (pvmw.pmd >= 0) {
      if (flags & TTU_SPLIT_HUGE_PMD) BUG('try_to_migrate(TTU_SPLIT_HUGE_PMD): folio splitting is not modelled');
      if (set_pmd_migration_entry(store, folio, pvmw)) {
        ret = false;
        break;
      }
      continue;
    }
    const t = pvmw.pte!;
    const i = pvmw.pte_idx;
    const address = pvmw.address;
    const pteval = t.flags[i];
    const subpage = t.val[i];
    const anon = folio_test_anon(store, folio);
    const anon_exclusive = anon && PageAnonExclusive(store, subpage);
    clear_present_pte(mm, t, i, address, flags);
    if (pte_dirty(pteval)) folio_mark_dirty(store, folio);
    const writable = pte_write(pteval);
    BUG_ON(writable && anon && !anon_exclusive, 'VM_BUG_ON_FOLIO: a writable PTE maps a shared anon page');
    if (PageHWPoison(store, subpage)) {
      set_swp_pte_at(t, i, SWP_HWPOISON, subpage);
      mm.add_mm_counter(mm_counter(store, folio), -1);
    } else {
      /* See folio_try_share_anon_rmap(): clear PTE first. */
      if (anon_exclusive && folio_try_share_anon_rmap(store, folio, subpage)) {
        set_pte_at(t, i, subpage, pteval);
        ret = false;
        break;
      }
      /*
       * Store the pfn of the page in a special migration pte. do_swap_page() will wait until
       * the migration pte is removed and then restart fault handling.
       */
      const type = migration_type(writable, anon_exclusive);
      const offset = migration_offset(subpage, pte_young(pteval), pte_dirty(pteval));
      set_swp_pte_at(t, i, type, offset);
      trace_migration_pte(kernel, 'set_migration_pte', address, swp_entry(type, offset), folio_order(store, folio));
    }
    folio_remove_rmap_pte(store, folio, subpage, vma);
    folio_put(store, folio);
  }
  mmu_notifier_invalidate_range_end(mm, range_start, range_end);
  return ret;
}

/**
 * try_to_migrate(): replace every mapping of a locked folio by migration entries. Only
 * TTU_RMAP_LOCKED, TTU_SPLIT_HUGE_PMD, TTU_SYNC and TTU_BATCH_FLUSH are allowed (WARN_ON_ONCE
 * and nothing done otherwise); mlock is ignored. The caller checks folio_mapped() afterwards.
 */
export function try_to_migrate(kernel: Kernel, folio: Folio, flags: number): void {
  const store = kernel.store;
  const bad = (flags & ~(TTU_RMAP_LOCKED | TTU_SPLIT_HUGE_PMD | TTU_SYNC | TTU_BATCH_FLUSH)) !== 0;
  if (store.warn.WARN_ON_ONCE(bad, 'try_to_migrate_flags', `WARN_ON_ONCE: try_to_migrate() flags 0x${flags.toString(16)}`)) return;
  rmap_walk(kernel, folio, {
    arg: flags,
    rmap_one: (f, vma, vpn, fl) => try_to_migrate_one(kernel, f, vma, vpn, fl),
    done: (f) => folio_not_mapped(store, f),
  });
}

/**
 * The set_migration_pte / remove_migration_pte tracepoints (include/trace/events/migrate.h):
 * `pte` is the new entry: the swp_entry_t of a migration entry, or pte_val() of the restored PTE.
 */
export function trace_migration_pte(kernel: Kernel, name: 'set_migration_pte' | 'remove_migration_pte', vpn: number, pte: bigint, order: number): void {
  if (!kernel.tracer.enabled(name)) return;
  kernel.tracer.emit(name, { addr: BigInt(vpn) * 4096n, pte, order });
}

/* folio_referenced() and folio_mkclean() */

/** struct folio_referenced_arg. */
interface FolioReferencedArg {
  mapcount: number;
  referenced: number;
  vm_flags: number;
}

/** folio_referenced_one(): count and clear the young bits of `vma`'s mappings of `folio`. */
function folio_referenced_one(store: PageStore, folio: Folio, vma: VmAreaStruct, vpn: number, pra: FolioReferencedArg): boolean {
  const pvmw = PageVmaMappedWalk.of(store, folio, vma, vpn, 0);
  let referenced = 0;
  let ptes = 0;
  while (page_vma_mapped_walk(pvmw)) {
    if (vma.vm_flags & VM_LOCKED) {
      ptes++;
      pra.mapcount--;
      /* Only mlock fully mapped pages */
      if (pvmw.pte !== undefined && ptes !== pvmw.nr_pages) continue;
      /* Restore the mlock which got missed */
      if (!folio_test_mlocked(store, folio)) mlock_vma_folio(store, folio, vma);
      pvmw.done();
      pra.vm_flags = vm_flags_or(pra.vm_flags, VM_LOCKED);
      return false;
    }
    /* ptep_clear_flush_young_notify(): x86 clears the accessed bit without a TLB flush */
    if (pvmw.pte !== undefined) {
      const f = pvmw.pte.flags[pvmw.pte_idx];
      if (pte_young(f)) {
        pvmw.pte.flags[pvmw.pte_idx] = pte_mkold(f);
        referenced++;
      }
    } else {
      const e = pvmw.huge ?? vma.vm_mm.pgd.pmds.get(pvmw.pmd)!;
      if (pte_young(e.flags)) {
        e.flags = pte_mkold(e.flags);
        referenced++;
      }
    }
    pra.mapcount--;
  }
  if (referenced) {
    pra.referenced++;
    pra.vm_flags = vm_flags_or(pra.vm_flags, vm_flags_andnot(vma.vm_flags, VM_LOCKED));
  }
  /* To break the loop */
  return pra.mapcount !== 0;
}

/**
 * folio_referenced(): how many VMAs mapped `folio` with the accessed bit set since the last call
 * (clearing the bits), with the union of their vm_flags in `out.vm_flags` (VM_LOCKED when a locked
 * VMA maps it). A page-cache folio the caller has not locked is trylocked; 1 if that fails.
 */
export function folio_referenced(kernel: Kernel, folio: Folio, is_locked: boolean, out: { vm_flags: number }): number {
  const store = kernel.store;
  const pra: FolioReferencedArg = { mapcount: folio_mapcount(store, folio), referenced: 0, vm_flags: 0 };
  out.vm_flags = 0;
  if (!pra.mapcount) return 0;
  if (!folio_raw_mapping(store, folio)) return 0;
  let we_locked = false;
  if (!is_locked && !folio_test_anon(store, folio)) {
    we_locked = folio_trylock(store, folio);
    if (!we_locked) return 1;
  }
  rmap_walk(kernel, folio, {
    arg: pra,
    rmap_one: (f, vma, vpn, a) => folio_referenced_one(store, f, vma, vpn, a),
    /* invalid_folio_referenced_vma(): no recency in VM_SEQ_READ / VM_RAND_READ mappings */
    invalid_vma: (vma) => (vma.vm_flags & (VM_SEQ_READ | VM_RAND_READ)) !== 0,
  });
  out.vm_flags = pra.vm_flags;
  if (we_locked) folio_unlock(store, folio);
  return pra.referenced;
}

/** page_vma_mkclean_one(): write-protect and clean `pvmw`'s mappings; how many changed. */
function page_vma_mkclean_one(pvmw: PageVmaMappedWalk): number {
  const vma = pvmw.vma;
  const mm = vma.vm_mm;
  let cleaned = 0;
  const start = pvmw.address;
  const end = pvmw.end;
  mmu_notifier_invalidate_range_start(mm, start, end);
  while (page_vma_mapped_walk(pvmw)) {
    if (pvmw.pte !== undefined) {
      const f = pvmw.pte.flags[pvmw.pte_idx];
      if (!pte_present(f)) continue;
      if (!pte_dirty(f) && !pte_write(f)) continue;
      /* ptep_clear_flush(), then the entry comes back read-only and clean */
      flush_tlb_mm_range(mm, pvmw.address, pvmw.address + 1);
      pvmw.pte.flags[pvmw.pte_idx] = pte_mkclean(pte_wrprotect(f));
    } else {
      const e = vma.vm_mm.pgd.pmds.get(pvmw.pmd)!;
      /* Do not skip migration PMDs */
      if (!pte_present(e.flags)) continue;
      if (!pte_dirty(e.flags) && !pte_write(e.flags)) continue;
      /* pmdp_invalidate() */
      flush_tlb_mm_range(mm, pvmw.address, pvmw.address + PTRS_PER_PTE, PTRS_PER_PTE);
      e.flags = pte_mkclean(pte_wrprotect(e.flags));
    }
    cleaned++;
  }
  mmu_notifier_invalidate_range_end(mm, start, end);
  return cleaned;
}

/**
 * folio_mkclean(): write-protect and clean every shared mapping of a locked page-cache folio
 * (writeback's clear_page_dirty_for_io()), so that the next write faults and redirties it.
 * Returns the number of entries cleaned.
 */
export function folio_mkclean(kernel: Kernel, folio: Folio): number {
  const store = kernel.store;
  BUG_ON(!folio_test_locked(store, folio), 'BUG_ON: folio_mkclean() of an unlocked folio');
  if (!folio_mapped(store, folio)) return 0;
  if (folio_mapping(store, folio) === 0) return 0;
  const cleaned = { n: 0 };
  rmap_walk(kernel, folio, {
    arg: cleaned,
    rmap_one: (f, vma, vpn, c) => {
      c.n += page_vma_mkclean_one(PageVmaMappedWalk.of(store, f, vma, vpn, PVMW_SYNC));
      return true;
    },
    /* invalid_mkclean_vma(): only shared mappings can dirty the file */
    invalid_vma: (vma) => !(vma.vm_flags & VM_SHARED),
  });
  return cleaned.n;
}
