/**
 * hugetlbfs files (fs/hugetlbfs/inode.c, Linux 6.18), the backing of memfd_create(MFD_HUGETLB):
 * a file made of huge pages from the hugetlb pool (hugetlb.ts), one page size per file.
 *
 * As in the kernel: sizes given to ftruncate() must be multiples of the huge page size (-EINVAL);
 * fallocate() rounds the range out to whole huge pages, takes them from the pool (-ENOSPC when it
 * is empty, keeping the pages it got so far and leaving i_size alone), clears them and sets i_size
 * to offset + len (not rounded); hole punching frees the whole huge pages inside the range and
 * zeroes the covered part of those at its edges; read(2) returns zeros for holes; there is no
 * write(2) (-EINVAL: the file has no write method). st_blksize is the huge page size and i_blocks
 * counts whole huge pages. Seals work as on shmem, except that F_SEAL_EXEC does not stop chmod
 * (hugetlbfs_setattr() has no such check).
 *
 * The page cache holds each huge folio at all the base-page indexes it covers, with one reference
 * per base page (6.18 indexes hugetlb folios in PAGE_SIZE units).
 */
import { BUG, Errno, ERR_PTR, IS_ERR, PAGE_SHIFT, PAGE_SIZE, type ErrPtr, type Pfn } from '@cocosim/core';

/** PMD_ORDER: 2 MiB pages are PMD leaves, larger ones PUD leaves. */
const PMD_ORDER = 9;
import { ATTR_MODE, S_IALLUGO, type IattrMode } from './attr.js';
import { alloc_file_pseudo, iput } from './file_table.js';
import { filemap_get_folios, filemap_lock_folio, filemap_remove_folio, registerMapping, unregisterMapping, type PgoffRef } from './filemap.js';
import { ATTR_SIZE, Inode, O_RDWR, S_IFREG, type AddressSpaceOperations, type File, type FileOperations, type Iattr, type InodeOperations, type Kstat, type Loff } from './fs.js';
import { FOLIO_MAPPING_ANON, folio_lock, folio_mapped, folio_put, folio_unlock, type Folio } from './folio.js';
import {
  alloc_hugetlb_folio,
  blocks_per_huge_page,
  folio_zero_user,
  hstate_sizelog,
  huge_page_shift,
  huge_page_size,
  hugetlb_acct_memory,
  hugetlb_add_to_page_cache,
  hugetlb_pool,
  pages_per_huge_page,
  type Hstate,
} from './hugetlb.js';
import type { Kernel } from './kernel.js';
import { memfd_pin_folios } from './gup.js';
import { uaccess_host_access } from './fault.js';
import { MM_HOST_ACCESS_ZERO } from './mm_hooks.js';
import { __folio_mark_uptodate, __folio_set_locked, folio_clear_dirty, folio_clear_uptodate, folio_test_hwpoison } from './page-flags.js';
import type { PageStore } from './page_store.js';
import {
  FAULT_FLAG_UNSHARE,
  FAULT_FLAG_WRITE,
  linear_page_index,
  vma_pages,
  vm_flags_or,
  vm_flags_test,
  VM_DONTEXPAND,
  VM_FAULT_SIGBUS,
  VM_HUGETLB,
  VM_MAYSHARE,
  VM_NORESERVE,
  VM_SHARED,
  VM_WRITE,
  type VmAreaStruct,
  type VmFault,
  type VmOperationsStruct,
} from './mm_types.js';
import {
  _PAGE_PSE,
  pmd_entry,
  pmd_index_of,
  pte_mkdirty,
  pte_mkwrite,
  pte_mkyoung,
  pte_write,
  pte_wrprotect,
  pud_entry,
  pud_index_of,
  set_pmd_at,
  set_pud_at,
  type HugeEntry,
} from './pgtable.js';
import { anon_vma_prepare, folio_add_file_rmap_pmd, folio_remove_rmap_pmd, PageAnonExclusive, SetPageAnonExclusive } from './rmap.js';
import { flush_tlb_mm_range } from './tlb.js';
import { FolioBatch, folio_batch_count, folio_batch_release } from './pagevec.js';
import { generic_fillattr } from './stat.js';
import { folio_zero_range, unmap_mapping_folio, unmap_mapping_range } from './truncate.js';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE } from './uapi/falloc.js';
import { F_SEAL_FUTURE_WRITE, F_SEAL_GROW, F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_WRITE } from './uapi/fcntl.js';
import { MAX_LFS_FILESIZE } from './attr.js';

