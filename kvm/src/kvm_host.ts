/**
 * The structures of include/linux/kvm_host.h (and arch/x86/include/asm/kvm_host.h) that more
 * than one KVM file uses: struct kvm, struct kvm_vcpu, struct kvm_memory_slot, struct
 * kvm_memslots, struct kvm_gfn_range. Each file that owns a mechanism keeps its own state in
 * the field named here after the kernel's (kvm->arch.tdp_mmu_roots lives in mmu/tdp_mmu.ts
 * as `kvm.arch.tdp_mmu`, guest_memfd's bindings in slot->gmem...).
 */
import { MapleTree } from '@cocosim/core';
import type { File, Kernel, MmStruct } from '@cocosim/mm';
import type { MergedKvmX86Ops } from './kvm_x86_ops.js';

/* ---- memslots (include/linux/kvm_host.h) ---- */

/** KVM_MEM_SLOTS_NUM: SHRT_MAX, user slots plus x86's KVM_INTERNAL_MEM_SLOTS (3). */
export const KVM_MEM_SLOTS_NUM = 32767;
/** KVM_USER_MEM_SLOTS (x86): KVM_MEM_SLOTS_NUM less the 3 private slots. */
export const KVM_USER_MEM_SLOTS = 32764;
/** KVM_MEM_MAX_NR_PAGES: ((1UL << 31) - 1), so that a slot's npages fits an int. */
export const KVM_MEM_MAX_NR_PAGES = 2 ** 31 - 1;
/** KVM_MEMSLOT_INVALID: the slot is being deleted or moved (internal flag). */
export const KVM_MEMSLOT_INVALID = 1 << 16;
/** KVM_MEMSLOT_GMEM_ONLY: the slot's guest_memfd has MMAP, so shared faults use it too. */
export const KVM_MEMSLOT_GMEM_ONLY = 1 << 17;
/** KVM_ADDRESS_SPACE_NUM on x86 without SMM (KVM_MAX_NR_ADDRESS_SPACES is 1 here). */
export const KVM_MAX_NR_ADDRESS_SPACES = 1;

/** The guest_memfd half of a memslot (struct kvm_memory_slot.gmem). */
export interface KvmMemslotGmem {
  /** The guest_memfd file; not a reference: set to null when the file is released. */
  file: File | null;
  /** Page offset of base_gfn in the file. */
  pgoff: number;
}

/**
 * x86's struct kvm_arch_memory_slot: per level (index 0 for 2 MiB, 1 for 1 GiB), the
 * lpage_info disallow_lpage count of each huge-page-sized gfn range the slot covers, with
 * KVM_LPAGE_MIXED_FLAG for ranges whose memory attributes are mixed (arch/x86/kvm/mmu/mmu.c).
 * Owned by the MMU; empty until the MMU fills it (kvm_arch_prepare_memory_region).
 */
export interface KvmArchMemorySlot {
  lpage_info: Int32Array[];
}

/** struct kvm_memory_slot. */
export class KvmMemorySlot {
  gmem: KvmMemslotGmem = { file: null, pgoff: 0 };
  arch: KvmArchMemorySlot = { lpage_info: [] };
  /**
   * The dirty bitmap (KVM_MEM_LOG_DIRTY_PAGES), or null: bit k of byte j for page 8j + k, as the
   * kernel's array of little-endian unsigned longs lays it out, kvm_dirty_bitmap_bytes() long.
   */
  dirty_bitmap: Uint8Array | null = null;

  constructor(
    /** The slot's index in its address space: the low 16 bits of user space's slot. */
    readonly id: number,
    readonly as_id: number,
    public base_gfn: number,
    public npages: number,
    public flags: number,
    public userspace_addr: bigint,
  ) {}
}

/** enum kvm_mr_change (include/linux/kvm_host.h): what a KVM_SET_USER_MEMORY_REGION(2) does to a slot. */
export const KVM_MR_CREATE = 0;
export const KVM_MR_DELETE = 1;
export const KVM_MR_MOVE = 2;
export const KVM_MR_FLAGS_ONLY = 3;
export type KvmMrChange = typeof KVM_MR_CREATE | typeof KVM_MR_DELETE | typeof KVM_MR_MOVE | typeof KVM_MR_FLAGS_ONLY;

/** The last gfn of a slot plus one. */
export function memslot_end_gfn(slot: KvmMemorySlot): number {
  return slot.base_gfn + slot.npages;
}

/** kvm_slot_has_gmem(): the slot was created with KVM_MEM_GUEST_MEMFD. */
export function kvm_slot_has_gmem(slot: KvmMemorySlot): boolean {
  return (slot.flags & (1 << 2)) !== 0;
}

/** kvm_memslot_is_gmem_only(): every fault of the slot, shared or private, is served by guest_memfd. */
export function kvm_memslot_is_gmem_only(slot: KvmMemorySlot): boolean {
  return (slot.flags & KVM_MEMSLOT_GMEM_ONLY) !== 0;
}

