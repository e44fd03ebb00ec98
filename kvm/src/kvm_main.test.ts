import { describe, expect, test } from 'vitest';
import { Errno, createRootContainer } from '@cocosim/core';
import { FIOCLEX, Kernel, MAP_SHARED, PROT_READ, Process, mmRegistrar } from '@cocosim/mm';
import { kvmRegistrar } from './kvm.js';
import {
  GUEST_MEMFD_FLAG_INIT_SHARED, GUEST_MEMFD_FLAG_MMAP, KVM_CAP_COALESCED_MMIO, KVM_CAP_GUEST_MEMFD_FLAGS,
  KVM_CAP_MAX_VCPU_ID, KVM_CAP_MEMORY_ATTRIBUTES, KVM_CAP_MULTI_ADDRESS_SPACE, KVM_CAP_NR_MEMSLOTS,
  KVM_CAP_PRE_FAULT_MEMORY, KVM_CAP_USER_MEMORY, KVM_CAP_VM_TYPES, KVM_CHECK_EXTENSION,
  KVM_CREATE_IRQCHIP, KVM_CREATE_VCPU, KVM_CREATE_VM, KVM_ENABLE_CAP, KVM_GET_API_VERSION,
  KVM_GET_NR_MMU_PAGES, KVM_GET_VCPU_MMAP_SIZE, KVM_SET_TSS_ADDR, KVM_X86_DEFAULT_VM,
  KVM_X86_SEV_VM, KVM_X86_SNP_VM, KVM_X86_SW_PROTECTED_VM, KVM_X86_TDX_VM,
} from './uapi.js';

function proc(): Process {
  return new Process(createRootContainer({}, mmRegistrar({ nr_pages: 8192 }), kvmRegistrar()).resolve(Kernel));
}

function openKvm(): { p: Process; kvm: number } {
  const p = proc();
  const kvm = p.open('/dev/kvm');
  expect(kvm).toBe(3);
  return { p, kvm };
}

/* The answers of kvm-caps.kernel.jsonl (Linux 6.18 under PVM), the same on /dev/kvm and a VM. */
const RECORDED_CAPS: readonly [number, number][] = [
  [KVM_CAP_USER_MEMORY, 1], [KVM_CAP_NR_MEMSLOTS, 32764], [KVM_CAP_GUEST_MEMFD_FLAGS, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED],
  [KVM_CAP_VM_TYPES, 1], [KVM_CAP_MEMORY_ATTRIBUTES, 0], [KVM_CAP_PRE_FAULT_MEMORY, 0],
  [KVM_CAP_MULTI_ADDRESS_SPACE, 0], [KVM_CAP_MAX_VCPU_ID, 4096], [KVM_CAP_COALESCED_MMIO, 2],
];

