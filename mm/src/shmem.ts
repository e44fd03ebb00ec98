/**
 * tmpfs / shmem files (mm/shmem.c, Linux 6.18), the backing of memfd_create() and of shared
 * anonymous mappings: a file whose data lives only in its page cache.
 *
 * What is modelled as the kernel does it:
 * - Folios come from the page allocator (GFP_HIGHUSER_MOVABLE, order 0: the internal shm_mnt
 *   has huge=never and the per-size shmem_enabled controls default to never), are swap-backed,
 *   dirty and on the LRU while in the page cache, and hold the page cache's reference.
 * - Uptodate: a folio allocated by fallocate() is not cleared; it stays !uptodate, reads treat it
 *   as a hole (zeros), and it is cleared when a fault or a second fallocate() needs its contents
 *   (shmem_get_folio_gfp()'s "clear:" label). A folio allocated for a write is cleared only where
 *   the write does not cover it (shmem_write_end()). A fault clears a new folio at once. Zeroing
 *   is charged as page_zero_4k (fractionally for partial pages).
 * - Accounting: i_blocks counts 512-byte blocks of the folios allocated to the file
 *   (shmem_inode_acct_blocks() -> inode_add_bytes()), including folios beyond i_size
 *   (FALLOC_FL_KEEP_SIZE) and !uptodate ones; info->alloced counts the same pages.
 * - Seals (mm/memfd.c stores them here): F_SEAL_WRITE/F_SEAL_FUTURE_WRITE stop write(2) and
 *   hole punching, F_SEAL_GROW stops growth by write, ftruncate and fallocate, F_SEAL_SHRINK
 *   stops ftruncate to a smaller size, F_SEAL_EXEC stops chmod of the execute bits.
 * - Truncation and hole punching unmap the range from every user mapping first
 *   (mapping_unmap_hooks, truncate.ts), then remove the folios a batch at a time.
 *
 * - Swap: reclaim writes a folio out with shmem_writeout(), which moves it to the swap cache and
 *   leaves a swap entry in the page cache (a value entry, swapops.ts); any lookup that finds one
 *   reads the folio back (shmem_swapin_folio()), and truncation frees it (shmem_free_swap()).
 *   info->swapped counts those pages, which stay in i_blocks.
 *
 * What is not: huge pages in shmem, the tmpfs size and inode limits (shm_mnt has none), memcg,
 * userfaultfd, NUMA policies, SHM_LOCK, swap read errors turned into poisoned entries
 * (shmem_set_folio_swapin_error(): a failed read is -EIO and the entry stays), and the
 * shmem_falloc handshake with concurrent faults (the simulator runs one operation at a time).
 */
import { BUG, Errno, ERR_PTR, PAGE_SHIFT, costId, PAGE_SIZE, XA_MAX_INDEX, type ErrPtr, type Pfn } from '@cocosim/core';
import {
  AddressSpace,
  ATTR_SIZE,
  File,
  O_RDWR,
  S_IFMT,
  S_IFREG,
  S_APPEND,
  S_IMMUTABLE,
  S_NOATIME,
  type AddressSpaceOperations,
  type FileOperations,
  type Iattr,
  type InodeOperations,
  type Kstat,
  type Loff,
  Inode,
  O_APPEND,
} from './fs.js';
import { alloc_file_pseudo, iput } from './file_table.js';
import {
  filemap_get_entry,
  filemap_remove_folio,
  find_get_entries,
  find_lock_entries,
  folio_add_lru,
  folio_file_page,
  folio_mark_accessed,
  folio_next_index,
  folio_pos,
  lookupMapping,
  registerMapping,
  unregisterMapping,
  page_cache_insert,
  type PgoffRef,
} from './filemap.js';
import {
  folio_lock,
  folio_mapped,
  folio_mark_dirty,
  folio_nr_pages,
  folio_put,
  folio_put_refs,
  folio_ref_add,
  folio_size,
  folio_try_get,
  folio_unlock,
  noop_dirty_folio,
  type Folio,
} from './folio.js';
import { GFP_HIGHUSER_MOVABLE, type gfp_t } from './gfp.js';
import type { Kernel } from './kernel.js';
import { memfd_pin_folios } from './gup.js';
import { uaccess_host_access } from './fault.js';
import { MM_HOST_ACCESS_ZERO, call_mm_hook, mm_hook_present } from './mm_hooks.js';
import {
  PG_dirty,
  PG_head,
  PG_locked,
  PG_swapbacked,
  PG_uptodate,
  __folio_set_locked,
  __folio_set_swapbacked,
  folio_mark_uptodate,
  folio_set_referenced,
  folio_test_hwpoison,
  folio_test_large,
  folio_test_uptodate,
  PageHWPoison,
  folio_test_has_hwpoisoned,
} from './page-flags.js';
import { FolioBatch, folio_batch_count, folio_batch_release } from './pagevec.js';
import { lru_add } from './mm_inline.js';
import { AOP_WRITEPAGE_ACTIVATE, swap_writeout } from './page_io.js';
import { folio_alloc_swap, folio_swap_entry, free_swap_and_cache_nr, swap_cache_alloc_folio, swap_cache_del_folio, swap_cache_get_folio } from './swap_state.js';
import { get_swap_device, swap_duplicate_nr, swap_free_nr, total_swap_pages } from './swapfile.js';
import { radix_to_swp_entry, swp_to_radix_entry, xa_is_value } from './swapops.js';
import {
  pos_to_index,
  truncate_inode_folio,
  truncate_inode_partial_folio,
  truncate_small_folios,
  unmap_mapping_range,
} from './truncate.js';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE } from './uapi/falloc.js';
import { FS_APPEND_FL, FS_CASEFOLD_FL, FS_IMMUTABLE_FL, FS_NOATIME_FL, FS_NODUMP_FL } from './uapi/fs.js';
import { fileattr_fill_flags, fileattr_has_fsx, type FileKattr } from './file_attr.js';
import { F_SEAL_EXEC, F_SEAL_FUTURE_WRITE, F_SEAL_GROW, F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_WRITE } from './uapi/fcntl.js';
import { ATTR_MODE, MAX_LFS_FILESIZE, type IattrMode } from './attr.js';
import { generic_fillattr } from './stat.js';
import { filemap_map_pages } from './filemap_map.js';
import { migrate_folio } from './migrate.js';
import { VM_FAULT_LOCKED, VM_FAULT_OOM, VM_FAULT_SIGBUS, VM_NORESERVE, type VmAreaStruct, type VmFault, type VmOperationsStruct } from './mm_types.js';

/** enum sgp_type (include/linux/shmem_fs.h): how shmem_get_folio() treats a missing folio. */
/** Don't exceed i_size, don't allocate: a hole reads as no folio. */
export const SGP_READ = 0;
/** Like SGP_READ, but a hole is -ENOENT (and a fallocated folio is cleared and used). */
export const SGP_NOALLOC = 1;
/** Don't exceed i_size, may allocate. */
export const SGP_CACHE = 2;
/** May exceed i_size, may allocate a !uptodate folio (the writer fills it). */
export const SGP_WRITE = 3;
/** Like SGP_WRITE, but make an existing !uptodate folio uptodate. */
export const SGP_FALLOC = 4;
export type sgp_type = typeof SGP_READ | typeof SGP_NOALLOC | typeof SGP_CACHE | typeof SGP_WRITE | typeof SGP_FALLOC;


/* Cost entries of the fault and truncation paths, by number (costId()). */
const PAGE_ALLOC = costId('page_alloc');
const PAGE_ZERO_4K = costId('page_zero_4k');
const PAGE_FREE = costId('page_free');

