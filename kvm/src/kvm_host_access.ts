/**
 * KVM's provider of mm's host_access hook (mm/src/mm_hooks.ts; cocosim, no kernel file): what a
 * host CPU access to a page does is the hardware's answer, and the hardware that answers is the
 * confidential-computing vendor's (an RMP check, a GPT check, a TD-owner bit). The base mm asks
 * the hook at every site where host code touches a page's bytes; this provider finds the VM whose
 * guest_memfd holds the page (the folio's mapping is a guest_memfd inode: GMEM_I(inode)->kvm) and
 * asks that VM's kvm_x86_ops.host_access. Pages no guest_memfd holds are the host's own: the
 * access proceeds.
 *
 * kvmRegistrar() registers it only for a vendor table that has a host_access hook, so hosts
 * without one pay nothing on user loads and stores.
 */
import {
  Inode, MM_HOST_ACCESS_FAULT, MM_HOST_ACCESS_MCE, MM_HOST_ACCESS_ZERO, folio_mapping, lookupMapping, page_folio,
  type HostAccessActor, type Kernel, type MmHooks,
} from '@cocosim/mm';
import type { Kvm } from './kvm_host.js';
import { GmemInode } from './guest_memfd.js';

/**
 * The VM whose guest_memfd holds `pfn` in its page cache (the VM that created the gmem inode),
 * or undefined for any other page.
 */
export function kvm_gmem_pfn_owner(kernel: Kernel, pfn: number): Kvm | undefined {
  const store = kernel.store;
  const id = folio_mapping(store, page_folio(store, pfn));
  if (id === 0) return undefined;
  const host = lookupMapping(store, id)?.host;
  if (!(host instanceof Inode) || !(host.i_private instanceof GmemInode)) return undefined;
  return host.i_private.kvm;
}

/** The vendor's HostAccessOutcome as mm's MM_HOST_ACCESS_* code. */
function kvm_host_access(kernel: Kernel, pfn: number, write: boolean, actor: HostAccessActor, offset: number, len: number): number {
  const kvm = kvm_gmem_pfn_owner(kernel, pfn);
  if (kvm === undefined) return 0;
  const out = kvm.x86_ops.host_access(kvm, pfn, write, actor, offset, len);
  switch (out.kind) {
    case 'ok':
    case 'ciphertext':
      return 0;
    case 'fault':
      return MM_HOST_ACCESS_FAULT;
    case 'mce':
      return MM_HOST_ACCESS_MCE;
    case 'zeros':
      return MM_HOST_ACCESS_ZERO;
  }
}

/** The provider kvmRegistrar() registers with register_mm_hooks(). */
export const kvm_host_access_hooks: MmHooks = {
  name: 'kvm',
  host_access: kvm_host_access,
};
