import { describe, expect } from 'vitest';
import { Errno } from '@cocosim/core';
import {
  KVM_CAP_GUEST_MEMFD, KVM_CAP_MEMORY_ATTRIBUTES, KVM_CAP_NR_MEMSLOTS, KVM_MEM_GUEST_MEMFD, KVM_MEM_LOG_DIRTY_PAGES,
  KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_X86_DEFAULT_VM, KVM_X86_SW_PROTECTED_VM, type Kvm,
} from '@cocosim/kvm';
import { test } from './fixtures.js';
import {
  VM_MEM_SRC_ANONYMOUS, VM_MEM_SRC_ANONYMOUS_THP, VM_MEM_SRC_SHMEM, __vm_ioctl, __vm_set_user_memory_region, addr_gpa2hva,
  kvm_check_cap, kvm_gpa_to_guest_memfd, kvm_has_cap, kvm_vm_free, memslot2region, vm_check_cap, vm_create_barebones,
  vm_create_barebones_protected_vm, vm_create_barebones_type, vm_create_guest_memfd, vm_guest_mem_allocate,
  vm_guest_mem_punch_hole, vm_ioctl, vm_ioctl_fails, vm_mem_add, vm_mem_region_delete, vm_mem_region_move,
  vm_mem_region_set_flags, vm_mem_set_private, vm_mem_set_shared, vm_set_memory_attributes, vm_set_user_memory_region,
  vm_userspace_mem_region_add,
} from './kvm_util.js';
import { TestAssertionFailure } from './test_util.js';

describe('kvm_util: __vm_ioctl returns what C sees, vm_ioctl asserts', () => {
  test('a failing ioctl gives -1 and errno raw, and the selftests message when asserted', ({ host }) => {
    const p = host.process();
    const vm = { p, fd: p.open('/dev/null') };
    expect(__vm_ioctl(vm, 0xae00)).toBe(-1);
    expect(p.errno).toBe(Errno.ENOTTY);
    expect(() => vm_ioctl(vm, 0xae00, undefined, 'KVM_GET_API_VERSION')).toThrow(TestAssertionFailure);
    expect(() => vm_ioctl(vm, 0xae00, undefined, 'KVM_GET_API_VERSION'))
      .toThrow('KVM_GET_API_VERSION failed, rc: -1 errno: 25 (ENOTTY)');
    expect(() => vm_ioctl(vm, 0xae00)).toThrow('ioctl 0xae00 failed, rc: -1 errno: 25 (ENOTTY)');
    vm_ioctl_fails(vm, 0xae00, undefined, Errno.ENOTTY);
    expect(() => vm_ioctl_fails(vm, 0xae00, undefined, Errno.EINVAL)).toThrow(TestAssertionFailure);
  });

  test('a succeeding ioctl returns its result', ({ host }) => {
    const p = host.process();
    const vm = { p, fd: p.open('/dev/null') };
    expect(vm_ioctl(vm, 0x5451, undefined, 'FIOCLEX')).toBe(0);
    expect(() => vm_ioctl_fails(vm, 0x5451, undefined, Errno.EINVAL)).toThrow(TestAssertionFailure);
  });
});

