import { describe, expect, test } from 'vitest';
import { KernelBug } from '@cocosim/core';
import {
  DEFAULT_NR_PAGES,
  MAX_DMA32_PFN,
  MAX_DMA_PFN,
  PageStore,
  ZONE_DMA,
  ZONE_DMA32,
  ZONE_MOVABLE,
  ZONE_NORMAL,
  is_zero_pfn,
  is_zone_movable_page,
  page_to_nid,
  page_zonenum,
} from './page_store.js';
import { PageAllocator } from './page_alloc.js';
import { PageReserved } from './page-flags.js';

describe('memmap_init()', () => {
  test('every page starts reserved with one reference and no mapping', () => {
    const store = new PageStore(64, { dma_zones: false, zero_page: false });
    expect(store.flags.every((f) => f === 1 << 13)).toBe(true);
    expect(store._refcount.every((r) => r === 1)).toBe(true);
    expect(store._mapcount.every((m) => m === -1)).toBe(true);
    expect(store.mapping.every((m) => m === 0)).toBe(true);
    expect(store.owner.every((o) => o === 0)).toBe(true);
  });

  test('the default host is 8 GiB', () => {
    expect(DEFAULT_NR_PAGES * 4096).toBe(8 * 2 ** 30);
  });

  test('bad geometry is refused', () => {
    expect(() => new PageStore(0)).toThrow(RangeError);
    expect(() => new PageStore(1.5)).toThrow(RangeError);
    expect(() => new PageStore(16, { base_pfn: -1 })).toThrow(RangeError);
    expect(() => new PageStore(16, { base_pfn: 2 ** 52 - 8 })).toThrow(RangeError);
    expect(() => new PageStore(16, { nodes: 0 })).toThrow(RangeError);
    expect(() => new PageStore(16, { nodes: 17 })).toThrow(RangeError);
    expect(() => new PageStore(16, { reserved: [{ start_pfn: 0, nr_pages: -1 }] })).toThrow(RangeError);
  });
});

describe('layout', () => {
  test('x86-64 zones by physical address, ZONE_MOVABLE where asked, nodes split evenly', () => {
    const nr = MAX_DMA32_PFN + 8192;
    const store = new PageStore(nr, {
      nodes: 2,
      movable: [{ start_pfn: MAX_DMA32_PFN + 4096, nr_pages: 4096 }],
    });
    const half = nr / 2;
    expect(store.segments).toEqual([
      { start_pfn: 0, end_pfn: MAX_DMA_PFN, nid: 0, zone_idx: ZONE_DMA },
      { start_pfn: MAX_DMA_PFN, end_pfn: half, nid: 0, zone_idx: ZONE_DMA32 },
      { start_pfn: half, end_pfn: MAX_DMA32_PFN, nid: 1, zone_idx: ZONE_DMA32 },
      { start_pfn: MAX_DMA32_PFN, end_pfn: MAX_DMA32_PFN + 4096, nid: 1, zone_idx: ZONE_NORMAL },
      { start_pfn: MAX_DMA32_PFN + 4096, end_pfn: nr, nid: 1, zone_idx: ZONE_MOVABLE },
    ]);
    expect(store.zones.map((z) => [z.nid, z.zone_idx, z.zone_start_pfn, z.spanned_pages])).toEqual([
      [0, ZONE_DMA, 0, MAX_DMA_PFN],
      [0, ZONE_DMA32, MAX_DMA_PFN, half - MAX_DMA_PFN],
      [1, ZONE_DMA32, half, MAX_DMA32_PFN - half],
      [1, ZONE_NORMAL, MAX_DMA32_PFN, 4096],
      [1, ZONE_MOVABLE, MAX_DMA32_PFN + 4096, 4096],
    ]);
    expect([page_to_nid(store, half - 1), page_to_nid(store, half)]).toEqual([0, 1]);
    expect(page_zonenum(store, nr - 1)).toBe(ZONE_MOVABLE);
    expect(is_zone_movable_page(store, nr - 1)).toBe(true);
    expect(is_zone_movable_page(store, MAX_DMA32_PFN)).toBe(false);
  });

  test('a movable range in the middle splits ZONE_NORMAL into a zone with a hole', () => {
    const store = new PageStore(3000, { dma_zones: false, movable: [{ start_pfn: 1000, nr_pages: 1000 }] });
    expect(store.zones.map((z) => [z.zone_idx, z.zone_start_pfn, z.spanned_pages, z.present_pages])).toEqual([
      [ZONE_NORMAL, 0, 3000, 2000],
      [ZONE_MOVABLE, 1000, 1000, 1000],
    ]);
    const alloc = new PageAllocator(store);
    expect(alloc.zone(0, ZONE_NORMAL)!.managed_pages).toBe(2000 - 1);
    expect(alloc.nr_free_pages()).toBe(2999);
  });

  test('RAM at a pfn beyond 2^32', () => {
    const base = 2 ** 33 + 7;
    const store = new PageStore(100, { base_pfn: base });
    expect(store.segments).toEqual([{ start_pfn: base, end_pfn: base + 100, nid: 0, zone_idx: ZONE_NORMAL }]);
    expect(store.idx(base + 99)).toBe(99);
    expect(store.pfn_valid(base - 1)).toBe(false);
    expect(() => store.idx(base + 100)).toThrow(KernelBug);
    expect(() => store.idx(base + 0.5)).toThrow(KernelBug);
    expect(is_zero_pfn(store, base)).toBe(true);
  });
});

describe('reserved memory and the zero page', () => {
  test('reserved ranges and the zero page never reach the buddy allocator', () => {
    const store = new PageStore(1024, { dma_zones: false, reserved: [{ start_pfn: 100, nr_pages: 28 }] });
    const alloc = new PageAllocator(store);
    expect(store.zero_pfn).toBe(0);
    expect(alloc.nr_free_pages()).toBe(1024 - 1 - 28);
    for (const pfn of [0, 100, 127]) {
      expect(PageReserved(store, pfn)).toBe(true);
      expect(store._refcount[pfn]).toBe(1);
      expect(alloc.is_free_buddy_page(pfn)).toBe(false);
    }
    expect(PageReserved(store, 128)).toBe(false);
    expect(alloc.is_free_buddy_page(128)).toBe(true);
  });

  test('owner plumbing', () => {
    const store = new PageStore(16, { zero_page: false });
    store.setOwner(4, 8, 7);
    expect([store.getOwner(3), store.getOwner(4), store.getOwner(11), store.getOwner(12)]).toEqual([0, 7, 7, 0]);
    expect(() => store.setOwner(10, 8, 1)).toThrow(KernelBug);
  });

  test('one allocator per store', () => {
    const store = new PageStore(16, { zero_page: false });
    new PageAllocator(store);
    expect(() => new PageAllocator(store)).toThrow(KernelBug);
  });
});
