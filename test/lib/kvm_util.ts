/**
 * The two tiers of kvm_util.h (tools/testing/selftests/kvm/include/kvm_util.h): `__vm_ioctl()`
 * returns what C sees (the result, or -1 with the process's errno), `vm_ioctl()` asserts that it
 * succeeded and fails with the selftests' message:
 *
 *   KVM_SET_USER_MEMORY_REGION2 failed, rc: -1 errno: 22 (EINVAL)
 *
 * On these, the VM-level verbs of tools/testing/selftests/kvm/lib/kvm_util.c with the kernel
 * selftests' names and argument orders. One difference: a C selftest is one process that opens
 * /dev/kvm wherever it needs it, so the verbs that do so implicitly (vm_create_barebones,
 * vm_create_barebones_type, kvm_check_cap, kvm_has_cap) take the process, or a host to make one
 * on, as their first argument; every other verb finds the process in its `KvmVm`.
 *
 *   const vm = vm_create_barebones_type(swHost, KVM_X86_SW_PROTECTED_VM);
 *   vm_mem_add(vm, VM_MEM_SRC_ANONYMOUS, 0x100000000n, 1, 512, KVM_MEM_GUEST_MEMFD, -1, 0);
 *   vm_mem_set_private(vm, 0x100000000n, 0x200000);
 */
import { PAGE_SIZE } from '@cocosim/core';
import {
  FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, F_DUPFD, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MAP_ANONYMOUS,
  MAP_FAILED, MAP_PRIVATE, MAP_SHARED, MFD_CLOEXEC, MFD_HUGETLB, PROT_READ, PROT_WRITE, type Process,
} from '@cocosim/mm';
import {
  KVM_CHECK_EXTENSION, KVM_CREATE_GUEST_MEMFD, KVM_CREATE_VM, KVM_MEM_GUEST_MEMFD, KVM_MEMORY_ATTRIBUTE_PRIVATE,
  KVM_SET_MEMORY_ATTRIBUTES, KVM_SET_USER_MEMORY_REGION, KVM_SET_USER_MEMORY_REGION2, KVM_X86_DEFAULT_VM,
  KVM_X86_SW_PROTECTED_VM,
} from '@cocosim/kvm';
import { TEST_ASSERT, TEST_ASSERT_EQ, TEST_FAIL, __KVM_IOCTL_ERROR, __KVM_SYSCALL_ERROR } from './test_util.js';
import { Errno } from '@cocosim/core';
import {
  KVM_CREATE_VCPU, KVM_ENABLE_CAP, KVM_RUN, file_is_kvm_vcpu, kvm_arch_vcpu_ioctl_get_regs, kvm_arch_vcpu_ioctl_set_regs,
  kvm_exit_reason_name, kvm_vcpu_set_guest_program, type GuestPageTables, type GuestProgram, type KvmRegs, type KvmRun,
  type KvmVcpu,
} from '@cocosim/kvm';
import { UCALL_UNHANDLED, get_ucall, ucall_init, ucall_nr_pages_required, type Ucall } from './ucall.js';

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

/* ---- VM-level verbs (lib/kvm_util.c) ---- */

/** KVM_DEV_PATH */
export const KVM_DEV_PATH = '/dev/kvm';

/** A process, or anything that makes one (a test's SimHost). */
export type ProcessSource = Process | { process(): Process };

function as_process(src: ProcessSource): Process {
  return 'process' in src && typeof src.process === 'function' ? src.process() : (src as Process);
}

/** The u64 of a selftest argument given as number or bigint. */
function u64(x: number | bigint): bigint {
  return BigInt.asUintN(64, BigInt(x));
}

/**
 * struct kvm_userspace_memory_region2 as the ioctl takes it (kernel field names; u64 fields as
 * bigints, u32 as numbers).
 */
export interface KvmUserspaceMemoryRegion2 {
  slot: number;
  flags: number;
  guest_phys_addr: bigint;
  memory_size: bigint;
  userspace_addr: bigint;
  guest_memfd_offset: bigint;
  guest_memfd: number;
}

/** enum vm_mem_backing_src_type, the sources this harness can back a region with. */
export const VM_MEM_SRC_ANONYMOUS = 0;
export const VM_MEM_SRC_ANONYMOUS_THP = 1;
export const VM_MEM_SRC_SHMEM = 2;
export type VmMemBackingSrcType = typeof VM_MEM_SRC_ANONYMOUS | typeof VM_MEM_SRC_ANONYMOUS_THP | typeof VM_MEM_SRC_SHMEM;

/** struct userspace_mem_region: what the harness added to a VM with vm_mem_add(). */
export interface UserspaceMemRegion {
  readonly region: KvmUserspaceMemoryRegion2;
  /** The memfd backing a shared source, or -1. */
  readonly fd: number;
  readonly backing_src_type: VmMemBackingSrcType;
  readonly mmap_start: bigint;
  readonly mmap_size: bigint;
  /** Where guest memory starts in the host (mmap_start: no alignment padding on x86). */
  readonly host_mem: bigint;
}

