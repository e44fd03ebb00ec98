/**
 * Design "hwpoison" (designs.md D2): "TDX and guest memory unmapping", Kirill A. Shutemov,
 * RFCv1 2021-04-02 (20210402152645.26680-1-kirill.shutemov@linux.intel.com) and RFCv2
 * 2021-04-16 (20210416154106.23721-1-kirill.shutemov@linux.intel.com). Guest memory stays in the
 * VMM's anonymous or shmem mapping; after the guest's KVM_HC_ENABLE_MEM_PROTECTED, KVM poisons
 * each page at the guest's first fault on it (PG_hwpoison + SWP_HWPOISON entries: host user
 * access SIGBUS, GUP -EFAULT, shmem read/write -EIO), reaches it itself with
 * FOLL_ALLOW_POISONED, and clears the poison of the pages the guest shares (KVM_HC_MEM_SHARE).
 *
 * Patches to the base, through hooks: KVM's hypercalls (emulate_hypercall), hva_to_pfn_slow()'s
 * flags and the owner check + kvm_protect_pfn() (hva_gup_flags, hva_faultin_pfn), the unpoison
 * at VM teardown (vm_destroy), GUP's follow_page_pte() (gup_follow_nonpresent), do_swap_page()'s
 * remap of an unpoisoned page (handle_mm_fault). The design predates guest_memfd: every gfn is
 * shared to KVM's MMU (mem_is_private 0), so KVM faults all guest memory through the hva.
 */
import type { HostRegistrar } from '@cocosim/core';
import { Kernel, register_mm_hooks } from '@cocosim/mm';
import { register_kvm_hooks } from '../../kvm_hooks.js';
import { design_install, type Design } from '../design.js';
import { follow_page_pte_allow_poisoned } from './gup.js';
import { hwpoison_host, kvm_hva_gup_flags, kvm_hwpoison_faultin_pfn, kvm_hwpoison_vm_destroy } from './kvm_main.js';
import { do_swap_page_unpoisoned } from './memory.js';
import { FOLL_ALLOW_POISONED, KVM_HC_ENABLE_MEM_PROTECTED, KVM_HC_MEM_SHARE, KVM_NR_SHARED_RANGES } from './uapi.js';
import { hwpoison_vmm } from './vmm.js';
import { kvm_hwpoison_emulate_hypercall } from './x86.js';

export * from './uapi.js';
export { add_range, add_range_with_merge, type Range } from './range.js';
export {
  hwpoison_host, kvm_mem_protected, kvm_page_allowed, kvm_protect_pfn, kvm_share_pfn, type HwpoisonHost, type KvmMemProtected,
} from './kvm_main.js';
export { kvm_protect_memory, kvm_share_memory } from './x86.js';
export { hwpoison_vmm, hwpoison_vmm_state, type HwpoisonVmmState } from './vmm.js';

/** Installs the design on a host (after mmRegistrar and kvmRegistrar). */
function hwpoisonRegistrar(): HostRegistrar {
  return (root) => {
    const kernel = root.resolve(Kernel);
    design_install(kernel, hwpoison, {});
    hwpoison_host(kernel);
    register_kvm_hooks(kernel, {
      name: 'hwpoison',
      mem_is_private: () => 0,
      emulate_hypercall: (vcpu, nr, a0, a1) => kvm_hwpoison_emulate_hypercall(vcpu, nr, a0, a1),
      hva_gup_flags: (kvm) => kvm_hva_gup_flags(kvm),
      hva_faultin_pfn: (kvm, gfn, pfn) => kvm_hwpoison_faultin_pfn(kvm, gfn, pfn),
      vm_destroy: (kvm) => kvm_hwpoison_vm_destroy(kvm),
    });
    register_mm_hooks(kernel, {
      name: 'D2',
      foll_flags: FOLL_ALLOW_POISONED,
      gup_follow_nonpresent: follow_page_pte_allow_poisoned,
      handle_mm_fault: do_swap_page_unpoisoned,
    });
  };
}

export const hwpoison: Design = {
  name: 'hwpoison',
  title: 'TDX and guest memory unmapping: PG_hwpoison + SWP_HWPOISON, KVM_HC_MEM_SHARE (Kirill Shutemov, RFCv1/v2 Apr 2021)',
  rows: ['D2'],
  uapi: { KVM_HC_ENABLE_MEM_PROTECTED, KVM_HC_MEM_SHARE, FOLL_ALLOW_POISONED, KVM_NR_SHARED_RANGES },
  options: {},
  vmm: hwpoison_vmm,
  registrar: hwpoisonRegistrar,
};
