/**
 * SPTEs (arch/x86/kvm/mmu/spte.h, spte.c) of the TDP MMU, and the page-size levels of
 * arch/x86/include/asm/kvm_host.h.
 *
 * The simulator keeps an SPTE as two numbers in the page-table page's typed arrays (tdp_mmu.ts):
 * the pfn it maps and a 16-bit state word of the SPTE_S_* bits below, 0 being
 * SHADOW_NONPRESENT_VALUE. spte_value() builds the u64 the kernel would hold, in the EPT format
 * of a VMX host with A/D bits (kvm_mmu_set_ept_masks()), for tracepoints only: a page-table page
 * has no simulated physical address, so a non-leaf SPTE shows pfn 0.
 */

/** enum pg_level (arch/x86/include/asm/pgtable_types.h). */
export const PG_LEVEL_4K = 1;
export const PG_LEVEL_2M = 2;
export const PG_LEVEL_1G = 3;
export const PG_LEVEL_512G = 4;
export const PG_LEVEL_256T = 5;
/** KVM_MAX_HUGEPAGE_LEVEL: 1 GiB. */
export const KVM_MAX_HUGEPAGE_LEVEL = PG_LEVEL_1G;
/** KVM_NR_PAGE_SIZES: 4K, 2M, 1G. */
export const KVM_NR_PAGE_SIZES = 3;
/** PT64_ROOT_5LEVEL: the root level of the TDP MMU (5-level EPT covers 2^45 gfns, beyond any MAXPHYADDR). */
export const PT64_ROOT_5LEVEL = 5;
/** SPTE_ENT_PER_PAGE: entries of a page-table page. */
export const SPTE_ENT_PER_PAGE = 512;

/** KVM_HPAGE_GFN_SHIFT(level): log2 of the pages one SPTE of `level` maps. */
export function KVM_HPAGE_GFN_SHIFT(level: number): number {
  return (level - 1) * 9;
}

/** KVM_PAGES_PER_HPAGE() of levels 0..PT64_ROOT_5LEVEL + 1, looked up: `2 **` is a Math.pow call on every walk step. */
const PAGES_PER_HPAGE: readonly number[] = [2 ** -9, 1, 2 ** 9, 2 ** 18, 2 ** 27, 2 ** 36, 2 ** 45];

/** KVM_PAGES_PER_HPAGE(level): pages one SPTE of `level` maps (1, 512, 2^18, ...). */
export function KVM_PAGES_PER_HPAGE(level: number): number {
  return PAGES_PER_HPAGE[level] ?? 2 ** KVM_HPAGE_GFN_SHIFT(level);
}

/** gfn_round_for_level(): the first gfn of the `level` page that holds `gfn`. */
export function gfn_round_for_level(gfn: number, level: number): number {
  const n = KVM_PAGES_PER_HPAGE(level);
  return Math.floor(gfn / n) * n;
}

/* The state word of an SPTE (simulator encoding of the bits make_spte() sets). */

/** SPTE_MMU_PRESENT_MASK: the entry is present (leaf or link to a lower page table). */
export const SPTE_S_PRESENT = 1 << 0;
/** A last-level SPTE: a 4K SPTE, or PT_PAGE_SIZE_MASK at 2M/1G. */
export const SPTE_S_LEAF = 1 << 1;
/** PT_WRITABLE_MASK: the guest may write. */
export const SPTE_S_WRITABLE = 1 << 2;
/** shadow_host_writable_mask: the host mapping (hva or gmem) allows writes. */
export const SPTE_S_HOST_WRITABLE = 1 << 3;
/** shadow_mmu_writable_mask: KVM's MMU allows making it writable (no write tracking). */
export const SPTE_S_MMU_WRITABLE = 1 << 4;
/** shadow_accessed_mask (EPT A bit). */
export const SPTE_S_ACCESSED = 1 << 5;
/** shadow_dirty_mask (EPT D bit). */
export const SPTE_S_DIRTY = 1 << 6;
/** shadow_x_mask: executable. */
export const SPTE_S_EXEC = 1 << 7;

