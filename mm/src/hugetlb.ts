/**
 * The hugetlb page pool (mm/hugetlb.c, Linux 6.18): one struct hstate per huge page size
 * (x86-64: 2 MiB, the default, and 1 GiB), each with a pool of free huge folios that
 * /proc/sys/vm/nr_hugepages (or /sys/kernel/mm/hugepages/hugepages-<size>kB/nr_hugepages)
 * grows and shrinks, and surplus pages up to nr_overcommit_hugepages taken from the buddy
 * allocator on demand.
 *
 * Folios: a 2 MiB huge page is an order-9 compound allocation from the buddy allocator
 * (alloc_buddy_hugetlb_folio(), GFP_HIGHUSER_MOVABLE | __GFP_COMP | __GFP_RETRY_MAYFAIL |
 * __GFP_NOWARN); a 1 GiB one is gigantic: folio_alloc_gigantic() (alloc_contig_pages(), GFP_HIGHUSER:
 * gigantic pages are not movable). A pool folio has the hugetlb page type and refcount 0; it is
 * handed out with refcount 1, and its last folio_put() brings it back to the pool
 * (free_huge_folio(), through PageStore.free_huge_folio), or to the buddy allocator if it was
 * surplus. Pool folios are never zeroed until used (folio_zero_user()).
 *
 * Both hosts default to an empty pool, as on the oracle machine (nr_hugepages 0): a hugetlb
 * memfd can be created and sized, but fallocate() is -ENOSPC and a fault SIGBUS until pages are
 * added with set_max_huge_pages().
 *
 * Not modelled: reservations (resv_huge_pages, hugetlb_reserve_pages(): memfds are VM_NORESERVE,
 * and mmap-time reservations belong to the mapping side), subpools and the hugetlbfs size=
 * limits, cgroups, CMA, per-node pools (one node's worth of accounting), demotion and
 * vmemmap optimisation.
 */
import { BUG, Errno, ERR_PTR, PAGE_SHIFT, PAGE_SIZE, type ErrPtr, type PgOff, type Pfn } from '@cocosim/core';
import type { AddressSpace } from './fs.js';
import { __filemap_add_folio } from './filemap.js';
import { folio_mark_dirty, folio_nr_pages, folio_put, type Folio } from './folio.js';
import { GFP_HIGHUSER, GFP_HIGHUSER_MOVABLE, __GFP_COMP, __GFP_NOWARN, __GFP_RETRY_MAYFAIL, type gfp_t } from './gfp.js';
import type { Kernel } from './kernel.js';
import { MAX_PAGE_ORDER } from './page_alloc.js';
import { PG_owner_2, __folio_clear_hugetlb, __folio_clear_locked, __folio_set_hugetlb, __folio_set_locked, folio_test_hugetlb } from './page-flags.js';

/** struct hstate: one huge page size and its pool. */
export class Hstate {
  /** Free pool folios, in the order they are handed out. */
  readonly freelist: Folio[] = [];
  /** Huge pages in the pool (free and in use), surplus included. */
  nr_huge_pages = 0;
  /** Of those, free. */
  free_huge_pages = 0;
  /** Of those, surplus (allocated beyond nr_hugepages under overcommit). */
  surplus_huge_pages = 0;
  /** Free pages promised to shared mappings (HugePages_Rsvd). */
  resv_huge_pages = 0;
  /** /proc/sys/vm/nr_overcommit_hugepages for this size. */
  nr_overcommit_huge_pages = 0;
  /** The persistent pool size asked for (nr_hugepages). */
  max_huge_pages = 0;

  constructor(
    /** log2 of the pages per huge page: 9 (2 MiB) or 18 (1 GiB). */
    readonly order: number,
    /** "hugepages-2048kB". */
    readonly name: string,
  ) {}
}

