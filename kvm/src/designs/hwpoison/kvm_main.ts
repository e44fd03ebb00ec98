/**
 * The virt/kvm/kvm_main.c part of "[RFCv2 13/13] KVM: unmap guest memory using poisoned pages"
 * (20210416154106.23721-14-kirill.shutemov@linux.intel.com; RFCv1 7/7
 * 20210402152645.26680-8-kirill.shutemov@linux.intel.com), as designs.md D2 describes it: the
 * global owner xarray kvm_pfn_map (pfn -> VM), kvm_protect_pfn() poisoning a page at the guest's
 * first fault on it, kvm_page_allowed() for KVM's own GUP with FOLL_ALLOW_POISONED, and
 * kvm_share_pfn() clearing the poison of a page the guest shares.
 *
 * References: in the RFC each hwpoison entry holds a page reference (get_page() in
 * try_to_unmap_one() and copy_nonpresent_pte(), put_page() in zap_pte_range()) and a page is
 * unpoisoned when it is freed (free_pages_prepare() -> kvm_unpoison_page()). cocosim's base
 * does not take those references, so KVM holds one per page it poisoned instead, from
 * kvm_protect_pfn() until the VM is destroyed, when it unpoisons the page and drops it: a page
 * with entries that may point at it is never freed under them, and an unpoisoned page is what
 * the allocator gets back, as with the RFC's unpoison on free.
 */
import { Errno } from '@cocosim/core';
import {
  ClearPageHWPoison, PageHWPoison, TestSetPageHWPoison, folio_lock, folio_test_large, folio_test_swapbacked, folio_unlock, get_page,
  page_folio, put_page, unmap_poisoned_folio, type Kernel,
} from '@cocosim/mm';
import type { Kvm } from '../../kvm_host.js';
import { FOLL_ALLOW_POISONED } from './uapi.js';
import { range_contains, type Range } from './range.js';

/** What the series adds to struct kvm. */
export interface KvmMemProtected {
  /** kvm->mem_protected: set by KVM_HC_ENABLE_MEM_PROTECTED, never cleared. */
  mem_protected: boolean;
  /** kvm->shared_ranges[KVM_NR_SHARED_RANGES] and kvm->nr_shared_ranges (gfns, [start, end)). */
  readonly shared_ranges: Range[];
  nr_shared_ranges: number;
  /** The pages KVM poisoned for this VM, by gfn (the RFC finds them with gfn_to_page()). */
  readonly protected_gfns: Map<number, number>;
  /** The pages KVM holds a reference on (see the file comment), true once shared. */
  readonly held: Map<number, boolean>;
}

/** The design's state on one host: the global xarray and every VM's part. */
export interface HwpoisonHost {
  /** kvm_pfn_map: pfn -> the VM that poisoned it (the RFC stores kvm->id). */
  readonly kvm_pfn_map: Map<number, Kvm>;
  readonly vms: WeakMap<Kvm, KvmMemProtected>;
  /** Every VM that poisoned a page (for the fault path's restore of shared pages). */
  readonly live: Set<Kvm>;
}

const hosts = new WeakMap<Kernel, HwpoisonHost>();

/** The design's state on `kernel`'s host (created with the registrar). */
export function hwpoison_host(kernel: Kernel): HwpoisonHost {
  let h = hosts.get(kernel);
  if (h === undefined) {
    h = { kvm_pfn_map: new Map(), vms: new WeakMap(), live: new Set() };
    hosts.set(kernel, h);
  }
  return h;
}

/** The series' fields of `kvm`. */
export function kvm_mem_protected(kvm: Kvm): KvmMemProtected {
  const h = hwpoison_host(kvm.kernel);
  let s = h.vms.get(kvm);
  if (s === undefined) {
    s = { mem_protected: false, shared_ranges: [], nr_shared_ranges: 0, protected_gfns: new Map(), held: new Map() };
    h.vms.set(kvm, s);
  }
  return s;
}

/** Whether `gfn` is in the VM's shared ranges (scanned under spin_lock(&kvm->mmu_lock) on every fault). */
export function kvm_gfn_is_shared(kvm: Kvm, gfn: number): boolean {
  const s = kvm_mem_protected(kvm);
  return range_contains(s.shared_ranges, s.nr_shared_ranges, gfn);
}

/**
 * hva_to_pfn_slow()'s flags: FOLL_ALLOW_POISONED whenever kvm->mem_protected, so that KVM reaches
 * the pages it poisoned through the VMM's hwpoison entries.
 */
export function kvm_hva_gup_flags(kvm: Kvm): number {
  return kvm_mem_protected(kvm).mem_protected ? FOLL_ALLOW_POISONED : 0;
}

