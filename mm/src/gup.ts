/**
 * Getting and pinning user pages from the kernel (mm/gup.c, Linux 6.18).
 *
 * The interface: get_user_pages*() take a reference on each page (FOLL_GET, released with
 * put_page()), pin_user_pages*() a pin (FOLL_PIN, released with unpin_user_page*()): on an
 * order-0 folio a pin adds GUP_PIN_COUNTING_BIAS to the refcount, on a large folio 1 to the
 * refcount and 1 to _pincount (folio.ts). The _remote variants work on another mm
 * (FOLL_REMOTE), the _fast ones first try the lockless walk of the page tables (gup_fast(): only
 * entries that already allow the access, no faults) and fall back to the slow path for the rest.
 * `start` is a page number (address >> PAGE_SHIFT), as everywhere in the simulator's mm.
 *
 * Arguments are checked by is_valid_gup_args(): internal flags from outside, FOLL_GET with
 * FOLL_PIN, FOLL_LONGTERM without FOLL_PIN, no `pages` array for GET/PIN, LONGTERM with PCI_P2PDMA
 * are a WARN_ON_ONCE (a kernel bug in the caller, as in the kernel) and fail with -EINVAL, or 0
 * for pin_user_pages(), pin_user_pages_remote() and pin_user_pages_unlocked(), which return 0
 * there.
 *
 * The slow path (__get_user_pages()) per page: the VMA (none: -EFAULT) and check_vma_flags()
 * (VM_IO/VM_PFNMAP, access without FOLL_FORCE: -EFAULT; FOLL_FORCE writes only COW private
 * mappings, which get an anonymous copy as ptrace's); then follow_page_mask() and, when the entry
 * is missing or does not allow the access, a fault (faultin_page() -> handle_mm_fault(), errors
 * through vm_fault_to_errno(): -ENOMEM, -EHWPOISON with FOLL_HWPOISON else -EFAULT). A pin of a
 * shared anonymous page first unshares it (FAULT_FLAG_UNSHARE). The result is the number of pages
 * done, or the error when none was.
 *
 * FOLL_LONGTERM (__gup_longterm_locked()) pins with PF_MEMALLOC_PIN set, so that the pages it
 * faults in avoid ZONE_MOVABLE, and then checks what it pinned: a folio that may not stay pinned
 * (folio_is_longterm_pinnable(): ZONE_MOVABLE; the simulator has no CMA, fs-dax nor device
 * memory) makes it drop every pin, migrate those folios out (MR_LONGTERM_PIN) and start over; a
 * failed migration ends it with -ENOMEM.
 *
 * Costs: gup_pin_per_page per page got or pinned, gup_unpin_per_page per page released. The
 * kernel has no GUP tracepoints.
 */
import { BUG, Errno } from '@cocosim/core';
import { folio_mark_accessed, lookupMapping } from './filemap.js';
import {
  FOLL_ANON,
  FOLL_DUMP,
  FOLL_FAST_ONLY,
  FOLL_FORCE,
  FOLL_GET,
  FOLL_HONOR_NUMA_FAULT,
  FOLL_HWPOISON,
  FOLL_INTERRUPTIBLE,
  FOLL_LONGTERM,
  FOLL_MADV_POPULATE,
  FOLL_NOFAULT,
  FOLL_PCI_P2PDMA,
  FOLL_PIN,
  FOLL_REMOTE,
  FOLL_SPLIT_PMD,
  FOLL_TOUCH,
  FOLL_TRIED,
  FOLL_UNLOCKABLE,
  FOLL_WRITE,
  folio_is_zone_movable,
  folio_lock,
  folio_mapping,
  folio_mark_dirty,
  folio_test_anon,
  folio_unlock,
  gup_put_folio,
  is_zero_folio,
  page_folio,
  try_grab_folio,
  unpin_folio,
  unpin_user_pages,
  type Folio,
} from './folio.js';
import { GFP_USER, __GFP_NOWARN } from './gfp.js';
import { is_huge_zero_pfn, split_huge_pmd } from './huge_memory.js';
import type { Kernel } from './kernel.js';
import { handle_mm_fault, vm_normal_page } from './memory.js';
import {
  MR_LONGTERM_PIN,
  MIGRATE_SYNC,
  alloc_migration_target,
  folio_isolate_hugetlb,
  migrate_lru_ops,
  migrate_pages,
  putback_movable_pages,
} from './migrate.js';
import {
  FAULT_FLAG_KILLABLE,
  FAULT_FLAG_ALLOW_RETRY,
  FAULT_FLAG_INTERRUPTIBLE,
  FAULT_FLAG_REMOTE,
  FAULT_FLAG_TRIED,
  FAULT_FLAG_UNSHARE,
  FAULT_FLAG_WRITE,
  TASK_SIZE_MAX,
  VM_FAULT_ERROR,
  VM_FAULT_HWPOISON,
  VM_FAULT_HWPOISON_LARGE,
  VM_FAULT_OOM,
  VM_FAULT_SIGBUS,
  VM_FAULT_SIGSEGV,
  VM_IO,
  VM_LOCKONFAULT,
  VM_MAYREAD,
  VM_MAYSHARE,
  VM_MAYWRITE,
  VM_PFNMAP,
  VM_READ,
  VM_SHADOW_STACK,
  VM_SHARED,
  VM_SOFTDIRTY,
  VM_WRITE,
  is_cow_mapping,
  is_vm_hugetlb_page,
  vm_flags_test,
  vma_is_accessible,
  vma_is_anonymous,
  type MmStruct,
  type VmAreaStruct,
} from './mm_types.js';
import { NUMA_NO_NODE, type PageStore } from './page_store.js';
import { PageHead, PageHuge, folio_set_referenced, folio_test_dirty, folio_test_hugetlb, folio_test_large, folio_test_slab } from './page-flags.js';
import {
  PAGES_PER_PUD,
  PTRS_PER_PTE,
  _PAGE_PSE,
  pmd_index_of,
  pte_alloc,
  pte_dirty,
  pte_index,
  pte_mkdirty,
  pte_mkyoung,
  pte_none,
  pte_present,
  pte_pkru_allows,
  pte_protnone,
  pte_special,
  pte_user_readable,
  pte_user_writable,
  pte_write,
  pud_index_of,
  type HugeEntry,
} from './pgtable.js';
import { arch_vma_access_permitted } from './pkeys.js';
import { PageAnonExclusive } from './rmap.js';
import { shmem_mapping } from './shmem.js';
import { find_vma, find_vma_intersection, vma_lookup } from './vma.js';
import { MM_HOOK_FOLLOW, MM_HOOK_FOLLOW_WRITE, call_mm_hook, mm_hook_present, mm_hooks_gup_check } from './mm_hooks.js';
import { IS_ERR, PTR_ERR, type PgOff } from '@cocosim/core';
import type { File } from './fs.js';
import { folio_nr_pages, folio_put } from './folio.js';
import { huge_page_order, huge_page_shift } from './hugetlb.js';
import { HUGETLBFS_I, hstate_file, is_file_hugepages } from './hugetlbfs.js';
import { memfd_alloc_folio } from './memfd.js';
import { SHMEM_I, shmem_file } from './shmem.js';

