/**
 * Design "per_vma" (designs.md D2, "Alternative proposed in review: David Hildenbrand's per-VMA
 * scheme", 2021-04-07, 5e934d94-414c-90de-c58e-34456e4ab1cf@redhat.com): instead of poisoning
 * pages, guest memory is protected "on a per-VMA level". The VMM maps it PROT_READ; a KVM ioctl
 * switches protection on, after which the VMAs carry VM_DENYUSERWRITE: mprotect(PROT_WRITE) is
 * refused, a user write is SIGSEGV, GUP writes need the new FOLL flag, which only KVM passes;
 * user reads are still allowed (the scheme protects TDX's integrity, not confidentiality). The
 * VMM writes shared pages through a KVM ioctl ("bounce all writes to shared pages through the
 * kernel"). Kirill's answer (2021-04-09, 20210409133347.r2uf3u5g55pp27xn@box): "per-VMA would not
 * fly for file-backed (e.g. tmpfs) memory", and bouncing is a "double bounce buffer".
 *
 * Patches to the base, through hooks: mprotect (mprotect_fixup), GUP (gup_check), KVM's GUP
 * flags on the hva path (hva_gup_flags), the VM ioctls (vm_ioctl). Like D2 it predates
 * guest_memfd: KVM's MMU sees every gfn as shared (mem_is_private 0) and faults through the hva.
 */
import type { HostRegistrar } from '@cocosim/core';
import { Kernel, register_mm_hooks } from '@cocosim/mm';
import { register_kvm_hooks } from '../../kvm_hooks.js';
import { design_install, type Design } from '../design.js';
import { gup_check_denyuserwrite } from './gup.js';
import { kvm_per_vma_gup_flags, kvm_per_vma_vm_ioctl } from './kvm_main.js';
import { mprotect_denyuserwrite } from './mprotect.js';
import { FOLL_DENYUSERWRITE, KVM_PROTECT_MEMORY, KVM_WRITE_GUEST, VM_DENYUSERWRITE } from './uapi.js';
import { per_vma_vmm } from './vmm.js';

export * from './uapi.js';
export { kvm_mem_protected as per_vma_protected, type KvmWriteGuest } from './kvm_main.js';
export { per_vma_hva, per_vma_vmm, per_vma_write_guest } from './vmm.js';

function perVmaRegistrar(): HostRegistrar {
  return (root) => {
    const kernel = root.resolve(Kernel);
    design_install(kernel, per_vma, {});
    register_kvm_hooks(kernel, {
      name: 'per_vma',
      mem_is_private: () => 0,
      vm_ioctl: kvm_per_vma_vm_ioctl,
      hva_gup_flags: kvm_per_vma_gup_flags,
    });
    register_mm_hooks(kernel, {
      name: 'per_vma',
      foll_flags: FOLL_DENYUSERWRITE,
      mprotect_fixup: mprotect_denyuserwrite,
      gup_check: gup_check_denyuserwrite,
    });
  };
}

export const per_vma: Design = {
  name: 'per_vma',
  title: 'per-VMA write denial: mprotect(PROT_READ) + VM_DENYUSERWRITE, writes bounced through KVM (David Hildenbrand, review of D2, Apr 2021)',
  rows: ['D2'],
  uapi: { KVM_PROTECT_MEMORY, KVM_WRITE_GUEST, FOLL_DENYUSERWRITE, VM_DENYUSERWRITE },
  options: {},
  vmm: per_vma_vmm,
  registrar: perVmaRegistrar,
};
