/**
 * The VMM side of D3, after the QEMU patch attached to "Re: [RFCv2 13/13] KVM: unmap guest memory
 * using poisoned pages" (Kirill A. Shutemov, 21 May 2021,
 * https://lore.kernel.org/all/20210521123148.a3t4uh4iezm6ax47@box/): guest RAM is shared shmem
 * (the patch switched memory_region_init_ram_nomigrate() to share=true); KVM_HC_ENABLE_MEM_PROTECTED
 * exits to QEMU, which mprotect()s every memslot with PROT_GUEST | PROT_READ | PROT_WRITE, and
 * KVM_HC_MEM_SHARE exits to QEMU, which maps fresh anonymous memory over the range:
 * mmap(slot->ram + off, size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED).
 *
 * cocosim's VMM keeps the guest RAM in a memfd (QEMU's memory-backend-memfd) rather than
 * MAP_SHARED | MAP_ANONYMOUS, because the way back to private, which the QEMU patch did not
 * have, needs the shmem object again: mmap(MAP_SHARED | MAP_FIXED) of the memfd at the range's
 * offset (Sean Christopherson's "munmap+mmap MAP_SHARED|MAP_FIXED", 19 Apr 2021,
 * YH3jaf5ThzLZdY4K@google.com), then mprotect(PROT_GUEST). The guest's request is the vendor's
 * (KVM_HC_MAP_GPA_RANGE, an exit to the VMM like D3's hypercalls).
 *
 * The private page stays in the memfd while the range is shared (S16's double allocation)
 * unless the VMM discards it (policy.discard: FALLOC_FL_PUNCH_HOLE of the memfd range); the
 * anonymous shared pages go when the shmem mapping replaces them.
 */
import { PAGE_SIZE } from '@cocosim/core';
import {
  FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, MAP_ANONYMOUS, MAP_FAILED, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, MFD_CLOEXEC, PROT_READ,
  PROT_WRITE, vmas_in_range,
} from '@cocosim/mm';
import type { CvmDesign, CvmVm } from '../../cvm.js';
import { KVM_SET_USER_MEMORY_REGION } from '../../uapi.js';
import { PROT_GUEST } from './uapi.js';

/** What the D3 VMM keeps per VM. */
export interface PageGuestVmmState {
  /** The guest RAM (shmem) and its MAP_SHARED mapping, the memslot's userspace_addr. */
  readonly memfd: number;
  readonly hva: bigint;
}

const KEY = 'page_guest';
const PG = BigInt(PAGE_SIZE);

/** The D3 VMM's state of `vm` (after add_memory). */
export function page_guest_vmm_state(vm: CvmVm): PageGuestVmmState {
  return vm.state.get(KEY) as PageGuestVmmState;
}

/** The memfd, its mapping, slot 0 on it: all of it shared (no PROT_GUEST yet). */
function add_memory(vm: CvmVm): number {
  const { p } = vm;
  const memfd = p.memfd_create('memory-backend-memfd', MFD_CLOEXEC);
  if (memfd < 0 || p.ftruncate(memfd, vm.size) < 0) return -1;
  const hva = p.mmap(0, vm.size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
  if (hva === MAP_FAILED) return -1;
  const r = p.ioctl(vm.vm_fd, KVM_SET_USER_MEMORY_REGION, {
    slot: 0, flags: 0, guest_phys_addr: vm.base, memory_size: vm.size, userspace_addr: hva,
  });
  if (r < 0) return -1;
  vm.state.set(KEY, { memfd, hva } satisfies PageGuestVmmState);
  return 0;
}

/** Whether [addr, addr + len) is mapped by the memfd's shmem mapping alone (never shared since). */
function range_is_shmem(vm: CvmVm, addr: bigint, len: bigint): boolean {
  const file = vm.p.task.files.lookup(page_guest_vmm_state(vm).memfd)!;
  const vmas = vmas_in_range(vm.p.mm, Number(addr / PG), Number((addr + len) / PG));
  return vmas.every((vma) => vma.vm_file?.f_inode === file.f_inode);
}

/**
 * To shared: kvm_share_memory()'s anonymous mmap over the range, then the discard of the private
 * page. To private: the memfd mapped back where anonymous memory replaced it, then
 * kvm_protect_memory()'s mprotect(PROT_GUEST).
 */
function convert(vm: CvmVm, gpa: bigint, len: bigint, to_private: boolean): number {
  const { p } = vm;
  const s = page_guest_vmm_state(vm);
  const off = gpa - vm.base;
  const addr = s.hva + off;
  if (!to_private) {
    if (p.mmap(addr, len, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0) === MAP_FAILED) return -1;
    if (!vm.policy.discard) return 0;
    return p.fallocate(s.memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len) < 0 ? -1 : 0;
  }
  if (!range_is_shmem(vm, addr, len) && p.mmap(addr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, s.memfd, off) === MAP_FAILED) {
    return -1;
  }
  return p.mprotect(addr, len, PROT_GUEST | PROT_READ | PROT_WRITE) < 0 ? -1 : 0;
}

export const page_guest_vmm: CvmDesign = {
  name: KEY,
  applies: (vendor) =>
    vendor.name === 'sw_protected'
      ? undefined
      : vendor.name === 'tdx'
        ? 'D3 targeted TDX (FOLL_GUEST in hva_to_pfn_slow() for TD guests), but TDX private memory is guest_memfd\'s here (S-EPT pages come from kvm_gmem_get_pfn()): D3 runs on sw_protected'
        : `D3 faults private memory through the hva; private memory on ${vendor.name} is guest_memfd's: D3 runs on sw_protected`,
  add_memory,
  convert,
  hva: (vm, gpa) => page_guest_vmm_state(vm).hva + (gpa - vm.base),
};
