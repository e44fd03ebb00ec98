/**
 * A port of tools/testing/selftests/kvm/guest_memfd_test.c (Linux 6.18): the same test functions
 * in the same order, run for every VM type the host's KVM_CAP_VM_TYPES lists, on this machine's
 * KVM (vendor none: KVM_X86_DEFAULT_VM) and on one with KVM_X86_SW_PROTECTED_VM.
 *
 * How the C test's machinery maps here:
 * - memset()/READ_ONCE() through a mapping are Process.store()/load(); TEST_EXPECT_SIGBUS(x)
 *   checks the SIGBUS the access returns instead of siglongjmp()ing out of a handler. A store
 *   writes the pages before the one that faults, as memset() does.
 * - test_mbind() and test_numa_allocation() return at once unless is_multi_numa_node_system();
 *   a simulated host has one node, so they are left out.
 * - test_guest_memfd_guest()'s guest_code is a guest program (kvm/src/guest.ts); virt_pg_map()
 *   of one page is virt_map(vm, gpa, gpa, 1).
 */
import { describe } from 'vitest';
import { Errno, PAGE_SIZE, PMD_SIZE } from '@cocosim/core';
import {
  FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, MADV_COLLAPSE, MADV_DONTNEED, MADV_HUGEPAGE, MAP_ANONYMOUS, MAP_FAILED,
  MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_NONE, PROT_READ, PROT_WRITE, isSigInfo, type Process, type Stat,
} from '@cocosim/mm';
import {
  GUEST_MEMFD_FLAG_INIT_SHARED, GUEST_MEMFD_FLAG_MMAP, KVM_CAP_GUEST_MEMFD, KVM_CAP_GUEST_MEMFD_FLAGS,
  KVM_CAP_VM_TYPES, KVM_MEM_GUEST_MEMFD, guestFill, guestLoad, type GuestCode,
} from '@cocosim/kvm';
import { test, type SimHost } from '../lib/fixtures.js';
import { TEST_ASSERT, TEST_ASSERT_EQ, TEST_REQUIRE, __KVM_SYSCALL_ERROR } from '../lib/test_util.js';
import {
  __vm_create_guest_memfd, __vm_create_with_one_vcpu, kvm_check_cap, kvm_has_cap, kvm_vm_free, vcpu_args_set, vcpu_run,
  virt_map, vm_check_cap, vm_create_barebones_type, vm_create_guest_memfd, vm_set_user_memory_region2, type KvmVm,
} from '../lib/kvm_util.js';
import { GUEST_DONE, UCALL_DONE, __GUEST_ASSERT, get_ucall } from '../lib/ucall.js';

const page_size = PAGE_SIZE;

/** kvm_mmap(): mmap() asserted to succeed. */
function kvm_mmap(p: Process, size: number, prot: number, flags: number, fd: number, addr: bigint | number = 0): bigint {
  const mem = p.mmap(addr, size, prot, flags, fd, 0);
  TEST_ASSERT(mem !== MAP_FAILED, __KVM_SYSCALL_ERROR('mmap()', -1, p.errno));
  return mem;
}

/** kvm_munmap(). */
function kvm_munmap(p: Process, mem: bigint, size: number): void {
  const ret = p.munmap(mem, size);
  TEST_ASSERT(!ret, __KVM_SYSCALL_ERROR('munmap()', ret, p.errno));
}

/** kvm_madvise(). */
function kvm_madvise(p: Process, mem: bigint, size: number, advice: number): void {
  const ret = p.madvise(mem, size, advice);
  TEST_ASSERT(!ret, __KVM_SYSCALL_ERROR('madvise()', ret, p.errno));
}

/** READ_ONCE(mem[i]) for i in [0, len): the bytes, the test failing on a signal. */
function read_bytes(p: Process, mem: bigint, len: number): Uint8Array {
  const got = p.load(mem, len);
  TEST_ASSERT(!isSigInfo(got), `unexpected ${isSigInfo(got) ? got.signo : ''} reading 0x${mem.toString(16)}`);
  return got;
}