/* hugetlb_file_setup() creat_flags (include/linux/hugetlb.h) */
export const HUGETLB_SHMFS_INODE = 1;
export const HUGETLB_ANONHUGE_INODE = 2;

/** struct hugetlbfs_inode_info. */
export class HugetlbfsInodeInfo {
  /** F_SEAL_*; a new inode is sealed against sealing. */
  seals = F_SEAL_SEAL;
  /**
   * The inode's resv_map: huge indexes reserved by shared mappings or instantiated (the kernel's
   * region map, which holds both: an index is reserved until its page exists, then counted there).
   */
  readonly resv_map = new Set<number>();

  constructor(
    readonly kernel: Kernel,
    readonly hstate: Hstate,
    readonly vfs_inode: Inode,
    /** The dentry name ("memfd:<name>"). */
    readonly name: string,
  ) {}
}

/** HUGETLBFS_I(). */
export function HUGETLBFS_I(inode: Inode): HugetlbfsInodeInfo {
  const info = inode.i_private;
  if (!(info instanceof HugetlbfsInodeInfo)) BUG(`HUGETLBFS_I of inode ${inode.i_ino}, which is not a hugetlbfs inode`);
  return info;
}

/** is_file_hugepages(): a hugetlbfs file. */
export function is_file_hugepages(file: File): boolean {
  return file.f_op === hugetlbfs_file_operations;
}

/** hstate_inode(). */
export function hstate_inode(inode: Inode): Hstate {
  return HUGETLBFS_I(inode).hstate;
}

/** hstate_file(). */
export function hstate_file(file: File): Hstate {
  return hstate_inode(file.f_inode);
}

/** filemap_lock_hugetlb_folio(): the huge folio at huge index `idx`, locked, with a reference. */
function filemap_lock_hugetlb_folio(kernel: Kernel, h: Hstate, inode: Inode, idx: number): Folio | ErrPtr {
  return filemap_lock_folio(kernel, inode.i_mapping, idx * pages_per_huge_page(h));
}

/**
 * What the platform answers for the kernel's read of `nr` bytes at `offset` in huge `folio`
 * (MmHooks.host_access, asked per base page): the first non-zero answer of uaccess_host_access().
 */
function hugetlbfs_read_refused(kernel: Kernel, folio: Folio, offset: number, nr: number): number {
  for (let off = offset; off < offset + nr; ) {
    const n = Math.min(offset + nr - off, PAGE_SIZE - (off % PAGE_SIZE));
    const r = uaccess_host_access(kernel, folio + Math.floor(off / PAGE_SIZE), false, off % PAGE_SIZE, n);
    if (r !== 0) return r;
    off += n;
  }
  return 0;
}

/**
 * hugetlbfs_read_iter(): copy out up to buf.length bytes at *ppos within i_size; holes read as
 * zeros, a hwpoisoned huge page ends the read (-EIO if nothing was read).
 */
