/**
 * A process's page tables (arch/x86/include/asm/pgtable*.h, include/linux/pgtable.h,
 * mm/pgtable-generic.c), x86-64 with 4-level paging, flattened for speed.
 *
 * The kernel walks pgd -> p4d -> pud -> pmd -> pte. A user address space has at most 2^35 pages
 * (TASK_SIZE = 2^47 - 4096), and only the last two levels hold anything the simulator needs
 * (leaves and their flags), so the upper levels are replaced by maps keyed by index:
 *
 *   ptes   Map<pmd index, PteTable>   a PTE table: the 512 PTEs under one PMD entry (2 MiB).
 *   pmds   Map<pmd index, HugeEntry>  a PMD leaf (pmd_trans_huge / hugetlb 2 MiB), or a
 *                                     non-present PMD entry (a PMD migration entry).
 *   puds   Map<pud index, HugeEntry>  a PUD leaf (1 GiB hugetlb).
 *
 * pmd index = vpn / 512 and pud index = vpn / 2^18 with vpn = address / 4096. A PMD index has
 * either a PTE table or a PMD entry, never both; nothing lies under a PUD leaf.
 *
 * A PteTable is two typed arrays, so that faults and zaps touch no objects:
 *
 *   val    Float64Array(512)  the pfn of a present (or PROT_NONE) entry; the offset of a swap
 *                             entry (a pfn for migration and hwpoison entries, marker bits for a
 *                             PTE marker). Exact up to 2^53.
 *   flags  Uint32Array(512)   0 = pte_none(). A present entry holds the x86 _PAGE_* bits below
 *                             at their x86 positions (bits 0-11), except _PAGE_NX, kept at bit 12
 *                             instead of 63, and the protection key, kept at bits 16-19 instead
 *                             of 59-62. A swap entry holds _PAGE_SWP (bit 15), its swap
 *                             type in bits 10-14 and _PAGE_SWP_EXCLUSIVE (bit 1, the position
 *                             x86 uses for it); bits 0 and 8 (present, protnone) are clear, so
 *                             pte_present() is false for it exactly as on x86.
 *   nr     number             entries that are not pte_none(), so that an empty table is freed
 *                             without a scan (free_pgtables(), CONFIG_PT_RECLAIM).
 *
 * Page-table pages themselves are not allocated from the page allocator (they are kernel
 * memory the simulator does not charge); mm->pgtables_bytes is kept as a count.
 *
 * Walks over a range visit only the tables that exist: when the range spans more PMD indexes
 * than there are tables, they iterate the map instead of the indexes, so zapping a sparse 128 TiB
 * range costs O(tables), and zapping 2^18 PTEs is one tight loop per table.
 */
import { BUG, BUG_ON } from '@cocosim/core';
import { __pkru_allows_pkey } from './pkeys.js';
import { MAX_SWAPFILES_SHIFT, swp_entry, swp_offset, swp_type, type SwpEntry } from './swapops.js';

export const PTRS_PER_PTE = 512;
export const PTRS_PER_PMD = 512;
/** Pages under one PUD entry (2^18). */
export const PAGES_PER_PUD = PTRS_PER_PTE * PTRS_PER_PMD;

/* x86 _PAGE_* bits (arch/x86/include/asm/pgtable_types.h) */
export const _PAGE_PRESENT = 1 << 0;
export const _PAGE_RW = 1 << 1;
export const _PAGE_USER = 1 << 2;
export const _PAGE_PWT = 1 << 3;
export const _PAGE_PCD = 1 << 4;
export const _PAGE_ACCESSED = 1 << 5;
export const _PAGE_DIRTY = 1 << 6;
/** _PAGE_PSE: a PMD or PUD leaf. */
export const _PAGE_PSE = 1 << 7;
/** _PAGE_PROTNONE shares _PAGE_GLOBAL's bit; it means something only when _PAGE_PRESENT is clear. */
export const _PAGE_PROTNONE = 1 << 8;
/** _PAGE_SPECIAL (_PAGE_BIT_SOFTW1): no struct page behind it for mm (the zero page, VM_PFNMAP). */
export const _PAGE_SPECIAL = 1 << 9;
export const _PAGE_UFFD_WP = 1 << 10;
export const _PAGE_SOFT_DIRTY = 1 << 11;
/** _PAGE_NX (bit 63 on x86; bit 12 here). */
export const _PAGE_NX = 1 << 12;