/** TEST_ASSERT_EQ(READ_ONCE(mem[i]), val) for every i in [0, len). */
function assert_bytes(p: Process, mem: bigint, len: number, val: number): void {
  const got = read_bytes(p, mem, len);
  const i = got.findIndex((b) => b !== val);
  TEST_ASSERT(i < 0, `mem[${i}] == 0x${got[i]?.toString(16)}, expected 0x${val.toString(16)}`);
}

/** TEST_EXPECT_SIGBUS(action). */
function TEST_EXPECT_SIGBUS(ret: unknown, what: string): void {
  TEST_ASSERT(isSigInfo(ret) && ret.signo === 'SIGBUS', `${what}: expected SIGBUS, got ${isSigInfo(ret) ? ret.signo : 'no signal'}`);
}

function test_file_read_write(p: Process, fd: number): void {
  const buf = new Uint8Array(64);
  TEST_ASSERT(p.read(fd, buf) < 0, 'read on a guest_mem fd should fail');
  TEST_ASSERT(p.write(fd, buf) < 0, 'write on a guest_mem fd should fail');
  TEST_ASSERT(p.pread(fd, buf, 0) < 0, 'pread on a guest_mem fd should fail');
  TEST_ASSERT(p.pwrite(fd, buf, 0) < 0, 'pwrite on a guest_mem fd should fail');
}

function test_mmap_cow(p: Process, fd: number, size: number): void {
  const mem = p.mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  TEST_ASSERT(mem === MAP_FAILED, 'Copy-on-write not allowed by guest_memfd.');
}

function test_mmap_supported(p: Process, fd: number, total_size: number): void {
  const val = 0xaa;
  const mem = kvm_mmap(p, total_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
  TEST_ASSERT_EQ(p.store(mem, new Uint8Array(total_size).fill(val)), 0);
  assert_bytes(p, mem, total_size, val);
  const ret = p.fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 0, page_size);
  TEST_ASSERT(!ret, 'fallocate the first page should succeed.');
  assert_bytes(p, mem, page_size, 0x00);
  assert_bytes(p, mem + BigInt(page_size), total_size - page_size, val);
  TEST_ASSERT_EQ(p.store(mem, new Uint8Array(page_size).fill(val)), 0);
  assert_bytes(p, mem, total_size, val);
  kvm_munmap(p, mem, total_size);
}

