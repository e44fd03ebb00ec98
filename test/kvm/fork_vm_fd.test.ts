/**
 * fork() of a VMM (kernel/fork.c dup_fd(), virt/kvm/kvm_main.c): the child inherits the VM fd,
 * which is the same struct file and keeps the VM alive after the parent closes its fd, but every
 * VM or vCPU ioctl from the child is -EIO: kvm_vm_ioctl() and kvm_vcpu_ioctl() refuse a caller
 * whose mm is not kvm->mm, and the child's mm is a copy (dup_mm()), not the parent's.
 */
import { describe, expect, test } from 'vitest';
import { Errno, createRootContainer } from '@cocosim/core';
import { Kernel, Process, mmRegistrar, type File } from '@cocosim/mm';
import { KVM_CAP_USER_MEMORY, KVM_CHECK_EXTENSION, KVM_CREATE_VCPU, KVM_CREATE_VM, kvmRegistrar, type Kvm } from '@cocosim/kvm';

function vmm(): { p: Process; vm: number } {
  const p = new Process(createRootContainer({}, mmRegistrar({ nr_pages: 8192 }), kvmRegistrar()).resolve(Kernel));
  const kvm = p.open('/dev/kvm');
  const vm = p.ioctl(kvm, KVM_CREATE_VM, 0);
  expect(vm).toBeGreaterThan(kvm);
  return { p, vm };
}

describe('fork() of a VMM', () => {
  test('the child\'s VM and vCPU ioctls are EIO; the parent\'s still work', () => {
    const { p, vm } = vmm();
    const vcpu = p.ioctl(vm, KVM_CREATE_VCPU, 0);
    expect(vcpu).toBeGreaterThan(vm);
    const c = p.fork() as Process;
    expect(c).toBeInstanceOf(Process);
    expect(c.task.files.lookup(vm)).toBe(p.task.files.lookup(vm));
    expect(c.ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY)).toBe(-1);
    expect(c.errno).toBe(Errno.EIO);
    expect(c.ioctl(vm, KVM_CREATE_VCPU, 1)).toBe(-1);
    expect(c.errno).toBe(Errno.EIO);
    expect(p.ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY)).toBe(1);
  });

  test('the child\'s inherited fd keeps the VM alive after the parent closes its own', () => {
    const { p, vm } = vmm();
    const kvm = (p.task.files.lookup(vm) as File).private_data as Kvm;
    const c = p.fork() as Process;
    expect(p.close(vm)).toBe(0);
    expect(kvm.vm_dead).toBe(false);
    expect(c.close(vm)).toBe(0);
    expect(kvm.vm_dead).toBe(true);
  });
});
