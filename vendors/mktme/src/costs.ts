/**
 * The MKTME cost entries (cocosim's cost model, core/src/cost.ts), from
 * shared/research/vendor-models.md §4 and §7. No PCONFIG latency has been published (§10 lists no
 * MKTME figure at all): both entries are estimates whose source gives the reasoning. Generic
 * entries the MKTME paths also charge are core's: clflush_4k (prep/free_encrypted_page),
 * page_zero_4k (zeroing through the new KeyID), wbinvd (cache eviction), tlb_shootdown_ipi
 * (encrypt_mprotect's zap). AES-XTS itself is inline in the memory controller and is not charged
 * per access (TME's bandwidth cost is a few percent, folded into the generic memory entries).
 */
import type { CostEntry, CostModel } from '@cocosim/core';

const NOTE = 'shared/research/vendor-models.md §4.1, §7';

export const MKTME_COST_ENTRIES: readonly CostEntry[] = [
  {
    name: 'mktme_pconfig',
    unit: 'ns',
    value: 5000,
    provenance: 'estimate',
    source:
      `estimate: PCONFIG is serializing and programs the key table of every memory controller on the package ("the same keys are available to all cores, DMA engines", ${NOTE}); ` +
      'taken as a few SEAMCALL-class round trips (0.5-2 µs each, §7) plus the controllers\' acknowledgement: 2-10 µs, midpoint 5 µs; no published figure',
    description: 'one PCONFIG(MKTME_KEY_PROGRAM) with SET_KEY_DIRECT, CLEAR_KEY or NO_ENCRYPT on one package',
  },
  {
    name: 'mktme_pconfig_random',
    unit: 'ns',
    value: 6000,
    provenance: 'estimate',
    source:
      'estimate: mktme_pconfig (5 µs) plus drawing two 128-bit keys from the on-die DRNG and mixing the software entropy of key_field_1/2 (~0.5-1.5 µs, RDRAND-class latency); no published figure',
    description: 'one PCONFIG(MKTME_KEY_PROGRAM) with SET_KEY_RANDOM (the CPU generates the data and tweak keys)',
  },
];

/** Define the MKTME entries in `cost` (once per host: mktmeRegistrar()). */
export function mktme_define_costs(cost: CostModel): void {
  for (const e of MKTME_COST_ENTRIES) if (cost.get(e.name) === undefined) cost.define(e);
}
