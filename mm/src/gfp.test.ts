import { describe, expect, test } from 'vitest';
import { KernelBug } from '@cocosim/core';
import {
  GFP_ATOMIC,
  GFP_DMA,
  GFP_DMA32,
  GFP_HIGHUSER,
  GFP_HIGHUSER_MOVABLE,
  GFP_KERNEL,
  GFP_KERNEL_ACCOUNT,
  GFP_NOFS,
  GFP_NOIO,
  GFP_NOWAIT,
  GFP_TRANSHUGE,
  GFP_TRANSHUGE_LIGHT,
  GFP_USER,
  ZONELIST_FALLBACK,
  ZONELIST_NOFALLBACK,
  __GFP_ACCOUNT,
  __GFP_COMP,
  __GFP_DMA,
  __GFP_DMA32,
  __GFP_HIGHMEM,
  __GFP_MOVABLE,
  __GFP_NORETRY,
  __GFP_NOWARN,
  __GFP_RETRY_MAYFAIL,
  __GFP_THISNODE,
  __GFP_ZERO,
  format_gfp,
  gfp_zone,
  gfp_zonelist,
  gfpflags_allow_blocking,
} from './gfp.js';
import { ZONE_DMA, ZONE_DMA32, ZONE_MOVABLE, ZONE_NORMAL } from './page_store.js';

describe('values (include/linux/gfp_types.h)', () => {
  test('single flags', () => {
    expect([__GFP_DMA, __GFP_HIGHMEM, __GFP_DMA32, __GFP_MOVABLE, __GFP_ZERO]).toEqual([0x1, 0x2, 0x4, 0x8, 0x100]);
    expect([__GFP_NOWARN, __GFP_RETRY_MAYFAIL, __GFP_NORETRY, __GFP_COMP, __GFP_THISNODE, __GFP_ACCOUNT]).toEqual([
      0x2000, 0x4000, 0x10000, 0x40000, 0x200000, 0x400000,
    ]);
  });

  test('combinations, as the kernel prints them in traces', () => {
    expect(GFP_KERNEL).toBe(0xcc0);
    expect(GFP_KERNEL_ACCOUNT).toBe(0x400cc0);
    expect(GFP_ATOMIC).toBe(0x820);
    expect(GFP_NOWAIT).toBe(0x2800);
    expect(GFP_NOIO).toBe(0xc00);
    expect(GFP_NOFS).toBe(0xc40);
    expect(GFP_USER).toBe(0x100cc0);
    expect(GFP_HIGHUSER).toBe(0x100cc2);
    expect(GFP_HIGHUSER_MOVABLE).toBe(0x100cca);
    expect(GFP_HIGHUSER_MOVABLE | __GFP_COMP).toBe(0x140cca);
    expect(GFP_TRANSHUGE_LIGHT).toBe(0x1c20ca);
    expect(GFP_TRANSHUGE).toBe(0x1c24ca);
  });

  test('format_gfp()', () => {
    expect(format_gfp(GFP_KERNEL)).toBe('0xcc0(GFP_KERNEL)');
    expect(format_gfp(GFP_HIGHUSER_MOVABLE | __GFP_COMP)).toBe('0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP)');
    expect(format_gfp(GFP_TRANSHUGE)).toBe('0x1c24ca(GFP_TRANSHUGE)');
    expect(format_gfp(GFP_KERNEL | __GFP_ZERO | 0x200)).toBe('0xfc0(GFP_KERNEL|__GFP_ZERO|0x200)');
  });
});

describe('gfp_zone()', () => {
  test('the zone table', () => {
    expect(gfp_zone(GFP_KERNEL)).toBe(ZONE_NORMAL);
    expect(gfp_zone(GFP_HIGHUSER)).toBe(ZONE_NORMAL);
    expect(gfp_zone(GFP_HIGHUSER_MOVABLE)).toBe(ZONE_MOVABLE);
    expect(gfp_zone(GFP_KERNEL | __GFP_MOVABLE)).toBe(ZONE_NORMAL);
    expect(gfp_zone(GFP_DMA)).toBe(ZONE_DMA);
    expect(gfp_zone(GFP_DMA32)).toBe(ZONE_DMA32);
    expect(gfp_zone(__GFP_DMA32 | __GFP_MOVABLE)).toBe(ZONE_DMA32);
    expect(gfp_zone(__GFP_DMA | __GFP_MOVABLE)).toBe(ZONE_DMA);
  });

  test('GFP_ZONE_BAD combinations are VM_BUG_ON', () => {
    for (const bad of [0x3, 0x5, 0x6, 0x7, 0xb, 0xd, 0xe, 0xf]) expect(() => gfp_zone(bad)).toThrow(KernelBug);
  });

  test('zonelist and blocking', () => {
    expect(gfp_zonelist(GFP_KERNEL)).toBe(ZONELIST_FALLBACK);
    expect(gfp_zonelist(GFP_KERNEL | __GFP_THISNODE)).toBe(ZONELIST_NOFALLBACK);
    expect(gfpflags_allow_blocking(GFP_KERNEL)).toBe(true);
    expect(gfpflags_allow_blocking(GFP_ATOMIC)).toBe(false);
    expect(gfpflags_allow_blocking(GFP_TRANSHUGE_LIGHT)).toBe(false);
  });
});