/* Non-present swap PTEs (simulator encoding, see the file comment) */
/** Marks a swap PTE (a swap slot, migration, hwpoison, device or marker entry). */
export const _PAGE_SWP = 1 << 15;
/** _PAGE_SWP_EXCLUSIVE: the swapped-out anon page was exclusive (x86 keeps it in _PAGE_BIT_RW). */
export const _PAGE_SWP_EXCLUSIVE = 1 << 1;
const SWP_TYPE_FLAG_SHIFT = 10;
const SWP_TYPE_FLAG_UNIT = 1 << SWP_TYPE_FLAG_SHIFT;
const SWP_TYPE_FLAG_MASK = ((1 << MAX_SWAPFILES_SHIFT) - 1) << SWP_TYPE_FLAG_SHIFT;

/** _PAGE_PKEY_BIT0..3 (x86 bits 59-62; 16-19 here): the protection key of the page (pkeys.ts). */
export const _PAGE_PKEY_SHIFT = 16;
export const _PAGE_PKEY_MASK = 0xf << _PAGE_PKEY_SHIFT;

/** The permission and state bits pte_modify() replaces (_PAGE_CHG_MASK keeps the rest). */
export const _PAGE_PROT_MASK = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_PROTNONE | _PAGE_NX | _PAGE_PKEY_MASK;

/** The 512 PTEs under one PMD entry. */
export class PteTable {
  readonly val = new Float64Array(PTRS_PER_PTE);
  readonly flags = new Uint32Array(PTRS_PER_PTE);
  /** Entries that are not pte_none(). */
  nr = 0;
}

/** A PMD or PUD entry that is not a pointer to a lower table: a leaf or a non-present entry. */
export interface HugeEntry {
  /** The pfn (leaf) or the swap offset (non-present entry). */
  val: number;
  /** _PAGE_* bits as in a PTE, _PAGE_PSE set on leaves; swap entries as in a PTE. */
  flags: number;
}

/**
 * An mm's PTE tables by PMD index, remembering the last one looked up: a fault, its fault-around
 * and the access retried after it all look at the same table, and a walk over a range meets each
 * table many times. Any change of the map forgets it.
 */
export class PteTables extends Map<number, PteTable> {
  private last_pmd = -1;
  private last: PteTable | undefined = undefined;

  /** get(), through the one-entry cache. */
  lookup(pmd: number): PteTable | undefined {
    if (pmd === this.last_pmd) return this.last;
    const t = this.get(pmd);
    this.last_pmd = pmd;
    this.last = t;
    return t;
  }

  override set(pmd: number, t: PteTable): this {
    this.last_pmd = -1;
    this.last = undefined;
    return super.set(pmd, t);
  }

  override delete(pmd: number): boolean {
    this.last_pmd = -1;
    this.last = undefined;
    return super.delete(pmd);
  }

  override clear(): void {
    this.last_pmd = -1;
    this.last = undefined;
    super.clear();
  }
}

/** One mm's page tables (mm->pgd and everything below it). */
export class Pgd {
  readonly ptes = new PteTables();
  readonly pmds = new Map<number, HugeEntry>();
  readonly puds = new Map<number, HugeEntry>();
  /** mm->pgtables_bytes / PAGE_SIZE: PTE tables in use. */
  get nr_ptes(): number {
    return this.ptes.size;
  }
}

/* Indexes */

/** The PMD index (vpn / 512) of a page number: keys ptes and pmds. */
export function pmd_index_of(vpn: number): number {
  return Math.floor(vpn / PTRS_PER_PTE);
}
/**
 * pte_index(): the slot of a page number in its PTE table. Page numbers of user addresses exceed
 * 2^31, where `%` is a floating-point remainder (a libm call); a division by a power of two, its
 * floor and the product are exact, and quick.
 */
export function pte_index(vpn: number): number {
  return vpn - Math.floor(vpn / PTRS_PER_PTE) * PTRS_PER_PTE;
}
/** The PUD index (vpn / 2^18) of a page number: keys puds. */
export function pud_index_of(vpn: number): number {
  return Math.floor(vpn / PAGES_PER_PUD);
}