/** struct kvm_vm, the parts a test uses: its process, fds, type and the regions it added. */
export interface KvmVm extends KvmFd {
  /** The /dev/kvm fd the VM was created on (vm->kvm_fd). */
  readonly kvm_fd: number;
  /** vm->type (KVM_CREATE_VM's argument). */
  readonly type: number;
  readonly page_size: number;
  readonly page_shift: number;
  /** vm->regions.slot_hash: the regions vm_mem_add() created, by slot. */
  readonly regions: Map<number, UserspaceMemRegion>;
}

/** open_kvm_dev_path_or_exit(): /dev/kvm, failing the test when it cannot be opened. */
export function open_kvm_dev_path_or_exit(p: Process): number {
  const fd = p.open(KVM_DEV_PATH);
  TEST_ASSERT(fd >= 0, __KVM_SYSCALL_ERROR(`open(${KVM_DEV_PATH})`, fd, p.errno));
  return fd;
}

/** kvm_check_cap(cap): KVM_CHECK_EXTENSION on a fresh /dev/kvm fd, asserted to succeed. */
export function kvm_check_cap(src: ProcessSource, cap: number): number {
  const p = as_process(src);
  const kvm_fd = open_kvm_dev_path_or_exit(p);
  const ret = p.ioctl(kvm_fd, KVM_CHECK_EXTENSION, cap);
  TEST_ASSERT(ret >= 0, __KVM_IOCTL_ERROR('KVM_CHECK_EXTENSION', ret, p.errno));
  p.close(kvm_fd);
  return ret;
}

/** kvm_has_cap(cap). */
export function kvm_has_cap(src: ProcessSource, cap: number): boolean {
  return kvm_check_cap(src, cap) > 0;
}

/** vm_check_cap(vm, cap): KVM_CHECK_EXTENSION on the VM fd (the per-VM answer). */
export function vm_check_cap(vm: KvmVm, cap: number): number {
  return vm_ioctl(vm, KVM_CHECK_EXTENSION, cap, 'KVM_CHECK_EXTENSION');
}

/** ____vm_create(shape): KVM_CREATE_VM of `type` and little else. */
export function ____vm_create(src: ProcessSource, type: number): KvmVm {
  const p = as_process(src);
  const kvm_fd = open_kvm_dev_path_or_exit(p);
  const fd = p.ioctl(kvm_fd, KVM_CREATE_VM, type);
  TEST_ASSERT(fd >= 0, __KVM_IOCTL_ERROR('KVM_CREATE_VM', fd, p.errno));
  return { p, fd, kvm_fd, type, page_size: PAGE_SIZE, page_shift: 12, regions: new Map() };
}

/** vm_create_barebones(): a KVM_X86_DEFAULT_VM with no memory and no vCPUs. */
export function vm_create_barebones(src: ProcessSource): KvmVm {
  return ____vm_create(src, KVM_X86_DEFAULT_VM);
}

/** vm_create_barebones_type(type). */
export function vm_create_barebones_type(src: ProcessSource, type: number): KvmVm {
  return ____vm_create(src, type);
}

/** vm_create_barebones_protected_vm() (x86): a KVM_X86_SW_PROTECTED_VM with no memory and no vCPUs. */
export function vm_create_barebones_protected_vm(src: ProcessSource): KvmVm {
  return ____vm_create(src, KVM_X86_SW_PROTECTED_VM);
}

/** kvm_vm_free(): unmap and close what the harness created for the VM, then the VM and /dev/kvm fds. */
export function kvm_vm_free(vm: KvmVm): void {
  for (const slot of [...vm.regions.keys()]) __vm_mem_region_delete(vm, vm.regions.get(slot)!, false);
  vm_vcpus_release(vm);
  TEST_ASSERT_EQ(vm.p.close(vm.fd), 0, 'close(vm->fd)');
  TEST_ASSERT_EQ(vm.p.close(vm.kvm_fd), 0, 'close(vm->kvm_fd)');
}

/** __vm_set_user_memory_region(): KVM_SET_USER_MEMORY_REGION, the raw result. */
export function __vm_set_user_memory_region(vm: KvmVm, slot: number, flags: number, gpa: number | bigint,
  size: number | bigint, hva: number | bigint): number {
  const region = { slot, flags, guest_phys_addr: u64(gpa), memory_size: u64(size), userspace_addr: u64(hva) };
  return __vm_ioctl(vm, KVM_SET_USER_MEMORY_REGION, region);
}