/** The largest page index a file can have: MAX_LFS_FILESIZE >> PAGE_SHIFT. */
const MAX_INDEX = Number(MAX_LFS_FILESIZE >> BigInt(PAGE_SHIFT));

/** BLOCKS_PER_PAGE: 512-byte blocks per page, the unit of i_blocks. */
const BLOCKS_PER_PAGE = PAGE_SIZE / 512;

/** struct shmem_sb_info of the host's internal mount (shm_mnt): which host its inodes live on. */
export class ShmemSbInfo {
  constructor(readonly kernel: Kernel) {}
}

const shm_mnt = new WeakMap<Kernel, ShmemSbInfo>();

/** The host's shm_mnt superblock info, made on first use (shmem_init()). */
export function shmem_sb(kernel: Kernel): ShmemSbInfo {
  let sb = shm_mnt.get(kernel);
  if (sb === undefined) {
    sb = new ShmemSbInfo(kernel);
    shm_mnt.set(kernel, sb);
  }
  return sb;
}

/** struct shmem_inode_info: a shmem inode's own state (inode->i_private here). */
export class ShmemInodeInfo {
  /** F_SEAL_* (memfd.c reads and sets them); a new inode is sealed against sealing. */
  seals = F_SEAL_SEAL;
  /** VM_NORESERVE and friends, from shmem_file_setup(). */
  flags: number;
  /** Data pages allocated to the file (in the page cache or swapped). */
  alloced = 0;
  /** Pages in swap: swap entries in the page cache. */
  swapped = 0;
  /** The highest page index fallocate() committed to (shmem_fallocend()). */
  fallocend = 0;
  /** The dentry name, "memfd:<name>" for a memfd (what /proc/self/fd/N links to). */
  name: string;
  /** FS_*_FL set through FS_IOC_SETFLAGS (info->fsflags). */
  fsflags = 0;

  constructor(
    readonly sb: ShmemSbInfo,
    readonly vfs_inode: Inode,
    flags: number,
    name: string,
  ) {
    this.flags = flags & VM_NORESERVE;
    this.name = name;
  }
}

/** SHMEM_I(): the shmem_inode_info of a shmem inode. */
export function SHMEM_I(inode: Inode): ShmemInodeInfo {
  const info = inode.i_private;
  if (!(info instanceof ShmemInodeInfo)) BUG(`SHMEM_I of inode ${inode.i_ino}, which is not a shmem inode`);
  return info;
}

/** shmem_mapping(): the address_space belongs to a shmem inode. */
export function shmem_mapping(mapping: AddressSpace): boolean {
  return mapping.a_ops === shmem_aops;
}

/** shmem_file(): the file is a shmem file. */
export function shmem_file(file: File): boolean {
  return shmem_mapping(file.f_inode.i_mapping);
}

/**
 * (loff_t)index << PAGE_SHIFT >= i_size: the page at `index` starts at or past the end of the
 * file. In numbers while index * PAGE_SIZE is below 2^53 (a larger i_size then rounds to at least
 * 2^53, which keeps the answer exact), in bigints beyond: faults ask this for every page.
 */
function index_at_or_past(index: number, i_size: bigint): boolean {
  if (index < 2 ** 41) return index * PAGE_SIZE >= Number(i_size);
  return BigInt(index) << BigInt(PAGE_SHIFT) >= i_size;
}

function shmem_kernel(inode: Inode): Kernel {
  return SHMEM_I(inode).sb.kernel;
}

/* Accounting */

/** shmem_inode_acct_blocks(): charge `pages` to the inode (inode_add_bytes(): i_blocks). */
function shmem_inode_acct_blocks(inode: Inode, pages: number): void {
  inode.add_blocks(pages * BLOCKS_PER_PAGE);
}

/** shmem_inode_unacct_blocks(): the reverse. */
function shmem_inode_unacct_blocks(inode: Inode, pages: number): void {
  inode.add_blocks(-pages * BLOCKS_PER_PAGE);
}

/**
 * shmem_recalc_inode(): account `alloced` new pages, then give back the blocks of pages that left
 * the page cache since (alloced - swapped - nrpages).
 */
export function shmem_recalc_inode(inode: Inode, alloced: number, swapped: number): void {
  const info = SHMEM_I(inode);
  info.alloced += alloced;
  info.swapped += swapped;
  let freed = info.alloced - info.swapped - inode.i_mapping.nrpages;
  if (swapped > 0) freed += swapped;
  if (freed > 0) {
    info.alloced -= freed;
    shmem_inode_unacct_blocks(inode, freed);
  }
}

/**
 * shmem_charge(): `pages` pages that a caller puts in the page cache itself (collapse_file()
 * filling the holes of a THP) are charged to the inode and counted in mapping->nrpages first.
 * false if the inode could not take them (tmpfs size limits: shm_mnt has none, so never here).
 */
export function shmem_charge(inode: Inode, pages: number): boolean {
  shmem_inode_acct_blocks(inode, pages);
  /* nrpages adjustment first, then shmem_recalc_inode() when balanced */
  inode.i_mapping.nrpages += pages;
  shmem_recalc_inode(inode, pages, 0);
  return true;
}

/** shmem_uncharge(): after the caller took back `pages` pages of nrpages, settle the blocks. */
export function shmem_uncharge(inode: Inode, _pages: number): void {
  shmem_recalc_inode(inode, 0, 0);
}

/* The page cache of a shmem file */

/**
 * shmem_add_to_page_cache(): insert a locked, swap-backed folio at `index` with the page cache's
 * references. Unlike __filemap_add_folio() it emits no mm_filemap_add_to_page_cache event (as in
 * the kernel).
 * @returns 0 or -EEXIST.
 */
function shmem_add_to_page_cache(kernel: Kernel, folio: Folio, mapping: AddressSpace, index: number, expected?: number): number {
  const store = kernel.store;
  const nr = folio_nr_pages(store, folio);
  folio_ref_add(store, folio, nr);
  const i = store.idx(folio);
  store.mapping[i] = mapping.id;
  store.index[i] = index;
  let err: number;
  if (expected === undefined) {
    err = page_cache_insert(mapping, folio, index, nr);
  } else {
    /* replace the swap entry the folio was read for (xas_store() over `expected`) */
    err = mapping.i_pages.xa_load(index) === expected ? 0 : -Errno.EEXIST;
    if (!err) mapping.i_pages.xa_store(index, folio);
  }
  if (err) {
    store.mapping[i] = 0;
    store._refcount[i] -= nr;
    return err;
  }
  mapping.nrpages += nr;
  return 0;
}

/**
 * shmem_alloc_and_add_folio() for order 0: allocate a folio, lock it, add it to the page cache and
 * charge it to the inode.
 * @returns the folio (locked, with the caller's reference) or -ENOMEM.
 */
function shmem_alloc_and_add_folio(kernel: Kernel, gfp: gfp_t, inode: Inode, index: number): Folio | number {
  const store = kernel.store;
  const pfn = kernel.page_alloc.folio_alloc(gfp, 0);
  if (pfn < 0) return -Errno.ENOMEM;
  kernel.cost.chargeId(PAGE_ALLOC);
  const folio = pfn as Folio;
  __folio_set_locked(store, folio);
  __folio_set_swapbacked(store, folio);
  const err = shmem_add_to_page_cache(kernel, folio, inode.i_mapping, index);
  if (err) {
    folio_unlock(store, folio);
    folio_put(store, folio);
    return err;
  }
  shmem_inode_acct_blocks(inode, 1);
  shmem_recalc_inode(inode, 1, 0);
  folio_add_lru(store, folio);
  return folio;
}

