/**
 * The x86 MMU's generic half (arch/x86/kvm/mmu/mmu.c, mmu_internal.h) and the MMU glue of
 * virt/kvm/kvm_main.c: guest page faults (kvm_mmu_page_fault -> kvm_tdp_page_fault ->
 * kvm_mmu_faultin_pfn -> kvm_tdp_mmu_map), the maximum mapping level (lpage_info, memory
 * attributes, host mapping size, guest_memfd order), the mmu_notifier that zaps SPTEs when the
 * host unmaps guest memory, mmu_invalidate_*, the memory-attribute and memslot hooks,
 * KVM_PRE_FAULT_MEMORY, and remote TLB flushes.
 *
 * Everything runs to completion in one call, so the races mmu_invalidate_seq closes in the kernel
 * cannot happen except where the fault path itself causes an invalidation (GUP breaking CoW
 * notifies the mm's subscribers): the fault then returns RET_PF_RETRY as the kernel's does.
 *
 * Modelled as `enable_mmio_caching = false`: a fault on a gfn without a memslot is emulated at
 * once (RET_PF_EMULATE: the vCPU exits KVM_EXIT_MMIO) and no MMIO SPTE is installed.
 * Not modelled: the shadow MMU (with tdp_enabled false the same TDP structures map the guest;
 * only its read-only mapping of clean gptes is, below),
 * NX huge pages (nx_huge_pages=never), async page faults, A/D-bit aging (the mm has no
 * clear_young notifier), PML.
 */
import { Errno, PAGE_SIZE, costId, type Gfn, type Gpa, type Hva, type Pfn } from '@cocosim/core';
import {
  FAULT_FLAG_WRITE, FOLL_HONOR_NUMA_FAULT, FOLL_HWPOISON, FOLL_WRITE, VM_FAULT_ERROR, VM_IO, VM_PFNMAP, VM_READ,
  VM_WRITE, _PAGE_PSE, folio_mark_accessed, folio_mark_dirty, get_user_pages_fast_only, get_user_pages_unlocked,
  handle_mm_fault, is_zero_folio, mmu_notifier_register, mmu_notifier_unregister, page_folio, pmd_index_of,
  pte_index, pte_offset_map, pte_present, pte_write, pud_index_of, put_page, vm_fault_to_errno, vma_lookup,
  type MmStruct, type MmuNotifier, type SigInfo,
} from '@cocosim/mm';
import {
  KVM_FILTER_PRIVATE, KVM_FILTER_SHARED, KVM_MEMSLOT_INVALID, KVM_MR_CREATE, KVM_MR_DELETE, KVM_MR_FLAGS_ONLY, KVM_MR_MOVE,
  kvm_arch_has_private_mem, kvm_memslot_is_gmem_only, kvm_slot_has_gmem, type Kvm, type KvmGfnRange, type KvmMemorySlot,
  type KvmVcpu,
} from '../kvm_host.js';
import { kvm_gmem_get_pfn } from '../guest_memfd.js';
import { kvm_dirty_log_manual_protect_and_init_set, mark_page_dirty_in_slot } from '../kvm_dirty_log.js';
import { call_kvm_hook, kvm_hook_fault_memslot } from '../kvm_hooks.js';
import { kvm_get_memory_attributes, kvm_mem_is_private, kvm_range_has_memory_attributes } from '../kvm_mem_attributes.js';
import { __gfn_to_hva_memslot, gfn_to_memslot } from '../kvm_memslots.js';
import { kvm_run_load, kvm_run_mark_written, kvm_run_store, kvm_run_written } from '../kvm_run.js';
import { kvm_mmu_reload } from '../x86.js';
import {
  KVM_EXIT_INTR, KVM_EXIT_MEMORY_FAULT, KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_MEMORY_EXIT_FLAG_PRIVATE, KVM_MEM_LOG_DIRTY_PAGES,
  KVM_MEM_READONLY, KVM_X86_DEFAULT_VM,
} from '../uapi.js';
import {
  KVM_HPAGE_GFN_SHIFT, KVM_MAX_HUGEPAGE_LEVEL, KVM_NR_PAGE_SIZES, KVM_PAGES_PER_HPAGE, PG_LEVEL_1G, PG_LEVEL_2M, PG_LEVEL_4K,
  SPTE_S_DIRTY, SPTE_S_LEAF, SPTE_S_PRESENT, SPTE_S_WRITABLE, gfn_round_for_level, is_access_allowed, is_last_spte,
  is_mmu_writable_spte, make_spte, spte_value,
} from './spte.js';
import {
  KvmMmuPage, kvm_mmu_init_tdp_mmu, kvm_tdp_mmu_unmap_gfn_range, kvm_tdp_mmu_zap_all, tdp_mmu_for_each_leaf,
  tdp_mmu_get_root, tdp_mmu_lookup_leaf, tdp_mmu_set_leaf, tdp_mmu_split_huge_page, tdp_mmu_translate, tdp_mmu_walk_to_level,
  tdp_mmu_wrprot_range, to_tdp_mmu, kvm_tdp_mmu_clear_dirty_pt_masked, kvm_tdp_mmu_write_protect_gfn, tdp_mmu_zap_leafs,
} from './tdp_mmu.js';

/* ---- page fault error codes (arch/x86/include/asm/kvm_host.h), u64: bigint ---- */

export const PFERR_PRESENT_MASK = 1n << 0n;
export const PFERR_WRITE_MASK = 1n << 1n;
export const PFERR_USER_MASK = 1n << 2n;
export const PFERR_RSVD_MASK = 1n << 3n;
export const PFERR_FETCH_MASK = 1n << 4n;
export const PFERR_PK_MASK = 1n << 5n;
export const PFERR_SGX_MASK = 1n << 15n;
export const PFERR_GUEST_RMP_MASK = 1n << 31n;
export const PFERR_GUEST_FINAL_MASK = 1n << 32n;
export const PFERR_GUEST_PAGE_MASK = 1n << 33n;
export const PFERR_GUEST_ENC_MASK = 1n << 34n;
export const PFERR_GUEST_SIZEM_MASK = 1n << 35n;
export const PFERR_GUEST_VMPL_MASK = 1n << 36n;
/** KVM-defined: an access emulated on the guest's behalf (SMAP checks). */
export const PFERR_IMPLICIT_ACCESS = 1n << 48n;
/** KVM-defined: the fault is on a private access. */
export const PFERR_PRIVATE_ACCESS = 1n << 49n;
export const PFERR_SYNTHETIC_MASK = PFERR_IMPLICIT_ACCESS | PFERR_PRIVATE_ACCESS;

/* ---- page fault return values (arch/x86/kvm/mmu/mmu_internal.h) ---- */

/** Internal: keep handling the fault. */
export const RET_PF_CONTINUE = 0;
/** Let the vCPU fault again on the address. */
export const RET_PF_RETRY = 1;
/** MMIO (or a write to a read-only memslot): emulate the access, i.e. exit KVM_EXIT_MMIO. */
export const RET_PF_EMULATE = 2;
/** The gfn is write-protected (shadow paging, write tracking); never returned by the simulator. */
export const RET_PF_WRITE_PROTECTED = 3;
/** Internal: the SPTE is invalid, take the slow path. */
export const RET_PF_INVALID = 4;
/** The faulting entry was fixed. */
export const RET_PF_FIXED = 5;
/** The faulting entry already allowed the access. */
export const RET_PF_SPURIOUS = 6;

/* ---- lpage_info (arch/x86/kvm/mmu/mmu.c) ---- */

/** KVM_LPAGE_MIXED_FLAG: the huge page's gfns have mixed memory attributes (BIT(31) of disallow_lpage). */
export const KVM_LPAGE_MIXED_FLAG = 1 << 31;

/**
 * boot_cpu_data.x86_phys_bits of the simulated TDP host: 52 (a server with 5-level EPT/NPT).
 * Shadow paging uses 52 whatever the CPU has (kvm_mmu_max_gfn()).
 */
const KVM_HOST_MAXPHYADDR = 52;

/** kvm_mmu_max_gfn(): the largest gfn the MMU can map. */
export function kvm_mmu_max_gfn(kvm: Kvm): number {
  const bits = kvm.x86_ops.tdp_enabled ? KVM_HOST_MAXPHYADDR : 52;
  return 2 ** (bits - 12) - 1;
}

/**
 * kvm_gfn_direct_bits(): the gfn bits of a shared access (TDX's shared bit), 0 elsewhere; the
 * VM's own (kvm->arch.gfn_direct_bits) once its vendor set it.
 */
export function kvm_gfn_direct_bits(kvm: Kvm): number {
  return kvm.arch.gfn_direct_bits ?? kvm.x86_ops.gfn_attr_mask;
}

/** kvm_is_gfn_alias(): the gfn carries the direct (shared) bits. */
export function kvm_is_gfn_alias(kvm: Kvm, gfn: number | bigint): boolean {
  const bits = kvm_gfn_direct_bits(kvm);
  return bits !== 0 && (BigInt(gfn) & BigInt(bits)) !== 0n;
}

/** kvm_slot_dirty_track_enabled(). */
function kvm_slot_dirty_track_enabled(slot: KvmMemorySlot): boolean {
  return (slot.flags & KVM_MEM_LOG_DIRTY_PAGES) !== 0;
}

/*
 * Shadow paging (tdp_enabled false, this machine's PVM host) maps a read of a clean guest PTE
 * read-only whatever the host allows (paging_tmpl.h FNAME(gpte_access) / protect_clean_gpte()),
 * so that the guest's first write faults and KVM can set the gpte's D bit; a writable SPTE, and
 * with it a page marked dirty in a logged slot, comes only from a write or a dirty gpte. The
 * guest is the kernel oracle's (test/oracle/guest_x86.h), identity-mapped by 2 MiB leaves: one D
 * bit per 2 MiB of GPA, per VM (the oracle builds page tables per VM). The 4K SPTEs under such a
 * leaf hang off a direct shadow page whose role holds the access the gpte gave; once the gpte
 * is dirty, the next fault that maps under it finds the role stale (validate_direct_spte()) and
 * drops the page for a new one: the SPTEs mapped while the gpte was clean go.
 */
interface ShadowGptes {
  /** 2 MiB leaves whose gpte is dirty. */
  readonly dirty: Set<number>;
  /** 2 MiB leaves shadowed by a direct page built while their gpte was clean. */
  readonly clean_sp: Set<number>;
}
const shadow_gptes = new WeakMap<Kvm, ShadowGptes>();
const GPTE_LEAF_SHIFT = 21n;
const GPTE_LEAF_PAGES = KVM_PAGES_PER_HPAGE(PG_LEVEL_2M);