/** vm_set_user_memory_region(). */
export function vm_set_user_memory_region(vm: KvmVm, slot: number, flags: number, gpa: number | bigint,
  size: number | bigint, hva: number | bigint): void {
  const ret = __vm_set_user_memory_region(vm, slot, flags, gpa, size, hva);
  TEST_ASSERT(ret === 0, __KVM_IOCTL_ERROR('KVM_SET_USER_MEMORY_REGION', ret, vm.p.errno));
}

/** __vm_set_user_memory_region2(): KVM_SET_USER_MEMORY_REGION2, the raw result. */
export function __vm_set_user_memory_region2(vm: KvmVm, slot: number, flags: number, gpa: number | bigint,
  size: number | bigint, hva: number | bigint, guest_memfd: number, guest_memfd_offset: number | bigint): number {
  const region: KvmUserspaceMemoryRegion2 = {
    slot, flags, guest_phys_addr: u64(gpa), memory_size: u64(size), userspace_addr: u64(hva),
    // A u32 in the struct: -1 is 0xffffffff.
    guest_memfd: guest_memfd >>> 0, guest_memfd_offset: u64(guest_memfd_offset),
  };
  return __vm_ioctl(vm, KVM_SET_USER_MEMORY_REGION2, region);
}

/** vm_set_user_memory_region2(). */
export function vm_set_user_memory_region2(vm: KvmVm, slot: number, flags: number, gpa: number | bigint,
  size: number | bigint, hva: number | bigint, guest_memfd: number, guest_memfd_offset: number | bigint): void {
  const ret = __vm_set_user_memory_region2(vm, slot, flags, gpa, size, hva, guest_memfd, guest_memfd_offset);
  TEST_ASSERT(ret === 0, __KVM_IOCTL_ERROR('KVM_SET_USER_MEMORY_REGION2', ret, vm.p.errno));
}

/** __vm_create_guest_memfd(vm, size, flags): KVM_CREATE_GUEST_MEMFD, the raw result. */
export function __vm_create_guest_memfd(vm: KvmVm, size: number | bigint, flags: number | bigint): number {
  return __vm_ioctl(vm, KVM_CREATE_GUEST_MEMFD, { size: u64(size), flags: u64(flags) });
}

/** vm_create_guest_memfd(vm, size, flags): the new guest_memfd's fd. */
export function vm_create_guest_memfd(vm: KvmVm, size: number | bigint, flags: number | bigint): number {
  const fd = __vm_create_guest_memfd(vm, size, flags);
  TEST_ASSERT(fd >= 0, __KVM_IOCTL_ERROR('KVM_CREATE_GUEST_MEMFD', fd, vm.p.errno));
  return fd;
}

/**
 * kvm_memfd_alloc(size, hugepages): a memfd of `size` (hugetlbfs with `hugepages`), its pages
 * punched out so that it starts empty.
 */
export function kvm_memfd_alloc(p: Process, size: number | bigint, hugepages: boolean): number {
  const fd = p.memfd_create('kvm_selftest', MFD_CLOEXEC | (hugepages ? MFD_HUGETLB : 0));
  TEST_ASSERT(fd >= 0, __KVM_SYSCALL_ERROR('memfd_create()', fd, p.errno));
  let r = p.ftruncate(fd, size);
  TEST_ASSERT(r === 0, __KVM_SYSCALL_ERROR('ftruncate()', r, p.errno));
  r = p.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, size);
  TEST_ASSERT(r === 0, __KVM_SYSCALL_ERROR('fallocate()', r, p.errno));
  return fd;
}

/**
 * vm_mem_add(): back `npages` at `guest_paddr` with a fresh mapping of `src_type` and register it
 * as `slot` with KVM_SET_USER_MEMORY_REGION2. With KVM_MEM_GUEST_MEMFD, `guest_memfd` < 0
 * creates a guest_memfd of the region's size (offset must be 0); otherwise the region gets its
 * own dup of `guest_memfd`, closed when the region is deleted.
 */
