/**
 * mm/guestmem_hugetlb.c of "1G page support for guest_memfd" (RFC v2, 2025-05-14,
 * cover.1747264138.git.ackerleytng@google.com; designs.md D11): HugeTLB as guest_memfd's allocator,
 * "isolat[ing] the allocation of a HugeTLB folio from other HugeTLB concepts such as VMA-level
 * reservations", and the restructuring of a guest_memfd huge folio: split into 4 KiB folios when
 * part of it becomes shared ("Split allocator pages for guest_memfd use"), merged back when the
 * whole huge page is private again or before a punch frees it ("Merge and truncate on
 * fallocate(PUNCH_HOLE)"), so that only whole huge pages ever return to the pool.
 *
 * guestmem_hugetlb_setup() reserves the file's huge pages when the inode is created (RFC v2 makes
 * a subpool whose min_hpages is the file's size; the simulator has no subpools and reserves in
 * the hstate: hugetlb_acct_memory()); allocations consume the reservation; the inode's teardown
 * gives back what was not used. Not modelled: HVO (vmemmap restore before a split), the hugetlb
 * cgroup charge, the subpool race the cover letter lists (spurious -ENOMEM).
 *
 * The split and merge rewrite the page store's compound-page fields in place, as
 * gmem_hugetlb_restructure_folio() does with the struct pages, and repoint the page cache's
 * entries; both are charged per 4 KiB page (gmem_hugetlb_split_page, gmem_hugetlb_merge_page:
 * cocosim estimates, the RFC publishes no figure).
 */
import { Errno, IS_ERR, type CostEntry, type ErrPtr, type Pfn } from '@cocosim/core';
import {
  PG_dirty, PG_head, PG_uptodate, __folio_clear_hugetlb, __folio_set_hugetlb, alloc_hugetlb_folio, folio_nr_pages, folio_ref_count,
  folio_test_large, huge_page_order, huge_page_size, hugetlb_acct_memory, hugetlb_pool, hstate_sizelog, prep_compound_head,
  prep_compound_tail, type AddressSpace, type Folio, type Hstate, type Kernel,
} from '@cocosim/mm';

declare module '@cocosim/core' {
  interface TraceEventMap {
    /** gmem_hugetlb_restructure_folio(): the huge page at file index `index` split (order 0) or merged. */
    cocosim_gmem_hugetlb_restructure: { ino: number; index: number; pfn: number; from_order: number; to_order: number };
  }
}

/** The cost entries of the restructuring (registered by the design's registrar). */
export const GMEM_HUGETLB_COST_ENTRIES: readonly CostEntry[] = [
  {
    name: 'gmem_hugetlb_split_page',
    unit: 'ns',
    value: 20,
    provenance: 'estimate',
    source: 'estimate: per 4 KiB page of a split huge folio, one struct page rewritten (compound head, refcount, mapping, index) and one page-cache xarray store, ~20 ns; without HVO restore',
    description: 'split one 4 KiB page out of a guest_memfd HugeTLB folio (gmem_hugetlb_restructure_folio to order 0)',
  },
  {
    name: 'gmem_hugetlb_merge_page',
    unit: 'ns',
    value: 20,
    provenance: 'estimate',
    source: 'estimate: per 4 KiB page merged back, the refcount check, one struct page rewritten and one page-cache xarray store, ~20 ns',
    description: 'merge one 4 KiB page back into its guest_memfd HugeTLB folio (gmem_hugetlb_restructure_folio to the huge order)',
  },
];

/** guestmem_hugetlb_private: the inode's hstate and what it still holds reserved. */
export class GuestmemHugetlb {
  constructor(
    readonly h: Hstate,
    /** Huge pages reserved for the file and not yet allocated. */
    public resv: number,
  ) {}

  /** huge_page_order(): the file's folio order (9 for 2 MiB, 18 for 1 GiB). */
  get order(): number {
    return huge_page_order(this.h);
  }

  /** pages_per_huge_page(). */
  get nr_pages(): number {
    return 2 ** huge_page_order(this.h);
  }
}

/**
 * guestmem_hugetlb_setup(): the hstate of the page size log2 in `flags` (0: the default, 2 MiB;
 * none of that size: -EINVAL), `size` aligned to it (-EINVAL), then the file's huge pages
 * reserved (-ENOMEM when the pool cannot promise them).
 */
export function guestmem_hugetlb_setup(kernel: Kernel, size: bigint, page_size_log: number): GuestmemHugetlb | number {
  const h = hstate_sizelog(hugetlb_pool(kernel), page_size_log);
  if (h === undefined) return -Errno.EINVAL;
  if (size % BigInt(huge_page_size(h)) !== 0n) return -Errno.EINVAL;
  const nr = Number(size / BigInt(huge_page_size(h)));
  const r = hugetlb_acct_memory(kernel, h, nr);
  if (r) return r;
  return new GuestmemHugetlb(h, nr);
}

/** guestmem_hugetlb_teardown(): give back the reservation the file did not use. */
export function guestmem_hugetlb_teardown(kernel: Kernel, g: GuestmemHugetlb): void {
  hugetlb_acct_memory(kernel, g.h, -g.resv);
  g.resv = 0;
}

/**
 * guestmem_hugetlb_alloc_folio(): a huge folio of the file's size from the pool, on the file's
 * reservation while it lasts (refcount 1, not zeroed), or ERR_PTR(-ENOSPC).
 */
