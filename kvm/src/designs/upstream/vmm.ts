/**
 * The VMM side of the base kernel (D8): QEMU's guest_memfd support. Guest RAM is a memfd mapped
 * MAP_SHARED (the shared half: qemu_ram_alloc with a memory-backend-memfd) plus a guest_memfd
 * of the same size (the private half), bound by one KVM_SET_USER_MEMORY_REGION2 slot. A
 * conversion is kvm_convert_memory(): KVM_SET_MEMORY_ATTRIBUTES, then
 * ram_block_discard_range() of the side the guest left (a PUNCH_HOLE of the memfd on
 * to-private, of the guest_memfd on to-shared) unless the VMM keeps both copies.
 */
import {
  FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, MAP_FAILED, MAP_SHARED, MFD_CLOEXEC, PROT_READ, PROT_WRITE,
} from '@cocosim/mm';
import type { CvmDesign, CvmVm } from '../../cvm.js';
import {
  KVM_CREATE_GUEST_MEMFD, KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_MEM_GUEST_MEMFD, KVM_SET_MEMORY_ATTRIBUTES, KVM_SET_USER_MEMORY_REGION2,
} from '../../uapi.js';

/** What the upstream VMM keeps per VM. */
export interface GmemVmmState {
  /** The shared half: a memfd and its mapping (the memslot's userspace_addr). */
  readonly memfd: number;
  readonly hva: bigint;
  /** The private half. */
  readonly gmem_fd: number;
}

const KEY = 'upstream';

/** The upstream VMM's state of `vm` (after add_memory). */
export function gmem_vmm_state(vm: CvmVm): GmemVmmState {
  return vm.state.get(KEY) as GmemVmmState;
}

/** memfd + mapping + guest_memfd + one REGION2 slot: QEMU's RAM block with a guest_memfd. */
export function gmem_vmm_add_memory(vm: CvmVm, gmem_flags = 0n): number {
  const { p } = vm;
  const memfd = p.memfd_create('guest-ram', MFD_CLOEXEC);
  if (memfd < 0 || p.ftruncate(memfd, vm.size) < 0) return -1;
  const hva = p.mmap(0, vm.size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
  if (hva === MAP_FAILED) return -1;
  const gmem_fd = p.ioctl(vm.vm_fd, KVM_CREATE_GUEST_MEMFD, { size: vm.size, flags: gmem_flags });
  if (gmem_fd < 0) return -1;
  const r = p.ioctl(vm.vm_fd, KVM_SET_USER_MEMORY_REGION2, {
    slot: 0, flags: KVM_MEM_GUEST_MEMFD, guest_phys_addr: vm.base, memory_size: vm.size, userspace_addr: hva,
    guest_memfd: gmem_fd, guest_memfd_offset: 0n,
  });
  if (r < 0) return -1;
  vm.state.set(KEY, { memfd, hva, gmem_fd } satisfies GmemVmmState);
  return 0;
}

/** kvm_convert_memory(): the attributes, then the discard of the side left behind. */
function convert(vm: CvmVm, gpa: bigint, len: bigint, to_private: boolean): number {
  const { p } = vm;
  const s = gmem_vmm_state(vm);
  const r = p.ioctl(vm.vm_fd, KVM_SET_MEMORY_ATTRIBUTES, {
    address: gpa, size: len, attributes: to_private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0, flags: 0,
  });
  if (r < 0) return -1;
  if (!vm.policy.discard) return 0;
  return p.fallocate(to_private ? s.memfd : s.gmem_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, gpa - vm.base, len) < 0 ? -1 : 0;
}

export const upstream_vmm: CvmDesign = {
  name: 'upstream',
  applies: () => undefined,
  add_memory: (vm) => gmem_vmm_add_memory(vm),
  convert,
  hva: (vm, gpa) => gmem_vmm_state(vm).hva + (gpa - vm.base),
  private_fd: (vm, gpa) => ({ fd: gmem_vmm_state(vm).gmem_fd, offset: gpa - vm.base }),
  shared_fd: (vm, gpa) => ({ fd: gmem_vmm_state(vm).memfd, offset: gpa - vm.base }),
};