export function vm_mem_add(vm: KvmVm, src_type: VmMemBackingSrcType, guest_paddr: number | bigint, slot: number,
  npages: number, flags: number, guest_memfd: number, guest_memfd_offset: number | bigint): void {
  const p = vm.p;
  const gpa = u64(guest_paddr);
  const mem_size = BigInt(npages) * BigInt(vm.page_size);
  TEST_ASSERT(gpa % BigInt(vm.page_size) === 0n,
    `Guest physical address not on a page boundary.\n  guest_paddr: 0x${gpa.toString(16)} vm->page_size: 0x${vm.page_size.toString(16)}`);
  const overlap = userspace_mem_region_find(vm, gpa, gpa + mem_size - 1n);
  if (overlap !== undefined) {
    TEST_FAIL(`overlapping userspace_mem_region already exists\n  requested guest_paddr: 0x${gpa.toString(16)} npages: 0x${npages.toString(16)}\n` +
      `  existing guest_paddr: 0x${overlap.region.guest_phys_addr.toString(16)} size: 0x${overlap.region.memory_size.toString(16)}`);
  }
  if (vm.regions.has(slot)) TEST_FAIL(`A mem region with the requested slot already exists.\n  requested slot: ${slot}`);

  const fd = src_type === VM_MEM_SRC_SHMEM ? kvm_memfd_alloc(p, mem_size, false) : -1;
  const mmap_start = p.mmap(0, mem_size, PROT_READ | PROT_WRITE,
    src_type === VM_MEM_SRC_SHMEM ? MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS, fd, 0);
  TEST_ASSERT(mmap_start !== MAP_FAILED, __KVM_SYSCALL_ERROR('mmap()', -1, p.errno));
  if (src_type !== VM_MEM_SRC_SHMEM) {
    const ret = p.madvise(mmap_start, mem_size, src_type === VM_MEM_SRC_ANONYMOUS ? MADV_NOHUGEPAGE : MADV_HUGEPAGE);
    TEST_ASSERT(ret === 0, `madvise failed, addr: 0x${mmap_start.toString(16)} length: 0x${mem_size.toString(16)}`);
  }

  let gmem_fd = -1;
  if (flags & KVM_MEM_GUEST_MEMFD) {
    if (guest_memfd < 0) {
      TEST_ASSERT(u64(guest_memfd_offset) === 0n, 'Offset must be zero when creating new guest_memfd');
      gmem_fd = vm_create_guest_memfd(vm, mem_size, 0);
    } else {
      // A unique fd per memslot, so that deleting the region can close it.
      gmem_fd = p.fcntl(guest_memfd, F_DUPFD, 0);
      TEST_ASSERT(gmem_fd >= 0, __KVM_SYSCALL_ERROR('dup()', gmem_fd, p.errno));
    }
  }

  const region: KvmUserspaceMemoryRegion2 = {
    slot, flags, guest_phys_addr: gpa, memory_size: mem_size, userspace_addr: mmap_start,
    guest_memfd: gmem_fd >>> 0, guest_memfd_offset: gmem_fd >= 0 ? u64(guest_memfd_offset) : 0n,
  };
  const ret = __vm_ioctl(vm, KVM_SET_USER_MEMORY_REGION2, region);
  TEST_ASSERT(ret === 0, `KVM_SET_USER_MEMORY_REGION2 IOCTL failed,\n  rc: ${ret} errno: ${p.errno}\n  slot: ${slot} flags: 0x${flags.toString(16)}\n` +
    `  guest_phys_addr: 0x${gpa.toString(16)} size: 0x${mem_size.toString(16)} guest_memfd: ${gmem_fd}`);
  vm.regions.set(slot, { region, fd, backing_src_type: src_type, mmap_start, mmap_size: mem_size, host_mem: mmap_start });
}

/** vm_userspace_mem_region_add(): vm_mem_add() without a guest_memfd of the caller's. */
export function vm_userspace_mem_region_add(vm: KvmVm, src_type: VmMemBackingSrcType, guest_paddr: number | bigint,
  slot: number, npages: number, flags: number): void {
  vm_mem_add(vm, src_type, guest_paddr, slot, npages, flags, -1, 0);
}

/** userspace_mem_region_find(vm, start, end): the region overlapping the inclusive gpa range, if any. */
export function userspace_mem_region_find(vm: KvmVm, start: bigint, end: bigint): UserspaceMemRegion | undefined {
  for (const r of vm.regions.values()) {
    const lo = r.region.guest_phys_addr;
    const hi = lo + r.region.memory_size - 1n;
    if (start <= hi && end >= lo) return r;
  }
  return undefined;
}

/** memslot2region(vm, slot): fails the test when the harness added no such slot. */
export function memslot2region(vm: KvmVm, slot: number): UserspaceMemRegion {
  const r = vm.regions.get(slot);
  if (r === undefined) TEST_FAIL(`No mem region with the requested slot found,\n  requested slot: ${slot}`);
  return r;
}

/** vm_mem_region_set_flags(vm, slot, flags): re-issue the region with new flags. */
export function vm_mem_region_set_flags(vm: KvmVm, slot: number, flags: number): void {
  const r = memslot2region(vm, slot);
  r.region.flags = flags;
  const ret = __vm_ioctl(vm, KVM_SET_USER_MEMORY_REGION2, r.region);
  TEST_ASSERT(ret === 0, `KVM_SET_USER_MEMORY_REGION2 IOCTL failed,\n  rc: ${ret} errno: ${vm.p.errno} slot: ${slot} flags: 0x${flags.toString(16)}`);
}

/** vm_mem_region_move(vm, slot, new_gpa). */
export function vm_mem_region_move(vm: KvmVm, slot: number, new_gpa: number | bigint): void {
  const r = memslot2region(vm, slot);
  r.region.guest_phys_addr = u64(new_gpa);
  const ret = __vm_ioctl(vm, KVM_SET_USER_MEMORY_REGION2, r.region);
  TEST_ASSERT(ret === 0, `KVM_SET_USER_MEMORY_REGION2 failed\nret: ${ret} errno: ${vm.p.errno} slot: ${slot} new_gpa: 0x${u64(new_gpa).toString(16)}`);
}