function shadow_gptes_of(kvm: Kvm): ShadowGptes {
  let s = shadow_gptes.get(kvm);
  if (s === undefined) shadow_gptes.set(kvm, (s = { dirty: new Set(), clean_sp: new Set() }));
  return s;
}

/** The walk of a write through the gpte that maps `gpa` sets its D bit (FNAME(update_accessed_dirty_bits)). */
function shadow_gpte_mark_dirty(kvm: Kvm, gpa: bigint): void {
  shadow_gptes_of(kvm).dirty.add(Number(gpa >> GPTE_LEAF_SHIFT));
}

/** Whether a read of `gpa` finds its gpte clean, so that shadow paging maps it read-only (never with TDP). */
function shadow_gpte_clean(kvm: Kvm, gpa: bigint): boolean {
  if (kvm.x86_ops.tdp_enabled) return false;
  return shadow_gptes.get(kvm)?.dirty.has(Number(gpa >> GPTE_LEAF_SHIFT)) !== true;
}

/**
 * FNAME(fetch)'s validate_direct_spte() before mapping `gfn` under shadow paging: a direct page
 * built while the leaf's gpte was clean is dropped once the gpte is dirty (its SPTEs zapped here).
 */
function shadow_validate_direct_sp(kvm: Kvm, gfn: number): void {
  if (kvm.x86_ops.tdp_enabled) return;
  const s = shadow_gptes_of(kvm);
  const leaf = Math.floor(gfn / GPTE_LEAF_PAGES);
  if (!s.dirty.has(leaf)) {
    s.clean_sp.add(leaf);
    return;
  }
  if (!s.clean_sp.delete(leaf)) return;
  const start = leaf * GPTE_LEAF_PAGES;
  if (tdp_mmu_zap_leafs(kvm, to_tdp_mmu(kvm).direct_root, start, start + GPTE_LEAF_PAGES)) kvm_flush_remote_tlbs(kvm);
}

/* ---- VM lifetime ---- */

/** kvm_mmu_init_vm(): the TDP MMU's roots. */
export function kvm_mmu_init_vm(kvm: Kvm): void {
  kvm_mmu_init_tdp_mmu(kvm);
}

/** kvm_mmu_uninit_vm(): the roots go (their SPTEs were zapped by kvm_arch_flush_shadow_all()). */
export function kvm_mmu_uninit_vm(kvm: Kvm): void {
  kvm.arch.mmu = undefined;
}

/* ---- remote TLB flushes ---- */

const KVM_FLUSH_REMOTE_TLBS_PER_VCPU = costId('kvm_flush_remote_tlbs_per_vcpu');

/**
 * kvm_flush_remote_tlbs(): every vCPU flushes its TLB (KVM_REQ_TLB_FLUSH, an IPI to each one
 * running): kvm_flush_remote_tlbs_per_vcpu per vCPU of the VM.
 */
export function kvm_flush_remote_tlbs(kvm: Kvm): void {
  if (kvm.vcpus.size) kvm.kernel.cost.chargeId(KVM_FLUSH_REMOTE_TLBS_PER_VCPU, kvm.vcpus.size);
}

/** kvm_flush_remote_tlbs_range(): without a ranged flush (Hyper-V only), the whole TLB. */
export function kvm_flush_remote_tlbs_range(kvm: Kvm, _start_gfn: number, _nr_pages: number): void {
  kvm_flush_remote_tlbs(kvm);
}

/* ---- mmu_invalidate (virt/kvm/kvm_main.c) ---- */

/** INVALID_GPA as the skeleton spells the empty pending range. */
const INVALID_GFN = -1;

/** kvm_mmu_invalidate_begin(): an invalidation starts; faults on its range retry until it ends. */
export function kvm_mmu_invalidate_begin(kvm: Kvm): void {
  kvm.mmu_invalidate_in_progress++;
  if (kvm.mmu_invalidate_in_progress === 1) {
    kvm.mmu_invalidate_range_start = INVALID_GFN;
    kvm.mmu_invalidate_range_end = INVALID_GFN;
  }
}

/** kvm_mmu_invalidate_range_add(): widen the pending range to cover [start, end). */
export function kvm_mmu_invalidate_range_add(kvm: Kvm, start: number, end: number): void {
  kvm.kernel.warn.WARN_ON_ONCE(!kvm.mmu_invalidate_in_progress, 'kvm_mmu_invalidate_range_add');
  if (kvm.mmu_invalidate_range_start === INVALID_GFN) {
    kvm.mmu_invalidate_range_start = start;
    kvm.mmu_invalidate_range_end = end;
  } else {
    kvm.mmu_invalidate_range_start = Math.min(kvm.mmu_invalidate_range_start, start);
    kvm.mmu_invalidate_range_end = Math.max(kvm.mmu_invalidate_range_end, end);
  }
}

/** kvm_mmu_invalidate_end(): bump mmu_invalidate_seq, so that faults that raced it retry. */
export function kvm_mmu_invalidate_end(kvm: Kvm): void {
  kvm.mmu_invalidate_seq++;
  kvm.mmu_invalidate_in_progress--;
  if (kvm.mmu_invalidate_in_progress < 0) throw new Error('KVM_BUG_ON: mmu_invalidate_in_progress < 0');
  kvm.kernel.warn.WARN_ON_ONCE(kvm.mmu_invalidate_range_start === INVALID_GFN, 'kvm_mmu_invalidate_end: no range added');
}

/**
 * mmu_invalidate_retry_gfn() / _unsafe(): an invalidation covering `gfn` is in progress, or one
 * completed since the fault sampled mmu_invalidate_seq.
 */
export function mmu_invalidate_retry_gfn(kvm: Kvm, mmu_seq: number, gfn: number): boolean {
  if (kvm.mmu_invalidate_in_progress && gfn >= kvm.mmu_invalidate_range_start && gfn < kvm.mmu_invalidate_range_end) return true;
  return kvm.mmu_invalidate_seq !== mmu_seq;
}

/* ---- unmapping gfn ranges ---- */

/**
 * kvm_unmap_gfn_range() (x86): zap the range's SPTEs in the roots its attr_filter selects.
 * Returns whether a TLB flush is needed.
 */
export function kvm_unmap_gfn_range(kvm: Kvm, range: KvmGfnRange): boolean {
  kvm.kernel.warn.WARN_ON_ONCE(range.end < range.start, 'kvm_unmap_gfn_range: end < start');
  return kvm_tdp_mmu_unmap_gfn_range(kvm, range.start, range.end, range.attr_filter, false);
}

/** kvm_mmu_unmap_gfn_range() (kvm_main.c): add the range to the pending invalidation, then unmap it. */
export function kvm_mmu_unmap_gfn_range(kvm: Kvm, range: KvmGfnRange): boolean {
  kvm_mmu_invalidate_range_add(kvm, range.start, range.end);
  return kvm_unmap_gfn_range(kvm, range);
}

/* ---- the mmu_notifier (virt/kvm/kvm_main.c) ---- */

const notifiers = new WeakMap<Kvm, MmuNotifier>();

/**
 * kvm_handle_hva_range(): for every memslot whose host range intersects host pages [start_vpn,
 * end_vpn), on the first one call on_lock (under mmu_lock), then the handler on the slot's gfns
 * (hva notifications only concern shared mappings: KVM_FILTER_SHARED); flush if asked and any
 * handler wants it. Returns whether a memslot was found.
 */
function kvm_handle_hva_range(kvm: Kvm, start_vpn: number, end_vpn: number, on_lock: (kvm: Kvm) => void,
  handler: ((kvm: Kvm, range: KvmGfnRange) => boolean) | null, flush_on_ret: boolean): boolean {
  let found_memslot = false;
  let ret = false;
  if (end_vpn <= start_vpn) return false;
  for (const slots of kvm.memslots) {
    /* (an address space without slots: no walk to begin, as the interval tree's is empty) */
    if (slots.id_hash.size === 0) continue;
    for (const slot of slots.id_hash.values()) {
      const slot_vpn = gfn_to_hva_vpn(slot, slot.base_gfn);
      const s = Math.max(start_vpn, slot_vpn);
      const e = Math.min(end_vpn, slot_vpn + slot.npages);
      if (s >= e) continue;
      if (!found_memslot) {
        found_memslot = true;
        on_lock(kvm);
      }
      if (handler === null) return true;
      ret = handler(kvm, {
        slot, start: slot.base_gfn + (s - slot_vpn), end: slot.base_gfn + (e - slot_vpn),
        attr_filter: KVM_FILTER_SHARED, may_block: true,
      }) || ret;
    }
  }
  if (flush_on_ret && ret) kvm_flush_remote_tlbs(kvm);
  return found_memslot;
}

/**
 * kvm_mmu_notifier_invalidate_range_start(): the host is about to unmap or change host pages
 * [start_vpn, end_vpn) (munmap, MADV_DONTNEED, truncation/punch hole, CoW, migration, reclaim,
 * mprotect): zap the SPTEs of every memslot mapping them and open an invalidation.
 */
function kvm_mmu_notifier_invalidate_range_start(kvm: Kvm, start_vpn: number, end_vpn: number): void {
  const tracer = kvm.kernel.tracer;
  if (tracer.enabled('kvm_unmap_hva_range')) {
    tracer.emit('kvm_unmap_hva_range', { start: (BigInt(start_vpn) * BigInt(PAGE_SIZE)) as Hva, end: (BigInt(end_vpn) * BigInt(PAGE_SIZE)) as Hva });
  }
  kvm_handle_hva_range(kvm, start_vpn, end_vpn, kvm_mmu_invalidate_begin, kvm_mmu_unmap_gfn_range, true);
}

/** kvm_mmu_notifier_invalidate_range_end(): close the invalidation range_start() opened. */
function kvm_mmu_notifier_invalidate_range_end(kvm: Kvm, start_vpn: number, end_vpn: number): void {
  kvm_handle_hva_range(kvm, start_vpn, end_vpn, kvm_mmu_invalidate_end, null, false);
}

/**
 * kvm_mmu_notifier_release() -> kvm_flush_shadow_all(): the mm goes away (or the VM, through
 * mmu_notifier_unregister()): every SPTE is zapped.
 */
