/**
 * Swap entries and the special non-present page-table entries built on them
 * (include/linux/swap.h, include/linux/swapops.h, Linux 6.18): real swap slots, migration
 * entries, hwpoison entries, device entries and PTE markers.
 *
 * A swp_entry_t is `{ unsigned long val }`: the type in the top MAX_SWAPFILES_SHIFT (5) bits of
 * a 63-bit value (bit 63 is left for the xarray value tag), the offset below them:
 *
 *   val = type << SWP_TYPE_SHIFT | (offset & SWP_OFFSET_MASK),   SWP_TYPE_SHIFT = 58
 *
 * The value exceeds 2^53, so the API type `SwpEntry` is a bigint. Page tables (pgtable.ts) do
 * not store the bigint: they keep the type and the offset apart (offsets of migration and
 * hwpoison entries are pfns, exact in a double), so the fault and zap paths never build one.
 *
 * The type numbers are the kernel's with CONFIG_DEVICE_PRIVATE, CONFIG_MIGRATION and
 * CONFIG_MEMORY_FAILURE all enabled: 24 swap files, then SWP_HWPOISON (24), the three migration
 * types (25-27), the three device types (28-30) and SWP_PTE_MARKER (31). The layout is fixed
 * even when the host is configured like a kernel without memory-failure (vm_sysctl's
 * memory_failure = false): that option only decides what the user-visible entry points
 * (MADV_HWPOISON) accept.
 */
import { BUG, BUG_ON, type Pfn } from '@cocosim/core';

/** A swp_entry_t's value (u64). */
export type SwpEntry = bigint;

export const MAX_SWAPFILES_SHIFT = 5;
/** BITS_PER_XA_VALUE (BITS_PER_LONG - 1) - MAX_SWAPFILES_SHIFT. */
export const SWP_TYPE_SHIFT = 63 - MAX_SWAPFILES_SHIFT;
const SWP_TYPE_SHIFT_N = BigInt(SWP_TYPE_SHIFT);
export const SWP_OFFSET_MASK = (1n << SWP_TYPE_SHIFT_N) - 1n;

export const SWP_DEVICE_NUM = 3;
export const SWP_MIGRATION_NUM = 3;
export const SWP_HWPOISON_NUM = 1;
export const SWP_PTE_MARKER_NUM = 1;
export const MAX_SWAPFILES =
  (1 << MAX_SWAPFILES_SHIFT) - SWP_DEVICE_NUM - SWP_MIGRATION_NUM - SWP_HWPOISON_NUM - SWP_PTE_MARKER_NUM;

export const SWP_HWPOISON = MAX_SWAPFILES;
export const SWP_MIGRATION_READ = MAX_SWAPFILES + SWP_HWPOISON_NUM;
export const SWP_MIGRATION_READ_EXCLUSIVE = MAX_SWAPFILES + SWP_HWPOISON_NUM + 1;
export const SWP_MIGRATION_WRITE = MAX_SWAPFILES + SWP_HWPOISON_NUM + 2;
export const SWP_DEVICE_WRITE = MAX_SWAPFILES + SWP_HWPOISON_NUM + SWP_MIGRATION_NUM;
export const SWP_DEVICE_READ = SWP_DEVICE_WRITE + 1;
export const SWP_DEVICE_EXCLUSIVE = SWP_DEVICE_WRITE + 2;
export const SWP_PTE_MARKER = MAX_SWAPFILES + SWP_HWPOISON_NUM + SWP_MIGRATION_NUM + SWP_DEVICE_NUM;

/*
 * Migration entries also carry the old PTE's young and dirty bits above the pfn
 * (migration_entry_supports_ad(): x86-64 has room). SWP_PFN_BITS = MAX_PHYSMEM_BITS - PAGE_SHIFT,
 * with MAX_PHYSMEM_BITS = 52 (a kernel with 5-level paging support), so that every pfn the
 * simulator's memory map may have (up to 2^52) fits.
 */
export const SWP_PFN_BITS = 52 - 12;
export const SWP_MIG_YOUNG_BIT = SWP_PFN_BITS;
export const SWP_MIG_DIRTY_BIT = SWP_PFN_BITS + 1;
const SWP_PFN_LIMIT = 2 ** SWP_PFN_BITS;
const SWP_MIG_YOUNG = 2 ** SWP_MIG_YOUNG_BIT;
const SWP_MIG_DIRTY = 2 ** SWP_MIG_DIRTY_BIT;

