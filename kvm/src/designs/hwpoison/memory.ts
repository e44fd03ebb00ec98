/**
 * The mm/memory.c part of RFCv2 (20210416154106.23721-1-kirill.shutemov@linux.intel.com;
 * designs.md D2: "do_swap_page puts back a present PTE if the page was unpoisoned in the
 * meantime"): once the guest shared a page KVM had poisoned, the VMM's hwpoison entry for it is
 * stale; its next fault there maps the page again instead of raising SIGBUS.
 */
import {
  MM_ANONPAGES, PageHWPoison, RMAP_NONE, SWP_HWPOISON, folio_add_anon_rmap_ptes, folio_test_anon, get_page, is_swap_pte,
  page_folio, pte_clear, pte_index, pte_offset_map, pte_swp_type, set_pte_at, type VmAreaStruct,
} from '@cocosim/mm';
import { hwpoison_page_shared } from './kvm_main.js';

/**
 * do_swap_page() on a hwpoison entry whose page is no longer PG_hwpoison because the guest
 * shared it: an anonymous page is mapped back (a reference and the rmap for the new PTE); a
 * shmem page's entry is cleared and the ordinary fault maps it from the page cache. A real
 * memory error keeps its entry (the page stays PG_hwpoison): 0 and the base raises SIGBUS.
 * @returns 0 (the fault goes on).
 */
export function do_swap_page_unpoisoned(vma: VmAreaStruct, vpn: number, _flags: number): number {
  const mm = vma.vm_mm;
  const t = pte_offset_map(mm.pgd, vpn);
  if (t === undefined) return 0;
  const i = pte_index(vpn);
  const pte = t.flags[i]!;
  if (!is_swap_pte(pte) || pte_swp_type(pte) !== SWP_HWPOISON) return 0;
  const page = t.val[i]!;
  const store = mm.kernel.store;
  if (PageHWPoison(store, page) || !hwpoison_page_shared(mm.kernel, page)) return 0;
  const folio = page_folio(store, page);
  if (!folio_test_anon(store, folio)) {
    pte_clear(t, i);
    return 0;
  }
  get_page(store, page);
  folio_add_anon_rmap_ptes(store, folio, page, 1, vma, RMAP_NONE);
  mm.add_mm_counter(MM_ANONPAGES, 1);
  set_pte_at(t, i, page, vma.vm_page_prot);
  return 0;
}
