/**
 * KVM's contribution to a simulated host (kvm_init -> misc_register(&kvm_dev)): /dev/kvm,
 * loaded with a vendor's kvm_x86_ops (kvm_x86_vendor_init).
 */
import type { HostRegistrar } from '@cocosim/core';
import { Kernel, register_mm_hooks } from '@cocosim/mm';
import { KvmModule, kvm_dev_open } from './kvm_main.js';
import { kvm_debug_register } from './kvm_debug.js';
import { kvm_host_access_hooks } from './kvm_host_access.js';
import { kvm_x86_ops_merge, type KvmX86Ops } from './kvm_x86_ops.js';
import { KVM_X86_SW_PROTECTED_VM } from './uapi.js';

/**
 * The host of ARCHITECTURE.md's kernel oracle, vendor "none": only KVM_X86_DEFAULT_VM, and
 * shadow paging (KVM under PVM), so no KVM_PRE_FAULT_MEMORY.
 */
export const kvm_none_x86_ops: KvmX86Ops = {
  name: 'none',
  supported_vm_types: 0,
  tdp_enabled: false,
};

/**
 * VMX or SVM with a TDP MMU and CONFIG_KVM_SW_PROTECTED_VM: KVM_X86_SW_PROTECTED_VM, the
 * development VM type whose private memory is guest_memfd with no hardware protection (memory
 * attributes are the source of truth of a fault's privacy: kvm_x86_ops.ts's default).
 */
export const kvm_sw_protected_x86_ops: KvmX86Ops = {
  name: 'sw_protected',
  supported_vm_types: 1 << KVM_X86_SW_PROTECTED_VM,
  tdp_enabled: true,
};

export interface KvmHostOptions {
  /** The vendor table (default: kvm_none_x86_ops, this machine's host). */
  readonly x86_ops?: KvmX86Ops;
  /** CONFIG_KVM_GUEST_MEMFD (default true); false for a kernel built without it (KvmModule). */
  readonly guest_memfd?: boolean;
}

/** Registers /dev/kvm on the host's Kernel; goes after mmRegistrar, which provides the Kernel. */
export function kvmRegistrar(opts: KvmHostOptions = {}): HostRegistrar {
  return (root) => {
    const kernel = root.resolve(Kernel);
    const module = new KvmModule(kernel, kvm_x86_ops_merge(opts.x86_ops ?? kvm_none_x86_ops), opts.guest_memfd ?? true);
    root.registerInstance(KvmModule, module);
    kvm_debug_register(module);
    kernel.register_device('/dev/kvm', (_k, flags) => kvm_dev_open(module, flags));
    // The vendor decides what host accesses to its VMs' guest_memfd pages do (mm's host_access).
    if (opts.x86_ops?.host_access !== undefined) register_mm_hooks(kernel, kvm_host_access_hooks);
  };
}
