import { describe, expect, test } from 'vitest';
import { Errno, KernelBug, setWarnObserver, type Warning } from '@cocosim/core';
import {
  GFP_DMA32,
  GFP_HIGHUSER_MOVABLE,
  GFP_KERNEL,
  GFP_USER,
  __GFP_COMP,
  __GFP_MOVABLE,
  __GFP_NOFAIL,
  __GFP_NOWARN,
  __GFP_THISNODE,
  __GFP_ZERO,
} from './gfp.js';
import {
  ACR_FLAGS_NONE,
  IS_ERR_PFN,
  MAX_PAGE_ORDER,
  PageAllocator,
  get_order,
  prep_compound_page,
  type PageAllocListener,
  type PageAllocOptions,
} from './page_alloc.js';
import {
  PG_hwpoison,
  PG_locked,
  PG_mlocked,
  PageBuddy,
  PageReserved,
  PageTail,
  SetPageHWPoison,
  folio_test_large,
  folio_test_large_rmappable,
  PageHWPoison,
} from './page-flags.js';
import {
  FOLL_PIN,
  folio_order,
  folio_put,
  get_page,
  page_count,
  put_page,
  try_grab_folio,
  unpin_folio,
} from './folio.js';
import { PageStore, ZONE_DMA, ZONE_DMA32, ZONE_MOVABLE, ZONE_NORMAL, type PageStoreOptions } from './page_store.js';

function host(nr_pages: number, options: PageStoreOptions = {}, alloc: PageAllocOptions = {}) {
  const store = new PageStore(nr_pages, { dma_zones: false, zero_page: false, ...options });
  return { store, alloc: new PageAllocator(store, alloc) };
}

/** Run fn with the strict-warn observer swapped out; returns what the host's sinks reported. */
function captureWarnings(fn: () => void): Warning[] {
  const seen: Warning[] = [];
  const prev = setWarnObserver((w) => seen.push(w));
  try {
    fn();
  } finally {
    setWarnObserver(prev);
  }
  return seen;
}

function freeCounts(alloc: PageAllocator, zone = 0): number[] {
  return alloc.buddyinfo()[zone].nr_free;
}

/** A snapshot of everything the allocator keeps, to prove that a failed call changed nothing. */
function snapshot(store: PageStore, alloc: PageAllocator): string {
  return JSON.stringify({
    info: alloc.buddyinfo(),
    free: alloc.nr_free_pages(),
    flags: Array.from(store.flags),
    ref: Array.from(store._refcount),
    map: Array.from(store._mapcount),
    order: Array.from(store.order),
    head: Array.from(store.head_offset),
  });
}

