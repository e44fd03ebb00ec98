/**
 * mm/memory.c and mm/huge_memory.c of "KVM protected memory extension" RFCv2 (Kirill A.
 * Shutemov, 20 Oct 2020, https://lore.kernel.org/all/20201020061859.18385-1-kirill.shutemov@linux.intel.com/):
 *   - 09/16: do_numa_page() / do_huge_pmd_numa_page(): "if (vma_is_kvm_protected(vma)) return
 *     VM_FAULT_SIGBUS": a user access to a PROT_NONE entry of a protected VMA (and a GUP without
 *     FOLL_KVM that faults it) gets SIGBUS;
 *   - 16/16: do_anonymous_page() does not map the zero page into a protected VMA (a read fault
 *     allocates, so that KVM's FOLL_KVM write later finds a page it may write);
 *   - 15/16: do_anonymous_page() takes the new page out of the direct map (kvm_unmap_page()).
 */
import {
  FAULT_FLAG_WRITE, PTRS_PER_PTE, VM_FAULT_ERROR, VM_FAULT_NOPAGE, VM_FAULT_SIGBUS, VM_WRITE, handle_mm_fault, pmd_index_of, pte_index,
  pte_present, pte_protnone, vm_flags_test, vma_is_anonymous, type Kernel, type VmAreaStruct,
} from '@cocosim/mm';
import { kvm_unmap_page } from './mem_protected.js';
import { VM_KVM_PROTECTED } from './uapi.js';

/** vma_is_kvm_protected(). */
export function vma_is_kvm_protected(vma: VmAreaStruct): boolean {
  return vm_flags_test(vma.vm_flags, VM_KVM_PROTECTED);
}

/** The entry mapping `vpn` (a PMD leaf or a PTE): its flags, first pfn and size, or undefined when there is none. */
function entry_at(vma: VmAreaStruct, vpn: number): { flags: number; pfn: number; nr: number } | undefined {
  const pt = vma.vm_mm.pgd;
  const huge = pt.pmds.size !== 0 ? pt.pmds.get(pmd_index_of(vpn)) : undefined;
  if (huge !== undefined) return { flags: huge.flags, pfn: huge.val, nr: PTRS_PER_PTE };
  const t = pt.ptes.get(pmd_index_of(vpn));
  if (t === undefined) return undefined;
  const flags = t.flags[pte_index(vpn)]!;
  return flags === 0 ? undefined : { flags, pfn: t.val[pte_index(vpn)]!, nr: 1 };
}

/** Faults being handled inside the hook (the anonymous first touch below), per host. */
const in_fault = new WeakSet<Kernel>();

/**
 * The handle_mm_fault hook of a protected VMA: do_numa_page()'s SIGBUS for a PROT_NONE entry;
 * for the first touch of anonymous memory, do_anonymous_page() as the series patched it: a write
 * fault's page even for a read (no zero page), then kvm_unmap_page() of the new page.
 */
export function handle_mm_fault_protected(vma: VmAreaStruct, vpn: number, flags: number): number {
  if (!vma_is_kvm_protected(vma)) return 0;
  const kernel = vma.vm_mm.kernel;
  if (in_fault.has(kernel)) return 0;
  const e = entry_at(vma, vpn);
  if (e !== undefined) return pte_protnone(e.flags) ? VM_FAULT_SIGBUS : 0;
  if (!vma_is_anonymous(vma)) return 0;
  in_fault.add(kernel);
  let ret: number;
  try {
    ret = handle_mm_fault(vma, vpn, vma.vm_flags & VM_WRITE ? flags | FAULT_FLAG_WRITE : flags);
  } finally {
    in_fault.delete(kernel);
  }
  if (ret & VM_FAULT_ERROR) return ret;
  const mapped = entry_at(vma, vpn);
  if (mapped !== undefined && pte_present(mapped.flags) && mapped.pfn !== kernel.store.zero_pfn) kvm_unmap_page(kernel, mapped.pfn, mapped.nr);
  return ret || VM_FAULT_NOPAGE;
}
