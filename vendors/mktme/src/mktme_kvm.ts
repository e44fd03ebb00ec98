/**
 * MKTME's kvm_x86_ops: MKTME is no confidential-VM technology (vendor-models.md §4, §8): KVM has no
 * private VM type for it (supported_vm_types 0: only KVM_X86_DEFAULT_VM, which kvm_main adds), no
 * guest_memfd flow, no launch measurement and no guest conversion call. What it changes is what
 * an access reads: the RFC KVM series took a guest page's KeyID from the host PTE of the VMM's
 * (encrypt_mprotect()ed) mapping into the EPT entry, so a guest access goes through the page's
 * KeyID, and every other actor through its own (host kernel direct map and user mappings: KeyID 0;
 * a device: the KeyID in its DMA address, 0 for a device that knows nothing of MKTME).
 *
 *   - guest_mem_access: the guest reads through the page's KeyID (plaintext for the guest);
 *   - host_access / dma_access: proceed, never fault (no integrity, no ownership), 'ciphertext'
 *     when the page has a KeyID with a key, since the host uses KeyID 0.
 */
import type { HostAccessActorKind, HostAccessOutcome, Kvm, KvmVcpu, KvmX86Ops, GuestMemAccess } from '@cocosim/kvm';
import { mktme_platform_of } from './mktme.js';

/** kvm->arch.vendor of a VM on an MKTME host: the KeyID the VMM encrypted its guest memory with. */
export interface KvmMktme {
  keyid: number;
}

export function to_kvm_mktme(kvm: Kvm): KvmMktme {
  return kvm.arch.vendor as KvmMktme;
}

function mktme_vm_init(kvm: Kvm): number {
  kvm.arch.vendor = { keyid: 0 } satisfies KvmMktme;
  return 0;
}

const OK: HostAccessOutcome = { kind: 'ok' };
const CIPHERTEXT: HostAccessOutcome = { kind: 'ciphertext' };

/** A host CPU access (KeyID 0 mapping, user or kernel alike): ciphertext when the page has a keyed KeyID. */
function mktme_host_access(kvm: Kvm, pfn: number, _write: boolean, _actor?: HostAccessActorKind): HostAccessOutcome {
  return mktme_platform_of(kvm.kernel).access_outcome(pfn, 0).data === 'plaintext' ? OK : CIPHERTEXT;
}

/** A device DMA with KeyID 0 in its address (the IOMMU does not check KeyIDs): as a host access. */
function mktme_dma_access(kvm: Kvm, pfn: number, write: boolean): HostAccessOutcome {
  return mktme_host_access(kvm, pfn, write);
}

/** A guest access: the EPT entry carries the page's KeyID, so the guest sees its plaintext. */
function mktme_guest_mem_access(vcpu: KvmVcpu, _gpa: bigint, pfn: number): GuestMemAccess {
  const p = mktme_platform_of(vcpu.kvm.kernel);
  return { kind: 'ok', key: p.phys_key(p.page_keyid(pfn)) };
}

export const mktme_x86_ops: KvmX86Ops = {
  name: 'mktme',
  supported_vm_types: 0,
  tdp_enabled: true,
  vm_init: mktme_vm_init,
  host_access: mktme_host_access,
  dma_access: mktme_dma_access,
  guest_mem_access: mktme_guest_mem_access,
};