describe('buddy split and coalesce', () => {
  test('boot puts every page in max-order blocks', () => {
    const { alloc, store } = host(4096);
    expect(freeCounts(alloc)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4]);
    expect(alloc.nr_free_pages()).toBe(4096);
    for (const pfn of [0, 1024, 2048, 3072]) {
      expect(PageBuddy(store, pfn)).toBe(true);
      expect(store.order[pfn]).toBe(MAX_PAGE_ORDER);
      expect(store._refcount[pfn]).toBe(0);
    }
    expect(PageBuddy(store, 1)).toBe(false);
    expect(store._mapcount[1]).toBe(-1);
  });

  test('order 9 from an empty zone splits one max-order block and coalesces back', () => {
    const { alloc, store } = host(4096);
    const pfn = alloc.alloc_pages(GFP_KERNEL, 9);
    expect(pfn).toBe(0);
    expect(freeCounts(alloc)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3]);
    expect(PageBuddy(store, 512)).toBe(true);
    expect(store.order[512]).toBe(9);
    expect(alloc.nr_free_pages()).toBe(4096 - 512);
    /* a non-compound block: refcount on the first page only, no PG_head */
    expect(store._refcount[0]).toBe(1);
    expect(store._refcount[1]).toBe(0);
    expect(folio_test_large(store, pfn)).toBe(false);
    alloc.__free_pages(pfn, 9);
    expect(freeCounts(alloc)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4]);
    expect(alloc.nr_free_pages()).toBe(4096);
    expect(PageBuddy(store, 512)).toBe(false);
  });

  test('order 0 leaves one block of every lower order, lowest pfn first', () => {
    const { alloc, store } = host(2048);
    const a = alloc.alloc_pages(GFP_KERNEL, 0);
    const b = alloc.alloc_pages(GFP_KERNEL, 0);
    expect([a, b]).toEqual([0, 1]);
    /* after a: 1 (o0), 2 (o1), 4 (o2) ... 512 (o9); b takes 1 */
    expect(freeCounts(alloc)).toEqual([0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    for (let order = 1; order < 10; order++) {
      expect(PageBuddy(store, 2 ** order)).toBe(true);
      expect(store.order[2 ** order]).toBe(order);
    }
    alloc.__free_pages(a, 0);
    /* b still holds its buddy: no merge */
    expect(freeCounts(alloc)).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    alloc.__free_pages(b, 0);
    expect(freeCounts(alloc)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
  });

  test('allocation order is deterministic', () => {
    const run = (): number[] => {
      const { alloc } = host(4096);
      const got: number[] = [];
      for (const order of [0, 3, 1, 9, 0, 2, 10, 5]) got.push(alloc.alloc_pages(GFP_KERNEL, order));
      alloc.__free_pages(got[1], 3);
      got.push(alloc.alloc_pages(GFP_KERNEL, 2));
      return got;
    };
    const first = run();
    expect(run()).toEqual(first);
    expect(first).toEqual([0, 8, 2, 512, 1, 4, 1024, 32, 8]);
  });

  test('a zone that is not max-order aligned is cut into aligned blocks and never merges out of range', () => {
    const { alloc, store } = host(1000, { base_pfn: 24 });
    /* [24, 1024): 8 (o3) at 24, 32 (o5), 64 (o6), 128 (o7), 256 (o8), 512 (o9) */
    expect(freeCounts(alloc)).toEqual([0, 0, 0, 1, 0, 1, 1, 1, 1, 1, 0]);
    const pfn = alloc.alloc_pages(GFP_KERNEL, 3);
    expect(pfn).toBe(24);
    alloc.__free_pages(pfn, 3);
    /* 24's order-3 buddy is 16, outside the store */
    expect(store.order[24 - 24]).toBe(3);
    expect(freeCounts(alloc)).toEqual([0, 0, 0, 1, 0, 1, 1, 1, 1, 1, 0]);
  });

  test('non-compound high-order blocks free their tail pages while the first page is still referenced', () => {
    const { alloc, store } = host(1024);
    const pfn = alloc.alloc_pages(GFP_KERNEL, 2);
    get_page(store, pfn);
    alloc.__free_pages(pfn, 2);
    /* pages 1 (o0) and 2-3 (o1) went back; page 0 is still held */
    expect(alloc.nr_free_pages()).toBe(1023);
    expect(page_count(store, pfn)).toBe(1);
    put_page(store, pfn);
    expect(alloc.nr_free_pages()).toBe(1024);
    expect(freeCounts(alloc)[10]).toBe(1);
  });

  test('folio_alloc() makes compound, rmappable folios', () => {
    const { alloc, store } = host(1024);
    const folio = alloc.folio_alloc(GFP_KERNEL, 9);
    expect(folio_test_large(store, folio)).toBe(true);
    expect(folio_order(store, folio)).toBe(9);
    expect(folio_test_large_rmappable(store, folio)).toBe(true);
    expect(PageTail(store, folio + 511)).toBe(true);
    expect(store.head_offset[folio + 511]).toBe(511);
    expect(store._refcount[folio]).toBe(1);
    expect(store._entire_mapcount[folio]).toBe(-1);
    expect(store._large_mapcount[folio]).toBe(-1);
    expect(store._pincount[folio]).toBe(0);
    folio_put(store, folio);
    expect(PageTail(store, folio + 511)).toBe(false);
    expect(store.flags[folio + 1]).toBe(0);
    expect(freeCounts(alloc)[10]).toBe(1);
  });

  test('alloc_pages_exact() keeps exactly the pages asked for', () => {
    const { alloc, store } = host(1024);
    const pfn = alloc.alloc_pages_exact(5 * 4096, GFP_KERNEL);
    expect(pfn).toBe(0);
    expect(alloc.nr_free_pages()).toBe(1024 - 5);
    for (let i = 0; i < 5; i++) expect(store._refcount[i]).toBe(1);
    expect(PageBuddy(store, 5)).toBe(true);
    alloc.free_pages_exact(pfn, 5 * 4096);
    expect(freeCounts(alloc)[10]).toBe(1);
  });

  test('get_order()', () => {
    expect([1, 4096, 4097, 8192, 2 ** 21, 2 ** 30].map(get_order)).toEqual([0, 0, 1, 1, 9, 18]);
  });
});

describe('pfns beyond 2^31', () => {
  test('split and merge across the 2^32 boundary', () => {
    const base = 2 ** 32 - 512;
    const { alloc, store } = host(4096, { base_pfn: base });
    /* 2^32 - 512 (o9), 2^32, +1024, +2048 (o10), 2^32 + 3072 (o9) */
    expect(freeCounts(alloc)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3]);
    const big = alloc.alloc_pages(GFP_KERNEL, 10);
    expect(big).toBe(2 ** 32);
    const small = alloc.alloc_pages(GFP_KERNEL, 0);
    expect(small).toBe(base);
    expect(store.pfn_valid(small)).toBe(true);
    alloc.__free_pages(small, 0);
    alloc.__free_pages(big, 10);
    expect(freeCounts(alloc)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3]);
    expect(PageBuddy(store, 2 ** 32 + 1024)).toBe(true);
  });

  test('pfns near 2^52 keep exact arithmetic', () => {
    const base = 2 ** 52 - 4096;
    const { alloc } = host(4096, { base_pfn: base });
    const folio = alloc.folio_alloc(GFP_KERNEL, 10);
    expect(folio).toBe(base);
    expect(alloc.alloc_pages(GFP_KERNEL, 10)).toBe(base + 1024);
    folio_put(alloc.store, folio);
    expect(alloc.alloc_pages(GFP_KERNEL, 0)).toBe(base);
  });
});