/** clear_highpage() of every page of a folio, then folio_mark_uptodate(). */
function shmem_clear_folio(kernel: Kernel, folio: Folio): void {
  const n = folio_nr_pages(kernel.store, folio);
  for (let k = 0; k < n; k++) kernel.phys.clear((folio + k) as Pfn);
  kernel.cost.chargeId(PAGE_ZERO_4K, n);
  folio_mark_uptodate(kernel.store, folio);
}

/** The `struct folio **foliop` out-argument of shmem_get_folio(). */
export interface FolioRef {
  folio: Folio | null;
}

/**
 * shmem_get_folio_gfp(): find the folio at `index`, or allocate one, as `sgp` says. (The end of
 * the write, `write_end`, only sizes huge folios, which shm_mnt never uses.)
 * On success (0) *foliop is the folio, locked and with a reference for the caller, or null for a
 * hole under SGP_READ. Errors: -EFBIG past the largest index, -EINVAL at or past i_size for
 * SGP_READ/SGP_NOALLOC/SGP_CACHE, -ENOENT for a hole under SGP_NOALLOC, -ENOMEM.
 */
export function shmem_get_folio_gfp(inode: Inode, index: number, _write_end: bigint, foliop: FolioRef, sgp: sgp_type, gfp: gfp_t): number {
  const kernel = shmem_kernel(inode);
  const store = kernel.store;
  if (!shmem_mapping(inode.i_mapping)) {
    kernel.warn.WARN_ON_ONCE(true, 'shmem_get_folio_gfp', 'shmem_get_folio_gfp on a non-shmem mapping');
    return -Errno.EINVAL;
  }
  if (index > MAX_INDEX) return -Errno.EFBIG;
  if (sgp <= SGP_CACHE && index_at_or_past(index, inode.i_size)) return -Errno.EINVAL;

  const entry = inode.i_mapping.i_pages.xa_load(index);
  if (entry !== undefined && xa_is_value(entry)) return shmem_swapin_folio(inode, index, entry, foliop, sgp, gfp);
  /* filemap_get_entry() of the entry just loaded: a reference on the folio, if it has one left */
  let folio = entry !== undefined && folio_try_get(store, entry) ? entry : undefined;
  let alloced = false;
  if (folio !== undefined) {
    folio_lock(store, folio);
    if (sgp === SGP_WRITE) folio_mark_accessed(store, folio);
    if (folio_test_uptodate(store, folio)) {
      foliop.folio = folio;
      return 0;
    }
    /* a fallocated folio: SGP_READ treats it as a hole, the others clear it below */
    if (sgp === SGP_READ) {
      folio_unlock(store, folio);
      folio_put(store, folio);
      folio = undefined;
    }
  }
  if (folio === undefined) {
    /* SGP_READ: succeed on hole, with no folio. SGP_NOALLOC: fail on hole. */
    foliop.folio = null;
    if (sgp === SGP_READ) return 0;
    if (sgp === SGP_NOALLOC) return -Errno.ENOENT;
    const ret = shmem_alloc_and_add_folio(kernel, gfp, inode, index);
    if (ret < 0) {
      shmem_recalc_inode(inode, 0, 0);
      return ret;
    }
    folio = ret as Folio;
    alloced = true;
    if (sgp === SGP_WRITE) folio_set_referenced(store, folio);
    /* Let SGP_FALLOC use the SGP_WRITE optimization on a new folio. */
    if (sgp === SGP_FALLOC) sgp = SGP_WRITE;
  }
  /* Let SGP_WRITE callers clear the ends; SGP_FALLOC on an older fallocated folio clears it now. */
  if (sgp !== SGP_WRITE && !folio_test_uptodate(store, folio)) shmem_clear_folio(kernel, folio);
  /* "Perhaps the file has been truncated since we checked": not while one call runs at a time. */
  if (sgp <= SGP_CACHE && index_at_or_past(index, inode.i_size)) {
    if (alloced) filemap_remove_folio(kernel, folio);
    shmem_recalc_inode(inode, 0, 0);
    folio_unlock(store, folio);
    folio_put(store, folio);
    return -Errno.EINVAL;
  }
  foliop.folio = folio;
  return 0;
}

/** shmem_get_folio(): shmem_get_folio_gfp() with the mapping's gfp mask. */
export function shmem_get_folio(inode: Inode, index: number, write_end: bigint, foliop: FolioRef, sgp: sgp_type): number {
  return shmem_get_folio_gfp(inode, index, write_end, foliop, sgp, inode.i_mapping.gfp_mask);
}

/**
 * shmem_read_folio(): the folio at `index`, allocated and cleared if it was a hole, unlocked, with
 * a reference (memfd_pin_folios() and drivers use it). Within i_size only.
 * @returns the folio or ERR_PTR(-EINVAL/-ENOMEM/-EFBIG).
 */
export function shmem_read_folio(mapping: AddressSpace, index: number): Folio | ErrPtr {
  const ref: FolioRef = { folio: null };
  const err = shmem_get_folio_gfp(mapping.host, index, 0n, ref, SGP_CACHE, mapping.gfp_mask);
  if (err) return ERR_PTR(err);
  folio_unlock(shmem_kernel(mapping.host).store, ref.folio!);
  return ref.folio!;
}

/* Swap */

/**
 * shmem_swapin_folio(): read back the page whose swap entry `value` sits at `index`: from the
 * swap cache, or from the swap area (swap_state.ts). The folio replaces the entry in the page
 * cache, leaves the swap cache and is marked dirty (its swap copy is freed). On success (0)
 * *foliop is the folio, locked and with a reference for the caller. -ENOMEM when no folio can
 * be allocated, -EIO when the slot cannot be read (the entry stays).
 */
export function shmem_swapin_folio(inode: Inode, index: number, value: number, foliop: FolioRef, sgp: sgp_type, gfp: gfp_t): number {
  const kernel = shmem_kernel(inode);
  const store = kernel.store;
  const mapping = inode.i_mapping;
  const swap = radix_to_swp_entry(value);
  foliop.folio = null;
  if (get_swap_device(kernel, swap) === undefined) BUG(`shmem_swapin_folio: inode ${inode.i_ino} index ${index} holds a bad swap entry`);
  /* Look it up and read it in.. */
  let folio = swap_cache_get_folio(kernel, swap);
  if (folio === undefined) {
    const got = swap_cache_alloc_folio(kernel, swap, gfp | GFP_HIGHUSER_MOVABLE);
    if (got === undefined) return -Errno.ENOMEM;
    folio = got.folio;
  }
  /* We have to do this with folio locked to prevent races */
  folio_lock(store, folio);
  if (!folio_test_uptodate(store, folio)) {
    folio_unlock(store, folio);
    folio_put(store, folio);
    return -Errno.EIO;
  }
  const nr_pages = folio_nr_pages(store, folio);
  if (shmem_add_to_page_cache(kernel, folio, mapping, index, value)) BUG(`shmem_swapin_folio: index ${index} changed under the folio lock`);
  shmem_recalc_inode(inode, 0, -nr_pages);
  if (sgp === SGP_WRITE) folio_mark_accessed(store, folio);
  swap_cache_del_folio(kernel, folio);
  folio_mark_dirty(store, folio);
  swap_free_nr(kernel, swap, nr_pages);
  foliop.folio = folio;
  return 0;
}

