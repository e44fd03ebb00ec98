/**
 * Design "mktme_encrypt" (designs.md D12): Intel MKTME with the RFC's user API, Alison
 * Schofield's key service type "mktme" and encrypt_mprotect() (updated RFC, 3 Dec 2018; Kirill
 * Shutemov, "[PATCH, RFC 00/62] Intel MKTME enabling", 8 May 2019,
 * 20190508144422.13171-1-kirill.shutemov@linux.intel.com), never merged; or, with option
 * `uapi: 'dev_mktme'`, Andy Lutomirski's /dev/mktme driver in its place (Jun 2019 thread).
 *
 *   mktme_keys.ts  security/keys/mktme_keys.c: add_key("mktme"), keyctl, KeyID per key
 *   mprotect.ts    mm/mprotect.c: encrypt_mprotect(), the KeyID of anonymous VMAs
 *   memory.ts      pages allocated with the VMA's KeyID, freed out of it; host accesses through it
 *   dev_mktme.ts   the /dev/mktme alternative
 *   mktme.ts       the arch half the vendor (vendors/mktme) registers
 *   kvm.ts, vmm.ts the VM (a default VM) and its VMM
 *
 * The threat model is not a confidential VM's: the VMM owns the key and sees the guest's
 * plaintext, only other KeyIDs (devices, other keys, physical attacks) see ciphertext.
 */
import type { HostRegistrar } from '@cocosim/core';
import { Kernel, register_mm_hooks } from '@cocosim/mm';
import { design_install, type Design } from '../design.js';
import { mktme_dev_open } from './dev_mktme.js';
import { mktme_free_listener, mktme_mm_hooks } from './memory.js';
import { MKTME_ENCRYPT_DESIGN } from './syscall.js';
import {
  KEYCTL_INVALIDATE, KEYCTL_REVOKE, KVM_SET_USER_MEMORY_REGION, KVM_X86_DEFAULT_VM, MKTME_IOC_ENCRYPT_ME, __NR_encrypt_mprotect,
} from './uapi.js';
import { mktme_encrypt_vmm } from './vmm.js';

export { __NR_encrypt_mprotect, KEYCTL_INVALIDATE, KEYCTL_REVOKE, MKTME_IOC_ENCRYPT_ME } from './uapi.js';
export { add_key, encrypt_mprotect, keyctl } from './syscall.js';
export { mktme_arch_register, mktme_arch_of, type MktmeArch, type MktmeKeyProgramArgs } from './mktme.js';
export { mktme_preparse_payload } from './mktme_keys.js';
export { vma_keyid } from './mprotect.js';
export { mktme_cvm } from './kvm.js';
export { mktme_encrypt_vmm, mktme_vmm_state, type MktmeVmmState } from './vmm.js';

/** The registrar's options. */
export interface MktmeEncryptOptions {
  /** The user API: the RFC's key type + encrypt_mprotect() (default), or Andy's /dev/mktme. */
  readonly uapi?: 'encrypt_mprotect' | 'dev_mktme';
}

/** Installs the design on a host (after mmRegistrar and kvmRegistrar). */
function mktmeEncryptRegistrar(opts: MktmeEncryptOptions = {}): HostRegistrar {
  return (root) => {
    const kernel = root.resolve(Kernel);
    const uapi = opts.uapi ?? 'encrypt_mprotect';
    design_install(kernel, mktme_encrypt, { uapi });
    register_mm_hooks(kernel, mktme_mm_hooks);
    kernel.page_alloc.addListener(mktme_free_listener(kernel));
    if (uapi === 'dev_mktme') kernel.register_device('/dev/mktme', (k, flags) => mktme_dev_open(k, flags));
  };
}

export const mktme_encrypt: Design<MktmeEncryptOptions> = {
  name: MKTME_ENCRYPT_DESIGN,
  title: 'MKTME: add_key("mktme") + encrypt_mprotect(), or Andy\'s /dev/mktme (RFC Dec 2018 / May 2019, never merged)',
  rows: ['D12'],
  uapi: { __NR_encrypt_mprotect, KEYCTL_REVOKE, KEYCTL_INVALIDATE, MKTME_IOC_ENCRYPT_ME, KVM_X86_DEFAULT_VM, KVM_SET_USER_MEMORY_REGION },
  options: {
    uapi: '"encrypt_mprotect" (default): the key type and encrypt_mprotect(); "dev_mktme": /dev/mktme with ioctl(MKTME_IOC_ENCRYPT_ME) and mmap() instead',
  },
  vmm: mktme_encrypt_vmm,
  registrar: mktmeEncryptRegistrar,
};