describe('zones', () => {
  test('ZONE_MOVABLE only serves __GFP_HIGHMEM | __GFP_MOVABLE', () => {
    const { alloc, store } = host(4096, { movable: [{ start_pfn: 2048, nr_pages: 2048 }] });
    expect(alloc.buddyinfo().map((z) => [z.zone, z.nr_free[10]])).toEqual([
      ['Normal', 2],
      ['Movable', 2],
    ]);
    expect(alloc.alloc_pages(GFP_HIGHUSER_MOVABLE, 0)).toBe(2048);
    expect(alloc.alloc_pages(GFP_USER, 0)).toBe(0);
    /* __GFP_MOVABLE without __GFP_HIGHMEM stays in ZONE_NORMAL */
    expect(alloc.alloc_pages(GFP_KERNEL | __GFP_MOVABLE, 0)).toBe(1);
    /* exhaust ZONE_NORMAL: kernel allocations fail although ZONE_MOVABLE has room */
    expect(alloc.alloc_pages(GFP_KERNEL, 10)).toBe(1024);
    for (let i = 0; i < 1022; i++) expect(alloc.alloc_pages(GFP_KERNEL, 0)).toBeLessThan(1024);
    expect(alloc.alloc_pages(GFP_KERNEL | __GFP_NOWARN, 0)).toBe(-Errno.ENOMEM);
    expect(store.zone[2049]).toBe(ZONE_MOVABLE);
    /* movable allocations fall back from ZONE_MOVABLE to ZONE_NORMAL, never the other way */
    const movable: number[] = [];
    for (;;) {
      const pfn = alloc.alloc_pages(GFP_HIGHUSER_MOVABLE | __GFP_NOWARN, 0);
      if (IS_ERR_PFN(pfn)) break;
      movable.push(pfn);
    }
    expect(movable.length).toBe(2047);
    expect(movable.every((p) => p > 2048)).toBe(true);
    expect(alloc.nr_free_pages()).toBe(0);
  });

  test('movable allocations fall back to ZONE_NORMAL when ZONE_MOVABLE is full', () => {
    const { alloc } = host(2048, { movable: [{ start_pfn: 1024, nr_pages: 1024 }] });
    expect(alloc.alloc_pages(GFP_HIGHUSER_MOVABLE, 10)).toBe(1024);
    expect(alloc.alloc_pages(GFP_HIGHUSER_MOVABLE, 0)).toBe(0);
  });

  test('x86-64 DMA zones: kernel allocations prefer ZONE_NORMAL, then DMA32, then DMA', () => {
    const store = new PageStore(2 ** 20 + 2048, { zero_page: true });
    const alloc = new PageAllocator(store);
    expect(alloc.zones.map((z) => z.name)).toEqual(['DMA', 'DMA32', 'Normal']);
    expect(store.zone[0]).toBe(ZONE_DMA);
    expect(store.zone[4096]).toBe(ZONE_DMA32);
    expect(store.zone[2 ** 20]).toBe(ZONE_NORMAL);
    expect(alloc.alloc_pages(GFP_KERNEL, 0)).toBe(2 ** 20);
    expect(alloc.alloc_pages(GFP_DMA32, 0)).toBe(4096);
    expect(alloc.alloc_pages(GFP_KERNEL | 0x01, 0)).toBe(1);
    expect(alloc.alloc_pages(GFP_KERNEL, 11 - 1)).toBe(2 ** 20 + 1024);
    /* ZONE_NORMAL is now exhausted except one order-10 block minus a page */
    expect(alloc.alloc_pages(GFP_KERNEL, 10)).toBe(4096 + 1024);
    /* pfn 0 is the zero page: reserved, never handed out */
    expect(PageReserved(store, 0)).toBe(true);
    expect(store._refcount[0]).toBe(1);
    expect(alloc.zone(0, ZONE_DMA)!.managed_pages).toBe(4095);
    expect(alloc.zone(0, ZONE_DMA32)!.managed_pages).toBe(2 ** 20 - 4096);
  });

  test('NUMA: preferred node first, then the others; __GFP_THISNODE never leaves the node', () => {
    const { alloc, store } = host(4096, { nodes: 2 });
    expect(alloc.zones.map((z) => [z.nid, z.zone_start_pfn, z.spanned_pages])).toEqual([
      [0, 0, 2048],
      [1, 2048, 2048],
    ]);
    expect(alloc.alloc_pages_node(1, GFP_KERNEL, 10)).toBe(2048);
    expect(alloc.alloc_pages_node(1, GFP_KERNEL, 10)).toBe(3072);
    expect(alloc.alloc_pages_node(1, GFP_KERNEL | __GFP_THISNODE | __GFP_NOWARN, 0)).toBe(-Errno.ENOMEM);
    expect(alloc.alloc_pages_node(1, GFP_KERNEL, 0)).toBe(0);
    expect(store.node[0]).toBe(0);
    expect(alloc.alloc_pages(GFP_KERNEL, 0)).toBe(1);
    expect(() => alloc.alloc_pages_node(2, GFP_KERNEL, 0)).toThrow(KernelBug);
  });
});