/**
 * shmem_free_swap() for every swap entry of page range [start, end): the entries leave the page
 * cache and their slots are released (free_swap_and_cache_nr()).
 * @returns the pages freed, for shmem_recalc_inode().
 */
function shmem_free_swap_range(kernel: Kernel, mapping: AddressSpace, start: number, end: number): number {
  const values: number[] = [];
  const indices: number[] = [];
  mapping.i_pages.xa_for_each_range(start, end - 1, (index, entry) => {
    if (xa_is_value(entry)) {
      indices.push(index);
      values.push(entry);
    }
  });
  for (let k = 0; k < values.length; k++) {
    mapping.i_pages.xa_erase(indices[k]);
    free_swap_and_cache_nr(kernel, radix_to_swp_entry(values[k]), 1);
  }
  return values.length;
}

/**
 * shmem_delete_from_page_cache(): a folio going to swap leaves the page cache, its swap entry
 * taking its place; the page cache's references go.
 */
function shmem_delete_from_page_cache(kernel: Kernel, folio: Folio, radswap: number): void {
  const store = kernel.store;
  const i = store.idx(folio);
  const mapping = lookupMapping(store, store.mapping[i]);
  if (mapping === undefined) BUG(`shmem_delete_from_page_cache: folio 0x${folio.toString(16)} has no mapping`);
  const nr = folio_nr_pages(store, folio);
  const index = store.index[i];
  if (mapping.i_pages.xa_load(index) !== folio) BUG(`shmem_delete_from_page_cache: index ${index} does not hold folio 0x${folio.toString(16)}`);
  mapping.i_pages.xa_store(index, radswap as Folio);
  store.mapping[i] = 0;
  mapping.nrpages -= nr;
  folio_put_refs(store, folio, nr);
}

/**
 * shmem_writeout(): reclaim's pageout() of a locked, dirty-cleared shmem folio that no page
 * table maps any more: give it a swap slot, account it as swapped, put its swap entry in the page
 * cache in its place, and write it out (swap_writeout(), which unlocks it); the folio now lives
 * in the swap cache only. Without swap space (none configured, or full), or for a large folio,
 * the folio is redirtied and stays: AOP_WRITEPAGE_ACTIVATE with the folio still locked.
 * @returns 0 or AOP_WRITEPAGE_ACTIVATE.
 */
export function shmem_writeout(kernel: Kernel, folio: Folio): number {
  const store = kernel.store;
  const mapping = lookupMapping(store, store.mapping[store.idx(folio)]);
  if (mapping === undefined || !shmem_mapping(mapping)) BUG(`shmem_writeout of folio 0x${folio.toString(16)}, not in a shmem page cache`);
  const inode = mapping.host;
  const redirty = (): number => {
    folio_mark_dirty(store, folio);
    /* Return with folio locked */
    return AOP_WRITEPAGE_ACTIVATE;
  };
  if (total_swap_pages(kernel) === 0) return redirty();
  /* Large shmem folios would be split first; cocosim's shmem has order-0 folios only. */
  if (folio_test_large(store, folio)) return redirty();
  const nr_pages = folio_nr_pages(store, folio);
  /*
   * A folio fallocated but never written is initialized and written: there is no other way to
   * account a fallocated folio arriving here.
   */
  if (!folio_test_uptodate(store, folio)) shmem_clear_folio(kernel, folio);
  if (folio_alloc_swap(kernel, folio)) return redirty();
  shmem_recalc_inode(inode, 0, nr_pages);
  const swap = folio_swap_entry(store, folio);
  swap_duplicate_nr(kernel, swap, nr_pages);
  shmem_delete_from_page_cache(kernel, folio, swp_to_radix_entry(swap));
  if (folio_mapped(store, folio)) BUG(`shmem_writeout: folio 0x${folio.toString(16)} is still mapped`);
  return swap_writeout(kernel, folio);
}

/* Truncation */

/**
 * shmem_get_partial_folio(): the folio at `index` for partial truncation, locked with a
 * reference, whether or not it is uptodate; null for a hole.
 */
function shmem_get_partial_folio(kernel: Kernel, inode: Inode, index: number): Folio | null {
  const entry = inode.i_mapping.i_pages.xa_load(index);
  if (entry !== undefined && xa_is_value(entry)) {
    /* But read a folio back from swap if any of it is within i_size */
    const ref: FolioRef = { folio: null };
    shmem_get_folio(inode, index, 0n, ref, SGP_READ);
    return ref.folio;
  }
  const folio = filemap_get_entry(kernel, inode.i_mapping, index);
  if (folio === undefined) return null;
  folio_lock(kernel.store, folio);
  return folio;
}

/**
 * The common case of truncate_inode_folio() for one batch of locked order-0 shmem folios that
 * no page table maps: the same steps (mm_filemap_delete_from_page_cache, page_cache_delete(),
 * folio_cancel_dirty(), the page cache's folio_put_refs()) on the typed arrays directly. Any
 * other folio takes the general path.
 */
function shmem_truncate_batch(kernel: Kernel, mapping: AddressSpace, fbatch: FolioBatch, unfalloc: boolean): void {
  const store = kernel.store;
  const base = store.base_pfn;
  const flags = store.flags;
  const refcount = store._refcount;
  const tracing = kernel.tracer.enabled('mm_filemap_delete_from_page_cache');
  const fast = mapping.a_ops.free_folio === undefined && !tracing;
  const n = folio_batch_count(fbatch);
  const mapcount = store._mapcount;
  const mappings = store.mapping;
  const indexes = store.index;
  const i_pages = mapping.i_pages;
  const id = mapping.id;
  for (let k = 0; k < n; k++) {
    const folio = fbatch.folios[k];
    const i = folio - base;
    if (unfalloc && flags[i] & (1 << PG_uptodate)) {
      flags[i] &= ~(1 << PG_locked);
      continue;
    }
    if (fast && mapcount[i] === -1 && (flags[i] & (1 << PG_head)) === 0 && mappings[i] === id) {
      i_pages.xa_erase(indexes[i]);
      mappings[i] = 0;
      mapping.nrpages--;
      flags[i] &= ~((1 << PG_dirty) | (1 << PG_locked)); /* folio_cancel_dirty(), folio_unlock() */
      refcount[i]--; /* the page cache's reference; the batch still holds one */
    } else {
      truncate_inode_folio(kernel, mapping, folio);
      folio_unlock(store, folio);
    }
  }
}

/**
 * shmem_undo_range(): remove the folios of the byte range [lstart, lend] (lend -1: to the end),
 * zeroing the covered part of the folios at either edge. With `unfalloc` (a failed fallocate()
 * undoing itself) only !uptodate folios go, whole, and nothing is zeroed.
 */
