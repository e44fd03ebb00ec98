import { describe, expect, test } from 'vitest';
import { PAGE_SIZE, createRootContainer, type Pfn } from '@cocosim/core';
import { Kernel, mmRegistrar } from './kernel.js';
import { Process } from './process.js';
import { pagemap_pfn } from './task_mmu.js';
import { MADV_FREE, MADV_PAGEOUT, MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from './mman.js';
import { MM_ANONPAGES } from './mm_types.js';
import { LRU_INACTIVE_FILE, LRU_UNEVICTABLE, folio_lru_linked } from './mm_inline.js';
import { folio_test_swapbacked, folio_test_swapcache } from './page-flags.js';
import { reclaim, try_to_free_pages } from './vmscan.js';
import { swapon, swap_check_consistency } from './swapfile.js';
import { folio_swap_entry, swap_cache_get_folio } from './swap_state.js';
import { folio_put, type Folio } from './folio.js';
import { alloc_migration_target, isolate_folio_to_list, migrate_pages, MIGRATE_SYNC, MR_SYSCALL } from './migrate.js';
import { NUMA_NO_NODE } from './page_store.js';
import { GFP_HIGHUSER_MOVABLE } from './gfp.js';

const PG = BigInt(PAGE_SIZE);
const RW = PROT_READ | PROT_WRITE;

function proc(): Process {
  return new Process(createRootContainer({}, mmRegistrar({ nr_pages: 2 ** 16 })).resolve(Kernel));
}

function pfn_at(p: Process, addr: bigint): Pfn | undefined {
  return pagemap_pfn(p.mm, addr);
}

describe('lazy-free pages', () => {
  test('MADV_FREE moves them to the file LRU; reclaim drops them without swap (reads as zeros)', () => {
    const p = proc();
    const a = p.mmap(0, 4n * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (let k = 0; k < 4; k++) expect(p.store(a + BigInt(k) * PG, Uint8Array.of(k + 1))).toBe(0);
    const pfn = pfn_at(p, a)!;
    expect(p.madvise(a, 4n * PG, MADV_FREE)).toBe(0);
    const store = p.kernel.store;
    expect(folio_test_swapbacked(store, pfn)).toBe(false);
    expect(folio_lru_linked(store, pfn)).toBe(LRU_INACTIVE_FILE);
    /* page 3 is written again: it stays */
    expect(p.store(a + 3n * PG, Uint8Array.of(9))).toBe(0);
    expect(p.madvise(a, 4n * PG, MADV_PAGEOUT)).toBe(0);
    expect([0, 1, 2].map((k) => pfn_at(p, a + BigInt(k) * PG))).toEqual([undefined, undefined, undefined]);
    expect(pfn_at(p, a + 3n * PG)).toBeDefined();
    expect(p.mm.get_mm_counter(MM_ANONPAGES)).toBe(1);
    expect(p.load(a, 1)).toEqual(Uint8Array.of(0));
    expect(p.load(a + 3n * PG, 1)).toEqual(Uint8Array.of(9));
  });
});

describe('unevictable mappings', () => {
  test('folios of an AS_UNEVICTABLE mapping sit on LRU_UNEVICTABLE and reclaim leaves them', () => {
    const p = proc();
    swapon(p.kernel, 256);
    const fd = p.memfd_create('u', 0);
    expect(p.ftruncate(fd, 4 * PAGE_SIZE)).toBe(0);
    p.task.files.lookup(fd)!.f_mapping.mapping_set_unevictable();
    const a = p.mmap(0, 4n * PG, RW, MAP_SHARED, fd, 0);
    for (let k = 0; k < 4; k++) expect(p.store(a + BigInt(k) * PG, Uint8Array.of(k))).toBe(0);
    const pfn = pfn_at(p, a)!;
    expect(folio_lru_linked(p.kernel.store, pfn)).toBe(LRU_UNEVICTABLE);
    expect(try_to_free_pages(p.kernel, 32)).toBe(0);
    expect(reclaim(p.kernel, 4)).toBe(-11);
    expect(pfn_at(p, a)).toBe(pfn);
  });
});

describe('swap cache and migration', () => {
  test('a swap-cache folio migrates: the swap cache follows it', () => {
    const p = proc();
    const k = p.kernel;
    swapon(k, 256);
    const a = p.mmap(0, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(p.store(a, Uint8Array.of(3))).toBe(0);
    expect(p.madvise(a, PG, MADV_PAGEOUT)).toBe(0);
    expect(p.load(a, 1)).toEqual(Uint8Array.of(3));
    const old = pfn_at(p, a)! as Folio;
    expect(folio_test_swapcache(k.store, old)).toBe(true);
    const entry = folio_swap_entry(k.store, old);
    const list: Folio[] = [];
    expect(isolate_folio_to_list(k, old, list)).toBe(true);
    const mtc = { nid: NUMA_NO_NODE, gfp_mask: GFP_HIGHUSER_MOVABLE, reason: MR_SYSCALL };
    expect(migrate_pages(k, list, (src) => alloc_migration_target(k, src, mtc), undefined, MIGRATE_SYNC, MR_SYSCALL)).toBe(0);
    const now = pfn_at(p, a)! as Folio;
    expect(now).not.toBe(old);
    const cached = swap_cache_get_folio(k, entry)!;
    expect(cached).toBe(now);
    folio_put(k.store, cached);
    expect(folio_swap_entry(k.store, now)).toBe(entry);
    expect(p.load(a, 1)).toEqual(Uint8Array.of(3));
    expect(swap_check_consistency(k)).toEqual([]);
  });
});
