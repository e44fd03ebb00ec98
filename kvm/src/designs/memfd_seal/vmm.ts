/**
 * The VMM side of the fd-based series (designs.md D5, shared with D6 and D7): Chao Peng's QEMU
 * "memory-backend-memfd-private" (TDX QEMU tree, "[PATCH 61/99] memfd: Add private memfd host
 * memory backend", 24 Nov 2021: "this new object will have two memfds, one is for share memory
 * which can be mmaped, the other is for private memory which has F_SEAL_INACCESSIBLE flag and can
 * not be accessed from userspace"). Guest RAM is
 *   - the shared half: a memfd ("memory-backend-memfd-shared", qemu_memfd_create(): MFD_CLOEXEC,
 *     ftruncate) mapped MAP_SHARED, the memslot's userspace_addr;
 *   - the private half: the design's private fd, sized to the guest;
 *   - one KVM_SET_USER_MEMORY_REGION slot with KVM_MEM_PRIVATE and the private fd at offset 0
 *     (private_fd/private_offset, or v10's restricted_fd/restricted_offset).
 *
 * D5's conversion is QEMU's ram_block_convert_range() as Chao Peng posted it for v3 (reply of
 * 4 Jan 2022, 20220104091008.GA21806@chaop.bj.intel.com): discard the range in the fd the guest
 * leaves (FALLOC_FL_PUNCH_HOLE), then fallocate() it in the other. Since "a page is private only
 * when it's already allocated in the backing store fd", the private fd's fallocate (to private)
 * and punch (to shared) are the conversion itself; only the shared memfd's punch is the discard
 * that policy.discard controls.
 */
import {
  FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, MAP_FAILED, MAP_SHARED, MFD_CLOEXEC, PROT_READ, PROT_WRITE,
} from '@cocosim/mm';
import type { CvmDesign, CvmVm } from '../../cvm.js';
import { KVM_SET_USER_MEMORY_REGION } from '../../uapi.js';
import { MEMFILE_ABI, type PrivateFdAbi } from './kvm.js';
import { KVM_MEM_PRIVATE, MFD_INACCESSIBLE } from './uapi.js';

/** What a VMM of the fd-based series keeps per VM. */
export interface PrivateFdVmmState {
  /** The shared half: a memfd and its MAP_SHARED mapping (the memslot's userspace_addr). */
  readonly memfd: number;
  readonly hva: bigint;
  /** The private half: the design's private fd. */
  readonly private_fd: number;
}

/** How one design of the series creates its private fd and names the memslot's fields. */
export interface PrivateFdVmmOps {
  /** The per-VM state key (the design's name). */
  readonly key: string;
  readonly abi: PrivateFdAbi;
  /** The private fd for `size` bytes of guest memory, sized; -1 with p.errno on failure. */
  create_private_fd(vm: CvmVm): number;
}

/** The private and shared files of `vm` under `key`, as CvmDesign.private_fd/shared_fd give them. */
export function private_fd_vmm_files(key: string): Pick<CvmDesign, 'private_fd' | 'shared_fd'> {
  return {
    private_fd: (vm, gpa) => ({ fd: private_fd_vmm_state(vm, key).private_fd, offset: gpa - vm.base }),
    shared_fd: (vm, gpa) => ({ fd: private_fd_vmm_state(vm, key).memfd, offset: gpa - vm.base }),
  };
}

/** The VMM state of `vm` under `key` (after add_memory). */
export function private_fd_vmm_state(vm: CvmVm, key: string): PrivateFdVmmState {
  return vm.state.get(key) as PrivateFdVmmState;
}

/**
 * priv_memfd_backend_memory_alloc() and the memslot: the shared memfd and its mapping, the private
 * fd, and slot 0 with KVM_MEM_PRIVATE binding both halves.
 */
