/**
 * mm/mprotect.c of "mm: Introduce guest-only pages" (Kirill A. Shutemov,
 * https://lore.kernel.org/all/20210521123148.a3t4uh4iezm6ax47@box/):
 *   - calc_vm_prot_bits(): PROT_GUEST -> VM_GUEST;
 *   - do_mprotect_pkey(), after the VM_MAY* check (-EACCES): VM_GUEST needs VM_SHARED (-EINVAL)
 *     and a shmem VMA (-EINVAL): "Only shared tmpfs/shmem mappings are supported";
 *   - mprotect_fixup(): a VM_GUEST VMA is zapped instead of change_protection(), so that every
 *     page refaults through shmem_fault() and becomes PageGuest.
 */
import { Errno } from '@cocosim/core';
import { VM_SHARED, vm_flags_test, vma_is_shmem, zap_page_range_single, type VmAreaStruct } from '@cocosim/mm';
import { PROT_GUEST, VM_GUEST } from './uapi.js';

/** calc_vm_prot_bits()'s _calc_vm_trans(prot, PROT_GUEST, VM_GUEST): the mprotect_prot hook. */
export function calc_vm_prot_guest(_vma: VmAreaStruct, prot: number): number {
  return prot & PROT_GUEST ? VM_GUEST : 0;
}

/**
 * do_mprotect_pkey()'s VM_GUEST checks, then mprotect_fixup()'s zap of the range (the
 * mprotect_fixup hook, asked where security_file_mprotect() is, after the -EACCES check).
 */
export function mprotect_fixup_guest(vma: VmAreaStruct, start: number, end: number, newflags: number): number {
  if (!vm_flags_test(newflags, VM_GUEST)) return 0;
  if (!(newflags & VM_SHARED)) return -Errno.EINVAL;
  if (!vma_is_shmem(vma)) return -Errno.EINVAL;
  zap_page_range_single(vma, start, end - start, null);
  return 0;
}