/** huge_page_order(). */
export function huge_page_order(h: Hstate): number {
  return h.order;
}
/** pages_per_huge_page(). */
export function pages_per_huge_page(h: Hstate): number {
  return 2 ** h.order;
}
/** huge_page_size(): bytes. */
export function huge_page_size(h: Hstate): number {
  return PAGE_SIZE * 2 ** h.order;
}
/** huge_page_shift(). */
export function huge_page_shift(h: Hstate): number {
  return PAGE_SHIFT + h.order;
}
/** blocks_per_huge_page(): 512-byte blocks, what i_blocks counts. */
export function blocks_per_huge_page(h: Hstate): number {
  return huge_page_size(h) / 512;
}
/** hstate_is_gigantic(): larger than the buddy allocator's biggest block. */
export function hstate_is_gigantic(h: Hstate): boolean {
  return h.order > MAX_PAGE_ORDER;
}

/**
 * htlb_alloc_mask(): GFP_HIGHUSER_MOVABLE where huge page migration is supported (2 MiB), else
 * GFP_HIGHUSER (gigantic pages).
 */
export function htlb_alloc_mask(h: Hstate): gfp_t {
  return hstate_is_gigantic(h) ? GFP_HIGHUSER : GFP_HIGHUSER_MOVABLE;
}

/** The hstates of a host: hugetlb_init() with x86-64's 2 MiB (default) and 1 GiB sizes. */
export class HugetlbPool {
  readonly hstates: readonly Hstate[];
  readonly default_hstate: Hstate;

  constructor(readonly kernel: Kernel) {
    this.default_hstate = new Hstate(21 - PAGE_SHIFT, 'hugepages-2048kB');
    this.hstates = [this.default_hstate, new Hstate(30 - PAGE_SHIFT, 'hugepages-1048576kB')];
    if (kernel.store.free_huge_folio !== undefined) BUG('the page store already has a hugetlb pool');
    kernel.store.free_huge_folio = (folio) => free_huge_folio(this, folio);
  }
}

const pools = new WeakMap<Kernel, HugetlbPool>();

/** The host's hugetlb pool (hugetlb_init() on first use). */
export function hugetlb_pool(kernel: Kernel): HugetlbPool {
  let pool = pools.get(kernel);
  if (pool === undefined) {
    pool = new HugetlbPool(kernel);
    pools.set(kernel, pool);
  }
  return pool;
}

/** The host's hugetlb pool if hugetlb_init() ran, without running it (debug walks). */
export function hugetlb_pool_if_any(kernel: Kernel): HugetlbPool | undefined {
  return pools.get(kernel);
}

/** size_to_hstate(): the hstate of a huge page size in bytes, or undefined. */
export function size_to_hstate(pool: HugetlbPool, size: number): Hstate | undefined {
  return pool.hstates.find((h) => huge_page_size(h) === size);
}

/**
 * hstate_sizelog(): the hstate for log2 of a size as MFD_HUGE_* / MAP_HUGE_* encode it (0: the
 * default size), or undefined (the callers' -ENODEV / -EINVAL).
 */
export function hstate_sizelog(pool: HugetlbPool, page_size_log: number): Hstate | undefined {
  if (!page_size_log) return pool.default_hstate;
  if (page_size_log < 64) return size_to_hstate(pool, 2 ** page_size_log);
  return undefined;
}

function hstate_of(pool: HugetlbPool, folio: Folio): Hstate {
  const order = pool.kernel.store.order[pool.kernel.store.idx(folio)];
  const h = pool.hstates.find((s) => s.order === order);
  if (h === undefined) BUG(`hugetlb folio 0x${folio.toString(16)} of order ${order} has no hstate`);
  return h;
}

/**
 * alloc_fresh_hugetlb_folio(): a new huge folio from the buddy allocator (or the contiguous
 * allocator for gigantic sizes), typed hugetlb, refcount 0.
 * @returns the folio or null
 */
function alloc_fresh_hugetlb_folio(pool: HugetlbPool, h: Hstate): Folio | null {
  const kernel = pool.kernel;
  const gfp = htlb_alloc_mask(h) | __GFP_COMP | __GFP_RETRY_MAYFAIL | __GFP_NOWARN;
  const pfn = hstate_is_gigantic(h)
    ? kernel.page_alloc.folio_alloc_gigantic(h.order, gfp)
    : kernel.page_alloc.folio_alloc(gfp, h.order);
  if (pfn < 0) return null;
  kernel.cost.charge('page_alloc');
  const folio = pfn as Folio;
  __folio_set_hugetlb(kernel.store, folio);
  kernel.store._refcount[kernel.store.idx(folio)] = 0;
  return folio;
}

