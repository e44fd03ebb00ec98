/**
 * The pKVM cost entries (shared/research/vendor-models.md §7). No measured figures for pKVM's
 * hypercalls are in the indexed material: estimates at the note's midpoints. hyp_poison_page()'s
 * clear is charged with the core's page_zero_4k, pvmfw's copy with page_copy_4k.
 */
import type { CostEntry } from '@cocosim/core';

export const PKVM_COSTS: readonly CostEntry[] = [
  {
    name: 'pkvm_hvc',
    unit: 'ns',
    value: 2000,
    provenance: 'estimate',
    source: 'vendor-models.md §7: pKVM share/unshare hypercall = HVC + stage-2 walk ~1-3 µs; midpoint',
    description: 'one hypercall into the pKVM hypervisor at EL2 (host: kvm_call_hyp_nvhe(); guest: HVC), with its page-state checks',
  },
  {
    name: 'pkvm_stage2_update',
    unit: 'ns',
    value: 500,
    provenance: 'estimate',
    source: 'estimate: one stage-2 PTE write (an annotated invalid PTE or an identity map) and its TLBI IPAS2E1IS + DSB',
    description: 'the hypervisor changes one page in the host\'s or a guest\'s stage-2 table and invalidates the TLBs',
  },
  {
    name: 'pkvm_cmo_poc_4k',
    unit: 'ns',
    value: 640,
    provenance: 'estimate',
    source: 'estimate: kvm_flush_dcache_to_poc() of 4 KiB = 64 DC CIVAC of ~10 ns each (vendor-models.md §8 "CMO to PoC on reclaim")',
    description: 'clean and invalidate one 4 KiB page to the point of coherency (hyp_poison_page(), before the host gets a guest page back)',
  },
];
