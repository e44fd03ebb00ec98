import { describe, expect, test } from 'vitest';
import { Errno, createRootContainer, type Pfn } from '@cocosim/core';
import { Kernel, mmRegistrar } from './kernel.js';
import {
  SWAP_FLAG_PREFER,
  SWAP_HAS_CACHE,
  __swap_count,
  get_nr_swap_pages,
  get_swap_device,
  proc_swaps,
  put_swap_slot,
  si_swapinfo,
  swap_alloc_slot,
  swap_check_consistency,
  swap_duplicate,
  swap_free,
  swap_map_of,
  swapcache_prepare,
  swapon,
  total_swap_pages,
  vm_swap_full,
} from './swapfile.js';
import { MAX_SWAPFILES, radix_to_swp_entry, swp_entry, swp_offset, swp_to_radix_entry, swp_type, xa_is_value } from './swapops.js';

function kernel(): Kernel {
  return createRootContainer({}, mmRegistrar({ nr_pages: 4096 })).resolve(Kernel);
}

describe('swapon', () => {
  test('a new host has no swap; swapon() validates its size and flags and gives priorities -2, -3...', () => {
    const k = kernel();
    expect([total_swap_pages(k), get_nr_swap_pages(k)]).toEqual([0, 0]);
    expect(swapon(k, 1)).toBe(-Errno.EINVAL);
    expect(swapon(k, 2.5)).toBe(-Errno.EINVAL);
    expect(swapon(k, 16, 0x100000)).toBe(-Errno.EINVAL);
    expect(swapon(k, 16)).toBe(0);
    expect(swapon(k, 16, SWAP_FLAG_PREFER | 5)).toBe(1);
    expect(swapon(k, 8)).toBe(2);
    expect([get_swap_device(k, swp_entry(0, 1))!.prio, get_swap_device(k, swp_entry(1, 1))!.prio, get_swap_device(k, swp_entry(2, 1))!.prio]).toEqual([-2, 5, -3]);
    expect(si_swapinfo(k)).toEqual({ totalswap: 15 + 15 + 7, freeswap: 37 });
    expect(proc_swaps(k).split('\n')[2]).toBe('/dev/cocosim-swap1                      partition\t60\t\t0\t\t5');
    /* slot 0 is the header */
    expect(get_swap_device(k, swp_entry(0, 0))).toBeUndefined();
    expect(get_swap_device(k, swp_entry(0, 16))).toBeUndefined();
    expect(get_swap_device(k, swp_entry(3, 1))).toBeUndefined();
  });

  test('MAX_SWAPFILES areas at most: -EPERM', () => {
    const k = kernel();
    for (let t = 0; t < MAX_SWAPFILES; t++) expect(swapon(k, 2)).toBe(t);
    expect(swapon(k, 2)).toBe(-Errno.EPERM);
  });
});

describe('slots', () => {
  test('allocation takes the highest priority area, next-fit from 1, and reference counts free the slot', () => {
    const k = kernel();
    swapon(k, 4);
    swapon(k, 4, SWAP_FLAG_PREFER | 1);
    const e1 = swap_alloc_slot(k, 0) as bigint;
    expect([swp_type(e1), swp_offset(e1)]).toEqual([1, 1]);
    expect(swap_map_of(k, e1)).toBe(SWAP_HAS_CACHE);
    expect(swap_alloc_slot(k, 9)).toBe(-Errno.EAGAIN);
    expect(swap_duplicate(k, e1)).toBe(0);
    expect(__swap_count(k, e1)).toBe(1);
    put_swap_slot(k, e1);
    expect(swap_map_of(k, e1)).toBe(1);
    swap_free(k, e1);
    expect(swap_map_of(k, e1)).toBe(0);
    expect(swap_duplicate(k, e1)).toBe(-Errno.ENOENT);
    expect(swapcache_prepare(k, e1)).toBe(-Errno.ENOENT);
    /* next-fit: 2, 3, wrapping to 1, then the other area */
    const got = [0, 1, 2, 3, 4, 5].map(() => swap_alloc_slot(k, 0) as bigint).map((e) => `${swp_type(e)}:${swp_offset(e)}`);
    expect(got).toEqual(['1:2', '1:3', '1:1', '0:1', '0:2', '0:3']);
    expect(swap_alloc_slot(k, 0)).toBe(-Errno.ENOMEM);
    expect(get_nr_swap_pages(k)).toBe(0);
    expect(vm_swap_full(k)).toBe(true);
    expect(swap_check_consistency(k)).not.toEqual([]);
  });

  test('a slot keeps no contents once free: PhysMem forgets it', () => {
    const k = kernel();
    swapon(k, 4);
    const e = swap_alloc_slot(k, 0) as bigint;
    const si = get_swap_device(k, e)!;
    const slot = (si.phys_base + swp_offset(e)) as Pfn;
    k.phys.fill(slot, 7);
    put_swap_slot(k, e);
    expect(k.phys.state(slot)).toBe('never_written');
  });

  test('page-cache value entries round-trip and are negative', () => {
    const e = swp_entry(3, 12345);
    const v = swp_to_radix_entry(e);
    expect(xa_is_value(v)).toBe(true);
    expect(radix_to_swp_entry(v)).toBe(e);
    expect(xa_is_value(0)).toBe(false);
  });
});