function kvm_mmu_notifier_release(kvm: Kvm): void {
  kvm_arch_flush_shadow_all(kvm);
}

/** kvm_init_mmu_notifier(): subscribe to kvm->mm. */
export function kvm_mmu_notifier_register(kvm: Kvm): void {
  const mn: MmuNotifier = {
    invalidate_range_start: (_mm: MmStruct, s: number, e: number) => kvm_mmu_notifier_invalidate_range_start(kvm, s, e),
    invalidate_range_end: (_mm: MmStruct, s: number, e: number) => kvm_mmu_notifier_invalidate_range_end(kvm, s, e),
    release: () => {
      notifiers.delete(kvm);
      kvm_mmu_notifier_release(kvm);
    },
  };
  notifiers.set(kvm, mn);
  mmu_notifier_register(mn, kvm.mm);
}

/**
 * mmu_notifier_unregister() of kvm_destroy_vm(): ->release runs (zapping every SPTE) unless the
 * mm already went and released it.
 */
export function kvm_mmu_notifier_unregister(kvm: Kvm): void {
  const mn = notifiers.get(kvm);
  if (mn === undefined) return;
  notifiers.delete(kvm);
  mmu_notifier_unregister(mn, kvm.mm);
  kvm_mmu_notifier_release(kvm);
}

/** kvm_arch_flush_shadow_all() -> kvm_mmu_zap_all(): every SPTE of every root. */
export function kvm_arch_flush_shadow_all(kvm: Kvm): void {
  if (kvm.arch.mmu === undefined) return;
  if (kvm_tdp_mmu_zap_all(kvm)) kvm_flush_remote_tlbs(kvm);
}

/* ---- memslots (arch/x86/kvm/x86.c, mmu.c) ---- */

/** gfn_to_index(): the lpage_info index of `gfn` at `level` in a slot starting at base_gfn. */
function gfn_to_index(gfn: number, base_gfn: number, level: number): number {
  const shift = KVM_PAGES_PER_HPAGE(level);
  return Math.floor(gfn / shift) - Math.floor(base_gfn / shift);
}

/** lpage_info_slot(): the disallow_lpage array of `level` and the index of `gfn` in it. */
function lpage_info(slot: KvmMemorySlot, level: number): Int32Array {
  return slot.arch.lpage_info[level - 2]!;
}

/** __kvm_mmu_slot_lpages(): huge pages of `level` a slot of `npages` touches. */
function __kvm_mmu_slot_lpages(slot: KvmMemorySlot, npages: number, level: number): number {
  return gfn_to_index(slot.base_gfn + npages - 1, slot.base_gfn, level) + 1;
}

function hugepage_test_mixed(slot: KvmMemorySlot, gfn: number, level: number): boolean {
  return (lpage_info(slot, level)[gfn_to_index(gfn, slot.base_gfn, level)]! & KVM_LPAGE_MIXED_FLAG) !== 0;
}

function hugepage_clear_mixed(slot: KvmMemorySlot, gfn: number, level: number): void {
  lpage_info(slot, level)[gfn_to_index(gfn, slot.base_gfn, level)] &= ~KVM_LPAGE_MIXED_FLAG;
}

function hugepage_set_mixed(slot: KvmMemorySlot, gfn: number, level: number): void {
  lpage_info(slot, level)[gfn_to_index(gfn, slot.base_gfn, level)] |= KVM_LPAGE_MIXED_FLAG;
}

/**
 * hugepage_has_attrs(): every gfn of the `level` page at `gfn` has exactly `attrs`; above 2M,
 * from the lower level's mixed flags and its pages' attributes.
 */
function hugepage_has_attrs(kvm: Kvm, slot: KvmMemorySlot, gfn: number, level: number, attrs: number): boolean {
  const end = gfn + KVM_PAGES_PER_HPAGE(level);
  if (level === PG_LEVEL_2M) return kvm_range_has_memory_attributes(kvm, gfn, end, ~0, attrs);
  for (let g = gfn; g < end; g += KVM_PAGES_PER_HPAGE(level - 1)) {
    if (hugepage_test_mixed(slot, g, level - 1) || attrs !== kvm_get_memory_attributes(kvm, g)) return false;
  }
  return true;
}

/**
 * kvm_mmu_init_memslot_memory_attributes(): mark the huge pages wholly inside a new slot whose
 * gfns have mixed attributes.
 */
function kvm_mmu_init_memslot_memory_attributes(kvm: Kvm, slot: KvmMemorySlot): void {
  if (!kvm_arch_has_private_mem(kvm)) return;
  for (let level = PG_LEVEL_2M; level <= KVM_MAX_HUGEPAGE_LEVEL; level++) {
    const nr_pages = KVM_PAGES_PER_HPAGE(level);
    const end = gfn_round_for_level(slot.base_gfn + slot.npages, level);
    let start = gfn_round_for_level(slot.base_gfn, level);
    if (start < slot.base_gfn) start += nr_pages;
    for (let gfn = start; gfn < end; gfn += nr_pages) {
      const attrs = kvm_get_memory_attributes(kvm, gfn);
      if (hugepage_has_attrs(kvm, slot, gfn, level, attrs)) hugepage_clear_mixed(slot, gfn, level);
      else hugepage_set_mixed(slot, gfn, level);
    }
  }
}

/**
 * kvm_alloc_memslot_metadata() (x86.c): the lpage_info arrays of 2M and 1G. A huge page that the
 * slot does not wholly cover at its head or tail is disallowed, and so is every one when the gfn
 * and the host address are not equally aligned within the huge page size.
 */
function kvm_alloc_memslot_metadata(kvm: Kvm, slot: KvmMemorySlot): number {
  slot.arch = { lpage_info: [] };
  const npages = slot.npages;
  const ugfn = slot.userspace_addr / BigInt(PAGE_SIZE);
  for (let i = 1; i < KVM_NR_PAGE_SIZES; i++) {
    const level = i + 1;
    const lpages = __kvm_mmu_slot_lpages(slot, npages, level);
    const linfo = new Int32Array(lpages);
    slot.arch.lpage_info[i - 1] = linfo;
    const per = KVM_PAGES_PER_HPAGE(level);
    if (slot.base_gfn % per) linfo[0] = 1;
    if ((slot.base_gfn + npages) % per) linfo[lpages - 1] = 1;
    if (BigInt(slot.base_gfn % per) !== ugfn % BigInt(per)) linfo.fill(1);
  }
  kvm_mmu_init_memslot_memory_attributes(kvm, slot);
  return 0;
}

/**
 * kvm_arch_prepare_memory_region() (x86.c): a new or moved slot must end at or below
 * kvm_mmu_max_gfn() and carry no shared-bit alias (-EINVAL), and gets its lpage_info; a
 * flags-only change keeps the old slot's.
 * @param change enum kvm_mr_change (KVM_MR_*)
 */
export function kvm_arch_prepare_memory_region(kvm: Kvm, old: KvmMemorySlot | null | undefined, new_: KvmMemorySlot | null | undefined, change: number): number {
  if (change === KVM_MR_CREATE || change === KVM_MR_MOVE) {
    const last = new_!.base_gfn + new_!.npages - 1;
    if (last > kvm_mmu_max_gfn(kvm)) return -Errno.EINVAL;
    if (kvm_is_gfn_alias(kvm, last)) return -Errno.EINVAL;
    return kvm_alloc_memslot_metadata(kvm, new_!);
  }
  if (change === KVM_MR_FLAGS_ONLY) {
    new_!.arch = old!.arch;
  } else if (kvm.kernel.warn.WARN_ON_ONCE(change !== KVM_MR_DELETE, 'kvm_arch_prepare_memory_region: change')) {
    return -Errno.EIO;
  }
  return 0;
}

/**
 * kvm_arch_commit_memory_region() -> kvm_mmu_slot_apply_flags(): toggling KVM_MEM_LOG_DIRTY_PAGES
 * on a writable slot. Enabling splits the slot's huge SPTEs (eager_page_split) and
 * write-protects every SPTE (kvm_mmu_slot_remove_write_access() at 4K, a host without PML), then
 * flushes; disabling maps huge pages back in place (kvm_mmu_recover_huge_pages()).
 */
export function kvm_arch_commit_memory_region(kvm: Kvm, old: KvmMemorySlot | null | undefined, new_: KvmMemorySlot | null | undefined, change: number): void {
  const old_flags = old ? old.flags : 0;
  const new_flags = new_ ? new_.flags : 0;
  if (change !== KVM_MR_FLAGS_ONLY || new_flags & KVM_MEM_READONLY) return;
  if (kvm.kernel.warn.WARN_ON_ONCE(!((old_flags ^ new_flags) & KVM_MEM_LOG_DIRTY_PAGES), 'kvm_mmu_slot_apply_flags')) return;
  const slot = new_!;
  const start = slot.base_gfn;
  const end = start + slot.npages;
  const root = to_tdp_mmu(kvm).direct_root;
  if (!(new_flags & KVM_MEM_LOG_DIRTY_PAGES)) {
    kvm_mmu_recover_huge_pages(kvm, slot);
    return;
  }
  /* initially-all-set: every page already reads as dirty, nothing to write-protect */
  if (kvm_dirty_log_manual_protect_and_init_set(kvm)) return;
  tdp_mmu_try_split_huge_pages(kvm, root, start, end);
  tdp_mmu_wrprot_range(kvm, root, start, end);
  kvm_flush_remote_tlbs_range(kvm, start, slot.npages);
}

/**
 * kvm_arch_mmu_enable_log_dirty_pt_masked() (arch/x86/kvm/mmu/mmu.c): after KVM_GET_DIRTY_LOG or
 * KVM_CLEAR_DIRTY_LOG took the bits of `mask` (64 pages from `gfn_offset`, a multiple of 64, of
 * the slot) out of the bitmap, re-arm logging for them: write-protect their 4K SPTEs (no PML:
 * kvm_mmu_write_protect_pt_masked()). A slot that started all dirty
 * (KVM_DIRTY_LOG_INITIALLY_SET) may still be mapped huge: the huge pages under the first and
 * last page are split (eager_page_split) and whatever stays huge there is write-protected, so
 * that the next write is logged at 4K.
 */