describe('failure', () => {
  test('-ENOMEM when exhausted, with the state unchanged', () => {
    const { alloc, store } = host(1024);
    const failures: string[] = [];
    alloc.addListener({ onAllocFail: (_gfp, _order, _nid, message) => failures.push(message) });
    expect(alloc.alloc_pages(GFP_KERNEL, 10)).toBe(0);
    const before = snapshot(store, alloc);
    expect(alloc.alloc_pages(GFP_KERNEL, 0)).toBe(-Errno.ENOMEM);
    expect(snapshot(store, alloc)).toBe(before);
    expect(failures).toEqual(['page allocation failure: order:0, mode:0xcc0(GFP_KERNEL), nodemask=(null)']);
    expect(alloc.alloc_pages(GFP_KERNEL | __GFP_NOWARN, 0)).toBe(-Errno.ENOMEM);
    expect(failures.length).toBe(1);
    expect(alloc.nr_alloc_failures).toBe(2);
  });

  test('fragmentation: free pages that are not buddies cannot make an order-1 block', () => {
    const { alloc, store } = host(8);
    const pages: number[] = [];
    for (let i = 0; i < 8; i++) pages.push(alloc.alloc_pages(GFP_KERNEL, 0));
    for (const pfn of [0, 2, 4, 6]) alloc.__free_pages(pfn, 0);
    expect(alloc.nr_free_pages()).toBe(4);
    const before = snapshot(store, alloc);
    expect(alloc.alloc_pages(GFP_KERNEL | __GFP_NOWARN, 1)).toBe(-Errno.ENOMEM);
    expect(snapshot(store, alloc)).toBe(before);
    alloc.__free_pages(1, 0);
    expect(alloc.alloc_pages(GFP_KERNEL, 1)).toBe(0);
  });

  test('orders above MAX_PAGE_ORDER WARN once (unless __GFP_NOWARN) and fail', () => {
    const { alloc } = host(1024);
    const warnings = captureWarnings(() => {
      expect(alloc.alloc_pages(GFP_KERNEL, MAX_PAGE_ORDER + 1)).toBe(-Errno.ENOMEM);
      expect(alloc.alloc_pages(GFP_KERNEL, 18)).toBe(-Errno.ENOMEM);
    });
    expect(warnings.map((w) => w.kind)).toEqual(['WARN_ON_ONCE']);
    expect(warnings[0].message).toMatch(/order 11 > MAX_PAGE_ORDER/);
    const none = captureWarnings(() => {
      const { alloc: other } = host(1024);
      expect(other.alloc_pages(GFP_KERNEL | __GFP_NOWARN, 11)).toBe(-Errno.ENOMEM);
    });
    expect(none).toEqual([]);
  });

  test('__GFP_NOFAIL cannot fail: with no reclaim to wait for, the simulated kernel hangs (KernelBug)', () => {
    const { alloc } = host(1024);
    alloc.alloc_pages(GFP_KERNEL, 10);
    expect(() => alloc.alloc_pages(GFP_KERNEL | __GFP_NOFAIL, 0)).toThrow(/__GFP_NOFAIL/);
  });

  test('bad arguments are simulator bugs', () => {
    const { alloc } = host(1024);
    expect(() => alloc.alloc_pages(GFP_KERNEL, -1)).toThrow(KernelBug);
    expect(() => alloc.alloc_pages(GFP_KERNEL, 1.5)).toThrow(KernelBug);
    expect(() => alloc.alloc_pages(Number.NaN, 0)).toThrow(KernelBug);
    expect(() => alloc.__free_pages(4096, 0)).toThrow(KernelBug);
  });
});

describe('bad_page()', () => {
  const bad = (reason: RegExp, fn: (h: ReturnType<typeof host>) => number, nr_free_after: number) => {
    const h = host(1024);
    let freed = 0;
    h.alloc.addListener({ onFree: (_pfn, nr) => (freed += nr) });
    const warnings = captureWarnings(() => {
      const pfn = fn(h);
      expect(PageBuddy(h.store, pfn)).toBe(false);
    });
    expect(warnings.map((w) => w.kind)).toEqual(['bad_page']);
    expect(warnings[0].message).toMatch(/^BUG: Bad page state/);
    expect(warnings[0].message).toMatch(reason);
    expect(h.store.warn.warnings.length).toBe(1);
    expect(h.alloc.tainted_bad_page).toBe(true);
    expect(h.alloc.nr_free_pages()).toBe(nr_free_after);
    expect(freed).toBe(0);
  };

  test('a mapped page is not freed', () =>
    bad(/page dumped because: nonzero mapcount/, ({ alloc, store }) => {
      const pfn = alloc.alloc_page(GFP_KERNEL);
      store._mapcount[pfn] = 0;
      put_page(store, pfn);
      return pfn;
    }, 1023));

  test('a referenced page is not freed', () =>
    bad(/nonzero _refcount/, ({ alloc }) => {
      const pfn = alloc.alloc_page(GFP_KERNEL);
      alloc.free_frozen_pages(pfn, 0);
      return pfn;
    }, 1023));

  test('a large folio whose pin was dropped with folio_put() leaks with "nonzero pincount"', () =>
    bad(/nonzero pincount/, ({ alloc, store }) => {
      const folio = alloc.folio_alloc(GFP_KERNEL, 9);
      expect(try_grab_folio(store, folio, 1, FOLL_PIN)).toBe(0);
      folio_put(store, folio);
      folio_put(store, folio);
      return folio;
    }, 512));

  test('a locked page is not freed', () =>
    bad(/PAGE_FLAGS_CHECK_AT_FREE flag\(s\) set/, ({ alloc, store }) => {
      const pfn = alloc.alloc_page(GFP_KERNEL);
      store.flags[pfn] |= 1 << PG_locked;
      put_page(store, pfn);
      return pfn;
    }, 1023));

  test('a page still in the page cache is not freed', () =>
    bad(/non-NULL mapping/, ({ alloc, store }) => {
      const pfn = alloc.alloc_page(GFP_KERNEL);
      store.mapping[pfn] = 4;
      put_page(store, pfn);
      return pfn;
    }, 1023));

  test('a tail page with its own mapping is "nonzero mapcount" too', () =>
    bad(/nonzero mapcount/, ({ alloc, store }) => {
      const folio = alloc.folio_alloc(GFP_KERNEL, 2);
      store._mapcount[folio + 3] = 0;
      folio_put(store, folio);
      return folio;
    }, 1020));

  test('an anonymous page loses its anon_vma and is freed', () => {
    const { alloc, store } = host(1024);
    const pfn = alloc.alloc_page(GFP_KERNEL);
    store.mapping[pfn] = 8 | 1;
    put_page(store, pfn);
    expect(alloc.nr_free_pages()).toBe(1024);
    expect(store.mapping[pfn]).toBe(0);
  });

  test('double free is caught', () => {
    const { alloc } = host(1024);
    const pfn = alloc.alloc_page(GFP_KERNEL);
    alloc.__free_pages(pfn, 0);
    expect(() => alloc.__free_pages(pfn, 0)).toThrow(KernelBug);
    expect(() => alloc.free_frozen_pages(0, 10)).toThrow(/double free/);
  });
});

