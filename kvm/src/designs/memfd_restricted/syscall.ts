/**
 * memfd_restricted(2) as user space calls it: the C library's syscall(__NR_memfd_restricted,
 * flags). The system call exists only on a host running the design (sys_ni_syscall's -ENOSYS
 * elsewhere); the new file is registered as KVM's restrictedmem store, as v10's
 * kvm_restrictedmem_bind() finds it by file_is_restrictedmem().
 */
import { Errno } from '@cocosim/core';
import type { Process } from '@cocosim/mm';
import { kvm_private_store_register } from '../../kvm_hooks.js';
import { design_of } from '../design.js';
import { kvm_restrictedmem_store } from './kvm.js';
import { sys_memfd_restricted } from './restrictedmem.js';

/** The design's name (index.ts), by which the host says it runs it. */
export const MEMFD_RESTRICTED_DESIGN = 'memfd_restricted';

/**
 * memfd_restricted(2) from process `p`: the new fd, or -1 with p.errno set (-ENOSYS, as
 * sys_ni_syscall, on a host without the design).
 */
export function memfd_restricted(p: Process, flags: unknown): number {
  p.kernel.cost.charge('syscall_entry');
  const r = design_of(p.kernel)?.design.name === MEMFD_RESTRICTED_DESIGN
    ? sys_memfd_restricted(p.task, flags, (file) => kvm_private_store_register(file.f_inode, kvm_restrictedmem_store))
    : -Errno.ENOSYS;
  if (r < 0) {
    p.errno = -r;
    return -1;
  }
  return r;
}
