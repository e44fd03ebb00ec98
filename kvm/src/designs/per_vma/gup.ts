/**
 * The mm/gup.c part of the per-VMA write denial (David Hildenbrand, 2021-04-07,
 * 5e934d94-414c-90de-c58e-34456e4ab1cf@redhat.com; designs.md D2): writes to a VM_DENYUSERWRITE
 * VMA go only through "FOLL_FORCE or a new fancy flag that allows to write with
 * VM_MAYWRITE|VM_DENYUSERWRITE". FOLL_FORCE alone also serves ptrace and /proc/pid/mem, so here
 * only the new flag (FOLL_DENYUSERWRITE, with FOLL_FORCE to pass check_vma_flags()) writes.
 */
import { Errno } from '@cocosim/core';
import { FOLL_WRITE, vm_flags_test, type VmAreaStruct } from '@cocosim/mm';
import { FOLL_DENYUSERWRITE, VM_DENYUSERWRITE } from './uapi.js';

/** follow_page_mask()'s check: a GUP write of a VM_DENYUSERWRITE VMA without FOLL_DENYUSERWRITE is -EFAULT. */
export function gup_check_denyuserwrite(vma: VmAreaStruct, _vpn: number, _pte: number, _pfn: number, gup_flags: number): number {
  if (!(gup_flags & FOLL_WRITE) || !vm_flags_test(vma.vm_flags, VM_DENYUSERWRITE)) return 0;
  return gup_flags & FOLL_DENYUSERWRITE ? 0 : -Errno.EFAULT;
}