describe('gigantic and contiguous allocations', () => {
  const base = 2 ** 31 + 1000;
  const GIGA = 2 ** 18;

  test('1 GiB folios are naturally aligned, even above 2^31 with an unaligned RAM start', () => {
    const { alloc, store } = host(3 * GIGA, { base_pfn: base });
    const before = alloc.nr_free_pages();
    const a = alloc.folio_alloc_gigantic(18, GFP_HIGHUSER_MOVABLE | __GFP_COMP);
    expect(a).toBe(2 ** 31 + GIGA);
    expect(a % GIGA).toBe(0);
    expect(folio_order(store, a)).toBe(18);
    expect(store._refcount[store.idx(a)]).toBe(1);
    expect(store.head_offset[store.idx(a + GIGA - 1)]).toBe(GIGA - 1);
    expect(alloc.nr_free_pages()).toBe(before - GIGA);
    const b = alloc.folio_alloc_gigantic(18, GFP_HIGHUSER_MOVABLE | __GFP_COMP);
    expect(b).toBe(2 ** 31 + 2 * GIGA);
    expect(alloc.folio_alloc_gigantic(18, GFP_HIGHUSER_MOVABLE | __GFP_COMP)).toBe(-Errno.ENOMEM);
    folio_put(store, a);
    expect(alloc.nr_free_pages()).toBe(before - GIGA);
    expect(PageBuddy(store, a)).toBe(true);
    expect(store.order[store.idx(a)]).toBe(MAX_PAGE_ORDER);
    alloc.free_contig_range(b, GIGA);
    expect(alloc.nr_free_pages()).toBe(before);
    expect(alloc.checkConsistency()).toEqual([]);
  });

  test('a range with one page in use is skipped', () => {
    const { alloc } = host(3 * GIGA, { base_pfn: base });
    const busy = 2 ** 31 + GIGA + 5;
    expect(alloc.alloc_contig_range(busy, busy + 1, ACR_FLAGS_NONE, GFP_KERNEL)).toBe(0);
    expect(alloc.folio_alloc_gigantic(18, GFP_KERNEL | __GFP_COMP)).toBe(2 ** 31 + 2 * GIGA);
    expect(alloc.nr_free_pages()).toBe(3 * GIGA - GIGA - 1);
  });

  test('alloc_contig_range() of an unaligned range gives order-0 pages and returns the rest', () => {
    const { alloc, store } = host(2048);
    expect(alloc.alloc_contig_range(3, 1030, ACR_FLAGS_NONE, GFP_KERNEL)).toBe(0);
    expect(alloc.nr_free_pages()).toBe(2048 - 1027);
    expect(store._refcount.slice(3, 1030).every((r) => r === 1)).toBe(true);
    /* [0, 3) went back as 0 (order 1) and 2 (order 0) */
    expect(PageBuddy(store, 0)).toBe(true);
    expect(store.order[0]).toBe(1);
    expect(PageBuddy(store, 2)).toBe(true);
    expect(store.order[2]).toBe(0);
    expect(PageBuddy(store, 3)).toBe(false);
    /* busy now: -EBUSY and nothing changes */
    const before = snapshot(store, alloc);
    expect(alloc.alloc_contig_range(1000, 1100, ACR_FLAGS_NONE, GFP_KERNEL)).toBe(-Errno.EBUSY);
    expect(snapshot(store, alloc)).toBe(before);
    const warnings = captureWarnings(() => alloc.free_contig_range(3, 1027));
    expect(warnings).toEqual([]);
    expect(freeCounts(alloc)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
  });

  test('alloc_contig_range() rejects bad arguments with -EINVAL', () => {
    const { alloc, store } = host(2048);
    const before = snapshot(store, alloc);
    expect(alloc.alloc_contig_range(10, 10, ACR_FLAGS_NONE, GFP_KERNEL)).toBe(-Errno.EINVAL);
    expect(alloc.alloc_contig_range(0, 4096, ACR_FLAGS_NONE, GFP_KERNEL)).toBe(-Errno.EINVAL);
    expect(alloc.alloc_contig_range(0, 8, ACR_FLAGS_NONE, GFP_KERNEL | __GFP_NOFAIL)).toBe(-Errno.EINVAL);
    const w = captureWarnings(() => expect(alloc.alloc_contig_range(4, 12, ACR_FLAGS_NONE, GFP_KERNEL | __GFP_COMP)).toBe(-Errno.EINVAL));
    expect(w.length).toBe(1);
    expect(snapshot(store, alloc)).toBe(before);
  });

  test('__GFP_ZERO on a gigantic folio zeroes it once, through the listener', () => {
    const { alloc } = host(2 * GIGA);
    const zeroed: [number, number][] = [];
    alloc.addListener({ onZero: (pfn, nr) => zeroed.push([pfn, nr]) });
    const folio = alloc.folio_alloc_gigantic(18, GFP_KERNEL | __GFP_COMP | __GFP_ZERO);
    expect(zeroed).toEqual([[folio, GIGA]]);
  });
});

describe('listeners and init_on_*', () => {
  test('__GFP_ZERO asks for zeroing; init_on_alloc and init_on_free always do', () => {
    const events: string[] = [];
    const listener: PageAllocListener = {
      onZero: (pfn, nr) => events.push(`zero ${pfn}+${nr}`),
      onAlloc: (pfn, nr) => events.push(`alloc ${pfn}+${nr}`),
      onFree: (pfn, nr) => events.push(`free ${pfn}+${nr}`),
    };
    const { alloc } = host(1024);
    const stop = alloc.addListener(listener);
    const a = alloc.alloc_pages(GFP_KERNEL, 1);
    const b = alloc.alloc_pages(GFP_KERNEL | __GFP_ZERO, 0);
    alloc.__free_pages(a, 1);
    stop();
    alloc.__free_pages(b, 0);
    expect(events).toEqual(['alloc 0+2', 'zero 2+1', 'alloc 2+1', 'free 0+2']);

    const other = host(1024, {}, { init_on_alloc: true, init_on_free: true });
    const seen: string[] = [];
    other.alloc.addListener({ onZero: (pfn, nr) => seen.push(`zero ${pfn}+${nr}`) });
    const c = other.alloc.alloc_pages(GFP_KERNEL, 2);
    other.alloc.__free_pages(c, 2);
    expect(seen).toEqual(['zero 0+4', 'zero 0+4']);
  });
});

describe('memory failure', () => {
  test('take_page_off_buddy() isolates one page and put_page_back_buddy() returns it', () => {
    const { alloc, store } = host(1024);
    expect(alloc.is_free_buddy_page(5)).toBe(true);
    expect(alloc.take_page_off_buddy(5)).toBe(true);
    expect(alloc.is_free_buddy_page(5)).toBe(false);
    expect(alloc.nr_free_pages()).toBe(1023);
    expect(freeCounts(alloc)).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]);
    expect(PageBuddy(store, 4)).toBe(true);
    expect(PageBuddy(store, 6)).toBe(true);
    expect(store._refcount[5]).toBe(0);
    /* memory_failure(): poison, and keep a reference */
    SetPageHWPoison(store, 5);
    store._refcount[5] = 1;
    expect(alloc.PageHWPoisonTakenOff(5)).toBe(true);
    expect(alloc.take_page_off_buddy(5)).toBe(false);
    /* nothing hands it out: every other page can be allocated, 5 never */
    const got = new Set<number>();
    for (let i = 0; i < 1023; i++) got.add(alloc.alloc_pages(GFP_KERNEL, 0));
    expect(got.has(5)).toBe(false);
    for (const pfn of got) alloc.__free_pages(pfn, 0);
    /* unpoison_memory() */
    expect(alloc.put_page_back_buddy(5)).toBe(true);
    expect(PageHWPoison(store, 5)).toBe(false);
    expect(alloc.PageHWPoisonTakenOff(5)).toBe(false);
    expect(freeCounts(alloc)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    expect(alloc.checkConsistency()).toEqual([]);
  });

  test('a poisoned order-0 page that is freed stays out of the allocator', () => {
    const { alloc, store } = host(1024);
    const pfn = alloc.alloc_page(GFP_KERNEL);
    store.flags[pfn] |= 1 << PG_hwpoison;
    put_page(store, pfn);
    expect(alloc.nr_free_pages()).toBe(1023);
    expect(alloc.is_free_buddy_page(pfn)).toBe(false);
  });
});