/* PTE value predicates and modifiers on a flags word (pte_t without its pfn) */

/** pte_none(). */
export function pte_none(flags: number): boolean {
  return flags === 0;
}
/** pte_present(): present to the hardware, or PROT_NONE (present to mm). */
export function pte_present(flags: number): boolean {
  return (flags & (_PAGE_PRESENT | _PAGE_PROTNONE)) !== 0;
}
/** pte_protnone(): PROT_NONE (or NUMA hinting): mapped for mm, not accessible by the CPU. */
export function pte_protnone(flags: number): boolean {
  return (flags & (_PAGE_PRESENT | _PAGE_PROTNONE)) === _PAGE_PROTNONE;
}
/** is_swap_pte(): !pte_none && !pte_present. */
export function is_swap_pte(flags: number): boolean {
  return (flags & _PAGE_SWP) !== 0;
}
export function pte_write(flags: number): boolean {
  return (flags & _PAGE_RW) !== 0;
}
export function pte_dirty(flags: number): boolean {
  return (flags & _PAGE_DIRTY) !== 0;
}
export function pte_young(flags: number): boolean {
  return (flags & _PAGE_ACCESSED) !== 0;
}
export function pte_special(flags: number): boolean {
  return (flags & _PAGE_SPECIAL) !== 0;
}
export function pte_mkwrite(flags: number): number {
  return flags | _PAGE_RW;
}
export function pte_wrprotect(flags: number): number {
  return flags & ~_PAGE_RW;
}
export function pte_mkdirty(flags: number): number {
  return flags | _PAGE_DIRTY | _PAGE_SOFT_DIRTY;
}
export function pte_mkclean(flags: number): number {
  return flags & ~_PAGE_DIRTY;
}
export function pte_mkyoung(flags: number): number {
  return flags | _PAGE_ACCESSED;
}
export function pte_mkold(flags: number): number {
  return flags & ~_PAGE_ACCESSED;
}
export function pte_mkspecial(flags: number): number {
  return flags | _PAGE_SPECIAL;
}
/** pte_modify(): keep the pfn, dirty/young/special bits; take the protection from newprot. */
export function pte_modify(flags: number, newprot: number): number {
  return (flags & ~_PAGE_PROT_MASK) | (newprot & _PAGE_PROT_MASK);
}
/** The CPU may read through it (user mode). */
export function pte_user_readable(flags: number): boolean {
  return (flags & (_PAGE_PRESENT | _PAGE_USER)) === (_PAGE_PRESENT | _PAGE_USER);
}
/** pte_flags_pkey(): the protection key of a present entry. */
export function pte_flags_pkey(flags: number): number {
  return (flags & _PAGE_PKEY_MASK) >>> _PAGE_PKEY_SHIFT;
}
/**
 * Whether the thread's PKRU lets a data access through an entry (__pkru_allows_pkey() of its
 * key). Key 0 always may; the only other key cocosim hands out is the execute-only one, which
 * PKRU denies (pkeys.ts).
 */
export function pte_pkru_allows(flags: number, write: boolean): boolean {
  return (flags & _PAGE_PKEY_MASK) === 0 || __pkru_allows_pkey(pte_flags_pkey(flags), write);
}
/** The CPU may write through it (user mode). */
export function pte_user_writable(flags: number): boolean {
  return (flags & (_PAGE_PRESENT | _PAGE_USER | _PAGE_RW)) === (_PAGE_PRESENT | _PAGE_USER | _PAGE_RW);
}

/** The swap type of a swap PTE's flags. */
export function pte_swp_type(flags: number): number {
  return (flags & SWP_TYPE_FLAG_MASK) >>> SWP_TYPE_FLAG_SHIFT;
}
/** pte_swp_exclusive(). */
export function pte_swp_exclusive(flags: number): boolean {
  return (flags & _PAGE_SWP_EXCLUSIVE) !== 0;
}
/** The flags word of a swap PTE of `type` (swp_entry_to_pte()). */
export function swp_pte_flags(type: number, exclusive = false): number {
  return _PAGE_SWP | (type * SWP_TYPE_FLAG_UNIT) | (exclusive ? _PAGE_SWP_EXCLUSIVE : 0);
}

