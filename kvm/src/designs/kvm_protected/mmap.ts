/**
 * mm/mmap.c of "[RFCv2 09/16] KVM: mm: Introduce VM_KVM_PROTECTED" (Kirill A. Shutemov,
 * 20 Oct 2020, https://lore.kernel.org/all/20201020061859.18385-10-kirill.shutemov@linux.intel.com/):
 * vm_get_page_prot() gives PAGE_NONE to VM_KVM_PROTECTED, so mprotect_fixup()'s
 * change_protection() turns the VMA's PTEs PROT_NONE and every new fault maps PROT_NONE ("a trick
 * similar to what NUMA balancing does").
 */
import { VM_NONE, vm_flags_test, vm_get_page_prot, type VmAreaStruct } from '@cocosim/mm';
import { VM_KVM_PROTECTED } from './uapi.js';

/** x86's PAGE_NONE (protection_map[VM_NONE]): _PAGE_PROTNONE, not present to the CPU. */
export const PAGE_NONE = vm_get_page_prot(VM_NONE);

/** vm_get_page_prot()'s "if (vm_flags & VM_KVM_PROTECTED) ret = PAGE_NONE": the vm_page_prot hook. */
export function vm_get_page_prot_protected(_vma: VmAreaStruct, vm_flags: number): number {
  return vm_flags_test(vm_flags, VM_KVM_PROTECTED) ? PAGE_NONE : 0;
}