export function kvm_arch_mmu_enable_log_dirty_pt_masked(kvm: Kvm, slot: KvmMemorySlot, gfn_offset: number, mask: bigint): void {
  const root = to_tdp_mmu(kvm).direct_root;
  const gfn = slot.base_gfn + gfn_offset;
  if (kvm_dirty_log_manual_protect_and_init_set(kvm)) {
    const bits = mask.toString(2);
    const start = gfn + bits.length - 1 - bits.lastIndexOf('1');
    const end = gfn + bits.length - 1;
    tdp_mmu_try_split_huge_pages(kvm, root, start, end + 1);
    kvm_tdp_mmu_write_protect_gfn(kvm, root, start, PG_LEVEL_2M);
    /* the 64 pages may cross two huge pages: base_gfn need not be aligned */
    if (Math.ceil(start / KVM_PAGES_PER_HPAGE(PG_LEVEL_2M)) !== Math.ceil(end / KVM_PAGES_PER_HPAGE(PG_LEVEL_2M))) {
      kvm_tdp_mmu_write_protect_gfn(kvm, root, end, PG_LEVEL_2M);
    }
  }
  kvm_tdp_mmu_clear_dirty_pt_masked(kvm, root, gfn, mask);
}

/** tdp_mmu_try_split_huge_pages(): split every huge SPTE of [start, end) down to 4K. */
function tdp_mmu_try_split_huge_pages(kvm: Kvm, root: KvmMmuPage, start: number, end: number): void {
  const huge: { sp: KvmMmuPage; i: number }[] = [];
  tdp_mmu_for_each_leaf(root, start, end, (sp, i) => {
    if (sp.level > PG_LEVEL_4K) huge.push({ sp, i });
  });
  for (const { sp, i } of huge) {
    const child = tdp_mmu_split_huge_page(kvm, sp, i);
    if (child.level > PG_LEVEL_4K) for (let j = 0; j < 512; j++) tdp_mmu_split_huge_page(kvm, child, j);
  }
}

/**
 * kvm_mmu_recover_huge_pages() -> recover_huge_pages_range(): a page table under a 2M/1G entry of
 * the slot whose gfns may now be mapped huge (kvm_mmu_max_mapping_level()) is replaced by a huge
 * SPTE built from its first present leaf (make_huge_spte()); flush if any was.
 */
function kvm_mmu_recover_huge_pages(kvm: Kvm, slot: KvmMemorySlot): void {
  if (kvm.kernel.warn.WARN_ON_ONCE(kvm_slot_dirty_track_enabled(slot), 'recover_huge_pages_range')) return;
  const start = slot.base_gfn;
  const end = start + slot.npages;
  let flush = false;
  const walk = (sp: KvmMmuPage): void => {
    const per = KVM_PAGES_PER_HPAGE(sp.level);
    const i1 = Math.min(511, sp.index(end - 1));
    for (let i = Math.max(0, sp.index(start)); i <= i1; i++) {
      const s = sp.spte[i];
      if (!(s & SPTE_S_PRESENT) || is_last_spte(s, sp.level)) continue;
      const gfn = sp.gfn + i * per;
      const child = sp.children![i]!;
      if (sp.level <= KVM_MAX_HUGEPAGE_LEVEL && gfn >= start && gfn < end && kvm_mmu_max_mapping_level(kvm, null, slot, gfn) >= sp.level) {
        const first = first_leaf(child);
        if (first !== undefined) {
          const huge = first.sp.spte[first.i] | SPTE_S_LEAF;
          const pfn = first.sp.pfn[first.i] - (first.sp.pfn[first.i] % per);
          tdp_mmu_set_leaf(kvm, { sp, i }, huge, pfn);
          flush = true;
          continue;
        }
      }
      if (sp.level > PG_LEVEL_2M) walk(child);
    }
  };
  walk(to_tdp_mmu(kvm).direct_root);
  if (flush) kvm_flush_remote_tlbs_range(kvm, start, slot.npages);
}

/** The first present leaf below a page table, with the gfn it maps (make_huge_spte()'s walk). */
function first_leaf(sp: KvmMmuPage): { sp: KvmMmuPage; i: number; gfn: number } | undefined {
  let found: { sp: KvmMmuPage; i: number; gfn: number } | undefined;
  tdp_mmu_for_each_leaf(sp, sp.gfn, sp.gfn + KVM_PAGES_PER_HPAGE(sp.level + 1), (lsp, i, gfn) => {
    if (found === undefined) found = { sp: lsp, i, gfn };
  });
  return found;
}

/**
 * kvm_arch_flush_shadow_memslot(): a slot is deleted or moved. A default VM zaps everything
 * (KVM_X86_QUIRK_SLOT_ZAP_ALL, on unless disabled: kvm_mmu_zap_all_fast()); other VM types zap
 * the slot's gfns, private and shared (kvm_mmu_zap_memslot()).
 */
export function kvm_arch_flush_shadow_memslot(kvm: Kvm, slot: KvmMemorySlot): void {
  if (kvm.arch.vm_type === KVM_X86_DEFAULT_VM) {
    kvm_mmu_zap_all_fast(kvm);
    return;
  }
  const flush = kvm_unmap_gfn_range(kvm, {
    slot, start: slot.base_gfn, end: slot.base_gfn + slot.npages,
    attr_filter: KVM_FILTER_PRIVATE | KVM_FILTER_SHARED, may_block: true,
  });
  if (flush) kvm_flush_remote_tlbs_range(kvm, slot.base_gfn, slot.npages);
}

/**
 * kvm_mmu_zap_all_fast(): invalidate the direct roots (mirror roots cannot be fast-zapped), make
 * every vCPU reload its root (a flush each), and zap the invalidated roots' SPTEs.
 */
function kvm_mmu_zap_all_fast(kvm: Kvm): void {
  const mmu = to_tdp_mmu(kvm);
  kvm_tdp_mmu_unmap_gfn_range(kvm, 0, 2 ** 45, KVM_FILTER_SHARED, false);
  mmu.direct_root = new KvmMmuPage(mmu.direct_root.level, 0, false);
  kvm_flush_remote_tlbs(kvm);
}

/* ---- memory attributes (arch/x86/kvm/mmu/mmu.c) ---- */

/**
 * kvm_arch_pre_set_memory_attributes(): before the attributes of [range.start, range.end) of a
 * slot change, zap its SPTEs of the old kind (shared ones when going private, private ones when
 * going shared: which on a VM without mirrored TDP is every SPTE of the range), after adding to
 * the pending invalidation the huge pages straddling the range's ends that could currently be
 * mapped huge. Returns whether a TLB flush is needed.
 */
export function kvm_arch_pre_set_memory_attributes(kvm: Kvm, range: KvmGfnRange): boolean {
  const slot = range.slot;
  if (kvm.kernel.warn.WARN_ON_ONCE(!kvm_arch_has_private_mem(kvm), 'kvm_arch_pre_set_memory_attributes')) return false;
  if (kvm.kernel.warn.WARN_ON_ONCE(range.end <= range.start, 'kvm_arch_pre_set_memory_attributes: range')) return false;
  const slot_end = slot.base_gfn + slot.npages;
  for (let level = PG_LEVEL_2M; level <= KVM_MAX_HUGEPAGE_LEVEL; level++) {
    const start = gfn_round_for_level(range.start, level);
    const end = gfn_round_for_level(range.end - 1, level);
    const nr_pages = KVM_PAGES_PER_HPAGE(level);
    if ((start !== range.start || start + nr_pages > range.end) && start >= slot.base_gfn &&
      start + nr_pages <= slot_end && !hugepage_test_mixed(slot, start, level)) {
      kvm_mmu_invalidate_range_add(kvm, start, start + nr_pages);
    }
    if (end === start) continue;
    if (end + nr_pages > range.end && end + nr_pages <= slot_end && !hugepage_test_mixed(slot, end, level)) {
      kvm_mmu_invalidate_range_add(kvm, end, end + nr_pages);
    }
  }
  const attr_filter = (range.attributes ?? 0) & KVM_MEMORY_ATTRIBUTE_PRIVATE ? KVM_FILTER_SHARED : KVM_FILTER_PRIVATE;
  return kvm_unmap_gfn_range(kvm, { ...range, attr_filter });
}

/**
 * kvm_arch_post_set_memory_attributes(): recompute KVM_LPAGE_MIXED_FLAG of the 2M and then 1G
 * pages the range touches (huge pages wholly inside it now have only the new attributes; those
 * straddling its ends are checked). Returns false (no flush).
 */
export function kvm_arch_post_set_memory_attributes(kvm: Kvm, range: KvmGfnRange): boolean {
  const attrs = range.attributes ?? 0;
  const slot = range.slot;
  if (kvm.kernel.warn.WARN_ON_ONCE(!kvm_arch_has_private_mem(kvm), 'kvm_arch_post_set_memory_attributes')) return false;
  const slot_end = slot.base_gfn + slot.npages;
  for (let level = PG_LEVEL_2M; level <= KVM_MAX_HUGEPAGE_LEVEL; level++) {
    const nr_pages = KVM_PAGES_PER_HPAGE(level);
    let gfn = gfn_round_for_level(range.start, level);
    if (gfn !== range.start || gfn + nr_pages > range.end) {
      if (gfn >= slot.base_gfn && gfn + nr_pages <= slot_end) {
        if (hugepage_has_attrs(kvm, slot, gfn, level, attrs)) hugepage_clear_mixed(slot, gfn, level);
        else hugepage_set_mixed(slot, gfn, level);
      }
      gfn += nr_pages;
    }
    if (gfn + nr_pages <= range.end) {
      const linfo = lpage_info(slot, level);
      const i0 = gfn_to_index(gfn, slot.base_gfn, level);
      const n = Math.floor((range.end - gfn) / nr_pages);
      for (let i = i0; i < i0 + n; i++) linfo[i] &= ~KVM_LPAGE_MIXED_FLAG;
      gfn += n * nr_pages;
    }
    if (gfn < range.end && gfn + nr_pages <= slot_end) {
      if (hugepage_has_attrs(kvm, slot, gfn, level, attrs)) hugepage_clear_mixed(slot, gfn, level);
      else hugepage_set_mixed(slot, gfn, level);
    }
  }
  return false;
}

/* ---- the page fault (mmu.c, mmu_internal.h) ---- */

