import { describe, expect, test } from 'vitest';
import { type Pfn } from '@cocosim/core';
import {
  MAX_SWAPFILES,
  PTE_MARKER_GUARD,
  PTE_MARKER_POISONED,
  SWP_DEVICE_EXCLUSIVE,
  SWP_HWPOISON,
  SWP_MIGRATION_READ,
  SWP_MIGRATION_WRITE,
  SWP_PTE_MARKER,
  SWP_TYPE_SHIFT,
  hwpoison_entry_to_pfn,
  is_guard_swp_entry,
  is_hwpoison_entry,
  is_migration_entry,
  is_migration_entry_dirty,
  is_migration_entry_young,
  is_poisoned_swp_entry,
  is_writable_migration_entry,
  make_hwpoison_entry,
  make_migration_entry_dirty,
  make_migration_entry_young,
  make_pte_marker_entry,
  make_writable_migration_entry,
  non_swap_entry,
  pte_marker_get,
  swp_entry,
  swp_offset,
  swp_offset_pfn,
  swp_type,
} from './swapops.js';

describe('swp_entry_t layout (include/linux/swapops.h, 6.18 x86-64)', () => {
  test('type in the top 5 of 63 bits; the special types follow MAX_SWAPFILES', () => {
    expect(SWP_TYPE_SHIFT).toBe(58);
    expect(MAX_SWAPFILES).toBe(24);
    expect([SWP_HWPOISON, SWP_MIGRATION_READ, SWP_MIGRATION_WRITE, SWP_DEVICE_EXCLUSIVE, SWP_PTE_MARKER]).toEqual([24, 25, 27, 30, 31]);
    const e = swp_entry(3, 0x1234);
    expect(e).toBe((3n << 58n) | 0x1234n);
    expect([swp_type(e), swp_offset(e), non_swap_entry(e)]).toEqual([3, 0x1234, false]);
  });

  test('hwpoison entries carry the pfn, beyond 2^32 too', () => {
    const pfn = (2 ** 39 + 5) as Pfn;
    const e = make_hwpoison_entry(pfn);
    expect(e).toBe((24n << 58n) | BigInt(pfn));
    expect(is_hwpoison_entry(e) && non_swap_entry(e)).toBe(true);
    expect(hwpoison_entry_to_pfn(e)).toBe(pfn);
  });

  test('migration entries keep young/dirty above the pfn', () => {
    const e = make_migration_entry_dirty(make_migration_entry_young(make_writable_migration_entry(0x1000 as Pfn)));
    expect(is_migration_entry(e) && is_writable_migration_entry(e)).toBe(true);
    expect([is_migration_entry_young(e), is_migration_entry_dirty(e), swp_offset_pfn(e)]).toEqual([true, true, 0x1000]);
  });

  test('PTE markers', () => {
    expect(is_guard_swp_entry(make_pte_marker_entry(PTE_MARKER_GUARD))).toBe(true);
    expect(is_poisoned_swp_entry(make_pte_marker_entry(PTE_MARKER_POISONED))).toBe(true);
    expect(pte_marker_get(make_pte_marker_entry(PTE_MARKER_GUARD | PTE_MARKER_POISONED))).toBe(6);
    expect(() => make_pte_marker_entry(0)).toThrow();
  });
});