export function shmem_undo_range(inode: Inode, lstart: bigint, lend: bigint, unfalloc: boolean): void {
  const kernel = shmem_kernel(inode);
  const store = kernel.store;
  const mapping = inode.i_mapping;
  const info = SHMEM_I(inode);
  let start = pos_to_index(lstart + BigInt(PAGE_SIZE) - 1n);
  let end = lend === -1n ? XA_MAX_INDEX : pos_to_index(lend + 1n);
  if (info.fallocend > start && info.fallocend <= end && !unfalloc) info.fallocend = start;
  const nr_swaps_freed = unfalloc || info.swapped === 0 ? 0 : shmem_free_swap_range(kernel, mapping, start, end);

  const fbatch = new FolioBatch();
  const index: PgoffRef = { index: start };
  /* the batches free runs of pages that continue each other: let the allocator take them whole */
  kernel.page_alloc.free_unref_defer();
  try {
    if (!unfalloc) index.index = truncate_small_folios(kernel, mapping, index.index, end);
    while (index.index < end && find_lock_entries(kernel, mapping, index, end - 1, fbatch)) {
      shmem_truncate_batch(kernel, mapping, fbatch, unfalloc);
      kernel.cost.chargeId(PAGE_FREE, folio_batch_release(store, fbatch));
    }
  } finally {
    kernel.page_alloc.free_unref_flush();
  }

  if (!unfalloc) {
    let same_folio = lend !== -1n && pos_to_index(lstart) === pos_to_index(lend);
    let folio = shmem_get_partial_folio(kernel, inode, pos_to_index(lstart));
    if (folio !== null) {
      same_folio = lend < folio_pos(store, folio) + BigInt(folio_size(store, folio));
      folio_mark_dirty(store, folio);
      if (!truncate_inode_partial_folio(kernel, mapping, folio, lstart, lend)) {
        start = folio_next_index(store, folio);
        if (same_folio) end = store.index[store.idx(folio)];
      }
      folio_unlock(store, folio);
      folio_put(store, folio);
      folio = null;
    }
    if (!same_folio && lend !== -1n) folio = shmem_get_partial_folio(kernel, inode, pos_to_index(lend));
    if (folio !== null) {
      folio_mark_dirty(store, folio);
      if (!truncate_inode_partial_folio(kernel, mapping, folio, lstart, lend)) end = store.index[store.idx(folio)];
      folio_unlock(store, folio);
      folio_put(store, folio);
    }
  }

  /* whole_folios: anything the first pass skipped (large folios straddling an edge) */
  index.index = start;
  while (index.index < end) {
    if (!find_get_entries(kernel, mapping, index, end - 1, fbatch)) {
      /* If all gone or hole-punch or unfalloc, we're done */
      if (index.index === start || end !== XA_MAX_INDEX) break;
      index.index = start;
      continue;
    }
    const n = folio_batch_count(fbatch);
    for (let k = 0; k < n; k++) {
      const folio = fbatch.folios[k];
      folio_lock(store, folio);
      if (!unfalloc || !folio_test_uptodate(store, folio)) {
        if (!folio_test_large(store, folio)) truncate_inode_folio(kernel, mapping, folio);
        else truncate_inode_partial_folio(kernel, mapping, folio, lstart, lend);
      }
      folio_unlock(store, folio);
    }
    kernel.cost.charge('page_free', folio_batch_release(store, fbatch));
  }
  shmem_recalc_inode(inode, 0, -nr_swaps_freed);
}

/** shmem_truncate_range(): truncate or punch [lstart, lend]. */
export function shmem_truncate_range(inode: Inode, lstart: bigint, lend: bigint): void {
  shmem_undo_range(inode, lstart, lend, false);
}

/* Inode operations */

/**
 * shmem_setattr(): chmod and truncate. F_SEAL_EXEC refuses a mode change of the execute bits,
 * F_SEAL_SHRINK / F_SEAL_GROW a size change in their direction (-EPERM). Shrinking unmaps the
 * pages past the new size from every mapping (private COW copies too), removes them, and zeroes
 * the tail of the new last page.
 */
export function shmem_setattr(inode: Inode, attr: Iattr): number {
  const info = SHMEM_I(inode);
  const kernel = info.sb.kernel;
  const mode_attr = attr as IattrMode;
  if (info.seals & F_SEAL_EXEC && attr.ia_valid & ATTR_MODE) {
    if ((inode.i_mode ^ mode_attr.ia_mode) & 0o111) return -Errno.EPERM;
  }
  if ((inode.i_mode & S_IFMT) === S_IFREG && attr.ia_valid & ATTR_SIZE) {
    const oldsize = inode.i_size;
    const newsize = attr.ia_size;
    if ((newsize < oldsize && info.seals & F_SEAL_SHRINK) || (newsize > oldsize && info.seals & F_SEAL_GROW)) {
      return -Errno.EPERM;
    }
    const design = call_mm_hook(kernel, 'shmem_setattr', inode, oldsize, newsize);
    if (design) return design;
    if (newsize !== oldsize) inode.i_size = newsize;
    if (newsize <= oldsize) {
      const holebegin = ((newsize + BigInt(PAGE_SIZE) - 1n) / BigInt(PAGE_SIZE)) * BigInt(PAGE_SIZE);
      if (oldsize > holebegin) unmap_mapping_range(kernel, inode.i_mapping, holebegin, 0n, true);
      if (info.alloced) shmem_truncate_range(inode, newsize, -1n);
      /* unmap again to remove racily COWed private pages */
      if (oldsize > holebegin) unmap_mapping_range(kernel, inode.i_mapping, holebegin, 0n, true);
    }
  }
  if (attr.ia_valid & ATTR_MODE) inode.i_mode = mode_attr.ia_mode;
  return 0;
}

/** shmem_getattr(): the generic attributes, after settling the block count. */
export function shmem_getattr(inode: Inode, stat: Kstat): number {
  const info = SHMEM_I(inode);
  if (info.alloced - info.swapped !== inode.i_mapping.nrpages) shmem_recalc_inode(inode, 0, 0);
  generic_fillattr(inode, stat);
  return 0;
}

/* File operations */

/**
 * shmem_file_read_iter(): read up to buf.length bytes at *ppos, not past i_size. Holes and
 * fallocated (!uptodate) folios read as zeros without allocating (the kernel copies ZERO_PAGE).
 * A page marked hwpoison, or whose memory is poisoned, ends the read with what was read so far,
 * or -EIO; a page whose read the platform refuses (MmHooks.host_access) with what was read, or
 * -EFAULT (copy_page_to_iter() stopped short).
 */
export function shmem_file_read_iter(file: File, buf: Uint8Array, ppos: Loff): number {
  const inode = file.f_inode;
  const kernel = shmem_kernel(inode);
  const store = kernel.store;
  const ref: FolioRef = { folio: null };
  let pos = ppos.pos;
  let done = 0;
  let error = 0;
  /* the platform refused the kernel's read of a page (MmHooks.host_access) */
  let refused = false;
  while (done < buf.length) {
    if (pos >= inode.i_size) break;
    const index = pos_to_index(pos);
    error = shmem_get_folio(inode, index, 0n, ref, SGP_READ);
    if (error) {
      if (error === -Errno.EINVAL) error = 0;
      break;
    }
    const folio = ref.folio;
    let page = 0;
    if (folio !== null) {
      folio_unlock(store, folio);
      page = folio + (index - store.index[store.idx(folio)]);
      if (PageHWPoison(store, page)) {
        folio_put(store, folio);
        error = -Errno.EIO;
        break;
      }
    }
    const i_size = inode.i_size;
    const end_offset = i_size < pos + BigInt(buf.length - done) ? i_size : pos + BigInt(buf.length - done);
    const fsize = PAGE_SIZE;
    const offset = Number(pos % BigInt(fsize));
    const nr = Math.min(Number(end_offset - pos), fsize - offset);
    let copied = nr;
    if (folio !== null) {
      if (!offset) folio_mark_accessed(store, folio);
      /* copy_page_to_iter(): a read the platform refuses stops the copy (-EFAULT) */
      const ha = uaccess_host_access(kernel, page, false, offset, nr);
      const data = ha < 0 ? undefined : ha === MM_HOST_ACCESS_ZERO ? new Uint8Array(nr) : kernel.phys.read(page as Pfn, offset, nr);
      folio_put(store, folio);
      if (data === undefined) {
        copied = 0;
        refused = true;
      } else if (data instanceof Uint8Array) {
        buf.set(data, done);
        kernel.cost.charge('page_copy_4k', nr / PAGE_SIZE);
      } else {
        copied = 0;
      }
    } else {
      buf.fill(0, done, done + nr);
      kernel.cost.charge('page_copy_4k', nr / PAGE_SIZE);
    }
    done += copied;
    pos += BigInt(copied);
    if (copied < nr) {
      error = refused ? -Errno.EFAULT : -Errno.EIO;
      break;
    }
  }
  ppos.pos = pos;
  return done ? done : error;
}

