/**
 * mprotect(2) (mm/mprotect.c, Linux 6.18): change the protection of a range of VMAs, splitting
 * and merging them, and rewrite their PTEs (change_protection()).
 *
 * Order of checks (verified on Linux 6.18): PROT_GROWSDOWN|PROT_GROWSUP together -> EINVAL;
 * start not page aligned -> EINVAL; len 0 -> 0 (even unmapped); start + PAGE_ALIGN(len) wraps or
 * is start -> ENOMEM; prot bits other than READ, WRITE, EXEC, SEM -> EINVAL; no VMA in the range
 * or a hole at its start -> ENOMEM; then per VMA: a protection the VMA may not have (a write
 * without VM_MAYWRITE: a read-only shared mapping of a read-only file, a write-sealed memfd) ->
 * EACCES; a hole before the next VMA -> ENOMEM.
 *
 * Like the kernel, mprotect is not atomic across VMAs: the VMAs before the one that fails keep
 * their new protection (checked on 6.18: mprotect(RW) over [mapping][hole] fails with ENOMEM and
 * the mapping is writable afterwards).
 */
import { Errno, Hva } from '@cocosim/core';
import { change_huge_pmd, split_huge_pmd } from './huge_memory.js';
import { vm_normal_page } from './memory.js';
import { PROT_EXEC, PROT_GROWSDOWN, PROT_GROWSUP, PROT_READ, PROT_SEM, PROT_WRITE, calc_vm_prot_bits, ulong_arg } from './mman.js';
import {
  VM_ACCESS_FLAGS,
  VM_PKEY_BIT0,
  VM_PKEY_BIT1,
  VM_PKEY_BIT2,
  VM_PKEY_BIT3,
  VM_ACCOUNT,
  VM_GROWSDOWN,
  VM_HUGETLB,
  VM_LOCKED,
  VM_NORESERVE,
  VM_SHARED,
  VM_WRITE,
  vm_flags_andnot,
  vm_flags_or,
  vma_is_anonymous,
  type MmStruct,
  type VmAreaStruct,
} from './mm_types.js';
import { mmu_notifier_invalidate_range_end, mmu_notifier_invalidate_range_start } from './mmu_notifier.js';
import { populate_vma_page_range } from './gup.js';
import {
  PTRS_PER_PTE,
  keys_in_range,
  pte_dirty,
  pte_mkwrite,
  pte_modify,
  pte_needs_flush,
  pte_present,
  pte_protnone,
  pte_write,
  walk_pte_tables,
} from './pgtable.js';
import { arch_override_mprotect_pkey } from './pkeys.js';
import { PageAnonExclusive } from './rmap.js';
import { flush_tlb_mm_range } from './tlb.js';
import { __vm_enough_memory, vm_unacct_memory } from './util.js';
import { find_vma, find_vma_intersection, vm_stat_account, vma_modify_flags, vma_set_page_prot, vma_wants_writenotify } from './vma.js';
import { call_mm_hook, mm_hooks_prot_flags } from './mm_hooks.js';

const PAGE_SIZE_N = 4096n;

/**
 * can_change_pte_writable(): may a PTE of this writable VMA become writable without a fault? In
 * a private mapping only for an exclusive anon page (what the write fault would do); in a shared
 * one only if already dirty (the file system was notified).
 */
function can_change_pte_writable(vma: VmAreaStruct, flags: number, pfn: number): boolean {
  if (!(vma.vm_flags & VM_WRITE)) return false;
  if (pte_protnone(flags)) return false;
  const store = vma.vm_mm.kernel.store;
  if (!(vma.vm_flags & VM_SHARED)) {
    const page = vm_normal_page(store, flags, pfn);
    if (page < 0) return false;
    const folio = page - store.head_offset[store.idx(page)];
    return (store.mapping[store.idx(folio)] & 1) !== 0 && PageAnonExclusive(store, page);
  }
  return pte_dirty(flags);
}

/** vma_wants_manual_pte_write_upgrade(). */
function vma_wants_manual_pte_write_upgrade(vma: VmAreaStruct): boolean {
  if (vma.vm_flags & VM_SHARED) return vma_wants_writenotify(vma);
  return (vma.vm_flags & VM_WRITE) !== 0;
}

/**
 * change_protection(): give the present entries of pages [start, end) of `vma` its new
 * vm_page_prot, making them writable where no fault is needed. Returns the pages changed.
 */
