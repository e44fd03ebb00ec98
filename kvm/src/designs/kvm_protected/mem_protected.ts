/**
 * virt/lib/mem_protected.c of "[RFCv2 15/16] KVM: Unmap protected pages from direct mapping"
 * (Kirill A. Shutemov, 20 Oct 2020,
 * https://lore.kernel.org/all/20201020061859.18385-16-kirill.shutemov@linux.intel.com/):
 * kvm_unmap_page() takes an anonymous page faulted into a protected VMA out of the kernel's
 * direct map (kernel_map_pages(page, n, 0): a direct-map PTE change that "only flushes local
 * TLB"); kvm_map_page() clears it and maps it back when its PTE is zapped.
 *
 * cocosim keeps the direct-map state per host: the pages out of the direct map, each with the
 * anon mapping it had when it left. A kernel access through the direct map (the host_access hook,
 * actor 'kernel') to such a page faults like a not-present kernel address: fixed up to -EFAULT
 * inside a uaccess copy, an oops elsewhere. The simulator has no zap hook, so a page is taken as
 * back in the direct map once it is no longer mapped by that anon mapping (zapped and freed, as
 * zap_pte_range() would have mapped it back); the map-back's clearing and TLB flush are not charged.
 */
import { MM_HOST_ACCESS_FAULT, folio_mapped, folio_mapping, page_folio, type HostAccessActor, type Kernel } from '@cocosim/mm';

const direct_map_holes = new WeakMap<Kernel, Map<number, number>>();

/** The cost entry of one direct-map PTE change (set_memory_4k()-style CPA of one page). */
export const CPA_DIRECT_MAP_4K = 'cpa_direct_map_4k';

/** Define the design's cost entry on `kernel` (once). */
export function kvm_protected_define_costs(kernel: Kernel): void {
  if (kernel.cost.has(CPA_DIRECT_MAP_4K)) return;
  kernel.cost.define({
    name: CPA_DIRECT_MAP_4K,
    unit: 'ns',
    value: 1000,
    provenance: 'estimate',
    source: 'estimate: __change_page_attr_set_clr() of one 4 KiB direct-map page: a page-table walk, the split of its 2 MiB/1 GiB mapping the first time (a page-table allocation), about a microsecond',
    description: 'remove one 4 KiB page from the kernel direct map or put it back (kernel_map_pages), without the TLB flush',
  });
}

/** kvm_unmap_page(): kernel_map_pages(page, nr_pages, 0), with its local TLB flush. */
export function kvm_unmap_page(kernel: Kernel, page: number, nr_pages: number): void {
  let holes = direct_map_holes.get(kernel);
  if (holes === undefined) {
    holes = new Map();
    direct_map_holes.set(kernel, holes);
  }
  const store = kernel.store;
  for (let i = 0; i < nr_pages; i++) holes.set(page + i, folio_mapping(store, page_folio(store, page + i)));
  kernel.cost.charge(CPA_DIRECT_MAP_4K, nr_pages);
  kernel.cost.charge('tlb_flush_local');
}

/** Whether `pfn` is out of the direct map (kvm_unmap_page()d and still mapped where it was). */
export function kvm_page_unmapped(kernel: Kernel, pfn: number): boolean {
  const holes = direct_map_holes.get(kernel);
  const mapping = holes?.get(pfn);
  if (mapping === undefined) return false;
  const store = kernel.store;
  const folio = page_folio(store, pfn);
  if (folio_mapped(store, folio) && folio_mapping(store, folio) === mapping) return true;
  holes!.delete(pfn);
  return false;
}

/** The host_access hook: a kernel access to a page out of the direct map faults. */
export function kvm_protected_host_access(kernel: Kernel, pfn: number, _write: boolean, actor: HostAccessActor): number {
  return actor === 'kernel' && kvm_page_unmapped(kernel, pfn) ? MM_HOST_ACCESS_FAULT : 0;
}
