/**
 * mm/memory.c, mm/huge_memory.c and shmem_fault() of "mm: Introduce guest-only pages" (Kirill A.
 * Shutemov, https://lore.kernel.org/all/20210521123148.a3t4uh4iezm6ax47@box/, as updated on
 * 4 Jun 2021 on v5.12):
 *   - shmem_fault(): in a VM_GUEST VMA, "if (!TestSetPageGuest(vmf->page)) { try_to_unmap(head,
 *     TTU_IGNORE_MLOCK); set_page_dirty(head); }": the page's other mappings go and it becomes
 *     guest-only at the first fault through ->fault;
 *   - do_set_pte() / do_set_pmd(): a PageGuest page is mapped with PAGE_NONE (a PTE or a PMD that
 *     carries the pfn for GUP but no access for user space), so shmem THP keeps its PMDs;
 *   - do_numa_page() / do_huge_pmd_numa_page(): the fault on such an entry is VM_FAULT_SIGBUS.
 *
 * Fault-around (filemap_map_pages()) maps page-cache pages without ->fault: as in the patch, a
 * page it meets that is not PageGuest yet is mapped with the VMA's protection (the test shows it).
 */
import {
  TTU_IGNORE_MLOCK, VM_FAULT_SIGBUS, VM_NONE, folio_mark_dirty, pmd_index_of, pte_index, pte_protnone, try_to_unmap, vm_flags_test,
  vm_get_page_prot, type Folio, type VmAreaStruct, type VmFault,
} from '@cocosim/mm';
import { PageGuest, TestSetPageGuest } from './page-flags.js';
import { VM_GUEST } from './uapi.js';

/** x86's PAGE_NONE (protection_map[VM_NONE]): _PAGE_PROTNONE, not present to the CPU. */
export const PAGE_NONE = vm_get_page_prot(VM_NONE);

/**
 * shmem_fault()'s TestSetPageGuest() and do_set_pte()/do_set_pmd()'s PAGE_NONE: the pte_prot
 * hook, asked as `folio` is about to be mapped by fault `vmf`.
 */
export function do_set_pte_guest(vmf: VmFault, folio: Folio): number {
  const vma = vmf.vma;
  const kernel = vma.vm_mm.kernel;
  const store = kernel.store;
  /* vmf.page is what ->fault (shmem_fault) returned, locked; fault-around leaves it unset */
  if (vmf.page !== undefined && vm_flags_test(vma.vm_flags, VM_GUEST) && !TestSetPageGuest(store, folio)) {
    try_to_unmap(kernel, folio, TTU_IGNORE_MLOCK);
    folio_mark_dirty(store, folio);
  }
  return PageGuest(store, folio) ? PAGE_NONE : 0;
}

/**
 * do_numa_page() / do_huge_pmd_numa_page(): "if (PageGuest(page)) return VM_FAULT_SIGBUS" for a
 * PROT_NONE entry (the handle_mm_fault hook, before the base's NUMA hinting fault).
 */
export function do_numa_page_guest(vma: VmAreaStruct, vpn: number): number {
  const mm = vma.vm_mm;
  const store = mm.kernel.store;
  const pt = mm.pgd;
  const huge = pt.pmds.size !== 0 ? pt.pmds.get(pmd_index_of(vpn)) : undefined;
  let flags: number;
  let pfn: number;
  if (huge !== undefined) {
    flags = huge.flags;
    pfn = huge.val;
  } else {
    const t = pt.ptes.get(pmd_index_of(vpn));
    if (t === undefined) return 0;
    flags = t.flags[pte_index(vpn)]!;
    pfn = t.val[pte_index(vpn)]!;
  }
  if (!pte_protnone(flags)) return 0;
  return PageGuest(store, pfn) ? VM_FAULT_SIGBUS : 0;
}
