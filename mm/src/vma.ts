/**
 * VMA management (mm/vma.c, mm/mmap.c, include/linux/mm.h; Linux 6.18): looking VMAs up,
 * linking and removing them, splitting and merging them, and the protection their PTEs get.
 *
 * The VMA tree is mm->mm_mt, keyed by page number: a VMA occupies [start_vpn, end_vpn - 1]. A
 * VMA's bounds change only through the helpers here, which keep the tree, the file's i_mmap and
 * the mm counters in step.
 *
 * Merging follows vma_merge_new_range() (a new mapping next to compatible ones extends them)
 * and vma_merge_existing_range() (a range whose flags change merges with a neighbour that now
 * matches). Compatible means: same flags but VM_SOFTDIRTY, same file and contiguous file
 * offsets (for anonymous memory, vm_pgoff is the page number, so adjacency suffices), the same
 * anon_vma or at most one of them having one, the same anon name, and no VMA removed by the
 * merge having vm_ops->close. VM_SPECIAL VMAs never merge.
 */
import { BUG_ON, Errno, Hva, MT_MAX, PAGE_SIZE } from '@cocosim/core';
import type { File } from './fs.js';
import {
  VM_ACCESS_FLAGS,
  VM_PKEY_BIT0,
  VM_EXEC,
  VM_IGNORE_MERGE,
  VM_PFNMAP,
  VM_SHARED,
  VM_SOFTDIRTY,
  VM_SPECIAL,
  VM_STACK,
  VM_WRITE,
  VmAreaStruct,
  vm_flags_andnot,
  vm_sysctl,
  vma_is_shared_maywrite,
  type MmStruct,
} from './mm_types.js';
import { split_huge_pmd_address } from './huge_memory.js';
import { call_mm_hook, mm_hook_present } from './mm_hooks.js';
import { _PAGE_ACCESSED, _PAGE_NX, _PAGE_PKEY_SHIFT, _PAGE_PRESENT, _PAGE_PROTNONE, _PAGE_RW, _PAGE_USER } from './pgtable.js';
import {
  anon_vma_clone,
  anon_vma_link,
  unlink_anon_vmas,
  vma_interval_tree_insert,
  vma_interval_tree_remove,
  type AnonVma,
} from './rmap.js';

/* Lookups */

/** find_vma(): the first VMA ending after page `vpn` (it may start after `vpn`), or undefined. */
export function find_vma(mm: MmStruct, vpn: number): VmAreaStruct | undefined {
  /* the VMA containing vpn, when there is one (every fault in a mapping), without a range object */
  const vma = mm.mm_mt.mtree_load(vpn);
  if (vma !== undefined) return vma;
  return mm.mm_mt.mt_find(vpn, MT_MAX)?.entry;
}

/** vma_lookup(): the VMA containing page `vpn`, or undefined. */
export function vma_lookup(mm: MmStruct, vpn: number): VmAreaStruct | undefined {
  return mm.mm_mt.mtree_load(vpn);
}

/** find_vma_intersection(): the first VMA overlapping pages [start, end), or undefined. */
export function find_vma_intersection(mm: MmStruct, start: number, end: number): VmAreaStruct | undefined {
  if (end <= start) return undefined;
  return mm.mm_mt.mt_find(start, end - 1)?.entry;
}

/** The VMA just below `vma` in the address space (vma_prev()), or undefined. */
export function vma_prev(mm: MmStruct, vma: VmAreaStruct): VmAreaStruct | undefined {
  return vma.start_vpn === 0 ? undefined : mm.mm_mt.mt_prev(vma.start_vpn, 0)?.entry;
}

/** The VMA just above `vma` (vma_next()), or undefined. */
export function vma_next(mm: MmStruct, vma: VmAreaStruct): VmAreaStruct | undefined {
  return mm.mm_mt.mt_next(vma.end_vpn - 1, MT_MAX)?.entry;
}

/** The last VMA ending at or before page `vpn` (the `prev` of find_vma_prev()), or undefined. */
export function vma_before(mm: MmStruct, vpn: number): VmAreaStruct | undefined {
  return vpn === 0 ? undefined : mm.mm_mt.mt_prev(vpn, 0)?.entry ?? undefined;
}

/** The VMAs overlapping pages [start, end), in address order. */
export function vmas_in_range(mm: MmStruct, start: number, end: number): VmAreaStruct[] {
  const out: VmAreaStruct[] = [];
  if (end > start) mm.mm_mt.mt_for_each(start, end - 1, (vma) => void out.push(vma));
  return out;
}