describe('split_page() and compound pages', () => {
  test('split_page() gives every page its own reference', () => {
    const { alloc, store } = host(1024);
    const pfn = alloc.alloc_pages(GFP_KERNEL, 2);
    alloc.split_page(pfn, 2);
    expect(Array.from(store._refcount.slice(0, 4))).toEqual([1, 1, 1, 1]);
    for (let i = 3; i >= 0; i--) alloc.__free_page(pfn + i);
    expect(freeCounts(alloc)[10]).toBe(1);
    const folio = alloc.folio_alloc(GFP_KERNEL, 2);
    expect(() => alloc.split_page(folio, 2)).toThrow(KernelBug);
  });

  test('prep_compound_page() on a store without allocator', () => {
    const store = new PageStore(8, { zero_page: false, dma_zones: false });
    prep_compound_page(store, 0, 3);
    expect(folio_order(store, 0)).toBe(3);
    expect(store.head_offset[7]).toBe(7);
  });
});

describe('unpin and free a pinned folio', () => {
  test('the last unpin frees an order-0 folio', () => {
    const { alloc, store } = host(1024);
    const pfn = alloc.alloc_page(GFP_KERNEL);
    expect(try_grab_folio(store, pfn, 1, FOLL_PIN)).toBe(0);
    put_page(store, pfn);
    expect(store._refcount[pfn]).toBe(1024);
    expect(alloc.nr_free_pages()).toBe(1023);
    unpin_folio(store, pfn);
    expect(alloc.nr_free_pages()).toBe(1024);
  });
});

