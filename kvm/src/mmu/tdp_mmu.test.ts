import { describe, expect, test } from 'vitest';
import { RingSink, createRootContainer } from '@cocosim/core';
import { Kernel, Process, mmRegistrar } from '@cocosim/mm';
import { kvmRegistrar, kvm_sw_protected_x86_ops } from '../kvm.js';
import type { Kvm } from '../kvm_host.js';
import { KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM } from '../uapi.js';
import { KVM_PAGES_PER_HPAGE, PG_LEVEL_1G, PG_LEVEL_2M, PG_LEVEL_4K, SHADOW_NONPRESENT_VALUE, make_spte } from './spte.js';
import {
  kvm_tdp_mmu_count_sptes, kvm_tdp_mmu_spte, kvm_tdp_mmu_unmap_gfn_range, tdp_mmu_for_each_leaf, tdp_mmu_set_leaf,
  tdp_mmu_walk_to_level, tdp_mmu_zap_leafs, to_tdp_mmu,
} from './tdp_mmu.js';

function vm(): Kvm {
  const container = createRootContainer({}, mmRegistrar({ nr_pages: 4096 }), kvmRegistrar({ x86_ops: kvm_sw_protected_x86_ops }));
  const p = new Process(container.resolve(Kernel));
  const fd = p.ioctl(p.open('/dev/kvm'), KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
  return p.task.files.lookup(fd)!.private_data as Kvm;
}

/** Install a writable leaf for `gfn` at `level` mapping `pfn` (the fault path's install). */
function map(kvm: Kvm, gfn: number, level: number, pfn: number): void {
  const root = to_tdp_mmu(kvm).direct_root;
  expect(tdp_mmu_set_leaf(kvm, tdp_mmu_walk_to_level(kvm, root, gfn, level), make_spte(level, false, true), pfn)).toBe(0);
}

function counts(kvm: Kvm): number[] {
  return kvm_tdp_mmu_count_sptes(kvm).slice(1);
}

function zap_cost(kvm: Kvm, start: number, end: number): number {
  kvm.kernel.cost.begin('zap');
  tdp_mmu_zap_leafs(kvm, to_tdp_mmu(kvm).direct_root, start, end);
  return kvm.kernel.cost.end('zap').items.find((i) => i.name === 'spte_zap')?.count ?? 0;
}

describe('the TDP MMU page tables (arch/x86/kvm/mmu/tdp_mmu.c)', () => {
  test('leaves at 4K, 2M and 1G: translation inside each, and counts by level', () => {
    const kvm = vm();
    map(kvm, 5, PG_LEVEL_4K, 100);
    map(kvm, 0x200, PG_LEVEL_2M, 0x400);
    map(kvm, 0x40000, PG_LEVEL_1G, 0x80000);
    expect(counts(kvm)).toEqual([1, 1, 1]);
    expect(kvm_tdp_mmu_spte(kvm, 5)).toMatchObject({ level: PG_LEVEL_4K, pfn: 100 });
    expect(kvm_tdp_mmu_spte(kvm, 0x200 + 17)).toMatchObject({ level: PG_LEVEL_2M, pfn: 0x400 + 17 });
    expect(kvm_tdp_mmu_spte(kvm, 0x40000 + 0x12345)).toMatchObject({ level: PG_LEVEL_1G, pfn: 0x80000 + 0x12345 });
    expect(kvm_tdp_mmu_spte(kvm, 6)).toBeUndefined();
    expect(kvm_tdp_mmu_spte(kvm, 0x400)).toBeUndefined();
  });

  test('a zap of one gfn inside a huge leaf zaps the whole leaf; ranges touching nothing zap nothing', () => {
    const kvm = vm();
    map(kvm, 0x40000, PG_LEVEL_1G, 0x80000);
    map(kvm, 0x200, PG_LEVEL_2M, 0x400);
    expect(zap_cost(kvm, 0x0, 0x200)).toBe(0);
    expect(zap_cost(kvm, 0x400, 0x40000)).toBe(0);
    expect(zap_cost(kvm, 0x40000 + 0x3ffff, 0x40000 + 0x40000)).toBe(1);
    expect(counts(kvm)).toEqual([0, 1, 0]);
    expect(zap_cost(kvm, 0x3ff, 0x400)).toBe(1);
    expect(counts(kvm)).toEqual([0, 0, 0]);
  });

  test('mapping 4K under a 2M leaf splits it into 512 SPTEs of the same pfns, without a zap', () => {
    const kvm = vm();
    map(kvm, 0x200, PG_LEVEL_2M, 0x400);
    kvm.kernel.cost.begin('split');
    tdp_mmu_walk_to_level(kvm, to_tdp_mmu(kvm).direct_root, 0x210, PG_LEVEL_4K);
    expect(kvm.kernel.cost.end('split').items.find((i) => i.name === 'spte_zap')).toBeUndefined();
    expect(counts(kvm)).toEqual([512, 0, 0]);
    for (const g of [0x200, 0x210, 0x3ff]) expect(kvm_tdp_mmu_spte(kvm, g)).toMatchObject({ level: PG_LEVEL_4K, pfn: 0x400 + g - 0x200 });
  });

  test('a 2M leaf installed over a page table of 4K leaves removes them (handle_removed_pt), each a zap', () => {
    const kvm = vm();
    for (let i = 0; i < 10; i++) map(kvm, 0x200 + i, PG_LEVEL_4K, 0x400 + i);
    expect(counts(kvm)).toEqual([10, 0, 0]);
    kvm.kernel.cost.begin('install');
    map(kvm, 0x200, PG_LEVEL_2M, 0x400);
    const b = kvm.kernel.cost.end('install');
    expect(b.items.find((i) => i.name === 'spte_zap')?.count).toBe(10);
    expect(b.items.find((i) => i.name === 'spte_set')?.count).toBe(1);
    expect(counts(kvm)).toEqual([0, 1, 0]);
  });

  test('zapping 2^20 4K SPTEs across 2048 page tables: every one goes, counted and charged once per call', () => {
    const kvm = vm();
    const n = 2 ** 20;
    const root = to_tdp_mmu(kvm).direct_root;
    const s = make_spte(PG_LEVEL_4K, false, true);
    for (let g = 0; g < n; g += 512) {
      const t = tdp_mmu_walk_to_level(kvm, root, g, PG_LEVEL_4K);
      t.sp.spte.fill(s);
      for (let i = 0; i < 512; i++) t.sp.pfn[i] = g + i;
      t.sp.nr_present = 512;
    }
    to_tdp_mmu(kvm).direct_pages[PG_LEVEL_4K] = n;
    let leaves = 0;
    tdp_mmu_for_each_leaf(root, 0, n, () => leaves++);
    expect(leaves).toBe(n);
    expect(zap_cost(kvm, 0, n)).toBe(n);
    expect(counts(kvm)).toEqual([0, 0, 0]);
    expect(zap_cost(kvm, 0, 2 ** 24)).toBe(0);
  });

  test('kvm_tdp_mmu_spte_changed reports each zap with the SPTE values', () => {
    const kvm = vm();
    const ring = new RingSink();
    kvm.kernel.tracer.addSink(ring);
    map(kvm, 7, PG_LEVEL_4K, 42);
    ring.clear();
    expect(kvm_tdp_mmu_unmap_gfn_range(kvm, 0, 16, 1, false)).toBe(true);
    const ev = ring.find('kvm_tdp_mmu_spte_changed');
    expect(ev).toHaveLength(1);
    expect(ev[0]!.args).toMatchObject({ gfn: 7, level: PG_LEVEL_4K, new_spte: SHADOW_NONPRESENT_VALUE });
    expect(((ev[0]!.args.old_spte as bigint) >> 12n) & 0xffffffffn).toBe(42n);
    expect(kvm_tdp_mmu_unmap_gfn_range(kvm, 0, 16, 1, false)).toBe(false);
    expect(KVM_PAGES_PER_HPAGE(PG_LEVEL_1G)).toBe(262144);
  });
});
