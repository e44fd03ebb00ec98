/**
 * The system calls of D12 as user space calls them (the C library's add_key(2), keyctl(2) and
 * syscall(__NR_encrypt_mprotect, ...)): -1 with p.errno on error. They exist only on a host
 * running the design with its encrypt_mprotect uAPI; elsewhere encrypt_mprotect() is
 * sys_ni_syscall's -ENOSYS and add_key("mktme") finds no such key type (-ENODEV).
 */
import { Errno } from '@cocosim/core';
import type { Process } from '@cocosim/mm';
import { design_of } from '../design.js';
import { sys_add_key, sys_keyctl } from './mktme_keys.js';
import { sys_encrypt_mprotect } from './mprotect.js';

/** The design's name (index.ts), by which the host says it runs it. */
export const MKTME_ENCRYPT_DESIGN = 'mktme_encrypt';

/** Whether `p`'s host runs D12 with encrypt_mprotect() and the "mktme" key type. */
function has_encrypt_mprotect(p: Process): boolean {
  const d = design_of(p.kernel);
  return d?.design.name === MKTME_ENCRYPT_DESIGN && (d.options as { uapi?: string }).uapi !== 'dev_mktme';
}

function ret(p: Process, r: number): number {
  if (r < 0) {
    p.errno = -r;
    return -1;
  }
  return r;
}

/** encrypt_mprotect(2): 0, or -1 with errno. */
export function encrypt_mprotect(p: Process, addr: unknown, len: unknown, prot: unknown, serial: unknown): number {
  p.kernel.cost.charge('syscall_entry');
  return ret(p, has_encrypt_mprotect(p) ? sys_encrypt_mprotect(p.mm, addr, len, prot, serial) : -Errno.ENOSYS);
}

/** add_key(2) (the keyring argument is not modelled: keys go to the thread keyring): the serial, or -1 with errno. */
export function add_key(p: Process, type: unknown, description: unknown, payload: unknown): number {
  p.kernel.cost.charge('syscall_entry');
  return ret(p, has_encrypt_mprotect(p) ? sys_add_key(p.kernel, type, description, payload) : -Errno.ENODEV);
}

/** keyctl(2) KEYCTL_REVOKE / KEYCTL_INVALIDATE of an "mktme" key: 0, or -1 with errno. */
export function keyctl(p: Process, cmd: unknown, serial: unknown): number {
  p.kernel.cost.charge('syscall_entry');
  return ret(p, has_encrypt_mprotect(p) ? sys_keyctl(p.kernel, cmd, serial) : -Errno.ENOKEY);
}