export function private_fd_vmm_add_memory(vm: CvmVm, ops: PrivateFdVmmOps): number {
  const { p } = vm;
  const memfd = p.memfd_create('memory-backend-memfd-shared', MFD_CLOEXEC);
  if (memfd < 0 || p.ftruncate(memfd, vm.size) < 0) return -1;
  const hva = p.mmap(0, vm.size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
  if (hva === MAP_FAILED) return -1;
  const private_fd = ops.create_private_fd(vm);
  if (private_fd < 0) return -1;
  const r = p.ioctl(vm.vm_fd, KVM_SET_USER_MEMORY_REGION, {
    slot: 0, flags: KVM_MEM_PRIVATE, guest_phys_addr: vm.base, memory_size: vm.size, userspace_addr: hva,
    [ops.abi.offset]: 0n, [ops.abi.fd]: private_fd,
  });
  if (r < 0) return -1;
  vm.state.set(ops.key, { memfd, hva, private_fd } satisfies PrivateFdVmmState);
  return 0;
}

/** ram_block_discard_range_fd(): FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE of [offset, offset + len) of `fd`. */
export function ram_block_discard_range_fd(vm: CvmVm, fd: number, offset: bigint, len: bigint): number {
  return vm.p.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, len) < 0 ? -1 : 0;
}

/**
 * ram_block_convert_range() of the v3-v6 QEMU (see the file comment): punch the side the guest
 * leaves, fallocate() the side it goes to. The shared memfd's punch on to-private is skipped
 * without policy.discard (S16's VMM); the private fd's punch on to-shared is not, being the
 * conversion.
 */
export function ram_block_convert_range(vm: CvmVm, key: string, gpa: bigint, len: bigint, shared_to_private: boolean): number {
  const s = private_fd_vmm_state(vm, key);
  const offset = gpa - vm.base;
  const fd_from = shared_to_private ? s.memfd : s.private_fd;
  const fd_to = shared_to_private ? s.private_fd : s.memfd;
  if ((!shared_to_private || vm.policy.discard) && ram_block_discard_range_fd(vm, fd_from, offset, len) < 0) return -1;
  return vm.p.fallocate(fd_to, 0, offset, len) < 0 ? -1 : 0;
}

/** The VMM's user address of `gpa`: the shared memfd's mapping, whatever the page's state. */
export function private_fd_vmm_hva(vm: CvmVm, key: string, gpa: bigint): bigint {
  return private_fd_vmm_state(vm, key).hva + (gpa - vm.base);
}

const KEY = 'memfd_seal';

/**
 * QEMU's private fd of D5 (TDX QEMU tree, "[PATCH 59/99] memfd: Add MFD_INACCESSIBLE flag",
 * 9 Dec 2021): memfd_create(MFD_INACCESSIBLE), which v3 makes F_SEAL_INACCESSIBLE at creation,
 * then the size (allowed once on the sealed file).
 */
const memfd_seal_ops: PrivateFdVmmOps = {
  key: KEY,
  abi: MEMFILE_ABI,
  create_private_fd(vm) {
    const fd = vm.p.memfd_create('memory-backend-memfd-private', MFD_CLOEXEC | MFD_INACCESSIBLE);
    if (fd < 0 || vm.p.ftruncate(fd, vm.size) < 0) return -1;
    return fd;
  },
};

export const memfd_seal_vmm: CvmDesign = {
  name: KEY,
  // The series targeted TDX (Intel's QEMU tree); KVM_MEM_PRIVATE needs a VM type with private
  // memory, which the memslot ioctl checks itself (-EINVAL).
  applies: () => undefined,
  add_memory: (vm) => private_fd_vmm_add_memory(vm, memfd_seal_ops),
  convert: (vm, gpa, len, to_private) => ram_block_convert_range(vm, KEY, gpa, len, to_private),
  hva: (vm, gpa) => private_fd_vmm_hva(vm, KEY, gpa),
  ...private_fd_vmm_files(KEY),
};
