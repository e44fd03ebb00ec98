/**
 * A port of tools/testing/selftests/kvm/set_memory_region_test.c (Linux 6.18): the tests that
 * need no vCPU. test_invalid_memory_region_flags and test_add_max_memory_regions run on the
 * default VM as the C test does; test_add_private_memory_region and
 * test_add_overlapping_private_memory_regions, which the C test runs on a
 * KVM_X86_SW_PROTECTED_VM, run on one (the swHost) and also on a KVM_X86_DEFAULT_VM, where 6.18
 * accepts guest_memfd memslots too (that is what test/traces/memslots.kernel.jsonl recorded on
 * this machine, which has no SW_PROTECTED type).
 *
 * Not ported here: test_zero_memory_regions, test_move_memory_region and
 * test_delete_memory_region, which run guest code on a vCPU.
 */
import { describe } from 'vitest';
import { Errno, PAGE_SIZE } from '@cocosim/core';
import { MAP_ANONYMOUS, MAP_FAILED, MAP_NORESERVE, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '@cocosim/mm';
import {
  KVM_CAP_GUEST_MEMFD, KVM_CAP_MEMORY_ATTRIBUTES, KVM_CAP_NR_MEMSLOTS, KVM_CAP_VM_TYPES, KVM_MEM_GUEST_MEMFD,
  KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY, KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_X86_DEFAULT_VM, KVM_X86_SW_PROTECTED_VM,
} from '@cocosim/kvm';
import { test, type SimHost } from '../lib/fixtures.js';
import {
  __vm_set_user_memory_region, __vm_set_user_memory_region2, kvm_check_cap, kvm_has_cap, kvm_memfd_alloc, kvm_vm_free,
  vm_create_barebones, vm_create_barebones_type, vm_create_guest_memfd, vm_set_user_memory_region,
  vm_set_user_memory_region2, type KvmVm, type ProcessSource,
} from '../lib/kvm_util.js';
import { TEST_ASSERT, TEST_REQUIRE } from '../lib/test_util.js';

const MEM_REGION_SIZE = 0x200000;
const MEM_REGION_GPA = 0xc0000000;
const MEM_REGION_SLOT = 10;

const BIT = (i: number): number => 2 ** i;

/** The VM the C test creates for its guest_memfd tests: vm_create_barebones_protected_vm(), or a default one. */
type VmMaker = (src: ProcessSource) => KvmVm;
const protected_vm: VmMaker = (src) => vm_create_barebones_type(src, KVM_X86_SW_PROTECTED_VM);
const default_vm: VmMaker = (src) => vm_create_barebones_type(src, KVM_X86_DEFAULT_VM);

function test_invalid_memory_region_flags(host: SimHost): void {
  let supported_flags = KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY;
  const v2_only_flags = KVM_MEM_GUEST_MEMFD;
  const p = host.process();
  const vm = (kvm_check_cap(p, KVM_CAP_VM_TYPES) & BIT(KVM_X86_SW_PROTECTED_VM)) !== 0 ? protected_vm(host) : vm_create_barebones(p);

  if (kvm_check_cap(p, KVM_CAP_MEMORY_ATTRIBUTES) & KVM_MEMORY_ATTRIBUTE_PRIVATE) supported_flags |= KVM_MEM_GUEST_MEMFD;

  for (let i = 0; i < 32; i++) {
    if ((supported_flags & BIT(i)) && !(v2_only_flags & BIT(i))) continue;

    let r = __vm_set_user_memory_region(vm, 0, BIT(i), 0, MEM_REGION_SIZE, 0);
    TEST_ASSERT(r && vm.p.errno === Errno.EINVAL, `KVM_SET_USER_MEMORY_REGION should have failed on v2 only flag 0x${BIT(i).toString(16)}`);

    if (supported_flags & BIT(i)) continue;

    r = __vm_set_user_memory_region2(vm, 0, BIT(i), 0, MEM_REGION_SIZE, 0, 0, 0);
    TEST_ASSERT(r && vm.p.errno === Errno.EINVAL, `KVM_SET_USER_MEMORY_REGION2 should have failed on unsupported flag 0x${BIT(i).toString(16)}`);
  }

  if (supported_flags & KVM_MEM_GUEST_MEMFD) {
    const r = __vm_set_user_memory_region2(vm, 0, KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_GUEST_MEMFD, 0, MEM_REGION_SIZE, 0, 0, 0);
    TEST_ASSERT(r && vm.p.errno === Errno.EINVAL,
      'KVM_SET_USER_MEMORY_REGION2 should have failed, dirty logging private memory is unsupported');
  }
  kvm_vm_free(vm);
}

/** Slots can be added up to KVM_CAP_NR_MEMSLOTS; one more fails. */
function test_add_max_memory_regions(host: SimHost): void {
  const p = host.process();
  const max_mem_slots = kvm_check_cap(p, KVM_CAP_NR_MEMSLOTS);
  TEST_ASSERT(max_mem_slots > 0, 'KVM_CAP_NR_MEMSLOTS should be greater than 0');

  const vm = vm_create_barebones(p);
  const size = BigInt(max_mem_slots) * BigInt(MEM_REGION_SIZE);
  const mem = p.mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  TEST_ASSERT(mem !== MAP_FAILED, 'Failed to mmap() host');

  for (let slot = 0; slot < max_mem_slots; slot++) {
    vm_set_user_memory_region(vm, slot, 0, BigInt(slot) * BigInt(MEM_REGION_SIZE), MEM_REGION_SIZE, mem + BigInt(slot) * BigInt(MEM_REGION_SIZE));
  }

  // Check it cannot be added memory slots beyond the limit.
  const mem_extra = p.mmap(0, MEM_REGION_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  TEST_ASSERT(mem_extra !== MAP_FAILED, 'Failed to mmap() host');

  const ret = __vm_set_user_memory_region(vm, max_mem_slots, 0, BigInt(max_mem_slots) * BigInt(MEM_REGION_SIZE), MEM_REGION_SIZE, mem_extra);
  TEST_ASSERT(ret === -1 && vm.p.errno === Errno.EINVAL, 'Adding one more memory slot should fail with EINVAL');

  p.munmap(mem, size);
  p.munmap(mem_extra, MEM_REGION_SIZE);
  kvm_vm_free(vm);
}

/** TEST_ASSERT(r == -1 && errno == ...) of the C test. */
function assert_fails(vm: KvmVm, r: number, errno: number, msg: string): void {
  TEST_ASSERT(r === -1 && vm.p.errno === errno, msg);
}

function test_invalid_guest_memfd(vm: KvmVm, memfd: number, offset: number, msg: string): void {
  const r = __vm_set_user_memory_region2(vm, MEM_REGION_SLOT, KVM_MEM_GUEST_MEMFD, MEM_REGION_GPA, MEM_REGION_SIZE, 0, memfd, offset);
  TEST_ASSERT(r === -1 && vm.p.errno === Errno.EINVAL, msg);
}

function test_add_private_memory_region(host: SimHost, make_vm: VmMaker): void {
  const vm = make_vm(host);

  test_invalid_guest_memfd(vm, vm.kvm_fd, 0, 'KVM fd should fail');
  test_invalid_guest_memfd(vm, vm.fd, 0, "VM's fd should fail");

  let memfd = kvm_memfd_alloc(vm.p, MEM_REGION_SIZE, false);
  test_invalid_guest_memfd(vm, memfd, 0, 'Regular memfd() should fail');
  vm.p.close(memfd);

  // The second VM lives in the same process, as in the C test: its fds are in the same table.
  const vm2 = make_vm(vm.p);
  memfd = vm_create_guest_memfd(vm2, MEM_REGION_SIZE, 0);
  test_invalid_guest_memfd(vm, memfd, 0, "Other VM's guest_memfd() should fail");

  vm_set_user_memory_region2(vm2, MEM_REGION_SLOT, KVM_MEM_GUEST_MEMFD, MEM_REGION_GPA, MEM_REGION_SIZE, 0, memfd, 0);
  vm.p.close(memfd);
  kvm_vm_free(vm2);

  memfd = vm_create_guest_memfd(vm, MEM_REGION_SIZE, 0);
  for (let i = 1; i < PAGE_SIZE; i++) test_invalid_guest_memfd(vm, memfd, i, 'Unaligned offset should fail');

  vm_set_user_memory_region2(vm, MEM_REGION_SLOT, KVM_MEM_GUEST_MEMFD, MEM_REGION_GPA, MEM_REGION_SIZE, 0, memfd, 0);
  vm.p.close(memfd);

  kvm_vm_free(vm);
}

function test_add_overlapping_private_memory_regions(host: SimHost, make_vm: VmMaker): void {
  const vm = make_vm(host);

  const memfd = vm_create_guest_memfd(vm, MEM_REGION_SIZE * 4, 0);

  vm_set_user_memory_region2(vm, MEM_REGION_SLOT, KVM_MEM_GUEST_MEMFD, MEM_REGION_GPA, MEM_REGION_SIZE * 2, 0, memfd, 0);

  vm_set_user_memory_region2(vm, MEM_REGION_SLOT + 1, KVM_MEM_GUEST_MEMFD, MEM_REGION_GPA * 2, MEM_REGION_SIZE * 2, 0, memfd,
    MEM_REGION_SIZE * 2);

  // Delete the first memslot, and then attempt to recreate it except with a "bad" offset that
  // results in overlap in the guest_memfd().
  vm_set_user_memory_region2(vm, MEM_REGION_SLOT, KVM_MEM_GUEST_MEMFD, MEM_REGION_GPA, 0, 0, -1, 0);

  // Overlap the front half of the other slot.
  let r = __vm_set_user_memory_region2(vm, MEM_REGION_SLOT, KVM_MEM_GUEST_MEMFD, MEM_REGION_GPA * 2 - MEM_REGION_SIZE,
    MEM_REGION_SIZE * 2, 0, memfd, 0);
  assert_fails(vm, r, Errno.EEXIST, 'Overlapping guest_memfd() bindings should fail with EEXIST');

  // And now the back half of the other slot.
  r = __vm_set_user_memory_region2(vm, MEM_REGION_SLOT, KVM_MEM_GUEST_MEMFD, MEM_REGION_GPA * 2 + MEM_REGION_SIZE,
    MEM_REGION_SIZE * 2, 0, memfd, 0);
  assert_fails(vm, r, Errno.EEXIST, 'Overlapping guest_memfd() bindings should fail with EEXIST');

  // Beyond the C test: disjoint GPAs but the other slot's file range is the bind's EINVAL.
  r = __vm_set_user_memory_region2(vm, MEM_REGION_SLOT, KVM_MEM_GUEST_MEMFD, MEM_REGION_GPA, MEM_REGION_SIZE * 2, 0, memfd,
    MEM_REGION_SIZE);
  assert_fails(vm, r, Errno.EINVAL, 'Overlapping guest_memfd() offsets should fail with EINVAL');

  vm.p.close(memfd);
  kvm_vm_free(vm);
}

describe('set_memory_region_test', () => {
  test('test_invalid_memory_region_flags (default VM, this machine\'s kernel)', ({ host }) => {
    test_invalid_memory_region_flags(host);
  });

  test('test_invalid_memory_region_flags (SW_PROTECTED host: GUEST_MEMFD is supported)', ({ swHost }) => {
    test_invalid_memory_region_flags(swHost);
  });

  test('test_add_max_memory_regions', ({ host }) => {
    test_add_max_memory_regions(host);
  });

  test('test_add_private_memory_region and test_add_overlapping_private_memory_regions (SW_PROTECTED VM)', ({ swHost }) => {
    TEST_REQUIRE(kvm_has_cap(swHost, KVM_CAP_GUEST_MEMFD) && (kvm_check_cap(swHost, KVM_CAP_VM_TYPES) & BIT(KVM_X86_SW_PROTECTED_VM)) !== 0,
      'Skipping tests for KVM_MEM_GUEST_MEMFD memory regions');
    test_add_private_memory_region(swHost, protected_vm);
    test_add_overlapping_private_memory_regions(swHost, protected_vm);
  });

  test('test_add_private_memory_region and test_add_overlapping_private_memory_regions (default VM, as 6.18 allows)', ({ host }) => {
    TEST_REQUIRE(kvm_has_cap(host, KVM_CAP_GUEST_MEMFD), 'no KVM_CAP_GUEST_MEMFD');
    test_add_private_memory_region(host, default_vm);
    test_add_overlapping_private_memory_regions(host, default_vm);
  });
});