/* Page protections */

/**
 * vm_get_page_prot() with x86's protection_map[]: the _PAGE_* bits of new PTEs for these
 * VM_READ/WRITE/EXEC/SHARED bits. Private mappings are never writable in the PTE (writes COW
 * through a fault); no access at all is PAGE_NONE (_PAGE_PROTNONE, not present to the CPU);
 * reading is implied by writing or executing (x86 cannot express write-only or exec-only).
 */
export function vm_get_page_prot(vm_flags: number): number {
  /* the 4 protection key bits of vm_flags become the PTE's (x86's vm_get_page_prot()) */
  const pkey = (Math.floor(vm_flags / VM_PKEY_BIT0) & 0xf) << _PAGE_PKEY_SHIFT;
  if ((vm_flags & VM_ACCESS_FLAGS) === 0) return _PAGE_PROTNONE | _PAGE_ACCESSED | pkey;
  let prot = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED | pkey;
  if (!(vm_flags & VM_EXEC)) prot |= _PAGE_NX;
  if ((vm_flags & (VM_SHARED | VM_WRITE)) === (VM_SHARED | VM_WRITE)) prot |= _PAGE_RW;
  return prot;
}

/**
 * vma_wants_writenotify(): a shared writable mapping whose PTEs must start read-only so that
 * the first write faults: the file wants ->page_mkwrite or ->pfn_mkwrite calls. (File systems
 * with dirty accounting want it too; cocosim's files, shmem and guest_memfd among them, have no
 * writeback. Soft-dirty tracking is off: new VMAs are VM_SOFTDIRTY.)
 */
export function vma_wants_writenotify(vma: VmAreaStruct): boolean {
  if ((vma.vm_flags & (VM_SHARED | VM_WRITE)) !== (VM_SHARED | VM_WRITE)) return false;
  const ops = vma.vm_ops;
  if (ops !== null && (ops.page_mkwrite !== undefined || ops.pfn_mkwrite !== undefined)) return true;
  if (vma.vm_flags & VM_PFNMAP) return false;
  return false;
}

/** vma_set_page_prot(): update vm_page_prot to reflect vm_flags. */
export function vma_set_page_prot(vma: VmAreaStruct): void {
  let flags = vma.vm_flags;
  if (vma_wants_writenotify(vma)) flags = vm_flags_andnot(flags, VM_SHARED);
  vma.vm_page_prot = (mm_hook_present(vma.vm_mm.kernel, 'vm_page_prot') && call_mm_hook(vma.vm_mm.kernel, 'vm_page_prot', vma, flags)) || vm_get_page_prot(flags);
}

/* Accounting */

/** vm_stat_account(): total_vm and the exec/stack/data split. */
export function vm_stat_account(mm: MmStruct, flags: number, npages: number): void {
  mm.total_vm += npages;
  if ((flags & (VM_EXEC | VM_WRITE | VM_STACK)) === VM_EXEC) mm.exec_vm += npages;
  else if ((flags & VM_STACK) === VM_STACK) mm.stack_vm += npages;
  else if ((flags & (VM_WRITE | VM_SHARED | VM_STACK)) === VM_WRITE) mm.data_vm += npages;
}

/* The tree and i_mmap */

function tree_store(vma: VmAreaStruct): void {
  vma.vm_mm.mm_mt.mtree_store_range(vma.start_vpn, vma.end_vpn - 1, vma);
}

/** __vma_link_file(): the file's i_mmap gains the VMA (and i_mmap_writable a shared writer). */
export function vma_link_file(vma: VmAreaStruct): void {
  const file = vma.vm_file;
  if (file === null) return;
  if (vma_is_shared_maywrite(vma)) file.f_mapping.mapping_allow_writable();
  vma_interval_tree_insert(vma, file.f_mapping);
}

/** __remove_shared_vm_struct() / unlink_file_vma(): the VMA leaves the file's i_mmap. */
export function unlink_file_vma(vma: VmAreaStruct): void {
  const file = vma.vm_file;
  if (file === null) return;
  if (vma_is_shared_maywrite(vma)) file.f_mapping.mapping_unmap_writable();
  vma_interval_tree_remove(vma, file.f_mapping);
}

/** vma_link(): a new VMA enters the mm (tree, file, map_count). */
export function vma_link(mm: MmStruct, vma: VmAreaStruct): void {
  tree_store(vma);
  vma_link_file(vma);
  mm.map_count++;
}

/**
 * remove_vma(): the VMA is gone from the tree already; close it, drop its file reference and
 * its anon_vma link.
 */