/**
 * struct kvm_memslots: one address space's slots, by id (id_hash) and by gfn (gfn_tree). The
 * kernel swaps two copies under SRCU; the simulator updates one in place, which is what a
 * reader outside the update sees. `generation` counts updates as kvm_swap_active_memslots()
 * does (+ KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS while in flight, never seen outside a call).
 */
export class KvmMemslots {
  generation = 0;
  readonly id_hash = new Map<number, KvmMemorySlot>();
  /** base_gfn..base_gfn+npages-1 -> slot: slots of one address space never overlap. */
  readonly gfn_tree = new MapleTree<KvmMemorySlot>();
}

/**
 * struct kvm_gfn_range: the argument of the arch unmap/attribute hooks, half-open [start, end)
 * within one slot.
 */
export interface KvmGfnRange {
  readonly slot: KvmMemorySlot;
  readonly start: number;
  readonly end: number;
  /** arg.attributes for the attribute hooks. */
  readonly attributes?: number;
  /** KVM_FILTER_SHARED | KVM_FILTER_PRIVATE: which SPTEs an unmap zaps. */
  readonly attr_filter: number;
  readonly may_block: boolean;
}

/** enum kvm_gfn_range_filter (include/linux/kvm_host.h). */
export const KVM_FILTER_SHARED = 1 << 0;
export const KVM_FILTER_PRIVATE = 1 << 1;

/* ---- vCPUs ---- */

/**
 * struct kvm_run, the fields the simulator fills: the exit reason and the union member of that
 * exit, by kernel name.
 */
export interface KvmRun {
  exit_reason: number;
  immediate_exit: number;
  /** In: the TPR user space sets before KVM_RUN without an in-kernel local APIC; out: CR8. */
  cr8: bigint;
  /** The register sets user space asks KVM to store in s.regs / says it changed there (KVM_CAP_SYNC_REGS). */
  kvm_valid_regs: bigint;
  kvm_dirty_regs: bigint;
  /** KVM_EXIT_MMIO */
  mmio: { phys_addr: bigint; data: Uint8Array; len: number; is_write: number };
  /** KVM_EXIT_HYPERCALL */
  hypercall: { nr: bigint; args: bigint[]; ret: bigint; flags: bigint };
  /** KVM_EXIT_MEMORY_FAULT */
  memory_fault: { flags: bigint; gpa: bigint; size: bigint };
  /** KVM_EXIT_INTERNAL_ERROR */
  internal: { suberror: number; ndata: number; data: bigint[] };
  /** KVM_EXIT_SYSTEM_EVENT (KVM_SYSTEM_EVENT_SEV_TERM: the guest's GHCB termination request...). */
  system_event: { type: number; ndata: number; data: bigint[] };
  /** KVM_EXIT_IO: the data is in `pio_data` (the mapping's page at io.data_offset). */
  io: { direction: number; size: number; port: number; count: number; data_offset: bigint };
  /** The page at KVM_PIO_PAGE_OFFSET of the vCPU mapping: port I/O data (vcpu->arch.pio_data). */
  readonly pio_data: Uint8Array;
}

export function newKvmRun(): KvmRun {
  return {
    exit_reason: 0,
    immediate_exit: 0,
    cr8: 0n,
    kvm_valid_regs: 0n,
    kvm_dirty_regs: 0n,
    mmio: { phys_addr: 0n, data: new Uint8Array(8), len: 0, is_write: 0 },
    hypercall: { nr: 0n, args: [0n, 0n, 0n, 0n, 0n, 0n], ret: 0n, flags: 0n },
    memory_fault: { flags: 0n, gpa: 0n, size: 0n },
    internal: { suberror: 0, ndata: 0, data: [] },
    system_event: { type: 0, ndata: 0, data: [] },
    io: { direction: 0, size: 0, port: 0, count: 0, data_offset: 0n },
    pio_data: new Uint8Array(4096),
  };
}

/** struct kvm_vcpu. `arch` holds what x86.ts keeps per vCPU (its guest program, pending MMIO). */
export class KvmVcpu {
  readonly run: KvmRun = newKvmRun();
  /** The page of struct kvm_run that mmap() of the vCPU fd maps at offset 0 (kvm_run.ts). */
  run_page = -1;
  /** Owned by x86.ts. */
  arch: Record<string, unknown> = {};

  constructor(readonly kvm: Kvm, readonly vcpu_id: number) {}
}

/* ---- the VM ---- */

/**
 * struct kvm_arch (x86), the parts shared between files. Mechanism state that only one file
 * reads (the TDP MMU's roots...) is kept by that file in `mmu`.
 */