/** struct kvm_page_fault: the fault as the handlers pass it along. */
export interface KvmPageFault {
  readonly addr: bigint;
  readonly error_code: bigint;
  readonly exec: boolean;
  readonly write: boolean;
  readonly present: boolean;
  readonly rsvd: boolean;
  readonly user: boolean;
  readonly prefetch: boolean;
  readonly is_private: boolean;
  readonly gfn: number;
  slot: KvmMemorySlot | undefined;
  max_level: number;
  req_level: number;
  goal_level: number;
  /** The pfn, or a KVM_PFN_ERR_* (negative) value. */
  pfn: number;
  map_writable: boolean;
  /** The page whose reference the fault holds until it is done (kvm_release_faultin_page()), or -1. */
  refcounted_page: number;
  mmu_seq: number;
}

/* kvm_pfn_t error values (include/linux/kvm_host.h), as negative numbers. */
const KVM_PFN_ERR_FAULT = -1;
const KVM_PFN_ERR_HWPOISON = -2;
const KVM_PFN_ERR_RO_FAULT = -3;
const KVM_PFN_ERR_SIGPENDING = -4;
const KVM_PFN_NOSLOT = -5;

/** kvm_prepare_memory_fault_exit() for the faulting page: KVM_EXIT_MEMORY_FAULT, PRIVATE for private faults. */
export function kvm_mmu_prepare_memory_fault_exit(vcpu: KvmVcpu, fault: { gfn: number; is_private: boolean }): void {
  const run = vcpu.run;
  run.exit_reason = KVM_EXIT_MEMORY_FAULT;
  run.memory_fault.gpa = BigInt(fault.gfn) << 12n;
  run.memory_fault.size = BigInt(PAGE_SIZE);
  run.memory_fault.flags = fault.is_private ? KVM_MEMORY_EXIT_FLAG_PRIVATE : 0n;
  kvm_run_mark_written(vcpu);
}

/** SIGBUS signals KVM sent to the vCPU's task (kvm_send_hwpoison_signal()), by vCPU. */
const pending_signals = new WeakMap<KvmVcpu, SigInfo>();

/**
 * kvm_send_hwpoison_signal(): SIGBUS BUS_MCEERR_AR at the slot's hva of the gfn to the vCPU's
 * task; the fault returns RET_PF_RETRY and KVM_RUN sees the pending signal
 * (kvm_mmu_take_pending_signal()).
 */
function kvm_send_hwpoison_signal(vcpu: KvmVcpu, slot: KvmMemorySlot, gfn: number): void {
  pending_signals.set(vcpu, { signo: 'SIGBUS', si_code: 'BUS_MCEERR_AR', si_addr: __gfn_to_hva_memslot(slot, gfn), si_addr_lsb: 12 });
}

/**
 * The signal the MMU sent to the vCPU's task while handling its faults (SIGBUS for poisoned
 * host memory), taken: the vCPU loop exits KVM_RUN with -EINTR and the task gets it. Until it is
 * taken, KVM_PRE_FAULT_MEMORY sees it pending (-EINTR).
 */
export function kvm_mmu_take_pending_signal(vcpu: KvmVcpu): SigInfo | undefined {
  const s = pending_signals.get(vcpu);
  pending_signals.delete(vcpu);
  return s;
}

/** signal_pending(current) for the vCPU's task: a signal the MMU sent and KVM_RUN has not taken yet. */
function signal_pending(vcpu: KvmVcpu): boolean {
  return pending_signals.has(vcpu);
}

/**
 * The user page of `gfn` in the slot, __gfn_to_hva_memslot() >> PAGE_SHIFT, in number arithmetic:
 * a page-aligned address below 2^64 is exact as a double (at most 52 significant bits).
 */
function gfn_to_hva_vpn(slot: KvmMemorySlot, gfn: number): number {
  return Math.floor(Number(slot.userspace_addr) / PAGE_SIZE) + (gfn - slot.base_gfn);
}

/** hva_to_pfn_remapped(): a VM_IO/VM_PFNMAP mapping, read from its page tables (faulted in if need be). */
function hva_to_pfn_remapped(kvm: Kvm, vma: NonNullable<ReturnType<typeof vma_lookup>>, vpn: number, write: boolean): { pfn: number; writable: boolean } | number {
  const mm = kvm.mm;
  const follow = (): { pfn: number; writable: boolean } | undefined => {
    const pud = mm.pgd.puds.get(pud_index_of(vpn));
    if (pud !== undefined && pte_present(pud.flags) && pud.flags & _PAGE_PSE) return { pfn: pud.val + (vpn % 2 ** 18), writable: pte_write(pud.flags) };
    const pmd = mm.pgd.pmds.get(pmd_index_of(vpn));
    if (pmd !== undefined && pte_present(pmd.flags) && pmd.flags & _PAGE_PSE) return { pfn: pmd.val + (vpn % 512), writable: pte_write(pmd.flags) };
    const t = pte_offset_map(mm.pgd, vpn);
    if (t === undefined) return undefined;
    const j = pte_index(vpn);
    if (!pte_present(t.flags[j]!)) return undefined;
    return { pfn: t.val[j]!, writable: pte_write(t.flags[j]!) };
  };
  let got = follow();
  if (got === undefined) {
    /* fixup_user_fault(): get_user_pages() does not fault VM_IO/VM_PFNMAP in. */
    if (!(vma.vm_flags & (write ? VM_WRITE : VM_READ))) return -Errno.EFAULT;
    const ret = handle_mm_fault(vma, vpn, write ? FAULT_FLAG_WRITE : 0);
    if (ret & VM_FAULT_ERROR) return vm_fault_to_errno(ret, 0);
    got = follow();
    if (got === undefined) return -Errno.EFAULT;
  }
  if (write && !got.writable) return KVM_PFN_ERR_RO_FAULT;
  return got;
}

/**
 * __kvm_faultin_pfn() -> kvm_follow_pfn() -> hva_to_pfn(): the host page behind a gfn of a
 * memslot through its hva, with a reference (GUP), writable when the fault writes or the host
 * mapping allows it (a read fault is mapped writable if GUP-fast can take the page for writing).
 * Sets fault.pfn (or a KVM_PFN_ERR_*), fault.map_writable and fault.refcounted_page.
 */
function __kvm_faultin_pfn(kvm: Kvm, fault: KvmPageFault): void {
  const slot = fault.slot!;
  const store = kvm.kernel.store;
  fault.map_writable = false;
  fault.refcounted_page = -1;
  /* __gfn_to_hva_many() */
  if (slot.flags & KVM_MEMSLOT_INVALID) {
    fault.pfn = KVM_PFN_NOSLOT;
    return;
  }
  const readonly = (slot.flags & KVM_MEM_READONLY) !== 0;
  if (readonly && fault.write) {
    fault.pfn = KVM_PFN_ERR_RO_FAULT;
    return;
  }
  const want_writable = !readonly;
  const vpn = gfn_to_hva_vpn(slot, fault.gfn);
  const mm = kvm.mm;
  const pages: number[] = [];
  /* hva_to_pfn_fast() */
  if ((fault.write || want_writable) && get_user_pages_fast_only(mm, vpn, 1, FOLL_WRITE, pages) === 1) {
    fault.pfn = pages[0]!;
    fault.refcounted_page = pages[0]!;
    fault.map_writable = want_writable;
    return;
  }
  /* hva_to_pfn_slow() */
  const flags = FOLL_HWPOISON | FOLL_HONOR_NUMA_FAULT | (fault.write ? FOLL_WRITE : 0) | call_kvm_hook(kvm.kernel, 'hva_gup_flags', 0, kvm, fault.write);
  const npages = get_user_pages_unlocked(mm, vpn, 1, pages, flags);
  if (npages === 1) {
    let page = pages[0]!;
    let writable = fault.write;
    const wpage: number[] = [];
    if (!fault.write && want_writable && get_user_pages_fast_only(mm, vpn, 1, FOLL_WRITE, wpage) === 1) {
      put_page(store, page);
      page = wpage[0]!;
      writable = true;
    }
    fault.pfn = page;
    fault.refcounted_page = page;
    fault.map_writable = writable && want_writable;
    return;
  }
  if (npages === -Errno.EINTR || npages === -Errno.EAGAIN) {
    fault.pfn = KVM_PFN_ERR_SIGPENDING;
    return;
  }
  if (npages === -Errno.EHWPOISON) {
    fault.pfn = KVM_PFN_ERR_HWPOISON;
    return;
  }
  const vma = vma_lookup(mm, vpn);
  if (vma === undefined) {
    fault.pfn = KVM_PFN_ERR_FAULT;
  } else if (vma.vm_flags & (VM_IO | VM_PFNMAP)) {
    const r = hva_to_pfn_remapped(kvm, vma, vpn, fault.write);
    if (typeof r === 'number') {
      fault.pfn = r === KVM_PFN_ERR_RO_FAULT ? r : KVM_PFN_ERR_FAULT;
    } else {
      fault.pfn = r.pfn;
      fault.map_writable = r.writable && want_writable;
    }
  } else {
    /* FOLL_NOWAIT's KVM_PFN_ERR_NEEDS_IO is retried without it, which fails the same way. */
    fault.pfn = KVM_PFN_ERR_FAULT;
  }
}

/**
 * The hva_faultin_pfn hook of a design (kvm_hooks.ts) on a page GUP gave through the hva: on
 * its error the reference is dropped and the pfn becomes KVM_PFN_ERR_HWPOISON or _FAULT.
 */
function kvm_hva_faultin_pfn_hook(kvm: Kvm, fault: KvmPageFault): void {
  if (fault.refcounted_page < 0) return;
  const r = call_kvm_hook(kvm.kernel, 'hva_faultin_pfn', 0, kvm, fault.gfn, fault.pfn, fault.write);
  if (r === 0) return;
  put_page(kvm.kernel.store, fault.refcounted_page);
  fault.refcounted_page = -1;
  fault.map_writable = false;
  fault.pfn = r === -Errno.EHWPOISON ? KVM_PFN_ERR_HWPOISON : KVM_PFN_ERR_FAULT;
}

/**
 * kvm_max_level_for_order(): the mapping level a guest_memfd folio of `order` allows.
 */
function kvm_max_level_for_order(order: number): number {
  if (order >= KVM_HPAGE_GFN_SHIFT(PG_LEVEL_1G)) return PG_LEVEL_1G;
  if (order >= KVM_HPAGE_GFN_SHIFT(PG_LEVEL_2M)) return PG_LEVEL_2M;
  return PG_LEVEL_4K;
}

/**
 * kvm_mmu_faultin_pfn_gmem(): a private fault, or any fault on a KVM_MEMSLOT_GMEM_ONLY slot, is
 * served by guest_memfd; a slot without one (or its error) exits KVM_EXIT_MEMORY_FAULT.
 */
