/**
 * MKTME's part of the state digest and of DEBUG_VM (core/src/state_digest.ts, mm/src/debug_vm.ts),
 * after kvm/src/kvm_debug.ts.
 *
 * Digest part "mktme.platform", the host's MKTME hardware and the kernel's KeyID bookkeeping
 * (mktme.ts): each KeyID's programming (cleared, encrypt, no_encrypt) and kernel references, by
 * KeyID (a slot never programmed and unreferenced is the same as none: PCONFIG's failures create
 * no state); page_ext->keyid of each page by pfn; the dirty lines still cached per page (the KeyID
 * they were written through and their data); the two fault-injection knobs, which the next PCONFIG
 * consumes. The keys themselves are PhysMem's (mm's part).
 *
 * DEBUG_VM rules ("mktme:<rule>"), the kernel's KeyID bookkeeping of the MKTME RFC:
 *   keyid_ref     a KeyID's reference count covers the pages that carry it: prep_encrypted_page()
 *                 takes one per page, free_encrypted_page() drops it (the VMAs using the KeyID
 *                 hold the rest, so only >= is asserted).
 *   keyid_free    no free page carries a KeyID: the page allocator's free path calls
 *                 free_encrypted_page() (KeyID back to 0) before the page is free. Whether a host
 *                 user PTE maps a KeyID-k page is not asserted: MKTME has no access control, a
 *                 mapping through another KeyID reads ciphertext.
 *   keyid_cleared no page carries a KeyID whose key was cleared: the key type refuses to revoke or
 *                 reprogram a KeyID that pages use (mktme_key_program(): -EBUSY).
 */
import { type HostRegistrar, type StateHash, stateDigestRegistry } from '@cocosim/core';
import { debug_vm_register, page_count, type Kernel } from '@cocosim/mm';
import { mktme_platform_of } from './mktme.js';

const hex = (n: number): string => `0x${n.toString(16)}`;
const by_num = (a: number, b: number): number => a - b;

/** The host's MKTME hardware and KeyID bookkeeping (the file comment). */
function hash_platform(h: StateHash, kernel: Kernel): void {
  const m = mktme_platform_of(kernel);
  const t = m.debug_tables();
  const keyids = [...t.keys.keys()].filter((k) => t.keys.get(k)!.state !== 'cleared' || t.keys.get(k)!.refcount !== 0).sort(by_num);
  h.num(keyids.length);
  for (const k of keyids) {
    const s = t.keys.get(k)!;
    h.num(k);
    h.str(s.state);
    h.num(s.refcount);
  }
  const pfns = [...t.page_keyids.keys()].sort(by_num);
  h.num(pfns.length);
  for (const pfn of pfns) {
    h.num(pfn);
    h.num(t.page_keyids.get(pfn)!);
  }
  const dirty = [...t.dirty.keys()].sort(by_num);
  h.num(dirty.length);
  for (const pfn of dirty) {
    const d = t.dirty.get(pfn)!;
    h.num(pfn);
    h.num(d.keyid);
    h.bytes(d.data);
  }
  h.bool(m.device_busy);
  h.bool(m.entropy_error);
}

type Report = (rule: string, message: string, pfn?: number) => void;

/** The DEBUG_VM check of the host's KeyID bookkeeping (the rules of the file comment). */
export function mktme_check(kernel: Kernel, report: Report): void {
  const m = mktme_platform_of(kernel);
  const t = m.debug_tables();
  const store = kernel.store;
  const pages = new Map<number, number>();
  for (const [pfn, keyid] of t.page_keyids) {
    if (keyid === 0) continue;
    pages.set(keyid, (pages.get(keyid) ?? 0) + 1);
    if (pfn >= store.base_pfn && pfn < store.end_pfn && page_count(store, pfn) <= 0) {
      report('keyid_free', `pfn ${hex(pfn)} carries KeyID ${keyid} and is free in the page allocator`, pfn);
    }
    if (m.key_state(keyid) === 'cleared') report('keyid_cleared', `pfn ${hex(pfn)} carries KeyID ${keyid}, whose key is cleared`, pfn);
  }
  for (const [keyid, n] of pages) {
    const refs = m.keyid_refcount(keyid);
    if (refs < n) report('keyid_ref', `KeyID ${keyid} has ${refs} references, ${n} pages carry it`);
  }
}

/** The host's composition root, as a registrar gets it. */
type Root = Parameters<HostRegistrar>[0];

/** Registers MKTME's digest part and DEBUG_VM rules on the host (from its registrar; once per host). */
export function mktme_debug_register(_root: Root, kernel: Kernel): void {
  const registry = stateDigestRegistry(kernel);
  if (registry.has('mktme.platform')) return;
  registry.register('mktme.platform', (h) => hash_platform(h, kernel), 110);
  debug_vm_register(kernel, 'mktme', (k, report) => mktme_check(k, report));
}
