/**
 * Design "kvm_protected" (designs.md D1): "KVM protected memory extension", Kirill A. Shutemov,
 * RFC of 22 May 2020 (https://lore.kernel.org/all/20200522125214.31348-1-kirill.shutemov@linux.intel.com/)
 * and RFCv2 of 20 Oct 2020 on v5.9
 * (https://lore.kernel.org/all/20201020061859.18385-1-kirill.shutemov@linux.intel.com/).
 *
 * The guest enables protection with a hypercall KVM handles (x86.ts); KVM sets VM_KVM_PROTECTED
 * on the memslots' VMAs with mprotect_fixup() (kvm_main.ts), whose vm_page_prot is PAGE_NONE
 * (mmap.ts): user loads and stores get SIGBUS, and so does any fault on them (memory.ts); GUP
 * fails with -EFAULT unless FOLL_KVM, which KVM's own GUP passes (gup.ts); anonymous pages
 * faulted into a protected VMA leave the kernel direct map (mem_protected.ts). The guest shares
 * and unshares ranges with two more hypercalls.
 *
 * The design predates guest_memfd: on the 6.18 base, KVM must fault every gfn through the
 * memslot's hva, so the registrar answers kvm_mem_is_private() with 0.
 */
import type { HostRegistrar } from '@cocosim/core';
import { Kernel, register_mm_hooks } from '@cocosim/mm';
import { register_kvm_hooks } from '../../kvm_hooks.js';
import { design_install, type Design } from '../design.js';
import { follow_page_protected } from './gup.js';
import { kvm_set_memory_region_protected } from './kvm_main.js';
import { kvm_protected_define_costs, kvm_protected_host_access } from './mem_protected.js';
import { handle_mm_fault_protected } from './memory.js';
import { vm_get_page_prot_protected } from './mmap.js';
import { FOLL_KVM, KVM_HC_ENABLE_MEM_PROTECTED, KVM_HC_MEM_SHARE, KVM_HC_MEM_UNSHARE, VM_KVM_PROTECTED } from './uapi.js';
import { kvm_protected_vmm } from './vmm.js';
import { kvm_emulate_hypercall_protected } from './x86.js';

export * from './uapi.js';
export { kvm_mem_protected, kvm_protect_all_memory, kvm_protect_memory, protect_memory } from './kvm_main.js';
export { kvm_page_unmapped, CPA_DIRECT_MAP_4K } from './mem_protected.js';
export * from './vmm.js';

/** Installs the design on a host (after mmRegistrar and kvmRegistrar). */
function kvmProtectedRegistrar(): HostRegistrar {
  return (root) => {
    const kernel = root.resolve(Kernel);
    design_install(kernel, kvm_protected, {});
    kvm_protected_define_costs(kernel);
    register_mm_hooks(kernel, {
      name: 'kvm_protected',
      foll_flags: FOLL_KVM,
      vm_page_prot: vm_get_page_prot_protected,
      handle_mm_fault: handle_mm_fault_protected,
      gup_check: follow_page_protected,
      host_access: kvm_protected_host_access,
    });
    register_kvm_hooks(kernel, {
      name: 'kvm_protected',
      // Every gfn faults through the hva, as before guest_memfd.
      mem_is_private: () => 0,
      // hva_to_pfn_slow(): "unsigned int flags = FOLL_HWPOISON | FOLL_KVM;"
      hva_gup_flags: () => FOLL_KVM,
      emulate_hypercall: kvm_emulate_hypercall_protected,
      vm_ioctl: kvm_set_memory_region_protected,
    });
  };
}

export const kvm_protected: Design = {
  name: 'kvm_protected',
  title: 'KVM protected memory extension: VM_KVM_PROTECTED + PROT_NONE + FOLL_KVM, hypercalls in KVM (Kirill A. Shutemov, May/Oct 2020)',
  rows: ['D1'],
  uapi: { KVM_HC_ENABLE_MEM_PROTECTED, KVM_HC_MEM_SHARE, KVM_HC_MEM_UNSHARE, FOLL_KVM, VM_KVM_PROTECTED },
  options: {},
  vmm: kvm_protected_vmm,
  registrar: kvmProtectedRegistrar,
};