export function hugetlbfs_read_iter(file: File, buf: Uint8Array, ppos: Loff): number {
  const inode = file.f_inode;
  const info = HUGETLBFS_I(inode);
  const kernel = info.kernel;
  const h = info.hstate;
  const hsize = BigInt(huge_page_size(h));
  let index = Number(ppos.pos / hsize);
  let offset = Number(ppos.pos % hsize);
  let retval = 0;
  while (retval < buf.length) {
    let nr = huge_page_size(h);
    const isize = inode.i_size;
    if (!isize) break;
    const end_index = Number((isize - 1n) / hsize);
    if (index > end_index) break;
    if (index === end_index) {
      nr = Number((isize - 1n) % hsize) + 1;
      if (nr <= offset) break;
    }
    nr = Math.min(nr - offset, buf.length - retval);
    const folio = filemap_lock_hugetlb_folio(kernel, h, inode, index);
    if (IS_ERR(folio)) {
      buf.fill(0, retval, retval + nr);
    } else {
      folio_unlock(kernel.store, folio);
      if (folio_test_hwpoison(kernel.store, folio)) {
        folio_put(kernel.store, folio);
        if (!retval) retval = -Errno.EIO;
        break;
      }
      /* copy_folio_to_iter(): a read the platform refuses stops the copy (-EFAULT) */
      const refused = hugetlbfs_read_refused(kernel, folio, offset, nr);
      const data = refused === 0 ? kernel.phys.readRange(folio, offset, nr) : refused === MM_HOST_ACCESS_ZERO ? new Uint8Array(nr) : undefined;
      folio_put(kernel.store, folio);
      if (data === undefined) {
        if (!retval) retval = -Errno.EFAULT;
        break;
      }
      if (!(data instanceof Uint8Array)) {
        if (!retval) retval = -Errno.EIO;
        break;
      }
      buf.set(data, retval);
    }
    kernel.cost.charge('page_copy_4k', nr / PAGE_SIZE);
    offset += nr;
    retval += nr;
    index += Math.floor(offset / huge_page_size(h));
    offset %= huge_page_size(h);
  }
  if (retval >= 0) ppos.pos = BigInt(index) * hsize + BigInt(offset);
  return retval;
}

/**
 * remove_inode_hugepages(): take the huge folios of byte range [lstart, lend) out of the page
 * cache (lend MAX_LFS_FILESIZE: truncation to lstart), unmapping any that were faulted in again,
 * and give back their blocks.
 */
export function remove_inode_hugepages(inode: Inode, lstart: bigint, lend: bigint): void {
  const info = HUGETLBFS_I(inode);
  const kernel = info.kernel;
  const store = kernel.store;
  const h = info.hstate;
  const mapping = inode.i_mapping;
  const end = Number(lend >> BigInt(PAGE_SHIFT));
  const truncate_op = lend === MAX_LFS_FILESIZE;
  const next: PgoffRef = { index: Number(lstart >> BigInt(PAGE_SHIFT)) };
  const fbatch = new FolioBatch();
  let freed = 0;
  while (next.index <= end - 1 && filemap_get_folios(kernel, mapping, next, end - 1, fbatch)) {
    const n = folio_batch_count(fbatch);
    for (let k = 0; k < n; k++) {
      const folio = fbatch.folios[k];
      /* remove_inode_single_folio() */
      if (folio_mapped(store, folio)) unmap_mapping_folio(kernel, folio);
      folio_lock(store, folio);
      /* hugetlb_delete_from_page_cache() */
      folio_clear_dirty(store, folio);
      folio_clear_uptodate(store, folio);
      const idx = store.index[store.idx(folio)] / pages_per_huge_page(h);
      filemap_remove_folio(kernel, folio);
      folio_unlock(store, folio);
      freed++;
      if (!truncate_op) hugetlb_unreserve_pages(inode, idx, idx + 1, 1);
    }
    folio_batch_release(store, fbatch);
  }
  if (truncate_op) hugetlb_unreserve_pages(inode, Number(lstart / BigInt(huge_page_size(h))), Infinity, freed);
}

/**
 * hugetlb_unreserve_pages(): the huge indexes [start, end) leave the resv_map; those that were
 * only reserved (`freed` of them had pages) give their reservation back, and the inode loses the
 * blocks of the freed pages.
 */
function hugetlb_unreserve_pages(inode: Inode, start: number, end: number, freed: number): void {
  const info = HUGETLBFS_I(inode);
  let chg = 0;
  for (const idx of [...info.resv_map]) {
    if (idx >= start && idx < end) {
      info.resv_map.delete(idx);
      chg++;
    }
  }
  inode.i_blocks -= BigInt(blocks_per_huge_page(info.hstate) * freed);
  hugetlb_acct_memory(info.kernel, info.hstate, -(chg - freed));
}

/**
 * hugetlb_reserve_pages(): a new mapping of huge indexes [from, to) reserves the pages it may
 * fault in, unless it is VM_NORESERVE. A shared mapping reserves, in the inode's resv_map, the
 * indexes nobody reserved or instantiated yet, and fails (false: -ENOMEM) when the pool cannot
 * hold them. A private mapping's reservation belongs to the VMA in the kernel; cocosim checks
 * that the pool could hold it but does not keep it.
 */
