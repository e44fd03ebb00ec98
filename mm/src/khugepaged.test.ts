/** MADV_COLLAPSE (khugepaged.ts): which VMAs say EINVAL, the ranges that need no collapse, an anonymous and a shmem collapse. */
import { describe, expect, test } from 'vitest';
import { createRootContainer, Errno, type Pfn } from '@cocosim/core';
import { Kernel, mmRegistrar } from './kernel.js';
import { MADV_COLLAPSE, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from './mman.js';
import { MM_ANONPAGES, vm_sysctl } from './mm_types.js';
import { check_vm } from './debug_vm.js';
import { pmd_index_of } from './pgtable.js';
import { FOLL_LONGTERM, FOLL_WRITE, folio_mapcount, folio_ref_count, unpin_user_pages } from './folio.js';
import { pin_user_pages_fast } from './gup.js';
import { folio_test_dirty, folio_test_lru, folio_test_uptodate } from './page-flags.js';
import { MM_SHMEMPAGES } from './mm_types.js';
import type { Stat } from './stat.js';
import { Process } from './process.js';

const PG = 4096n;
const HUGE = 512n * PG;
const H = 0x3000_0000_0000n;
const RW = PROT_READ | PROT_WRITE;

function proc(): Process {
  return new Process(createRootContainer({}, mmRegistrar({ nr_pages: 8192 })).resolve(Kernel));
}

describe('MADV_COLLAPSE', () => {
  test('anonymous memory: a PMD-mapped THP counts as collapsed; small pages are copied into a new THP', () => {
    const p = proc();
    vm_sysctl(p.kernel).transparent_hugepage = 'madvise';
    const a = p.mmap(H, 2n * HUGE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    /* no anon_vma yet: thp_vma_allowable_order() says no */
    expect(p.madvise(a, PG, MADV_COLLAPSE)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.madvise(a, HUGE, MADV_HUGEPAGE)).toBe(0);
    expect(p.store(a, Uint8Array.of(1))).toBe(0);
    expect(p.mm.pgd.pmds.has(pmd_index_of(Number(a / PG)))).toBe(true);
    expect(p.madvise(a, HUGE, MADV_COLLAPSE)).toBe(0);
    /* inside one 2 MiB, not from its start: hstart > hend, EINVAL (Linux 6.18.44 says so too) */
    expect(p.madvise(a + PG, PG, MADV_COLLAPSE)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    /* across into the second VMA (no MADV_HUGEPAGE), untouched: no anon_vma there, EINVAL */
    expect(p.madvise(a + HUGE - PG, 2n * PG, MADV_COLLAPSE)).toBe(-1);
    /* the second 2 MiB: small pages, two of them written, the rest holes */
    const b = a + HUGE;
    expect(p.store(b, Uint8Array.of(2))).toBe(0);
    expect(p.store(b + 7n * PG + 3n, Uint8Array.of(7))).toBe(0);
    expect(p.madvise(b - PG, 2n * PG, MADV_COLLAPSE)).toBe(0);
    expect(p.mm.get_mm_counter(MM_ANONPAGES)).toBe(512 + 2);
    const pmd = pmd_index_of(Number(b / PG));
    expect(p.mm.pgd.pmds.has(pmd)).toBe(false);
    expect(p.madvise(b, HUGE, MADV_COLLAPSE)).toBe(0);
    expect(p.mm.pgd.pmds.has(pmd)).toBe(true);
    expect(p.mm.pgd.ptes.has(pmd)).toBe(false);
    expect(p.mm.get_mm_counter(MM_ANONPAGES)).toBe(1024);
    expect(p.load(b, 1)).toEqual(Uint8Array.of(2));
    expect(p.load(b + 7n * PG + 3n, 1)).toEqual(Uint8Array.of(7));
    expect(p.load(b + 100n * PG, 1)).toEqual(Uint8Array.of(0));
    expect(check_vm(p.kernel)).toEqual([]);
  });

  test('anonymous memory with no writable page (only the zero page) is SCAN_PAGE_RO: EINVAL', () => {
    const p = proc();
    const a = p.mmap(H, HUGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    expect(p.load(a, 1)).toEqual(Uint8Array.of(0));
    expect(p.madvise(a, HUGE, MADV_COLLAPSE)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
  });

  test('VM_NOHUGEPAGE, a VMA with no aligned 2 MiB, and a misaligned file offset are EINVAL; a shmem VMA is allowed', () => {
    const p = proc();
    const fd = p.memfd_create('c', 0);
    expect(p.ftruncate(fd, 4n * HUGE)).toBe(0);
    const s = p.mmap(H, HUGE, RW, MAP_SHARED | MAP_FIXED, fd, 0);
    expect(p.madvise(s + HUGE - PG, PG, MADV_COLLAPSE)).toBe(0);
    expect(p.madvise(s, HUGE, MADV_NOHUGEPAGE)).toBe(0);
    expect(p.madvise(s, PG, MADV_COLLAPSE)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    const off = p.mmap(H + 2n * HUGE, HUGE, RW, MAP_SHARED | MAP_FIXED, fd, PG);
    expect(p.madvise(off, PG, MADV_COLLAPSE)).toBe(-1);
    const small = p.mmap(H + 4n * HUGE, HUGE / 2n, RW, MAP_SHARED | MAP_FIXED, fd, 0);
    expect(p.madvise(small, PG, MADV_COLLAPSE)).toBe(-1);
    vm_sysctl(p.kernel).shmem_enabled = 'deny';
    const d = p.mmap(H + 6n * HUGE, HUGE, RW, MAP_SHARED | MAP_FIXED, fd, 0);
    expect(p.madvise(d, PG, MADV_COLLAPSE)).toBe(-1);
    vm_sysctl(p.kernel).shmem_enabled = 'never';
    expect(p.madvise(d, PG, MADV_COLLAPSE)).toBe(0);
  });

  function blocks(p: Process, fd: number): bigint {
    const st = {} as Stat;
    expect(p.fstat(fd, st)).toBe(0);
    return st.st_blocks;
  }

  function cached(p: Process, fd: number, index: number): number {
    return p.task.files.lookup(fd)!.f_mapping.i_pages.xa_load(index) ?? -1;
  }

  test('shmem: the 2 MiB is collapsed, its holes filled (st_blocks counts 512 pages), the data kept, every page mapped', () => {
    const p = proc();
    const k = p.kernel;
    const store = k.store;
    const fd = p.memfd_create('s', 0);
    expect(p.ftruncate(fd, HUGE)).toBe(0);
    expect(p.pwrite(fd, Uint8Array.of(0x61), 0n)).toBe(1);
    expect(p.pwrite(fd, Uint8Array.of(0x62), HUGE - 1n)).toBe(1);
    const a = p.mmap(H, HUGE, RW, MAP_SHARED | MAP_FIXED, fd, 0);
    expect(p.load(a + PG, 1)).toEqual(Uint8Array.of(0));
    const old = cached(p, fd, 0);
    const free = k.page_alloc.nr_free_pages();
    expect(blocks(p, fd)).toBe(24n);
    expect(p.madvise(a, HUGE, MADV_COLLAPSE)).toBe(0);
    expect(blocks(p, fd)).toBe(4096n);
    /* 512 new pages, the 3 old ones freed */
    expect(k.page_alloc.nr_free_pages()).toBe(free - 509);
    expect(cached(p, fd, 0)).not.toBe(old);
    const first = cached(p, fd, 0);
    for (let i = 0; i < 512; i++) {
      const f = cached(p, fd, i);
      expect(f).toBe(first + i);
      expect(folio_test_uptodate(store, f) && folio_test_dirty(store, f) && folio_test_lru(store, f)).toBe(true);
      expect(folio_mapcount(store, f)).toBe(1);
      expect(folio_ref_count(store, f)).toBe(2);
    }
    expect(p.mm.get_mm_counter(MM_SHMEMPAGES)).toBe(512);
    expect(p.load(a, 1)).toEqual(Uint8Array.of(0x61));
    expect(p.load(a + HUGE - 1n, 1)).toEqual(Uint8Array.of(0x62));
    expect(check_vm(k)).toEqual([]);
    /* collapsed again (copied again: cocosim keeps no THP to find): the same file, memory and data */
    expect(p.madvise(a, HUGE, MADV_COLLAPSE)).toBe(0);
    expect(blocks(p, fd)).toBe(4096n);
    expect(k.page_alloc.nr_free_pages()).toBe(free - 509);
    expect(p.load(a + HUGE - 1n, 1)).toEqual(Uint8Array.of(0x62));
    expect(check_vm(k)).toEqual([]);
  });

  test('shmem: a pinned page is SCAN_PAGE_COUNT (EAGAIN): nothing collapsed, the pages unmapped as in Linux, the data kept', () => {
    const p = proc();
    const k = p.kernel;
    const fd = p.memfd_create('s', 0);
    expect(p.ftruncate(fd, HUGE)).toBe(0);
    const a = p.mmap(H, HUGE, RW, MAP_SHARED | MAP_FIXED, fd, 0);
    expect(p.store(a + 3n * PG, Uint8Array.of(0x33))).toBe(0);
    const pins: number[] = [];
    expect(pin_user_pages_fast(p.mm, Number((a + 3n * PG) / PG), 1, FOLL_WRITE | FOLL_LONGTERM, pins)).toBe(1);
    const free = k.page_alloc.nr_free_pages();
    expect(p.madvise(a, HUGE, MADV_COLLAPSE)).toBe(-1);
    expect(p.errno).toBe(Errno.EAGAIN);
    expect(blocks(p, fd)).toBe(8n);
    expect(k.page_alloc.nr_free_pages()).toBe(free);
    expect(cached(p, fd, 3)).toBe(pins[0]);
    expect(check_vm(k)).toEqual([]);
    unpin_user_pages(k.store, pins, 1);
    expect(p.madvise(a, HUGE, MADV_COLLAPSE)).toBe(0);
    expect(p.load(a + 3n * PG, 1)).toEqual(Uint8Array.of(0x33));
  });

  test('shmem: a poisoned line in a cached page is SCAN_COPY_MC: EINVAL, rolled back (page cache, blocks, free memory)', () => {
    const p = proc();
    const k = p.kernel;
    const fd = p.memfd_create('s', 0);
    expect(p.ftruncate(fd, HUGE)).toBe(0);
    expect(p.pwrite(fd, Uint8Array.of(1), 0n)).toBe(1);
    expect(p.pwrite(fd, Uint8Array.of(2), PG)).toBe(1);
    const a = p.mmap(H, HUGE, RW, MAP_SHARED | MAP_FIXED, fd, 0);
    const page = cached(p, fd, 1);
    k.phys.poison(page as Pfn, 0);
    const free = k.page_alloc.nr_free_pages();
    expect(p.madvise(a, HUGE, MADV_COLLAPSE)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(blocks(p, fd)).toBe(16n);
    expect(k.page_alloc.nr_free_pages()).toBe(free);
    expect(cached(p, fd, 1)).toBe(page);
    expect(p.task.files.lookup(fd)!.f_mapping.nrpages).toBe(2);
    expect(p.load(a, 1)).toEqual(Uint8Array.of(1));
    expect(check_vm(k)).toEqual([]);
  });

  test('shmem: a range with nothing cached is SCAN_TRUNCATED (EINVAL) and ends the walk; no block is kept', () => {
    const p = proc();
    const k = p.kernel;
    const fd = p.memfd_create('s', 0);
    expect(p.ftruncate(fd, 2n * HUGE)).toBe(0);
    expect(p.pwrite(fd, Uint8Array.of(5), HUGE + 7n)).toBe(1);
    const a = p.mmap(H, 2n * HUGE, RW, MAP_SHARED | MAP_FIXED, fd, 0);
    const free = k.page_alloc.nr_free_pages();
    expect(p.madvise(a, 2n * HUGE, MADV_COLLAPSE)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(blocks(p, fd)).toBe(8n);
    expect(k.page_alloc.nr_free_pages()).toBe(free);
    expect(p.madvise(a + HUGE, HUGE, MADV_COLLAPSE)).toBe(0);
    expect(blocks(p, fd)).toBe(4096n);
  });
});