/**
 * shmem_write_begin(): seals first (F_SEAL_WRITE/F_SEAL_FUTURE_WRITE: -EPERM; F_SEAL_GROW:
 * -EPERM if the chunk ends past i_size), then the folio for the chunk (SGP_WRITE).
 */
function shmem_write_begin(inode: Inode, pos: bigint, len: number, ref: FolioRef): number {
  const info = SHMEM_I(inode);
  if (info.seals & (F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) {
    if (info.seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) return -Errno.EPERM;
    if (info.seals & F_SEAL_GROW && pos + BigInt(len) > inode.i_size) return -Errno.EPERM;
  }
  const sgp = call_mm_hook(info.sb.kernel, 'shmem_sgp', inode, SGP_WRITE) || SGP_WRITE;
  if (sgp < 0) return sgp;
  const ret = shmem_get_folio(inode, pos_to_index(pos), pos + BigInt(len), ref, sgp as sgp_type);
  if (ret) return ret;
  const store = info.sb.kernel.store;
  const folio = ref.folio!;
  if (folio_test_hwpoison(store, folio) || (folio_test_large(store, folio) && folio_test_has_hwpoisoned(store, folio))) {
    folio_unlock(store, folio);
    folio_put(store, folio);
    return -Errno.EIO;
  }
  return 0;
}

/**
 * shmem_write_end(): grow i_size, clear the parts of a new (!uptodate) folio the write did not
 * cover, mark it uptodate and dirty, and release it.
 */
function shmem_write_end(inode: Inode, pos: bigint, data: Uint8Array, folio: Folio): number {
  const kernel = shmem_kernel(inode);
  const store = kernel.store;
  const copied = data.length;
  if (pos + BigInt(copied) > inode.i_size) inode.i_size = pos + BigInt(copied);
  const from = Number(pos % BigInt(PAGE_SIZE));
  if (!folio_test_uptodate(store, folio)) {
    if (copied < folio_size(store, folio)) {
      kernel.phys.clear(folio as Pfn);
      kernel.cost.charge('page_zero_4k', (PAGE_SIZE - copied) / PAGE_SIZE);
    }
    folio_mark_uptodate(store, folio);
  }
  kernel.phys.write(folio as Pfn, from, data);
  kernel.cost.charge('page_copy_4k', copied / PAGE_SIZE);
  folio_mark_dirty(store, folio);
  folio_unlock(store, folio);
  folio_put(store, folio);
  return copied;
}

/**
 * shmem_file_write_iter(): generic_write_checks() then generic_perform_write() a page at a time.
 * O_APPEND writes at i_size (pwrite too, as Linux does). A chunk refused by a seal ends the write:
 * the bytes already written are returned, else the error (so a write across EOF under
 * F_SEAL_GROW is short).
 */
export function shmem_file_write_iter(file: File, buf: Uint8Array, ppos: Loff): number {
  const inode = file.f_inode;
  if (buf.length === 0) return 0;
  let pos = file.f_flags & O_APPEND ? inode.i_size : ppos.pos;
  /* generic_write_check_limits(): s_maxbytes is MAX_LFS_FILESIZE (O_LARGEFILE is forced on 64-bit) */
  if (pos >= MAX_LFS_FILESIZE) return -Errno.EFBIG;
  let count = buf.length;
  if (BigInt(count) > MAX_LFS_FILESIZE - pos) count = Number(MAX_LFS_FILESIZE - pos);
  const ref: FolioRef = { folio: null };
  let written = 0;
  let status = 0;
  while (written < count) {
    const offset = Number(pos % BigInt(PAGE_SIZE));
    const bytes = Math.min(PAGE_SIZE - offset, count - written);
    status = shmem_write_begin(inode, pos, bytes, ref);
    if (status < 0) break;
    /*
     * copy_folio_from_iter_atomic() into the folio: a write the platform refuses is fixed up and
     * copies nothing. Linux then faults the source in and retries until a fatal signal
     * (generic_perform_write()); the simulator ends the write with -EFAULT instead of spinning.
     */
    if (uaccess_host_access(shmem_kernel(inode), ref.folio!, true, offset, bytes) < 0) {
      folio_unlock(SHMEM_I(inode).sb.kernel.store, ref.folio!);
      folio_put(SHMEM_I(inode).sb.kernel.store, ref.folio!);
      status = -Errno.EFAULT;
      break;
    }
    status = shmem_write_end(inode, pos, buf.subarray(written, written + bytes), ref.folio!);
    pos += BigInt(status);
    written += status;
  }
  if (!written) return status;
  ppos.pos = pos;
  return written;
}

/**
 * shmem_fallocate(): FALLOC_FL_PUNCH_HOLE (with FALLOC_FL_KEEP_SIZE, which vfs_fallocate()
 * requires) or preallocation. Order of checks: unsupported mode bits (-EOPNOTSUPP); punch:
 * F_SEAL_WRITE/F_SEAL_FUTURE_WRITE (-EPERM); allocate: F_SEAL_GROW past i_size (-EPERM).
 * Preallocated folios are not cleared (they stay !uptodate, reading as zeros); a failure part way
 * (-ENOMEM) removes the folios this call added and leaves i_size alone.
 */
export function shmem_fallocate(file: File, mode: number, offset: bigint, len: bigint): number {
  const inode = file.f_inode;
  const info = SHMEM_I(inode);
  const kernel = info.sb.kernel;
  if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)) return -Errno.EOPNOTSUPP;

  if (mode & FALLOC_FL_PUNCH_HOLE) {
    if (info.seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) return -Errno.EPERM;
    const design = call_mm_hook(kernel, 'shmem_fallocate', file, mode, offset, len);
    if (design) return design;
    const P = BigInt(PAGE_SIZE);
    const unmap_start = ((offset + P - 1n) / P) * P;
    const unmap_end = ((offset + len) / P) * P - 1n;
    if (BigInt.asUintN(64, unmap_end) > BigInt.asUintN(64, unmap_start)) {
      unmap_mapping_range(kernel, file.f_mapping, unmap_start, 1n + unmap_end - unmap_start, false);
    }
    shmem_truncate_range(inode, offset, offset + len - 1n);
    /* No need to unmap again: hole-punching leaves COWed pages */
    return 0;
  }

  /* inode_newsize_ok(): vfs_fallocate() already kept offset + len within s_maxbytes */
  if (info.seals & F_SEAL_GROW && offset + len > inode.i_size) return -Errno.EPERM;
  const design = call_mm_hook(kernel, 'shmem_fallocate', file, mode, offset, len);
  if (design) return design;

  const start = pos_to_index(offset);
  const end = pos_to_index(offset + len + BigInt(PAGE_SIZE) - 1n);
  const undo_fallocend = info.fallocend;
  if (info.fallocend < end) info.fallocend = end;

  const reached = shmem_falloc_folios(kernel, inode, start, end);
  if (reached < 0) {
    /* shmem_get_folio() failed at -reached - 1: remove the !uptodate folios this call added */
    const failed_at = -reached - 1;
    info.fallocend = undo_fallocend;
    if (failed_at > start) {
      shmem_undo_range(inode, BigInt(start) << BigInt(PAGE_SHIFT), (BigInt(failed_at) << BigInt(PAGE_SHIFT)) - 1n, true);
    }
    return -Errno.ENOMEM;
  }
  if (!(mode & FALLOC_FL_KEEP_SIZE) && offset + len > inode.i_size) inode.i_size = offset + len;
  return 0;
}