/* PTE markers (include/linux/swapops.h): the offset of an SWP_PTE_MARKER entry is a bitmask. */
/** userfaultfd write-protect of a none PTE. */
export const PTE_MARKER_UFFD_WP = 1 << 0;
/** "Poisoned" marker: a swap-in error or a UFFDIO_POISON; access gives VM_FAULT_HWPOISON. */
export const PTE_MARKER_POISONED = 1 << 1;
/** Guard region (MADV_GUARD_INSTALL): access gives VM_FAULT_SIGSEGV. */
export const PTE_MARKER_GUARD = 1 << 2;
export const PTE_MARKER_MASK = PTE_MARKER_UFFD_WP | PTE_MARKER_POISONED | PTE_MARKER_GUARD;

/** swp_entry(): build an entry from a type and an offset (a number below 2^53). */
export function swp_entry(type: number, offset: number): SwpEntry {
  if (!Number.isInteger(type) || type < 0 || type >= 1 << MAX_SWAPFILES_SHIFT) BUG(`swp_entry: bad type ${type}`);
  if (!Number.isSafeInteger(offset) || offset < 0) BUG(`swp_entry: bad offset ${offset}`);
  return (BigInt(type) << SWP_TYPE_SHIFT_N) | BigInt(offset);
}

/** swp_type(). */
export function swp_type(entry: SwpEntry): number {
  return Number(entry >> SWP_TYPE_SHIFT_N);
}

/** swp_offset(): exact below 2^53, which holds for every entry the simulator creates. */
export function swp_offset(entry: SwpEntry): number {
  return Number(entry & SWP_OFFSET_MASK);
}

/** non_swap_entry(): a migration, hwpoison, device or marker entry rather than a swap slot. */
export function non_swap_entry(entry: SwpEntry): boolean {
  return swp_type(entry) >= MAX_SWAPFILES;
}

/** The same tests on a (type) already split out of a page table. */
export function is_migration_type(type: number): boolean {
  return type === SWP_MIGRATION_READ || type === SWP_MIGRATION_READ_EXCLUSIVE || type === SWP_MIGRATION_WRITE;
}
export function is_device_type(type: number): boolean {
  return type === SWP_DEVICE_WRITE || type === SWP_DEVICE_READ || type === SWP_DEVICE_EXCLUSIVE;
}
/** is_pfn_swap_entry() on a type: the offset is a pfn (migration, device, hwpoison). */
export function is_pfn_swap_type(type: number): boolean {
  return is_migration_type(type) || is_device_type(type) || type === SWP_HWPOISON;
}

/* hwpoison entries (CONFIG_MEMORY_FAILURE) */

/** make_hwpoison_entry(): the entry that replaces a PTE mapping a poisoned page. */
export function make_hwpoison_entry(pfn: Pfn): SwpEntry {
  return swp_entry(SWP_HWPOISON, pfn);
}

/** is_hwpoison_entry(). */
export function is_hwpoison_entry(entry: SwpEntry): boolean {
  return swp_type(entry) === SWP_HWPOISON;
}

/** hwpoison_entry_to_pfn() (the kernel's swp_offset_pfn()). */
export function hwpoison_entry_to_pfn(entry: SwpEntry): Pfn {
  return swp_offset_pfn(entry);
}

/* migration entries (CONFIG_MIGRATION) */

export function make_readable_migration_entry(pfn: Pfn): SwpEntry {
  return swp_entry(SWP_MIGRATION_READ, pfn);
}
export function make_readable_exclusive_migration_entry(pfn: Pfn): SwpEntry {
  return swp_entry(SWP_MIGRATION_READ_EXCLUSIVE, pfn);
}
export function make_writable_migration_entry(pfn: Pfn): SwpEntry {
  return swp_entry(SWP_MIGRATION_WRITE, pfn);
}

/** is_migration_entry(). */
export function is_migration_entry(entry: SwpEntry): boolean {
  return is_migration_type(swp_type(entry));
}
export function is_writable_migration_entry(entry: SwpEntry): boolean {
  return swp_type(entry) === SWP_MIGRATION_WRITE;
}
export function is_readable_migration_entry(entry: SwpEntry): boolean {
  return swp_type(entry) === SWP_MIGRATION_READ;
}
export function is_readable_exclusive_migration_entry(entry: SwpEntry): boolean {
  return swp_type(entry) === SWP_MIGRATION_READ_EXCLUSIVE;
}

/** make_migration_entry_young(): remember that the old PTE was young. */
export function make_migration_entry_young(entry: SwpEntry): SwpEntry {
  return swp_entry(swp_type(entry), swp_offset(entry) + (is_migration_entry_young(entry) ? 0 : SWP_MIG_YOUNG));
}
export function is_migration_entry_young(entry: SwpEntry): boolean {
  return Math.floor(swp_offset(entry) / SWP_MIG_YOUNG) % 2 === 1;
}
/** make_migration_entry_dirty(): remember that the old PTE was dirty. */
export function make_migration_entry_dirty(entry: SwpEntry): SwpEntry {
  return swp_entry(swp_type(entry), swp_offset(entry) + (is_migration_entry_dirty(entry) ? 0 : SWP_MIG_DIRTY));
}
export function is_migration_entry_dirty(entry: SwpEntry): boolean {
  return Math.floor(swp_offset(entry) / SWP_MIG_DIRTY) % 2 === 1;
}

