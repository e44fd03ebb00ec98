/**
 * TraceEventMap: every tracepoint cocosim emits, name -> fields. The single source of truth: the
 * Tracer's emit() and on(), the ring's find helpers and the formatters all key on it, so a
 * misspelt tracepoint or a wrong field type is a compile error.
 *
 * Naming rule: a tracepoint that exists in the kernel keeps its kernel name
 * and its TP_STRUCT__entry field names, so that `grep kvm_page_fault` finds both. Where the
 * kernel has no tracepoint, the name starts with `cocosim_`, so that nobody mistakes it for one.
 *
 * Field types follow cocosim's units (types.ts): frame numbers are numbers (Pfn, Gfn, PgOff),
 * u64 addresses and 64-bit registers (SPTEs, error codes with bits above 31) are bigints. Where
 * the kernel stores an int and prints it through __print_symbolic, cocosim stores the printed
 * text (memory_failure_event's type and result), since that is what a reader filters on.
 *
 * Other packages add their tracepoints by declaration merging, e.g. in vendors/tdx/src/trace.ts:
 *
 *     declare module '@cocosim/core' {
 *       interface TraceEventMap {
 *         tdh_mem_page_aug: { gpa: Gpa; level: number; pfn: Pfn; err: bigint };
 *       }
 *     }
 *
 * (the file must be a module, i.e. import or export something). Each added member must be an
 * object type whose values are TraceValue (number, bigint, string or boolean), optionally
 * undefined.
 */
import type { Gfn, Gpa, Hva, PgOff, Pfn } from '../types.js';

/** A field value. bigints are exact u64/s64 values; the writers print them in hex. */
export type TraceValue = number | bigint | string | boolean;

/** The fields of one record: as emitted, in insertion order. */
export type TraceArgs = Readonly<Record<string, TraceValue | undefined>>;

/** memory-failure.c action_name[]: the result of memory_failure(). */
export type MfResultName = 'Ignored' | 'Failed' | 'Delayed' | 'Recovered';

export interface TraceEventMap {
  /**
   * Page added to / removed from the page cache.
   * @see include/trace/events/filemap.h DECLARE_EVENT_CLASS(mm_filemap_op_page_cache)
   */
  mm_filemap_add_to_page_cache: { pfn: Pfn; i_ino: number; index: PgOff; order: number };
  mm_filemap_delete_from_page_cache: { pfn: Pfn; i_ino: number; index: PgOff; order: number };

  /** @see include/trace/events/kmem.h TRACE_EVENT(mm_page_alloc) */
  mm_page_alloc: { pfn: Pfn; order: number; gfp_flags: number; migratetype: number };
  /** @see include/trace/events/kmem.h TRACE_EVENT(mm_page_free) */
  mm_page_free: { pfn: Pfn; order: number };

  /**
   * A TLB flush. `reason` is enum tlb_flush_reason (include/linux/mm_types.h:
   * 0 TLB_FLUSH_ON_TASK_SWITCH, 1 TLB_REMOTE_SHOOTDOWN, 2 TLB_LOCAL_SHOOTDOWN,
   * 3 TLB_LOCAL_MM_SHOOTDOWN, 4 TLB_REMOTE_SEND_IPI); `pages` is -1 for TLB_FLUSH_ALL.
   * @see include/trace/events/tlb.h TRACE_EVENT(tlb_flush)
   */
  tlb_flush: { reason: number; pages: number };

  /**
   * Outcome of memory_failure() for one pfn. `type` is the action_page_types[] text
   * ("free buddy page", "dirty LRU page"...), `result` the action_name[] text.
   * @see include/ras/ras_event.h TRACE_EVENT(memory_failure_event)
   */
  memory_failure_event: { pfn: Pfn; type: string; result: MfResultName };

  /**
   * A guest page fault that reached KVM's MMU (EPT/NPT violation). `fault_address` is the GPA.
   * @see arch/x86/kvm/trace.h TRACE_EVENT(kvm_page_fault)
   */
  kvm_page_fault: { vcpu_id: number; guest_rip?: bigint; fault_address: Gpa; error_code: bigint };

