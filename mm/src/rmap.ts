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
 */
import { BUG, BUG_ON } from '@cocosim/core';
import { FOLIO_MAPPING_ANON, folio_nr_pages, type Folio } from './folio.js';
import type { AddressSpace } from './fs.js';
import type { Kernel } from './kernel.js';
import { PG_anon_exclusive, __folio_set_swapbacked, folio_test_hugetlb, folio_test_large, folio_test_swapbacked } from './page-flags.js';
import { mlock_vma_folio, munlock_vma_folio } from './mlock.js';
import { find_mergeable_anon_vma } from './vma.js';
import type { PageStore } from './page_store.js';
import { VM_DROPPABLE, linear_page_index, vm_flags_test, type VmAreaStruct } from './mm_types.js';

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
  const av = vma.anon_vma;
  if (av === null) return;
  av.vmas.delete(vma);
  vma.anon_vma = null;
  if (av.vmas.size === 0) anon_vmas.get(vma.vm_mm.kernel)?.delete(av.id);
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
}

/* i_mmap: the VMAs mapping each address_space */

const i_mmaps = new WeakMap<AddressSpace, Set<VmAreaStruct>>();

/** mapping->i_mmap: the VMAs mapping `mapping` (empty set if none). */
export function i_mmap_of(mapping: AddressSpace): ReadonlySet<VmAreaStruct> {
  return i_mmaps.get(mapping) ?? EMPTY_SET;
}
const EMPTY_SET: ReadonlySet<VmAreaStruct> = new Set();

/** vma_interval_tree_insert(). */
export function vma_interval_tree_insert(vma: VmAreaStruct, mapping: AddressSpace): void {
  let s = i_mmaps.get(mapping);
  if (s === undefined) {
    s = new Set();
    i_mmaps.set(mapping, s);
  }
  s.add(vma);
}

/** vma_interval_tree_remove(). */
export function vma_interval_tree_remove(vma: VmAreaStruct, mapping: AddressSpace): void {
  const s = i_mmaps.get(mapping);
  BUG_ON(s === undefined || !s.has(vma), 'vma_interval_tree_remove of a VMA not in i_mmap');
  s!.delete(vma);
}

/** mapping_mapped(): some VMA maps the file. */
export function mapping_mapped(mapping: AddressSpace): boolean {
  const s = i_mmaps.get(mapping);
  return s !== undefined && s.size > 0;
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
  const s = i_mmaps.get(mapping);
  if (s === undefined || s.size === 0) return;
  for (const vma of [...s]) {
    const vfirst = vma.vm_pgoff;
    const vlast = vma.vm_pgoff + (vma.end_vpn - vma.start_vpn) - 1;
    if (vfirst <= last && vlast >= first) fn(vma);
  }
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
  store.mapping[hi] = av!.id | FOLIO_MAPPING_ANON;
  store.index[hi] = linear_page_index(vma, vpn);
  const exclusive = (flags & RMAP_EXCLUSIVE) !== 0;
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
