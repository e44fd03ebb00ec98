/** MADV_COLLAPSE (khugepaged.ts): which VMAs say EINVAL, and the ranges that need no collapse. */
import { describe, expect, test } from 'vitest';
import { createRootContainer, Errno } from '@cocosim/core';
import { Kernel, mmRegistrar } from './kernel.js';
import { MADV_COLLAPSE, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from './mman.js';
import { vm_sysctl } from './mm_types.js';
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
  test('an anonymous THP already mapped by its PMD is collapsed (0); small pages are not modelled (EINVAL)', () => {
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
    /* the second 2 MiB is another VMA (no MADV_HUGEPAGE) of small pages: Linux would collapse it */
    expect(p.store(a + HUGE, Uint8Array.of(2))).toBe(0);
    expect(p.madvise(a + HUGE, HUGE, MADV_COLLAPSE)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    /* each VMA's part starts on a 2 MiB boundary or ends on one: nothing to collapse, 0 (Linux 6.18.44) */
    expect(p.madvise(a + HUGE - PG, 2n * PG, MADV_COLLAPSE)).toBe(0);
    expect(p.madvise(a + HUGE, PG, MADV_COLLAPSE)).toBe(0);
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