/** is_shadow_present_pte(). */
export function is_shadow_present_pte(s: number): boolean {
  return (s & SPTE_S_PRESENT) !== 0;
}

/** is_last_spte(): a leaf at its level (4K SPTEs always are). */
export function is_last_spte(s: number, level: number): boolean {
  return level === PG_LEVEL_4K || (s & SPTE_S_LEAF) !== 0;
}

/** is_large_pte(): PT_PAGE_SIZE_MASK. */
export function is_large_pte(s: number, level: number): boolean {
  return level > PG_LEVEL_4K && (s & SPTE_S_LEAF) !== 0;
}

/** is_writable_pte(). */
export function is_writable_pte(s: number): boolean {
  return (s & SPTE_S_WRITABLE) !== 0;
}

/** is_mmu_writable_spte(). */
export function is_mmu_writable_spte(s: number): boolean {
  return (s & SPTE_S_MMU_WRITABLE) !== 0;
}

/**
 * is_access_allowed() (mmu/spte.h): a present SPTE allows the fault's access. Every present
 * leaf is readable (EPT R, shadow_user_mask).
 */
export function is_access_allowed(s: number, write: boolean, exec: boolean): boolean {
  if (exec) return (s & SPTE_S_EXEC) !== 0;
  if (write) return (s & SPTE_S_WRITABLE) !== 0;
  return (s & SPTE_S_PRESENT) !== 0;
}

/**
 * make_spte() for a TDP MMU direct page with ACC_ALL access: present, executable, the page size
 * bit above 4K, Accessed unless prefetched, and writable (with Dirty, as make_spte() sets
 * spte_shadow_dirty_mask() on every writable SPTE) when the host mapping is. KVM's write
 * tracking (mmu_try_to_unsync_pages()) only concerns shadow pages and page-tracked gfns, which
 * the simulator has none of, so the result is never write-protected.
 */
export function make_spte(level: number, prefetch: boolean, host_writable: boolean): number {
  let s = SPTE_S_PRESENT | SPTE_S_EXEC;
  if (level > PG_LEVEL_4K) s |= SPTE_S_LEAF;
  if (!prefetch) s |= SPTE_S_ACCESSED;
  if (host_writable) s |= SPTE_S_HOST_WRITABLE | SPTE_S_MMU_WRITABLE | SPTE_S_WRITABLE | SPTE_S_DIRTY;
  return s;
}

/**
 * make_small_spte() (make_huge_page_split_spte()): the SPTE of the `index`th child of a huge
 * SPTE being split keeps its permissions; a child of a 2M SPTE is a 4K SPTE.
 */
export function make_small_spte(huge: number, child_level: number): number {
  return child_level === PG_LEVEL_4K ? huge & ~SPTE_S_LEAF : huge;
}

/** make_nonleaf_spte(): the link to a lower page table. */
export const NONLEAF_SPTE = SPTE_S_PRESENT;

/* The u64 value, for tracepoints (EPT format: arch/x86/include/asm/vmx.h VMX_EPT_*). */

const VMX_EPT_READABLE_MASK = 0x1n;
const VMX_EPT_WRITABLE_MASK = 0x2n;
const VMX_EPT_EXECUTABLE_MASK = 0x4n;
/** MTRR_TYPE_WRBACK << VMX_EPT_MT_EPTE_SHIFT: vmx_get_mt_mask() for RAM. */
const VMX_EPT_MT_WB = 6n << 3n;
const PT_PAGE_SIZE_MASK = 1n << 7n;
const VMX_EPT_ACCESS_BIT = 1n << 8n;
const VMX_EPT_DIRTY_BIT = 1n << 9n;
const SPTE_MMU_PRESENT_MASK = 1n << 11n;
const EPT_SPTE_HOST_WRITABLE = 1n << 57n;
const EPT_SPTE_MMU_WRITABLE = 1n << 58n;
/** VMX_EPT_SUPPRESS_VE_BIT: in every SPTE, present or not. */
const VMX_EPT_SUPPRESS_VE_BIT = 1n << 63n;
/** SHADOW_NONPRESENT_VALUE (x86-64): a non-present SPTE suppresses #VE. */
export const SHADOW_NONPRESENT_VALUE = VMX_EPT_SUPPRESS_VE_BIT;