export function remove_vma(vma: VmAreaStruct): void {
  vma.vm_ops?.close?.(vma);
  unlink_anon_vmas(vma);
  if (vma.vm_file !== null) {
    const file = vma.vm_file;
    vma.vm_file = null;
    file.fput();
  }
}

/**
 * Take `vma` out of the mm (tree, i_mmap, map_count); its pages must be zapped already.
 * Then remove_vma().
 */
export function vma_detach_and_remove(mm: MmStruct, vma: VmAreaStruct): void {
  BUG_ON(mm.mm_mt.mtree_load(vma.start_vpn) !== vma, 'detaching a VMA that is not in the tree');
  mm.mm_mt.mtree_erase_range(vma.start_vpn, vma.end_vpn - 1);
  unlink_file_vma(vma);
  mm.map_count--;
  remove_vma(vma);
}

/* Splitting */

/**
 * __split_vma(): split `vma` at page `at` into two VMAs. With new_below the new VMA is the lower
 * part [vm_start, at) and `vma` keeps [at, vm_end); otherwise the new one is the upper part.
 * @returns the new VMA, or -errno (vm_ops->may_split refusing, -ENOMEM past max_map_count
 *   when `check_count`).
 */
export function split_vma(vma: VmAreaStruct, at: number, new_below: boolean, check_count = true): VmAreaStruct | number {
  const mm = vma.vm_mm;
  BUG_ON(!(vma.start_vpn < at && at < vma.end_vpn), `split_vma at ${at} outside (${vma.start_vpn}, ${vma.end_vpn})`);
  if (check_count && mm.map_count >= vm_sysctl(mm.kernel).max_map_count) return -Errno.ENOMEM;
  if (vma.vm_ops?.may_split !== undefined) {
    const err = vma.vm_ops.may_split(vma, Hva(BigInt(at) * BigInt(PAGE_SIZE)));
    if (err) return err;
  }
  const nw = vm_area_dup(vma);
  if (new_below) {
    nw.end_vpn = at;
  } else {
    nw.start_vpn = at;
    nw.vm_pgoff += at - vma.start_vpn;
  }
  anon_vma_clone(nw, vma);
  if (nw.vm_file !== null) nw.vm_file.get_file();
  nw.vm_ops?.open?.(nw);
  /* Get rid of huge pages straddling the split boundary. */
  split_huge_pmd_address(vma, at);
  if (new_below) {
    vma.vm_pgoff += at - vma.start_vpn;
    vma.start_vpn = at;
  } else {
    vma.end_vpn = at;
  }
  tree_store(vma);
  vma_link(mm, nw);
  return nw;
}

/** vm_area_dup(): a copy of the VMA's fields (not yet linked anywhere). */
function vm_area_dup(vma: VmAreaStruct): VmAreaStruct {
  const nw = new VmAreaStruct(vma.vm_mm, vma.start_vpn, vma.end_vpn, vma.vm_flags, vma.vm_pgoff);
  nw.vm_page_prot = vma.vm_page_prot;
  nw.vm_file = vma.vm_file;
  nw.vm_ops = vma.vm_ops;
  nw.vm_private_data = vma.vm_private_data;
  nw.anon_name = vma.anon_name;
  return nw;
}

/* Merging */

/** What a merge compares: the proposed flags, file, offset and anon state of a range. */
export interface VmaMergeCandidate {
  readonly flags: number;
  readonly file: File | null;
  /** vm_pgoff of the range's first page. */
  readonly pgoff: number;
  readonly anon_vma: AnonVma | null;
  readonly anon_name: string | null;
}

/** is_mergeable_vma(): same flags (but VM_SOFTDIRTY), file and anon name. */
function is_mergeable_vma(vma: VmAreaStruct, c: VmaMergeCandidate): boolean {
  if (vm_flags_andnot(vm_flags_xor(vma.vm_flags, c.flags), VM_IGNORE_MERGE) !== 0) return false;
  if (vma.vm_file !== c.file) return false;
  return vma.anon_name === c.anon_name;
}

function vm_flags_xor(a: number, b: number): number {
  return vm_flags_andnot(a, b) + vm_flags_andnot(b, a);
}

/** is_mergeable_anon_vma(): at most one side has an anon_vma, or they share one. */
function is_mergeable_anon_vma(a: AnonVma | null, b: AnonVma | null): boolean {
  return a === null || b === null || a === b;
}

