/**
 * The mm/gup.c part of "[RFCv2 07/13] mm/gup: Add FOLL_ALLOW_POISONED" (RFCv2 cover
 * 20210416154106.23721-1-kirill.shutemov@linux.intel.com; designs.md D2): follow_page_pte()
 * returns the page behind a hwpoison entry when the caller passes FOLL_ALLOW_POISONED (KVM's
 * hva_to_pfn_slow() on a protected VM), so that KVM reaches the pages it poisoned. Without the
 * flag GUP faults on the entry as before: -EHWPOISON with FOLL_HWPOISON, else -EFAULT.
 */
import { MM_HOOK_FOLLOW, SWP_HWPOISON, is_swap_pte, pte_swp_type, type VmAreaStruct } from '@cocosim/mm';
import { FOLL_ALLOW_POISONED } from './uapi.js';

/** follow_page_pte()'s new case: MM_HOOK_FOLLOW for a hwpoison entry under FOLL_ALLOW_POISONED, else 0. */
export function follow_page_pte_allow_poisoned(_vma: VmAreaStruct, _vpn: number, pte: number, _val: number, gup_flags: number): number {
  if (!(gup_flags & FOLL_ALLOW_POISONED)) return 0;
  return is_swap_pte(pte) && pte_swp_type(pte) === SWP_HWPOISON ? MM_HOOK_FOLLOW : 0;
}
