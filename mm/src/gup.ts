/**
 * Faulting in user pages from the kernel (mm/gup.c, Linux 6.18): __get_user_pages() and the
 * paths built on it that do not keep the pages: populate (MAP_POPULATE, mlock), and
 * MADV_POPULATE_(READ|WRITE). With a `pages` array it also takes references (FOLL_GET) or pins
 * (FOLL_PIN) on what it found, as get_user_pages() / pin_user_pages() do.
 *
 * The walk per page: follow the page tables (follow_page_mask()); if the entry is missing or
 * lacks the permission asked for, fault it in (faultin_page() -> handle_mm_fault()) and look
 * again. VMA checks (check_vma_flags()) fail with -EFAULT, or, for MADV_POPULATE, -EINVAL, and a
 * missing VMA is -EFAULT (-ENOMEM for MADV_POPULATE). Fault errors become errnos by
 * vm_fault_to_errno(): VM_FAULT_OOM -ENOMEM, VM_FAULT_HWPOISON -EHWPOISON with FOLL_HWPOISON
 * (else -EFAULT), VM_FAULT_SIGBUS/SIGSEGV -EFAULT. The result is the number of pages done, or
 * the error when none was.
 */
import { BUG, Errno } from '@cocosim/core';
import {
  FOLL_DUMP,
  FOLL_FORCE,
  FOLL_GET,
  FOLL_HWPOISON,
  FOLL_MADV_POPULATE,
  FOLL_NOFAULT,
  FOLL_PIN,
  FOLL_REMOTE,
  FOLL_TOUCH,
  FOLL_UNLOCKABLE,
  FOLL_WRITE,
  folio_mark_dirty,
  folio_test_anon,
  page_folio,
  try_grab_folio,
} from './folio.js';
import { is_huge_zero_pfn } from './huge_memory.js';
import { handle_mm_fault, vm_normal_page } from './memory.js';
import {
  FAULT_FLAG_KILLABLE,
  FAULT_FLAG_ALLOW_RETRY,
  FAULT_FLAG_REMOTE,
  FAULT_FLAG_UNSHARE,
  FAULT_FLAG_WRITE,
  VM_FAULT_ERROR,
  VM_FAULT_HWPOISON,
  VM_FAULT_HWPOISON_LARGE,
  VM_FAULT_OOM,
  VM_FAULT_SIGBUS,
  VM_FAULT_SIGSEGV,
  VM_IO,
  VM_LOCKONFAULT,
  VM_MAYREAD,
  VM_MAYWRITE,
  VM_PFNMAP,
  VM_READ,
  VM_SHADOW_STACK,
  VM_SHARED,
  VM_WRITE,
  is_cow_mapping,
  is_vm_hugetlb_page,
  vm_flags_test,
  vma_is_accessible,
  type MmStruct,
  type VmAreaStruct,
} from './mm_types.js';
import { folio_test_dirty } from './page-flags.js';
import {
  PAGES_PER_PUD,
  PTRS_PER_PTE,
  pmd_index_of,
  pte_dirty,
  pte_index,
  pte_present,
  pte_protnone,
  pte_write,
  pud_index_of,
} from './pgtable.js';
import { PageAnonExclusive } from './rmap.js';
import { find_vma, find_vma_intersection, vma_lookup } from './vma.js';

/** vm_fault_to_errno(): the errno of a failed fault, 0 if it did not fail. */
export function vm_fault_to_errno(vm_fault: number, foll_flags: number): number {
  if (vm_fault & VM_FAULT_OOM) return -Errno.ENOMEM;
  if (vm_fault & (VM_FAULT_HWPOISON | VM_FAULT_HWPOISON_LARGE)) return foll_flags & FOLL_HWPOISON ? -Errno.EHWPOISON : -Errno.EFAULT;
  if (vm_fault & (VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV)) return -Errno.EFAULT;
  return 0;
}