/** update_and_free_hugetlb_folio(): a folio leaves the pool for the buddy allocator. */
function update_and_free_hugetlb_folio(pool: HugetlbPool, folio: Folio): void {
  const store = pool.kernel.store;
  __folio_clear_hugetlb(store, folio);
  store._refcount[store.idx(folio)] = 1;
  folio_put(store, folio);
  pool.kernel.cost.charge('page_free');
}

/**
 * set_max_huge_pages(): what writing nr_hugepages does. The pool grows a folio at a time until it
 * holds `count` persistent pages or memory runs out (the count then stays lower, as in the
 * kernel); it shrinks by freeing free pages only (pages in use become surplus instead).
 * @returns the resulting nr_hugepages
 */
export function set_max_huge_pages(kernel: Kernel, h: Hstate, count: number): number {
  const pool = hugetlb_pool(kernel);
  if (!Number.isSafeInteger(count) || count < 0) BUG(`set_max_huge_pages(${count})`);
  /* First use surplus pages to make up the persistent count. */
  while (h.surplus_huge_pages && count > h.nr_huge_pages - h.surplus_huge_pages) h.surplus_huge_pages--;
  while (count > h.nr_huge_pages - h.surplus_huge_pages) {
    const folio = alloc_fresh_hugetlb_folio(pool, h);
    if (folio === null) break;
    h.nr_huge_pages++;
    enqueue_hugetlb_folio(h, folio);
  }
  while (count < h.nr_huge_pages - h.surplus_huge_pages && h.freelist.length) {
    const folio = h.freelist.pop()!;
    h.free_huge_pages--;
    h.nr_huge_pages--;
    update_and_free_hugetlb_folio(pool, folio);
  }
  /* What is still in use beyond the new count becomes surplus. */
  if (count < h.nr_huge_pages - h.surplus_huge_pages) h.surplus_huge_pages = h.nr_huge_pages - count;
  h.max_huge_pages = h.nr_huge_pages - h.surplus_huge_pages;
  return h.max_huge_pages;
}

function enqueue_hugetlb_folio(h: Hstate, folio: Folio): void {
  h.freelist.push(folio);
  h.free_huge_pages++;
}

/**
 * alloc_hugetlb_folio(): a free pool folio, else a surplus one from the buddy allocator while
 * nr_overcommit_hugepages allows. With `use_reserve` the page was reserved by a shared mapping
 * (the reservation is consumed); without, only pages nobody reserved may be taken.
 * @returns the folio (refcount 1, not zeroed) or ERR_PTR(-ENOSPC)
 */
export function alloc_hugetlb_folio(kernel: Kernel, h: Hstate, use_reserve = false): Folio | ErrPtr {
  const pool = hugetlb_pool(kernel);
  const store = kernel.store;
  let folio: Folio | undefined;
  if (use_reserve || h.free_huge_pages - h.resv_huge_pages > 0) {
    folio = h.freelist.shift();
    if (folio !== undefined) {
      h.free_huge_pages--;
      if (use_reserve) h.resv_huge_pages--;
    }
  }
  if (folio === undefined) {
    if (h.surplus_huge_pages >= h.nr_overcommit_huge_pages) return ERR_PTR(-Errno.ENOSPC);
    const fresh = alloc_fresh_hugetlb_folio(pool, h);
    if (fresh === null) return ERR_PTR(-Errno.ENOSPC);
    folio = fresh;
    h.nr_huge_pages++;
    h.surplus_huge_pages++;
  }
  store._refcount[store.idx(folio)] = 1;
  return folio;
}

/**
 * hugetlb_acct_memory(): reserve `delta` pool pages (or give back -delta). Reserving needs that
 * many free pages beyond those already reserved, topped up with surplus pages
 * (gather_surplus_pages()) within nr_overcommit_hugepages.
 * @returns 0 or -ENOMEM
 */