/** INTERNAL_GUP_FLAGS (mm/internal.h): flags only mm/gup.c itself may set. */
export const INTERNAL_GUP_FLAGS = FOLL_TOUCH | FOLL_TRIED | FOLL_REMOTE | FOLL_PIN | FOLL_FAST_ONLY | FOLL_UNLOCKABLE | FOLL_MADV_POPULATE;

/** The flags gup_fast_fallback() accepts. */
const GUP_FAST_FLAGS =
  FOLL_WRITE | FOLL_LONGTERM | FOLL_FORCE | FOLL_PIN | FOLL_GET | FOLL_FAST_ONLY | FOLL_NOFAULT | FOLL_PCI_P2PDMA | FOLL_HONOR_NUMA_FAULT;

/** pte_access_permitted() (x86): present, user, writable for a write, and a key PKRU allows. */
function pte_access_permitted(flags: number, write: boolean): boolean {
  return (write ? pte_user_writable(flags) : pte_user_readable(flags)) && pte_pkru_allows(flags, write);
}

/** An `int *locked` argument. */
export interface GupLocked {
  locked: number;
}

/** vm_fault_to_errno(): the errno of a failed fault, 0 if it did not fail. */
export function vm_fault_to_errno(vm_fault: number, foll_flags: number): number {
  if (vm_fault & VM_FAULT_OOM) return -Errno.ENOMEM;
  if (vm_fault & (VM_FAULT_HWPOISON | VM_FAULT_HWPOISON_LARGE)) return foll_flags & FOLL_HWPOISON ? -Errno.EHWPOISON : -Errno.EFAULT;
  if (vm_fault & (VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV)) return -Errno.EFAULT;
  return 0;
}

/* Which folios may stay pinned, and where */

/**
 * folio_is_longterm_pinnable() (include/linux/mm.h): a FOLL_LONGTERM pin may stay on the folio.
 * Not in ZONE_MOVABLE (the zone memory hot-unplug must be able to empty); the zero page always.
 * The simulator has no CMA (MIGRATE_CMA), fs-dax or device-coherent memory.
 */
export function folio_is_longterm_pinnable(store: PageStore, folio: number): boolean {
  /* The zero page can be "pinned" but gets special handling. */
  if (is_zero_folio(store, folio)) return true;
  /* Otherwise, non-movable zone folios can be pinned. */
  return !folio_is_zone_movable(store, folio);
}

/**
 * vma_needs_dirty_tracking() (mm/mmap.c): a shared writable mapping whose file writes back
 * (vma_fs_can_writeback()) or with soft-dirty tracking on. cocosim's files (shmem, hugetlbfs,
 * guest_memfd) have no writeback, and new VMAs are VM_SOFTDIRTY (tracking off).
 */
function vma_needs_dirty_tracking(vma: VmAreaStruct): boolean {
  if ((vma.vm_flags & (VM_SHARED | VM_WRITE)) !== (VM_SHARED | VM_WRITE)) return false;
  return !(vma.vm_flags & VM_SOFTDIRTY);
}

/**
 * writable_file_mapping_allowed(): a long-term writable pin of a file page is refused where the
 * file system tracks dirtying (it would miss the device's writes).
 */
function writable_file_mapping_allowed(vma: VmAreaStruct, gup_flags: number): boolean {
  if ((gup_flags & (FOLL_PIN | FOLL_LONGTERM)) !== (FOLL_PIN | FOLL_LONGTERM)) return true;
  return !vma_needs_dirty_tracking(vma);
}

/** check_vma_flags(): may GUP with these flags touch this VMA? 0, -EFAULT or -EOPNOTSUPP. */
export function check_vma_flags(vma: VmAreaStruct, gup_flags: number): number {
  const vm_flags = vma.vm_flags;
  const write = (gup_flags & FOLL_WRITE) !== 0;
  const vma_anon = vma_is_anonymous(vma);
  if (vm_flags & (VM_IO | VM_PFNMAP)) return -Errno.EFAULT;
  if (gup_flags & FOLL_ANON && !vma_anon) return -Errno.EFAULT;
  /* FOLL_LONGTERM on fs-dax: no fs-dax in the simulator */
  if (gup_flags & FOLL_SPLIT_PMD && is_vm_hugetlb_page(vma)) return -Errno.EOPNOTSUPP;
  if (write) {
    if (!vma_anon && !writable_file_mapping_allowed(vma, gup_flags)) return -Errno.EFAULT;
    if (!(vm_flags & VM_WRITE) || vm_flags_test(vm_flags, VM_SHADOW_STACK)) {
      if (!(gup_flags & FOLL_FORCE)) return -Errno.EFAULT;
      /* hugetlb does not support FOLL_FORCE|FOLL_WRITE. */
      if (is_vm_hugetlb_page(vma)) return -Errno.EFAULT;
      /* Anon pages in shared mappings are surprising: just reject it. */
      if (!is_cow_mapping(vm_flags)) return -Errno.EFAULT;
    }
  } else if (!(vm_flags & VM_READ)) {
    if (!(gup_flags & FOLL_FORCE)) return -Errno.EFAULT;
    /* Is there actually any vma we can reach here which does not have VM_MAYREAD set? */
    if (!(vm_flags & VM_MAYREAD)) return -Errno.EFAULT;
  }
  /* gups are always data accesses, not instruction fetches; another mm's (FOLL_REMOTE) ignore PKRU */
  if (!arch_vma_access_permitted(vma, write, false, (gup_flags & FOLL_REMOTE) !== 0)) return -Errno.EFAULT;
  return 0;
}

/**
 * can_follow_write_common(): FOLL_FORCE lets a write go to a read-only private mapping once COW
 * gave it an exclusive anonymous page (ptrace poking a breakpoint into text).
 */