/**
 * kvm_page_allowed(): a poisoned page is KVM's to touch only if this VM poisoned it ("only the
 * KVM that poisoned the page allows to touch it"); a real memory error (no owner) is not.
 */
export function kvm_page_allowed(kvm: Kvm, pfn: number): boolean {
  const store = kvm.kernel.store;
  if (!PageHWPoison(store, pfn)) return true;
  return hwpoison_host(kvm.kernel).kvm_pfn_map.get(pfn) === kvm;
}

/**
 * kvm_protect_pfn(): at the guest's fault on `gfn` (page `pfn`), a protected VM's page outside
 * the shared ranges becomes private: lock_page, TestSetPageHWPoison, record the owner in
 * kvm_pfn_map, try_to_unmap() leaving hwpoison entries in every user mapping. A page another VM
 * poisoned (or a real memory error) is -EHWPOISON, which KVM answers with
 * kvm_send_hwpoison_signal(). Only swap-backed (anonymous, shmem) small pages: -EFAULT for
 * others ("Limited to swap-backed pages for now", "No THP support").
 */
export function kvm_protect_pfn(kvm: Kvm, gfn: number, pfn: number): number {
  const s = kvm_mem_protected(kvm);
  if (!s.mem_protected || kvm_gfn_is_shared(kvm, gfn)) return 0;
  const kernel = kvm.kernel;
  const store = kernel.store;
  const h = hwpoison_host(kernel);
  const folio = page_folio(store, pfn);
  if (!folio_test_swapbacked(store, folio) || folio_test_large(store, folio)) return -Errno.EFAULT;
  folio_lock(store, folio);
  if (TestSetPageHWPoison(store, pfn)) {
    folio_unlock(store, folio);
    return h.kvm_pfn_map.get(pfn) === kvm ? 0 : -Errno.EHWPOISON;
  }
  h.kvm_pfn_map.set(pfn, kvm);
  get_page(store, pfn);
  s.held.set(pfn, false);
  s.protected_gfns.set(gfn, pfn);
  h.live.add(kvm);
  unmap_poisoned_folio(kernel, folio, pfn, false);
  folio_unlock(store, folio);
  return 0;
}

/**
 * The hva path of a guest fault on a protected VM (hva_to_pfn_slow()'s kvm_page_allowed(), then
 * direct_page_fault()'s kvm_protect_pfn()): 0 or -errno.
 */
export function kvm_hwpoison_faultin_pfn(kvm: Kvm, gfn: number, pfn: number): number {
  if (!kvm_mem_protected(kvm).mem_protected) return 0;
  if (!kvm_page_allowed(kvm, pfn)) return -Errno.EHWPOISON;
  return kvm_protect_pfn(kvm, gfn, pfn);
}

/**
 * kvm_share_pfn(): the guest shared the page: ClearPageHWPoison if this VM owns it, and the owner
 * entry goes. A poison the VM does not own (a real memory error on a page it never protected)
 * stays. The VMM's hwpoison entries stay until it touches them (do_swap_page() maps the page
 * back). A real memory error on a page it did protect is cleared too: memory-failure found the
 * page already poisoned and did nothing, so the two cannot be told apart (designs.md S17).
 */
export function kvm_share_pfn(kvm: Kvm, pfn: number): void {
  const h = hwpoison_host(kvm.kernel);
  if (h.kvm_pfn_map.get(pfn) !== kvm) return;
  h.kvm_pfn_map.delete(pfn);
  ClearPageHWPoison(kvm.kernel.store, pfn);
  kvm_mem_protected(kvm).held.set(pfn, true);
}

/** Whether `pfn` is a page some VM protected and then shared (do_swap_page() may map it back). */
export function hwpoison_page_shared(kernel: Kernel, pfn: number): boolean {
  for (const kvm of hwpoison_host(kernel).live) if (kvm_mem_protected(kvm).held.get(pfn) === true) return true;
  return false;
}

/**
 * kvm_destroy_vm(): the VM's pages go back unpoisoned (the RFC's kvm_unpoison_page() on free:
 * erase the owner entry, ClearPageHWPoison) and KVM drops its references.
 */
export function kvm_hwpoison_vm_destroy(kvm: Kvm): number {
  const h = hwpoison_host(kvm.kernel);
  const s = h.vms.get(kvm);
  if (s === undefined) return 0;
  const store = kvm.kernel.store;
  for (const pfn of s.held.keys()) {
    if (h.kvm_pfn_map.get(pfn) === kvm) {
      h.kvm_pfn_map.delete(pfn);
      ClearPageHWPoison(store, pfn);
    }
    put_page(store, pfn);
  }
  s.held.clear();
  s.protected_gfns.clear();
  h.live.delete(kvm);
  return 0;
}

