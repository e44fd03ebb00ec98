/**
 * Design "fd_rfc" (designs.md D4): Sean Christopherson's "[RFC] KVM: mm: fd-based approach for
 * supporting KVM guest private memory" (23 Aug 2021, 20210824005248.200037-1-seanjc@google.com),
 * in the shape Chao Peng's RFC v1 coded it (11 Nov 2021, 20211111141352.26311-1-chao.p.peng@linux.intel.com)
 * with Kirill A. Shutemov's F_SEAL_GUEST store: private memory is a third KVM address space of
 * memslots, each backed by an fd that has no mmap, read or write (shmem.ts); KVM gets pfns from
 * the store's callbacks and the store tells KVM when pages go (kvm_main.ts); conversion is
 * memslot surgery by the VMM (vmm.ts).
 */
import type { HostRegistrar } from '@cocosim/core';
import { Kernel, register_mm_hooks, type File, type MmHooks } from '@cocosim/mm';
import { register_kvm_hooks } from '../../kvm_hooks.js';
import { KVM_CAP_MULTI_ADDRESS_SPACE } from '../../uapi.js';
import { design_install, type Design } from '../design.js';
import { fd_rfc_kvm_hooks, kvm_memfd_register_store } from './kvm_main.js';
import { shmem_guest_hooks } from './shmem.js';
import {
  F_SEAL_GUEST, F_SEAL_GUEST_POSTED, KVM_ADDRESS_SPACE_NUM, KVM_PRIVATE_ADDRESS_SPACE, KVM_SET_USER_MEMORY_REGION_RFC,
} from './uapi.js';
import { fd_rfc_vmm } from './vmm.js';

export * from './uapi.js';
export { fd_rfc_vmm, fd_rfc_vmm_state, type FdRfcVmmState } from './vmm.js';
export { kvm_nr_memslots, kvm_private_memslots, memslot_is_private } from './kvm_main.js';

/** The mm hooks: F_SEAL_GUEST, whose seal makes the file a store KVM may pair with. */
function fd_rfc_mm_hooks(): MmHooks {
  const hooks = shmem_guest_hooks('fd_rfc');
  return {
    ...hooks,
    memfd_add_seals(file: File, seals: number): number {
      const r = hooks.memfd_add_seals!(file, seals);
      if (r === 0 && seals & F_SEAL_GUEST) kvm_memfd_register_store(file.f_inode);
      return r;
    },
  };
}

export const fd_rfc: Design = {
  name: 'fd_rfc',
  title: 'Sean Christopherson\'s fd-based RFC: private memslots in their own address space, backed by an F_SEAL_GUEST memfd (Aug-Nov 2021)',
  rows: ['D4'],
  uapi: {
    KVM_PRIVATE_ADDRESS_SPACE,
    KVM_ADDRESS_SPACE_NUM,
    KVM_SET_USER_MEMORY_REGION_RFC,
    KVM_CAP_MULTI_ADDRESS_SPACE,
    F_SEAL_GUEST,
    F_SEAL_GUEST_POSTED,
  },
  options: {},
  vmm: fd_rfc_vmm,
  registrar: (): HostRegistrar => (root) => {
    const kernel = root.resolve(Kernel);
    design_install(kernel, fd_rfc, {});
    register_mm_hooks(kernel, fd_rfc_mm_hooks());
    register_kvm_hooks(kernel, fd_rfc_kvm_hooks);
  },
};