/**
 * __vm_mem_region_delete(): delete the memslot (when `unlink`, as vm_mem_region_delete does;
 * kvm_vm_free leaves them to the VM's release), unmap the host memory, close the region's fds.
 */
function __vm_mem_region_delete(vm: KvmVm, r: UserspaceMemRegion, unlink: boolean): void {
  if (unlink) {
    r.region.memory_size = 0n;
    vm_ioctl(vm, KVM_SET_USER_MEMORY_REGION2, r.region, 'KVM_SET_USER_MEMORY_REGION2');
  }
  vm.regions.delete(r.region.slot);
  TEST_ASSERT_EQ(vm.p.munmap(r.mmap_start, r.mmap_size), 0, 'munmap()');
  if (r.fd >= 0) vm.p.close(r.fd);
  if (r.region.flags & KVM_MEM_GUEST_MEMFD) vm.p.close(r.region.guest_memfd | 0);
}

/** vm_mem_region_delete(vm, slot). */
export function vm_mem_region_delete(vm: KvmVm, slot: number): void {
  __vm_mem_region_delete(vm, memslot2region(vm, slot), true);
}

/** addr_gpa2hva(vm, gpa): the host address of guest memory the harness added. */
export function addr_gpa2hva(vm: KvmVm, gpa: number | bigint): bigint {
  const g = u64(gpa);
  const r = userspace_mem_region_find(vm, g, g);
  if (r === undefined) TEST_FAIL(`No vm physical memory at 0x${g.toString(16)}`);
  return r.host_mem + (g - r.region.guest_phys_addr);
}

/**
 * kvm_gpa_to_guest_memfd(vm, gpa): the guest_memfd backing `gpa`, the offset of gpa in it and
 * how many bytes of the region follow it.
 */
export function kvm_gpa_to_guest_memfd(vm: KvmVm, gpa: number | bigint): { fd: number; fd_offset: bigint; nr_bytes: bigint } {
  const g = u64(gpa);
  const r = userspace_mem_region_find(vm, g, g);
  TEST_ASSERT(r !== undefined && (r.region.flags & KVM_MEM_GUEST_MEMFD) !== 0,
    `Private memory region not found for GPA 0x${g.toString(16)}`);
  const offset = g - r.region.guest_phys_addr;
  return { fd: r.region.guest_memfd | 0, fd_offset: r.region.guest_memfd_offset + offset, nr_bytes: r.region.memory_size - offset };
}

/** vm_set_memory_attributes(vm, gpa, size, attributes): KVM_SET_MEMORY_ATTRIBUTES, asserted. */
export function vm_set_memory_attributes(vm: KvmVm, gpa: number | bigint, size: number | bigint, attributes: number | bigint): void {
  const attrs = u64(attributes);
  // KVM_SET_MEMORY_ATTRIBUTES overwrites _all_ attributes: the selftest flows know only PRIVATE.
  TEST_ASSERT(attrs === 0n || attrs === BigInt(KVM_MEMORY_ATTRIBUTE_PRIVATE), 'Update me to support multiple attributes!');
  vm_ioctl(vm, KVM_SET_MEMORY_ATTRIBUTES, { address: u64(gpa), size: u64(size), attributes: attrs, flags: 0n },
    'KVM_SET_MEMORY_ATTRIBUTES');
}

/** vm_mem_set_private(vm, gpa, size). */
export function vm_mem_set_private(vm: KvmVm, gpa: number | bigint, size: number | bigint): void {
  vm_set_memory_attributes(vm, gpa, size, KVM_MEMORY_ATTRIBUTE_PRIVATE);
}

/** vm_mem_set_shared(vm, gpa, size). */
export function vm_mem_set_shared(vm: KvmVm, gpa: number | bigint, size: number | bigint): void {
  vm_set_memory_attributes(vm, gpa, size, 0);
}

/**
 * vm_guest_mem_fallocate(vm, gpa, size, punch_hole): fallocate (KEEP_SIZE, or PUNCH_HOLE) the
 * guest_memfd ranges behind [gpa, gpa + size), region by region.
 */
export function vm_guest_mem_fallocate(vm: KvmVm, base: number | bigint, size: number | bigint, punch_hole: boolean): void {
  const mode = FALLOC_FL_KEEP_SIZE | (punch_hole ? FALLOC_FL_PUNCH_HOLE : 0);
  const end = u64(base) + u64(size);
  let len: bigint;
  for (let gpa = u64(base); gpa < end; gpa += len) {
    const { fd, fd_offset, nr_bytes } = kvm_gpa_to_guest_memfd(vm, gpa);
    len = end - gpa < nr_bytes ? end - gpa : nr_bytes;
    const ret = vm.p.fallocate(fd, mode, fd_offset, len);
    TEST_ASSERT(ret === 0, `fallocate() failed to ${punch_hole ? 'punch hole' : 'allocate'} at ${gpa.toString(16)} ` +
      `(len = ${len}), fd = ${fd}, mode = ${mode.toString(16)}, offset = ${fd_offset.toString(16)}, errno = ${vm.p.errno}`);
  }
}

