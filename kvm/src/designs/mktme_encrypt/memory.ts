/**
 * Pages with a KeyID: the page-allocation and page-free parts of the MKTME RFC ("[PATCH, RFC
 * 00/62] Intel MKTME enabling", 8 May 2019, 20190508144422.13171-1-kirill.shutemov@linux.intel.com):
 *
 *  - "mm: Allocate pages with KeyID from the VMA" / alloc_page_vma() with the VMA's KeyID, and
 *    prep_encrypted_page() ("x86/mm: Implement prep_encrypted_page() and arch_free_page()"): a
 *    page faulted into an encrypted VMA gets page_ext->keyid and is zeroed through it, before
 *    anyone reads it. Modelled on mm's handle_mm_fault hook: the design completes the fault with
 *    the base's handler and prepares the pages it mapped. What the base put in a new page (a
 *    page swapped back in, whose plaintext swap-out wrote through the per-KeyID direct map) is
 *    kept through the KeyID; a copy-on-write copy gets the old page's plaintext. The shared zero
 *    page stays the zero page until the first write, which reads the same;
 *  - page migration: the new page gets the old one's KeyID before the kernel copies it through
 *    the KeyID (mm's migrate_copy_key hook), so NUMA and compaction keep working (Dave Hansen's
 *    case for anonymous memory over a driver);
 *  - arch_free_page() -> free_encrypted_page(): a freed page leaves its KeyID (the caches are
 *    flushed, page_ext->keyid back to 0), on the page allocator's free path; a removed key's
 *    KeyID is freed with its last page;
 *  - every host mapping of the page carries its KeyID (the owner's PTEs; the kernel's per-KeyID
 *    direct map, "used whenever the kernel needs to access plaintext"): mm's host_access_key hook
 *    gives host loads, stores and uaccess copies the page's key. Only an access through another
 *    KeyID (the TME view, another key's mapping) sees ciphertext;
 *  - "iommu/vt-d: Support MKTME in DMA remapping" (Jacob Pan, in the series): the IOMMU's entry
 *    for a page carries the page's KeyID, so device DMA goes through it too (mm's dma_access_key
 *    hook; the vendor alone has devices use KeyID 0).
 */
import type { Pfn } from '@cocosim/core';
import {
  VM_FAULT_ERROR, VM_FAULT_NOPAGE, folio_nr_pages, handle_mm_fault, page_folio, pagemap_pfn, type Kernel, type MmHooks,
  type PageAllocListener, type VmAreaStruct,
} from '@cocosim/mm';
import { mktme_keys_arch, mktme_release_keyid_if_unused } from './mktme_keys.js';
import { vma_keyid } from './mprotect.js';

/** The fault the design is completing (the base's handler asks the hook again). */
let completing: VmAreaStruct | undefined;

/**
 * The fault of page `vpn` of an encrypted VMA: the base's handle_mm_fault(), then
 * prep_encrypted_page() of every page of the folio it mapped that has no KeyID yet, keeping what
 * the page held (a copy-on-write copy: the old page's plaintext). VM_FAULT_NOPAGE when the design
 * handled the fault, the base's error bits, or 0 for VMAs without a KeyID.
 */
function mktme_handle_mm_fault(vma: VmAreaStruct, vpn: number, flags: number): number {
  const keyid = vma_keyid(vma);
  if (keyid === 0 || completing === vma) return 0;
  const mm = vma.vm_mm;
  const kernel = mm.kernel;
  const arch = mktme_keys_arch(kernel);
  if (arch === undefined) return 0;
  const addr = BigInt(vpn) * 4096n;
  const before = pagemap_pfn(mm, addr);
  completing = vma;
  let r: number;
  try {
    r = handle_mm_fault(vma, vpn, flags);
  } finally {
    completing = undefined;
  }
  if (r & VM_FAULT_ERROR) return r;
  const pfn = pagemap_pfn(mm, addr);
  if (pfn === undefined || pfn === kernel.store.zero_pfn || pfn === before) return r | VM_FAULT_NOPAGE;
  const key = arch.phys_key(keyid);
  const copied = before !== undefined && before !== kernel.store.zero_pfn && arch.page_keyid(before) === keyid
    ? kernel.phys.read(before as Pfn, 0, 4096, key) : undefined;
  const folio = page_folio(kernel.store, pfn);
  const nr = folio_nr_pages(kernel.store, folio);
  for (let p = folio; p < folio + nr; p++) {
    if (arch.page_keyid(p) !== 0) continue;
    // A zero page needs nothing kept: prep_encrypted_page() zeroes it through the KeyID.
    const kept = p === pfn && copied instanceof Uint8Array ? copied
      : kernel.phys.state(p as Pfn) === 'zero' ? undefined : kernel.phys.read(p as Pfn, 0, 4096);
    arch.prep_encrypted_page(p, keyid);
    if (kept instanceof Uint8Array) kernel.phys.write(p as Pfn, 0, kept, key);
  }
  return r | VM_FAULT_NOPAGE;
}

/** arch_free_page() -> free_encrypted_page() for the pages the allocator gets back. */
export function mktme_free_listener(kernel: Kernel): PageAllocListener {
  return {
    onFree(pfn: Pfn, nr_pages: number): void {
      const arch = mktme_keys_arch(kernel);
      if (arch === undefined) return;
      for (let p = pfn as number; p < pfn + nr_pages; p++) {
        const keyid = arch.page_keyid(p);
        if (keyid === 0) continue;
        arch.free_encrypted_page(p);
        mktme_release_keyid_if_unused(kernel, keyid);
      }
    },
  };
}

/** The key of a host access: the page's KeyID, which every host mapping of it carries. */
function mktme_host_access_key(kernel: Kernel, pfn: number): number {
  const arch = mktme_keys_arch(kernel);
  return arch === undefined ? 0 : arch.phys_key(arch.page_keyid(pfn));
}

/** Migration of `src` to `dst`: `dst` takes `src`'s KeyID, and the copy goes through it. */
function mktme_migrate_copy_key(kernel: Kernel, dst: number, src: number): number {
  const arch = mktme_keys_arch(kernel);
  const keyid = arch?.page_keyid(src) ?? 0;
  if (arch === undefined || keyid === 0) return 0;
  if (arch.page_keyid(dst) === 0) arch.prep_encrypted_page(dst, keyid);
  return arch.phys_key(keyid);
}

/** The design's mm provider. */
export const mktme_mm_hooks: MmHooks = {
  name: 'mktme_encrypt',
  handle_mm_fault: mktme_handle_mm_fault,
  host_access_key: mktme_host_access_key,
  // The IOPTE's KeyID is the page's, as the host's mappings' are.
  dma_access_key: mktme_host_access_key,
  migrate_copy_key: mktme_migrate_copy_key,
};
