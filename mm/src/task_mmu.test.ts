import { describe, expect, test } from 'vitest';
import { createRootContainer } from '@cocosim/core';
import { Kernel, mmRegistrar } from './kernel.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from './mman.js';
import { Process } from './process.js';
import { pagemap_pfn } from './task_mmu.js';

describe('pagemap_pfn (/proc/PID/pagemap)', () => {
  test('no pfn before the first touch, the backing pfn after a write, none after munmap', () => {
    const p = new Process(createRootContainer({}, mmRegistrar({ nr_pages: 4096 })).resolve(Kernel));
    const a = p.mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(pagemap_pfn(p.mm, a)).toBeUndefined();
    expect(p.store(a + 4096n, Uint8Array.of(1))).toBe(0);
    expect(pagemap_pfn(p.mm, a)).toBeUndefined();
    const pfn = pagemap_pfn(p.mm, a + 4096n + 7n);
    expect(pfn).toBeGreaterThan(0);
    expect(p.task.kernel.phys.read(pfn!, 0, 1)).toEqual(Uint8Array.of(1));
    expect(p.munmap(a, 8192)).toBe(0);
    expect(pagemap_pfn(p.mm, a + 4096n)).toBeUndefined();
  });
});