/** vm_guest_mem_punch_hole(vm, gpa, size). */
export function vm_guest_mem_punch_hole(vm: KvmVm, gpa: number | bigint, size: number | bigint): void {
  vm_guest_mem_fallocate(vm, gpa, size, true);
}

/** vm_guest_mem_allocate(vm, gpa, size). */
export function vm_guest_mem_allocate(vm: KvmVm, gpa: number | bigint, size: number | bigint): void {
  vm_guest_mem_fallocate(vm, gpa, size, false);
}

/* ---- vCPUs (lib/kvm_util.c, lib/x86/processor.c) ---- */

/**
 * struct kvm_vcpu: its VM, id and fd, and `run`, the struct kvm_run the C harness mmaps from the
 * vCPU fd. The guest code a vCPU runs is a guest program (kvm/src/guest.ts): vm_vcpu_add() loads
 * it where the C harness points RIP at guest_code.
 */
export interface KvmVcpuFd extends KvmFd {
  readonly vm: KvmVm;
  readonly id: number;
  readonly run: KvmRun;
}

/** struct vm_shape: the VM type; the mode is always VM_MODE_DEFAULT (4-level paging, 4K pages). */
export interface VmShape {
  readonly type: number;
}

/** VM_SHAPE_DEFAULT. */
export const VM_SHAPE_DEFAULT: VmShape = { type: KVM_X86_DEFAULT_VM };

/** DEFAULT_GUEST_PHY_PAGES and DEFAULT_STACK_PGS (include/kvm_util.h). */
export const DEFAULT_GUEST_PHY_PAGES = 512;
export const DEFAULT_STACK_PGS = 5;

/** The harness's guest side of a VM: the guest page tables virt_map() fills, and its vCPUs. */
interface VmGuest {
  /** GVA ranges and the GPAs they map to (4-level page tables, here as ranges). */
  readonly maps: { gva: bigint; gpa: bigint; size: bigint }[];
  readonly vcpus: KvmVcpuFd[];
}

const vm_guests = new WeakMap<KvmVm, VmGuest>();
/** The kernel's struct kvm_vcpu behind a vCPU fd: what the C harness's mmap of the fd reaches. */
const kernel_vcpus = new WeakMap<KvmVcpuFd, KvmVcpu>();

function vm_guest(vm: KvmVm): VmGuest {
  let g = vm_guests.get(vm);
  if (g === undefined) vm_guests.set(vm, (g = { maps: [], vcpus: [] }));
  return g;
}

/** The guest's page-table walk for a VM: GVA -> GPA, undefined where nothing is mapped (#PF). */
function vm_page_tables(vm: KvmVm): GuestPageTables {
  const maps = vm_guest(vm).maps;
  return (gva) => {
    for (const m of maps) if (gva >= m.gva && gva < m.gva + m.size) return m.gpa + (gva - m.gva);
    return undefined;
  };
}

/**
 * virt_map(vm, vaddr, paddr, npages): map guest virtual pages to guest physical ones in the
 * guest's page tables.
 */
export function virt_map(vm: KvmVm, vaddr: number | bigint, paddr: number | bigint, npages: number): void {
  const gva = u64(vaddr);
  const gpa = u64(paddr);
  const size = BigInt(npages) * BigInt(vm.page_size);
  TEST_ASSERT(gva % BigInt(vm.page_size) === 0n && gpa % BigInt(vm.page_size) === 0n, 'virt_map: addresses must be page aligned');
  TEST_ASSERT(gva + size > gva, 'Vaddr overflow');
  vm_guest(vm).maps.push({ gva, gpa, size });
}

/**
 * vm_nr_pages_required(): memslot 0's pages for the harness's own guest memory, the ucall pool
 * and the vCPUs' stacks, plus what the test asks for.
 */
function vm_nr_pages_required(vm_page_size: number, nr_runnable_vcpus: number, extra_mem_pages: number): number {
  return DEFAULT_GUEST_PHY_PAGES + ucall_nr_pages_required(vm_page_size) + nr_runnable_vcpus * DEFAULT_STACK_PGS + extra_mem_pages;
}

/**
 * __vm_create(shape, nr_runnable_vcpus, nr_extra_pages): the VM, memslot 0 (anonymous memory at
 * GPA 0, identity-mapped in the guest's page tables) and the ucall pool in it.
 */
