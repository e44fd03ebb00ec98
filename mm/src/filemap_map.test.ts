import { describe, expect, test } from 'vitest';
import { createRootContainer } from '@cocosim/core';
import { Kernel, mmRegistrar } from './kernel.js';
import { Process } from './process.js';
import { sys_mmap } from './mmap.js';
import { MAP_FIXED, MAP_SHARED, PROT_READ } from './mman.js';
import { MM_SHMEMPAGES, task_mm } from './mm_types.js';
import { faultin_page_range } from './gup.js';
import { pte_offset_map, pte_index } from './pgtable.js';

const PS = 4096;

describe('fault-around (filemap_map_pages)', () => {
  test('a read fault maps the uptodate cached pages around it, not holes nor fallocated pages', () => {
    const p = new Process(createRootContainer({}, mmRegistrar({ nr_pages: 8192 })).resolve(Kernel));
    const fd = p.memfd_create('fa', 0);
    expect(p.ftruncate(fd, 16 * PS)).toBe(0);
    /* pages 0..3 written (uptodate), 4..5 fallocated (!uptodate), 6..15 holes */
    expect(p.pwrite(fd, new Uint8Array(4 * PS).fill(1), 0)).toBe(4 * PS);
    expect(p.fallocate(fd, 0, 4 * PS, 2 * PS)).toBe(0);
    const mm = task_mm(p.task);
    /* a 64 KiB-aligned address, so that the fault-around window is the whole mapping */
    const addr = sys_mmap(p.task, mm, 0x200000000, 16 * PS, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0) as bigint;
    const vpn = Number(addr / BigInt(PS));
    expect(faultin_page_range(mm, vpn + 1, vpn + 2, false)).toBe(1);
    const t = pte_offset_map(mm.pgd, vpn)!;
    const mapped = [];
    for (let k = 0; k < 16; k++) if (t.flags[pte_index(vpn + k)] !== 0) mapped.push(k);
    expect(mapped).toEqual([0, 1, 2, 3]);
    expect(mm.get_mm_counter(MM_SHMEMPAGES)).toBe(4);
    /* a fault on the fallocated page clears it and maps it */
    expect(faultin_page_range(mm, vpn + 4, vpn + 5, false)).toBe(1);
    expect(t.flags[pte_index(vpn + 4)]).not.toBe(0);
  });
});
