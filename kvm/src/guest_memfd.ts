/**
 * guest_memfd (virt/kvm/guest_memfd.c). PLACEHOLDER: helper H2 owns this file.
 */
import { Errno } from '@cocosim/core';
import type { FileOwner } from '@cocosim/mm';
import { kvm_arch_has_private_mem, type Kvm } from './kvm_host.js';
import { GUEST_MEMFD_FLAG_INIT_SHARED, GUEST_MEMFD_FLAG_MMAP } from './uapi.js';

/**
 * kvm_gmem_get_supported_flags(): MMAP always; INIT_SHARED on /dev/kvm and where
 * kvm_arch_supports_gmem_init_shared() (x86: VMs without private memory).
 */
export function kvm_gmem_get_supported_flags(kvm: Kvm | undefined): number {
  let flags = GUEST_MEMFD_FLAG_MMAP;
  if (kvm === undefined || !kvm_arch_has_private_mem(kvm)) flags |= GUEST_MEMFD_FLAG_INIT_SHARED;
  return flags;
}

/** kvm_gmem_create(): KVM_CREATE_GUEST_MEMFD. */
export function kvm_gmem_create(_kvm: Kvm, _arg: unknown, _current: FileOwner): number {
  return -Errno.ENOTTY;
}
