/**
 * The VMM side of the per-VMA write denial (designs.md D2, David Hildenbrand 2021-04-07): guest
 * RAM is anonymous memory (MAP_PRIVATE, since the ioctl refuses shared mappings) in one
 * KVM_SET_USER_MEMORY_REGION slot. The guest asks with the vendor's request (an exit to the
 * VMM). On the first conversion to private the VMM makes its mapping PROT_READ and switches
 * protection on; KVM's per-VM attributes then record which pages are shared, so that the VMM's
 * bounced writes (KVM_WRITE_GUEST) reach shared pages only. The mapping itself never changes
 * again: reads stay allowed, user writes are SIGSEGV.
 */
import { MAP_ANONYMOUS, MAP_FAILED, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '@cocosim/mm';
import type { CvmDesign, CvmVendor, CvmVm } from '../../cvm.js';
import { KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_SET_MEMORY_ATTRIBUTES, KVM_SET_USER_MEMORY_REGION } from '../../uapi.js';
import { kvm_mem_protected } from './kvm_main.js';
import { KVM_PROTECT_MEMORY, KVM_WRITE_GUEST } from './uapi.js';

const KEY = 'per_vma';

/** The VMM's guest RAM mapping of `vm` (after add_memory). */
export function per_vma_hva(vm: CvmVm): bigint {
  return vm.state.get(KEY) as bigint;
}

function add_memory(vm: CvmVm): number {
  const { p } = vm;
  const hva = p.mmap(0, vm.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (hva === MAP_FAILED) return -1;
  const r = p.ioctl(vm.vm_fd, KVM_SET_USER_MEMORY_REGION, { slot: 0, flags: 0, guest_phys_addr: vm.base, memory_size: vm.size, userspace_addr: hva });
  if (r < 0) return -1;
  vm.state.set(KEY, hva);
  return 0;
}

/** First to-private: mprotect(PROT_READ) + KVM_PROTECT_MEMORY; then the range's attribute. */
function convert(vm: CvmVm, gpa: bigint, len: bigint, to_private: boolean): number {
  const { p } = vm;
  if (to_private && !kvm_mem_protected(vm.kvm)) {
    if (p.mprotect(per_vma_hva(vm), vm.size, PROT_READ) < 0) return -1;
    if (p.ioctl(vm.vm_fd, KVM_PROTECT_MEMORY) < 0) return -1;
  }
  const attributes = to_private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0;
  return p.ioctl(vm.vm_fd, KVM_SET_MEMORY_ATTRIBUTES, { address: gpa, size: len, attributes, flags: 0 }) < 0 ? -1 : 0;
}

/** The VMM writes `data` to shared guest memory at `gpa` through KVM (0, or -1 with errno). */
export function per_vma_write_guest(vm: CvmVm, gpa: bigint, data: Uint8Array): number {
  return vm.p.ioctl(vm.vm_fd, KVM_WRITE_GUEST, { gpa, size: data.length, data }) < 0 ? -1 : 0;
}

export const per_vma_vmm: CvmDesign = {
  name: 'per_vma',
  applies(vendor: CvmVendor) {
    if (vendor.name === 'sw_protected') return undefined;
    return `the ${vendor.name} plugin maps private memory only from guest_memfd; the per-VMA scheme (a review answer to D2, a TDX proposal) faults guest memory through the VMM's hva`;
  },
  add_memory,
  convert,
  hva: (vm, gpa) => per_vma_hva(vm) + (gpa - vm.base),
};