export function hugetlb_reserve_pages(inode: Inode, from: number, to: number, vm_flags: number): boolean {
  if (vm_flags_test(vm_flags, VM_NORESERVE)) return true;
  const info = HUGETLBFS_I(inode);
  const h = info.hstate;
  if (!(vm_flags & VM_MAYSHARE)) {
    const available = h.free_huge_pages - h.resv_huge_pages + h.nr_overcommit_huge_pages - h.surplus_huge_pages;
    return to - from <= available;
  }
  let chg = 0;
  for (let idx = from; idx < to; idx++) if (!info.resv_map.has(idx)) chg++;
  if (hugetlb_acct_memory(info.kernel, h, chg)) return false;
  for (let idx = from; idx < to; idx++) info.resv_map.add(idx);
  return true;
}

/** hugetlb_vmtruncate(): set i_size to a huge-page-aligned offset, unmap and drop what is past it. */
function hugetlb_vmtruncate(inode: Inode, offset: bigint): void {
  const info = HUGETLBFS_I(inode);
  if (offset % BigInt(huge_page_size(info.hstate)) !== 0n) BUG(`hugetlb_vmtruncate to unaligned ${offset}`);
  inode.i_size = offset;
  unmap_mapping_range(info.kernel, inode.i_mapping, offset, 0n, true);
  remove_inode_hugepages(inode, offset, MAX_LFS_FILESIZE);
}

/** hugetlbfs_zero_partial_page(): zero bytes [start, end) of the huge page holding `start`, if present. */
function hugetlbfs_zero_partial_page(inode: Inode, start: bigint, end: bigint): void {
  const info = HUGETLBFS_I(inode);
  const kernel = info.kernel;
  const h = info.hstate;
  const hsize = BigInt(huge_page_size(h));
  const folio = filemap_lock_hugetlb_folio(kernel, h, inode, Number(start / hsize));
  if (IS_ERR(folio)) return;
  const s = Number(start % hsize);
  let e = Number(end % hsize);
  if (!e) e = huge_page_size(h);
  folio_zero_range(kernel, folio, s, e - s);
  folio_unlock(kernel.store, folio);
  folio_put(kernel.store, folio);
}

/**
 * hugetlbfs_punch_hole(): -EPERM under F_SEAL_WRITE/F_SEAL_FUTURE_WRITE; otherwise zero the
 * covered part of the partial huge pages at the edges, unmap and free the whole ones.
 */
function hugetlbfs_punch_hole(inode: Inode, offset: bigint, len: bigint): number {
  const info = HUGETLBFS_I(inode);
  const kernel = info.kernel;
  const hsize = BigInt(huge_page_size(info.hstate));
  const hole_start = ((offset + hsize - 1n) / hsize) * hsize;
  const hole_end = ((offset + len) / hsize) * hsize;
  if (info.seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) return -Errno.EPERM;
  if (offset < hole_start) hugetlbfs_zero_partial_page(inode, offset, offset + len < hole_start ? offset + len : hole_start);
  if (hole_end > hole_start) unmap_mapping_range(kernel, inode.i_mapping, hole_start, hole_end - hole_start, true);
  if (offset + len > hole_end && offset + len > hole_start) hugetlbfs_zero_partial_page(inode, hole_end, offset + len);
  if (hole_end > hole_start) remove_inode_hugepages(inode, hole_start, hole_end);
  return 0;
}

/**
 * hugetlbfs_fallocate(): -EOPNOTSUPP for modes other than KEEP_SIZE / PUNCH_HOLE; punch; or
 * allocate the huge pages of the range, rounded out, that are not there yet. F_SEAL_GROW past
 * i_size is -EPERM; an empty pool -ENOSPC (pages already added stay, i_size does not change).
 */