function can_follow_write_common(page: number, vma: VmAreaStruct, gup_flags: number): boolean {
  /* Maybe FOLL_FORCE is set to override it? */
  if (!(gup_flags & FOLL_FORCE)) return false;
  /* But FOLL_FORCE has no effect on shared mappings */
  if (vma.vm_flags & (VM_MAYSHARE | VM_SHARED)) return false;
  /* ... or read-only private ones */
  if (!(vma.vm_flags & VM_MAYWRITE)) return false;
  /* ... or already writable ones that just need to take a write fault */
  if (vma.vm_flags & VM_WRITE) return false;
  /* See can_change_pte_writable(): we broke COW and could map the page writable if we have an exclusive anonymous page ... */
  if (page < 0) return false;
  const store = vma.vm_mm.kernel.store;
  return folio_test_anon(store, page_folio(store, page)) && PageAnonExclusive(store, page);
}

/** can_follow_write_pte() / can_follow_write_pmd(); soft-dirty tracking is off (VM_SOFTDIRTY). */
function can_follow_write(flags: number, page: number, vma: VmAreaStruct, gup_flags: number): boolean {
  /* If the pte is writable, we can write to the page. */
  if (pte_write(flags)) return true;
  if (!can_follow_write_common(page, vma, gup_flags)) return false;
  /* ... and a write-fault isn't required for other reasons. */
  return (vma.vm_flags & VM_SOFTDIRTY) !== 0;
}

/**
 * gup_must_unshare() (mm/internal.h): must a read-only FOLL_PIN of this page first unshare it?
 * A shared anonymous page, or (FOLL_LONGTERM) any non-anonymous page of a COW mapping, so that
 * the pin keeps seeing what the process maps. `vma` undefined: GUP-fast, which cannot tell.
 */
export function gup_must_unshare(vma: VmAreaStruct | undefined, gup_flags: number, store: PageStore, page: number): boolean {
  /* FOLL_WRITE is implicitly handled correctly as the page table entry has to be writable */
  if ((gup_flags & (FOLL_WRITE | FOLL_PIN)) !== FOLL_PIN) return false;
  if (!folio_test_anon(store, page_folio(store, page))) {
    /* We only care about R/O long-term pining */
    if (!(gup_flags & FOLL_LONGTERM)) return false;
    /* We really need the VMA ... */
    if (vma === undefined) return true;
    /* ... because we only care about writable private ("COW") mappings where we have to break COW early. */
    return is_cow_mapping(vma.vm_flags);
  }
  /* For hugetlb, PageAnonExclusive only applies on the head page */
  if (!PageHead(store, page) && PageHuge(store, page)) page = page_folio(store, page);
  return !PageAnonExclusive(store, page);
}

/** gup_can_follow_protnone(): without FOLL_HONOR_NUMA_FAULT a PROT_NONE entry is followed in inaccessible VMAs. */
function gup_can_follow_protnone(vma: VmAreaStruct, gup_flags: number): boolean {
  if (!(gup_flags & FOLL_HONOR_NUMA_FAULT)) return true;
  return !vma_is_accessible(vma);
}

/* The slow path */

/**
 * The result of follow_page_mask() for one page: a pfn, or one of these (or -errno). They lie
 * below -MAX_ERRNO so that no errno (a gup_check hook's -EPERM included) is mistaken for them.
 */
const FOLLOW_FAULT = -4096 - 1;
const FOLLOW_UNSHARE = -4096 - 2;

/**
 * follow_page_mask() for one page: the page mapped at `vpn` with the reference or pin the flags
 * ask for taken, or FOLLOW_FAULT (no usable entry: fault it in), FOLLOW_UNSHARE (-EMLINK: a pin
 * of a shared page), -EEXIST (a special mapping without a page), -EFAULT, -ENOMEM.
 */
function follow_page_mask(vma: VmAreaStruct, vpn: number, gup_flags: number): number {
  const mm = vma.vm_mm;
  const pt = mm.pgd;
  const store = mm.kernel.store;
  const pud = pt.puds.size !== 0 ? pt.puds.get(pud_index_of(vpn)) : undefined;
  let huge: HugeEntry | undefined = pud;
  if (huge === undefined && pt.pmds.size !== 0) {
    huge = pt.pmds.get(pmd_index_of(vpn));
    if (huge !== undefined && gup_flags & FOLL_SPLIT_PMD && pte_present(huge.flags) && !is_vm_hugetlb_page(vma)) {
      split_huge_pmd(vma, pmd_index_of(vpn));
      pte_alloc(pt, vpn);
      huge = undefined;
    }
  }
  let flags: number;
  let pfn: number;
  if (huge !== undefined) {
    flags = huge.flags;
    if (!pte_present(flags)) return FOLLOW_FAULT;
    pfn = huge.val + (vpn % (pud !== undefined ? PAGES_PER_PUD : PTRS_PER_PTE));
  } else {
    const t = pt.ptes.get(pmd_index_of(vpn));
    if (t === undefined) return FOLLOW_FAULT;
    const i = pte_index(vpn);
    flags = t.flags[i];
    if (!pte_present(flags)) return pte_none(flags) ? FOLLOW_FAULT : follow_nonpresent_pte(vma, vpn, flags, t.val[i], gup_flags);
    pfn = t.val[i];
  }
  const hook = call_mm_hook(mm.kernel, 'gup_check', vma, vpn, flags, pfn, gup_flags);
  if (hook < 0) return hook;
  if (pte_protnone(flags) && hook !== MM_HOOK_FOLLOW && hook !== MM_HOOK_FOLLOW_WRITE && !gup_can_follow_protnone(vma, gup_flags)) return FOLLOW_FAULT;
  let page = vm_normal_page(store, flags, pfn);
  /* A PMD or PUD leaf is checked on its first page (pmd_page()), where PG_anon_exclusive lives */
  const checked = huge !== undefined && page >= 0 ? huge.val : page;
  /* We only care about anon pages in can_follow_write_pte(). */
  if (gup_flags & FOLL_WRITE && hook !== MM_HOOK_FOLLOW_WRITE && !can_follow_write(flags, checked, vma, gup_flags)) return FOLLOW_FAULT;
  if (page < 0) {
    /* Avoid special (like zero) pages in core dumps */
    if (gup_flags & FOLL_DUMP) return -Errno.EFAULT;
    if (pfn === store.zero_pfn || is_huge_zero_pfn(mm.kernel, pfn)) page = pfn;
    /* follow_pfn_pte(): proper page table entry exists, but no corresponding struct page */
    else return -Errno.EEXIST;
  }
  if (!pte_write(flags) && gup_must_unshare(vma, gup_flags, store, huge !== undefined ? huge.val : page)) return FOLLOW_UNSHARE;
  const folio = page_folio(store, page);
  /* try_grab_folio() does nothing unless FOLL_GET or FOLL_PIN is set. */
  const ret = try_grab_folio(store, folio, 1, gup_flags);
  if (ret) return ret;
  if (gup_flags & FOLL_TOUCH) {
    if (huge !== undefined) {
      /* touch_pmd() / touch_pud() */
      huge.flags = pte_mkyoung(gup_flags & FOLL_WRITE ? pte_mkdirty(huge.flags) : huge.flags) | _PAGE_PSE;
    }
    if (page !== store.zero_pfn && !is_huge_zero_pfn(mm.kernel, page)) {
      if (gup_flags & FOLL_WRITE && !pte_dirty(flags) && !folio_test_dirty(store, folio)) folio_mark_dirty(store, folio);
      folio_mark_accessed(store, folio);
    }
  }
  return page;
}

