/**
 * mlock(2), mlock2(2), munlock(2) and the mlocking of folios (mm/mlock.c, Linux 6.18).
 *
 * A VMA is locked by VM_LOCKED (VM_LOCKONFAULT with MLOCK_ONFAULT); mm->locked_vm counts its
 * pages. Its folios are mlocked: PG_mlocked, on the unevictable list (PG_unevictable), with an
 * mlock_count of the locked VMAs mapping them (the kernel keeps it in folio->mlock_count, a union
 * with the LRU links; the simulator keeps a side table). Large folios mapped by PTEs are not
 * mlocked, as in the kernel.
 *
 * Simulated processes run as root (the oracle's tests do too), so RLIMIT_MEMLOCK never limits
 * them: can_do_mlock() holds and the limit check is the CAP_IPC_LOCK bypass.
 *
 * Checked on Linux 6.18: mlock of a range starting in a hole or crossing one is ENOMEM; mlock of
 * a PROT_NONE mapping is ENOMEM (populate's EFAULT, turned into ENOMEM); mlock of a memfd
 * mapping past EOF is ENOMEM (SIGBUS -> EFAULT -> ENOMEM); mlock(addr, (size_t)-1) and len 0 are
 * 0 (the length rounds to 0).
 */
import { Errno } from '@cocosim/core';
import { folio_nr_pages, type Folio } from './folio.js';
import { folio_evictable } from './filemap.js';
import { folio_lru_refile } from './mm_inline.js';
import { __mm_populate } from './gup.js';
import { vm_normal_page } from './memory.js';
import { MLOCK_ONFAULT, int_arg, ulong_arg } from './mman.js';
import {
  VM_DROPPABLE,
  VM_LOCKED,
  VM_LOCKED_MASK,
  VM_LOCKONFAULT,
  VM_SPECIAL,
  is_vm_hugetlb_page,
  vm_flags_andnot,
  vm_flags_or,
  vm_flags_test,
  type MmStruct,
  type VmAreaStruct,
} from './mm_types.js';
import {
  PG_lru,
  PG_mlocked,
  PG_unevictable,
  folio_test_large,
} from './page-flags.js';
import type { PageStore } from './page_store.js';
import { PTRS_PER_PTE, _PAGE_SPECIAL, pte_present, walk_pte_tables } from './pgtable.js';
import { find_vma, vma_lookup, vma_modify_flags, vma_set_page_prot } from './vma.js';

const mlock_counts = new WeakMap<PageStore, Map<number, number>>();

function counts(store: PageStore): Map<number, number> {
  let m = mlock_counts.get(store);
  if (m === undefined) {
    m = new Map();
    mlock_counts.set(store, m);
  }
  return m;
}

/**
 * folio->mlock_count of every mlocked folio, by head pfn (debug walks; entries of folios without
 * PG_mlocked are stale and mean nothing), or undefined before the first mlock.
 */
export function mlock_count_map(store: PageStore): ReadonlyMap<number, number> | undefined {
  return mlock_counts.get(store);
}

/** mlock_folio(): one more locked VMA maps the folio. */
export function mlock_folio(store: PageStore, folio: number): void {
  const i = store.idx(folio);
  const m = counts(store);
  if (!(store.flags[i] & (1 << PG_mlocked))) {
    store.flags[i] |= 1 << PG_mlocked;
    m.set(folio, 1);
  } else {
    m.set(folio, (m.get(folio) ?? 0) + 1);
  }
  if (store.flags[i] & (1 << PG_lru)) {
    /* __mlock_folio(): to the unevictable list */
    store.flags[i] |= 1 << PG_unevictable;
    folio_lru_refile(store, folio);
  }
}

/** mlock_new_folio(): a new folio of a locked VMA goes straight to the unevictable list. */
export function mlock_new_folio(store: PageStore, folio: number): void {
  const i = store.idx(folio);
  store.flags[i] |= (1 << PG_mlocked) | (1 << PG_unevictable) | (1 << PG_lru);
  counts(store).set(folio, 1);
  folio_lru_refile(store, folio);
}

