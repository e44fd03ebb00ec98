/**
 * Memslots (virt/kvm/kvm_main.c): KVM_SET_USER_MEMORY_REGION(2). PLACEHOLDER: helper H1 owns this file.
 */
import { Errno } from '@cocosim/core';
import type { Kvm } from './kvm_host.js';

/** kvm_vm_ioctl_set_memory_region() and the KVM_SET_USER_MEMORY_REGION(2) cases of kvm_vm_ioctl(). */
export function kvm_vm_ioctl_set_memory_region(_kvm: Kvm, _v2: boolean, _arg: unknown): number {
  return -Errno.ENOTTY;
}

/** kvm_free_memslots(): the VM is destroyed; guest_memfd bindings are undone. */
export function kvm_free_memslots(_kvm: Kvm): void {}