function kvm_mmu_faultin_pfn_gmem(vcpu: KvmVcpu, fault: KvmPageFault): number {
  const slot = fault.slot!;
  if (!kvm_slot_has_gmem(slot)) {
    kvm_mmu_prepare_memory_fault_exit(vcpu, fault);
    return -Errno.EFAULT;
  }
  const r = kvm_gmem_get_pfn(vcpu.kvm, slot, fault.gfn);
  if (typeof r === 'number') {
    kvm_mmu_prepare_memory_fault_exit(vcpu, fault);
    return r;
  }
  fault.pfn = r.pfn;
  fault.refcounted_page = -1;
  fault.map_writable = !(slot.flags & KVM_MEM_READONLY);
  fault.max_level = kvm_max_level_for_order(r.max_order);
  return RET_PF_CONTINUE;
}

/** __kvm_mmu_faultin_pfn(). */
function __kvm_mmu_faultin_pfn(vcpu: KvmVcpu, fault: KvmPageFault): number {
  if (fault.is_private || kvm_memslot_is_gmem_only(fault.slot!)) return kvm_mmu_faultin_pfn_gmem(vcpu, fault);
  __kvm_faultin_pfn(vcpu.kvm, fault);
  kvm_hva_faultin_pfn_hook(vcpu.kvm, fault);
  return RET_PF_CONTINUE;
}

/**
 * kvm_handle_error_pfn(): a signal pending is -EINTR (KVM_EXIT_INTR); a write to a read-only
 * memslot is emulated (MMIO exit); poisoned host memory sends SIGBUS and retries; anything else
 * is -EFAULT (without KVM_EXIT_MEMORY_FAULT: exit_reason is stale).
 */
function kvm_handle_error_pfn(vcpu: KvmVcpu, fault: KvmPageFault): number {
  if (fault.pfn === KVM_PFN_ERR_SIGPENDING) {
    vcpu.run.exit_reason = KVM_EXIT_INTR;
    kvm_run_mark_written(vcpu);
    return -Errno.EINTR;
  }
  if (fault.pfn === KVM_PFN_ERR_RO_FAULT) return RET_PF_EMULATE;
  if (fault.pfn === KVM_PFN_ERR_HWPOISON) {
    kvm_send_hwpoison_signal(vcpu, fault.slot!, fault.gfn);
    return RET_PF_RETRY;
  }
  return -Errno.EFAULT;
}

/**
 * kvm_handle_noslot_fault(): no memslot. A private access exits KVM_EXIT_MEMORY_FAULT (-EFAULT);
 * a shared one is MMIO, emulated at once (no MMIO SPTE: enable_mmio_caching off).
 */
function kvm_handle_noslot_fault(vcpu: KvmVcpu, fault: KvmPageFault): number {
  if (fault.is_private) {
    kvm_mmu_prepare_memory_fault_exit(vcpu, fault);
    return -Errno.EFAULT;
  }
  fault.slot = undefined;
  fault.pfn = KVM_PFN_NOSLOT;
  fault.map_writable = false;
  return RET_PF_EMULATE;
}

/**
 * kvm_mmu_faultin_pfn(): snapshot mmu_invalidate_seq; a private/shared mismatch with the gfn's
 * attribute exits KVM_EXIT_MEMORY_FAULT; no memslot is MMIO; a slot being deleted or moved
 * retries (-EAGAIN for a pre-fault); then get the pfn (guest_memfd or the hva) and handle its
 * errors; an invalidation since the snapshot retries.
 */
function kvm_mmu_faultin_pfn(vcpu: KvmVcpu, fault: KvmPageFault): number {
  const kvm = vcpu.kvm;
  if (kvm_is_gfn_alias(kvm, fault.gfn)) throw new Error('KVM_BUG_ON: fault on a gfn alias');
  fault.mmu_seq = kvm.mmu_invalidate_seq;
  if (fault.is_private !== kvm_mem_is_private(kvm, fault.gfn)) {
    kvm_mmu_prepare_memory_fault_exit(vcpu, fault);
    return -Errno.EFAULT;
  }
  const slot = fault.slot;
  if (slot === undefined) return kvm_handle_noslot_fault(vcpu, fault);
  if (slot.flags & KVM_MEMSLOT_INVALID) return fault.prefetch ? -Errno.EAGAIN : RET_PF_RETRY;
  if (mmu_invalidate_retry_gfn(kvm, fault.mmu_seq, fault.gfn)) return RET_PF_RETRY;
  const ret = __kvm_mmu_faultin_pfn(vcpu, fault);
  if (ret !== RET_PF_CONTINUE) return ret;
  if (fault.pfn < 0 && fault.pfn !== KVM_PFN_NOSLOT) return kvm_handle_error_pfn(vcpu, fault);
  if (fault.pfn === KVM_PFN_NOSLOT) return kvm_handle_noslot_fault(vcpu, fault);
  if (mmu_invalidate_retry_gfn(kvm, fault.mmu_seq, fault.gfn)) {
    kvm_mmu_finish_page_fault(kvm, fault, RET_PF_RETRY);
    return RET_PF_RETRY;
  }
  return RET_PF_CONTINUE;
}

/**
 * kvm_mmu_finish_page_fault() -> kvm_release_faultin_page(): drop the reference GUP took; a page
 * KVM could map writable is marked dirty (unless the fault was abandoned), and accessed.
 */
function kvm_mmu_finish_page_fault(kvm: Kvm, fault: KvmPageFault, r: number): void {
  const page = fault.refcounted_page;
  if (page < 0) return;
  fault.refcounted_page = -1;
  const store = kvm.kernel.store;
  const folio = page_folio(store, page);
  if (r !== RET_PF_RETRY && !is_zero_folio(store, folio)) {
    if (fault.map_writable) folio_mark_dirty(store, folio);
    folio_mark_accessed(store, folio);
  }
  put_page(store, page);
}

/**
 * host_pfn_mapping_level(): the size the host maps the gfn's hva with (a PUD leaf 1G, a PMD leaf
 * 2M: THP or hugetlb), read from the host page tables.
 */
function host_pfn_mapping_level(kvm: Kvm, gfn: number, slot: KvmMemorySlot): number {
  const vpn = gfn_to_hva_vpn(slot, gfn);
  const pgd = kvm.mm.pgd;
  const pud = pgd.puds.get(pud_index_of(vpn));
  if (pud !== undefined && pte_present(pud.flags) && pud.flags & _PAGE_PSE) return PG_LEVEL_1G;
  const pmd = pgd.pmds.get(pmd_index_of(vpn));
  if (pmd !== undefined && pte_present(pmd.flags) && pmd.flags & _PAGE_PSE) return PG_LEVEL_2M;
  return PG_LEVEL_4K;
}

/**
 * kvm_gmem_max_mapping_level() (mmu.c): the level guest_memfd resolved for the fault (folio
 * order), limited by the vendor (RMP/S-EPT: kvm_x86_ops.gmem_max_mapping_level, 0 = no limit).
 * Outside a fault (huge page recovery) guest_memfd is not asked: 4K.
 */
function kvm_gmem_max_mapping_level(kvm: Kvm, fault: KvmPageFault | null, is_private: boolean): number {
  if (fault === null) {
    kvm.kernel.warn.WARN_ON_ONCE(true, 'kvm_gmem_max_mapping_level: Get pfn+order from guest_memfd');
    return PG_LEVEL_4K;
  }
  let max_level = fault.max_level;
  if (max_level === PG_LEVEL_4K) return max_level;
  const coco_level = kvm.x86_ops.gmem_max_mapping_level(kvm, fault.pfn, is_private);
  if (coco_level) max_level = Math.min(max_level, coco_level);
  return max_level;
}

/**
 * kvm_mmu_max_mapping_level(): the largest level that may map `gfn`: not above the fault's
 * max_level, none whose lpage_info disallows it (slot misalignment, mixed attributes), then the
 * host's: guest_memfd's for private and gmem-only slots, else the host page tables'.
 */
export function kvm_mmu_max_mapping_level(kvm: Kvm, fault: KvmPageFault | null, slot: KvmMemorySlot, gfn: number): number {
  let max_level: number;
  let is_private: boolean;
  if (fault !== null) {
    max_level = fault.max_level;
    is_private = fault.is_private;
  } else {
    max_level = KVM_MAX_HUGEPAGE_LEVEL;
    is_private = kvm_mem_is_private(kvm, gfn);
  }
  max_level = Math.min(max_level, KVM_MAX_HUGEPAGE_LEVEL);
  for (; max_level > PG_LEVEL_4K; max_level--) {
    if (!lpage_info(slot, max_level)[gfn_to_index(gfn, slot.base_gfn, max_level)]) break;
  }
  if (max_level === PG_LEVEL_4K) return PG_LEVEL_4K;
  const host_level = is_private || kvm_memslot_is_gmem_only(slot)
    ? kvm_gmem_max_mapping_level(kvm, fault, is_private)
    : host_pfn_mapping_level(kvm, gfn, slot);
  return Math.min(host_level, max_level);
}

/**
 * kvm_mmu_hugepage_adjust(): the goal level of the mapping, and the pfn rounded down to it. No
 * huge page for MMIO or a slot logging dirty pages.
 */
function kvm_mmu_hugepage_adjust(kvm: Kvm, fault: KvmPageFault): void {
  if (fault.max_level === PG_LEVEL_4K) return;
  if (fault.slot === undefined || fault.pfn < 0) return;
  if (kvm_slot_dirty_track_enabled(fault.slot)) return;
  fault.req_level = kvm_mmu_max_mapping_level(kvm, fault, fault.slot, fault.gfn);
  if (fault.req_level === PG_LEVEL_4K) return;
  fault.goal_level = fault.req_level;
  const n = KVM_PAGES_PER_HPAGE(fault.goal_level);
  if ((fault.gfn % n) !== (fault.pfn % n)) throw new Error(`VM_BUG_ON: gfn ${fault.gfn} and pfn ${fault.pfn} misaligned at level ${fault.goal_level}`);
  fault.pfn -= fault.pfn % n;
}

/**
 * tdp_mmu_map_handle_target_level(): install the leaf at the goal level. A pre-fault of a
 * present entry, or a present leaf that already allows the access, is spurious; otherwise the
 * new SPTE replaces the old one, with a flush if something present is replaced.
 */