function test_collapse(p: Process, fd: number): void {
  const pmd_size = PMD_SIZE;
  /*
   * To even reach the point where the guest_memfd folios will get collapsed, both the userspace
   * address and the offset within the guest_memfd have to be aligned to pmd_size.
   */
  const reserved_addr = kvm_mmap(p, pmd_size * 2, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
  const aligned_addr = (reserved_addr + BigInt(pmd_size) - 1n) / BigInt(pmd_size) * BigInt(pmd_size);
  const mem = p.mmap(aligned_addr, pmd_size, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_SHARED, fd, 0);
  TEST_ASSERT(mem % BigInt(pmd_size) === 0n, 'Userspace address must be aligned to PMD size.');
  /* Use reads to populate page table to avoid setting dirty flag on page. */
  for (let i = 0; i < pmd_size; i += page_size) read_bytes(p, mem + BigInt(i), 1);
  /* Advising the use of huge pages in guest_memfd should be fine... */
  kvm_madvise(p, mem, pmd_size, MADV_HUGEPAGE);
  /* ... but collapsing folios must not be supported to avoid mapping beyond shared ranges. */
  TEST_ASSERT_EQ(p.madvise(mem, pmd_size, MADV_COLLAPSE), -1);
  TEST_ASSERT_EQ(p.errno, Errno.EINVAL);
  /* Removing from host page tables and re-faulting should be fine. */
  kvm_madvise(p, mem, pmd_size, MADV_DONTNEED);
  read_bytes(p, mem, 1);
  kvm_munmap(p, reserved_addr, pmd_size * 2);
}

function test_fault_sigbus(p: Process, fd: number, accessible_size: number, map_size: number): void {
  const val = 0xaa;
  const mem = kvm_mmap(p, map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
  TEST_EXPECT_SIGBUS(p.store(mem, new Uint8Array(map_size).fill(val)), 'memset(mem, val, map_size)');
  TEST_EXPECT_SIGBUS(p.load(mem + BigInt(accessible_size), 1), 'READ_ONCE(mem[accessible_size])');
  assert_bytes(p, mem, accessible_size, val);
  kvm_munmap(p, mem, map_size);
}

function test_fault_overflow(p: Process, fd: number, total_size: number): void {
  test_fault_sigbus(p, fd, total_size, total_size * 4);
}

function test_fault_private(p: Process, fd: number, total_size: number): void {
  test_fault_sigbus(p, fd, 0, total_size);
}

function test_mmap_not_supported(p: Process, fd: number, total_size: number): void {
  TEST_ASSERT_EQ(p.mmap(0, page_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), MAP_FAILED);
  TEST_ASSERT_EQ(p.mmap(0, total_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), MAP_FAILED);
}

function test_file_size(p: Process, fd: number, total_size: number): void {
  const sb = {} as Stat;
  TEST_ASSERT(!p.fstat(fd, sb), 'fstat should succeed');
  TEST_ASSERT_EQ(sb.st_size, total_size);
  TEST_ASSERT_EQ(sb.st_blksize, page_size);
}

function test_fallocate(p: Process, fd: number, total_size: number): void {
  let ret = p.fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, total_size);
  TEST_ASSERT(!ret, 'fallocate with aligned offset and size should succeed');
  ret = p.fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, page_size - 1, page_size);
  TEST_ASSERT(ret, 'fallocate with unaligned offset should fail');
  ret = p.fallocate(fd, FALLOC_FL_KEEP_SIZE, total_size, page_size);
  TEST_ASSERT(ret, 'fallocate beginning at total_size should fail');
  ret = p.fallocate(fd, FALLOC_FL_KEEP_SIZE, total_size + page_size, page_size);
  TEST_ASSERT(ret, 'fallocate beginning after total_size should fail');
  ret = p.fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, total_size, page_size);
  TEST_ASSERT(!ret, 'fallocate(PUNCH_HOLE) at total_size should succeed');
  ret = p.fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, total_size + page_size, page_size);
  TEST_ASSERT(!ret, 'fallocate(PUNCH_HOLE) after total_size should succeed');
  ret = p.fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, page_size, page_size - 1);
  TEST_ASSERT(ret, 'fallocate with unaligned size should fail');
  ret = p.fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, page_size, page_size);
  TEST_ASSERT(!ret, 'fallocate(PUNCH_HOLE) with aligned offset and size should succeed');
  ret = p.fallocate(fd, FALLOC_FL_KEEP_SIZE, page_size, page_size);
  TEST_ASSERT(!ret, 'fallocate to restore punched hole should succeed');
}

function test_invalid_punch_hole(p: Process, fd: number): void {
  const testcases: [number, number][] = [
    [0, 1], [0, page_size - 1], [0, page_size + 1],
    [1, 1], [1, page_size - 1], [1, page_size], [1, page_size + 1],
    [page_size, 1], [page_size, page_size - 1], [page_size, page_size + 1],
  ];
  for (const [offset, len] of testcases) {
    const ret = p.fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, offset, len);
    TEST_ASSERT(ret === -1 && p.errno === Errno.EINVAL,
      `PUNCH_HOLE with !PAGE_SIZE offset (${offset.toString(16)}) and/or length (${len.toString(16)}) should fail`);
  }
}

function test_create_guest_memfd_invalid_sizes(vm: KvmVm, guest_memfd_flags: bigint): void {
  for (let size = 1; size < page_size; size++) {
    const fd = __vm_create_guest_memfd(vm, size, guest_memfd_flags);
    TEST_ASSERT(fd < 0 && vm.p.errno === Errno.EINVAL,
      `guest_memfd() with non-page-aligned page size '0x${size.toString(16)}' should fail with EINVAL`);
  }
}

