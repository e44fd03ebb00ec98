import { afterEach, describe, expect, test } from 'vitest';
import { createRootContainer, type Pfn } from '@cocosim/core';
import { Kernel, mmRegistrar } from './kernel.js';
import { Inode, S_IFREG, type AddressSpace } from './fs.js';
import { GFP_KERNEL } from './gfp.js';
import { filemap_add_folio, filemap_alloc_folio, registerMapping } from './filemap.js';
import { folio_put, folio_unlock, type Folio } from './folio.js';
import { folio_set_dirty } from './page-flags.js';
import {
  invalidate_mapping_pages,
  mapping_unmap_hooks,
  truncate_inode_pages_range,
  truncate_pagecache,
  truncate_pagecache_range,
  truncate_setsize,
} from './truncate.js';
import { Process } from './process.js';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE } from './uapi/falloc.js';

const PS = 4096;
const saved = { ...mapping_unmap_hooks };

afterEach(() => {
  Object.assign(mapping_unmap_hooks, saved);
});

/** Record the unmap_mapping_range() calls instead of zapping. */
function spy(): [AddressSpace, bigint, bigint, boolean][] {
  const calls: [AddressSpace, bigint, bigint, boolean][] = [];
  mapping_unmap_hooks.unmap_mapping_range = (_k, mapping, holebegin, holelen, even_cows) => {
    calls.push([mapping, holebegin, holelen, even_cows]);
  };
  return calls;
}

function setup(npages: number): { kernel: Kernel; inode: Inode; folios: Folio[] } {
  const kernel = createRootContainer({}, mmRegistrar({ nr_pages: 4096 })).resolve(Kernel);
  const inode = new Inode(kernel.get_next_ino(), S_IFREG | 0o644, {}, {}, kernel.next_mapping_id());
  registerMapping(kernel.store, inode.i_mapping);
  inode.i_size = BigInt(npages * PS);
  const folios: Folio[] = [];
  for (let i = 0; i < npages; i++) {
    const f = filemap_alloc_folio(kernel, GFP_KERNEL, 0)!;
    expect(filemap_add_folio(kernel, inode.i_mapping, f, i, GFP_KERNEL)).toBe(0);
    folio_unlock(kernel.store, f);
    folio_put(kernel.store, f);
    kernel.phys.fill(f as Pfn, 0xaa);
    folios.push(f);
  }
  return { kernel, inode, folios };
}

describe('truncation', () => {
  test('truncate_inode_pages_range removes whole pages and zeroes the covered part of the edge pages', () => {
    const { kernel, inode, folios } = setup(4);
    const free = kernel.page_alloc.nr_free_pages();
    truncate_inode_pages_range(kernel, inode.i_mapping, 100n, BigInt(3 * PS + 99));
    expect(inode.i_mapping.nrpages).toBe(2);
    expect(kernel.page_alloc.nr_free_pages()).toBe(free + 2);
    const head = kernel.phys.read(folios[0] as Pfn, 0, PS) as Uint8Array;
    expect(head.subarray(0, 100).every((b) => b === 0xaa)).toBe(true);
    expect(head.subarray(100).every((b) => b === 0)).toBe(true);
    const tail = kernel.phys.read(folios[3] as Pfn, 0, PS) as Uint8Array;
    expect(tail.subarray(0, 100).every((b) => b === 0)).toBe(true);
    expect(tail.subarray(100).every((b) => b === 0xaa)).toBe(true);
  });

  test('truncate_pagecache unmaps from the new end (rounded up) with COWs, twice', () => {
    const { kernel, inode } = setup(4);
    const calls = spy();
    truncate_setsize(kernel, inode, 5000n);
    expect(inode.i_size).toBe(5000n);
    expect(calls).toEqual([
      [inode.i_mapping, 8192n, 0n, true],
      [inode.i_mapping, 8192n, 0n, true],
    ]);
    expect(inode.i_mapping.nrpages).toBe(2);
    truncate_pagecache(kernel, inode, 0n);
    expect(inode.i_mapping.nrpages).toBe(0);
  });

  test('truncate_pagecache_range unmaps the whole pages inside and keeps COWs', () => {
    const { kernel, inode } = setup(4);
    const calls = spy();
    truncate_pagecache_range(kernel, inode, 4196n, 4296n);
    expect(calls).toEqual([]);
    truncate_pagecache_range(kernel, inode, 100n, BigInt(3 * PS + 99));
    expect(calls).toEqual([[inode.i_mapping, 4096n, 8192n, false]]);
    /*
     * The kernel's quirk for a range inside page 0: unmap_end = round_down(201, 4096) - 1 = -1,
     * which compares as (u64) above unmap_start, so it unmaps from page 1 with holelen -4096
     * (everything to the end of the file, once unmap_mapping_range() casts it to pgoff_t).
     */
    calls.length = 0;
    truncate_pagecache_range(kernel, inode, 100n, 200n);
    expect(calls).toEqual([[inode.i_mapping, 4096n, -4096n, false]]);
  });

  test('invalidate_mapping_pages drops clean unused folios and keeps dirty ones', () => {
    const { kernel, inode, folios } = setup(3);
    folio_set_dirty(kernel.store, folios[1]);
    expect(invalidate_mapping_pages(kernel, inode.i_mapping, 0, 10)).toBe(2);
    expect(inode.i_mapping.i_pages.xa_load(1)).toBe(folios[1]);
    expect(inode.i_mapping.nrpages).toBe(1);
  });
});

describe('shmem goes through the unmap hook first', () => {
  test('hole punch unmaps the whole pages without COWs; ftruncate shrink unmaps from the new end with COWs', () => {
    const p = new Process(createRootContainer({}, mmRegistrar({ nr_pages: 4096 })).resolve(Kernel));
    const fd = p.memfd_create('t', 0);
    expect(p.ftruncate(fd, 4 * PS)).toBe(0);
    const mapping = p.task.files.lookup(fd)!.f_mapping;
    const calls = spy();
    expect(p.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 1, 3 * PS)).toBe(0);
    expect(calls).toEqual([[mapping, 4096n, 8192n, false]]);
    calls.length = 0;
    expect(p.fallocate(fd, 0, 0, 4 * PS)).toBe(0);
    expect(p.ftruncate(fd, 1)).toBe(0);
    expect(calls).toEqual([
      [mapping, 4096n, 0n, true],
      [mapping, 4096n, 0n, true],
    ]);
  });
});
