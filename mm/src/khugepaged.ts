/**
 * mm/khugepaged.c as far as MADV_COLLAPSE reaches it: madvise_collapse() and the checks of
 * thp_vma_allowable_order(vma, vm_flags, TVA_FORCED_COLLAPSE, PMD_ORDER) (mm/huge_memory.c
 * __thp_vma_allowable_orders(), Linux 6.18) that decide -EINVAL.
 *
 * cocosim has no khugepaged and does not collapse small pages into a THP: a 2 MiB-aligned range
 * that MADV_COLLAPSE would collapse gets -EINVAL (where Linux collapses it and says 0: a known
 * difference, listed in madvise.ts). Everything else is answered as Linux does: a VMA that cannot
 * hold a PMD is -EINVAL, a range that holds no whole aligned 2 MiB collapses nothing and is 0
 * (-EINVAL when it also starts past a 2 MiB boundary), and a range already mapped by PMDs is 0
 * (SCAN_PMD_MAPPED).
 */
import { Errno, HPAGE_PMD_NR, HPAGE_PMD_ORDER } from '@cocosim/core';
import { thp_vma_suitable_order, vma_is_shmem } from './memory.js';
import { VM_HUGETLB, VM_NOHUGEPAGE, VM_SPECIAL, vm_sysctl, vma_is_anonymous, type VmAreaStruct } from './mm_types.js';
import { _PAGE_PRESENT, _PAGE_PSE, pmd_index_of } from './pgtable.js';

/** VM_NO_KHUGEPAGED: VMAs khugepaged and MADV_COLLAPSE leave alone. */
const VM_NO_KHUGEPAGED = VM_SPECIAL | VM_HUGETLB;

/**
 * vma_thp_disabled() for a forced collapse: VM_NOHUGEPAGE only (the process-wide prctl is not
 * modelled; MADV_COLLAPSE is itself the advice that MMF_DISABLE_THP_EXCEPT_ADVISED asks for).
 */
function vma_thp_disabled(vma: VmAreaStruct): boolean {
  return (vma.vm_flags & VM_NOHUGEPAGE) !== 0;
}

/**
 * thp_vma_allowable_order(vma, vma->vm_flags, TVA_FORCED_COLLAPSE, PMD_ORDER): the sysfs
 * "enabled" setting is ignored (forced), the VMA must take THPs (not VM_NOHUGEPAGE, not special or
 * hugetlb), must hold a 2 MiB range aligned in memory and in the file (thp_vma_suitable_order() at
 * vm_end - 2 MiB), and then: a shmem file unless shmem_enabled is "deny"
 * (shmem_allowable_huge_orders() with shmem_huge_force), an anonymous VMA once it has an anon_vma.
 * Other files (devices, guest_memfd) are neither shmem nor regular files with THP: no.
 */
export function thp_vma_allowable_collapse(vma: VmAreaStruct): boolean {
  if (vma_thp_disabled(vma)) return false;
  if (vma.vm_flags & VM_NO_KHUGEPAGED) return false;
  if (!thp_vma_suitable_order(vma, vma.end_vpn - HPAGE_PMD_NR, HPAGE_PMD_ORDER)) return false;
  if (vma.vm_file !== null && vma_is_shmem(vma)) return vm_sysctl(vma.vm_mm.kernel).shmem_enabled !== 'deny';
  if (!vma_is_anonymous(vma)) return false;
  return vma.anon_vma !== null;
}

/**
 * madvise_collapse(): collapse the 2 MiB-aligned ranges inside pages [start, end) of `vma` (the
 * part of the madvise range in this VMA). 0 when every one is a THP mapped by a PMD (none: 0).
 */
export function madvise_collapse(vma: VmAreaStruct, start: number, end: number): number {
  if (!thp_vma_allowable_collapse(vma)) return -Errno.EINVAL;
  const hstart = Math.ceil(start / HPAGE_PMD_NR) * HPAGE_PMD_NR;
  const hend = Math.floor(end / HPAGE_PMD_NR) * HPAGE_PMD_NR;
  /*
   * A range inside one 2 MiB that does not start on its boundary has hstart > hend: the kernel's
   * "thps == (hend - hstart) >> HPAGE_PMD_SHIFT" compares 0 with an unsigned wrap and returns
   * madvise_collapse_errno(SCAN_FAIL), -EINVAL (Linux 6.18.44: madvise(p + 4096, 4096) is
   * EINVAL where madvise(p, 4096) is 0).
   */
  if (hstart > hend) return -Errno.EINVAL;
  const pmds = vma.vm_mm.pgd.pmds;
  for (let vpn = hstart; vpn < hend; vpn += HPAGE_PMD_NR) {
    const e = pmds.get(pmd_index_of(vpn));
    const pmd_mapped = e !== undefined && (e.flags & (_PAGE_PRESENT | _PAGE_PSE)) === (_PAGE_PRESENT | _PAGE_PSE);
    /* small pages here: Linux would collapse them (hpage_collapse_scan_pmd()); cocosim cannot */
    if (!pmd_mapped) return -Errno.EINVAL;
  }
  return 0;
}