function test_create_guest_memfd_multiple(vm: KvmVm): void {
  const p = vm.p;
  const st1 = {} as Stat;
  const st2 = {} as Stat;
  const fd1 = __vm_create_guest_memfd(vm, page_size, 0);
  TEST_ASSERT(fd1 !== -1, 'memfd creation should succeed');
  TEST_ASSERT(p.fstat(fd1, st1) !== -1, 'memfd fstat should succeed');
  TEST_ASSERT(st1.st_size === BigInt(page_size), 'memfd st_size should match requested size');
  const fd2 = __vm_create_guest_memfd(vm, page_size * 2, 0);
  TEST_ASSERT(fd2 !== -1, 'memfd creation should succeed');
  TEST_ASSERT(p.fstat(fd2, st2) !== -1, 'memfd fstat should succeed');
  TEST_ASSERT(st2.st_size === BigInt(page_size * 2), 'second memfd st_size should match requested size');
  TEST_ASSERT(p.fstat(fd1, st1) !== -1, 'memfd fstat should succeed');
  TEST_ASSERT(st1.st_size === BigInt(page_size), 'first memfd st_size should still match requested size');
  TEST_ASSERT(st1.st_ino !== st2.st_ino, 'different memfd should have different inode numbers');
  p.close(fd2);
  p.close(fd1);
}

function test_guest_memfd_flags(vm: KvmVm): void {
  const valid_flags = BigInt(vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_FLAGS));
  for (let flag = 1n; flag < 1n << 64n; flag <<= 1n) {
    const fd = __vm_create_guest_memfd(vm, page_size, flag);
    if (flag & valid_flags) {
      TEST_ASSERT(fd >= 0, `guest_memfd() with flag '0x${flag.toString(16)}' should succeed`);
      vm.p.close(fd);
    } else {
      TEST_ASSERT(fd < 0 && vm.p.errno === Errno.EINVAL, `guest_memfd() with flag '0x${flag.toString(16)}' should fail with EINVAL`);
    }
  }
}

/** __gmem_test(): a guest_memfd of `size` for one test function, closed after it. */
function __gmem_test(vm: KvmVm, flags: bigint, size: number, fn: (p: Process, fd: number, size: number) => void): void {
  const fd = vm_create_guest_memfd(vm, size, flags);
  fn(vm.p, fd, size);
  vm.p.close(fd);
}

/** gmem_test(): the same with the selftest's 4 pages. */
function gmem_test(vm: KvmVm, flags: bigint, fn: (p: Process, fd: number, size: number) => void): void {
  __gmem_test(vm, flags, page_size * 4, fn);
}

function __test_guest_memfd(vm: KvmVm, flags: bigint): void {
  test_create_guest_memfd_multiple(vm);
  test_create_guest_memfd_invalid_sizes(vm, flags);
  gmem_test(vm, flags, test_file_read_write);
  if (flags & BigInt(GUEST_MEMFD_FLAG_MMAP)) {
    if (flags & BigInt(GUEST_MEMFD_FLAG_INIT_SHARED)) {
      gmem_test(vm, flags, test_mmap_supported);
      gmem_test(vm, flags, test_fault_overflow);
      __gmem_test(vm, flags, PMD_SIZE, test_collapse);
    } else {
      gmem_test(vm, flags, test_fault_private);
    }
    gmem_test(vm, flags, test_mmap_cow);
  } else {
    gmem_test(vm, flags, test_mmap_not_supported);
  }
  gmem_test(vm, flags, test_file_size);
  gmem_test(vm, flags, test_fallocate);
  gmem_test(vm, flags, test_invalid_punch_hole);
}

function test_guest_memfd(host: SimHost, p: Process, vm_type: number): void {
  const vm = vm_create_barebones_type(p, vm_type);
  test_guest_memfd_flags(vm);
  __test_guest_memfd(vm, 0n);
  const flags = BigInt(vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_FLAGS));
  if (flags & BigInt(GUEST_MEMFD_FLAG_MMAP)) __test_guest_memfd(vm, BigInt(GUEST_MEMFD_FLAG_MMAP));
  /* MMAP should always be supported if INIT_SHARED is supported. */
  if (flags & BigInt(GUEST_MEMFD_FLAG_INIT_SHARED)) __test_guest_memfd(vm, BigInt(GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED));
  kvm_vm_free(vm);
  /* every guest_memfd was closed with the VM: nothing of them is left in memory */
  TEST_ASSERT_EQ(host.kernel.page_alloc.nr_free_pages(), free_pages_at_start.get(host));
}