export function __vm_create(src: ProcessSource, shape: VmShape, nr_runnable_vcpus: number, nr_extra_pages: number): KvmVm {
  const vm = ____vm_create(src, shape.type);
  const nr_pages = vm_nr_pages_required(vm.page_size, nr_runnable_vcpus, nr_extra_pages);
  vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, 0, 0, nr_pages, 0);
  virt_map(vm, 0, 0, nr_pages);
  ucall_init(vm);
  return vm;
}

/** vm_create(nr_runnable_vcpus) with the default shape. */
export function vm_create(src: ProcessSource, nr_runnable_vcpus: number): KvmVm {
  return __vm_create(src, VM_SHAPE_DEFAULT, nr_runnable_vcpus, 0);
}

/** The kernel vCPU of a harness vCPU. */
export function vcpu_kernel(vcpu: KvmVcpuFd): KvmVcpu {
  return kernel_vcpus.get(vcpu)!;
}

/**
 * vm_vcpu_add(vm, vcpu_id, guest_code): KVM_CREATE_VCPU, and the guest program loaded at the
 * vCPU's RIP with the VM's guest page tables.
 */
export function vm_vcpu_add(vm: KvmVm, vcpu_id: number, guest_code: GuestProgram): KvmVcpuFd {
  const fd = vm_ioctl(vm, KVM_CREATE_VCPU, vcpu_id, 'KVM_CREATE_VCPU');
  const file = vm.p.task.files.lookup(fd);
  TEST_ASSERT(file !== undefined && file_is_kvm_vcpu(file), `vCPU fd ${fd} is no vCPU file`);
  const kvcpu = file.private_data as KvmVcpu;
  kvm_vcpu_set_guest_program(kvcpu, guest_code, { page_tables: vm_page_tables(vm) });
  const vcpu: KvmVcpuFd = { vm, id: vcpu_id, p: vm.p, fd, run: kvcpu.run };
  kernel_vcpus.set(vcpu, kvcpu);
  vm_guest(vm).vcpus.push(vcpu);
  return vcpu;
}

/** __vm_create_with_vcpus(shape, nr_vcpus, extra_mem_pages, guest_code): the VM and vCPUs 0..nr-1. */
export function __vm_create_with_vcpus(src: ProcessSource, shape: VmShape, nr_vcpus: number, extra_mem_pages: number,
  guest_code: GuestProgram): { vm: KvmVm; vcpus: KvmVcpuFd[] } {
  const vm = __vm_create(src, shape, nr_vcpus, extra_mem_pages);
  const vcpus = Array.from({ length: nr_vcpus }, (_, i) => vm_vcpu_add(vm, i, guest_code));
  return { vm, vcpus };
}

/** __vm_create_with_one_vcpu(vcpu, extra_mem_pages, guest_code). */
export function __vm_create_with_one_vcpu(src: ProcessSource, extra_mem_pages: number, guest_code: GuestProgram): { vm: KvmVm; vcpu: KvmVcpuFd } {
  const { vm, vcpus } = __vm_create_with_vcpus(src, VM_SHAPE_DEFAULT, 1, extra_mem_pages, guest_code);
  return { vm, vcpu: vcpus[0]! };
}

/** vm_create_with_one_vcpu(vcpu, guest_code). */
export function vm_create_with_one_vcpu(src: ProcessSource, guest_code: GuestProgram): { vm: KvmVm; vcpu: KvmVcpuFd } {
  return __vm_create_with_one_vcpu(src, 0, guest_code);
}

/** vm_create_shape_with_one_vcpu(shape, vcpu, guest_code). */
export function vm_create_shape_with_one_vcpu(src: ProcessSource, shape: VmShape, guest_code: GuestProgram): { vm: KvmVm; vcpu: KvmVcpuFd } {
  const { vm, vcpus } = __vm_create_with_vcpus(src, shape, 1, 0, guest_code);
  return { vm, vcpu: vcpus[0]! };
}

/** vm_vcpu_rm() of every vCPU, as kvm_vm_release() does before closing the VM. */
function vm_vcpus_release(vm: KvmVm): void {
  const g = vm_guest(vm);
  for (const vcpu of g.vcpus) TEST_ASSERT_EQ(vm.p.close(vcpu.fd), 0, 'close(vcpu->fd)');
  g.vcpus.length = 0;
}

/**
 * vcpu_regs_get(vcpu): KVM_GET_REGS. The harness reaches kvm_arch_vcpu_ioctl_get_regs() through
 * the vCPU it created, as the dispatch of kvm_vcpu_ioctl() would.
 */
export function vcpu_regs_get(vcpu: KvmVcpuFd): KvmRegs {
  const regs = {} as KvmRegs;
  const ret = kvm_arch_vcpu_ioctl_get_regs(vcpu_kernel(vcpu), regs);
  TEST_ASSERT(ret === 0, __KVM_IOCTL_ERROR('KVM_GET_REGS', ret, -ret));
  return regs;
}