function tdp_mmu_map_handle_target_level(vcpu: KvmVcpu, fault: KvmPageFault, root: KvmMmuPage): number {
  const kvm = vcpu.kvm;
  const t = tdp_mmu_walk_to_level(kvm, root, fault.gfn, fault.goal_level);
  const { sp, i } = t;
  const old = sp.spte[i];
  if (fault.prefetch && old & SPTE_S_PRESENT) return RET_PF_SPURIOUS;
  if (old & SPTE_S_PRESENT && is_access_allowed(old, fault.write, fault.exec) && is_last_spte(old, sp.level)) {
    kvm.kernel.warn.WARN_ON_ONCE(fault.pfn !== sp.pfn[i], 'tdp_mmu_map_handle_target_level: pfn');
    return RET_PF_SPURIOUS;
  }
  const new_s = make_spte(sp.level, fault.prefetch, fault.map_writable && (fault.write || !shadow_gpte_clean(kvm, fault.addr)));
  if (new_s === old && sp.pfn[i] === fault.pfn) return RET_PF_SPURIOUS;
  if (tdp_mmu_set_leaf(kvm, t, new_s, fault.pfn)) return RET_PF_RETRY;
  if (old & SPTE_S_PRESENT) kvm_flush_remote_tlbs_range(kvm, sp.gfn + i * KVM_PAGES_PER_HPAGE(sp.level), KVM_PAGES_PER_HPAGE(sp.level));
  if (new_s & SPTE_S_WRITABLE && fault.slot !== undefined && kvm_slot_dirty_track_enabled(fault.slot)) mark_page_dirty_in_slot(fault.slot, fault.gfn, vcpu);
  const tracer = kvm.kernel.tracer;
  if (tracer.enabled('kvm_mmu_set_spte')) {
    tracer.emit('kvm_mmu_set_spte', {
      gfn: (sp.gfn + i * KVM_PAGES_PER_HPAGE(sp.level)) as Gfn, spte: spte_value(new_s, fault.pfn, sp.level), level: sp.level,
      r: true, x: true, u: 1,
    });
  }
  return RET_PF_FIXED;
}

/** kvm_tdp_mmu_map(): the goal level (hugepage adjust), the trace, the walk and the install. */
function kvm_tdp_mmu_map(vcpu: KvmVcpu, fault: KvmPageFault): number {
  const kvm = vcpu.kvm;
  shadow_validate_direct_sp(kvm, fault.gfn);
  const root = tdp_mmu_get_root(kvm, fault.is_private);
  kvm_mmu_hugepage_adjust(kvm, fault);
  const tracer = kvm.kernel.tracer;
  if (tracer.enabled('kvm_mmu_spte_requested')) {
    tracer.emit('kvm_mmu_spte_requested', {
      gfn: fault.gfn as Gfn, pfn: (fault.pfn + (fault.gfn % KVM_PAGES_PER_HPAGE(fault.goal_level))) as Pfn, level: fault.goal_level,
    });
  }
  return tdp_mmu_map_handle_target_level(vcpu, fault, root);
}

/**
 * fast_page_fault(): without taking the slow path, a fault on a present SPTE that already allows
 * the access is spurious, and a write to a leaf write-protected for dirty logging (MMU-writable,
 * not Writable; 4K only while the slot logs) is fixed in place. RET_PF_INVALID otherwise.
 */
function fast_page_fault(vcpu: KvmVcpu, fault: KvmPageFault): number {
  const kvm = vcpu.kvm;
  if (fault.rsvd) return RET_PF_INVALID;
  if (kvm.arch.has_private_mem && fault.is_private !== kvm_mem_is_private(kvm, fault.gfn)) return RET_PF_INVALID;
  /* A/D bits enabled: a non-present fault cannot be an access-tracking one. */
  if (!fault.present || !fault.write) return RET_PF_INVALID;
  const leaf = tdp_mmu_lookup_leaf(tdp_mmu_get_root(kvm, fault.is_private), fault.gfn);
  if (leaf === undefined) return RET_PF_INVALID;
  const { sp, i } = leaf;
  const s = sp.spte[i];
  if (is_access_allowed(s, fault.write, fault.exec)) return RET_PF_SPURIOUS;
  if (!is_mmu_writable_spte(s)) return RET_PF_INVALID;
  if (sp.level > PG_LEVEL_4K && fault.slot !== undefined && kvm_slot_dirty_track_enabled(fault.slot)) return RET_PF_INVALID;
  const ns = s | SPTE_S_WRITABLE | SPTE_S_DIRTY;
  sp.spte[i] = ns;
  const tracer = kvm.kernel.tracer;
  if (tracer.enabled('kvm_tdp_mmu_spte_changed')) {
    tracer.emit('kvm_tdp_mmu_spte_changed', {
      as_id: 0, gfn: (sp.gfn + i * KVM_PAGES_PER_HPAGE(sp.level)) as Gfn, level: sp.level,
      old_spte: spte_value(s, sp.pfn[i], sp.level), new_spte: spte_value(ns, sp.pfn[i], sp.level),
    });
  }
  if (fault.slot !== undefined) mark_page_dirty_in_slot(fault.slot, fault.gfn, vcpu);
  return RET_PF_FIXED;
}

/**
 * kvm_tdp_mmu_page_fault(): the fast path, then get the pfn, and map it unless an invalidation
 * made the fault stale. Charges kvm_tdp_fault.
 */
function kvm_tdp_page_fault(vcpu: KvmVcpu, fault: KvmPageFault): number {
  const kvm = vcpu.kvm;
  kvm.kernel.cost.charge('kvm_tdp_fault');
  let r = fast_page_fault(vcpu, fault);
  if (r !== RET_PF_INVALID) return r;
  r = kvm_mmu_faultin_pfn(vcpu, fault);
  if (r !== RET_PF_CONTINUE) return r;
  r = RET_PF_RETRY;
  if (!mmu_invalidate_retry_gfn(kvm, fault.mmu_seq, fault.gfn)) r = kvm_tdp_mmu_map(vcpu, fault);
  kvm_mmu_finish_page_fault(kvm, fault, r);
  return r;
}

/* The PFERR_* bits kvm_mmu_do_page_fault() tests, in the error code's low and high words. */
const PF_PRESENT = Number(PFERR_PRESENT_MASK);
const PF_WRITE = Number(PFERR_WRITE_MASK);
const PF_USER = Number(PFERR_USER_MASK);
const PF_RSVD = Number(PFERR_RSVD_MASK);
const PF_FETCH = Number(PFERR_FETCH_MASK);
const PF_PRIVATE_HI = Number(PFERR_PRIVATE_ACCESS >> 32n);

/**
 * kvm_mmu_do_page_fault(): build struct kvm_page_fault (the gfn without the shared bit, its
 * memslot) and handle it. A private fault that ends in emulation exits KVM_EXIT_MEMORY_FAULT
 * instead (-EFAULT). `level` receives the goal level.
 */
function kvm_mmu_do_page_fault(vcpu: KvmVcpu, gpa: bigint, err: bigint, prefetch: boolean, level?: { level: number }): number {
  const kvm = vcpu.kvm;
  let gfn = Number(gpa >> 12n);
  const direct_bits = kvm_gfn_direct_bits(kvm);
  if (direct_bits) gfn = Number(BigInt(gfn) & ~BigInt(direct_bits));
  // The error code's words as numbers: three bigint operations rather than one per bit tested.
  const lo = Number(err & 0xffffffffn);
  const hi = Number((err >> 32n) & 0xffffffffn);
  const fault: KvmPageFault = {
    addr: gpa,
    error_code: err,
    exec: (lo & PF_FETCH) !== 0,
    write: (lo & PF_WRITE) !== 0,
    present: (lo & PF_PRESENT) !== 0,
    rsvd: (lo & PF_RSVD) !== 0,
    user: (lo & PF_USER) !== 0,
    prefetch,
    is_private: (hi & PF_PRIVATE_HI) !== 0,
    gfn,
    slot: kvm_hook_fault_memslot(kvm, gfn, (hi & PF_PRIVATE_HI) !== 0) ?? gfn_to_memslot(kvm, gfn),
    max_level: KVM_MAX_HUGEPAGE_LEVEL,
    req_level: PG_LEVEL_4K,
    goal_level: PG_LEVEL_4K,
    pfn: KVM_PFN_ERR_FAULT,
    map_writable: false,
    refcounted_page: -1,
    mmu_seq: 0,
  };
  const r = kvm_tdp_page_fault(vcpu, fault);
  if (r === RET_PF_EMULATE && fault.is_private) {
    kvm_mmu_prepare_memory_fault_exit(vcpu, fault);
    return -Errno.EFAULT;
  }
  if (level !== undefined) level.level = fault.goal_level;
  return r;
}

/**
 * kvm_mmu_page_fault(): a guest access at `gpa` faulted in the TDP page tables (an EPT violation
 * or NPF; `error_code` as the vendor exit handler builds it, see tdp_fault_error_code()). The
 * access is private per kvm_x86_ops.guest_access_is_private (SW_PROTECTED: the gfn's attribute)
 * unless it is a reserved-bit (MMIO) fault. Emits kvm_page_fault (the exit handler's tracepoint).
 *
 * Returns the RET_PF_* outcome for the vCPU loop (x86.ts) rather than the kernel's 1 / emulation
 * result: RET_PF_FIXED, RET_PF_SPURIOUS, RET_PF_RETRY (re-enter the guest; see
 * kvm_mmu_take_pending_signal()), RET_PF_EMULATE (KVM_EXIT_MMIO for the access), or -errno with
 * vcpu.run filled where the kernel fills it (KVM_EXIT_MEMORY_FAULT for -EFAULT/-EHWPOISON of
 * private and guest_memfd faults, KVM_EXIT_INTR for -EINTR).
 */
export function kvm_mmu_page_fault(vcpu: KvmVcpu, gpa: bigint, error_code: bigint): number {
  const kvm = vcpu.kvm;
  const tracer = kvm.kernel.tracer;
  if (tracer.enabled('kvm_page_fault')) tracer.emit('kvm_page_fault', { vcpu_id: vcpu.vcpu_id, fault_address: gpa as Gpa, error_code });
  /* shadow paging: the walk of a write sets the gpte's D bit (FNAME(update_accessed_dirty_bits)) */
  if (!kvm.x86_ops.tdp_enabled && error_code & PFERR_WRITE_MASK) shadow_gpte_mark_dirty(kvm, gpa);
  if (!(error_code & PFERR_RSVD_MASK) && kvm.x86_ops.guest_access_is_private(vcpu, gpa)) error_code |= PFERR_PRIVATE_ACCESS;
  if (error_code & PFERR_RSVD_MASK && kvm.kernel.warn.WARN_ON_ONCE((error_code & PFERR_PRIVATE_ACCESS) !== 0n, 'kvm_mmu_page_fault: private rsvd')) {
    return -Errno.EFAULT;
  }
  return kvm_mmu_do_page_fault(vcpu, gpa, error_code, false);
}

