/**
 * The two tiers of kvm_util.h (tools/testing/selftests/kvm/include/kvm_util.h): `__vm_ioctl()`
 * returns what C sees (the result, or -1 with the process's errno), `vm_ioctl()` asserts that it
 * succeeded and fails with the selftests' message:
 *
 *   KVM_SET_USER_MEMORY_REGION2 failed, rc: -1 errno: 22 (EINVAL)
 *
 * The VM-level verbs (vm_create_barebones, vm_set_user_memory_region2, vm_mem_set_private...)
 * are built on these with the KVM package.
 */
import type { Process } from '@cocosim/mm';
import { TEST_ASSERT, __KVM_IOCTL_ERROR } from './test_util.js';

/** What a selftest's `struct kvm_vm` / `struct kvm_vcpu` holds for ioctls: its process and fd. */
export interface KvmFd {
  readonly p: Process;
  readonly fd: number;
}

function ioctl_label(cmd: number, name: string | undefined): string {
  return name ?? `ioctl 0x${cmd.toString(16)}`;
}

/** __kvm_ioctl / __vm_ioctl / __vcpu_ioctl: the raw result. */
export function __vm_ioctl(vm: KvmFd, cmd: number, arg?: unknown): number {
  return vm.p.ioctl(vm.fd, cmd, arg);
}

/** vm_ioctl(vm, cmd, arg): asserts success (ret >= 0) and returns the result. */
export function vm_ioctl(vm: KvmFd, cmd: number, arg?: unknown, name?: string): number {
  const ret = __vm_ioctl(vm, cmd, arg);
  TEST_ASSERT(ret >= 0, __KVM_IOCTL_ERROR(ioctl_label(cmd, name), ret, vm.p.errno));
  return ret;
}

/** TEST_ASSERT that an ioctl failed with `errno` (the selftests' negative one-liners). */
export function vm_ioctl_fails(vm: KvmFd, cmd: number, arg: unknown, errno: number, name?: string): void {
  const ret = __vm_ioctl(vm, cmd, arg);
  TEST_ASSERT(ret === -1 && vm.p.errno === errno,
    `${ioctl_label(cmd, name)} should fail with errno ${errno}, rc: ${ret} errno: ${vm.p.errno}`);
}

export const __kvm_ioctl = __vm_ioctl;
export const kvm_ioctl = vm_ioctl;
export const __vcpu_ioctl = __vm_ioctl;
export const vcpu_ioctl = vm_ioctl;