describe('kvm_util: the VM-level verbs of lib/kvm_util.c', () => {
  test('vm_create_barebones, kvm_check_cap and vm_check_cap on this machine\'s kernel', ({ host }) => {
    const p = host.process();
    expect(kvm_check_cap(p, KVM_CAP_NR_MEMSLOTS)).toBe(32764);
    expect(kvm_has_cap(host, KVM_CAP_MEMORY_ATTRIBUTES)).toBe(false);
    const vm = vm_create_barebones(p);
    expect(vm.p).toBe(p);
    expect([vm.type, vm.page_size]).toEqual([KVM_X86_DEFAULT_VM, 4096]);
    expect(vm_check_cap(vm, KVM_CAP_GUEST_MEMFD)).toBe(1);
    expect(() => vm_create_barebones_type(p, KVM_X86_SW_PROTECTED_VM)).toThrow('KVM_CREATE_VM failed, rc: -1 errno: 22 (EINVAL)');
    expect(() => vm_mem_set_private(vm, 0, 4096)).toThrow('KVM_SET_MEMORY_ATTRIBUTES failed, rc: -1 errno: 25 (ENOTTY)');
    kvm_vm_free(vm);
    // Both fds are closed: the next open reuses the lower one.
    expect(p.open('/dev/kvm')).toBe(vm.kvm_fd);
  });

  test('vm_mem_add with a guest_memfd, regions, gpa lookups, fallocate and punch hole across slots', ({ host }) => {
    const vm = vm_create_barebones(host);
    const GPA = 0x100000000n;
    vm_mem_add(vm, VM_MEM_SRC_ANONYMOUS, GPA, 1, 512, KVM_MEM_GUEST_MEMFD, -1, 0);
    const gmem = vm_create_guest_memfd(vm, 0x400000, 0);
    vm_mem_add(vm, VM_MEM_SRC_SHMEM, GPA + 0x200000n, 2, 512, KVM_MEM_GUEST_MEMFD, gmem, 0x200000);
    const r1 = memslot2region(vm, 1);
    const r2 = memslot2region(vm, 2);
    // Each region has its own fd (a new guest_memfd, a dup of the caller's).
    expect(r1.region.guest_memfd).not.toBe(gmem);
    expect(r2.region.guest_memfd).not.toBe(gmem);
    expect(addr_gpa2hva(vm, GPA + 0x201010n)).toBe(r2.host_mem + 0x1010n);
    expect(kvm_gpa_to_guest_memfd(vm, GPA + 0x1ff000n)).toEqual({ fd: r1.region.guest_memfd, fd_offset: 0x1ff000n, nr_bytes: 4096n });
    expect(kvm_gpa_to_guest_memfd(vm, GPA + 0x200000n)).toEqual({ fd: r2.region.guest_memfd, fd_offset: 0x200000n, nr_bytes: 0x200000n });
    // guest_memfd keeps no i_blocks: its page cache tells what is allocated.
    const pages = (fd: number): number => vm.p.task.files.lookup(fd)!.f_inode.i_mapping.nrpages;
    vm_guest_mem_allocate(vm, GPA + 0x1fe000n, 0x4000);
    expect(pages(r1.region.guest_memfd)).toBe(2);
    expect(pages(gmem)).toBe(2);
    vm_guest_mem_punch_hole(vm, GPA + 0x1ff000n, 0x2000);
    expect(pages(r1.region.guest_memfd)).toBe(1);
    expect(pages(gmem)).toBe(1);
    expect(() => vm_guest_mem_allocate(vm, GPA + 0x400000n, 4096)).toThrow('Private memory region not found for GPA 0x100400000');
    expect(() => vm_mem_add(vm, VM_MEM_SRC_ANONYMOUS, GPA + 0x3ff000n, 3, 1, 0, -1, 0)).toThrow('overlapping userspace_mem_region');
    // A guest_memfd slot cannot move; deleting it closes the region's fd.
    expect(() => vm_mem_region_move(vm, 1, GPA * 2n)).toThrow('KVM_SET_USER_MEMORY_REGION2 failed');
    vm_mem_region_delete(vm, 2);
    expect(vm.p.close(r2.region.guest_memfd)).toBe(-1);
    expect(vm.regions.has(2)).toBe(false);
    kvm_vm_free(vm);
  });

  test('vm_userspace_mem_region_add, vm_mem_region_set_flags and vm_mem_region_move', ({ host }) => {
    const vm = vm_create_barebones(host);
    vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS_THP, 0xc0000000, 10, 512, 0);
    vm_mem_region_set_flags(vm, 10, KVM_MEM_LOG_DIRTY_PAGES);
    vm_mem_region_move(vm, 10, 0xc0200000);
    expect(memslot2region(vm, 10).region).toMatchObject({ flags: KVM_MEM_LOG_DIRTY_PAGES, guest_phys_addr: 0xc0200000n });
    expect(__vm_set_user_memory_region(vm, 11, 0, 0xc0200000, 0x200000, memslot2region(vm, 10).host_mem)).toBe(-1);
    expect(vm.p.errno).toBe(Errno.EEXIST);
    expect(() => vm_set_user_memory_region(vm, 11, 0, 0xc0200000, 0x200000, 0)).toThrow('KVM_SET_USER_MEMORY_REGION failed, rc: -1 errno: 17 (EEXIST)');
    expect(() => memslot2region(vm, 11)).toThrow('No mem region with the requested slot found');
    kvm_vm_free(vm);
  });

  test('vm_mem_set_private / vm_mem_set_shared on a KVM_X86_SW_PROTECTED_VM', ({ swHost }) => {
    expect(kvm_check_cap(swHost, KVM_CAP_MEMORY_ATTRIBUTES)).toBe(KVM_MEMORY_ATTRIBUTE_PRIVATE);
    const vm = vm_create_barebones_protected_vm(swHost);
    const kvm = vm.p.task.files.lookup(vm.fd)!.private_data as Kvm;
    vm_mem_set_private(vm, 0x100000000n, 0x200000);
    vm_mem_set_shared(vm, 0x100001000n, 0x1000);
    expect([...kvm.mem_attr_array.ranges()].map((r) => [r.first, r.last])).toEqual([[0x100000, 0x100000], [0x100002, 0x1001ff]]);
    expect(() => vm_set_memory_attributes(vm, 0, 4096, 1)).toThrow('Update me to support multiple attributes!');
    kvm_vm_free(vm);
  });
});
