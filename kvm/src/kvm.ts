/**
 * KVM's contribution to a simulated host (kvm_init -> misc_register(&kvm_dev)): /dev/kvm.
 */
import type { HostRegistrar } from '@cocosim/core';
import { Kernel } from '@cocosim/mm';
import { kvm_dev_open } from './kvm_main.js';

/** Registers /dev/kvm on the host's Kernel; goes after mmRegistrar, which provides the Kernel. */
export function kvmRegistrar(): HostRegistrar {
  return (root) => {
    root.resolve(Kernel).register_device('/dev/kvm', kvm_dev_open);
  };
}