/** munlock_folio(): one locked VMA less maps the folio; the last one makes it evictable. */
export function munlock_folio(store: PageStore, folio: number): void {
  const i = store.idx(folio);
  const m = counts(store);
  if (!(store.flags[i] & (1 << PG_mlocked))) {
    m.delete(folio);
    return;
  }
  const c = (m.get(folio) ?? 1) - 1;
  if (c > 0) {
    m.set(folio, c);
    return;
  }
  m.delete(folio);
  /* __munlock_folio(): folio_evictable() is checked after clearing PG_mlocked */
  store.flags[i] &= ~(1 << PG_mlocked);
  if (folio_evictable(store, folio as Folio)) store.flags[i] &= ~(1 << PG_unevictable);
  folio_lru_refile(store, folio);
}

/** mlock_vma_folio() (mm/internal.h): a folio newly mapped into `vma`. */
export function mlock_vma_folio(store: PageStore, folio: number, vma: VmAreaStruct): void {
  if ((vma.vm_flags & (VM_LOCKED | VM_SPECIAL)) === VM_LOCKED) mlock_folio(store, folio);
}

/** munlock_vma_folio() (mm/internal.h): a folio unmapped from `vma`. */
export function munlock_vma_folio(store: PageStore, folio: number, vma: VmAreaStruct): void {
  if (vma.vm_flags & VM_LOCKED) munlock_folio(store, folio);
}

/**
 * mlock_vma_pages_range(): pages [start, end) of `vma` get `newflags`; every small folio mapped
 * there is mlocked or munlocked accordingly (mlock_pte_range()).
 */
function mlock_vma_pages_range(vma: VmAreaStruct, start: number, end: number, newflags: number): void {
  const store = vma.vm_mm.kernel.store;
  vma.vm_flags = newflags;
  vma_set_page_prot(vma);
  const lock = (newflags & VM_LOCKED) !== 0;
  walk_pte_tables(vma.vm_mm.pgd, start, end, (t, _pmd, from, to) => {
    for (let i = from; i < to; i++) {
      const f = t.flags[i];
      if (!pte_present(f)) continue;
      const page = vm_normal_page(store, f, t.val[i]);
      if (page < 0) continue;
      const folio = page - store.head_offset[store.idx(page)];
      if (folio_test_large(store, folio)) continue;
      if (lock) mlock_folio(store, folio);
      else munlock_folio(store, folio);
    }
  });
  for (const [pmd, e] of vma.vm_mm.pgd.pmds) {
    const s = pmd * PTRS_PER_PTE;
    if (s < start || s >= end || !pte_present(e.flags) || e.flags & _PAGE_SPECIAL) continue;
    if (folio_nr_pages(store, e.val) !== PTRS_PER_PTE) continue;
    if (lock) mlock_folio(store, e.val);
    else munlock_folio(store, e.val);
  }
}

/** vma_supports_mlock(): not VM_SPECIAL, VM_DROPPABLE or hugetlb. */
function vma_supports_mlock(vma: VmAreaStruct): boolean {
  if (vma.vm_flags & VM_SPECIAL || vm_flags_test(vma.vm_flags, VM_DROPPABLE)) return false;
  return !is_vm_hugetlb_page(vma);
}

/**
 * mlock_fixup(): pages [start, end) of `vma` get `newflags` (VM_LOCKED bits changed), merging or
 * splitting the VMA. Returns the VMA now covering the range (or `vma` when nothing changed), or
 * -errno.
 */
function mlock_fixup(vma: VmAreaStruct, start: number, end: number, newflags: number): VmAreaStruct | number {
  const mm = vma.vm_mm;
  const oldflags = vma.vm_flags;
  if (newflags === oldflags || !vma_supports_mlock(vma)) return vma;
  const nv = vma_modify_flags(vma, start, end, newflags);
  if (typeof nv === 'number') return nv;
  let nr_pages = end - start;
  if (!(newflags & VM_LOCKED)) nr_pages = -nr_pages;
  else if (oldflags & VM_LOCKED) nr_pages = 0;
  mm.locked_vm += nr_pages;
  if (newflags & VM_LOCKED && oldflags & VM_LOCKED) {
    /* No work to do, and mlocking twice would be wrong */
    nv.vm_flags = newflags;
    vma_set_page_prot(nv);
  } else {
    mlock_vma_pages_range(nv, start, end, newflags);
  }
  return nv;
}