describe('/dev/kvm (virt/kvm/kvm_main.c kvm_dev_ioctl)', () => {
  test('the ioctl numbers are those of <linux/kvm.h>', () => {
    expect([KVM_GET_API_VERSION, KVM_CREATE_VM, KVM_CHECK_EXTENSION, KVM_CREATE_VCPU, KVM_ENABLE_CAP])
      .toEqual([0xae00, 0xae01, 0xae03, 0xae41, 0x4068aea3]);
  });

  test('KVM_GET_API_VERSION is 12 and takes no argument; the vCPU mapping is 3 pages', () => {
    const { p, kvm } = openKvm();
    expect(p.ioctl(kvm, KVM_GET_API_VERSION, 0)).toBe(12);
    expect(p.ioctl(kvm, KVM_GET_API_VERSION, 1)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0)).toBe(12288);
    expect(p.ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 1)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
  });

  test('KVM_CHECK_EXTENSION answers as recorded, on /dev/kvm and on a VM; a non-capability is 0', () => {
    const { p, kvm } = openKvm();
    const vm = p.ioctl(kvm, KVM_CREATE_VM, KVM_X86_DEFAULT_VM);
    expect(vm).toBe(4);
    for (const fd of [kvm, vm]) {
      for (const [cap, want] of RECORDED_CAPS) expect(p.ioctl(fd, KVM_CHECK_EXTENSION, cap), `cap ${cap} on fd ${fd}`).toBe(want);
      for (const bad of [100000, -1, 2 ** 32 + KVM_CAP_USER_MEMORY, 0.5, 'x']) expect(p.ioctl(fd, KVM_CHECK_EXTENSION, bad)).toBe(0);
    }
  });

  test('KVM_CREATE_VM refuses every type but the default with EINVAL, and installs no fd', () => {
    const { p, kvm } = openKvm();
    for (const type of [KVM_X86_SW_PROTECTED_VM, KVM_X86_SEV_VM, KVM_X86_SNP_VM, KVM_X86_TDX_VM, -1, 64, 2 ** 32, 1n << 70n, 'x']) {
      expect(p.ioctl(kvm, KVM_CREATE_VM, type), String(type)).toBe(-1);
      expect(p.errno).toBe(Errno.EINVAL);
    }
    expect(p.ioctl(kvm, KVM_CREATE_VM, 0)).toBe(4);
  });

  test('KVM_CREATE_VM reserves the fd first: EMFILE comes before a bad type', () => {
    const { p, kvm } = openKvm();
    p.task.files.rlimit_nofile = 4;
    expect(p.ioctl(kvm, KVM_CREATE_VM, KVM_X86_SEV_VM)).toBe(-1);
    expect(p.errno).toBe(Errno.EMFILE);
  });

  test('unknown requests: EINVAL on /dev/kvm (x86 kvm_arch_dev_ioctl), ENOTTY on a VM', () => {
    const { p, kvm } = openKvm();
    const vm = p.ioctl(kvm, KVM_CREATE_VM, 0);
    for (const [fd, req, errno] of [
      [kvm, 0xaeff, Errno.EINVAL], [kvm, KVM_CREATE_VCPU, Errno.EINVAL], [vm, 0xaeff, Errno.ENOTTY],
      [vm, KVM_CREATE_VM, Errno.ENOTTY], [vm, KVM_GET_API_VERSION, Errno.ENOTTY], [vm, KVM_GET_NR_MMU_PAGES, Errno.ENOTTY],
    ] as const) {
      expect(p.ioctl(fd, req, 0)).toBe(-1);
      expect(p.errno).toBe(errno);
    }
    expect(p.ioctl(kvm, FIOCLEX, 0)).toBe(0);
  });
});

describe('VM ioctls (kvm_vm_ioctl, x86 kvm_arch_vm_ioctl)', () => {
  test('vCPU ids: unique, below KVM_MAX_VCPU_IDS as an unsigned long; vCPU files map', () => {
    const { p, kvm } = openKvm();
    const vm = p.ioctl(kvm, KVM_CREATE_VM, 0);
    const vcpu = p.ioctl(vm, KVM_CREATE_VCPU, 0);
    expect(vcpu).toBe(5);
    expect(p.ioctl(vm, KVM_CREATE_VCPU, 0)).toBe(-1);
    expect(p.errno).toBe(Errno.EEXIST);
    expect(p.ioctl(vm, KVM_CREATE_VCPU, 4095)).toBe(6);
    for (const id of [4096, -1, 2 ** 32 + 1]) {
      expect(p.ioctl(vm, KVM_CREATE_VCPU, id)).toBe(-1);
      expect(p.errno).toBe(Errno.EINVAL);
    }
    const run = p.mmap(0, 4096, PROT_READ, MAP_SHARED, vcpu, 0);
    expect(p.munmap(run, 4096)).toBe(0);
  });

  test('KVM_CREATE_IRQCHIP: once (EEXIST), and EINVAL once the VM has had vCPUs', () => {
    const { p, kvm } = openKvm();
    const vm = p.ioctl(kvm, KVM_CREATE_VM, 0);
    expect(p.close(p.ioctl(vm, KVM_CREATE_VCPU, 0))).toBe(0);
    expect(p.ioctl(vm, KVM_CREATE_IRQCHIP, 0)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    const vm2 = p.ioctl(kvm, KVM_CREATE_VM, 0);
    expect(p.ioctl(vm2, KVM_CREATE_IRQCHIP, 0)).toBe(0);
    expect(p.ioctl(vm2, KVM_CREATE_IRQCHIP, 0)).toBe(-1);
    expect(p.errno).toBe(Errno.EEXIST);
  });

  test('KVM_ENABLE_CAP refuses what this host cannot enable; KVM_SET_TSS_ADDR wants the TSS below 4 GiB', () => {
    const { p, kvm } = openKvm();
    const vm = p.ioctl(kvm, KVM_CREATE_VM, 0);
    expect(p.ioctl(vm, KVM_ENABLE_CAP, { cap: 100000 })).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000)).toBe(0);
    expect(p.ioctl(vm, KVM_SET_TSS_ADDR, 0xffffe000)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
  });
});