const free_pages_at_start = new WeakMap<SimHost, number>();

/** main(): every VM type the host supports. */
function main(host: SimHost): number[] {
  const p = host.process();
  free_pages_at_start.set(host, host.kernel.page_alloc.nr_free_pages());
  TEST_REQUIRE(kvm_has_cap(p, KVM_CAP_GUEST_MEMFD));
  let vm_types = kvm_check_cap(p, KVM_CAP_VM_TYPES);
  if (!vm_types) vm_types = 1;
  const tested: number[] = [];
  for (let vm_type = 0; vm_type < 32; vm_type++) {
    if (!(vm_types & (1 << vm_type))) continue;
    test_guest_memfd(host, p, vm_type);
    tested.push(vm_type);
  }
  return tested;
}

function* guest_code(mem: bigint, size: bigint): GuestCode {
  const bytes = yield* guestLoad(mem, Number(size));
  const i = bytes.findIndex((b) => b !== 0xaa);
  yield* __GUEST_ASSERT(i < 0, 'mem[i] == 0xaa', `Guest expected 0xaa at offset ${i}, got 0x${bytes[i]?.toString(16)}`);
  yield* guestFill(mem, 0xff, Number(size));
  yield* GUEST_DONE();
}

/**
 * test_guest_memfd_guest(): host writes through an mmap() of a MMAP | INIT_SHARED guest_memfd are
 * what the guest reads (not zeroed again), and the guest's writes are what the host reads back.
 */
function test_guest_memfd_guest(host: SimHost): void {
  /*
   * Skip the first 4gb and slot0. slot0 maps <1gb and is used to back the guest's code, stack,
   * and page tables, and low memory contains the PCI hole and other MMIO regions to avoid.
   */
  const gpa = 1n << 32n;
  const slot = 1;
  const p = host.process();
  if (!kvm_check_cap(p, KVM_CAP_GUEST_MEMFD_FLAGS)) return;
  const { vm, vcpu } = __vm_create_with_one_vcpu(p, 1, guest_code);
  TEST_ASSERT(vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_FLAGS) & GUEST_MEMFD_FLAG_MMAP,
    `Default VM type should support MMAP, supported flags = 0x${vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_FLAGS).toString(16)}`);
  TEST_ASSERT(vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_FLAGS) & GUEST_MEMFD_FLAG_INIT_SHARED,
    `Default VM type should support INIT_SHARED, supported flags = 0x${vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_FLAGS).toString(16)}`);
  const size = vm.page_size;
  const fd = vm_create_guest_memfd(vm, size, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
  vm_set_user_memory_region2(vm, slot, KVM_MEM_GUEST_MEMFD, gpa, size, 0, fd, 0);
  let mem = kvm_mmap(p, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
  TEST_ASSERT_EQ(p.store(mem, new Uint8Array(size).fill(0xaa)), 0);
  kvm_munmap(p, mem, size);
  virt_map(vm, gpa, gpa, 1);
  vcpu_args_set(vcpu, gpa, size);
  vcpu_run(vcpu);
  TEST_ASSERT_EQ(get_ucall(vcpu), BigInt(UCALL_DONE));
  mem = kvm_mmap(p, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
  assert_bytes(p, mem, size, 0xff);
  p.close(fd);
  kvm_vm_free(vm);
}

describe('guest_memfd_test', () => {
  test('this machine (KVM_X86_DEFAULT_VM: MMAP | INIT_SHARED)', ({ host }) => {
    TEST_ASSERT_EQ(main(host), [0]);
  });

  test('a host with KVM_X86_SW_PROTECTED_VM (there: MMAP only)', ({ swHost }) => {
    TEST_ASSERT_EQ(main(swHost), [0, 1]);
  });

  test('test_guest_memfd_guest, on this machine and with SW_PROTECTED', ({ host, swHost }) => {
    test_guest_memfd_guest(host);
    test_guest_memfd_guest(swHost);
  });
});
