/**
 * The Arm CCA cost entries (shared/research/vendor-models.md §7). No RME silicon measurements
 * exist in the indexed material (OpenCCA emulates CCA on Armv8.2), so every figure is an estimate
 * taken at the midpoint of the note's range. The RMM's own page clears and copies are charged with
 * the core's page_zero_4k / page_copy_4k, the exits with kvm_exit_roundtrip /
 * kvm_userspace_exit_roundtrip, which x86.ts charges for every REC exit.
 */
import type { CostEntry } from '@cocosim/core';

export const CCA_COSTS: readonly CostEntry[] = [
  {
    name: 'cca_rmi_call',
    unit: 'ns',
    value: 3000,
    provenance: 'estimate',
    source: 'vendor-models.md §7: RMI call (SMC round trip EL2 -> EL3 -> R-EL2) ~1-5 µs, no RME silicon figure; midpoint',
    description: 'one RMI command: the SMC to the RMM and back, with the RMM\'s checks and table walk',
  },
  {
    name: 'cca_gpt_transition',
    unit: 'ns',
    value: 3000,
    provenance: 'estimate',
    source:
      'vendor-models.md §7: GRANULE_DELEGATE/UNDELEGATE ~2-10 µs in all = RMI call + EL3 GPT update + TLBI/cache maintenance; ' +
      'midpoint 6 µs less the cca_rmi_call charged beside it',
    description: 'EL3 moves one granule between the Non-secure and Realm PAS (GPT write, TLBI PAALLOS, cache maintenance)',
  },
  {
    name: 'cca_s2_tlbi',
    unit: 'ns',
    value: 500,
    provenance: 'estimate',
    source: 'estimate: broadcast TLBI IPAS2E1IS + DSB ISH by the RMM after it invalidates a realm RTT entry (inferred, vendor-models.md §8 "TLBI in RMM")',
    description: 'the RMM invalidates one realm stage-2 entry in every PE\'s TLB',
  },
  {
    name: 'cca_measure_4k',
    unit: 'ns',
    value: 2000,
    provenance: 'estimate',
    source: 'estimate: SHA-256 of a 4 KiB granule with the Armv8 crypto extensions at ~2 GB/s, plus the descriptor hash',
    description: 'the RMM hashes one 4 KiB DATA granule into the RIM (RMI_DATA_CREATE with RMI_MEASURE_CONTENT)',
  },
  {
    name: 'cca_rsi_call',
    unit: 'ns',
    value: 1000,
    provenance: 'estimate',
    source: 'estimate: an SMC from the realm (R-EL1) to the RMM (R-EL2) and back, handled without leaving the realm world',
    description: 'one RSI call handled by the RMM (RSI_IPA_STATE_GET, RSI_MEASUREMENT_READ, the completion of RSI_IPA_STATE_SET)',
  },
];