/**
 * A design's answer for a non-present entry (the gup_follow_nonpresent hook, mm_hooks.ts): fault
 * it in (FOLLOW_FAULT), take the page behind it (D2 FOLL_ALLOW_POISONED), or -errno.
 */
function follow_nonpresent_pte(vma: VmAreaStruct, vpn: number, flags: number, val: number, gup_flags: number): number {
  const kernel = vma.vm_mm.kernel;
  if (!mm_hook_present(kernel, 'gup_follow_nonpresent')) return FOLLOW_FAULT;
  const hook = call_mm_hook(kernel, 'gup_follow_nonpresent', vma, vpn, flags, val, gup_flags);
  if (hook < 0) return hook;
  if (hook !== MM_HOOK_FOLLOW) return FOLLOW_FAULT;
  const ret = try_grab_folio(kernel.store, page_folio(kernel.store, val), 1, gup_flags);
  return ret ? ret : val;
}

/** faultin_page(): fault the page in for GUP. 0, or -errno. */
function faultin_page(vma: VmAreaStruct, vpn: number, gup_flags: number, unshare: boolean): number {
  if (gup_flags & FOLL_NOFAULT) return -Errno.EFAULT;
  let fault_flags = 0;
  if (gup_flags & FOLL_WRITE) fault_flags |= FAULT_FLAG_WRITE;
  if (gup_flags & FOLL_REMOTE) fault_flags |= FAULT_FLAG_REMOTE;
  if (gup_flags & FOLL_UNLOCKABLE) {
    fault_flags |= FAULT_FLAG_ALLOW_RETRY | FAULT_FLAG_KILLABLE;
    if (gup_flags & FOLL_INTERRUPTIBLE) fault_flags |= FAULT_FLAG_INTERRUPTIBLE;
  }
  if (gup_flags & FOLL_TRIED) fault_flags |= FAULT_FLAG_TRIED;
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
 * page i goes to pages[off + i] with a reference (FOLL_GET) or a pin (FOLL_PIN) on its folio.
 * @returns pages done, or -errno if none
 */
export function __get_user_pages(mm: MmStruct, start: number, nr_pages: number, gup_flags: number, pages?: number[] | null, off = 0): number {
  if (nr_pages === 0) return 0;
  if (!pages !== !(gup_flags & (FOLL_GET | FOLL_PIN))) BUG('VM_BUG_ON: __get_user_pages() with a pages array but neither FOLL_GET nor FOLL_PIN, or the reverse');
  let i = 0;
  let ret = 0;
  let vma: VmAreaStruct | undefined;
  const cost = mm.kernel.cost;
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
      const page = follow_page_mask(vma, start, gup_flags);
      if (page === FOLLOW_FAULT || page === FOLLOW_UNSHARE) {
        /* The kernel would retry forever: a fault that maps nothing usable is a simulator bug. */
        if (tries > 4) BUG(`GUP at vpn ${start}: the fault handler keeps leaving the page unusable`);
        ret = faultin_page(vma, start, gup_flags, page === FOLLOW_UNSHARE);
        if (ret === 0) continue;
        break outer;
      }
      if (page === -Errno.EEXIST) {
        /* Proper page table entry exists, but no corresponding struct page: fine without pages. */
        if (pages) {
          ret = page;
          break outer;
        }
      } else if (page < 0) {
        ret = page;
        break outer;
      } else if (pages) {
        pages[off + i] = page;
        cost.charge('gup_pin_per_page');
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
 * __get_user_pages_locked(): the mmap lock is never dropped in the simulator (no fault returns
 * VM_FAULT_RETRY), so this is __get_user_pages() with FOLL_GET implied by `pages`.
 */
function __get_user_pages_locked(mm: MmStruct, start: number, nr_pages: number, pages: number[] | null, off: number, flags: number): number {
  /* FOLL_GET and FOLL_PIN are mutually exclusive. */
  if (pages && !(flags & FOLL_PIN)) flags |= FOLL_GET;
  return __get_user_pages(mm, start, nr_pages, flags, pages, off);
}

/* FOLL_LONGTERM: migrate what may not stay pinned */

/**
 * collect_longterm_unpinnable_folios(): isolate the folios among pages[off, off + nr) that a
 * long-term pin may not keep. Returns how many such folios there are (isolated or not).
 */
function collect_longterm_unpinnable_folios(mm: MmStruct, movable: Folio[], pages: number[], off: number, nr: number): number {
  const store = mm.kernel.store;
  let collected = 0;
  let prev = -1;
  for (let i = off; i < off + nr; i++) {
    const folio = page_folio(store, pages[i]);
    if (folio === prev) continue;
    prev = folio;
    if (folio_is_longterm_pinnable(store, folio)) continue;
    collected++;
    if (folio_test_hugetlb(store, folio)) {
      folio_isolate_hugetlb(mm.kernel, folio, movable);
      continue;
    }
    if (movable.includes(folio)) continue;
    if (!migrate_lru_ops.folio_isolate_lru(store, folio)) continue;
    movable.push(folio);
  }
  return collected;
}

/**
 * migrate_longterm_unpinnable_folios(): drop every pin of pages[off, off + nr) and migrate the
 * collected folios out of ZONE_MOVABLE. -EAGAIN (pin again) when that worked, -ENOMEM when a
 * folio did not migrate. Either way the pins are gone.
 */
function migrate_longterm_unpinnable_folios(mm: MmStruct, movable: Folio[], pages: number[], off: number, nr: number): number {
  const kernel = mm.kernel;
  const store = kernel.store;
  /*
   * We can't migrate folios with unexpected references, so drop the reference obtained by
   * __get_user_pages_locked(). Migrating folios have been isolated with a reference of their own.
   */
  for (let i = off; i < off + nr; i++) {
    unpin_folio(store, page_folio(store, pages[i]));
    kernel.cost.charge('gup_unpin_per_page');
  }
  let ret = -Errno.EAGAIN;
  if (movable.length !== 0) {
    const mtc = { nid: NUMA_NO_NODE, gfp_mask: GFP_USER | __GFP_NOWARN, reason: MR_LONGTERM_PIN };
    if (migrate_pages(kernel, movable, (src) => alloc_migration_target(kernel, src, mtc), undefined, MIGRATE_SYNC, MR_LONGTERM_PIN)) ret = -Errno.ENOMEM;
  }
  putback_movable_pages(kernel, movable);
  return ret;
}

/**
 * check_and_migrate_movable_pages(): 0 if every pinned folio may stay pinned; otherwise the pins
 * are dropped and the result is -EAGAIN (migrated: pin again) or -ENOMEM.
 */
function check_and_migrate_movable_pages(mm: MmStruct, pages: number[], off: number, nr: number): number {
  const movable: Folio[] = [];
  const collected = collect_longterm_unpinnable_folios(mm, movable, pages, off, nr);
  if (!collected) return 0;
  return migrate_longterm_unpinnable_folios(mm, movable, pages, off, nr);
}

/** The kernel loops until the migration settles; one that never does is a simulator bug. */
const LONGTERM_MAX_ROUNDS = 64;

/**
 * __gup_longterm_locked(): __get_user_pages_locked(), and for FOLL_LONGTERM the check that
 * what it pinned may stay pinned, migrating and pinning again until it may. Allocations made
 * meanwhile (faults, migration targets) avoid ZONE_MOVABLE (memalloc_pin_save()).
 */
function __gup_longterm_locked(mm: MmStruct, start: number, nr_pages: number, pages: number[] | null, off: number, gup_flags: number): number {
  if (!(gup_flags & FOLL_LONGTERM)) return __get_user_pages_locked(mm, start, nr_pages, pages, off, gup_flags);
  const pa = mm.kernel.page_alloc;
  const saved = pa.pf_memalloc_pin;
  pa.pf_memalloc_pin = true;
  try {
    for (let round = 0; ; round++) {
      if (round === LONGTERM_MAX_ROUNDS) BUG('__gup_longterm_locked(): the long-term pin keeps finding folios to migrate');
      const nr_pinned = __get_user_pages_locked(mm, start, nr_pages, pages, off, gup_flags);
      if (nr_pinned <= 0) return nr_pinned;
      /* FOLL_LONGTERM implies FOLL_PIN */
      const rc = check_and_migrate_movable_pages(mm, pages!, off, nr_pinned);
      if (rc === -Errno.EAGAIN) continue;
      return rc ? rc : nr_pinned;
    }
  } finally {
    pa.pf_memalloc_pin = saved;
  }
}

/**
 * is_valid_gup_args(): the flags a GUP entry point was given, with `to_set` added, or undefined
 * (after a WARN_ON_ONCE, as the kernel: these are bugs in the caller).
 */
function is_valid_gup_args(
  store: PageStore,
  pages: number[] | null | undefined,
  locked: GupLocked | null | undefined,
  gup_flags: number,
  to_set: number,
): number | undefined {
  const warn = (cond: boolean, what: string): boolean => store.warn.WARN_ON_ONCE(cond, `is_valid_gup_args: ${what}`);
  /*
   * These flags not allowed to be specified externally to the gup interfaces:
   * - FOLL_TOUCH/FOLL_PIN/FOLL_TRIED/FOLL_FAST_ONLY are internal only
   * - FOLL_REMOTE is internal only, set in (get|pin)_user_pages_remote()
   * - FOLL_UNLOCKABLE is internal only and used if locked is !NULL
   */
  if (warn((gup_flags & INTERNAL_GUP_FLAGS) !== 0, 'internal GUP flags')) return undefined;
  gup_flags |= to_set;
  if (locked) {
    /* At the external interface locked must be set */
    if (warn(locked.locked !== 1, '*locked != 1')) return undefined;
    gup_flags |= FOLL_UNLOCKABLE;
  }
  /* FOLL_GET and FOLL_PIN are mutually exclusive. */
  if (warn((gup_flags & (FOLL_PIN | FOLL_GET)) === (FOLL_PIN | FOLL_GET), 'FOLL_PIN with FOLL_GET')) return undefined;
  /* LONGTERM can only be specified when pinning */
  if (warn(!(gup_flags & FOLL_PIN) && (gup_flags & FOLL_LONGTERM) !== 0, 'FOLL_LONGTERM without FOLL_PIN')) return undefined;
  /* Pages input must be given if using GET/PIN */
  if (warn((gup_flags & (FOLL_GET | FOLL_PIN)) !== 0 && !pages, 'no pages array for FOLL_GET/FOLL_PIN')) return undefined;
  /* We want to allow the pgmap to be hot-unplugged at all times */
  if (warn((gup_flags & FOLL_LONGTERM) !== 0 && (gup_flags & FOLL_PCI_P2PDMA) !== 0, 'FOLL_LONGTERM with FOLL_PCI_P2PDMA')) return undefined;
  return gup_flags;
}

/** A GUP page count from an in-kernel caller: a non-negative integer, else a simulator bug. */
function check_nr(nr_pages: number): void {
  if (!Number.isSafeInteger(nr_pages) || nr_pages < 0) BUG(`GUP: bad nr_pages ${nr_pages}`);
}

/**
 * get_user_pages_remote(): `nr_pages` pages of `mm` from page `start`, each with a reference
 * (when `pages` is given), faulting them in (FOLL_TOUCH | FOLL_REMOTE).
 * @returns pages done, or -errno when none was (-EINVAL for bad arguments)
 */
export function get_user_pages_remote(mm: MmStruct, start: number, nr_pages: number, gup_flags: number, pages: number[] | null, locked?: GupLocked | null): number {
  check_nr(nr_pages);
  const flags = is_valid_gup_args(mm.kernel.store, pages, locked, gup_flags, FOLL_TOUCH | FOLL_REMOTE);
  if (flags === undefined) return -Errno.EINVAL;
  return __get_user_pages_locked(mm, start, nr_pages, pages, 0, flags);
}

/** get_user_pages(): as get_user_pages_remote() for the caller's own mm (current->mm). */
export function get_user_pages(mm: MmStruct, start: number, nr_pages: number, gup_flags: number, pages: number[] | null): number {
  check_nr(nr_pages);
  const flags = is_valid_gup_args(mm.kernel.store, pages, null, gup_flags, FOLL_TOUCH);
  if (flags === undefined) return -Errno.EINVAL;
  return __get_user_pages_locked(mm, start, nr_pages, pages, 0, flags);
}

/** get_user_pages_unlocked(): get_user_pages() taking the mmap lock itself. */
export function get_user_pages_unlocked(mm: MmStruct, start: number, nr_pages: number, pages: number[] | null, gup_flags: number): number {
  check_nr(nr_pages);
  const flags = is_valid_gup_args(mm.kernel.store, pages, null, gup_flags, FOLL_TOUCH | FOLL_UNLOCKABLE);
  if (flags === undefined) return -Errno.EINVAL;
  return __get_user_pages_locked(mm, start, nr_pages, pages, 0, flags);
}

/**
 * pin_user_pages_remote(): pin `nr_pages` pages of `mm` from page `start` (FOLL_PIN |
 * FOLL_TOUCH | FOLL_REMOTE), with FOLL_LONGTERM's migration. 0 for bad arguments.
 * @returns pages pinned, or -errno when none was
 */
export function pin_user_pages_remote(mm: MmStruct, start: number, nr_pages: number, gup_flags: number, pages: number[] | null, locked?: GupLocked | null): number {
  check_nr(nr_pages);
  const flags = is_valid_gup_args(mm.kernel.store, pages, locked, gup_flags, FOLL_PIN | FOLL_TOUCH | FOLL_REMOTE);
  if (flags === undefined) return 0;
  return __gup_longterm_locked(mm, start, nr_pages, pages, 0, flags);
}

/** pin_user_pages(): pin pages of the caller's own mm; 0 for bad arguments. */
export function pin_user_pages(mm: MmStruct, start: number, nr_pages: number, gup_flags: number, pages: number[] | null): number {
  check_nr(nr_pages);
  const flags = is_valid_gup_args(mm.kernel.store, pages, null, gup_flags, FOLL_PIN);
  if (flags === undefined) return 0;
  return __gup_longterm_locked(mm, start, nr_pages, pages, 0, flags);
}

/** pin_user_pages_unlocked(): pin_user_pages() taking the mmap lock itself; 0 for bad arguments. */
export function pin_user_pages_unlocked(mm: MmStruct, start: number, nr_pages: number, pages: number[] | null, gup_flags: number): number {
  check_nr(nr_pages);
  const flags = is_valid_gup_args(mm.kernel.store, pages, null, gup_flags, FOLL_PIN | FOLL_TOUCH | FOLL_UNLOCKABLE);
  if (flags === undefined) return 0;
  return __gup_longterm_locked(mm, start, nr_pages, pages, 0, flags);
}

/* GUP-fast */

/**
 * gup_fast_folio_allowed(): may GUP-fast take this folio? A long-term writable pin of a file
 * folio needs the VMA (dirty tracking) unless the file is shmem; a small folio without a mapping
 * (truncated, or secretmem, CONFIG_SECRETMEM) goes to the slow path.
 */
function gup_fast_folio_allowed(store: PageStore, folio: Folio, gup_flags: number): boolean {
  const reject_file_backed = (gup_flags & (FOLL_PIN | FOLL_LONGTERM | FOLL_WRITE)) === (FOLL_PIN | FOLL_LONGTERM | FOLL_WRITE);
  /* secretmem folios are always order-0 folios. */
  const check_secretmem = !folio_test_large(store, folio);
  if (!reject_file_backed && !check_secretmem) return true;
  if (store.warn.WARN_ON_ONCE(folio_test_slab(store, folio), 'gup_fast_folio_allowed_slab')) return false;
  /* hugetlb neither requires dirty-tracking nor can be secretmem. */
  if (folio_test_hugetlb(store, folio)) return true;
  const mapping = store.mapping[store.idx(folio)];
  /* The mapping may have been truncated: fall back to slow path */
  if (mapping === 0) return false;
  /* Anonymous folios pose no problem. */
  if (folio_test_anon(store, folio)) return true;
  if (folio_mapping(store, folio) === 0) return false;
  /* The only remaining allowed file system is shmem. */
  if (!reject_file_backed) return true;
  const as = lookupMapping(store, mapping);
  return as !== undefined && shmem_mapping(as);
}

/**
 * try_grab_folio_fast(): GUP-fast's reference or pin on `refs` pages of the folio of `page`; none
 * for a FOLL_PIN of the zero page; false (nothing taken) for FOLL_LONGTERM on a folio that may
 * not stay pinned: the slow path migrates it.
 */
function try_grab_folio_fast(store: PageStore, folio: Folio, refs: number, gup_flags: number): boolean {
  if (store.warn.WARN_ON_ONCE((gup_flags & (FOLL_GET | FOLL_PIN)) === 0, 'try_grab_folio_fast')) return false;
  if (gup_flags & FOLL_PIN && is_zero_folio(store, folio)) return true;
  if (gup_flags & FOLL_PIN && gup_flags & FOLL_LONGTERM && !folio_is_longterm_pinnable(store, folio)) return false;
  return try_grab_folio(store, folio, refs, gup_flags) === 0;
}

/**
 * gup_fast(): the lockless walk: take the pages of [start, end) while their entries already allow
 * the access (present, user, writable for FOLL_WRITE, not PROT_NONE, not special), stopping at the
 * first that does not. No faults.
 */
function gup_fast(mm: MmStruct, start: number, end: number, gup_flags: number, pages: number[]): number {
  const store = mm.kernel.store;
  const pt = mm.pgd;
  const write = (gup_flags & FOLL_WRITE) !== 0;
  let nr = 0;
  /* A design's gup_check sees every page: leave them all to the slow path. */
  if (mm_hooks_gup_check(mm.kernel)) return 0;
  let vpn = start;
  while (vpn < end) {
    const pud = pt.puds.size !== 0 ? pt.puds.get(pud_index_of(vpn)) : undefined;
    const pmd = pud === undefined && pt.pmds.size !== 0 ? pt.pmds.get(pmd_index_of(vpn)) : undefined;
    const leaf = pud ?? pmd;
    if (leaf !== undefined) {
      /* gup_fast_pmd_leaf() / gup_fast_pud_leaf() */
      const size = pud !== undefined ? PAGES_PER_PUD : PTRS_PER_PTE;
      const next = Math.min(end, vpn - (vpn % size) + size);
      if (!pte_present(leaf.flags) || pte_protnone(leaf.flags)) return nr;
      if (!pte_access_permitted(leaf.flags, write) || pte_special(leaf.flags)) return nr;
      const refs = next - vpn;
      const page = leaf.val + (vpn % size);
      const folio = page_folio(store, page);
      if (!try_grab_folio_fast(store, folio, refs, gup_flags)) return nr;
      if (!gup_fast_folio_allowed(store, folio, gup_flags) || (!pte_write(leaf.flags) && gup_must_unshare(undefined, gup_flags, store, folio))) {
        gup_put_folio(store, folio, refs, gup_flags);
        return nr;
      }
      for (let k = 0; k < refs; k++) pages[nr + k] = page + k;
      nr += refs;
      folio_set_referenced(store, folio);
      vpn = next;
      continue;
    }
    const t = pt.ptes.get(pmd_index_of(vpn));
    if (t === undefined) return nr;
    const stop = Math.min(end, (pmd_index_of(vpn) + 1) * PTRS_PER_PTE);
    for (; vpn < stop; vpn++) {
      const i = pte_index(vpn);
      const f = t.flags[i];
      /* Always fallback to ordinary GUP on PROT_NONE-mapped pages */
      if (pte_protnone(f) || !pte_access_permitted(f, write) || pte_special(f)) return nr;
      const page = t.val[i];
      const folio = page_folio(store, page);
      if (!try_grab_folio_fast(store, folio, 1, gup_flags)) return nr;
      if (!gup_fast_folio_allowed(store, folio, gup_flags) || (!pte_write(f) && gup_must_unshare(undefined, gup_flags, store, page))) {
        gup_put_folio(store, folio, 1, gup_flags);
        return nr;
      }
      folio_set_referenced(store, folio);
      pages[nr++] = page;
    }
  }
  return nr;
}

/**
 * gup_fast_fallback(): GUP-fast for what it can take, the slow path (FOLL_TOUCH |
 * FOLL_UNLOCKABLE) for the rest unless FOLL_FAST_ONLY. -EOVERFLOW when the range wraps, -EFAULT
 * when it ends above TASK_SIZE_MAX. Once some pages are taken, a later error returns their count.
 */
function gup_fast_fallback(mm: MmStruct, start: number, nr_pages: number, gup_flags: number, pages: number[]): number {
  const store = mm.kernel.store;
  if (store.warn.WARN_ON_ONCE((gup_flags & ~GUP_FAST_FLAGS) !== 0, 'gup_fast_fallback_flags')) return -Errno.EINVAL;
  const end = start + nr_pages;
  /* check_add_overflow(start, len, &end): the byte end beyond 2^64 */
  if (end >= 2 ** 52) return -Errno.EOVERFLOW;
  if (BigInt(end) * 4096n > TASK_SIZE_MAX) return -Errno.EFAULT;
  const nr_pinned = gup_fast(mm, start, end, gup_flags, pages);
  if (nr_pinned !== 0) mm.kernel.cost.charge('gup_pin_per_page', nr_pinned);
  if (nr_pinned === nr_pages || gup_flags & FOLL_FAST_ONLY) return nr_pinned;
  /* Slow path: try to get the remaining pages with get_user_pages */
  const ret = __gup_longterm_locked(mm, start + nr_pinned, nr_pages - nr_pinned, pages, nr_pinned, gup_flags | FOLL_TOUCH | FOLL_UNLOCKABLE);
  if (ret < 0) {
    /* The caller has to unpin the pages we already pinned so returning -errno is not an option */
    return nr_pinned ? nr_pinned : ret;
  }
  return ret + nr_pinned;
}

/** get_user_pages_fast_only(): GUP-fast alone (FOLL_GET | FOLL_FAST_ONLY): what it can take without faulting. */
export function get_user_pages_fast_only(mm: MmStruct, start: number, nr_pages: number, gup_flags: number, pages: number[] | null): number {
  check_nr(nr_pages);
  const flags = is_valid_gup_args(mm.kernel.store, pages, null, gup_flags, FOLL_GET | FOLL_FAST_ONLY);
  if (flags === undefined) return -Errno.EINVAL;
  return gup_fast_fallback(mm, start, nr_pages, flags, pages!);
}

/** get_user_pages_fast(): references on the pages [start, start + nr_pages), GUP-fast first. */
export function get_user_pages_fast(mm: MmStruct, start: number, nr_pages: number, gup_flags: number, pages: number[] | null): number {
  check_nr(nr_pages);
  /* The caller may or may not have explicitly set FOLL_GET; either way is OK. */
  const flags = is_valid_gup_args(mm.kernel.store, pages, null, gup_flags, FOLL_GET);
  if (flags === undefined) return -Errno.EINVAL;
  return gup_fast_fallback(mm, start, nr_pages, flags, pages!);
}

/** pin_user_pages_fast(): pins on the pages [start, start + nr_pages), GUP-fast first; -EINVAL for bad arguments. */
export function pin_user_pages_fast(mm: MmStruct, start: number, nr_pages: number, gup_flags: number, pages: number[] | null): number {
  check_nr(nr_pages);
  const flags = is_valid_gup_args(mm.kernel.store, pages, null, gup_flags, FOLL_PIN);
  if (flags === undefined) return -Errno.EINVAL;
  return gup_fast_fallback(mm, start, nr_pages, flags, pages!);
}

/* Releasing */

/**
 * unpin_user_pages_dirty_lock(): release `npages` pins from `pages`, first marking each folio
 * dirty (under its lock) when `make_dirty` and it is clean, as after a device wrote to it.
 */
export function unpin_user_pages_dirty_lock(kernel: Kernel, pages: readonly number[], npages: number, make_dirty: boolean): void {
  const store = kernel.store;
  if (npages > 0) kernel.cost.charge('gup_unpin_per_page', npages);
  if (!make_dirty) {
    unpin_user_pages(store, pages, npages);
    return;
  }
  for (let i = 0; i < npages; ) {
    const folio = page_folio(store, pages[i]);
    let nr = i + 1;
    while (nr < npages && page_folio(store, pages[nr]) === folio) nr++;
    if (!folio_test_dirty(store, folio)) {
      folio_lock(store, folio);
      folio_mark_dirty(store, folio);
      folio_unlock(store, folio);
    }
    gup_put_folio(store, folio, nr - i, FOLL_PIN);
    i = nr;
  }
}

/**
 * unpin_user_page_range_dirty_lock(): the same for `npages` consecutive pages from `page`
 * (gup_folio_range_next(): one put per folio).
 */
export function unpin_user_page_range_dirty_lock(kernel: Kernel, page: number, npages: number, make_dirty: boolean): void {
  const store = kernel.store;
  if (npages > 0) kernel.cost.charge('gup_unpin_per_page', npages);
  for (let i = 0; i < npages; ) {
    const next = page + i;
    const folio = page_folio(store, next);
    let nr = 1;
    if (folio_test_large(store, folio)) nr = Math.min(npages - i, 2 ** store.order[store.idx(folio)] - (next - folio));
    if (make_dirty && !folio_test_dirty(store, folio)) {
      folio_lock(store, folio);
      folio_mark_dirty(store, folio);
      folio_unlock(store, folio);
    }
    gup_put_folio(store, folio, nr, FOLL_PIN);
    i += nr;
  }
}

/* Populating (no pages kept) */

/**
 * populate_vma_page_range(): fault in pages [start, end) of `vma` as mlock and MAP_POPULATE
 * want: written (breaking COW) for private writable mappings, read otherwise, FOLL_FORCE in
 * accessible VMAs; VM_LOCKONFAULT VMAs are left alone, PROT_NONE ones refused (-EFAULT from
 * check_vma_flags()).
 * @returns pages done, or -errno
 */
export function populate_vma_page_range(vma: VmAreaStruct, start: number, end: number): number {
  const nr_pages = end - start;
  if (vma.vm_flags & VM_LOCKONFAULT) return nr_pages;
  let gup_flags = FOLL_TOUCH | FOLL_UNLOCKABLE;
  if ((vma.vm_flags & (VM_WRITE | VM_SHARED)) === VM_WRITE) gup_flags |= FOLL_WRITE;
  /* We want mlock to succeed for regions that have any permissions other than PROT_NONE. */
  if (vma_is_accessible(vma)) gup_flags |= FOLL_FORCE;
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

/* Pinning the folios of a memfd (udmabuf, iommufd's IOMMU_IOAS_MAP_FILE) */

/**
 * check_and_migrate_movable_folios() (mm/gup.c): 0 if every folio of folios[0, nr) may stay
 * pinned; otherwise every pin is dropped, the folios that may not stay are migrated out of
 * ZONE_MOVABLE, and the result is -EAGAIN (pin again) or -ENOMEM (a folio did not migrate).
 */
function check_and_migrate_movable_folios(kernel: Kernel, folios: readonly number[], nr: number): number {
  const store = kernel.store;
  const movable: Folio[] = [];
  let collected = 0;
  for (let i = 0; i < nr; i++) {
    const folio = folios[i] as Folio;
    if (folio_is_longterm_pinnable(store, folio)) continue;
    collected++;
    if (folio_test_hugetlb(store, folio)) {
      folio_isolate_hugetlb(kernel, folio, movable);
      continue;
    }
    if (movable.includes(folio)) continue;
    if (migrate_lru_ops.folio_isolate_lru(store, folio)) movable.push(folio);
  }
  if (!collected) return 0;
  for (let i = 0; i < nr; i++) unpin_folio(store, folios[i]);
  kernel.cost.charge('gup_unpin_per_page', nr);
  let ret = -Errno.EAGAIN;
  if (movable.length !== 0) {
    const mtc = { nid: NUMA_NO_NODE, gfp_mask: GFP_USER | __GFP_NOWARN, reason: MR_LONGTERM_PIN };
    if (migrate_pages(kernel, movable, (src) => alloc_migration_target(kernel, src, mtc), undefined, MIGRATE_SYNC, MR_LONGTERM_PIN)) ret = -Errno.ENOMEM;
  }
  putback_movable_pages(kernel, movable);
  return ret;
}

/**
 * memfd_pin_folios() (mm/gup.c): pin with FOLL_PIN, one pin per folio, the folios holding bytes
 * [start, end] of a memfd (a shmem or hugetlbfs file), allocating those not in the page cache yet
 * (memfd_alloc_folio()), and, as a FOLL_LONGTERM pin, migrate any that may not stay pinned out
 * of ZONE_MOVABLE and start over. -EINVAL for a range with start > end or end at or past i_size,
 * for max_folios 0, and for any other kind of file.
 * @returns the number of folios pinned into `folios` (at most max_folios), with `offset.value`
 * the byte offset of `start` in the first one, or -errno with nothing left pinned
 */
export function memfd_pin_folios(memfd: File, start: bigint, end: bigint, folios: number[], max_folios: number, offset: { value: number }): number {
  if (start < 0n || start > end || !max_folios) return -Errno.EINVAL;
  const huge = is_file_hugepages(memfd);
  if (!shmem_file(memfd) && !huge) return -Errno.EINVAL;
  if (end >= memfd.f_inode.i_size) return -Errno.EINVAL;
  const kernel = huge ? HUGETLBFS_I(memfd.f_inode).kernel : SHMEM_I(memfd.f_inode).sb.kernel;
  const store = kernel.store;
  const h = huge ? hstate_file(memfd) : undefined;
  const pgshift = h !== undefined ? huge_page_shift(h) : 12;
  const pa = kernel.page_alloc;
  const saved = pa.pf_memalloc_pin;
  pa.pf_memalloc_pin = true;
  let nr_folios = 0;
  try {
    for (let round = 0; ; round++) {
      if (round === LONGTERM_MAX_ROUNDS) BUG('memfd_pin_folios(): the long-term pin keeps finding folios to migrate');
      nr_folios = 0;
      let start_idx = Number(start >> BigInt(pgshift));
      let end_idx = Number(end >> BigInt(pgshift));
      if (h !== undefined) {
        start_idx *= 2 ** huge_page_order(h);
        end_idx *= 2 ** huge_page_order(h);
      }
      let allocated: Folio | undefined;
      while (start_idx <= end_idx && nr_folios < max_folios) {
        /* filemap_get_folios_contig(): the folios present from start_idx on */
        const folio = memfd.f_mapping.folio_at(start_idx as PgOff);
        if (allocated !== undefined) {
          folio_put(store, allocated);
          allocated = undefined;
        }
        if (folio !== undefined) {
          if (try_grab_folio(store, folio, 1, FOLL_PIN)) {
            unpin_folios(kernel, folios, nr_folios);
            return -Errno.EINVAL;
          }
          kernel.cost.charge('gup_pin_per_page');
          if (nr_folios === 0) offset.value = Number(start - BigInt(store.index[store.idx(folio)]) * 4096n);
          folios[nr_folios++] = folio;
          start_idx = store.index[store.idx(folio)] + folio_nr_pages(store, folio);
          continue;
        }
        const fresh = memfd_alloc_folio(memfd, start_idx);
        if (IS_ERR(fresh)) {
          if (PTR_ERR(fresh) !== -Errno.EEXIST) {
            unpin_folios(kernel, folios, nr_folios);
            return PTR_ERR(fresh);
          }
        } else {
          allocated = fresh;
        }
      }
      if (allocated !== undefined) folio_put(store, allocated);
      const ret = check_and_migrate_movable_folios(kernel, folios, nr_folios);
      if (ret === -Errno.EAGAIN) continue;
      return ret ? ret : nr_folios;
    }
  } finally {
    pa.pf_memalloc_pin = saved;
  }
}

/** unpin_folios() (mm/gup.c): release one pin of each of folios[0, nr). */
function unpin_folios(kernel: Kernel, folios: readonly number[], nr: number): void {
  for (let i = 0; i < nr; i++) unpin_folio(kernel.store, folios[i]);
  if (nr) kernel.cost.charge('gup_unpin_per_page', nr);
}