export function hugetlbfs_fallocate(file: File, mode: number, offset: bigint, len: bigint): number {
  const inode = file.f_inode;
  const info = HUGETLBFS_I(inode);
  const kernel = info.kernel;
  const h = info.hstate;
  if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)) return -Errno.EOPNOTSUPP;
  if (mode & FALLOC_FL_PUNCH_HOLE) return hugetlbfs_punch_hole(inode, offset, len);
  const hsize = BigInt(huge_page_size(h));
  const start = Number(offset / hsize);
  const end = Number((offset + len + hsize - 1n) / hsize);
  if (info.seals & F_SEAL_GROW && offset + len > inode.i_size) return -Errno.EPERM;
  for (let index = start; index < end; index++) {
    const present = inode.i_mapping.i_pages.xa_load(index * pages_per_huge_page(h));
    if (present !== undefined) continue;
    const err = hugetlbfs_add_new_folio(kernel, h, inode, index);
    if (err) return err;
  }
  if (!(mode & FALLOC_FL_KEEP_SIZE) && offset + len > inode.i_size) inode.i_size = offset + len;
  return 0;
}

/**
 * A new huge folio at huge index `idx`: from the pool, cleared, uptodate, in the page cache. The
 * folio keeps only the page cache's references.
 * @returns 0 or -errno (-ENOSPC)
 */
function hugetlbfs_add_new_folio(kernel: Kernel, h: Hstate, inode: Inode, idx: number): number {
  const resv_map = HUGETLBFS_I(inode).resv_map;
  const folio = alloc_hugetlb_folio(kernel, h, resv_map.has(idx));
  if (IS_ERR(folio)) return folio.errno;
  /* vma_commit_reservation(): region_add() */
  resv_map.add(idx);
  folio_zero_user(kernel, folio);
  __folio_mark_uptodate(kernel.store, folio);
  const err = hugetlb_add_to_page_cache(kernel, h, folio, inode.i_mapping, idx);
  if (err) {
    folio_put(kernel.store, folio);
    return err;
  }
  folio_unlock(kernel.store, folio);
  folio_put(kernel.store, folio);
  return 0;
}

/**
 * The folio behind file page `pgoff` of a hugetlbfs file for a fault or a pin
 * (hugetlb_no_page() and memfd_alloc_folio()): found in the page cache or newly allocated,
 * returned unlocked with a reference for the caller.
 * @returns the folio, or ERR_PTR(-EINVAL) at or past EOF (the fault's VM_FAULT_SIGBUS),
 * ERR_PTR(-ENOSPC) when the pool is empty (also VM_FAULT_SIGBUS)
 */
export function hugetlbfs_alloc_folio(file: File, pgoff: number): Folio | ErrPtr {
  const inode = file.f_inode;
  const info = HUGETLBFS_I(inode);
  const kernel = info.kernel;
  const h = info.hstate;
  const idx = Math.floor(pgoff / pages_per_huge_page(h));
  if (BigInt(idx) * BigInt(huge_page_size(h)) >= inode.i_size) return ERR_PTR(-Errno.EINVAL);
  let folio = filemap_lock_hugetlb_folio(kernel, h, inode, idx);
  if (IS_ERR(folio)) {
    const err = hugetlbfs_add_new_folio(kernel, h, inode, idx);
    if (err) return ERR_PTR(err);
    folio = filemap_lock_hugetlb_folio(kernel, h, inode, idx);
    if (IS_ERR(folio)) BUG('hugetlb folio vanished after insertion');
  }
  folio_unlock(kernel.store, folio);
  return folio;
}

/**
 * hugetlbfs_setattr(): a size must be a multiple of the huge page size (-EINVAL) and respect
 * F_SEAL_SHRINK / F_SEAL_GROW (-EPERM); then hugetlb_vmtruncate(). Modes change without any
 * F_SEAL_EXEC check.
 */
export function hugetlbfs_setattr(inode: Inode, attr: Iattr): number {
  const info = HUGETLBFS_I(inode);
  if (attr.ia_valid & ATTR_SIZE) {
    const oldsize = inode.i_size;
    const newsize = attr.ia_size;
    if (newsize % BigInt(huge_page_size(info.hstate)) !== 0n) return -Errno.EINVAL;
    if ((newsize < oldsize && info.seals & F_SEAL_SHRINK) || (newsize > oldsize && info.seals & F_SEAL_GROW)) return -Errno.EPERM;
    hugetlb_vmtruncate(inode, newsize);
  }
  if (attr.ia_valid & ATTR_MODE) inode.i_mode = (inode.i_mode & ~S_IALLUGO) | ((attr as IattrMode).ia_mode & S_IALLUGO);
  return 0;
}