/**
 * The loop of shmem_fallocate(): shmem_get_folio(SGP_FALLOC) for every index of [start, end),
 * then folio_mark_dirty(), folio_unlock(), folio_put(). Inlined for the batch so that a 1 GiB
 * fallocate() costs what its allocations and page-cache insertions cost: the holes are found
 * with one xa_find() each, and each new folio goes through the page allocator, gets its flags
 * (swapbacked, dirty, on the LRU; locked and unlocked again, which leaves no trace),
 * folio->mapping and folio->index, and its page-cache slot. Its reference count ends at 1, the page cache's: the
 * allocation's reference is the one fallocate() puts. Existing folios that are still !uptodate
 * are cleared, as a second SGP_FALLOC does.
 * @returns 0, or -(index + 1) of the index whose allocation failed (-ENOMEM).
 */
function shmem_falloc_folios(kernel: Kernel, inode: Inode, start: number, end: number): number {
  const store = kernel.store;
  const mapping = inode.i_mapping;
  const i_pages = mapping.i_pages;
  const base = store.base_pfn;
  const gfp = mapping.gfp_mask;
  const id = mapping.id;
  const new_flags = (1 << PG_swapbacked) | (1 << PG_dirty);
  const evictable = !mapping.mapping_unevictable();
  let index = start;
  let added = 0;
  let failed = -1;
  while (index < end && failed < 0) {
    const next = i_pages.xa_find(index, end - 1);
    const gap_end = next === undefined ? end : next.index;
    for (; index < gap_end; index++) {
      const pfn = kernel.page_alloc.folio_alloc(gfp, 0);
      if (pfn < 0) {
        failed = index;
        break;
      }
      const i = pfn - base;
      store.flags[i] |= new_flags;
      store.mapping[i] = id;
      store.index[i] = index;
      i_pages.xa_store(index, pfn as Folio);
      lru_add(store, pfn, evictable);
      added++;
    }
    if (failed >= 0 || next === undefined) break;
    let folio = next.entry;
    if (xa_is_value(folio)) {
      /* shmem_get_folio(SGP_FALLOC) reads a swapped-out page back */
      const ref: FolioRef = { folio: null };
      if (shmem_swapin_folio(inode, index, folio, ref, SGP_FALLOC, gfp)) {
        failed = index;
        break;
      }
      folio = ref.folio!;
      folio_unlock(store, folio);
      folio_put(store, folio);
    }
    if (!folio_test_uptodate(store, folio)) shmem_clear_folio(kernel, folio);
    folio_mark_dirty(store, folio);
    index = folio_next_index(store, folio);
  }
  if (added) {
    mapping.nrpages += added;
    shmem_inode_acct_blocks(inode, added);
    shmem_recalc_inode(inode, added, 0);
    kernel.cost.charge('page_alloc', added);
  }
  return failed < 0 ? 0 : -(failed + 1);
}

/**
 * mapping_seek_hole_data() (mm/filemap.c): the first byte at or after `start` (below `end`, i_size)
 * that is data (an uptodate folio) or a hole (no folio, or a !uptodate one, which reads as zeros),
 * or -ENXIO when seeking data and there is none.
 */
function mapping_seek_hole_data(mapping: AddressSpace, start: bigint, end: bigint, whence: number): bigint | number {
  const store = shmem_kernel(mapping.host).store;
  const seek_data = whence === 3;
  /* at or past i_size there is neither data nor a hole: -ENXIO for both (Linux 6.18) */
  if (start >= end) return -Errno.ENXIO;
  const P = BigInt(PAGE_SIZE);
  const last = pos_to_index(end - 1n);
  let index = pos_to_index(start);
  while (index <= last) {
    const folio = mapping.i_pages.xa_load(index);
    /* folio_seek_hole_data(): a swap entry is data */
    const data = folio !== undefined && (xa_is_value(folio) || folio_test_uptodate(store, folio));
    if (data === seek_data) {
      const pos = BigInt(index) * P;
      return pos > start ? (pos < end ? pos : end) : start;
    }
    if (folio === undefined) {
      /* jump over the hole to the next folio (SEEK_DATA), or stop here (SEEK_HOLE) */
      const next = mapping.i_pages.xa_find(index, last);
      if (next === undefined) return seek_data ? -Errno.ENXIO : end;
      index = next.index;
    } else {
      index++;
    }
  }
  return seek_data ? -Errno.ENXIO : end;
}

/**
 * shmem_file_llseek(): SEEK_SET, SEEK_CUR and SEEK_END as generic_file_llseek_size() (positions
 * beyond MAX_LFS_FILESIZE or below 0 are -EINVAL), SEEK_DATA and SEEK_HOLE through the page cache
 * (a negative offset is -ENXIO there).
 */
export function shmem_file_llseek(file: File, offset: bigint, whence: number): bigint | number {
  const size = file.f_inode.i_size;
  let pos: bigint;
  switch (whence) {
    case 0:
      pos = offset;
      break;
    case 1:
      if (offset === 0n) return file.f_pos;
      pos = file.f_pos + offset;
      break;
    case 2:
      pos = size + offset;
      break;
    case 3:
    case 4: {
      if (offset < 0n) return -Errno.ENXIO;
      const r = mapping_seek_hole_data(file.f_mapping, offset, size, whence);
      if (typeof r === 'number') return r;
      pos = r;
      break;
    }
    default:
      return -Errno.EINVAL;
  }
  if (pos < 0n || pos > MAX_LFS_FILESIZE) return -Errno.EINVAL;
  file.f_pos = pos;
  return pos;
}

/**
 * shmem_evict_inode(): the last reference to an unlinked shmem inode is gone: drop its page
 * cache (unmapping is not needed: mappings hold file references) and give back its blocks.
 */
export function shmem_evict_inode(inode: Inode): void {
  const info = SHMEM_I(inode);
  inode.i_size = 0n;
  inode.i_mapping.mapping_set_unevictable();
  shmem_truncate_range(inode, 0n, -1n);
  if (info.sb.kernel.warn.WARN_ON(inode.i_blocks !== 0n, `shmem_evict_inode: i_blocks ${inode.i_blocks}`)) return;
  unregisterMapping(info.sb.kernel.store, inode.i_mapping);
}

/** __fput() -> dput() -> iput(): the file's inode reference goes with it. */
function shmem_release(inode: Inode): void {
  iput(inode, shmem_evict_inode);
}

export const shmem_aops: AddressSpaceOperations = {
  dirty_folio: (mapping, folio) => noop_dirty_folio(shmem_kernel(mapping.host).store, mapping.id, folio),
  /* shmem_error_remove_folio(): keep a poisoned folio in the page cache */
  error_remove_folio: () => 0,
  /* CONFIG_MIGRATION: the generic migrate_folio() */
  migrate_folio: (mapping, dst, src, mode) => migrate_folio(shmem_kernel(mapping.host), mapping, dst, src, mode),
};