/** check_vma_flags(): may GUP with these flags touch this VMA? 0 or -EFAULT. */
export function check_vma_flags(vma: VmAreaStruct, gup_flags: number): number {
  const vm_flags = vma.vm_flags;
  const write = (gup_flags & FOLL_WRITE) !== 0;
  if (vm_flags & (VM_IO | VM_PFNMAP)) return -Errno.EFAULT;
  if (write) {
    if (!(vm_flags & VM_WRITE) || vm_flags_test(vm_flags, VM_SHADOW_STACK)) {
      if (!(gup_flags & FOLL_FORCE)) return -Errno.EFAULT;
      /* hugetlb does not support FOLL_FORCE|FOLL_WRITE. */
      if (is_vm_hugetlb_page(vma)) return -Errno.EFAULT;
      /* Anon pages in shared mappings are surprising: just reject it. */
      if (!is_cow_mapping(vm_flags)) return -Errno.EFAULT;
    }
  } else if (!(vm_flags & VM_READ)) {
    if (!(gup_flags & FOLL_FORCE)) return -Errno.EFAULT;
    if (!(vm_flags & VM_MAYREAD)) return -Errno.EFAULT;
  }
  return 0;
}

/**
 * can_follow_write_pte(): a read-only PTE can satisfy FOLL_WRITE only under FOLL_FORCE, for an
 * exclusive anon page already COWed in a private mapping that is not writable.
 */
function can_follow_write(flags: number, page: number, vma: VmAreaStruct, gup_flags: number): boolean {
  if (pte_write(flags)) return true;
  if (!(gup_flags & FOLL_FORCE)) return false;
  if (!(vma.vm_flags & VM_MAYWRITE) || vma.vm_flags & VM_WRITE) return false;
  if (page < 0) return false;
  const store = vma.vm_mm.kernel.store;
  if (!folio_test_anon(store, page_folio(store, page)) || !PageAnonExclusive(store, page)) return false;
  return pte_dirty(flags);
}

/** The result of follow_page_mask(): a page, "fault it in", or an errno. */
const FOLLOW_FAULT = -1;
const FOLLOW_EXISTS_NO_PAGE = -2;
const FOLLOW_UNSHARE = -3;

/**
 * follow_page_mask() for one page: the pfn mapped at `vpn` if the entry allows the access, or
 * FOLLOW_FAULT (fault it in), FOLLOW_EXISTS_NO_PAGE (a special mapping: -EEXIST), FOLLOW_UNSHARE
 * (a pin of a shared anon page: -EMLINK).
 */
function follow_page(vma: VmAreaStruct, vpn: number, gup_flags: number): number {
  const mm = vma.vm_mm;
  const pt = mm.pgd;
  const store = mm.kernel.store;
  let flags: number;
  let pfn: number;
  const pud = pt.puds.size !== 0 ? pt.puds.get(pud_index_of(vpn)) : undefined;
  const huge = pud ?? (pt.pmds.size !== 0 ? pt.pmds.get(pmd_index_of(vpn)) : undefined);
  if (huge !== undefined) {
    flags = huge.flags;
    pfn = huge.val + (vpn % (pud !== undefined ? PAGES_PER_PUD : PTRS_PER_PTE));
    if (!pte_present(flags)) return FOLLOW_FAULT;
  } else {
    const t = pt.ptes.get(pmd_index_of(vpn));
    if (t === undefined) return FOLLOW_FAULT;
    const i = pte_index(vpn);
    flags = t.flags[i];
    if (!pte_present(flags)) return FOLLOW_FAULT;
    pfn = t.val[i];
  }
  if (pte_protnone(flags)) return FOLLOW_FAULT;
  let page = vm_normal_page(store, flags, pfn);
  if (gup_flags & FOLL_WRITE && !can_follow_write(flags, page, vma, gup_flags)) return FOLLOW_FAULT;
  if (page < 0) {
    if (gup_flags & FOLL_DUMP) return -Errno.EFAULT;
    if (pfn === store.zero_pfn || is_huge_zero_pfn(mm.kernel, pfn)) page = pfn;
    else return gup_flags & (FOLL_GET | FOLL_PIN) ? -Errno.EFAULT : FOLLOW_EXISTS_NO_PAGE;
  }
  /* gup_must_unshare(): a pin needs an exclusive anon page */
  if (!pte_write(flags) && gup_flags & FOLL_PIN && page !== store.zero_pfn) {
    const folio = page_folio(store, page);
    if (folio_test_anon(store, folio) && !PageAnonExclusive(store, page)) return FOLLOW_UNSHARE;
  }
  if (gup_flags & FOLL_TOUCH && gup_flags & FOLL_WRITE && page !== store.zero_pfn) {
    const folio = page_folio(store, page);
    if (!pte_dirty(flags) && !folio_test_dirty(store, folio)) folio_mark_dirty(store, folio);
  }
  return page;
}

