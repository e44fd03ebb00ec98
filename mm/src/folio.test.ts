import { describe, expect, test } from 'vitest';
import { Errno, KernelBug, setWarnObserver, type Warning } from '@cocosim/core';
import { GFP_KERNEL, __GFP_COMP } from './gfp.js';
import { PageAllocator } from './page_alloc.js';
import { PageStore } from './page_store.js';
import { PGTY_buddy, __folio_set_hugetlb, folio_test_dirty, folio_test_locked, PageBuddy } from './page-flags.js';
import {
  FOLIO_MAPPING_ANON,
  FOLL_GET,
  FOLL_PIN,
  GUP_PIN_COUNTING_BIAS,
  dump_page,
  folio_add_pin,
  folio_entire_mapcount,
  folio_get,
  folio_large_mapcount,
  folio_lock,
  folio_mapcount,
  folio_mapped,
  folio_mapping,
  folio_mark_dirty,
  folio_maybe_dma_pinned,
  folio_nr_pages,
  folio_order,
  folio_page,
  folio_pincount,
  folio_precise_page_mapcount,
  folio_put,
  folio_put_refs,
  folio_ref_count,
  folio_ref_freeze,
  folio_ref_unfreeze,
  folio_size,
  folio_test_anon,
  folio_trylock,
  folio_try_get,
  folio_unlock,
  get_page,
  gup_put_folio,
  is_zero_folio,
  lock_page,
  page_count,
  page_folio,
  page_maybe_dma_pinned,
  page_ref_count,
  put_page,
  set_page_dirty,
  try_grab_folio,
  unlock_page,
  unpin_user_page,
  unpin_user_pages,
} from './folio.js';

function host(nr_pages = 4096, zero_page = false) {
  const store = new PageStore(nr_pages, { dma_zones: false, zero_page });
  return { store, alloc: new PageAllocator(store) };
}

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

describe('geometry', () => {
  test('order-0, 2 MiB and 1 GiB folios', () => {
    const { store, alloc } = host(2 ** 19);
    const small = alloc.folio_alloc(GFP_KERNEL, 0);
    const pmd = alloc.folio_alloc(GFP_KERNEL, 9);
    const pud = alloc.folio_alloc_gigantic(18, GFP_KERNEL | __GFP_COMP);
    expect([folio_order(store, small), folio_nr_pages(store, small), folio_size(store, small)]).toEqual([0, 1, 4096]);
    expect([folio_order(store, pmd), folio_nr_pages(store, pmd), folio_size(store, pmd)]).toEqual([9, 512, 2 ** 21]);
    expect([folio_order(store, pud), folio_nr_pages(store, pud), folio_size(store, pud)]).toEqual([18, 2 ** 18, 2 ** 30]);
    expect(page_folio(store, pmd + 300)).toBe(pmd);
    expect(page_folio(store, pud + 2 ** 18 - 1)).toBe(pud);
    expect(page_folio(store, small)).toBe(small);
    expect(folio_page(store, pmd, 7)).toBe(pmd + 7);
  });
});

describe('references', () => {
  test('get/put on any page of a folio counts on the head; the last put frees', () => {
    const { store, alloc } = host();
    const folio = alloc.folio_alloc(GFP_KERNEL, 2);
    get_page(store, folio + 3);
    expect(folio_ref_count(store, folio)).toBe(2);
    expect(page_count(store, folio + 3)).toBe(2);
    expect(page_ref_count(store, folio + 3)).toBe(0);
    put_page(store, folio + 1);
    expect(PageBuddy(store, folio)).toBe(false);
    folio_put(store, folio);
    expect(alloc.nr_free_pages()).toBe(4096);
    expect(() => folio_put(store, folio)).toThrow(KernelBug);
  });

  test('folio_get() of a free folio is a bug; folio_try_get() just fails', () => {
    const { store, alloc } = host();
    const folio = alloc.folio_alloc(GFP_KERNEL, 0);
    folio_put(store, folio);
    expect(() => folio_get(store, folio)).toThrow(KernelBug);
    expect(folio_try_get(store, folio)).toBe(false);
  });

  test('freeze and unfreeze', () => {
    const { store, alloc } = host();
    const folio = alloc.folio_alloc(GFP_KERNEL, 0);
    get_page(store, folio);
    expect(folio_ref_freeze(store, folio, 1)).toBe(false);
    expect(folio_ref_freeze(store, folio, 2)).toBe(true);
    expect(folio_try_get(store, folio)).toBe(false);
    folio_ref_unfreeze(store, folio, 2);
    folio_put_refs(store, folio, 2);
    expect(alloc.nr_free_pages()).toBe(4096);
  });

  test('a reference count cannot go negative', () => {
    const { store, alloc } = host();
    const folio = alloc.folio_alloc(GFP_KERNEL, 0);
    expect(() => folio_put_refs(store, folio, 2)).toThrow(/underflow/);
  });
});