/** generic_fillattr() with i_blkbits = huge_page_shift(): st_blksize is the huge page size. */
export function hugetlbfs_getattr(inode: Inode, stat: Kstat): number {
  generic_fillattr(inode, stat);
  stat.blksize = 2 ** huge_page_shift(hstate_inode(inode));
  return 0;
}

/** hugetlbfs_evict_inode(): drop every huge page, then forget the page cache. */
function hugetlbfs_evict_inode(inode: Inode): void {
  remove_inode_hugepages(inode, 0n, MAX_LFS_FILESIZE);
  unregisterMapping(HUGETLBFS_I(inode).kernel.store, inode.i_mapping);
}

/* Mapping: hugetlbfs_file_mmap_prepare() and hugetlb_vm_ops (mm/hugetlb.c) */

/** PGOFF_LOFFT_MAX: a page offset whose byte offset would not fit a loff_t (its top 13 bits). */
const PGOFF_LOFFT_MAX = 2 ** 51;

/**
 * hugetlbfs_file_mmap(): the VMA becomes VM_HUGETLB | VM_DONTEXPAND with hugetlb_vm_ops; its file
 * offset must be huge-page aligned and its end representable (-EINVAL); the pages it may fault in
 * are reserved (-ENOMEM when the pool cannot hold them, unless VM_NORESERVE); a writable mapping
 * past EOF extends i_size to its end.
 */
export function hugetlbfs_file_mmap(file: File, v: unknown): number {
  const vma = v as VmAreaStruct;
  const inode = file.f_inode;
  const h = hstate_inode(inode);
  const nr = pages_per_huge_page(h);
  vma.vm_flags = vm_flags_or(vma.vm_flags, VM_HUGETLB | VM_DONTEXPAND);
  vma.vm_ops = hugetlb_vm_ops;
  if (vma.vm_pgoff >= PGOFF_LOFFT_MAX) return -Errno.EINVAL;
  if (vma.vm_pgoff % nr) return -Errno.EINVAL;
  const vma_len = BigInt(vma_pages(vma)) * BigInt(PAGE_SIZE);
  const len = vma_len + BigInt(vma.vm_pgoff) * BigInt(PAGE_SIZE);
  if (len > MAX_LFS_FILESIZE) return -Errno.EINVAL;
  if (!hugetlb_reserve_pages(inode, vma.vm_pgoff / nr, Number(len / BigInt(huge_page_size(h))), vma.vm_flags)) return -Errno.ENOMEM;
  if (vma.vm_flags & VM_WRITE && inode.i_size < len) inode.i_size = len;
  return 0;
}

/** make_huge_pte(): a huge leaf for `vma`, writable and dirty or write-protected. */
function make_huge_pte(vma: VmAreaStruct, writable: boolean): number {
  const entry = pte_mkyoung(vma.vm_page_prot) | _PAGE_PSE;
  return writable ? pte_mkwrite(pte_mkdirty(entry)) : pte_wrprotect(entry);
}

/** hugetlb_add_new_anon_rmap(): a new huge folio becomes the private (COW) page of `vma`. */
export function hugetlb_add_new_anon_rmap(store: PageStore, folio: Folio, vma: VmAreaStruct, vpn: number): void {
  anon_vma_prepare(vma);
  const i = store.idx(folio);
  store.mapping[i] = vma.anon_vma!.id | FOLIO_MAPPING_ANON;
  store.index[i] = linear_page_index(vma, vpn);
  store._entire_mapcount[i] = 0;
  store._large_mapcount[i] = 0;
  SetPageAnonExclusive(store, folio);
}

/** The huge leaf slot of `vpn`: a PMD for 2 MiB pages, a PUD for 1 GiB ones. */
interface HugeSlot {
  readonly pud: boolean;
  readonly key: number;
}

function huge_slot(h: Hstate, vpn: number): HugeSlot {
  return h.order > PMD_ORDER ? { pud: true, key: pud_index_of(vpn) } : { pud: false, key: pmd_index_of(vpn) };
}

function huge_entry(vma: VmAreaStruct, slot: HugeSlot): HugeEntry | undefined {
  const pt = vma.vm_mm.pgd;
  return slot.pud ? pud_entry(pt, slot.key) : pmd_entry(pt, slot.key);
}

