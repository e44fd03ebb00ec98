/**
 * The mm/mprotect.c part of the per-VMA write denial (David Hildenbrand, 2021-04-07,
 * 5e934d94-414c-90de-c58e-34456e4ab1cf@redhat.com; designs.md D2): after protected memory is
 * switched on, "make sure the VMAs cannot be set to PROT_WRITE anymore". A write fault from user
 * space on such a VMA is the base's SIGSEGV SEGV_ACCERR: the VMA has no VM_WRITE.
 */
import { Errno } from '@cocosim/core';
import { VM_WRITE, vm_flags_test, type VmAreaStruct } from '@cocosim/mm';
import { VM_DENYUSERWRITE } from './uapi.js';

/**
 * do_mprotect_pkey()'s check, where security_file_mprotect() is asked: adding VM_WRITE to a
 * VM_DENYUSERWRITE VMA is -EACCES (the errno mprotect() gives for a permission the VMA may not
 * have; the mail names no errno).
 */
export function mprotect_denyuserwrite(vma: VmAreaStruct, _start: number, _end: number, newflags: number): number {
  if (vm_flags_test(vma.vm_flags, VM_DENYUSERWRITE) && vm_flags_test(newflags, VM_WRITE)) return -Errno.EACCES;
  return 0;
}
