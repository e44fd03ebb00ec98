/** MADV_COLLAPSE (khugepaged.ts): which VMAs say EINVAL, the ranges that need no collapse, and an anonymous collapse. */
import { describe, expect, test } from 'vitest';
import { createRootContainer, Errno } from '@cocosim/core';
import { Kernel, mmRegistrar } from './kernel.js';
import { MADV_COLLAPSE, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from './mman.js';
import { MM_ANONPAGES, vm_sysctl } from './mm_types.js';
import { check_vm } from './debug_vm.js';
import { pmd_index_of } from './pgtable.js';
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
});