export interface KvmArch {
  /** kvm->arch.vm_type */
  readonly vm_type: number;
  /** kvm->arch.has_private_mem: guest_memfd-backed private memory and memory attributes. */
  has_private_mem: boolean;
  /** kvm->arch.has_protected_state: vCPU state is encrypted (SEV-ES, SNP, TDX). */
  has_protected_state: boolean;
  /** kvm->arch.pre_faulted_allowed: KVM_PRE_FAULT_MEMORY may run (TDX/SNP: after finalize). */
  pre_fault_allowed: boolean;
  /**
   * kvm->arch.hypercall_exit_enabled: the hypercalls (bit per KVM_HC_*) that exit to user space
   * as KVM_EXIT_HYPERCALL (KVM_CAP_EXIT_HYPERCALL).
   */
  hypercall_exit_enabled: number;
  /** The vendor's per-VM state (TDR/TDCS, SEV ASID...), owned by the vendor plugin. */
  vendor: unknown;
  /**
   * kvm->arch.gfn_direct_bits when the vendor sets it per VM (TDX: the shared bit of the GPAW
   * KVM_TDX_INIT_VM chose, gpa bit 47 or 51); undefined: kvm_x86_ops.gfn_attr_mask.
   */
  gfn_direct_bits?: number;
  /** The MMU's per-VM state (mmu/tdp_mmu.ts), created by kvm_mmu_init_vm(). */
  mmu: unknown;
}

/** struct kvm: one VM. */
export class Kvm {
  /** kvm->coalesced_mmio_ring: the page at KVM_COALESCED_MMIO_PAGE_OFFSET of every vCPU mapping. */
  coalesced_mmio_ring = -1;
  /** kvm->created_vcpus: counts vCPUs created, whether or not their fds are still open. */
  created_vcpus = 0;
  readonly max_vcpus = 1024;
  /** kvm->vcpu_array, by vCPU id: vCPUs live as long as the VM. */
  readonly vcpus = new Map<number, KvmVcpu>();
  /** kvm->arch.irqchip_mode != KVM_IRQCHIP_NONE. */
  irqchip_in_kernel = false;
  /** kvm->arch.n_requested_mmu_pages. */
  n_requested_mmu_pages = 0;
  /** kvm->arch.tss_addr. */
  tss_addr = 0n;
  /** kvm->vm_dead / vm_bugged: every VM ioctl answers -EIO. */
  vm_dead = false;
  /** kvm->users_count: the VM file, each guest_memfd file and each vCPU file hold one. */
  users_count = 1;
  /** kvm->dirty_ring_size: bytes of each vCPU's dirty ring, 0 without (dirty_ring.ts). */
  dirty_ring_size = 0;
  /** kvm->manual_dirty_log_protect: KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2's KVM_DIRTY_LOG_* bits. */
  manual_dirty_log_protect = 0;
  /** kvm->max_halt_poll_ns once KVM_CAP_HALT_POLL set it (kvm->override_halt_poll_ns), else -1 (the module's). */
  max_halt_poll_ns = -1;
  /** kvm->__memslots[as_id] (the active set). */
  readonly memslots: KvmMemslots[] = Array.from({ length: KVM_MAX_NR_ADDRESS_SPACES }, () => new KvmMemslots());
  /** kvm->nr_memslot_pages: pages in all slots, bounded so that it never overflows. */
  nr_memslot_pages = 0;
  /**
   * kvm->mem_attr_array: attributes by gfn, as ranges (the kernel stores one xarray entry per
   * gfn; equal neighbours merge here, so a conversion costs its ranges, not its pages).
   */
  readonly mem_attr_array = new MapleTree<number>();
  /** kvm->mmu_invalidate_seq, _in_progress and the pending range (virt/kvm/kvm_main.c). */
  mmu_invalidate_seq = 0;
  mmu_invalidate_in_progress = 0;
  mmu_invalidate_range_start = -1;
  mmu_invalidate_range_end = -1;
  /** kvm->arch */
  readonly arch: KvmArch;

  constructor(
    readonly kernel: Kernel,
    /** kvm->mm: the creator's address space; VM ioctls from another mm are -EIO. */
    readonly mm: MmStruct,
    type: number,
    /** kvm_x86_ops: the host's vendor table, merged with the defaults (kvm_x86_ops.ts). */
    readonly x86_ops: MergedKvmX86Ops,
  ) {
    this.arch = {
      vm_type: type,
      has_private_mem: false,
      has_protected_state: false,
      pre_fault_allowed: false,
      hypercall_exit_enabled: 0,
      vendor: undefined,
      mmu: undefined,
    };
  }

  get type(): number {
    return this.arch.vm_type;
  }
}

/** kvm_arch_has_private_mem() (x86: kvm->arch.has_private_mem). */
export function kvm_arch_has_private_mem(kvm: Kvm): boolean {
  return kvm.arch.has_private_mem;
}

/** __kvm_memslots() / kvm_memslots(): the active slots of an address space. */
export function kvm_memslots(kvm: Kvm, as_id = 0): KvmMemslots {
  return kvm.memslots[as_id]!;
}

/** gpa_to_gfn() / gfn_to_gpa() with arithmetic: gpas reach 2^52, beyond 32-bit shifts. */
export function gpa_to_gfn(gpa: bigint): number {
  return Number(gpa >> 12n);
}
export function gfn_to_gpa(gfn: number): bigint {
  return BigInt(gfn) << 12n;
}