/** faultin_page(): fault the page in for GUP. 0, or -errno. */
function faultin_page(vma: VmAreaStruct, vpn: number, gup_flags: number, unshare: boolean): number {
  if (gup_flags & FOLL_NOFAULT) return -Errno.EFAULT;
  let fault_flags = 0;
  if (gup_flags & FOLL_WRITE) fault_flags |= FAULT_FLAG_WRITE;
  if (gup_flags & FOLL_REMOTE) fault_flags |= FAULT_FLAG_REMOTE;
  if (gup_flags & FOLL_UNLOCKABLE) fault_flags |= FAULT_FLAG_ALLOW_RETRY | FAULT_FLAG_KILLABLE;
  if (unshare) fault_flags |= FAULT_FLAG_UNSHARE;
  const ret = handle_mm_fault(vma, vpn, fault_flags);
  if (ret & VM_FAULT_ERROR) {
    const err = vm_fault_to_errno(ret, gup_flags);
    if (err) return err;
    BUG(`faultin_page: fault error 0x${ret.toString(16)} without an errno`);
  }
  return 0;
}

/** gup_vma_lookup(): the VMA containing `vpn` (GUP never expands stacks). */
function gup_vma_lookup(mm: MmStruct, vpn: number): VmAreaStruct | undefined {
  const vma = find_vma(mm, vpn);
  return vma !== undefined && vpn >= vma.start_vpn ? vma : undefined;
}

/**
 * __get_user_pages(): fault in and look up `nr_pages` pages from page `start`. With `pages`,
 * each page found is pushed and a reference (FOLL_GET) or pin (FOLL_PIN) is taken on its folio.
 * @returns pages done, or -errno if none
 */
export function __get_user_pages(mm: MmStruct, start: number, nr_pages: number, gup_flags: number, pages?: number[]): number {
  if (nr_pages === 0) return 0;
  let i = 0;
  let ret = 0;
  let vma: VmAreaStruct | undefined;
  const store = mm.kernel.store;
  outer: while (nr_pages > 0) {
    if (vma === undefined || start >= vma.end_vpn) {
      if (gup_flags & FOLL_MADV_POPULATE) {
        vma = vma_lookup(mm, start);
        if (vma === undefined) {
          ret = -Errno.ENOMEM;
          break;
        }
        if (check_vma_flags(vma, gup_flags)) {
          ret = -Errno.EINVAL;
          break;
        }
      } else {
        vma = gup_vma_lookup(mm, start);
        if (vma === undefined) {
          ret = -Errno.EFAULT;
          break;
        }
        ret = check_vma_flags(vma, gup_flags);
        if (ret) break;
      }
    }
    for (let tries = 0; ; tries++) {
      const page = follow_page(vma, start, gup_flags);
      if (page === FOLLOW_FAULT || page === FOLLOW_UNSHARE) {
        /* The kernel would retry forever: a fault that maps nothing usable is a simulator bug. */
        if (tries > 4) BUG(`GUP at vpn ${start}: the fault handler keeps leaving the page unusable`);
        ret = faultin_page(vma, start, gup_flags, page === FOLLOW_UNSHARE);
        if (ret === 0) continue;
        break outer;
      }
      if (page === FOLLOW_EXISTS_NO_PAGE) {
        if (pages !== undefined) {
          ret = -Errno.EEXIST;
          break outer;
        }
      } else if (page < 0) {
        ret = page;
        break outer;
      } else if (pages !== undefined) {
        const err = try_grab_folio(store, page_folio(store, page), 1, gup_flags);
        if (err) {
          ret = err;
          break outer;
        }
        pages.push(page);
      }
      break;
    }
    i++;
    start++;
    nr_pages--;
  }
  return i !== 0 ? i : ret;
}

