/**
 * The vendor half of a D12 VM: on an MKTME host the VM is a KVM_X86_DEFAULT_VM (MKTME has no
 * confidential VM type: vendors/mktme's mktme_x86_ops offers none) whose memory the VMM encrypted
 * with its own key. KVM maps each guest page with the page's KeyID ("kvm, x86, mmu: setup MKTME
 * keyID to spte for given PFN", Kai Huang, in the RFC series), which the vendor's
 * guest_mem_access models, so the guest reads its memory in plaintext. There is no launch flow
 * and no conversion: nothing is private to the guest as opposed to the VMM ("MKTME does not
 * mitigate vulnerable or malicious operating systems or virtual machine managers"), and with the
 * RFC's "iommu/vt-d: Support MKTME in DMA remapping" devices reach a page through its KeyID too.
 * Every page already is what either kind of request asks for: private in the sense of encrypted
 * with the VM's key, shared in the sense of readable by the VMM and its devices. So the guest has
 * nothing to ask, and a conversion succeeds at once without an exit (cocosim's reading: no guest
 * side for MKTME VMs was posted).
 */
import type { CvmVendor } from '../../cvm.js';
import { map_gpa_range_exit } from '../../cvm.js';
import type { GuestCode } from '../../guest.js';
import { KVM_X86_DEFAULT_VM } from './uapi.js';

/** The guest's conversion of a page of MKTME-encrypted memory: nothing to do, 0. */
// Guest code is a generator even when it executes no instruction.
// eslint-disable-next-line require-yield
function* mktme_guest_convert(): GuestCode<bigint> {
  return 0n;
}

export const mktme_cvm: CvmVendor = {
  name: 'mktme',
  vm_type: KVM_X86_DEFAULT_VM,
  shared_gpa: (_vm, gpa) => gpa,
  vm_init: () => 0,
  vcpu_init: () => 0,
  guest_convert: mktme_guest_convert,
  conversion_exit: (_vm, run) => map_gpa_range_exit(run),
  complete_conversion(_vm, run, ok) {
    run.hypercall.ret = ok ? 0n : 1n;
  },
};