/**
 * apply_vma_lock_flags(): set the VM_LOCKED bits of pages [start, start + len) to `flags`.
 * -EINVAL if the range wraps, -ENOMEM if it does not start in a VMA or has a hole.
 */
function apply_vma_lock_flags(mm: MmStruct, start: number, len: number, flags: number): number {
  const end = start + len;
  if (len === 0) return 0;
  let vma = vma_lookup(mm, start);
  if (vma === undefined) return -Errno.ENOMEM;
  let nstart = start;
  for (;;) {
    const tmp = Math.min(vma.end_vpn, end);
    const newflags = vm_flags_or(vm_flags_andnot(vma.vm_flags, VM_LOCKED_MASK), flags);
    const r = mlock_fixup(vma, nstart, tmp, newflags);
    if (typeof r === 'number') return r;
    /* vma_iter_end(): past the VMA now covering the range (a merge may have extended it) */
    nstart = r.end_vpn;
    if (nstart >= end) return 0;
    vma = find_vma(mm, nstart);
    if (vma === undefined || vma.start_vpn !== nstart) return -Errno.ENOMEM;
  }
}

/** __mlock_posix_error_return(): POSIX wants ENOMEM for unmapped and EAGAIN for no memory. */
function __mlock_posix_error_return(retval: number): number {
  if (retval === -Errno.EFAULT) return -Errno.ENOMEM;
  if (retval === -Errno.ENOMEM) return -Errno.EAGAIN;
  return retval;
}

const PAGE_MASK_N = ~4095n;

/**
 * The byte range of mlock/munlock in pages: start rounded down, len + offset rounded up, in u64
 * arithmetic as the kernel's. Undefined when the range wraps past 2^64 (apply_vma_lock_flags's
 * -EINVAL).
 */
function lock_range(start: bigint, len: bigint): { start: number; len: number } | undefined {
  const off = start & 4095n;
  const l = BigInt.asUintN(64, BigInt.asUintN(64, len + off) + 4095n) & PAGE_MASK_N;
  const s = start & PAGE_MASK_N;
  if (BigInt.asUintN(64, s + l) < s) return undefined;
  return { start: Number(s >> 12n), len: Number(l >> 12n) };
}

/** do_mlock(): lock and populate. */
function do_mlock(mm: MmStruct, ustart: unknown, ulen: unknown, flags: number): number {
  const start = ulong_arg(ustart);
  const len = ulong_arg(ulen);
  if (start === undefined || len === undefined) return -Errno.EINVAL;
  const r = lock_range(start, len);
  if (r === undefined) return -Errno.EINVAL;
  const error = apply_vma_lock_flags(mm, r.start, r.len, flags);
  if (error) return error;
  const populated = __mm_populate(mm, r.start, r.len, false);
  if (populated) return __mlock_posix_error_return(populated);
  return 0;
}

/** SYSCALL_DEFINE2(mlock). */
export function sys_mlock(mm: MmStruct, start: unknown, len: unknown): number {
  mm.kernel.cost.charge('syscall_entry');
  return do_mlock(mm, start, len, VM_LOCKED);
}

/** SYSCALL_DEFINE3(mlock2): flags 0 or MLOCK_ONFAULT (lock pages as they fault in). */
export function sys_mlock2(mm: MmStruct, start: unknown, len: unknown, uflags: unknown): number {
  mm.kernel.cost.charge('syscall_entry');
  const flags = int_arg(uflags);
  if (flags === undefined || (flags & ~MLOCK_ONFAULT) !== 0) return -Errno.EINVAL;
  let vm_flags = VM_LOCKED;
  if (flags & MLOCK_ONFAULT) vm_flags |= VM_LOCKONFAULT;
  return do_mlock(mm, start, len, vm_flags);
}

/** SYSCALL_DEFINE2(munlock). */
export function sys_munlock(mm: MmStruct, ustart: unknown, ulen: unknown): number {
  mm.kernel.cost.charge('syscall_entry');
  const start = ulong_arg(ustart);
  const len = ulong_arg(ulen);
  if (start === undefined || len === undefined) return -Errno.EINVAL;
  const r = lock_range(start, len);
  if (r === undefined) return -Errno.EINVAL;
  return apply_vma_lock_flags(mm, r.start, r.len, 0);
}