export function guestmem_hugetlb_alloc_folio(kernel: Kernel, g: GuestmemHugetlb): Folio | ErrPtr {
  const use_reserve = g.resv > 0;
  const folio = alloc_hugetlb_folio(kernel, g.h, use_reserve);
  if (IS_ERR(folio)) return folio;
  if (use_reserve) g.resv--;
  return folio as Folio;
}

const UPTODATE = 1 << PG_uptodate;
const KEEP_FLAGS = UPTODATE | (1 << PG_dirty);

/**
 * The split half of gmem_hugetlb_restructure_folio(mapping, index, 0): the huge folio at
 * `folio`, which only the page cache references (folio_nr_pages() references), becomes
 * nr_pages order-0 folios of the same mapping, each referenced once by the page cache and
 * inheriting the folio's uptodate and dirty state; it stops being a hugetlb folio while split.
 */
function gmem_hugetlb_split(kernel: Kernel, mapping: AddressSpace, folio: Folio): void {
  const store = kernel.store;
  const i = store.idx(folio);
  const nr = folio_nr_pages(store, folio);
  const index = store.index[i]!;
  const id = store.mapping[i]!;
  const keep = store.flags[i]! & KEEP_FLAGS;
  __folio_clear_hugetlb(store, folio);
  store.flags[i] &= ~(1 << PG_head);
  store.order[i] = 0;
  store._refcount[i] = 1;
  for (let k = 1; k < nr; k++) {
    const j = i + k;
    store.head_offset[j] = 0;
    store.order[j] = 0;
    store.flags[j] = keep;
    store._refcount[j] = 1;
    store._mapcount[j] = -1;
    store.mapping[j] = id;
    store.index[j] = index + k;
    mapping.i_pages.xa_store(index + k, (folio + k) as Folio);
  }
  kernel.cost.charge('gmem_hugetlb_split_page', nr);
}

/**
 * The merge half of gmem_hugetlb_restructure_folio(mapping, index, order): the order-0 folios of
 * huge page [index, index + nr) become one hugetlb folio again. Pieces that were never prepared
 * (not uptodate) are zeroed so that the merged folio can be uptodate as a whole without exposing
 * stale bytes or clearing the guest's (the RFC leaves preparedness open: "only zeroing has been
 * considered").
 */
function gmem_hugetlb_merge(kernel: Kernel, mapping: AddressSpace, head: Folio, order: number): void {
  const store = kernel.store;
  const i = store.idx(head);
  const nr = 2 ** order;
  let all_uptodate = true;
  let any_uptodate = false;
  for (let k = 0; k < nr; k++) {
    if (store.flags[i + k]! & UPTODATE) any_uptodate = true;
    else all_uptodate = false;
  }
  if (any_uptodate && !all_uptodate) {
    let zeroed = 0;
    for (let k = 0; k < nr; k++) {
      if (store.flags[i + k]! & UPTODATE) continue;
      kernel.phys.clear((head + k) as Pfn);
      zeroed++;
    }
    kernel.cost.charge('page_zero_4k', zeroed);
  }
  let dirty = 0;
  for (let k = 1; k < nr; k++) {
    const j = i + k;
    dirty |= store.flags[j]! & (1 << PG_dirty);
    store.flags[j] = 0;
    store._refcount[j] = 0;
    store.mapping[j] = 0;
    store.index[j] = 0;
    prep_compound_tail(store, head, k);
    mapping.i_pages.xa_store(store.index[i]! + k, head);
  }
  store.flags[i] = (store.flags[i]! & ~UPTODATE) | (1 << PG_head) | dirty | (any_uptodate ? UPTODATE : 0);
  prep_compound_head(store, head, order);
  store._refcount[i] = nr;
  __folio_set_hugetlb(store, head);
  kernel.cost.charge('gmem_hugetlb_merge_page', nr);
}

/**
 * gmem_hugetlb_restructure_folio(): make huge page [index, index + 2^order_of_file) of `mapping`
 * one folio of `to_order` (the file's order: merge; 0: split). Nothing to do when it is not
 * allocated or already so. A merge needs every piece referenced by the page cache alone (-EAGAIN
 * otherwise, nothing changed): a GUP pin or a host mapping of a shared piece blocks it.
 */
export function gmem_hugetlb_restructure_folio(kernel: Kernel, mapping: AddressSpace, g: GuestmemHugetlb, index: number, to_order: number): number {
  const store = kernel.store;
  const first = mapping.i_pages.xa_load(index);
  if (first === undefined) return 0;
  const large = folio_test_large(store, first);
  if (to_order === 0) {
    if (!large) return 0;
    if (folio_ref_count(store, first) !== g.nr_pages) return -Errno.EAGAIN;
    gmem_hugetlb_split(kernel, mapping, first);
  } else {
    if (large) return 0;
    for (let k = 0; k < g.nr_pages; k++) {
      const piece = mapping.i_pages.xa_load(index + k);
      if (piece !== first + k || folio_ref_count(store, piece) !== 1 || store._mapcount[store.idx(piece)] !== -1) return -Errno.EAGAIN;
    }
    gmem_hugetlb_merge(kernel, mapping, first, to_order);
  }
  const tracer = kernel.tracer;
  if (tracer.enabled('cocosim_gmem_hugetlb_restructure')) {
    tracer.emit('cocosim_gmem_hugetlb_restructure', {
      ino: mapping.host.i_ino, index, pfn: first, from_order: large ? g.order : 0, to_order,
    });
  }
  return 0;
}
