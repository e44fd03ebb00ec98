/**
 * tools/testing/selftests/kvm/x86/private_mem_kvm_exits_test.c: a KVM_X86_SW_PROTECTED_VM guest
 * reads a page whose memory attribute is PRIVATE, and KVM_RUN fails with EFAULT and
 * KVM_EXIT_MEMORY_FAULT (flags KVM_MEMORY_EXIT_FLAG_PRIVATE, the page's gpa and size) when the
 * private access cannot be served: the memslot was deleted while the vCPU ran, or the memslot
 * has no guest_memfd.
 *
 * In C the memslot is deleted by the main thread while the vCPU thread sits in KVM_RUN with the
 * guest reading the page in a loop. Here the deletion is that other thread's ioctl run while the
 * guest executes (kvm_vcpu_concurrently), after the guest has read the page a few times: the
 * same single KVM_RUN then ends with the memory-fault exit.
 */
import { describe } from 'vitest';
import { Errno, PAGE_SIZE } from '@cocosim/core';
import {
  KVM_CAP_VM_TYPES, KVM_EXIT_MEMORY_FAULT, KVM_MEMORY_EXIT_FLAG_PRIVATE, KVM_MEM_GUEST_MEMFD, KVM_X86_SW_PROTECTED_VM,
  guestLoad, kvm_vcpu_concurrently, vcpu_arch, type GuestCode,
} from '@cocosim/kvm';
import { test } from '../lib/fixtures.js';
import { TEST_ASSERT, TEST_ASSERT_EQ, TEST_REQUIRE, __KVM_IOCTL_ERROR } from '../lib/test_util.js';
import {
  VM_MEM_SRC_ANONYMOUS, _vcpu_run, kvm_check_cap, kvm_vm_free, vcpu_kernel, virt_map, vm_create_shape_with_one_vcpu,
  vm_mem_region_delete, vm_mem_set_private, vm_userspace_mem_region_add, type KvmVcpuFd, type VmShape,
} from '../lib/kvm_util.js';

/* Arbitrarily selected to avoid overlaps with anything else */
const EXITS_TEST_GVA = 0xc0000000n;
const EXITS_TEST_GPA = EXITS_TEST_GVA;
const EXITS_TEST_NPAGES = 1;
const EXITS_TEST_SIZE = EXITS_TEST_NPAGES * PAGE_SIZE;
const EXITS_TEST_SLOT = 10;

function* guest_repeatedly_read(): GuestCode {
  for (;;) yield* guestLoad(EXITS_TEST_GVA, 8);
}

function run_vcpu_get_exit_reason(vcpu: KvmVcpuFd): number {
  const r = _vcpu_run(vcpu);
  if (r) {
    TEST_ASSERT(vcpu.p.errno === Errno.EFAULT, __KVM_IOCTL_ERROR('KVM_RUN', r, vcpu.p.errno));
    TEST_ASSERT_EQ(vcpu.run.exit_reason, KVM_EXIT_MEMORY_FAULT, 'vcpu->run->exit_reason == KVM_EXIT_MEMORY_FAULT');
  }
  return vcpu.run.exit_reason;
}

const protected_vm_shape: VmShape = { type: KVM_X86_SW_PROTECTED_VM };

describe('private_mem_kvm_exits_test', () => {
  test('test_private_access_memslot_deleted', ({ swHost }) => {
    TEST_REQUIRE(kvm_check_cap(swHost, KVM_CAP_VM_TYPES) & (1 << KVM_X86_SW_PROTECTED_VM));
    const { vm, vcpu } = vm_create_shape_with_one_vcpu(swHost, protected_vm_shape, guest_repeatedly_read);

    vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, EXITS_TEST_GPA, EXITS_TEST_SLOT, EXITS_TEST_NPAGES, KVM_MEM_GUEST_MEMFD);

    virt_map(vm, EXITS_TEST_GVA, EXITS_TEST_GPA, EXITS_TEST_NPAGES);

    /* Request to access page privately */
    vm_mem_set_private(vm, EXITS_TEST_GPA, EXITS_TEST_SIZE);

    // The main thread deletes the memslot while the vCPU thread is in KVM_RUN, reading the page.
    kvm_vcpu_concurrently(vcpu_kernel(vcpu), 16, () => vm_mem_region_delete(vm, EXITS_TEST_SLOT));
    const exit_reason = run_vcpu_get_exit_reason(vcpu);

    TEST_ASSERT_EQ(exit_reason, KVM_EXIT_MEMORY_FAULT, 'exit_reason == KVM_EXIT_MEMORY_FAULT');
    TEST_ASSERT_EQ(vcpu.run.memory_fault.flags, KVM_MEMORY_EXIT_FLAG_PRIVATE, 'vcpu->run->memory_fault.flags == KVM_MEMORY_EXIT_FLAG_PRIVATE');
    TEST_ASSERT_EQ(vcpu.run.memory_fault.gpa, EXITS_TEST_GPA, 'vcpu->run->memory_fault.gpa == EXITS_TEST_GPA');
    TEST_ASSERT_EQ(vcpu.run.memory_fault.size, EXITS_TEST_SIZE, 'vcpu->run->memory_fault.size == EXITS_TEST_SIZE');
    // The guest did read the private page before the memslot went away.
    TEST_ASSERT_EQ(vcpu_arch(vcpu_kernel(vcpu)).guest.retired, 16, 'reads before the deletion');

    kvm_vm_free(vm);
  });

  test('test_private_access_memslot_not_private', ({ swHost }) => {
    const { vm, vcpu } = vm_create_shape_with_one_vcpu(swHost, protected_vm_shape, guest_repeatedly_read);

    /* Add a non-private memslot (flags = 0) */
    vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, EXITS_TEST_GPA, EXITS_TEST_SLOT, EXITS_TEST_NPAGES, 0);

    virt_map(vm, EXITS_TEST_GVA, EXITS_TEST_GPA, EXITS_TEST_NPAGES);

    /* Request to access page privately */
    vm_mem_set_private(vm, EXITS_TEST_GPA, EXITS_TEST_SIZE);

    const exit_reason = run_vcpu_get_exit_reason(vcpu);

    TEST_ASSERT_EQ(exit_reason, KVM_EXIT_MEMORY_FAULT, 'exit_reason == KVM_EXIT_MEMORY_FAULT');
    TEST_ASSERT_EQ(vcpu.run.memory_fault.flags, KVM_MEMORY_EXIT_FLAG_PRIVATE, 'vcpu->run->memory_fault.flags == KVM_MEMORY_EXIT_FLAG_PRIVATE');
    TEST_ASSERT_EQ(vcpu.run.memory_fault.gpa, EXITS_TEST_GPA, 'vcpu->run->memory_fault.gpa == EXITS_TEST_GPA');
    TEST_ASSERT_EQ(vcpu.run.memory_fault.size, EXITS_TEST_SIZE, 'vcpu->run->memory_fault.size == EXITS_TEST_SIZE');

    kvm_vm_free(vm);
  });
});
