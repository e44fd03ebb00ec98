import { describe, expect, test } from 'vitest';
import { KernelBug } from '@cocosim/core';
import * as pf from './page-flags.js';
import {
  PGTY_buddy,
  PGTY_hugetlb,
  PG_head,
  PG_swapcache,
  PageCompound,
  PageDirty,
  PageHWPoison,
  PageHead,
  PageLocked,
  PageReserved,
  PageTail,
  PageUptodate,
  SetPageDirty,
  SetPageHWPoison,
  SetPageReserved,
  SetPageUptodate,
  __SetPageBuddy,
  __ClearPageBuddy,
  __folio_set_hugetlb,
  __folio_set_locked,
  compound_head,
  folio_clear_swapbacked,
  folio_has_mapcount,
  folio_mark_uptodate,
  folio_set_large_rmappable,
  folio_set_swapbacked,
  folio_set_swapcache,
  folio_test_dirty,
  folio_test_hugetlb,
  folio_test_hwpoison,
  folio_test_large_rmappable,
  folio_test_set_writeback,
  folio_test_swapcache,
  folio_test_uptodate,
  format_page_flags,
  page_has_type,
  page_mapcount_is_type,
  page_type,
  PageBuddy,
  TestClearPageDirty,
} from './page-flags.js';
import { PageStore } from './page_store.js';
import { prep_compound_page } from './page_alloc.js';

/** A store without an allocator: pages 0-7 order-3 compound, 8-15 order-0 pages. */
function pages() {
  const store = new PageStore(16, { dma_zones: false, zero_page: false });
  store.flags.fill(0);
  store._refcount.fill(0);
  prep_compound_page(store, 0, 3);
  store._refcount[0] = 1;
  return store;
}

describe('bit numbers', () => {
  test('enum pageflags of 6.18 (x86-64, no PG_young/PG_idle)', () => {
    expect([
      pf.PG_locked, pf.PG_writeback, pf.PG_referenced, pf.PG_uptodate, pf.PG_dirty, pf.PG_lru, pf.PG_head,
      pf.PG_waiters, pf.PG_active, pf.PG_workingset, pf.PG_owner_priv_1, pf.PG_owner_2, pf.PG_arch_1,
      pf.PG_reserved, pf.PG_private, pf.PG_private_2, pf.PG_reclaim, pf.PG_swapbacked, pf.PG_unevictable,
      pf.PG_dropbehind, pf.PG_mlocked, pf.PG_hwpoison,
    ]).toEqual([...Array(22).keys()]);
    expect(pf.NR_PAGEFLAGS).toBe(22);
  });

  test('aliases share bits as in the kernel', () => {
    expect(pf.PG_swapcache).toBe(pf.PG_owner_priv_1);
    expect(pf.PG_checked).toBe(pf.PG_owner_priv_1);
    expect(pf.PG_anon_exclusive).toBe(pf.PG_owner_2);
    expect(pf.PG_readahead).toBe(pf.PG_reclaim);
    expect(pf.PG_has_hwpoisoned).toBe(pf.PG_active);
    expect(pf.PG_large_rmappable).toBe(pf.PG_workingset);
    expect(pf.PG_partially_mapped).toBe(pf.PG_reclaim);
  });

  test('check masks', () => {
    expect(pf.PAGE_FLAGS_CHECK_AT_PREP & pf.__PG_HWPOISON).toBe(0);
    expect(pf.PAGE_FLAGS_CHECK_AT_PREP & (1 << pf.PG_mlocked)).not.toBe(0);
    expect(pf.PAGE_FLAGS_CHECK_AT_FREE & (1 << pf.PG_dirty)).toBe(0);
    expect(pf.PAGE_FLAGS_CHECK_AT_FREE & (1 << pf.PG_locked)).not.toBe(0);
  });

  test('the exported helpers are the ones the kernel macros define', () => {
    const names = Object.keys(pf);
    for (const present of ['folio_test_set_writeback', 'folio_test_clear_writeback', 'PageWriteback', 'folio_mark_uptodate', '__folio_set_locked', 'TestClearPageLRU', '__SetPageReserved', 'folio_test_large_rmappable']) {
      expect(names).toContain(present);
    }
    for (const absent of ['folio_set_writeback', 'folio_clear_writeback', 'folio_set_uptodate', 'folio_set_locked', 'PageReferenced', 'SetPageSwapCache', 'folio_test_set_lru']) {
      expect(names).not.toContain(absent);
    }
  });
});

