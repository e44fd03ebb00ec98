/**
 * The TDX cost entries (cocosim's cost model, core/src/cost.ts), from
 * shared/research/vendor-models.md §7. No SEAMCALL latency has been published (§10): every
 * firmware figure is an estimate whose source gives the reasoning; the one derived figure rests on
 * a published clear_page bandwidth. Generic entries the TDX paths also charge (kvm_exit_roundtrip,
 * kvm_userspace_exit_roundtrip, clflush_4k, wbinvd, page_zero_4k...) are core's.
 *
 * What a conversion charges (tdx.ts):
 *   private -> shared, per 4 KiB: tdx_seamcall x3 (BLOCK, TRACK, REMOVE) + tdx_vcpu_kick_ipi per
 *     vCPU + tdx_tdh_phymem_page_wbinvd + tdx_clear_page_4k, and the MapGPA exits;
 *   shared -> private, per 4 KiB: the EPT-violation exit, kvm_tdp_fault, tdx_tdh_mem_page_aug,
 *     tdx_tdg_mem_page_accept_4k (and the first time, gmem's page_zero_4k and SEPT.ADDs).
 */
import type { CostEntry } from '@cocosim/core';

const NOTE = 'shared/research/vendor-models.md §7';

export const TDX_COST_ENTRIES: readonly CostEntry[] = [
  {
    name: 'tdx_seamcall',
    unit: 'ns',
    value: 1250,
    provenance: 'estimate',
    source: `estimate: SEAM entry/exit, module locking and keyhole mapping, 0.5-2 µs per simple leaf; midpoint (${NOTE}; no published figure)`,
    description: 'one SEAMCALL of a simple leaf (TDH.MEM.RANGE.BLOCK, TDH.MEM.TRACK, TDH.MEM.PAGE.REMOVE, TDH.MEM.SEPT.ADD, TDH.MNG.*, TDH.VP.*, TDH.MR.FINALIZE, TDH.PHYMEM.PAGE.RECLAIM)',
  },
  {
    name: 'tdx_tdh_mem_page_aug',
    unit: 'ns',
    value: 2000,
    provenance: 'estimate',
    source: `estimate: TDH.MEM.PAGE.AUG (4 KiB) 1-3 µs; midpoint (${NOTE})`,
    description: 'TDH.MEM.PAGE.AUG of one page: a PENDING private page after finalize',
  },
  {
    name: 'tdx_tdh_mem_page_add',
    unit: 'ns',
    value: 2150,
    provenance: 'estimate',
    source: 'estimate: a SEAMCALL (tdx_seamcall, 1250) + a 4 KiB MOVDIR64B copy with the TD key (page_copy_4k, 600) + one SHA-384 block of the measurement (~300)',
    description: 'TDH.MEM.PAGE.ADD of one 4 KiB page before finalize (copy with the TD key, MRTD update)',
  },
  {
    name: 'tdx_tdh_mr_extend',
    unit: 'ns',
    value: 1650,
    provenance: 'estimate',
    source: 'estimate: a SEAMCALL (tdx_seamcall, 1250) + three SHA-384 blocks (128 B header, 256 B of the page) at ~1 GB/s (~400)',
    description: 'TDH.MR.EXTEND of one 256-byte chunk (16 per measured 4 KiB page)',
  },
  {
    name: 'tdx_tdh_phymem_page_wbinvd',
    unit: 'ns',
    value: 1850,
    provenance: 'estimate',
    source: 'estimate: a SEAMCALL (tdx_seamcall, 1250) + writing back and invalidating the 64 lines of a page (clflush_4k, 600)',
    description: 'TDH.PHYMEM.PAGE.WBINVD of one 4 KiB page: write back the lines cached with the TD\'s HKID',
  },
  {
    name: 'tdx_tdg_mem_page_accept_4k',
    unit: 'ns',
    value: 1500,
    provenance: 'estimate',
    source: `estimate: TDG.MEM.PAGE.ACCEPT of 4 KiB 1-2 µs, a TDCALL plus 64 MOVDIR64B zeroing with the TD key (~0.3 µs); midpoint (${NOTE})`,
    description: 'TDG.MEM.PAGE.ACCEPT of one 4 KiB page by the guest (the module zeroes it with the TD key)',
  },
  {
    name: 'tdx_clear_page_4k',
    unit: 'ns',
    value: 299,
    provenance: 'derived',
    source:
      'Ankur Arora, "x86/clear_page: introduce clear_pages()", Linux commit cb431accb36e: 13.7 GB/s clearing in 4 KiB chunks; ' +
      'tdx_clear_page() writes the same 4096 B as 64 MOVDIR64B of a zero line: 4096 B / 13.7 GB/s = 299 ns',
    description: 'tdx_clear_page(): MOVDIR64B of zeros over a 4 KiB page with KeyID 0 (clears poison and the TD-owner bits)',
  },
  {
    name: 'tdx_vcpu_kick_ipi',
    unit: 'ns',
    value: 1500,
    provenance: 'estimate',
    source: 'estimate: the IPI round trip of tlb_shootdown_ipi (~1-3 µs on modern Xeon, secondary summary of Amit et al., EuroSys 2020), per vCPU kicked',
    description: 'kvm_make_all_cpus_request(KVM_REQ_OUTSIDE_GUEST_MODE) after TDH.MEM.TRACK, per vCPU of the TD',
  },
];

/** Define the TDX entries on a host's cost model, once (a host may be given them by its composition root too). */
export function tdx_define_costs(cost: { has(name: string): boolean; define(e: CostEntry): void }): void {
  for (const e of TDX_COST_ENTRIES) if (!cost.has(e.name)) cost.define(e);
}