/* device entries (CONFIG_DEVICE_PRIVATE) */

export function is_device_private_entry(entry: SwpEntry): boolean {
  const type = swp_type(entry);
  return type === SWP_DEVICE_WRITE || type === SWP_DEVICE_READ;
}
export function is_device_exclusive_entry(entry: SwpEntry): boolean {
  return swp_type(entry) === SWP_DEVICE_EXCLUSIVE;
}

/** is_pfn_swap_entry(). */
export function is_pfn_swap_entry(entry: SwpEntry): boolean {
  return is_pfn_swap_type(swp_type(entry));
}

/** swp_offset_pfn(): the pfn of a pfn swap entry, without the migration A/D bits. */
export function swp_offset_pfn(entry: SwpEntry): Pfn {
  BUG_ON(!is_pfn_swap_entry(entry), 'swp_offset_pfn of an entry that holds no pfn');
  return (swp_offset(entry) % SWP_PFN_LIMIT) as Pfn;
}

/** pfn_swap_entry_to_page(): the page a pfn swap entry refers to (its pfn). */
export function pfn_swap_entry_to_page(entry: SwpEntry): Pfn {
  return swp_offset_pfn(entry);
}

/* PTE markers */

/** make_pte_marker_entry(). */
export function make_pte_marker_entry(marker: number): SwpEntry {
  if ((marker & ~PTE_MARKER_MASK) !== 0 || marker === 0) BUG(`make_pte_marker_entry: bad marker ${marker}`);
  return swp_entry(SWP_PTE_MARKER, marker);
}
/** is_pte_marker_entry(). */
export function is_pte_marker_entry(entry: SwpEntry): boolean {
  return swp_type(entry) === SWP_PTE_MARKER;
}
/** pte_marker_get(): the marker bits of a marker entry. */
export function pte_marker_get(entry: SwpEntry): number {
  return swp_offset(entry) & PTE_MARKER_MASK;
}
/** is_poisoned_swp_entry(): a PTE_MARKER_POISONED marker. */
export function is_poisoned_swp_entry(entry: SwpEntry): boolean {
  return is_pte_marker_entry(entry) && (pte_marker_get(entry) & PTE_MARKER_POISONED) !== 0;
}
/** is_guard_swp_entry(): a PTE_MARKER_GUARD marker. */
export function is_guard_swp_entry(entry: SwpEntry): boolean {
  return is_pte_marker_entry(entry) && (pte_marker_get(entry) & PTE_MARKER_GUARD) !== 0;
}

/*
 * Swap entries in the page cache (swp_to_radix_entry() and friends). shmem keeps a swapped-out
 * page as a value entry in mapping->i_pages, where the kernel tags the entry with bit 0
 * (xa_mk_value()). The simulator's i_pages holds folio pfns (never negative), so a value entry is
 * a negative number there: -(1 + type * 2^SWP_RADIX_OFFSET_BITS + offset). Page-cache walkers
 * test xa_is_value() before treating an entry as a folio, as the kernel's do.
 */

/** Bits of a real swap slot's offset in a page-cache value entry (swap areas are far smaller). */
export const SWP_RADIX_OFFSET_BITS = 40;
const SWP_RADIX_UNIT = 2 ** SWP_RADIX_OFFSET_BITS;

/** xa_is_value(): the page-cache entry is a value entry (a swap entry), not a folio. */
export function xa_is_value(entry: number): boolean {
  return entry < 0;
}

/** swp_to_radix_entry(): the page-cache value entry of a swap slot entry. */
export function swp_to_radix_entry(entry: SwpEntry): number {
  const type = swp_type(entry);
  const offset = swp_offset(entry);
  if (type >= MAX_SWAPFILES || offset >= SWP_RADIX_UNIT) BUG(`swp_to_radix_entry: not a swap slot (type ${type}, offset ${offset})`);
  return -(1 + type * SWP_RADIX_UNIT + offset);
}

/** radix_to_swp_entry(): the swap entry a page-cache value entry holds. */
export function radix_to_swp_entry(value: number): SwpEntry {
  if (!xa_is_value(value)) BUG(`radix_to_swp_entry of a folio entry ${value}`);
  const v = -value - 1;
  return swp_entry(Math.floor(v / SWP_RADIX_UNIT), v % SWP_RADIX_UNIT);
}