test('randomized alloc/free keeps the free lists exact and coalesces fully at the end', () => {
  const { alloc, store } = host(8192, { movable: [{ start_pfn: 6144, nr_pages: 2048 }] });
  let seed = 12345;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const held: { pfn: number; order: number; folio: boolean }[] = [];
  for (let step = 0; step < 4000; step++) {
    if (held.length > 0 && rand(3) === 0) {
      const [h] = held.splice(rand(held.length), 1);
      if (h.folio) folio_put(store, h.pfn);
      else alloc.__free_pages(h.pfn, h.order);
    } else {
      const order = rand(4) === 0 ? rand(11) : rand(3);
      const folio = rand(2) === 0;
      const gfp = (rand(2) === 0 ? GFP_HIGHUSER_MOVABLE : GFP_KERNEL) | __GFP_NOWARN;
      const pfn = folio ? alloc.folio_alloc(gfp, order) : alloc.alloc_pages(gfp, order);
      if (IS_ERR_PFN(pfn)) continue;
      expect(pfn % 2 ** order).toBe(0);
      held.push({ pfn, order, folio });
    }
    if (step % 500 === 0) expect(alloc.checkConsistency()).toEqual([]);
  }
  let used = 0;
  for (const h of held) used += 2 ** h.order;
  expect(alloc.nr_free_pages()).toBe(8192 - used);
  expect(alloc.checkConsistency()).toEqual([]);
  for (const h of held) {
    if (h.folio) folio_put(store, h.pfn);
    else alloc.__free_pages(h.pfn, h.order);
  }
  expect(alloc.buddyinfo().map((z) => z.nr_free[10])).toEqual([6, 2]);
  expect(alloc.checkConsistency()).toEqual([]);
});

test('checkConsistency() notices corruption', () => {
  const { alloc, store } = host(1024);
  expect(alloc.checkConsistency()).toEqual([]);
  store._refcount[17] = 1;
  expect(alloc.checkConsistency()).toEqual(['pfn 0x11: free but _refcount 1']);
});

// Speed is `npm run bench -- core`'s business; this checks that a full drain and refill merges back.
test('262144 order-0 pages allocated and freed merge back into order-10 blocks', () => {
  const N = 2 ** 18;
  const { alloc } = host(N + 1024);
  const pfns = new Float64Array(N);
  for (let i = 0; i < N; i++) pfns[i] = alloc.alloc_pages(GFP_KERNEL, 0);
  expect(alloc.nr_free_pages()).toBe(1024);
  for (let i = 0; i < N; i++) alloc.__free_pages(pfns[i], 0);
  expect(alloc.nr_free_pages()).toBe(N + 1024);
  expect(freeCounts(alloc)[10]).toBe(257);
});