/* PTE table access */

/**
 * pte_offset_map(): the PTE table covering `vpn`, or undefined when its PMD entry is none or a
 * leaf.
 */
export function pte_offset_map(pt: Pgd, vpn: number): PteTable | undefined {
  return pt.ptes.lookup(pmd_index_of(vpn));
}

/**
 * pte_alloc(): the PTE table covering `vpn`, allocated if the PMD entry is none. The caller has
 * checked that the PMD is not a leaf (a simulator bug otherwise).
 */
export function pte_alloc(pt: Pgd, vpn: number): PteTable {
  const pmd = pmd_index_of(vpn);
  let t = pt.ptes.lookup(pmd);
  if (t === undefined) {
    if (pt.pmds.has(pmd) || pt.puds.has(pud_index_of(vpn))) BUG(`pte_alloc under a huge entry at vpn ${vpn}`);
    t = new PteTable();
    pt.ptes.set(pmd, t);
  }
  return t;
}

/** set_pte_at(): install a present (or PROT_NONE) PTE mapping `pfn`. */
export function set_pte_at(t: PteTable, i: number, pfn: number, flags: number): void {
  if (t.flags[i] === 0) t.nr++;
  t.val[i] = pfn;
  t.flags[i] = flags;
}

/** set_pte_at() of a swap PTE: `type` and `offset` of the swp_entry_t. */
export function set_swp_pte_at(t: PteTable, i: number, type: number, offset: number, exclusive = false): void {
  if (t.flags[i] === 0) t.nr++;
  t.val[i] = offset;
  t.flags[i] = swp_pte_flags(type, exclusive);
}

/** set_pte_at(swp_entry_to_pte(entry)) with a swp_entry_t value. */
export function set_swp_entry_at(t: PteTable, i: number, entry: SwpEntry, exclusive = false): void {
  set_swp_pte_at(t, i, swp_type(entry), swp_offset(entry), exclusive);
}

/** pte_to_swp_entry() of a swap PTE. */
export function pte_to_swp_entry(t: PteTable, i: number): SwpEntry {
  BUG_ON(!is_swap_pte(t.flags[i]), 'pte_to_swp_entry of a PTE that is not a swap PTE');
  return swp_entry(pte_swp_type(t.flags[i]), t.val[i]);
}

/** pte_clear() / ptep_get_and_clear(): the entry becomes pte_none(). Read it first. */
export function pte_clear(t: PteTable, i: number): void {
  if (t.flags[i] !== 0) {
    t.nr--;
    t.flags[i] = 0;
    t.val[i] = 0;
  }
}

/** Update the flags of a present PTE in place (ptep_set_wrprotect, ptep_set_access_flags...). */
export function pte_update_flags(t: PteTable, i: number, flags: number): void {
  BUG_ON(t.flags[i] === 0 || flags === 0, 'pte_update_flags on or to a none PTE');
  t.flags[i] = flags;
}

/** Free the PTE table at `pmd` if it holds nothing (free_pte_range / try_to_free_pte). */
export function pte_free_if_empty(pt: Pgd, pmd: number): void {
  const t = pt.ptes.get(pmd);
  if (t !== undefined && t.nr === 0) pt.ptes.delete(pmd);
}

/* PMD and PUD entries */