describe('pins (mm/gup.c accounting)', () => {
  test('order-0: each pin adds GUP_PIN_COUNTING_BIAS to the refcount', () => {
    const { store, alloc } = host();
    const folio = alloc.folio_alloc(GFP_KERNEL, 0);
    expect(folio_maybe_dma_pinned(store, folio)).toBe(false);
    expect(try_grab_folio(store, folio, 1, FOLL_PIN)).toBe(0);
    expect(folio_ref_count(store, folio)).toBe(1 + 1024);
    expect(folio_maybe_dma_pinned(store, folio)).toBe(true);
    expect(try_grab_folio(store, folio, 2, FOLL_PIN)).toBe(0);
    expect(folio_ref_count(store, folio)).toBe(1 + 3 * 1024);
    folio_add_pin(store, folio);
    expect(folio_ref_count(store, folio)).toBe(1 + 4 * 1024);
    expect(try_grab_folio(store, folio, 1, FOLL_GET)).toBe(0);
    expect(folio_ref_count(store, folio)).toBe(2 + 4 * 1024);
    gup_put_folio(store, folio, 3, FOLL_PIN);
    unpin_user_page(store, folio);
    expect(folio_ref_count(store, folio)).toBe(2);
    expect(folio_maybe_dma_pinned(store, folio)).toBe(false);
    gup_put_folio(store, folio, 1, FOLL_GET);
    folio_put(store, folio);
    expect(alloc.nr_free_pages()).toBe(4096);
  });

  test('order-0: 1024 plain references look pinned (the kernel\'s documented false positive)', () => {
    const { store, alloc } = host();
    const folio = alloc.folio_alloc(GFP_KERNEL, 0);
    for (let i = 0; i < GUP_PIN_COUNTING_BIAS - 2; i++) folio_get(store, folio);
    expect(folio_maybe_dma_pinned(store, folio)).toBe(false);
    folio_get(store, folio);
    expect(folio_ref_count(store, folio)).toBe(1024);
    expect(folio_maybe_dma_pinned(store, folio)).toBe(true);
    /* an overflowed (negative) refcount still counts as pinned through the u32 comparison */
    store._refcount[folio] = -(2 ** 31) + 5;
    expect(folio_maybe_dma_pinned(store, folio)).toBe(true);
    /* and try_grab_folio() refuses to add to it */
    const w = captureWarnings(() => expect(try_grab_folio(store, folio, 1, FOLL_PIN)).toBe(-Errno.ENOMEM));
    expect(w.map((x) => x.kind)).toEqual(['WARN_ON_ONCE']);
  });

  test('large folios: _pincount += refs and refcount += refs, exactly', () => {
    const { store, alloc } = host();
    const folio = alloc.folio_alloc(GFP_KERNEL, 9);
    expect(try_grab_folio(store, folio, 1, FOLL_PIN)).toBe(0);
    expect([folio_ref_count(store, folio), folio_pincount(store, folio)]).toEqual([2, 1]);
    expect(folio_maybe_dma_pinned(store, folio)).toBe(true);
    expect(page_maybe_dma_pinned(store, folio + 511)).toBe(true);
    expect(try_grab_folio(store, folio, 3, FOLL_PIN)).toBe(0);
    expect(try_grab_folio(store, folio, 2, FOLL_GET)).toBe(0);
    expect([folio_ref_count(store, folio), folio_pincount(store, folio)]).toEqual([7, 4]);
    folio_add_pin(store, folio);
    expect([folio_ref_count(store, folio), folio_pincount(store, folio)]).toEqual([8, 5]);
    /* unpin_user_pages() groups consecutive pages of one folio into one gup_put_folio() */
    unpin_user_pages(store, [folio + 1, folio + 2, folio + 300], 3);
    expect([folio_ref_count(store, folio), folio_pincount(store, folio)]).toEqual([5, 2]);
    gup_put_folio(store, folio, 2, FOLL_PIN);
    expect(folio_maybe_dma_pinned(store, folio)).toBe(false);
    gup_put_folio(store, folio, 2, FOLL_GET);
    expect(folio_ref_count(store, folio)).toBe(1);
    expect(() => gup_put_folio(store, folio, 1, FOLL_PIN)).toThrow(/_pincount underflow/);
  });

  test('even 1024 plain references do not make a large folio look pinned', () => {
    const { store, alloc } = host();
    const folio = alloc.folio_alloc(GFP_KERNEL, 1);
    for (let i = 0; i < 2000; i++) folio_get(store, folio);
    expect(folio_maybe_dma_pinned(store, folio)).toBe(false);
  });

  test('the zero page is never pinned', () => {
    const { store } = host(4096, true);
    const zero = store.zero_pfn;
    expect(is_zero_folio(store, zero)).toBe(true);
    expect(try_grab_folio(store, zero, 1, FOLL_PIN)).toBe(0);
    folio_add_pin(store, zero);
    expect(folio_ref_count(store, zero)).toBe(1);
    gup_put_folio(store, zero, 1, FOLL_PIN);
    expect(folio_ref_count(store, zero)).toBe(1);
    expect(try_grab_folio(store, zero, 1, FOLL_GET)).toBe(0);
    expect(folio_ref_count(store, zero)).toBe(2);
  });

  test('unpin_user_pages() with an error count WARNs and does nothing', () => {
    const { store } = host();
    const w = captureWarnings(() => unpin_user_pages(store, [], -Errno.EFAULT));
    expect(w.map((x) => x.kind)).toEqual(['WARN_ON']);
  });
});

