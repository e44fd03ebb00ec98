/**
 * The VMM and guest sides of D1 ("KVM protected memory extension", Kirill A. Shutemov, RFCv2
 * 20 Oct 2020, https://lore.kernel.org/all/20201020061859.18385-1-kirill.shutemov@linux.intel.com/).
 * The VMM does nothing new: guest RAM is ordinary anonymous memory in a memslot, and KVM itself
 * changes its VMAs when the guest asks. The guest turns protection on once (every page private)
 * and then shares what it must ("DMA regions, bounce buffers, etc.") with KVM_HC_MEM_SHARE,
 * taking a range back with KVM_HC_MEM_UNSHARE (set_memory_decrypted()/set_memory_encrypted() of
 * "[RFC 03/16] x86/kvm: Make DMA pages shared").
 *
 * cocosim's guest makes its first to-private request by enabling protection and sharing the rest
 * of its memory again, so that pages it never converted stay shared as on the other designs.
 */
import { Errno, PAGE_SIZE } from '@cocosim/core';
import { MAP_ANONYMOUS, MAP_FAILED, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '@cocosim/mm';
import type { CvmDesign, CvmVm } from '../../cvm.js';
import { vmcall, type GuestCode } from '../../guest.js';
import { KVM_SET_USER_MEMORY_REGION } from '../../uapi.js';
import { KVM_HC_ENABLE_MEM_PROTECTED, KVM_HC_MEM_SHARE, KVM_HC_MEM_UNSHARE } from './uapi.js';

const PG = BigInt(PAGE_SIZE);
const KEY = 'kvm_protected';
/** The guest's own record that it enabled protection. */
const GUEST_ENABLED = 'kvm_protected.guest_enabled';

/** What the D1 VMM keeps per VM: its anonymous guest RAM, the memslot's userspace_addr. */
export interface KvmProtectedVmmState {
  readonly hva: bigint;
}

/** The D1 VMM's state of `vm` (after add_memory). */
export function kvm_protected_vmm_state(vm: CvmVm): KvmProtectedVmmState {
  return vm.state.get(KEY) as KvmProtectedVmmState;
}

/** Anonymous private memory and slot 0 on it. */
function add_memory(vm: CvmVm): number {
  const { p } = vm;
  const hva = p.mmap(0, vm.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (hva === MAP_FAILED) return -1;
  const r = p.ioctl(vm.vm_fd, KVM_SET_USER_MEMORY_REGION, {
    slot: 0, flags: 0, guest_phys_addr: vm.base, memory_size: vm.size, userspace_addr: hva,
  });
  if (r < 0) return -1;
  vm.state.set(KEY, { hva } satisfies KvmProtectedVmmState);
  return 0;
}

/**
 * The guest's request (handled inside KVM): KVM_HC_MEM_SHARE to shared; to private
 * KVM_HC_MEM_UNSHARE, or at the first request KVM_HC_ENABLE_MEM_PROTECTED and KVM_HC_MEM_SHARE
 * of the memory around the range. Returns the first non-zero hypercall result, or 0.
 */
function* guest_convert(vm: CvmVm, gpa: bigint, npages: bigint, to_private: boolean): GuestCode<bigint> {
  const gfn = gpa / PG;
  if (!to_private) return yield* vmcall(KVM_HC_MEM_SHARE, gfn, npages);
  if (vm.state.get(GUEST_ENABLED) === true) return yield* vmcall(KVM_HC_MEM_UNSHARE, gfn, npages);
  let r = yield* vmcall(KVM_HC_ENABLE_MEM_PROTECTED);
  if (r !== 0n) return r;
  vm.state.set(GUEST_ENABLED, true);
  const end = gpa + npages * PG;
  if (gpa > vm.base) r = yield* vmcall(KVM_HC_MEM_SHARE, vm.base / PG, (gpa - vm.base) / PG);
  if (r === 0n && end < vm.base + vm.size) r = yield* vmcall(KVM_HC_MEM_SHARE, end / PG, (vm.base + vm.size - end) / PG);
  return r;
}

export const kvm_protected_vmm: CvmDesign = {
  name: KEY,
  applies: (vendor) =>
    vendor.name === 'sw_protected'
      ? undefined
      : `D1 protects memory in software ("Instead of using encryption, this series simply unmaps the memory") through the hva; private memory on ${vendor.name} is guest_memfd's: D1 runs on sw_protected`,
  add_memory,
  // "VMM side: nothing new" (designs.md D1): the VMM has no call that converts guest memory.
  convert(vm) {
    vm.p.errno = Errno.EOPNOTSUPP;
    return -1;
  },
  hva: (vm, gpa) => kvm_protected_vmm_state(vm).hva + (gpa - vm.base),
  guest_convert,
};
