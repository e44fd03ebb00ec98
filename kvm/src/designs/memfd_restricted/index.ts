/**
 * Design "memfd_restricted" (designs.md D7): memfd_restricted() and restrictedmem (the fd-based
 * series v9/v10, Oct/Dec 2022, as continued in googleprodkernel/linux-cc), KVM_MEM_PRIVATE
 * memslots with restricted_fd, and the per-VM KVM_SET_MEMORY_ATTRIBUTES (the base's, which v10
 * introduced). The system call exists only on a host running the design: memfd_restricted()
 * (syscall.ts) is the C library's syscall(__NR_memfd_restricted, flags), -1/ENOSYS elsewhere.
 */
import type { HostRegistrar } from '@cocosim/core';
import { Kernel } from '@cocosim/mm';
import { register_kvm_hooks } from '../../kvm_hooks.js';
import { KVM_SET_USER_MEMORY_REGION } from '../../uapi.js';
import { design_install, type Design } from '../design.js';
import { kvm_vm_ioctl_set_private_memory_region } from '../memfd_seal/kvm.js';
import { RESTRICTED_ABI } from './kvm.js';
import { MEMFD_RESTRICTED_DESIGN } from './syscall.js';
import { KVM_MEM_PRIVATE, __NR_memfd_restricted } from './uapi.js';
import { memfd_restricted_vmm } from './vmm.js';

export { __NR_memfd_restricted } from './uapi.js';
export { restrictedmem } from './restrictedmem.js';
export { memfd_restricted } from './syscall.js';
export { memfd_restricted_vmm } from './vmm.js';

/** Installs the design on a host (after mmRegistrar and kvmRegistrar). */
function memfdRestrictedRegistrar(): HostRegistrar {
  return (root) => {
    const kernel = root.resolve(Kernel);
    design_install(kernel, memfd_restricted_design, {});
    register_kvm_hooks(kernel, {
      name: 'memfd_restricted',
      vm_ioctl: (kvm, cmd, arg, current) => kvm_vm_ioctl_set_private_memory_region(kvm, cmd, arg, current, RESTRICTED_ABI),
    });
  };
}

export const memfd_restricted_design: Design = {
  name: MEMFD_RESTRICTED_DESIGN,
  title: 'memfd_restricted() / restrictedmem, KVM_MEM_PRIVATE with restricted_fd, KVM_SET_MEMORY_ATTRIBUTES (fd-based series v9/v10, Oct-Dec 2022)',
  rows: ['D7'],
  uapi: { __NR_memfd_restricted, KVM_MEM_PRIVATE, KVM_SET_USER_MEMORY_REGION },
  options: {},
  vmm: memfd_restricted_vmm,
  registrar: memfdRestrictedRegistrar,
};