function set_huge_pte_at(vma: VmAreaStruct, slot: HugeSlot, folio: Folio, entry: number): void {
  const pt = vma.vm_mm.pgd;
  if (slot.pud) set_pud_at(pt, slot.key, folio, entry);
  else set_pmd_at(pt, slot.key, folio, entry);
}

/**
 * hugetlb_wp(): a write to a write-protected huge leaf of a private mapping. An exclusive anon
 * page is reused; otherwise a new huge page (not reserved) gets a copy and replaces the mapping.
 * FAULT_FLAG_UNSHARE (a read-only GUP pin) does the same but leaves the leaf read-only.
 */
function hugetlb_wp(vmf: VmFault, h: Hstate, slot: HugeSlot, hvpn: number): number {
  const unshare = (vmf.flags & FAULT_FLAG_UNSHARE) !== 0;
  const vma = vmf.vma;
  const kernel = vma.vm_mm.kernel;
  const store = kernel.store;
  const e = huge_entry(vma, slot)!;
  const old = e.val as Folio;
  const nr = pages_per_huge_page(h);
  if (store.mapping[store.idx(old)] & FOLIO_MAPPING_ANON && PageAnonExclusive(store, old)) {
    if (!unshare) set_huge_pte_at(vma, slot, old, pte_mkwrite(pte_mkdirty(e.flags)));
    return 0;
  }
  const folio = alloc_hugetlb_folio(kernel, h);
  if (IS_ERR(folio)) return VM_FAULT_SIGBUS;
  for (let k = 0; k < nr; k++) kernel.phys.copy((folio + k) as Pfn, (old + k) as Pfn);
  kernel.cost.charge('page_copy_4k', nr);
  __folio_mark_uptodate(store, folio);
  hugetlb_add_new_anon_rmap(store, folio, vma, hvpn);
  folio_remove_rmap_pmd(store, old, vma);
  folio_put(store, old);
  set_huge_pte_at(vma, slot, folio, make_huge_pte(vma, !unshare));
  flush_tlb_mm_range(vma.vm_mm, hvpn, hvpn + nr);
  return 0;
}

/**
 * hugetlb_fault() as hugetlb_vm_ops->huge_fault: map the huge page of the faulting address by a
 * PMD (2 MiB) or PUD (1 GiB) leaf. A missing page (hugetlb_no_page()) past EOF is VM_FAULT_SIGBUS;
 * otherwise it comes from the page cache, or from the pool (-ENOSPC: VM_FAULT_SIGBUS), cleared,
 * into the page cache for a shared mapping (using the mapping's reservation) or as a private page.
 * Shared writable mappings map it writable; a write to a private mapping copies it (hugetlb_wp()).
 * Huge pages count in no RSS counter (hugetlb_usage is not modelled).
 */