export function change_protection(vma: VmAreaStruct, start: number, end: number, try_writable: boolean): number {
  const mm = vma.vm_mm;
  const newprot = vma.vm_page_prot;
  let pages = 0;
  let flush_start = Infinity;
  let flush_end = -Infinity;
  mmu_notifier_invalidate_range_start(mm, start, end);
  if (mm.pgd.pmds.size !== 0) {
    for (const pmd of keys_in_range(mm.pgd.pmds, Math.floor(start / PTRS_PER_PTE), Math.floor((end - 1) / PTRS_PER_PTE))) {
      const s = pmd * PTRS_PER_PTE;
      if (s < start || s + PTRS_PER_PTE > end) {
        split_huge_pmd(vma, pmd);
        continue;
      }
      const e = mm.pgd.pmds.get(pmd)!;
      const old = e.flags;
      const n = change_huge_pmd(vma, pmd, newprot, try_writable && !pte_write(pte_modify(old, newprot)) && can_change_pte_writable(vma, old, e.val));
      if (n !== 0) {
        pages += n;
        if (pte_needs_flush(old, e.flags)) {
          flush_start = Math.min(flush_start, s);
          flush_end = Math.max(flush_end, s + PTRS_PER_PTE);
        }
      }
    }
  }
  walk_pte_tables(mm.pgd, start, end, (t, pmd, from, to) => {
    const base = pmd * PTRS_PER_PTE;
    for (let i = from; i < to; i++) {
      const old = t.flags[i];
      if (!pte_present(old)) continue;
      let f = pte_modify(old, newprot);
      if (try_writable && !pte_write(f) && can_change_pte_writable(vma, f, t.val[i])) f = pte_mkwrite(f);
      if (f === old) continue;
      t.flags[i] = f;
      pages++;
      if (pte_needs_flush(old, f)) {
        if (base + i < flush_start) flush_start = base + i;
        flush_end = base + i + 1;
      }
    }
  });
  if (flush_end > flush_start) flush_tlb_mm_range(mm, flush_start, flush_end);
  mmu_notifier_invalidate_range_end(mm, start, end);
  return pages;
}

/**
 * mprotect_fixup(): pages [start, end) of `vma` get `newflags`: overcommit for private mappings
 * becoming writable, split/merge, new vm_page_prot, PTEs rewritten. Returns the VMA now covering
 * the range, or -errno.
 */
export function mprotect_fixup(vma: VmAreaStruct, start: number, end: number, newflags: number): VmAreaStruct | number {
  const mm = vma.vm_mm;
  const kernel = mm.kernel;
  const oldflags = vma.vm_flags;
  const nrpages = end - start;
  let charged = 0;
  if (newflags === oldflags) return vma;
  /*
   * If we make a private mapping writable we increase our commit; but (without finer
   * accounting) cannot reduce our commit if we make it unwritable again except in the anonymous
   * case where no anon_vma has yet to be assigned.
   */
  if (newflags & VM_WRITE) {
    if (!(oldflags & (VM_ACCOUNT | VM_WRITE | VM_HUGETLB | VM_SHARED | VM_NORESERVE))) {
      charged = nrpages;
      if (__vm_enough_memory(kernel, mm, charged)) return -Errno.ENOMEM;
      newflags = vm_flags_or(newflags, VM_ACCOUNT);
    }
  } else if (oldflags & VM_ACCOUNT && vma_is_anonymous(vma) && vma.anon_vma === null) {
    newflags = vm_flags_andnot(newflags, VM_ACCOUNT);
  }
  const nv = vma_modify_flags(vma, start, end, newflags);
  if (typeof nv === 'number') {
    if (charged) vm_unacct_memory(kernel, charged);
    return nv;
  }
  nv.vm_flags = newflags;
  const try_writable = vma_wants_manual_pte_write_upgrade(nv);
  vma_set_page_prot(nv);
  change_protection(nv, start, end, try_writable);
  if (oldflags & VM_ACCOUNT && !(newflags & VM_ACCOUNT)) vm_unacct_memory(kernel, nrpages);
  /* Private VM_LOCKED VMA becoming writable: trigger COW to avoid major fault on access. */
  if ((oldflags & (VM_WRITE | VM_SHARED | VM_LOCKED)) === VM_LOCKED && newflags & VM_WRITE) {
    populate_vma_page_range(nv, start, end);
  }
  vm_stat_account(mm, oldflags, -nrpages);
  vm_stat_account(mm, newflags, nrpages);
  return nv;
}

/** do_mprotect_pkey()'s mask_off_old_flags: the access bits and the protection key are the new ones (VM_FLAGS_CLEAR). */
const MASK_OFF_OLD_FLAGS = VM_ACCESS_FLAGS + VM_PKEY_BIT0 + VM_PKEY_BIT1 + VM_PKEY_BIT2 + VM_PKEY_BIT3;

