/**
 * The VMM side of D11 (1G page support for guest_memfd, RFC v2, cover.1747264138.git.ackerleytng@google.com):
 * the in-place VMM of D10 (one guest_memfd mapped MAP_SHARED as the memslot's userspace_addr,
 * conversions by KVM_SET_MEMORY_ATTRIBUTES2 on it) whose guest_memfd comes from HugeTLB at the
 * VM's page size: GUEST_MEMFD_FLAG_HUGETLB with the size's log2 in the allocator bits (2 MiB,
 * 1 GiB). A HugeTLB guest_memfd cannot be created INIT_SHARED, so the VMM creates it private and
 * converts all of it to shared before the guest runs (no folio exists yet: only the attributes
 * change). At a 4 KiB page size the VMM asks for no HugeTLB and the design is D10 itself.
 */
import {
  MAP_ANONYMOUS, MAP_FAILED, MAP_FIXED, MAP_NORESERVE, MAP_PRIVATE, MAP_SHARED, PROT_NONE, PROT_READ, PROT_WRITE, type Process,
} from '@cocosim/mm';
import type { CvmDesign, CvmVm } from '../../cvm.js';
import {
  GUEST_MEMFD_FLAG_INIT_SHARED, GUEST_MEMFD_FLAG_MMAP, KVM_CREATE_GUEST_MEMFD, KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_MEM_GUEST_MEMFD,
  KVM_SET_MEMORY_ATTRIBUTES2, KVM_SET_USER_MEMORY_REGION2,
} from '../../uapi.js';
import { GUESTMEM_HUGETLB_FLAG_SHIFT, GUEST_MEMFD_FLAG_HUGETLB } from './uapi.js';

/** What the D11 VMM keeps per VM. */
export interface GmemHugetlbVmmState {
  readonly gmem_fd: number;
  readonly hva: bigint;
  /** error_offset of the last conversion that failed, or null. */
  error_offset: bigint | null;
}

const KEY = 'gmem_hugetlb';

/** The D11 VMM's state of `vm` (after add_memory). */
export function gmem_hugetlb_vmm_state(vm: CvmVm): GmemHugetlbVmmState {
  return vm.state.get(KEY) as GmemHugetlbVmmState;
}

/** KVM_CREATE_GUEST_MEMFD's flags for pages of `page_size` bytes. */
export function gmem_hugetlb_flags(page_size: number): bigint {
  if (page_size === 4096) return BigInt(GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
  return BigInt(GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_HUGETLB) | (BigInt(Math.log2(page_size)) << BigInt(GUESTMEM_HUGETLB_FLAG_SHIFT));
}

/** KVM_SET_MEMORY_ATTRIBUTES2 over [offset, offset + size) of the guest_memfd. */
function set_attributes(vm: CvmVm, s: GmemHugetlbVmmState, offset: bigint, size: bigint, to_private: boolean): number {
  const attrs = { offset, size, attributes: to_private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0, flags: 0, error_offset: 0n };
  const r = vm.p.ioctl(s.gmem_fd, KVM_SET_MEMORY_ATTRIBUTES2, attrs);
  s.error_offset = r < 0 ? BigInt(attrs.error_offset) : null;
  return r < 0 ? -1 : 0;
}

/**
 * qemu_ram_mmap(): map `size` bytes of `fd` at an address aligned to `align`, by reserving
 * size + align bytes PROT_NONE and mapping over the aligned part (MAP_FIXED). KVM maps a huge
 * page only where the gfn and the memslot's userspace_addr are equally aligned
 * (kvm_alloc_memslot_metadata()), so a 1 GiB guest page needs a 1 GiB aligned mapping.
 */
function mmap_aligned(p: Process, fd: number, size: bigint, align: bigint): bigint {
  if (align === 4096n) return p.mmap(0, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const resv = p.mmap(0, size + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (resv === MAP_FAILED) return MAP_FAILED;
  const addr = (resv + align - 1n) / align * align;
  const hva = p.mmap(addr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
  if (hva === MAP_FAILED) return MAP_FAILED;
  if (addr > resv) p.munmap(resv, addr - resv);
  if (resv + align > addr) p.munmap(addr + size, resv + align - addr);
  return hva;
}

/** The guest_memfd at the VM's page size, its aligned mapping, one REGION2 slot, everything shared. */
function add_memory(vm: CvmVm): number {
  const { p } = vm;
  const gmem_fd = p.ioctl(vm.vm_fd, KVM_CREATE_GUEST_MEMFD, { size: vm.size, flags: gmem_hugetlb_flags(vm.page_size) });
  if (gmem_fd < 0) return -1;
  const hva = mmap_aligned(p, gmem_fd, vm.size, BigInt(vm.page_size));
  if (hva === MAP_FAILED) return -1;
  const r = p.ioctl(vm.vm_fd, KVM_SET_USER_MEMORY_REGION2, {
    slot: 0, flags: KVM_MEM_GUEST_MEMFD, guest_phys_addr: vm.base, memory_size: vm.size, userspace_addr: hva,
    guest_memfd: gmem_fd, guest_memfd_offset: 0n,
  });
  if (r < 0) return -1;
  const s: GmemHugetlbVmmState = { gmem_fd, hva, error_offset: null };
  vm.state.set(KEY, s);
  return vm.page_size === 4096 ? 0 : set_attributes(vm, s, 0n, vm.size, false);
}

export const gmem_hugetlb_vmm: CvmDesign = {
  name: 'gmem_hugetlb',
  // The series runs wherever in-place conversion does; the simulator's tests cover SW_PROTECTED.
  applies: () => undefined,
  add_memory,
  convert: (vm, gpa, len, to_private) => set_attributes(vm, gmem_hugetlb_vmm_state(vm), gpa - vm.base, len, to_private),
  hva: (vm, gpa) => gmem_hugetlb_vmm_state(vm).hva + (gpa - vm.base),
};
