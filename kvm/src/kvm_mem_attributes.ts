/**
 * Memory attributes (virt/kvm/kvm_main.c, CONFIG_KVM_GENERIC_MEMORY_ATTRIBUTES). PLACEHOLDER: helper H1 owns this file.
 */
import { Errno } from '@cocosim/core';
import { kvm_arch_has_private_mem, type Kvm } from './kvm_host.js';
import { KVM_MEMORY_ATTRIBUTE_PRIVATE } from './uapi.js';

/** kvm_supported_mem_attributes(): PRIVATE on /dev/kvm and on VMs with private memory. */
export function kvm_supported_mem_attributes(kvm: Kvm | undefined): number {
  if (kvm === undefined || kvm_arch_has_private_mem(kvm)) return KVM_MEMORY_ATTRIBUTE_PRIVATE;
  return 0;
}

/** kvm_vm_ioctl_set_mem_attributes(). */
export function kvm_vm_ioctl_set_mem_attributes(_kvm: Kvm, _arg: unknown): number {
  return -Errno.ENOTTY;
}