  /** @see arch/x86/kvm/trace.h TRACE_EVENT_KVM_EXIT(kvm_exit) */
  kvm_exit: {
    exit_reason: number;
    guest_rip?: bigint;
    isa?: number;
    info1: bigint;
    info2: bigint;
    intr_info?: number;
    error_code?: number;
    vcpu_id: number;
    requests?: bigint;
  };
  /** @see arch/x86/kvm/trace.h TRACE_EVENT(kvm_entry) */
  kvm_entry: { vcpu_id: number; rip?: bigint; immediate_exit?: boolean; intr_info?: number; error_code?: number };

  /** KVM_RUN returns to user space. @see include/trace/events/kvm.h TRACE_EVENT(kvm_userspace_exit) */
  kvm_userspace_exit: { reason: number; errno: number };

  /** A guest hypercall (KVM_HC_MAP_GPA_RANGE...). @see arch/x86/kvm/trace.h TRACE_EVENT(kvm_hypercall) */
  kvm_hypercall: { nr: bigint; a0: bigint; a1: bigint; a2: bigint; a3: bigint };

  /**
   * KVM_SET_MEMORY_ATTRIBUTES on [start, end) gfns.
   * @see include/trace/events/kvm.h TRACE_EVENT(kvm_vm_set_mem_attributes)
   */
  kvm_vm_set_mem_attributes: { start: Gfn; end: Gfn; attr: number };

  /**
   * mmu_notifier invalidation reaching KVM for [start, end) hvas.
   * @see include/trace/events/kvm.h TRACE_EVENT(kvm_unmap_hva_range)
   */
  kvm_unmap_hva_range: { start: Hva; end: Hva };

  /*
   * guest_memfd (virt/kvm/guest_memfd.c). The kernel has no tracepoints there; each of these is
   * named after the kernel function it reports, `ino` being the guest_memfd inode's number.
   */
  /** KVM_CREATE_GUEST_MEMFD made a file (__kvm_gmem_create()). */
  cocosim_kvm_gmem_create: { ino: number; size: bigint; flags: number; fd: number };
  /** The last reference to a guest_memfd file went (kvm_gmem_release()): its bindings are gone. */
  cocosim_kvm_gmem_release: { ino: number; nr_bindings: number };
  /** A memslot was bound to file pages [pgoff, pgoff + npages) (kvm_gmem_bind()). */
  cocosim_kvm_gmem_bind: { ino: number; slot: number; base_gfn: Gfn; npages: number; pgoff: PgOff };
  /** A memslot's binding was removed (kvm_gmem_unbind()). */
  cocosim_kvm_gmem_unbind: { ino: number; slot: number; pgoff: PgOff; npages: number };
  /**
   * The gfns [start, end) of a bound slot are unmapped from the guest because the file pages
   * behind them go away (__kvm_gmem_invalidate_begin(): punch hole, release, memory error).
   */
  cocosim_kvm_gmem_invalidate: { ino: number; slot: number; start: Gfn; end: Gfn; attr_filter: number };
  /** kvm_gmem_get_pfn(): the pfn backing a gfn, or the error (pfn -1); `prepared` on first use. */
  cocosim_kvm_gmem_get_pfn: { gfn: Gfn; index: PgOff; pfn: number; prepared: boolean; ret: number };
  /** kvm_gmem_populate(): pages populated from `start_gfn`, or the error of the first. */
  cocosim_kvm_gmem_populate: { start_gfn: Gfn; npages: number; ret: number };