/**
 * cocosim: the error code an EPT violation / NPF of a guest access at `gpa` produces
 * (vmx handle_ept_violation(), svm npf_interception()): WRITE/FETCH from the access, PRESENT
 * when the faulting entry was present (readable), GUEST_FINAL (a final translation). The
 * private bit is added by kvm_mmu_page_fault().
 */
export function tdp_fault_error_code(vcpu: KvmVcpu, gpa: bigint, write: boolean, exec = false): bigint {
  const kvm = vcpu.kvm;
  const is_private = kvm.x86_ops.guest_access_is_private(vcpu, gpa);
  let gfn = Number(gpa >> 12n);
  const direct_bits = kvm_gfn_direct_bits(kvm);
  if (direct_bits) gfn = Number(BigInt(gfn) & ~BigInt(direct_bits));
  return tdp_access_error_code(write, exec, tdp_mmu_lookup_leaf(tdp_mmu_get_root(kvm, is_private), gfn) !== undefined);
}

/** tdp_fault_error_code()'s values by write | exec << 1 | present << 2, built once (each bigint | allocates). */
const TDP_FAULT_ERROR_CODES: readonly bigint[] = Array.from({ length: 8 }, (_, k) => PFERR_GUEST_FINAL_MASK
  | (k & 1 ? PFERR_WRITE_MASK : 0n) | (k & 2 ? PFERR_FETCH_MASK : 0n) | (k & 4 ? PFERR_PRESENT_MASK : 0n));

/**
 * cocosim: tdp_fault_error_code() for an access whose walk is done: GUEST_FINAL, WRITE, FETCH,
 * and PRESENT when a leaf mapped the gfn (kvm_mmu_translate_access(): TDP_LEAF_RO).
 */
export function tdp_access_error_code(write: boolean, exec: boolean, present: boolean): bigint {
  return TDP_FAULT_ERROR_CODES[(write ? 1 : 0) | (exec ? 2 : 0) | (present ? 4 : 0)]!;
}

/**
 * cocosim: the guest's data path. The host pfn a present SPTE maps `gfn` to for the access
 * (readable; writable for a write), or undefined when the access faults (kvm_mmu_page_fault()).
 * `is_private` selects the mirror root of a TDX VM.
 */
export function kvm_mmu_translate(vcpu: KvmVcpu, gfn: number, write: boolean, is_private = false): number | undefined {
  const pfn = kvm_mmu_translate_access(vcpu, gfn, write, is_private);
  return pfn < 0 ? undefined : pfn;
}

/**
 * kvm_mmu_translate() for the vCPU's accesses: the pfn, or TDP_NO_LEAF / TDP_LEAF_RO (the access
 * faults; TDP_LEAF_RO: on a present entry), from one walk that allocates nothing.
 */
export function kvm_mmu_translate_access(vcpu: KvmVcpu, gfn: number, write: boolean, is_private: boolean): number {
  // The roots are indexed without the shared bit, as the fault path installs (kvm_mmu_do_page_fault()).
  const direct_bits = kvm_gfn_direct_bits(vcpu.kvm);
  if (direct_bits) gfn = Number(BigInt(gfn) & ~BigInt(direct_bits));
  return tdp_mmu_translate(tdp_mmu_get_root(vcpu.kvm, is_private), gfn, write);
}

/* ---- KVM_PRE_FAULT_MEMORY ---- */

/**
 * kvm_tdp_map_page(): a pre-fault of `gpa`, retried until it is not RET_PF_RETRY. -EOPNOTSUPP
 * without TDP (shadow paging faults on GVAs); MMIO (no memslot) is -ENOENT.
 */
export function kvm_tdp_map_page(vcpu: KvmVcpu, gpa: bigint, error_code: bigint, level: { level: number }): number {
  if (!vcpu.kvm.x86_ops.tdp_enabled) return -Errno.EOPNOTSUPP;
  let r: number;
  let tries = 0;
  do {
    if (signal_pending(vcpu)) return -Errno.EINTR;
    if (vcpu.kvm.vm_dead) return -Errno.EIO;
    if (++tries > 64) throw new Error('kvm_tdp_map_page: the fault keeps retrying');
    r = kvm_mmu_do_page_fault(vcpu, gpa, error_code, true, level);
  } while (r === RET_PF_RETRY);
  if (r < 0) return r;
  switch (r) {
    case RET_PF_FIXED:
    case RET_PF_SPURIOUS:
    case RET_PF_WRITE_PROTECTED:
      return 0;
    case RET_PF_EMULATE:
      return -Errno.ENOENT;
    default:
      vcpu.kvm.kernel.warn.WARN_ON_ONCE(true, 'could not fix page fault during prefault');
      return -Errno.EIO;
  }
}

/**
 * kvm_arch_vcpu_pre_fault_memory(): map the page at range.gpa as a read fault (private if its
 * attribute says so) and return how many bytes from gpa the mapping covers (a huge mapping may
 * cover the rest of the range), or -errno: -EOPNOTSUPP unless the VM allows pre-faulting,
 * -EINVAL for a gpa with the shared bit.
 */
export function kvm_arch_vcpu_pre_fault_memory(vcpu: KvmVcpu, range: { gpa: bigint; size: bigint }): bigint | number {
  const kvm = vcpu.kvm;
  let error_code = PFERR_GUEST_FINAL_MASK;
  if (!kvm.arch.pre_fault_allowed) return -Errno.EOPNOTSUPP;
  const gfn = range.gpa >> 12n;
  if (kvm_is_gfn_alias(kvm, gfn)) return -Errno.EINVAL;
  /* reload is efficient when called repeatedly, so we can do it on every iteration */
  const reload = kvm_mmu_reload(vcpu);
  if (reload) return reload;
  let direct_bits = 0n;
  if (kvm_arch_has_private_mem(kvm) && kvm_mem_is_private(kvm, Number(gfn))) {
    error_code |= PFERR_PRIVATE_ACCESS;
  } else {
    direct_bits = BigInt(kvm_gfn_direct_bits(kvm)) << 12n;
  }
  const level = { level: PG_LEVEL_4K };
  const r = kvm_tdp_map_page(vcpu, range.gpa | direct_bits, error_code, level);
  if (r < 0) return r;
  const size = BigInt(KVM_PAGES_PER_HPAGE(level.level)) * BigInt(PAGE_SIZE);
  const end = (range.gpa & ~(size - 1n)) + size;
  const left = end - range.gpa;
  return range.size < left ? range.size : left;
}

/** A __u64 field of an ioctl struct: number or bigint; a missing field is 0; undefined if no C value. */
function u64_field(arg: object, name: string): bigint | undefined {
  const v = (arg as Record<string, unknown>)[name];
  if (v === undefined) return 0n;
  let b: bigint;
  if (typeof v === 'bigint') b = v;
  else if (typeof v === 'number' && Number.isSafeInteger(v)) b = BigInt(v);
  else return undefined;
  if (b < -(2n ** 63n) || b >= 2n ** 64n) return undefined;
  return BigInt.asUintN(64, b);
}

/** Write a __u64 out-field back in the type the caller gave it (number while exact). */
function put_u64_field(arg: object, name: string, v: bigint): void {
  const rec = arg as Record<string, unknown>;
  rec[name] = typeof rec[name] === 'number' && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/**
 * KVM_PRE_FAULT_MEMORY: kvm_vcpu_pre_fault_memory() (virt/kvm/kvm_main.c) and the ioctl's
 * copy-in/copy-out. -EFAULT for an argument that is no struct; -EINVAL for flags, an unaligned gpa
 * or size, or a range that is empty or wraps; then map page after page, advancing gpa and
 * shrinking size, until the range is done or a page fails. The struct's gpa and size are always
 * written back (what is left). Returns 0 if at least one page was processed, else the error.
 */
export function kvm_vcpu_pre_fault_memory(vcpu: KvmVcpu, arg: unknown): number {
  if (typeof arg !== 'object' || arg === null) return -Errno.EFAULT;
  const gpa0 = u64_field(arg, 'gpa');
  const size0 = u64_field(arg, 'size');
  const flags = u64_field(arg, 'flags');
  if (gpa0 === undefined || size0 === undefined || flags === undefined) return -Errno.EINVAL;
  const range = { gpa: gpa0, size: size0 };
  kvm_run_written(vcpu);
  const r = pre_fault_loop(vcpu, range, flags);
  /* a fault that prepared a KVM_EXIT_MEMORY_FAULT (or KVM_EXIT_INTR) wrote it into the vCPU's
   * kvm_run page, over what user space had stored there since its last KVM_RUN (taken first);
   * nothing else in the page is touched */
  if (kvm_run_written(vcpu)) {
    kvm_run_load(vcpu);
    kvm_run_store(vcpu);
  }
  put_u64_field(arg, 'gpa', range.gpa);
  put_u64_field(arg, 'size', range.size);
  return r;
}

function pre_fault_loop(vcpu: KvmVcpu, range: { gpa: bigint; size: bigint }, flags: bigint): number {
  if (flags) return -Errno.EINVAL;
  const page_mask = BigInt(PAGE_SIZE) - 1n;
  if (range.gpa & page_mask || range.size & page_mask || BigInt.asUintN(64, range.gpa + range.size) <= range.gpa) return -Errno.EINVAL;
  const full_size = range.size;
  let r: bigint | number;
  do {
    if (signal_pending(vcpu)) {
      r = -Errno.EINTR;
      break;
    }
    r = kvm_arch_vcpu_pre_fault_memory(vcpu, range);
    if (r === 0n || r === -Errno.EIO) {
      vcpu.kvm.kernel.warn.WARN_ON_ONCE(true, 'kvm_vcpu_pre_fault_memory: r == 0 || r == -EIO');
      break;
    }
    if (typeof r === 'number') break;
    range.size -= r;
    range.gpa += r;
  } while (range.size);
  if (full_size !== range.size) return 0;
  return typeof r === 'number' ? r : 0;
}