describe('mapcounts', () => {
  test('order-0: _mapcount is -1 based, page types read as unmapped', () => {
    const { store, alloc } = host();
    const folio = alloc.folio_alloc(GFP_KERNEL, 0);
    expect(folio_mapcount(store, folio)).toBe(0);
    expect(folio_mapped(store, folio)).toBe(false);
    store._mapcount[folio] = 1;
    expect(folio_mapcount(store, folio)).toBe(2);
    /* a free buddy head has a page type in _mapcount, which is not a mapcount */
    expect(store._mapcount[4095 - 1023] >>> 24).toBe(PGTY_buddy);
    expect(folio_mapcount(store, 3072)).toBe(0);
  });

  test('a 2 MiB folio mapped by one PMD and by 3 PTEs', () => {
    const { store, alloc } = host();
    const folio = alloc.folio_alloc(GFP_KERNEL, 9);
    expect([folio_mapcount(store, folio), folio_entire_mapcount(store, folio), folio_large_mapcount(store, folio)]).toEqual([0, 0, 0]);
    /* what rmap does for a PMD mapping: _entire_mapcount++ and _large_mapcount++ */
    store._entire_mapcount[folio]++;
    store._large_mapcount[folio]++;
    expect(folio_mapcount(store, folio)).toBe(1);
    expect(folio_precise_page_mapcount(store, folio, folio + 100)).toBe(1);
    /* and for 3 PTE mappings: each page's _mapcount++, _large_mapcount += 3 */
    for (const p of [1, 2, 3]) store._mapcount[folio + p]++;
    store._large_mapcount[folio] += 3;
    store._nr_pages_mapped[folio] += 3;
    expect(folio_mapcount(store, folio)).toBe(4);
    expect(folio_entire_mapcount(store, folio)).toBe(1);
    expect(folio_precise_page_mapcount(store, folio, folio + 2)).toBe(2);
    expect(folio_precise_page_mapcount(store, folio, folio + 100)).toBe(1);
    expect(() => folio_entire_mapcount(store, alloc.folio_alloc(GFP_KERNEL, 0))).toThrow(KernelBug);
  });

  test('freeing a folio that is still PMD-mapped is a bad page', () => {
    const { store, alloc } = host();
    const folio = alloc.folio_alloc(GFP_KERNEL, 9);
    store._entire_mapcount[folio]++;
    store._large_mapcount[folio]++;
    const w = captureWarnings(() => folio_put(store, folio));
    expect(w.map((x) => x.kind)).toEqual(['bad_page']);
    expect(w[0].message).toMatch(/nonzero large_mapcount/);
    expect(alloc.nr_free_pages()).toBe(4096 - 512);
  });
});