describe('compound-page policies', () => {
  test('compound_head(), PageHead(), PageTail(), PageCompound()', () => {
    const store = pages();
    expect(compound_head(store, 5)).toBe(0);
    expect(compound_head(store, 9)).toBe(9);
    expect([PageHead(store, 0), PageTail(store, 0), PageCompound(store, 0)]).toEqual([true, false, true]);
    expect([PageHead(store, 3), PageTail(store, 3), PageCompound(store, 3)]).toEqual([false, true, true]);
    expect([PageHead(store, 9), PageTail(store, 9), PageCompound(store, 9)]).toEqual([false, false, false]);
  });

  test('PF_HEAD: operations through a tail page act on the head', () => {
    const store = pages();
    SetPageDirty(store, 6);
    expect(store.flags[0] & (1 << pf.PG_dirty)).not.toBe(0);
    expect(store.flags[6]).toBe(0);
    expect(PageDirty(store, 2)).toBe(true);
    expect(folio_test_dirty(store, 0)).toBe(true);
    expect(TestClearPageDirty(store, 7)).toBe(true);
    expect(TestClearPageDirty(store, 7)).toBe(false);
  });

  test('PF_NO_TAIL: tests go to the head, modifications through a tail are bugs', () => {
    const store = pages();
    __folio_set_locked(store, 0);
    expect(PageLocked(store, 4)).toBe(true);
    expect(() => SetPageUptodate(store, 4)).toThrow(KernelBug);
    folio_mark_uptodate(store, 0);
    expect(PageUptodate(store, 4)).toBe(true);
    expect(folio_test_uptodate(store, 0)).toBe(true);
  });

  test('PF_ANY: the page itself, head or tail', () => {
    const store = pages();
    SetPageHWPoison(store, 3);
    expect(PageHWPoison(store, 3)).toBe(true);
    expect(PageHWPoison(store, 0)).toBe(false);
    expect(folio_test_hwpoison(store, 0)).toBe(false);
  });

  test('PF_NO_COMPOUND: setting on a compound page is a bug, testing is not', () => {
    const store = pages();
    expect(PageReserved(store, 2)).toBe(false);
    expect(() => SetPageReserved(store, 2)).toThrow(KernelBug);
    SetPageReserved(store, 10);
    expect(PageReserved(store, 10)).toBe(true);
  });

  test('FOLIO_SECOND_PAGE flags live in the first tail page; small folios have none', () => {
    const store = pages();
    folio_set_large_rmappable(store, 0);
    expect(store.flags[1] & (1 << pf.PG_large_rmappable)).not.toBe(0);
    expect(store.flags[0] & (1 << pf.PG_large_rmappable)).toBe(0);
    expect(folio_test_large_rmappable(store, 0)).toBe(true);
    expect(() => folio_set_large_rmappable(store, 9)).toThrow(KernelBug);
  });

  test('folio helpers refuse tail pages', () => {
    const store = pages();
    expect(() => folio_test_dirty(store, 1)).toThrow(KernelBug);
    expect(() => folio_test_set_writeback(store, 1)).toThrow(KernelBug);
  });

  test('folio_test_swapcache() needs PG_swapbacked too', () => {
    const store = pages();
    folio_set_swapcache(store, 9);
    expect(store.flags[9] & (1 << PG_swapcache)).not.toBe(0);
    expect(folio_test_swapcache(store, 9)).toBe(false);
    folio_set_swapbacked(store, 9);
    expect(folio_test_swapcache(store, 9)).toBe(true);
    folio_clear_swapbacked(store, 9);
    expect(folio_test_swapcache(store, 9)).toBe(false);
  });
});

describe('page types overlay _mapcount', () => {
  test('set, test, clear', () => {
    const store = pages();
    expect(page_type(store, 9)).toBe(0xffffffff);
    expect(page_has_type(store, 9)).toBe(false);
    __SetPageBuddy(store, 9);
    expect(PageBuddy(store, 9)).toBe(true);
    expect(page_type(store, 9) >>> 24).toBe(PGTY_buddy);
    expect(store._mapcount[9]).toBe((PGTY_buddy << 24) | 0);
    expect(page_has_type(store, 9)).toBe(true);
    __ClearPageBuddy(store, 9);
    expect(store._mapcount[9]).toBe(-1);
  });

  test('a mapped page cannot take a type; mapcounts are never types', () => {
    const store = pages();
    store._mapcount[10] = 0;
    expect(page_has_type(store, 10)).toBe(false);
    expect(() => __SetPageBuddy(store, 10)).toThrow(KernelBug);
    expect(page_mapcount_is_type(1)).toBe(false);
    expect(page_mapcount_is_type(0)).toBe(false);
    expect(page_mapcount_is_type(((PGTY_buddy << 24) | 0) + 1)).toBe(true);
    /* a mapcount underflow (0xff......) is not a type either */
    expect(page_mapcount_is_type(-5)).toBe(false);
  });

  test('hugetlb folios keep their mapcount semantics', () => {
    const store = pages();
    __folio_set_hugetlb(store, 0);
    expect(folio_test_hugetlb(store, 0)).toBe(true);
    expect(page_type(store, 0) >>> 24).toBe(PGTY_hugetlb);
    expect(folio_has_mapcount(store, 0)).toBe(true);
    __SetPageBuddy(store, 9);
    expect(folio_has_mapcount(store, 9)).toBe(false);
  });
});

test('format_page_flags() prints like %pGp', () => {
  expect(format_page_flags((1 << pf.PG_uptodate) | (1 << pf.PG_dirty) | (1 << PG_head))).toBe('0x58(uptodate|dirty|head)');
  expect(format_page_flags(0)).toBe('0x0()');
});
