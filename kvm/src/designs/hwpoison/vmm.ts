/**
 * The VMM side of D2 (designs.md D2 "VMM: nothing new. Guest memory must be swap-backed, i.e.
 * anonymous or tmpfs/shmem"): guest RAM is a memfd mapped MAP_SHARED and given to KVM with
 * KVM_SET_USER_MEMORY_REGION. The guest enables protection and shares pages with hypercalls KVM
 * handles itself, so the VMM never sees a conversion and has no uAPI to make one.
 */
import { MAP_FAILED, MAP_SHARED, MFD_CLOEXEC, PROT_READ, PROT_WRITE } from '@cocosim/mm';
import type { CvmDesign, CvmVendor, CvmVm } from '../../cvm.js';
import { vmcall, type GuestCode } from '../../guest.js';
import { KVM_SET_USER_MEMORY_REGION } from '../../uapi.js';
import { KVM_ENOSYS } from '../../x86.js';
import { kvm_mem_protected } from './kvm_main.js';
import { range_contains } from './range.js';
import { KVM_HC_ENABLE_MEM_PROTECTED, KVM_HC_MEM_SHARE } from './uapi.js';

/** What the VMM keeps per VM. */
export interface HwpoisonVmmState {
  readonly memfd: number;
  readonly hva: bigint;
}

const KEY = 'hwpoison';

/** The VMM's state of `vm` (after add_memory). */
export function hwpoison_vmm_state(vm: CvmVm): HwpoisonVmmState {
  return vm.state.get(KEY) as HwpoisonVmmState;
}

/** memfd + MAP_SHARED mapping + one KVM_SET_USER_MEMORY_REGION slot (QEMU's memory-backend-memfd). */
function add_memory(vm: CvmVm): number {
  const { p } = vm;
  const memfd = p.memfd_create('guest-ram', MFD_CLOEXEC);
  if (memfd < 0 || p.ftruncate(memfd, vm.size) < 0) return -1;
  const hva = p.mmap(0, vm.size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
  if (hva === MAP_FAILED) return -1;
  const r = p.ioctl(vm.vm_fd, KVM_SET_USER_MEMORY_REGION, { slot: 0, flags: 0, guest_phys_addr: vm.base, memory_size: vm.size, userspace_addr: hva });
  if (r < 0) return -1;
  vm.state.set(KEY, { memfd, hva } satisfies HwpoisonVmmState);
  return 0;
}

/**
 * The guest's request: to private, KVM_HC_ENABLE_MEM_PROTECTED (pages become private at the
 * guest's next fault on each); to shared, KVM_HC_MEM_SHARE(gfn, npages). A range the guest has
 * shared cannot become private again, since the series has no such hypercall: the guest's own
 * record of what it shared says so without asking KVM (-KVM_ENOSYS, cocosim's value).
 */
function* guest_convert(vm: CvmVm, gpa: bigint, npages: bigint, to_private: boolean): GuestCode<bigint> {
  const gfn = gpa >> 12n;
  if (!to_private) return yield* vmcall(KVM_HC_MEM_SHARE, gfn, npages);
  const s = kvm_mem_protected(vm.kvm);
  for (let g = gfn; g < gfn + npages; g++) {
    if (range_contains(s.shared_ranges, s.nr_shared_ranges, Number(g))) return BigInt.asUintN(64, -BigInt(KVM_ENOSYS));
  }
  return yield* vmcall(KVM_HC_ENABLE_MEM_PROTECTED);
}

export const hwpoison_vmm: CvmDesign = {
  name: 'hwpoison',
  applies(vendor: CvmVendor) {
    if (vendor.name === 'sw_protected') return undefined;
    if (vendor.name === 'tdx') {
      return 'D2 targeted TDX, but the tdx plugin (as KVM\'s TDX since 6.16) maps private memory only from guest_memfd; D2 faults guest memory through the VMM\'s hva';
    }
    return `the ${vendor.name} plugin maps private memory only from guest_memfd; D2 (a TDX proposal) faults guest memory through the VMM's hva`;
  },
  add_memory,
  // Nothing for the VMM to do: KVM handled the guest's hypercall (the VMM is only asked by cvm_launch).
  convert: () => 0,
  hva: (vm, gpa) => hwpoison_vmm_state(vm).hva + (gpa - vm.base),
  guest_convert,
};