/** vcpu_regs_set(vcpu, regs): KVM_SET_REGS. */
export function vcpu_regs_set(vcpu: KvmVcpuFd, regs: KvmRegs): void {
  const ret = kvm_arch_vcpu_ioctl_set_regs(vcpu_kernel(vcpu), regs);
  TEST_ASSERT(ret === 0, __KVM_IOCTL_ERROR('KVM_SET_REGS', ret, -ret));
}

/** vcpu_args_set(vcpu, num, ...): the first six arguments of guest_code (rdi, rsi, rdx, rcx, r8, r9). */
export function vcpu_args_set(vcpu: KvmVcpuFd, ...args: (number | bigint)[]): void {
  TEST_ASSERT(args.length >= 1 && args.length <= 6, `Unsupported number of args,\n  num: ${args.length}`);
  const regs = vcpu_regs_get(vcpu);
  const names = ['rdi', 'rsi', 'rdx', 'rcx', 'r8', 'r9'] as const;
  args.forEach((a, i) => { regs[names[i]!] = u64(a); });
  vcpu_regs_set(vcpu, regs);
}

/** __vcpu_run(vcpu): KVM_RUN, the raw result. */
export function __vcpu_run(vcpu: KvmVcpuFd): number {
  return __vcpu_ioctl(vcpu, KVM_RUN, 0);
}

/** _vcpu_run(vcpu): KVM_RUN again while a signal interrupts it (EINTR); then no unhandled guest exception. */
export function _vcpu_run(vcpu: KvmVcpuFd): number {
  let rc: number;
  do rc = __vcpu_run(vcpu);
  while (rc === -1 && vcpu.p.errno === Errno.EINTR);
  if (rc === 0) assert_on_unhandled_exception(vcpu);
  return rc;
}

/** vcpu_run(vcpu): KVM_RUN, asserted to return 0. */
export function vcpu_run(vcpu: KvmVcpuFd): void {
  const ret = _vcpu_run(vcpu);
  TEST_ASSERT(ret === 0, __KVM_IOCTL_ERROR('KVM_RUN', ret, vcpu.p.errno));
}

/**
 * vcpu_run_complete_io(vcpu): let KVM finish the pending I/O without entering the guest (KVM_RUN
 * with immediate_exit), which must exit with EINTR.
 */
export function vcpu_run_complete_io(vcpu: KvmVcpuFd): void {
  vcpu.run.immediate_exit = 1;
  const ret = __vcpu_run(vcpu);
  vcpu.run.immediate_exit = 0;
  TEST_ASSERT(ret === -1 && vcpu.p.errno === Errno.EINTR, `KVM_RUN IOCTL didn't exit immediately, rc: ${ret}, errno: ${vcpu.p.errno}`);
}

/** assert_on_unhandled_exception(vcpu): a UCALL_UNHANDLED from the guest fails the test. */
export function assert_on_unhandled_exception(vcpu: KvmVcpuFd): void {
  const uc: Ucall = { cmd: 0n, args: [], buffer: '', hva: 0n };
  if (get_ucall(vcpu, uc) === BigInt(UCALL_UNHANDLED)) TEST_FAIL(`Unexpected exception (vector:0x${uc.args[0]!.toString(16)})`);
}

/** vm_enable_cap(vm, cap, arg0): KVM_ENABLE_CAP, asserted. */
export function vm_enable_cap(vm: KvmVm, cap: number, arg0: number | bigint): void {
  vm_ioctl(vm, KVM_ENABLE_CAP, { cap, flags: 0, args: [u64(arg0), 0n, 0n, 0n] }, 'KVM_ENABLE_CAP');
}

/** exit_reason_str(exit_reason): the KVM_EXIT_* name without the prefix ("MMIO"), or "Unknown". */
export function exit_reason_str(exit_reason: number): string {
  return kvm_exit_reason_name(exit_reason)?.replace(/^KVM_EXIT_/, '') ?? 'Unknown';
}

/** TEST_ASSERT_KVM_EXIT_REASON(vcpu, expected). */
export function TEST_ASSERT_KVM_EXIT_REASON(vcpu: KvmVcpuFd, expected: number): void {
  const exit_reason = vcpu.run.exit_reason;
  TEST_ASSERT(exit_reason === expected,
    `Wanted KVM exit reason: ${expected} (${exit_reason_str(expected)}), got: ${exit_reason} (${exit_reason_str(exit_reason)})`);
}

/** kvm_fallocate(fd, mode, offset, len) (include/kvm_util.h): fallocate(), asserted. */
export function kvm_fallocate(p: Process, fd: number, mode: number, offset: number | bigint, len: number | bigint): void {
  const ret = p.fallocate(fd, mode, offset, len);
  TEST_ASSERT(ret === 0, __KVM_SYSCALL_ERROR('fallocate()', ret, p.errno));
}
