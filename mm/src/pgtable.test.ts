import { describe, expect, test } from 'vitest';
import {
  Pgd,
  _PAGE_ACCESSED,
  _PAGE_DIRTY,
  _PAGE_PRESENT,
  _PAGE_PROTNONE,
  _PAGE_PSE,
  _PAGE_RW,
  _PAGE_USER,
  is_swap_pte,
  keys_in_range,
  pte_alloc,
  pte_clear,
  pte_free_if_empty,
  pte_index,
  pte_modify,
  pte_needs_flush,
  pte_none,
  pte_offset_map,
  pte_present,
  pte_protnone,
  pte_swp_exclusive,
  pte_swp_type,
  pte_to_swp_entry,
  pte_user_readable,
  pte_user_writable,
  set_pmd_at,
  set_pte_at,
  set_swp_entry_at,
  walk_pte_tables,
} from './pgtable.js';
import { SWP_HWPOISON, make_hwpoison_entry } from './swapops.js';
import type { Pfn } from '@cocosim/core';

const PRESENT = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED;

describe('page tables', () => {
  test('PTE flags: present, PROT_NONE and swap entries are told apart as on x86', () => {
    expect(pte_none(0)).toBe(true);
    expect(pte_present(PRESENT) && pte_user_readable(PRESENT) && !pte_user_writable(PRESENT)).toBe(true);
    expect(pte_user_writable(PRESENT | _PAGE_RW)).toBe(true);
    const none = _PAGE_PROTNONE | _PAGE_ACCESSED;
    expect([pte_present(none), pte_protnone(none), pte_user_readable(none)]).toEqual([true, true, false]);
    expect(pte_modify(PRESENT | _PAGE_RW | _PAGE_DIRTY, none)).toBe(none | _PAGE_DIRTY);
  });

  test('swap PTEs hold a type and an offset; the bigint entry round-trips', () => {
    const pt = new Pgd();
    const t = pte_alloc(pt, 12345);
    const i = pte_index(12345);
    const e = make_hwpoison_entry((2 ** 45) as Pfn);
    set_swp_entry_at(t, i, e, true);
    const f = t.flags[i];
    expect([is_swap_pte(f), pte_present(f), pte_swp_type(f), pte_swp_exclusive(f)]).toEqual([true, false, SWP_HWPOISON, true]);
    expect(pte_to_swp_entry(t, i)).toBe(e);
    expect(t.nr).toBe(1);
    pte_clear(t, i);
    expect(t.nr).toBe(0);
    pte_free_if_empty(pt, Math.floor(12345 / 512));
    expect(pte_offset_map(pt, 12345)).toBeUndefined();
  });

  test('a PMD index holds a PTE table or a PMD entry, never both', () => {
    const pt = new Pgd();
    set_pmd_at(pt, 7, 0x200, PRESENT | _PAGE_PSE);
    expect(() => pte_alloc(pt, 7 * 512 + 3)).toThrow();
  });

  test('range walks visit only the tables that exist, clipped to the range, in order', () => {
    const pt = new Pgd();
    for (const vpn of [2 ** 34 + 5, 1000, 3, 2 ** 20]) set_pte_at(pte_alloc(pt, vpn), pte_index(vpn), 1, PRESENT);
    const seen: number[][] = [];
    walk_pte_tables(pt, 2, 2 ** 35, (_t, pmd, from, to) => void seen.push([pmd, from, to]));
    expect(seen).toEqual([[0, 2, 512], [1, 0, 512], [2048, 0, 512], [2 ** 25, 0, 512]]);
    expect(keys_in_range(pt.ptes, 1, 2048)).toEqual([1, 2048]);
  });

  test('TLB flush needed when permissions shrink, not when they grow', () => {
    expect(pte_needs_flush(PRESENT | _PAGE_RW, PRESENT)).toBe(true);
    expect(pte_needs_flush(PRESENT, PRESENT | _PAGE_RW)).toBe(true);
    expect(pte_needs_flush(PRESENT | _PAGE_DIRTY, PRESENT)).toBe(true);
    expect(pte_needs_flush(PRESENT, PRESENT | _PAGE_DIRTY)).toBe(false);
    expect(pte_needs_flush(PRESENT & ~_PAGE_ACCESSED, PRESENT)).toBe(false);
    expect(pte_needs_flush(_PAGE_PROTNONE, PRESENT)).toBe(false);
  });
});