/** can_vma_merge_before(): the range [.., end) can merge into `next` starting at end. */
function can_vma_merge_before(next: VmAreaStruct, c: VmaMergeCandidate, pglen: number): boolean {
  return is_mergeable_vma(next, c) && is_mergeable_anon_vma(next.anon_vma, c.anon_vma) && next.vm_pgoff === c.pgoff + pglen;
}

/** can_vma_merge_after(): `prev` ending at the range's start can absorb it. */
function can_vma_merge_after(prev: VmAreaStruct, c: VmaMergeCandidate): boolean {
  return is_mergeable_vma(prev, c) && is_mergeable_anon_vma(prev.anon_vma, c.anon_vma) &&
    prev.vm_pgoff + (prev.end_vpn - prev.start_vpn) === c.pgoff;
}

/** can_merge_remove_vma(): a merge may delete the VMA only if it has no ->close. */
function can_merge_remove_vma(vma: VmAreaStruct): boolean {
  return vma.vm_ops === null || vma.vm_ops.close === undefined;
}

/** Move `from`'s anon_vma to `to` when `to` has none (dup_anon_vma()). */
function dup_anon_vma(to: VmAreaStruct, from: VmAreaStruct): void {
  if (to.anon_vma === null && from.anon_vma !== null) anon_vma_link(to, from.anon_vma);
}

/** Resize `vma` to [start, end) with pgoff, updating the tree (the caller erased any overlap). */
function vma_set_range(vma: VmAreaStruct, start: number, end: number, pgoff: number): void {
  const mm = vma.vm_mm;
  if (start > vma.start_vpn) mm.mm_mt.mtree_erase_range(vma.start_vpn, Math.min(start, vma.end_vpn) - 1);
  if (end < vma.end_vpn) mm.mm_mt.mtree_erase_range(Math.max(end, vma.start_vpn), vma.end_vpn - 1);
  vma.start_vpn = start;
  vma.end_vpn = end;
  vma.vm_pgoff = pgoff;
  tree_store(vma);
}

/** Remove a VMA swallowed by a merge (its pages now belong to the surviving VMA). */
function vma_merge_remove(mm: MmStruct, vma: VmAreaStruct, survivor: VmAreaStruct): void {
  dup_anon_vma(survivor, vma);
  unlink_file_vma(vma);
  mm.map_count--;
  remove_vma(vma);
}

/**
 * vma_merge_new_range(): a new mapping of pages [start, end) described by `c`, with `prev`
 * ending at or before start and `next` starting at or after end: extend prev and/or next over
 * it if compatible. Returns the VMA now covering the range, or undefined (no merge).
 */
export function vma_merge_new_range(
  mm: MmStruct,
  prev: VmAreaStruct | undefined,
  next: VmAreaStruct | undefined,
  start: number,
  end: number,
  c: VmaMergeCandidate,
): VmAreaStruct | undefined {
  if (c.flags & VM_SPECIAL) return undefined;
  const left = prev !== undefined && prev.end_vpn === start && can_vma_merge_after(prev, c);
  let right = next !== undefined && next.start_vpn === end && can_vma_merge_before(next, c, end - start);
  /* Both sides: prev and next must be compatible with each other too, and next removable. */
  if (left && right && (!is_mergeable_anon_vma(prev!.anon_vma, next!.anon_vma) || !can_merge_remove_vma(next!))) right = false;
  if (left) {
    const p = prev!;
    if (right) {
      const n = next!;
      mm.mm_mt.mtree_erase_range(n.start_vpn, n.end_vpn - 1);
      const nend = n.end_vpn;
      vma_merge_remove(mm, n, p);
      vma_set_range(p, p.start_vpn, nend, p.vm_pgoff);
    } else {
      vma_set_range(p, p.start_vpn, end, p.vm_pgoff);
    }
    if (p.anon_vma === null && c.anon_vma !== null) anon_vma_link(p, c.anon_vma);
    return p;
  }
  if (right) {
    const n = next!;
    vma_set_range(n, start, n.end_vpn, c.pgoff);
    if (n.anon_vma === null && c.anon_vma !== null) anon_vma_link(n, c.anon_vma);
    return n;
  }
  return undefined;
}

/**
 * vma_merge_existing_range(): pages [start, end) of `middle` are about to get flags `newflags`:
 * merge them into prev and/or next if that makes them compatible. Returns the VMA now holding
 * the range, or undefined when no merge is possible (the caller splits).
 */