/**
 * get_user_pages_fast(): the pages [start, start + nr_pages) with a reference each (FOLL_GET),
 * faulting them in as needed.
 */
export function get_user_pages_fast(mm: MmStruct, start: number, nr_pages: number, gup_flags: number, pages: number[]): number {
  return __get_user_pages(mm, start, nr_pages, gup_flags | FOLL_GET | FOLL_TOUCH, pages);
}

/**
 * populate_vma_page_range(): fault in pages [start, end) of `vma` as mlock and MAP_POPULATE
 * want: written (breaking COW) for private writable mappings, read (FOLL_FORCE) otherwise;
 * VM_LOCKONFAULT VMAs are left alone, PROT_NONE ones refused.
 * @returns pages done, or -errno
 */
export function populate_vma_page_range(vma: VmAreaStruct, start: number, end: number): number {
  const nr_pages = end - start;
  if (vma.vm_flags & VM_LOCKONFAULT) return nr_pages;
  /* ... similarly, we've never faulted in PROT_NONE pages */
  if (!vma_is_accessible(vma)) return -Errno.EFAULT;
  let gup_flags = FOLL_TOUCH | FOLL_UNLOCKABLE;
  if ((vma.vm_flags & (VM_WRITE | VM_SHARED)) === VM_WRITE) gup_flags |= FOLL_WRITE;
  else gup_flags |= FOLL_FORCE;
  return __get_user_pages(vma.vm_mm, start, nr_pages, gup_flags);
}

/**
 * __mm_populate(): populate every VMA overlapping pages [start, start + len) but VM_IO/VM_PFNMAP
 * ones. With ignore_errors (MAP_POPULATE) failures are skipped to the next VMA; otherwise the
 * first one is returned.
 */
export function __mm_populate(mm: MmStruct, start: number, len: number, ignore_errors: boolean): number {
  const end = start + len;
  let vma: VmAreaStruct | undefined;
  let ret = 0;
  for (let nstart = start, nend = start; nstart < end; nstart = nend) {
    if (vma === undefined) vma = find_vma_intersection(mm, nstart, end);
    else if (nstart >= vma.end_vpn) vma = find_vma_intersection(mm, vma.end_vpn, end);
    if (vma === undefined) break;
    nend = Math.min(end, vma.end_vpn);
    if (vma.vm_flags & (VM_IO | VM_PFNMAP)) continue;
    if (nstart < vma.start_vpn) nstart = vma.start_vpn;
    ret = populate_vma_page_range(vma, nstart, nend);
    if (ret < 0) {
      if (ignore_errors) {
        ret = 0;
        continue;
      }
      break;
    }
    nend = nstart + ret;
    ret = 0;
  }
  return ret;
}

/** mm_populate(): MAP_POPULATE and VM_LOCKED mmap, errors ignored. */
export function mm_populate(mm: MmStruct, start: number, len: number): void {
  __mm_populate(mm, start, len, true);
}

/**
 * faultin_page_range(): MADV_POPULATE_(READ|WRITE): fault in pages [start, end) with the
 * access permissions of the mapping (no FOLL_FORCE), -EHWPOISON for poisoned pages.
 * @returns pages done, or -errno
 */
export function faultin_page_range(mm: MmStruct, start: number, end: number, write: boolean): number {
  let gup_flags = FOLL_TOUCH | FOLL_HWPOISON | FOLL_UNLOCKABLE | FOLL_MADV_POPULATE;
  if (write) gup_flags |= FOLL_WRITE;
  return __get_user_pages(mm, start, end - start, gup_flags);
}