/** do_mprotect_pkey() for mprotect(2) (pkey -1: the key is arch_override_mprotect_pkey()'s choice). */
export function do_mprotect_pkey(mm: MmStruct, ustart: unknown, ulen: unknown, uprot: unknown): number {
  const start = ulong_arg(ustart);
  const len = ulong_arg(ulen);
  let prot = ulong_arg(uprot);
  if (start === undefined || len === undefined || prot === undefined) return -Errno.EINVAL;
  const GROWS = BigInt(PROT_GROWSDOWN | PROT_GROWSUP);
  const grows = prot & GROWS;
  prot &= ~GROWS;
  /* can't be both */
  if (grows === GROWS) return -Errno.EINVAL;
  if (start % PAGE_SIZE_N !== 0n) return -Errno.EINVAL;
  if (len === 0n) return 0;
  const alen = BigInt.asUintN(64, len + PAGE_SIZE_N - 1n) & ~(PAGE_SIZE_N - 1n);
  const endb = BigInt.asUintN(64, start + alen);
  if (endb <= start) return -Errno.ENOMEM;
  /* arch_validate_prot() */
  if (prot & ~BigInt(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM | mm_hooks_prot_flags(mm.kernel))) return -Errno.EINVAL;
  const protn = Number(prot);
  let s = Number(start / PAGE_SIZE_N);
  const end = Number(endb / PAGE_SIZE_N);
  let vma = find_vma_intersection(mm, s, end);
  if (vma === undefined) return -Errno.ENOMEM;
  if (grows & BigInt(PROT_GROWSDOWN)) {
    if (vma.start_vpn >= end) return -Errno.ENOMEM;
    s = vma.start_vpn;
    if (!(vma.vm_flags & VM_GROWSDOWN)) return -Errno.EINVAL;
  } else {
    if (vma.start_vpn > s) return -Errno.ENOMEM;
    /* x86-64 has no VM_GROWSUP: PROT_GROWSUP always fails. */
    if (grows & BigInt(PROT_GROWSUP)) return -Errno.EINVAL;
  }
  let nstart = s;
  let tmp = vma.start_vpn;
  let error = 0;
  for (;;) {
    if (vma.start_vpn !== tmp) {
      error = -Errno.ENOMEM;
      break;
    }
    /* A design's PROT_* bits become its VM_* flags (mm_hooks.ts mprotect_prot). */
    const design = call_mm_hook(mm.kernel, 'mprotect_prot', vma, protn);
    if (design < 0) {
      error = design;
      break;
    }
    const new_vma_pkey = arch_override_mprotect_pkey(vma, protn, -1);
    const newflags = vm_flags_or(vm_flags_or(calc_vm_prot_bits(protn, new_vma_pkey), design), vm_flags_andnot(vma.vm_flags, MASK_OFF_OLD_FLAGS));
    /* newflags >> 4 shift VM_MAY% in place of VM_% */
    if ((newflags & ~(newflags >>> 4)) & VM_ACCESS_FLAGS) {
      error = -Errno.EACCES;
      break;
    }
    tmp = Math.min(vma.end_vpn, end);
    /* security_file_mprotect()'s place */
    error = call_mm_hook(mm.kernel, 'mprotect_fixup', vma, nstart, tmp, newflags);
    if (error) break;
    const ops = vma.vm_ops;
    if (ops !== null && ops.mprotect !== undefined) {
      error = ops.mprotect(vma, Hva(BigInt(nstart) * PAGE_SIZE_N), Hva(BigInt(tmp) * PAGE_SIZE_N), newflags);
      if (error) break;
    }
    const r = mprotect_fixup(vma, nstart, tmp, newflags);
    if (typeof r === 'number') {
      error = r;
      break;
    }
    /* vma_iter_end(): past the VMA now covering the range (a merge may have extended it) */
    tmp = r.end_vpn;
    nstart = tmp;
    if (nstart >= end) break;
    const next = find_vma(mm, nstart);
    if (next === undefined || next.start_vpn >= end) break;
    vma = next;
  }
  if (!error && tmp < end) error = -Errno.ENOMEM;
  return error;
}

/** SYSCALL_DEFINE3(mprotect). */
export function sys_mprotect(mm: MmStruct, start: unknown, len: unknown, prot: unknown): number {
  mm.kernel.cost.charge('syscall_entry');
  return do_mprotect_pkey(mm, start, len, prot);
}