function vma_merge_existing_range(middle: VmAreaStruct, start: number, end: number, newflags: number): VmAreaStruct | undefined {
  const mm = middle.vm_mm;
  if (middle.vm_flags & VM_SPECIAL || newflags & VM_SPECIAL) return undefined;
  const left_side = start === middle.start_vpn;
  const right_side = end === middle.end_vpn;
  if (!left_side && !right_side) return undefined;
  const c: VmaMergeCandidate = {
    flags: newflags,
    file: middle.vm_file,
    pgoff: middle.vm_pgoff + (start - middle.start_vpn),
    anon_vma: middle.anon_vma,
    anon_name: middle.anon_name,
  };
  const prev = left_side ? vma_prev(mm, middle) : undefined;
  const next = right_side ? vma_next(mm, middle) : undefined;
  const merge_left = prev !== undefined && prev.end_vpn === start && can_vma_merge_after(prev, c);
  let merge_right = next !== undefined && next.start_vpn === end && can_vma_merge_before(next, c, end - start);
  const remove_middle = left_side && right_side;
  if (merge_left && merge_right && (!is_mergeable_anon_vma(prev!.anon_vma, next!.anon_vma) || !can_merge_remove_vma(next!))) {
    merge_right = false;
  }
  if (!merge_left && !merge_right) return undefined;
  /* The VMAs a merge would delete must have no ->close. */
  if ((remove_middle || (merge_left && merge_right)) && !can_merge_remove_vma(middle)) return undefined;
  if (merge_left) {
    const p = prev!;
    let new_end = end;
    if (merge_right) {
      const n = next!;
      new_end = n.end_vpn;
      mm.mm_mt.mtree_erase_range(n.start_vpn, n.end_vpn - 1);
      vma_merge_remove(mm, n, p);
    }
    if (remove_middle) {
      mm.mm_mt.mtree_erase_range(middle.start_vpn, middle.end_vpn - 1);
      vma_merge_remove(mm, middle, p);
    } else {
      dup_anon_vma(p, middle);
      vma_set_range(middle, end, middle.end_vpn, middle.vm_pgoff + (end - middle.start_vpn));
    }
    vma_set_range(p, p.start_vpn, new_end, p.vm_pgoff);
    return p;
  }
  const n = next!;
  if (remove_middle) {
    mm.mm_mt.mtree_erase_range(middle.start_vpn, middle.end_vpn - 1);
    vma_merge_remove(mm, middle, n);
  } else {
    dup_anon_vma(n, middle);
    vma_set_range(middle, middle.start_vpn, start, middle.vm_pgoff);
  }
  vma_set_range(n, start, n.end_vpn, c.pgoff);
  return n;
}

/**
 * vma_modify_flags(): give pages [start, end) of `vma` the flags `newflags`, merging with a
 * neighbour if they then match, splitting `vma` otherwise. Returns the VMA covering exactly
 * [start, end) (its flags not yet changed unless a merge did it), or -errno from a split.
 */
export function vma_modify_flags(vma: VmAreaStruct, start: number, end: number, newflags: number): VmAreaStruct | number {
  const merged = vma_merge_existing_range(vma, start, end, newflags);
  if (merged !== undefined) return merged;
  if (vma.start_vpn < start) {
    const r = split_vma(vma, start, true);
    if (typeof r === 'number') return r;
  }
  if (vma.end_vpn > end) {
    const r = split_vma(vma, end, false);
    if (typeof r === 'number') return r;
  }
  return vma;
}

/* anon_vma reuse */

/**
 * anon_vma_compatible(): `b` directly above `a` could share a's anon_vma: adjacent, same file,
 * flags equal but for access bits and VM_SOFTDIRTY, contiguous offsets.
 */
export function anon_vma_compatible(a: VmAreaStruct, b: VmAreaStruct): boolean {
  return a.end_vpn === b.start_vpn && a.vm_file === b.vm_file &&
    vm_flags_andnot(vm_flags_xor(a.vm_flags, b.vm_flags), VM_ACCESS_FLAGS + VM_SOFTDIRTY) === 0 &&
    b.vm_pgoff === a.vm_pgoff + (b.start_vpn - a.start_vpn);
}

/**
 * find_mergeable_anon_vma(): an anon_vma a neighbour already has and `vma` could share (next
 * first, then prev), so that later merges stay possible.
 */
export function find_mergeable_anon_vma(vma: VmAreaStruct): AnonVma | null {
  const mm = vma.vm_mm;
  const next = vma_next(mm, vma);
  if (next !== undefined && next.anon_vma !== null && anon_vma_compatible(vma, next)) return next.anon_vma;
  const prev = vma_prev(mm, vma);
  if (prev !== undefined && prev.anon_vma !== null && anon_vma_compatible(prev, vma)) return prev.anon_vma;
  return null;
}
