import { describe, expect, test } from 'vitest';
import { Errno, createRootContainer } from '@cocosim/core';
import { FD_CLOEXEC, FIOCLEX, F_GETFD, F_GETFL, Kernel, MAP_SHARED, O_RDWR, PROT_READ, Process, mmRegistrar, type File } from '@cocosim/mm';
import type { Kvm } from './kvm_host.js';
import { kvmRegistrar, kvm_sw_protected_x86_ops } from './kvm.js';
import {
  GUEST_MEMFD_FLAG_INIT_SHARED, GUEST_MEMFD_FLAG_MMAP, KVM_CAP_COALESCED_MMIO, KVM_CAP_GUEST_MEMFD_FLAGS,
  KVM_CAP_MAX_VCPU_ID, KVM_CAP_MEMORY_ATTRIBUTES, KVM_CAP_MULTI_ADDRESS_SPACE, KVM_CAP_NR_MEMSLOTS,
  KVM_CAP_PRE_FAULT_MEMORY, KVM_CAP_USER_MEMORY, KVM_CAP_VM_TYPES, KVM_CHECK_EXTENSION,
  KVM_CREATE_IRQCHIP, KVM_CREATE_VCPU, KVM_CREATE_VM, KVM_ENABLE_CAP, KVM_GET_API_VERSION,
  KVM_GET_NR_MMU_PAGES, KVM_GET_VCPU_MMAP_SIZE, KVM_SET_TSS_ADDR, KVM_X86_DEFAULT_VM,
  KVM_X86_SEV_VM, KVM_X86_SNP_VM, KVM_X86_SW_PROTECTED_VM, KVM_X86_TDX_VM, KVM_CAP_EXIT_HYPERCALL,
  KVM_HC_MAP_GPA_RANGE, KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_SET_MEMORY_ATTRIBUTES, KVM_CAP_HALT_POLL, KVM_CAP_ENABLE_CAP_VM,
  KVM_CAP_NR_VCPUS,
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

  test('VM and vCPU fds are close-on-exec, their files O_RDWR alone (__anon_inode_getfile(): Linux 6.18.44)', () => {
    const { p, kvm } = openKvm();
    const vm = p.ioctl(kvm, KVM_CREATE_VM, 0);
    const vcpu = p.ioctl(vm, KVM_CREATE_VCPU, 0);
    for (const fd of [vm, vcpu]) {
      expect(p.fcntl(fd, F_GETFD)).toBe(FD_CLOEXEC);
      expect(p.fcntl(fd, F_GETFL)).toBe(O_RDWR);
    }
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

  test('generic capabilities (kvm-enable-cap-generic.kernel.jsonl): HALT_POLL takes an unsigned int, cap and flags are __u32', () => {
    const { p, kvm } = openKvm();
    const vm = p.ioctl(kvm, KVM_CREATE_VM, 0);
    const k = p.task.files.lookup(vm)!.private_data as Kvm;
    for (const cap of [KVM_CAP_HALT_POLL, KVM_CAP_ENABLE_CAP_VM]) expect(p.ioctl(vm, KVM_CHECK_EXTENSION, cap)).toBe(1);
    expect(p.ioctl(vm, KVM_ENABLE_CAP, { cap: KVM_CAP_HALT_POLL, args: [1000] })).toBe(0);
    expect(k.max_halt_poll_ns).toBe(1000);
    for (const arg of [{ args: [2 ** 32] }, { flags: 1, args: [0] }]) {
      expect(p.ioctl(vm, KVM_ENABLE_CAP, { cap: KVM_CAP_HALT_POLL, ...arg })).toBe(-1);
      expect(p.errno).toBe(Errno.EINVAL);
    }
    expect(k.max_halt_poll_ns).toBe(1000);
    expect(p.ioctl(vm, KVM_ENABLE_CAP, { cap: 2 ** 32 + KVM_CAP_HALT_POLL, flags: 2 ** 32, args: [7] })).toBe(0);
    expect(k.max_halt_poll_ns).toBe(7);
    // reported, but nothing to enable
    expect(p.ioctl(vm, KVM_ENABLE_CAP, { cap: KVM_CAP_ENABLE_CAP_VM })).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
  });

  test('KVM_CAP_NR_VCPUS is num_online_cpus() of the host', () => {
    for (const nr_cpus of [1, 2, 64, 5000]) {
      const p = new Process(createRootContainer({}, mmRegistrar({ nr_pages: 1024, nr_cpus }), kvmRegistrar()).resolve(Kernel));
      expect(p.ioctl(p.open('/dev/kvm'), KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS)).toBe(Math.min(nr_cpus, 1024));
    }
    const { p, kvm } = openKvm();
    expect(p.ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS)).toBe(2);
  });
});

