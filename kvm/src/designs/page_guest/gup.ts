/**
 * mm/gup.c and mm/huge_memory.c of "mm: Introduce guest-only pages" (Kirill A. Shutemov,
 * https://lore.kernel.org/all/20210521123148.a3t4uh4iezm6ax47@box/, as updated on 4 Jun 2021
 * after Sean Christopherson's review): follow_page_pte() / follow_pmd_mask() /
 * follow_trans_huge_pmd() take a PageGuest page only with FOLL_GUEST ("if (!(flags & FOLL_GUEST))
 * goto no_page", whose fault then gets SIGBUS: -EFAULT), and can_follow_write_pte() /
 * can_follow_write_pmd() let FOLL_GUEST write one only in a VM_WRITE | VM_SHARED VMA.
 */
import { Errno } from '@cocosim/core';
import { FOLL_WRITE, MM_HOOK_FOLLOW, MM_HOOK_FOLLOW_WRITE, VM_SHARED, VM_WRITE, type VmAreaStruct } from '@cocosim/mm';
import { PageGuest } from './page-flags.js';
import { FOLL_GUEST } from './uapi.js';

/**
 * The gup_check hook. Without FOLL_GUEST the answer is the -EFAULT the patch's no_page -> fault
 * -> do_numa_page() SIGBUS ends in (6.18's GUP would otherwise follow a PROT_NONE entry unless
 * FOLL_HONOR_NUMA_FAULT). A FOLL_GUEST write the VMA does not allow is left to the base, whose
 * write fault gets SIGBUS as the patch's does.
 */
export function follow_page_guest(vma: VmAreaStruct, _vpn: number, _pte: number, pfn: number, gup_flags: number): number {
  if (!PageGuest(vma.vm_mm.kernel.store, pfn)) return 0;
  if (!(gup_flags & FOLL_GUEST)) return -Errno.EFAULT;
  if (!(gup_flags & FOLL_WRITE)) return MM_HOOK_FOLLOW_WRITE;
  return (vma.vm_flags & (VM_WRITE | VM_SHARED)) === (VM_WRITE | VM_SHARED) ? MM_HOOK_FOLLOW_WRITE : MM_HOOK_FOLLOW;
}
