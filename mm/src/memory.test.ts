import { describe, expect, test } from 'vitest';
import { PAGE_SIZE, createRootContainer, type Pfn } from '@cocosim/core';
import { folio_mapcount, folio_ref_count, folio_test_anon } from './folio.js';
import { Kernel, mmRegistrar } from './kernel.js';
import { MADV_DONTNEED, MADV_POPULATE_READ, MADV_POPULATE_WRITE, MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from './mman.js';
import { MM_ANONPAGES, MM_SHMEMPAGES, type MmStruct } from './mm_types.js';
import { mmu_notifier_register } from './mmu_notifier.js';
import { isSigInfo } from './fault.js';
import { Process } from './process.js';
import { pagemap_pfn } from './task_mmu.js';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE } from './uapi/falloc.js';
import { migration_hooks } from './memory.js';
import { SWP_MIGRATION_WRITE } from './swapops.js';
import { pte_index, set_pte_at, set_swp_pte_at, type PteTable } from './pgtable.js';

const PG = BigInt(PAGE_SIZE);
const RW = PROT_READ | PROT_WRITE;

function proc(nr_pages = 2 ** 16): Process {
  return new Process(createRootContainer({}, mmRegistrar({ nr_pages })).resolve(Kernel));
}

function pfn_at(p: Process, addr: bigint): Pfn | undefined {
  return pagemap_pfn(p.mm, addr);
}

function memfd(p: Process, pages: number): number {
  const fd = p.memfd_create('m', 0);
  expect(p.ftruncate(fd, pages * PAGE_SIZE)).toBe(0);
  return fd;
}

describe('unmap_mapping_range from truncation and hole punching', () => {
  test('a punched hole unmaps the shared page but keeps the private COW copy', () => {
    const p = proc();
    const fd = memfd(p, 2);
    const s = p.mmap(0, 2n * PG, RW, MAP_SHARED, fd, 0);
    const v = p.mmap(0, 2n * PG, RW, MAP_PRIVATE, fd, 0);
    expect(p.store(s, Uint8Array.of(1))).toBe(0);
    expect(p.store(v + PG, Uint8Array.of(2))).toBe(0);
    expect(p.load(v, 1)).toEqual(Uint8Array.of(1));
    const cow = pfn_at(p, v + PG)!;
    expect(p.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 2 * PAGE_SIZE)).toBe(0);
    expect(pfn_at(p, s)).toBeUndefined();
    expect(pfn_at(p, v)).toBeUndefined();
    expect(pfn_at(p, v + PG)).toBe(cow);
    expect(p.load(v + PG, 1)).toEqual(Uint8Array.of(2));
    expect(p.load(s, 1)).toEqual(Uint8Array.of(0));
  });

  test('truncation unmaps the COW copies too (even_cows): SIGBUS past the new EOF', () => {
    const p = proc();
    const fd = memfd(p, 2);
    const v = p.mmap(0, 2n * PG, RW, MAP_PRIVATE, fd, 0);
    expect(p.store(v + PG, Uint8Array.of(2))).toBe(0);
    const cow = pfn_at(p, v + PG)!;
    expect(folio_ref_count(p.kernel.store, cow)).toBe(1);
    expect(p.ftruncate(fd, PAGE_SIZE)).toBe(0);
    expect(pfn_at(p, v + PG)).toBeUndefined();
    expect(folio_ref_count(p.kernel.store, cow)).toBe(0);
    const r = p.load(v + PG, 1);
    expect(isSigInfo(r) && [r.signo, r.si_code]).toEqual(['SIGBUS', 'BUS_ADRERR']);
    expect(p.mm.get_mm_counter(MM_ANONPAGES)).toBe(0);
  });

  test('only the VMAs mapping the range are zapped, in every process', () => {
    const p = proc();
    const q = new Process(p.kernel);
    const fd = memfd(p, 8);
    const f = p.task.files.lookup(fd)!;
    q.task.files.install(f.get_file(), false);
    const a = p.mmap(0, 4n * PG, RW, MAP_SHARED, fd, 0);
    const b = q.mmap(0, 4n * PG, RW, MAP_SHARED, fd, 4n * PG);
    expect(p.madvise(a, 4n * PG, MADV_POPULATE_WRITE)).toBe(0);
    expect(q.madvise(b, 4n * PG, MADV_POPULATE_WRITE)).toBe(0);
    expect(p.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 3 * PAGE_SIZE, 2 * PAGE_SIZE)).toBe(0);
    expect([0n, 1n, 2n, 3n].map((i) => pfn_at(p, a + i * PG) !== undefined)).toEqual([true, true, true, false]);
    expect([0n, 1n, 2n, 3n].map((i) => pfn_at(q, b + i * PG) !== undefined)).toEqual([false, true, true, true]);
    expect(p.mm.get_mm_counter(MM_SHMEMPAGES) + q.mm.get_mm_counter(MM_SHMEMPAGES)).toBe(6);
  });
});

