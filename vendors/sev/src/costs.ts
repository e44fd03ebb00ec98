/**
 * The cost entries of the SEV/SNP plugin (shared/research/vendor-models.md §7). No hardware
 * measurement of these instructions or firmware commands was found, so every figure is an
 * estimate with its reasoning; cache flushes, WBINVD, VM exits and page zeroing use the core
 * entries (clflush_4k, wbinvd, kvm_exit_roundtrip, kvm_userspace_exit_roundtrip, page_zero_4k).
 */
import type { CostEntry, CostModel } from '@cocosim/core';

export const SEV_COST_ENTRIES: readonly CostEntry[] = [
  {
    name: 'sev_rmpupdate',
    unit: 'ns',
    value: 1250,
    provenance: 'estimate',
    source: 'estimate: vendor-models.md §7 gives 0.5-2 µs for RMPUPDATE (no published figure; may retry on FAIL_OVERLAP); midpoint',
    description: 'one RMPUPDATE instruction (rmpupdate(): a 4 KiB or 2 MiB RMP entry written)',
  },
  {
    name: 'sev_psmash',
    unit: 'ns',
    value: 2000,
    provenance: 'estimate',
    source: 'estimate: vendor-models.md §7 gives 1-3 µs for PSMASH (512 RMP entries written); midpoint',
    description: 'one PSMASH instruction (a 2 MiB RMP entry split into 512 4 KiB entries)',
  },
  {
    name: 'sev_pvalidate_4k',
    unit: 'ns',
    value: 750,
    provenance: 'estimate',
    source: 'estimate: vendor-models.md §7 gives 0.5-1 µs per 4 KiB PVALIDATE; midpoint',
    description: 'one PVALIDATE by the guest (4 KiB, or one 2 MiB entry)',
  },
  {
    name: 'sev_rmpadjust',
    unit: 'ns',
    value: 750,
    provenance: 'estimate',
    source: 'estimate: an RMP entry read-modify-write by the guest like PVALIDATE (vendor-models.md §7, 0.5-1 µs); midpoint',
    description: 'one RMPADJUST by the guest',
  },
  {
    name: 'sev_psp_cmd',
    unit: 'ns',
    value: 55000,
    provenance: 'estimate',
    source: 'estimate: vendor-models.md §7 gives 10-100 µs per AMD-SP (PSP) mailbox command, serialized firmware; midpoint',
    description: 'one AMD-SP firmware command through the PSP mailbox (SNP_LAUNCH_UPDATE of one page, ACTIVATE, DF_FLUSH...)',
  },
  {
    name: 'sev_direct_map_split',
    unit: 'ns',
    value: 10000,
    provenance: 'estimate',
    source: 'estimate: set_memory_4k() of one 2 MiB direct-map page rewrites a PMD into a PTE page and flushes the kernel TLB on every CPU (a few µs of IPIs); no published figure',
    description: 'split the host direct map around a page before its first 4 KiB RMP update (adjust_direct_map)',
  },
];

/** Define the entries a host's cost model does not have yet (a host may include the plugin twice). */
export function define_sev_costs(cost: CostModel): void {
  for (const e of SEV_COST_ENTRIES) if (cost.get(e.name) === undefined) cost.define(e);
}
