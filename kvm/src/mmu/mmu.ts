/**
 * The x86 MMU (arch/x86/kvm/mmu/mmu.c). PLACEHOLDER: helper H3 owns this file.
 */
import { Errno } from '@cocosim/core';
import type { Kvm, KvmVcpu } from '../kvm_host.js';

/** kvm_mmu_init_vm(). */
export function kvm_mmu_init_vm(_kvm: Kvm): void {}
/** kvm_mmu_uninit_vm(). */
export function kvm_mmu_uninit_vm(_kvm: Kvm): void {}
/** kvm_init_mmu_notifier(): subscribe to kvm->mm. */
export function kvm_mmu_notifier_register(_kvm: Kvm): void {}
/** mmu_notifier_unregister() of kvm_destroy_vm(). */
export function kvm_mmu_notifier_unregister(_kvm: Kvm): void {}
/** kvm_vcpu_pre_fault_memory(): KVM_PRE_FAULT_MEMORY. */
export function kvm_vcpu_pre_fault_memory(_vcpu: KvmVcpu, _arg: unknown): number {
  return -Errno.EINVAL;
}
