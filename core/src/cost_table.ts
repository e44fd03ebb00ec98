/**
 * The default cost table: the generic mm / KVM / IOMMU costs that every platform pays.
 *
 * Each entry's `source` cites where its figure comes from (a commit, a mailing-list post, a
 * paper). Where nobody published a figure the entry is an `estimate` whose `source` gives the
 * one-line reasoning; override it with a measurement through a cost override file (cost.ts).
 * Where only a range is known, the entry takes its midpoint and says so.
 *
 * Every value is in ns per event (`unit: 'ns'`); the description says what one event is (one
 * 4 KiB page, one remote CPU, one SPTE...), so a caller charges `count` events. Values are
 * whole ns, rounded from the derivation shown in `source`.
 *
 * Vendor costs (SEAMCALLs, RMPUPDATE, PVALIDATE, RMI calls, PSP commands...) are not here: each
 * vendor package define()s its own entries.
 */
import type { CostEntry } from './cost.js';

export const DEFAULT_COST_ENTRIES: readonly CostEntry[] = [
  // Memory contents.
  {
    name: 'page_zero_4k',
    unit: 'ns',
    value: 299,
    provenance: 'derived',
    source:
      'Ankur Arora, "x86/clear_page: introduce clear_pages()", Linux commit cb431accb36e: ' +
      'clear_page 13.7 GB/s in 4 KiB chunks on AMD Milan; 4096 B / 13.7 GB/s = 299 ns',
    description: 'zero one 4 KiB page (clear_page)',
  },
  {
    name: 'page_zero_2m',
    unit: 'ns',
    value: 138884,
    provenance: 'derived',
    source: 'Ankur Arora, "x86/clear_page: introduce clear_pages()", Linux commit cb431accb36e: clear_pages() in 2 MiB extents: 15.1 GB/s on AMD Milan; 2 MiB / 15.1 GB/s = 138884 ns',
    description: 'zero one 2 MiB folio as one extent (clear_pages)',
  },
  {
    name: 'page_zero_1g',
    unit: 'ns',
    value: 28182200,
    provenance: 'derived',
    source: 'Ankur Arora, "x86/clear_page: introduce clear_pages()", Linux commit cb431accb36e: clear_pages() in 1 GiB extents: 38.1 GB/s on AMD Milan; 1 GiB / 38.1 GB/s = 28182200 ns',
    description: 'zero one 1 GiB folio as one extent (clear_pages)',
  },
  {
    name: 'page_copy_4k',
    unit: 'ns',
    value: 600,
    provenance: 'estimate',
    source: 'estimate: copy_page reads and writes 4 KiB, so about twice page_zero_4k (no published figure in the note)',
    description: 'copy one 4 KiB page (copy_page, migration or COW)',
  },
  {
    name: 'clflush_4k',
    unit: 'ns',
    value: 600,
    provenance: 'estimate',
    source: 'estimate: 64 cache lines x 5-15 ns each (dirty-dependent), 0.2-1 µs per 4 KiB page; midpoint',
    description: 'flush one 4 KiB page from the caches, 64 lines (clflush_cache_range)',
  },
  {
    name: 'wbinvd',
    unit: 'ns',
    value: 550000,
    provenance: 'estimate',
    source: 'estimate: writing back and invalidating a 64-core+ EPYC LLC takes 0.1-1 ms per socket; midpoint',
    description: 'write back and invalidate all caches of one socket (WBINVD)',
  },
  {
    name: 'gmem_populate_4k',
    unit: 'ns',
    value: 1743,
    provenance: 'derived',
    source:
      'Nikita Kalyazin, linux-mm/kvm 2024-11-20: guest_memfd population 3 GiB in 1371 ms (x86_64, ' +
      'SW-protected path); 1371 ms / 786432 pages = 1743 ns',
    description:
      'end-to-end population of one 4 KiB guest_memfd page; a calibration figure for models that charge the ' +
      'path as one event, never together with its parts (page_alloc, page_zero_4k...)',
  },

  // Page allocator and page tables.
  {
    name: 'page_alloc',
    unit: 'ns',
    value: 100,
    provenance: 'estimate',
    source: 'estimate: order-0 allocation from the per-cpu lists (rmqueue_pcplist), a few hundred cycles',
    description: 'allocate one folio from the buddy allocator, excluding zeroing (alloc_pages)',
  },
  {
    name: 'page_free',
    unit: 'ns',
    value: 60,
    provenance: 'estimate',
    source: 'estimate: freeing to the per-cpu lists (free_unref_folios) is cheaper than allocating',
    description: 'free one folio to the buddy allocator (free_pages / folio_put of the last reference)',
  },
  {
    name: 'page_fault_user',
    unit: 'ns',
    value: 700,
    provenance: 'estimate',
    source: 'estimate: #PF exception entry/exit plus handle_mm_fault walk and PTE install for a minor fault',
    description: 'one user page fault, excluding page allocation and zeroing (charged separately)',
  },
  {
    name: 'pte_zap',
    unit: 'ns',
    value: 50,
    provenance: 'estimate',
    source: 'estimate: per-entry work of zap_pte_range (clear PTE, rmap and refcount updates, batched)',
    description: 'clear one present PTE in a host page table (zap_pte_range, try_to_unmap_one)',
  },
  {
    name: 'rmap_walk_per_mapping',
    unit: 'ns',
    value: 100,
    provenance: 'estimate',
    source: 'estimate: one anon_vma / i_mmap interval-tree step plus page_vma_mapped_walk',
    description: 'visit one VMA that maps the folio during rmap_walk',
  },
  {
    name: 'mmu_notifier_invalidate',
    unit: 'ns',
    value: 500,
    provenance: 'estimate',
    source: 'estimate: invalidate_range_start/end pair with KVM registered: mmu_lock, memslot lookup, seq bump',
    description: 'one mmu_notifier invalidate_range_start + invalidate_range_end pair, excluding the zaps it causes',
  },
  {
    name: 'gup_pin_per_page',
    unit: 'ns',
    value: 80,
    provenance: 'estimate',
    source: 'estimate: follow_page_mask + try_grab_folio(FOLL_PIN) on a present page',
    description: 'pin one present page (pin_user_pages), excluding faulting it in',
  },
  {
    name: 'gup_unpin_per_page',
    unit: 'ns',
    value: 40,
    provenance: 'estimate',
    source: 'estimate: unpin_user_page is an atomic refcount/pincount drop',
    description: 'unpin one page (unpin_user_page)',
  },
  {
    name: 'swap_out_4k',
    unit: 'ns',
    value: 5000,
    provenance: 'estimate',
    source:
      'estimate: swap writeback is asynchronous and batched; a datacenter NVMe SSD sustains about 1 GB/s of 4 KiB ' +
      'random writes (4 us per page) plus bio setup and completion, about 5 us of device and CPU time per page',
    description: 'write one 4 KiB page to a swap device (swap_writeout of a page that is not zero-filled)',
  },
  {
    name: 'swap_in_4k',
    unit: 'ns',
    value: 50000,
    provenance: 'estimate',
    source:
      'estimate: a swap-in fault waits for one 4 KiB random read at queue depth 1; datacenter NVMe SSDs take ' +
      '50-100 us for that; lower end, since no readahead is modelled',
    description: 'read one 4 KiB page back from a swap device, synchronously (swap_read_folio)',
  },
  {
    name: 'swap_zero_check_4k',
    unit: 'ns',
    value: 150,
    provenance: 'estimate',
    source: 'estimate: is_folio_zero_filled() reads a 4 KiB page once (memchr_inv), about half of clearing it (page_zero_4k)',
    description: 'check whether a page going to swap is zero-filled (zeromap: no I/O for it)',
  },
  {
    name: 'syscall_entry',
    unit: 'ns',
    value: 150,
    provenance: 'estimate',
    source: 'estimate: SYSCALL/SYSRET round trip with the usual speculation mitigations',
    description: 'one system call or ioctl entry and exit, excluding the work it does',
  },

  // TLB.
  {
    name: 'tlb_flush_local',
    unit: 'ns',
    value: 100,
    provenance: 'estimate',
    source: 'estimate: INVLPG or a PCID-tagged CR3 write on the local CPU, a few hundred cycles',
    description: 'flush the local TLB for one flush request (flush_tlb_func on this CPU)',
  },
  {
    name: 'tlb_shootdown_ipi',
    unit: 'ns',
    value: 1500,
    provenance: 'published',
    source:
      'secondary summary of N. Amit, A. Tai, M. Wei, "Don\'t shoot down TLB shootdowns!", EuroSys 2020: "~1.5 µs × active cores in mm_cpumask" rule of thumb, ~1–3 µs round trip on ' +
      'modern Xeon; primary study N. Amit, A. Tai, M. Wei, "Don\'t shoot down TLB shootdowns!", EuroSys 2020',
    description: 'TLB shootdown IPI round trip, per remote CPU in the mm_cpumask (flush_tlb_multi)',
  },

  // KVM.
  {
    name: 'kvm_exit_roundtrip',
    unit: 'ns',
    value: 1000,
    provenance: 'estimate',
    source: 'estimate: VM-exit + VM-entry hardware transition plus in-kernel exit dispatch',
    description: 'one VM exit handled in the kernel and the re-entry (kvm_exit .. kvm_entry)',
  },
  {
    name: 'kvm_userspace_exit_roundtrip',
    unit: 'ns',
    value: 12500,
    provenance: 'estimate',
    source: 'estimate: a KVM_EXIT_HYPERCALL round trip through the VMM is 5-20 µs; midpoint',
    description: 'one exit to the VMM in user space and back (KVM_RUN returns, VMM handles, KVM_RUN again)',
  },
  {
    name: 'kvm_tdp_fault',
    unit: 'ns',
    value: 500,
    provenance: 'estimate',
    source: 'estimate: kvm_tdp_mmu_map walk and memslot/attribute lookups under mmu_lock (read)',
    description: 'handle one TDP (EPT/NPT) fault, excluding the exit, the SPTE install and getting the pfn',
  },
  {
    name: 'spte_set',
    unit: 'ns',
    value: 80,
    provenance: 'estimate',
    source: 'estimate: make_spte + tdp_mmu_set_spte_atomic (one cmpxchg) and its bookkeeping',
    description: 'install one leaf SPTE',
  },
  {
    name: 'spte_zap',
    unit: 'ns',
    value: 60,
    provenance: 'estimate',
    source: 'estimate: tdp_mmu_zap_leafs per-entry cmpxchg plus handle_changed_spte bookkeeping',
    description: 'zap one leaf SPTE in the TDP MMU, excluding the remote TLB flush',
  },
  {
    name: 'kvm_memslots_swap',
    unit: 'ns',
    value: 20000,
    provenance: 'estimate',
    source:
      'estimate: kvm_swap_active_memslots() ends in synchronize_srcu_expedited(&kvm->srcu), an expedited grace ' +
      'period that IPIs the CPUs in SRCU read sections; tens of µs on an idle host, 20 µs taken',
    description: 'activate an updated memslot set (kvm_swap_active_memslots): twice per DELETE/MOVE, once per CREATE/FLAGS_ONLY',
  },
  {
    name: 'kvm_flush_remote_tlbs_per_vcpu',
    unit: 'ns',
    value: 1500,
    provenance: 'estimate',
    source: 'estimate: the same IPI round trip as tlb_shootdown_ipi, sent to each running vCPU',
    description: 'kvm_flush_remote_tlbs, per vCPU kicked (KVM_REQ_TLB_FLUSH)',
  },

  // IOMMU.
  {
    name: 'iommu_map_4k',
    unit: 'ns',
    value: 250,
    provenance: 'estimate',
    source: 'estimate: io-pgtable walk and one IOPTE write, with page-table allocation amortized',
    description: 'map one 4 KiB IOVA page in an IOMMU domain (iommu_map)',
  },
  {
    name: 'iommu_unmap_4k',
    unit: 'ns',
    value: 150,
    provenance: 'estimate',
    source: 'estimate: io-pgtable walk and one IOPTE clear, IOTLB flush excluded',
    description: 'unmap one 4 KiB IOVA page, excluding the IOTLB flush (iommu_unmap)',
  },
  {
    name: 'iotlb_flush',
    unit: 'ns',
    value: 1500,
    provenance: 'estimate',
    source: 'estimate: queued invalidation descriptor plus wait descriptor completion',
    description: 'one IOTLB invalidation with completion wait (iommu_iotlb_sync)',
  },
];