/** pmd_none(): no PTE table and no PMD entry at `pmd`. */
export function pmd_none(pt: Pgd, pmd: number): boolean {
  return !pt.ptes.has(pmd) && !pt.pmds.has(pmd);
}
/** pmd_trans_huge() / pmd_leaf(): a present PMD leaf at `pmd`. */
export function pmd_trans_huge(pt: Pgd, pmd: number): boolean {
  const e = pt.pmds.get(pmd);
  return e !== undefined && pte_present(e.flags);
}
/** The PMD entry (leaf or non-present) at `pmd`. */
export function pmd_entry(pt: Pgd, pmd: number): HugeEntry | undefined {
  return pt.pmds.get(pmd);
}
/** set_pmd_at(): a PMD leaf or non-present entry. The slot must hold no PTE table. */
export function set_pmd_at(pt: Pgd, pmd: number, val: number, flags: number): void {
  if (pt.ptes.has(pmd)) BUG(`set_pmd_at over a PTE table at pmd ${pmd}`);
  BUG_ON(flags === 0, 'set_pmd_at of a none entry');
  const e = pt.pmds.get(pmd);
  if (e === undefined) pt.pmds.set(pmd, { val, flags });
  else {
    e.val = val;
    e.flags = flags;
  }
}
/** pmdp_huge_get_and_clear(): remove the PMD entry, returning it. */
export function pmdp_huge_get_and_clear(pt: Pgd, pmd: number): HugeEntry | undefined {
  const e = pt.pmds.get(pmd);
  if (e !== undefined) pt.pmds.delete(pmd);
  return e;
}
/** The PUD leaf at `pud`. */
export function pud_entry(pt: Pgd, pud: number): HugeEntry | undefined {
  return pt.puds.get(pud);
}
/** set_pud_at(): a PUD leaf; nothing may lie under it. */
export function set_pud_at(pt: Pgd, pud: number, val: number, flags: number): void {
  BUG_ON(flags === 0, 'set_pud_at of a none entry');
  const e = pt.puds.get(pud);
  if (e === undefined) pt.puds.set(pud, { val, flags });
  else {
    e.val = val;
    e.flags = flags;
  }
}
/** pudp_huge_get_and_clear(). */
export function pudp_huge_get_and_clear(pt: Pgd, pud: number): HugeEntry | undefined {
  const e = pt.puds.get(pud);
  if (e !== undefined) pt.puds.delete(pud);
  return e;
}

/* Range walks */

/**
 * The keys of `map` in [first, last], ascending: the indexes themselves when the range is no
 * larger than the map, else the map's keys filtered and sorted. Either way O(min(range, size)).
 */
export function keys_in_range(map: Map<number, unknown>, first: number, last: number): number[] {
  const out: number[] = [];
  if (map.size === 0 || last < first) return out;
  if (last - first + 1 <= map.size) {
    for (let k = first; k <= last; k++) if (map.has(k)) out.push(k);
    return out;
  }
  for (const k of map.keys()) if (k >= first && k <= last) out.push(k);
  return out.sort((a, b) => a - b);
}

/**
 * Call fn(table, pmd, from, to) for each PTE table overlapping the pages [start, end), with
 * [from, to) the slots of the table inside the range, in address order. fn may clear entries.
 */
export function walk_pte_tables(
  pt: Pgd,
  start: number,
  end: number,
  fn: (t: PteTable, pmd: number, from: number, to: number) => void,
): void {
  if (end <= start || pt.ptes.size === 0) return;
  const first = pmd_index_of(start);
  const last = pmd_index_of(end - 1);
  if (first === last) {
    /* one table (a zap of a folio's pages): no list of keys to make */
    const t = pt.ptes.get(first);
    if (t !== undefined) fn(t, first, start - first * PTRS_PER_PTE, end - first * PTRS_PER_PTE);
    return;
  }
  for (const pmd of keys_in_range(pt.ptes, first, last)) {
    const t = pt.ptes.get(pmd);
    if (t === undefined) continue;
    const base = pmd * PTRS_PER_PTE;
    const from = pmd === first ? start - base : 0;
    const to = pmd === last ? end - base : PTRS_PER_PTE;
    fn(t, pmd, from, to);
  }
}

/**
 * pte_needs_flush() (arch/x86/include/asm/tlbflush.h): does changing a present entry's flags from
 * `old` to `nw` require a TLB flush? Clearing present, dirty or accessed does (accessed is ignored
 * here, as ptep_clear_flush_young() would), and so does any change of RW, USER, NX, PSE or the
 * PROTNONE/GLOBAL bit.
 */
export function pte_needs_flush(old: number, nw: number): boolean {
  if (!(old & _PAGE_PRESENT)) return false;
  const diff = (old ^ nw) & ~_PAGE_ACCESSED;
  if (diff & old & (_PAGE_DIRTY | _PAGE_PRESENT)) return true;
  return (diff & (_PAGE_RW | _PAGE_USER | _PAGE_PWT | _PAGE_PCD | _PAGE_PSE | _PAGE_PROTNONE | _PAGE_NX)) !== 0;
}