describe('vendor tables (kvm_x86_ops.ts) and the VM (kvm_create_vm, kvm_vm_ioctl)', () => {
  function swProc(): Process {
    return new Process(createRootContainer({}, mmRegistrar({ nr_pages: 8192 }), kvmRegistrar({ x86_ops: kvm_sw_protected_x86_ops })).resolve(Kernel));
  }

  test('SW_PROTECTED: VM types, memory attributes and GUEST_MEMFD_FLAGS per VM type, pre-fault with TDP', () => {
    const p = swProc();
    const kvm = p.open('/dev/kvm');
    expect(p.ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES)).toBe(0b11);
    expect(p.ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_ATTRIBUTES)).toBe(KVM_MEMORY_ATTRIBUTE_PRIVATE);
    expect(p.ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS)).toBe(GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
    expect(p.ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_PRE_FAULT_MEMORY)).toBe(1);
    const sw = p.ioctl(kvm, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
    const def = p.ioctl(kvm, KVM_CREATE_VM, KVM_X86_DEFAULT_VM);
    expect(p.ioctl(sw, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_ATTRIBUTES)).toBe(KVM_MEMORY_ATTRIBUTE_PRIVATE);
    expect(p.ioctl(def, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_ATTRIBUTES)).toBe(0);
    // kvm_arch_supports_gmem_init_shared() is false for VMs with private memory.
    expect(p.ioctl(sw, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS)).toBe(GUEST_MEMFD_FLAG_MMAP);
    expect(p.ioctl(def, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS)).toBe(GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
    expect(p.ioctl(kvm, KVM_CREATE_VM, KVM_X86_SNP_VM)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
  });

  test('KVM_SET_MEMORY_ATTRIBUTES is ENOTTY on a host without private VM types (this machine)', () => {
    const { p, kvm } = openKvm();
    const vm = p.ioctl(kvm, KVM_CREATE_VM, 0);
    expect(p.ioctl(vm, KVM_SET_MEMORY_ATTRIBUTES, { address: 0, size: 4096, attributes: 0 })).toBe(-1);
    expect(p.errno).toBe(Errno.ENOTTY);
  });

  test('KVM_CAP_EXIT_HYPERCALL: the mask is KVM_HC_MAP_GPA_RANGE; flags and other bits are EINVAL', () => {
    const { p, kvm } = openKvm();
    expect(p.ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_EXIT_HYPERCALL)).toBe(1 << KVM_HC_MAP_GPA_RANGE);
    const vm = p.ioctl(kvm, KVM_CREATE_VM, 0);
    expect(p.ioctl(vm, KVM_ENABLE_CAP, { cap: KVM_CAP_EXIT_HYPERCALL, args: [1 << 11] })).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.ioctl(vm, KVM_ENABLE_CAP, { cap: KVM_CAP_EXIT_HYPERCALL, flags: 1, args: [1 << 12] })).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.ioctl(vm, KVM_ENABLE_CAP, 0)).toBe(-1);
    expect(p.errno).toBe(Errno.EFAULT);
    expect(p.ioctl(vm, KVM_ENABLE_CAP, { cap: KVM_CAP_EXIT_HYPERCALL, args: [1 << 12] })).toBe(0);
    expect(p.ioctl(vm, KVM_ENABLE_CAP, { cap: KVM_CAP_EXIT_HYPERCALL, args: [0n] })).toBe(0);
  });

  test('VM ioctls from another process are EIO (kvm->mm != current->mm)', () => {
    const { p, kvm } = openKvm();
    const vm = p.ioctl(kvm, KVM_CREATE_VM, 0);
    const other = new Process(p.kernel);
    const file = p.task.files.lookup(vm);
    expect(typeof file).toBe('object');
    const fd = other.task.files.install((file as File).get_file(), false);
    expect(other.ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY)).toBe(-1);
    expect(other.errno).toBe(Errno.EIO);
    expect(p.ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY)).toBe(1);
  });

  test('vCPU files keep the VM alive; the last reference destroys it', () => {
    const { p, kvm } = openKvm();
    const vm = p.ioctl(kvm, KVM_CREATE_VM, 0);
    const vmFile = p.task.files.lookup(vm) as File;
    const kvmObj = vmFile.private_data as Kvm;
    const vcpu = p.ioctl(vm, KVM_CREATE_VCPU, 0);
    expect(kvmObj.users_count).toBe(2);
    expect(p.close(vm)).toBe(0);
    expect(kvmObj.vm_dead).toBe(false);
    expect(p.close(vcpu)).toBe(0);
    expect(kvmObj.users_count).toBe(0);
    expect(kvmObj.vm_dead).toBe(true);
  });
});