describe('free_unref_folios()', () => {
  /** xorshift32 with a fixed seed. */
  const prng = (seed: number) => {
    let x = seed >>> 0 || 1;
    return (n: number): number => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) % n;
    };
  };

  /**
   * Two identical hosts fill up with folios (mostly order 0, some compound) and give back the same
   * random half, in the same shuffled order: one folio at a time through free_frozen_pages(), and
   * in random-sized batches through free_unref_folios(). Some folios are in odd states: anonymous
   * (the anon_vma goes), mlocked (the flag goes), poisoned (stays out), still in a page cache (a
   * bad page, leaked). Everything the allocator keeps must end the same.
   */
  test.each([
    ['zone boundary inside a max-order block', { movable: [{ start_pfn: 1000, nr_pages: 3096 }] }],
    ['pfns across 2^32', { base_pfn: 2 ** 32 - 512 }],
    ['two nodes', { nodes: 2 }],
  ] as [string, PageStoreOptions][])('leaves the free lists as freeing one by one does: %s', (_name, options) => {
    for (const seed of [1, 2, 3]) {
      const rnd = prng(0xf00d + seed);
      const one = host(4096, options);
      const bulk = host(4096, options);
      const folios: number[] = [];
      for (;;) {
        const order = rnd(8) === 0 ? 1 + rnd(3) : 0;
        const a = one.alloc.folio_alloc(GFP_HIGHUSER_MOVABLE | __GFP_NOWARN, order);
        const b = bulk.alloc.folio_alloc(GFP_HIGHUSER_MOVABLE | __GFP_NOWARN, order);
        expect(b).toBe(a);
        if (IS_ERR_PFN(a)) {
          if (order === 0) break;
          continue;
        }
        folios.push(a);
      }
      const victims = folios.filter(() => rnd(2) === 0);
      for (let k = victims.length - 1; k > 0; k--) {
        const j = rnd(k + 1);
        [victims[k], victims[j]] = [victims[j], victims[k]];
      }
      for (const h of [one, bulk]) {
        const r = prng(seed);
        for (const pfn of victims) {
          const i = h.store.idx(pfn);
          h.store._refcount[i] = 0;
          const odd = r(40);
          if (odd === 0) h.store.mapping[i] = 8 | 1;
          if (odd === 1) h.store.flags[i] |= 1 << PG_mlocked;
          if (odd === 2 && !folio_test_large(h.store, pfn)) SetPageHWPoison(h.store, pfn);
          if (odd === 3 && !folio_test_large(h.store, pfn)) h.store.mapping[i] = 4;
        }
      }
      const w1 = captureWarnings(() => {
        for (const pfn of victims) one.alloc.free_frozen_pages(pfn, folio_order(one.store, pfn));
      });
      const w2 = captureWarnings(() => {
        for (let k = 0; k < victims.length; ) {
          const n = Math.min(1 + rnd(40), victims.length - k);
          bulk.alloc.free_unref_folios(victims.slice(k, k + n), n);
          k += n;
        }
      });
      expect(w2.map((w) => w.message)).toEqual(w1.map((w) => w.message));
      expect(w1.length).toBeGreaterThan(0);
      expect(snapshot(bulk.store, bulk.alloc)).toBe(snapshot(one.store, one.alloc));
      expect(Array.from(bulk.store.mapping)).toEqual(Array.from(one.store.mapping));
      expect(bulk.alloc.checkConsistency()).toEqual([]);
      expect(one.alloc.checkConsistency()).toEqual([]);
    }
  });

  test.each([
    ['one zone', {}],
    ['zone boundary inside a max-order block', { movable: [{ start_pfn: 1000, nr_pages: 3096 }] }],
    ['pfns across 2^32', { base_pfn: 2 ** 32 - 512 }],
  ] as [string, PageStoreOptions][])('free_unref_defer() windows end with the free lists batch-by-batch frees leave: %s', (_name, options) => {
    const plain = host(4096, options);
    const deferred = host(4096, options);
    const pfns: number[] = [];
    for (;;) {
      const a = plain.alloc.alloc_page(GFP_KERNEL | __GFP_NOWARN);
      expect(deferred.alloc.alloc_page(GFP_KERNEL | __GFP_NOWARN)).toBe(a);
      if (IS_ERR_PFN(a)) break;
      pfns.push(a);
    }
    /* truncation's order: ascending runs, a batch at a time, a few pages kept */
    const victims = pfns.sort((x, y) => x - y).filter((_, k) => k % 97 !== 5);
    for (const h of [plain, deferred]) for (const pfn of victims) h.store._refcount[h.store.idx(pfn)] = 0;
    deferred.alloc.free_unref_defer();
    for (let k = 0, batch = 0; k < victims.length; k += 31, batch++) {
      const b = victims.slice(k, k + 31);
      plain.alloc.free_unref_folios(b, b.length);
      if (batch === 7) deferred.alloc.free_unref_defer();
      deferred.alloc.free_unref_folios(b, b.length);
      if (batch === 9) deferred.alloc.free_unref_flush();
      if (batch === 20) {
        /* an allocation inside the window takes what the batches before it freed */
        const a = plain.alloc.folio_alloc(GFP_KERNEL, 3);
        expect(deferred.alloc.folio_alloc(GFP_KERNEL, 3)).toBe(a);
        expect(deferred.alloc.nr_free_pages()).toBe(plain.alloc.nr_free_pages());
        for (const h of [plain, deferred]) folio_put(h.store, a);
      }
    }
    deferred.alloc.free_unref_flush();
    expect(snapshot(deferred.store, deferred.alloc)).toBe(snapshot(plain.store, plain.alloc));
    expect(deferred.alloc.checkConsistency()).toEqual([]);
    expect(() => deferred.alloc.free_unref_flush()).toThrow(KernelBug);
  });

  test('a whole zone freed in one batch merges into max-order blocks', () => {
    const { alloc, store } = host(4096);
    const pfns: number[] = [];
    for (let k = 0; k < 4096; k++) pfns.push(alloc.alloc_page(GFP_KERNEL));
    expect(alloc.nr_free_pages()).toBe(0);
    for (const pfn of pfns) store._refcount[pfn] = 0;
    alloc.free_unref_folios(pfns, pfns.length);
    expect(freeCounts(alloc)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4]);
    expect(alloc.checkConsistency()).toEqual([]);
    /* only the first `nr` count */
    const a = alloc.alloc_page(GFP_KERNEL);
    const b = alloc.alloc_page(GFP_KERNEL);
    store._refcount[a] = 0;
    alloc.free_unref_folios([a, b], 1);
    expect(alloc.nr_free_pages()).toBe(4095);
    expect(page_count(store, b)).toBe(1);
  });

  test('listeners of frees, init_on_free and double frees', () => {
    const events: string[] = [];
    const { alloc, store } = host(1024, {}, { init_on_free: true });
    alloc.addListener({ onFree: (pfn, nr) => events.push(`free ${pfn}+${nr}`), onZero: (pfn, nr) => events.push(`zero ${pfn}+${nr}`) });
    const a = alloc.alloc_page(GFP_KERNEL);
    const b = alloc.folio_alloc(GFP_KERNEL, 2);
    const c = alloc.alloc_page(GFP_KERNEL);
    for (const pfn of [a, b, c]) store._refcount[pfn] = 0;
    alloc.free_unref_folios([c, b, a], 3);
    expect(events).toEqual([`zero ${c}+1`, `free ${c}+1`, `zero ${b}+4`, `free ${b}+4`, `zero ${a}+1`, `free ${a}+1`]);
    expect(alloc.nr_free_pages()).toBe(1024);
    expect(() => alloc.free_unref_folios([a], 1)).toThrow(/double free/);

    const quiet = host(1024);
    const p = quiet.alloc.alloc_page(GFP_KERNEL);
    quiet.store._refcount[p] = 0;
    quiet.alloc.free_unref_folios([p], 1);
    expect(() => quiet.alloc.free_unref_folios([p], 1)).toThrow(/double free/);
    expect(() => quiet.alloc.free_unref_folios([5000], 1)).toThrow(KernelBug);
  });
});