/** The non-leaf SPTE's value (a link: RWX, accessed). */
const NONLEAF_SPTE_VALUE = SPTE_MMU_PRESENT_MASK | VMX_EPT_SUPPRESS_VE_BIT | VMX_EPT_READABLE_MASK | VMX_EPT_WRITABLE_MASK
  | VMX_EPT_EXECUTABLE_MASK | VMX_EPT_ACCESS_BIT;
/** The bits of a leaf above bit 52 (SUPPRESS_VE, HOST/MMU_WRITABLE), by host_writable | mmu_writable << 1. */
const LEAF_HIGH_BITS: readonly bigint[] = [0n, EPT_SPTE_HOST_WRITABLE, EPT_SPTE_MMU_WRITABLE, EPT_SPTE_HOST_WRITABLE | EPT_SPTE_MMU_WRITABLE]
  .map((b) => b | VMX_EPT_SUPPRESS_VE_BIT);

/**
 * The u64 SPTE the kernel would hold for state `s` mapping `pfn` at `level`. The bits below 53
 * are summed as a number and joined to the high ones in two bigint operations: every SPTE change
 * a trace records builds two of these.
 */
export function spte_value(s: number, pfn: number, level: number): bigint {
  if (!(s & SPTE_S_PRESENT)) return SHADOW_NONPRESENT_VALUE;
  if (!is_last_spte(s, level)) return NONLEAF_SPTE_VALUE;
  if (Number.isSafeInteger(pfn) && pfn >= 0 && pfn < 2 ** 40) {
    let lo = 0x801 | 0x30; /* SPTE_MMU_PRESENT_MASK | VMX_EPT_READABLE_MASK | VMX_EPT_MT_WB */
    if (level > PG_LEVEL_4K) lo |= 0x80;
    if (s & SPTE_S_EXEC) lo |= 0x4;
    if (s & SPTE_S_WRITABLE) lo |= 0x2;
    if (s & SPTE_S_ACCESSED) lo |= 0x100;
    if (s & SPTE_S_DIRTY) lo |= 0x200;
    return BigInt(pfn * 4096 + lo) | LEAF_HIGH_BITS[(s & SPTE_S_HOST_WRITABLE ? 1 : 0) | (s & SPTE_S_MMU_WRITABLE ? 2 : 0)]!;
  }
  let v = SPTE_MMU_PRESENT_MASK | VMX_EPT_SUPPRESS_VE_BIT | VMX_EPT_READABLE_MASK;
  if (!is_last_spte(s, level)) return v | VMX_EPT_WRITABLE_MASK | VMX_EPT_EXECUTABLE_MASK | VMX_EPT_ACCESS_BIT;
  v |= VMX_EPT_MT_WB | (BigInt(pfn) << 12n);
  if (level > PG_LEVEL_4K) v |= PT_PAGE_SIZE_MASK;
  if (s & SPTE_S_EXEC) v |= VMX_EPT_EXECUTABLE_MASK;
  if (s & SPTE_S_WRITABLE) v |= VMX_EPT_WRITABLE_MASK;
  if (s & SPTE_S_ACCESSED) v |= VMX_EPT_ACCESS_BIT;
  if (s & SPTE_S_DIRTY) v |= VMX_EPT_DIRTY_BIT;
  if (s & SPTE_S_HOST_WRITABLE) v |= EPT_SPTE_HOST_WRITABLE;
  if (s & SPTE_S_MMU_WRITABLE) v |= EPT_SPTE_MMU_WRITABLE;
  return v;
}