export const shmem_file_operations: FileOperations = {
  mmap: (file, vma) => shmem_mmap(file, vma),
  read: shmem_file_read_iter,
  write: shmem_file_write_iter,
  fallocate: shmem_fallocate,
  llseek: shmem_file_llseek,
  release: shmem_release,
  /* memfd_pin_folios() takes shmem files (mm/gup.c) */
  pin_folios: (file, start, end, folios, max_folios, offset) => memfd_pin_folios(file, start, end, folios, max_folios, offset),
};

/** SHMEM_FL_USER_VISIBLE: FS_FL_USER_VISIBLE | FS_CASEFOLD_FL. */
const SHMEM_FL_USER_VISIBLE = 0x0003dfff | FS_CASEFOLD_FL;
/** SHMEM_FL_USER_MODIFIABLE. */
const SHMEM_FL_USER_MODIFIABLE = FS_IMMUTABLE_FL | FS_APPEND_FL | FS_NODUMP_FL | FS_NOATIME_FL | FS_CASEFOLD_FL;

/** shmem_fileattr_get(). */
function shmem_fileattr_get(inode: Inode, fa: FileKattr): number {
  fileattr_fill_flags(fa, SHMEM_I(inode).fsflags & SHMEM_FL_USER_VISIBLE);
  return 0;
}

/**
 * shmem_fileattr_set(): IMMUTABLE, APPEND, NODUMP and NOATIME, as inode flags
 * (shmem_set_inode_flags()); CASEFOLD needs a file system with an encoding, which a memfd's has
 * not (-EOPNOTSUPP, as anything else or any fsxattr field).
 */
function shmem_fileattr_set(inode: Inode, fa: FileKattr): number {
  const info = SHMEM_I(inode);
  if (fileattr_has_fsx(fa)) return -Errno.EOPNOTSUPP;
  if (fa.flags & ~SHMEM_FL_USER_MODIFIABLE) return -Errno.EOPNOTSUPP;
  const flags = (info.fsflags & ~SHMEM_FL_USER_MODIFIABLE) | fa.flags;
  /* shmem_inode_casefold_flags(): setting it needs sb->s_encoding */
  if (flags & FS_CASEFOLD_FL && !(info.fsflags & FS_CASEFOLD_FL)) return -Errno.EOPNOTSUPP;
  let i_flags = 0;
  if (flags & FS_NOATIME_FL) i_flags |= S_NOATIME;
  if (flags & FS_APPEND_FL) i_flags |= S_APPEND;
  if (flags & FS_IMMUTABLE_FL) i_flags |= S_IMMUTABLE;
  /* inode_set_flags(inode, i_flags, S_NOATIME | S_APPEND | S_IMMUTABLE | S_CASEFOLD) */
  inode.i_flags = (inode.i_flags & ~(S_NOATIME | S_APPEND | S_IMMUTABLE)) | i_flags;
  info.fsflags = flags >>> 0;
  return 0;
}

export const shmem_inode_operations: InodeOperations = {
  getattr: shmem_getattr,
  setattr: shmem_setattr,
  fileattr_get: shmem_fileattr_get,
  fileattr_set: shmem_fileattr_set,
};

/** S_IRWXUGO: the mode bits of a new shmem file. */
const S_IRWXUGO = 0o777;

/**
 * __shmem_get_inode() for a regular file of shm_mnt: a new inode (get_next_ino()), seals
 * F_SEAL_SEAL, the shmem operations, a registered page cache with GFP_HIGHUSER_MOVABLE.
 */
function shmem_get_inode(kernel: Kernel, mode: number, flags: number, name: string): Inode {
  const sb = shmem_sb(kernel);
  const inode = new Inode(kernel.get_next_ino(), mode, shmem_inode_operations, shmem_file_operations, kernel.next_mapping_id());
  inode.i_mapping.a_ops = shmem_aops;
  inode.i_mapping.gfp_mask = GFP_HIGHUSER_MOVABLE;
  inode.i_private = new ShmemInodeInfo(sb, inode, flags, name);
  registerMapping(kernel.store, inode.i_mapping);
  return inode;
}

/**
 * shmem_file_setup(): an unlinked file on shm_mnt of `size` bytes, opened O_RDWR.
 * @returns the File, or ERR_PTR(-EINVAL) for a size outside [0, MAX_LFS_FILESIZE].
 */
export function shmem_file_setup(kernel: Kernel, name: string, size: bigint, flags: number): File | ErrPtr {
  if (size < 0n || size > MAX_LFS_FILESIZE) return ERR_PTR(-Errno.EINVAL);
  const inode = shmem_get_inode(kernel, S_IFREG | S_IRWXUGO, flags, name);
  inode.i_size = size;
  inode.i_nlink = 0; /* clear_nlink(): it is unlinked */
  return alloc_file_pseudo(inode, O_RDWR, shmem_file_operations);
}

/* Mapping: file_operations.mmap and vm_operations_struct */

/** vmf_error() (include/linux/mm.h): -ENOMEM is VM_FAULT_OOM, any other error VM_FAULT_SIGBUS. */
function vmf_error(err: number): number {
  return err === -Errno.ENOMEM ? VM_FAULT_OOM : VM_FAULT_SIGBUS;
}

/**
 * shmem_fault(): the page for vmf.pgoff, allocated and cleared if it was a hole (SGP_CACHE): a
 * fault at or beyond EOF is VM_FAULT_SIGBUS, an allocation failure VM_FAULT_OOM. On success
 * vmf.page holds a reference and its folio is locked (VM_FAULT_LOCKED).
 */
export function shmem_fault(vmf: VmFault): number {
  const inode = vmf.vma.vm_file!.f_inode;
  /* the spare out-argument, unless a fault this one nests in holds it */
  const ref = spare_fault_ref ?? { folio: null };
  spare_fault_ref = null;
  ref.folio = null;
  const kernel = SHMEM_I(inode).sb.kernel;
  const sgp = (mm_hook_present(kernel, 'shmem_sgp') && call_mm_hook(kernel, 'shmem_sgp', inode, SGP_CACHE)) || SGP_CACHE;
  const err = sgp < 0 ? sgp : shmem_get_folio_gfp(inode, vmf.pgoff, 0n, ref, sgp as sgp_type, inode.i_mapping.gfp_mask);
  const folio = ref.folio;
  ref.folio = null;
  spare_fault_ref = ref;
  if (err) return vmf_error(err);
  vmf.page = folio_file_page(kernel.store, folio!, vmf.pgoff) as Pfn;
  return VM_FAULT_LOCKED;
}

/** shmem_fault()'s foliop, kept for the next fault. */
let spare_fault_ref: FolioRef | null = null;

/** shmem_vm_ops: the vm_ops of a mapping of a linked tmpfs file. */
export const shmem_vm_ops: VmOperationsStruct = {
  fault: shmem_fault,
  map_pages: filemap_map_pages,
};

/** shmem_anon_vm_ops: of an unlinked one (a memfd, MAP_SHARED | MAP_ANONYMOUS). */
export const shmem_anon_vm_ops: VmOperationsStruct = {
  fault: shmem_fault,
  map_pages: filemap_map_pages,
};

/**
 * shmem_mmap(): a mapping of a shmem file is anonymous shared memory if the file is unlinked.
 * (Write seals are checked before, by do_mmap() through memfd_check_seals_mmap().)
 */
export function shmem_mmap(file: File, vma: unknown): number {
  const design = call_mm_hook(SHMEM_I(file.f_inode).sb.kernel, 'shmem_mmap', file, vma as VmAreaStruct);
  if (design) return design;
  (vma as VmAreaStruct).vm_ops = file.f_inode.i_nlink ? shmem_vm_ops : shmem_anon_vm_ops;
  return 0;
}
