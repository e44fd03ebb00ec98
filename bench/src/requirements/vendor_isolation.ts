/**
 * The vendor's isolation promise (issue 7), and the vendor's state against KVM's (issue 10): every
 * page KVM maps at a gfn the guest holds private is, in the vendor's own tracker, that VM's
 * private page at that GPA (TDX: S-EPT MAPPED and PAMT PT_REG of the TD; SNP: RMP assigned to the
 * VM's ASID at the GPA and validated; CCA: a DATA granule of the realm at the IPA, RIPAS RAM;
 * pKVM: guest-owned in the VM's stage-2, host NOPAGE). A mismatch is a page the hardware does not
 * protect for the guest although KVM lets the guest use it as private, or one the guest's own
 * accesses would fault on. Vendors without a tracker (SW_PROTECTED, MKTME) have nothing to judge.
 */
import type { Requirement, RequirementInput } from '../compare/requirements.js';
import { afterStep, hex } from './common.js';

/** Some step left a private page mapped in a VM whose vendor half reports on its tracker. */
function tracked(input: RequirementInput): boolean {
  return input.snapshots.some((s) => s.vms.some((v) => v.owner !== undefined && v.private.size > 0));
}

export const vendorIsolation: Requirement = {
  id: 'vendor-isolation',
  description: "the vendor's tracker holds every private page KVM maps as the VM's own (the isolation the hardware promises)",
  relevant: tracked,
  check(input) {
    for (const s of input.snapshots) {
      for (const v of s.vms) {
        if (v.owner === undefined) continue;
        for (const [gfn, pfn] of v.private) {
          const what = v.owner.get(gfn);
          if (what !== 'guest') return [`${afterStep(s)}: VM ${v.vm} gfn ${hex(gfn)} maps pfn ${hex(pfn)}, which the vendor's tracker holds as: ${what ?? 'nothing'}`];
        }
      }
    }
    return [];
  },
};
