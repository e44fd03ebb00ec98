import { describe, expect, test } from 'vitest';
import { KernelBug, type Pfn } from '@cocosim/core';
import { GFP_KERNEL } from './gfp.js';
import { folio_get, folio_ref_count, type Folio } from './folio.js';
import { PageAllocator } from './page_alloc.js';
import { PG_active, PG_lru, PageBuddy, __folio_set_hugetlb, folio_test_lru } from './page-flags.js';
import { PageStore } from './page_store.js';
import { FolioBatch, PAGEVEC_SIZE, folio_batch_add, folio_batch_count, folio_batch_release, folios_free_frozen, folios_put_refs } from './pagevec.js';

function host() {
  const store = new PageStore(1024, { dma_zones: false, zero_page: false });
  return { store, alloc: new PageAllocator(store) };
}

describe('folios_put_refs() and folio_batch_release()', () => {
  test('drop one reference each; free those that lost their last, and empty the batch', () => {
    const { store, alloc } = host();
    const a = alloc.folio_alloc(GFP_KERNEL, 0);
    const b = alloc.folio_alloc(GFP_KERNEL, 2);
    const c = alloc.folio_alloc(GFP_KERNEL, 0);
    folio_get(store, c);
    store.flags[a] |= (1 << PG_lru) | (1 << PG_active);
    const fbatch = new FolioBatch();
    for (const f of [a, b, c]) folio_batch_add(fbatch, f);
    expect(folio_batch_release(store, fbatch)).toBe(2);
    expect(folio_batch_count(fbatch)).toBe(0);
    expect(PageBuddy(store, a)).toBe(true);
    expect(folio_test_lru(store, a)).toBe(false);
    expect(folio_ref_count(store, c)).toBe(1);
    expect(alloc.nr_free_pages()).toBe(1024 - 1);
    expect(alloc.checkConsistency()).toEqual([]);
  });

  test('with refs: several references per folio, as the page cache holds one per page', () => {
    const { store, alloc } = host();
    const big = alloc.folio_alloc(GFP_KERNEL, 2);
    const small = alloc.folio_alloc(GFP_KERNEL, 0);
    store._refcount[big] += 3;
    const fbatch = new FolioBatch();
    folio_batch_add(fbatch, big);
    folio_batch_add(fbatch, small);
    expect(folios_put_refs(store, fbatch, [4, 1])).toBe(2);
    expect(alloc.nr_free_pages()).toBe(1024);
    /* too many references dropped is a bug, and nothing is freed */
    const d = alloc.folio_alloc(GFP_KERNEL, 0);
    folio_batch_add(fbatch, d);
    expect(() => folios_put_refs(store, fbatch, [2])).toThrow(KernelBug);
    expect(folio_ref_count(store, d)).toBe(1);
  });

  test('a full batch of 31', () => {
    const { store, alloc } = host();
    const fbatch = new FolioBatch();
    let left = PAGEVEC_SIZE;
    while (left) left = folio_batch_add(fbatch, alloc.folio_alloc(GFP_KERNEL, 0));
    expect(folio_batch_release(store, fbatch)).toBe(PAGEVEC_SIZE);
    expect(alloc.nr_free_pages()).toBe(1024);
  });

  test('hugetlb folios go back to their pool, not to the buddy allocator', () => {
    const { store, alloc } = host();
    const pool: Pfn[] = [];
    store.free_huge_folio = (folio) => pool.push(folio);
    const huge = alloc.folio_alloc(GFP_KERNEL, 9);
    __folio_set_hugetlb(store, huge);
    const small = alloc.folio_alloc(GFP_KERNEL, 0);
    const fbatch = new FolioBatch();
    folio_batch_add(fbatch, small);
    folio_batch_add(fbatch, huge);
    expect(folio_batch_release(store, fbatch)).toBe(2);
    expect(pool).toEqual([huge]);
    expect(alloc.nr_free_pages()).toBe(1024 - 512);
  });
});

describe('folios_free_frozen()', () => {
  test('frees folios whose references are already gone: the tail of a TLB gather', () => {
    const { store, alloc } = host();
    const folios: Folio[] = [];
    for (let k = 0; k < 100; k++) {
      const f = alloc.folio_alloc(GFP_KERNEL, 0);
      store._refcount[f] = 0;
      store.flags[f] |= 1 << PG_lru;
      folios.push(f);
    }
    folios_free_frozen(store, folios, 60);
    expect(alloc.nr_free_pages()).toBe(1024 - 40);
    folios_free_frozen(store, folios.slice(60), 40);
    expect(alloc.nr_free_pages()).toBe(1024);
    expect(alloc.checkConsistency()).toEqual([]);
    folios_free_frozen(store, [], 0);
  });
});