export function hugetlb_fault(vmf: VmFault): number {
  const vma = vmf.vma;
  const file = vma.vm_file!;
  const inode = file.f_inode;
  const info = HUGETLBFS_I(inode);
  const kernel = info.kernel;
  const store = kernel.store;
  const h = info.hstate;
  const nr = pages_per_huge_page(h);
  const hvpn = vmf.vpn - ((vmf.vpn - vma.start_vpn) % nr);
  const slot = huge_slot(h, hvpn);
  const write = (vmf.flags & FAULT_FLAG_WRITE) !== 0;
  const shared = (vma.vm_flags & VM_SHARED) !== 0;
  const e = huge_entry(vma, slot);
  if (e !== undefined) {
    if ((write || vmf.flags & FAULT_FLAG_UNSHARE) && !pte_write(e.flags)) {
      if (!shared) return hugetlb_wp(vmf, h, slot, hvpn);
      if (!write) return 0;
      e.flags = pte_mkwrite(pte_mkdirty(e.flags));
    }
    e.flags = pte_mkyoung(write ? pte_mkdirty(e.flags) : e.flags);
    return 0;
  }
  /* hugetlb_no_page() */
  const idx = Math.floor(linear_page_index(vma, hvpn) / nr);
  if (BigInt(idx) * BigInt(huge_page_size(h)) >= inode.i_size) return VM_FAULT_SIGBUS;
  let folio = filemap_lock_hugetlb_folio(kernel, h, inode, idx);
  let anon = false;
  if (IS_ERR(folio)) {
    const mayshare = (vma.vm_flags & VM_MAYSHARE) !== 0;
    const f = alloc_hugetlb_folio(kernel, h, mayshare && info.resv_map.has(idx));
    if (IS_ERR(f)) return VM_FAULT_SIGBUS;
    folio_zero_user(kernel, f);
    __folio_mark_uptodate(store, f);
    if (mayshare) {
      if (hugetlb_add_to_page_cache(kernel, h, f, inode.i_mapping, idx)) BUG('hugetlb_no_page: the page cache slot was taken');
      info.resv_map.add(idx);
    } else {
      hugetlb_add_new_anon_rmap(store, f, vma, hvpn);
      anon = true;
      __folio_set_locked(store, f);
    }
    folio = f;
  }
  /* the lookup's (or the allocation's) reference becomes the mapping's */
  if (!anon) folio_add_file_rmap_pmd(store, folio, vma);
  set_huge_pte_at(vma, slot, folio, make_huge_pte(vma, (vma.vm_flags & VM_WRITE) !== 0 && shared));
  folio_unlock(store, folio);
  if (write && !shared && !anon) return hugetlb_wp(vmf, h, slot, hvpn);
  if (write && !shared) huge_entry(vma, slot)!.flags = make_huge_pte(vma, true);
  return 0;
}

/** hugetlb_vm_op_split(): a hugetlb VMA splits only at huge page boundaries. */
function hugetlb_vm_op_split(vma: VmAreaStruct, addr: bigint): number {
  return addr % BigInt(huge_page_size(hstate_file(vma.vm_file!))) ? -Errno.EINVAL : 0;
}

/** hugetlb_vm_ops (mm/hugetlb.c). */
export const hugetlb_vm_ops: VmOperationsStruct = {
  may_split: hugetlb_vm_op_split,
  huge_fault: (vmf) => hugetlb_fault(vmf),
};

export const hugetlbfs_file_operations: FileOperations = {
  mmap: hugetlbfs_file_mmap,
  read: hugetlbfs_read_iter,
  fallocate: hugetlbfs_fallocate,
  release: (inode) => iput(inode, hugetlbfs_evict_inode),
  /* memfd_pin_folios() takes hugetlbfs files (mm/gup.c) */
  pin_folios: (file, start, end, folios, max_folios, offset) => memfd_pin_folios(file, start, end, folios, max_folios, offset),
};

export const hugetlbfs_inode_operations: InodeOperations = {
  setattr: hugetlbfs_setattr,
  getattr: hugetlbfs_getattr,
};

/**
 * hugetlbfs_aops: memory-failure keeps a poisoned huge folio in the page cache
 * (hugetlbfs_error_remove_folio()), so that the page stays isolated until the file is truncated.
 */
export const hugetlbfs_aops: AddressSpaceOperations = {
  error_remove_folio: () => 0,
};

/**
 * hugetlb_file_setup(): an unlinked hugetlbfs file of the hstate `page_size_log` names (0: the
 * default 2 MiB), opened O_RDWR.
 * @returns the File, or ERR_PTR(-ENODEV) for a size with no hstate
 */
export function hugetlb_file_setup(kernel: Kernel, name: string, size: bigint, _acctflag: number, _creat_flags: number, page_size_log: number): File | ErrPtr {
  const h = hstate_sizelog(hugetlb_pool(kernel), page_size_log);
  if (h === undefined) return ERR_PTR(-Errno.ENODEV);
  const inode = new Inode(kernel.get_next_ino(), S_IFREG | 0o777, hugetlbfs_inode_operations, hugetlbfs_file_operations, kernel.next_mapping_id());
  inode.i_private = new HugetlbfsInodeInfo(kernel, h, inode, name);
  inode.i_mapping.a_ops = hugetlbfs_aops;
  registerMapping(kernel.store, inode.i_mapping);
  inode.i_size = size;
  inode.i_nlink = 0; /* clear_nlink() */
  return alloc_file_pseudo(inode, O_RDWR, hugetlbfs_file_operations);
}