  /** @see arch/x86/kvm/mmu/mmutrace.h TRACE_EVENT(kvm_mmu_spte_requested) */
  kvm_mmu_spte_requested: { gfn: Gfn; pfn: Pfn; level: number };
  /**
   * A leaf SPTE installed. r/x/u are the kernel's decoded permission bits (u is -1 when the
   * MMU has no user bit); `sptep` is the SPTE's physical address where the model has one.
   * @see arch/x86/kvm/mmu/mmutrace.h TRACE_EVENT(kvm_mmu_set_spte)
   */
  kvm_mmu_set_spte: { gfn: Gfn; spte: bigint; sptep?: bigint; level: number; r?: boolean; x?: boolean; u?: number };
  /** @see arch/x86/kvm/mmu/mmutrace.h TRACE_EVENT(kvm_tdp_mmu_spte_changed) */
  kvm_tdp_mmu_spte_changed: { as_id: number; gfn: Gfn; level: number; old_spte: bigint; new_spte: bigint };
  /** @see arch/x86/kvm/mmu/mmutrace.h TRACE_EVENT(kvm_mmu_split_huge_page) */
  kvm_mmu_split_huge_page: { gfn: Gfn; spte: bigint; level: number; errno: number };

  /**
   * KVM_SET_USER_MEMORY_REGION(2). The kernel has no tracepoint here; the fields are those of
   * struct kvm_userspace_memory_region2 (include/uapi/linux/kvm.h).
   */
  cocosim_kvm_set_user_memory_region: {
    slot: number;
    flags: number;
    guest_phys_addr: Gpa;
    memory_size: bigint;
    userspace_addr: Hva;
    guest_memfd?: number;
    guest_memfd_offset?: bigint;
  };

  /**
   * A WARN_ON-class report (bug.ts WarnSink), or a problem in the simulator's own plumbing
   * (kind `trace_sink` when the Tracer detaches a sink that threw).
   */
  cocosim_warn: { kind: string; message: string };

  /*
   * Arm CCA (vendors/cca) and pKVM (vendors/pkvm) firmware calls.
   */

  /**
   * An RMI command the host issued to the RMM (arch/arm64/include/asm/rmi_cmds.h rmi_*()): its
   * name, its first address argument (a PA or IPA) and the packed return code (status | index << 8).
   */
  cocosim_cca_rmi: { cmd: string; addr: bigint; ret: number };
  /** An RSI call a realm made to the RMM (arch/arm64/include/asm/rsi_cmds.h), with its x0 result. */
  cocosim_cca_rsi: { cmd: string; base: bigint; top: bigint; ret: bigint };
  /** A synchronous external abort the RMM injected into a realm (RIPAS EMPTY access). */
  cocosim_cca_realm_sea: { vcpu_id: number; ipa: bigint };
  /** A pKVM hypercall (host -> EL2 or guest -> EL2, arch/arm64/kvm/hyp/nvhe/mem_protect.c), its page and result. */
  cocosim_pkvm_hyp: { call: string; pfn: number; gfn: number; ret: number };
  /** host_inject_abort(): the hypervisor refused a host access to a page the host does not own. */
  cocosim_pkvm_host_abort: { pfn: number; write: boolean; actor: string };

  /*
   * The IOMMU core (drivers/iommu/iommu.c), as VFIO type1 and iommufd drive it.
   */

  /**
   * iommu_map() of [iova, iova + size) to physical address paddr, once per call that succeeded.
   * @see include/trace/events/iommu.h TRACE_EVENT(map)
   */
  map: { iova: bigint; paddr: bigint; size: bigint };
  /**
   * iommu_unmap() / iommu_unmap_fast() of `size` bytes at iova; `unmapped_size` is what the
   * IOMMU driver took out (a whole large page when the range starts inside one).
   * @see include/trace/events/iommu.h TRACE_EVENT(unmap)
   */
  unmap: { iova: bigint; size: bigint; unmapped_size: bigint };
  /**
   * A DMA the IOMMU refused (report_iommu_fault()): `device` is dev_name(), `driver` the device's
   * driver, `flags` IOMMU_FAULT_READ (0) or IOMMU_FAULT_WRITE (1).
   * @see include/trace/events/iommu.h DEFINE_EVENT(iommu_error, io_page_fault)
   */
  io_page_fault: { device: string; driver: string; iova: bigint; flags: number };
}

/** A tracepoint name. */
export type TraceEventName = keyof TraceEventMap;

/** The fields of tracepoint K. */
export type TraceFields<K extends TraceEventName> = TraceEventMap[K];