export function hugetlb_acct_memory(kernel: Kernel, h: Hstate, delta: number): number {
  if (delta <= 0) {
    h.resv_huge_pages += delta;
    return 0;
  }
  const needed = h.resv_huge_pages + delta - h.free_huge_pages;
  if (needed > 0) {
    if (h.surplus_huge_pages + needed > h.nr_overcommit_huge_pages) return -Errno.ENOMEM;
    const pool = hugetlb_pool(kernel);
    const got: Folio[] = [];
    for (let k = 0; k < needed; k++) {
      const folio = alloc_fresh_hugetlb_folio(pool, h);
      if (folio === null) {
        for (const f of got) update_and_free_hugetlb_folio(pool, f);
        return -Errno.ENOMEM;
      }
      got.push(folio);
    }
    for (const f of got) {
      h.nr_huge_pages++;
      h.surplus_huge_pages++;
      enqueue_hugetlb_folio(h, f);
    }
  }
  h.resv_huge_pages += delta;
  return 0;
}

/**
 * free_huge_folio(): the last reference to a hugetlb folio is gone: it goes back to the free pool,
 * or to the buddy allocator if the pool has surplus pages.
 */
export function free_huge_folio(pool: HugetlbPool, folio: Folio): void {
  const store = pool.kernel.store;
  if (!folio_test_hugetlb(store, folio)) BUG(`free_huge_folio of non-hugetlb folio 0x${folio.toString(16)}`);
  const h = hstate_of(pool, folio);
  const i = store.idx(folio);
  store.mapping[i] = 0;
  /* a private (anon) huge page leaves PG_anon_exclusive behind */
  store.flags[i] &= ~(1 << PG_owner_2);
  if (h.surplus_huge_pages) {
    h.surplus_huge_pages--;
    h.nr_huge_pages--;
    update_and_free_hugetlb_folio(pool, folio);
  } else {
    enqueue_hugetlb_folio(h, folio);
  }
}

/**
 * dissolve_free_hugetlb_folio(): a free pool folio leaves the pool for the buddy allocator as
 * base pages (memory failure keeps only the bad one). 0 when done, or when the folio is not a
 * hugetlb one; -EBUSY when it is in use or the pool's reservations need it.
 */
export function dissolve_free_hugetlb_folio(kernel: Kernel, folio: Folio): number {
  const store = kernel.store;
  if (!folio_test_hugetlb(store, folio)) return 0;
  const pool = hugetlb_pool(kernel);
  const h = hstate_of(pool, folio);
  const k = h.freelist.indexOf(folio);
  if (k < 0) return -Errno.EBUSY;
  /* We have to make sure that the reservations of the pool can still be honoured. */
  if (h.free_huge_pages - h.resv_huge_pages === 0) return -Errno.EBUSY;
  /* remove_hugetlb_folio(h, folio, false) */
  h.freelist.splice(k, 1);
  h.free_huge_pages--;
  h.nr_huge_pages--;
  h.max_huge_pages--;
  update_and_free_hugetlb_folio(pool, folio);
  return 0;
}

/**
 * folio_zero_user(): clear a huge folio for user space, charged as one 2 MiB or 1 GiB extent
 * (page_zero_2m / page_zero_1g).
 */
export function folio_zero_user(kernel: Kernel, folio: Folio): void {
  const n = folio_nr_pages(kernel.store, folio);
  for (let k = 0; k < n; k++) kernel.phys.clear((folio + k) as Pfn);
  kernel.cost.charge(n === 512 ? 'page_zero_2m' : n === 262144 ? 'page_zero_1g' : 'page_zero_4k', n === 512 || n === 262144 ? 1 : n);
}

/**
 * hugetlb_add_to_page_cache(): put a huge folio at huge index `idx` of a hugetlbfs file (the page
 * cache index is idx << order), mark it dirty and charge the inode a huge page of blocks.
 * @returns 0 (the folio left locked) or -EEXIST
 */
export function hugetlb_add_to_page_cache(kernel: Kernel, h: Hstate, folio: Folio, mapping: AddressSpace, idx: number): number {
  const store = kernel.store;
  __folio_set_locked(store, folio);
  const err = __filemap_add_folio(kernel, mapping, folio, (idx * pages_per_huge_page(h)) as PgOff, 0);
  if (err) {
    __folio_clear_locked(store, folio);
    return err;
  }
  folio_mark_dirty(store, folio);
  mapping.host.i_blocks += BigInt(blocks_per_huge_page(h));
  return 0;
}