describe('zap', () => {
  test('secondary MMUs hear about the range before and after', () => {
    const p = proc();
    const calls: string[] = [];
    mmu_notifier_register({
      invalidate_range_start: (_mm: MmStruct, s: number, e: number) => void calls.push(`start ${e - s}`),
      invalidate_range_end: (_mm: MmStruct, s: number, e: number) => void calls.push(`end ${e - s}`),
    }, p.mm);
    const a = p.mmap(0, 4n * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(p.madvise(a, 4n * PG, MADV_POPULATE_WRITE)).toBe(0);
    expect(p.madvise(a + PG, 2n * PG, MADV_DONTNEED)).toBe(0);
    expect(calls).toEqual(['start 2', 'end 2']);
  });

  test('refcounts and mapcounts return to the page cache\'s own after mapping and zapping', () => {
    const p = proc();
    const store = p.kernel.store;
    const fd = memfd(p, 16);
    const a = p.mmap(0, 16n * PG, RW, MAP_SHARED, fd, 0);
    expect(p.madvise(a, 16n * PG, MADV_POPULATE_READ)).toBe(0);
    const pfns = Array.from({ length: 16 }, (_, i) => pfn_at(p, a + BigInt(i) * PG)!);
    for (const pfn of pfns) expect([folio_ref_count(store, pfn), folio_mapcount(store, pfn), folio_test_anon(store, pfn)]).toEqual([2, 1, false]);
    expect(p.munmap(a, 16n * PG)).toBe(0);
    for (const pfn of pfns) expect([folio_ref_count(store, pfn), folio_mapcount(store, pfn)]).toEqual([1, 0]);
  });

  // Its speed is measured by `npm run bench -- mm`, not here (a timed test fails on a loaded machine).
  test('zapping 2^14 mapped shmem PTEs, three times over, leaves no shmem page mapped', () => {
    const p = proc(2 ** 15);
    const N = 2 ** 14;
    const fd = memfd(p, N);
    const a = p.mmap(0, BigInt(N) * PG, RW, MAP_SHARED, fd, 0);
    expect(p.madvise(a, BigInt(N) * PG, MADV_POPULATE_WRITE)).toBe(0);
    expect(p.mm.get_mm_counter(MM_SHMEMPAGES)).toBe(N);
    for (let k = 0; k < 3; k++) {
      expect(p.madvise(a, BigInt(N) * PG, MADV_DONTNEED)).toBe(0);
      expect(p.mm.get_mm_counter(MM_SHMEMPAGES)).toBe(0);
      expect(p.madvise(a, BigInt(N) * PG, MADV_POPULATE_WRITE)).toBe(0);
      expect(p.mm.get_mm_counter(MM_SHMEMPAGES)).toBe(N);
    }
  });
});

describe('the zap gather', () => {
  test('anon pages a zap frees go back to the allocator after its TLB flush, and all of them', () => {
    const p = proc();
    const events: string[] = [];
    p.kernel.tracer.on('tlb_flush', () => void events.push('flush'));
    p.kernel.page_alloc.addListener({ onFree: (_pfn, nr) => void events.push(`free ${nr}`) });
    const free0 = p.kernel.page_alloc.nr_free_pages();
    const a = p.mmap(0, 200n * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(p.madvise(a, 200n * PG, MADV_POPULATE_WRITE)).toBe(0);
    expect(p.kernel.page_alloc.nr_free_pages()).toBe(free0 - 200);
    events.length = 0;
    expect(p.madvise(a + PG, 100n * PG, MADV_DONTNEED)).toBe(0);
    expect(events).toEqual(['flush', ...Array<string>(100).fill('free 1')]);
    expect(p.munmap(a, 200n * PG)).toBe(0);
    expect(p.mm.get_mm_counter(MM_ANONPAGES)).toBe(0);
    expect(p.kernel.page_alloc.nr_free_pages()).toBe(free0);
    expect(p.kernel.page_alloc.checkConsistency()).toEqual([]);
  });
});

describe('migration entries', () => {
  test('a fault on one waits for the migration (migration_entry_wait) and retries the access', () => {
    const p = proc();
    const a = p.mmap(0, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(p.store(a, Uint8Array.of(7))).toBe(0);
    const vpn = Number(a / PG);
    const t = p.mm.pgd.ptes.get(Math.floor(vpn / 512)) as PteTable;
    const i = pte_index(vpn);
    const [pfn, flags] = [t.val[i], t.flags[i]];
    /* try_to_migrate() left a migration entry; the migration finishes when someone waits */
    set_swp_pte_at(t, i, SWP_MIGRATION_WRITE, pfn);
    let waits = 0;
    migration_hooks.migration_entry_wait = (mm, v) => {
      expect([mm, v]).toEqual([p.mm, vpn]);
      waits++;
      set_pte_at(t, i, pfn, flags);
    };
    try {
      expect(p.load(a, 1)).toEqual(Uint8Array.of(7));
      expect(waits).toBe(1);
      expect(pfn_at(p, a)).toBe(pfn);
    } finally {
      migration_hooks.migration_entry_wait = undefined;
    }
    set_swp_pte_at(t, i, SWP_MIGRATION_WRITE, pfn);
    expect(() => p.load(a, 1)).toThrow(/migration_entry_wait/);
    set_pte_at(t, i, pfn, flags);
  });
});
