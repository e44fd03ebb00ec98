/**
 * mm/gup.c and mm/huge_memory.c of "[RFCv2 09/16] KVM: mm: Introduce VM_KVM_PROTECTED" (Kirill
 * A. Shutemov, 20 Oct 2020,
 * https://lore.kernel.org/all/20201020061859.18385-10-kirill.shutemov@linux.intel.com/):
 *   - follow_page_mask(): "if (vma_is_kvm_protected(vma) && (flags & FOLL_KVM)) flags &=
 *     ~FOLL_NUMA": KVM's GUP follows the PROT_NONE entries; any other GUP (FOLL_NUMA was the 5.9
 *     default) faults them and gets do_numa_page()'s SIGBUS: "Any GUP access without FOLL_KVM
 *     would result in -EFAULT";
 *   - can_follow_write_pte() / can_follow_write_pmd(): a write through a protected VMA is allowed
 *     when it is VM_WRITE and shared, or the page is mapped once.
 */
import { Errno } from '@cocosim/core';
import {
  FOLL_WRITE, MM_HOOK_FOLLOW, MM_HOOK_FOLLOW_WRITE, VM_SHARED, VM_WRITE, folio_precise_page_mapcount, page_folio, type VmAreaStruct,
} from '@cocosim/mm';
import { vma_is_kvm_protected } from './memory.js';
import { FOLL_KVM } from './uapi.js';

/**
 * The gup_check hook. Without FOLL_KVM the answer is the -EFAULT the fault ends in (6.18's GUP
 * would otherwise follow a PROT_NONE entry unless FOLL_HONOR_NUMA_FAULT). A FOLL_KVM write
 * can_follow_write_pte() refuses is left to the base, whose write fault gets SIGBUS as the
 * series' does.
 */
export function follow_page_protected(vma: VmAreaStruct, _vpn: number, _pte: number, pfn: number, gup_flags: number): number {
  if (!vma_is_kvm_protected(vma)) return 0;
  if (!(gup_flags & FOLL_KVM)) return -Errno.EFAULT;
  if (!(gup_flags & FOLL_WRITE)) return MM_HOOK_FOLLOW_WRITE;
  if (!(vma.vm_flags & VM_WRITE)) return MM_HOOK_FOLLOW;
  const store = vma.vm_mm.kernel.store;
  const exclusive = store.pfn_valid(pfn) && folio_precise_page_mapcount(store, page_folio(store, pfn), pfn) === 1;
  return vma.vm_flags & VM_SHARED || exclusive ? MM_HOOK_FOLLOW_WRITE : MM_HOOK_FOLLOW;
}
