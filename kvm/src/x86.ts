/**
 * x86 vCPUs (arch/x86/kvm/x86.c). PLACEHOLDER: helper H4 owns this file.
 */
import { Errno } from '@cocosim/core';
import type { KvmVcpu } from './kvm_host.js';

/** kvm_arch_vcpu_create(). */
export function kvm_arch_vcpu_create(vcpu: KvmVcpu): number {
  return vcpu.kvm.x86_ops.vcpu_create(vcpu);
}

/** kvm_arch_vcpu_ioctl_run(): KVM_RUN. */
export function kvm_arch_vcpu_ioctl_run(_vcpu: KvmVcpu): number {
  return -Errno.EINVAL;
}