describe('folio lock, dirty, mapping', () => {
  test('lock, trylock, unlock', () => {
    const { store, alloc } = host();
    const folio = alloc.folio_alloc(GFP_KERNEL, 2);
    folio_lock(store, folio);
    expect(folio_test_locked(store, folio)).toBe(true);
    expect(folio_trylock(store, folio)).toBe(false);
    expect(() => folio_lock(store, folio)).toThrow(/deadlock/);
    unlock_page(store, folio + 3);
    expect(folio_test_locked(store, folio)).toBe(false);
    expect(() => folio_unlock(store, folio)).toThrow(KernelBug);
    lock_page(store, folio + 2);
    expect(folio_test_locked(store, folio)).toBe(true);
    expect(() => folio_trylock(store, folio + 1)).toThrow(KernelBug);
  });

  test('set_page_dirty() on a tail page dirties the folio once', () => {
    const { store, alloc } = host();
    const folio = alloc.folio_alloc(GFP_KERNEL, 2);
    expect(set_page_dirty(store, folio + 2)).toBe(true);
    expect(folio_test_dirty(store, folio)).toBe(true);
    expect(set_page_dirty(store, folio + 1)).toBe(false);
  });

  test('folio_mark_dirty() goes through the mapping\'s dirty_folio when there is one', () => {
    const { store, alloc } = host();
    const folio = alloc.folio_alloc(GFP_KERNEL, 0);
    const calls: [number, number][] = [];
    store.dirty_folio = (mapping, f) => {
      calls.push([mapping, f]);
      return true;
    };
    expect(folio_mark_dirty(store, folio)).toBe(true);
    expect(calls).toEqual([]);
    store.mapping[folio] = 64;
    expect(folio_mapping(store, folio)).toBe(64);
    expect(folio_mark_dirty(store, folio)).toBe(true);
    expect(calls).toEqual([[64, folio]]);
    store.mapping[folio] = 64 | FOLIO_MAPPING_ANON;
    expect(folio_test_anon(store, folio)).toBe(true);
    expect(folio_mapping(store, folio)).toBe(0);
  });
});

describe('__folio_put() dispatch', () => {
  test('hugetlb folios go back to the hugetlb pool, not the buddy allocator', () => {
    const { store, alloc } = host();
    const folio = alloc.folio_alloc(GFP_KERNEL, 9);
    __folio_set_hugetlb(store, folio);
    expect(() => folio_put(store, folio)).toThrow(/no hugetlb pool/);
    /* the put itself happened before the bug: give the reference back */
    store._refcount[folio] = 1;
    const freed: number[] = [];
    store.free_huge_folio = (f) => freed.push(f);
    folio_put(store, folio);
    expect(freed).toEqual([folio]);
    expect(alloc.nr_free_pages()).toBe(4096 - 512);
  });

  test('dump_page() shows what bad_page() prints', () => {
    const { store, alloc } = host();
    const folio = alloc.folio_alloc(GFP_KERNEL, 9);
    expect(dump_page(store, folio + 1)).toMatch(/^page: refcount:1 mapcount:0 .* pfn:0x1\nhead: order:9 mapcount:0 entire_mapcount:0 nr_pages_mapped:0 pincount:0\nhead: pfn:0x0\nflags: 0x40\(head\)/);
  });
});
