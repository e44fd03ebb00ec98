/**
 * Truncation and invalidation of the page cache (mm/truncate.c, Linux 6.18).
 *
 * Removing a folio from the page cache first removes it from every user page table: the page
 * cache's reference may be the last one, and a mapped folio leaving the cache is a kernel bug
 * (filemap.ts checks). Page tables belong to mm/memory.c (memory.ts), which sits above this file,
 * so the two meet through `mapping_unmap_hooks` below, the way a kernel subsystem calls a function
 * another one provides:
 *
 *   - truncate.ts, shmem.ts and hugetlbfs call mapping_unmap_hooks.unmap_mapping_range() before
 *     they take folios out of the page cache, and mapping_unmap_hooks.unmap_mapping_folio() for a
 *     folio that is still mapped when its turn comes (a fault raced with the truncation);
 *   - memory.ts installs its unmap_mapping_range() and unmap_mapping_folio() into the object when
 *     it is loaded (`Object.assign(mapping_unmap_hooks, { unmap_mapping_range, unmap_mapping_folio })`).
 *
 * Until something installs them they do nothing: a host without user mappings has nothing to
 * unmap (and if it had, the mapped-folio check in filemap.ts would catch it).
 */
import { BUG, Errno, IS_ERR, PAGE_SIZE, XA_MAX_INDEX, XaState, costId, type Pfn } from '@cocosim/core';
import type { AddressSpace, Inode } from './fs.js';
import {
  delete_from_page_cache_batch,
  filemap_remove_folio,
  find_get_entries,
  find_lock_entries,
  folio_contains,
  folio_next_index,
  folio_pos,
  __filemap_get_folio,
  FGP_LOCK,
  type PgoffRef,
} from './filemap.js';
import { folio_lock, folio_mapped, folio_nr_pages, folio_put, folio_ref_count, folio_size, folio_unlock, type Folio } from './folio.js';
import type { Kernel } from './kernel.js';
import { kernel_host_access } from './fault.js';
import {
  PG_dirty, PG_head, PG_locked, PG_writeback, folio_test_clear_dirty, folio_test_dirty, folio_test_large, folio_test_locked,
  folio_test_writeback, folio_test_private,
} from './page-flags.js';
import { FolioBatch, PAGEVEC_SIZE, folio_batch_count, folio_batch_release, folios_free_frozen } from './pagevec.js';
import { AS_EXITING } from './fs.js';

/** The page-table side of truncation, provided by memory.ts (see the top of this file). */
export interface MappingUnmapHooks {
  /**
   * unmap_mapping_range() (mm/memory.c): zap every user mapping of the file bytes
   * [holebegin, holebegin + holelen) of `mapping`, in every process. As in the kernel the range
   * covers whole pages: the first page is holebegin >> PAGE_SHIFT (rounded down) and holelen is
   * rounded up to pages; holelen 0 means "to the end of the file". With even_cows, the private
   * copy-on-write copies in MAP_PRIVATE mappings go as well (truncation); without, they stay
   * (hole punching).
   */
  unmap_mapping_range(kernel: Kernel, mapping: AddressSpace, holebegin: bigint, holelen: bigint, even_cows: boolean): void;
  /**
   * unmap_mapping_folio() (mm/memory.c): zap every user mapping of one page-cache folio (its
   * private COW copies stay).
   */
  unmap_mapping_folio(kernel: Kernel, folio: Folio): void;
}

/** The hook slots; memory.ts fills them. */
export const mapping_unmap_hooks: MappingUnmapHooks = {
  unmap_mapping_range: () => undefined,
  unmap_mapping_folio: () => undefined,
};

/** unmap_mapping_range() through the hook. */
export function unmap_mapping_range(kernel: Kernel, mapping: AddressSpace, holebegin: bigint, holelen: bigint, even_cows: boolean): void {
  mapping_unmap_hooks.unmap_mapping_range(kernel, mapping, holebegin, holelen, even_cows);
}

/** unmap_mapping_folio() through the hook. */
export function unmap_mapping_folio(kernel: Kernel, folio: Folio): void {
  mapping_unmap_hooks.unmap_mapping_folio(kernel, folio);
}

const PAGE_SIZE_N = BigInt(PAGE_SIZE);

/** round_up(x, PAGE_SIZE) for a byte offset. */
function page_round_up(x: bigint): bigint {
  return ((x + PAGE_SIZE_N - 1n) / PAGE_SIZE_N) * PAGE_SIZE_N;
}

/** round_down(x, PAGE_SIZE) for a byte offset that may be negative (floor). */
function page_round_down(x: bigint): bigint {
  const q = x / PAGE_SIZE_N;
  return (x < 0n && q * PAGE_SIZE_N !== x ? q - 1n : q) * PAGE_SIZE_N;
}

/** The page index holding byte `pos` (pos >> PAGE_SHIFT for pos >= 0). */
export function pos_to_index(pos: bigint): number {
  return Number(pos / PAGE_SIZE_N);
}

/**
 * folio_zero_range() (include/linux/highmem.h): zero `length` bytes at `offset` in the folio.
 * Charged as the fraction of page_zero_4k the bytes are.
 */
export function folio_zero_range(kernel: Kernel, folio: Folio, offset: number, length: number): void {
  const phys = kernel.phys;
  let zeroed = 0;
  while (length > 0) {
    const page = (folio + Math.floor(offset / PAGE_SIZE)) as Pfn;
    const off = offset % PAGE_SIZE;
    const n = Math.min(length, PAGE_SIZE - off);
    /* memset() through the direct map: no fixup, a refused write oopses */
    kernel_host_access(kernel, page, true, off, n);
    if (n === PAGE_SIZE) phys.clear(page);
    else phys.write(page, off, new Uint8Array(n));
    zeroed += n;
    offset += n;
    length -= n;
  }
  kernel.cost.charge('page_zero_4k', zeroed / PAGE_SIZE);
}

/** folio_cancel_dirty(): the folio's data is going away, so it is no longer dirty. */
function folio_cancel_dirty(kernel: Kernel, folio: Folio): void {
  if (folio_test_dirty(kernel.store, folio)) folio_test_clear_dirty(kernel.store, folio);
}

/** truncate_cleanup_folio(): unmap a folio that was faulted in again, and forget it is dirty. */
export function truncate_cleanup_folio(kernel: Kernel, folio: Folio): void {
  if (folio_mapped(kernel.store, folio)) unmap_mapping_folio(kernel, folio);
  folio_cancel_dirty(kernel, folio);
}

/**
 * truncate_inode_folio(): remove one locked folio of `mapping` from the page cache.
 * @returns 0, or -EIO when the folio no longer belongs to `mapping`.
 */
export function truncate_inode_folio(kernel: Kernel, mapping: AddressSpace, folio: Folio): number {
  const store = kernel.store;
  if (store.mapping[store.idx(folio)] !== mapping.id) return -Errno.EIO;
  truncate_cleanup_folio(kernel, folio);
  filemap_remove_folio(kernel, folio);
  return 0;
}

/**
 * truncate_inode_partial_folio(): the byte range [start, end] (end -1: to the end of the file)
 * covers part of the locked folio. A folio wholly inside goes; otherwise the covered bytes are
 * zeroed (unless the mapping is inaccessible, i.e. guest_memfd). A large folio would then be
 * split; cocosim does not split folios, which is the kernel's "split failed" path: a dirty folio
 * is kept (returns false), a clean one is dropped whole.
 * @returns true if the folio was dealt with, false if it must stay.
 */
export function truncate_inode_partial_folio(kernel: Kernel, mapping: AddressSpace, folio: Folio, start: bigint, end: bigint): boolean {
  const store = kernel.store;
  const pos = folio_pos(store, folio);
  const size = BigInt(folio_size(store, folio));
  const offset = pos < start ? start - pos : 0n;
  const length = end < 0n || pos + size <= end ? size - offset : end + 1n - pos - offset;
  if (length === size) {
    truncate_inode_folio(kernel, mapping, folio);
    return true;
  }
  if (!mapping.mapping_inaccessible()) folio_zero_range(kernel, folio, Number(offset), Number(length));
  if (!folio_test_large(store, folio)) return true;
  if (folio_test_dirty(store, folio)) return false;
  truncate_inode_folio(kernel, mapping, folio);
  return true;
}

const PAGE_FREE = costId('page_free');

/**
 * The first loop of truncate_inode_pages_range() and shmem_undo_range() over [start, end), for
 * as long as the folios it meets are the common kind: small, neither locked nor under writeback,
 * held by the page cache and by nothing but the page tables that map them, and while the
 * mm_filemap_delete_from_page_cache tracepoint is off. For such a folio the loop's
 * find_lock_entries(), truncate_cleanup_folio() (unmap_mapping_folio() if it is mapped, then
 * folio_cancel_dirty()), delete_from_page_cache_batch() (the entry erased, folio->mapping
 * cleared, nrpages down, a_ops->free_folio()) and folio_batch_release() (the last reference, the
 * LRU left, the page freed) end in these steps, taken here in one pass. The lock and the batch's
 * reference come and go within the loop, so they are not taken.
 *
 * The kernel's batches are kept where their order can be seen: with a free_folio op, or once a
 * folio was mapped, every PAGEVEC_SIZE folios are unmapped, then deleted (free_folio each), then
 * freed, before the next batch. Otherwise (a punch of an unmapped shmem range) a longer run goes
 * at a time, its page-cache entries dropped together (xa_store_range() frees whole XArray leaves:
 * the walk passes only over entries it takes, so [first, last] holds just those); page_free is
 * charged per PAGEVEC_SIZE either way.
 * @returns where the general loop goes on: `end`, or the index of the first entry of another kind.
 */
export function truncate_small_folios(kernel: Kernel, mapping: AddressSpace, start: number, end: number): number {
  if (start >= end || kernel.tracer.enabled('mm_filemap_delete_from_page_cache')) return start;
  const store = kernel.store;
  const base = store.base_pfn;
  const nr_pages = store.nr_pages;
  const flags = store.flags;
  const refcount = store._refcount;
  const mapcount = store._mapcount;
  const mappings = store.mapping;
  const i_pages = mapping.i_pages;
  const id = mapping.id;
  const free_folio = mapping.a_ops.free_folio;
  const other = (1 << PG_head) | (1 << PG_locked) | (1 << PG_writeback);
  /* a multiple of PAGEVEC_SIZE, no larger than the range needs */
  const folios = new Float64Array(PAGEVEC_SIZE * Math.min(128, Math.ceil((end - start) / PAGEVEC_SIZE)));
  let batch = free_folio === undefined ? folios.length : PAGEVEC_SIZE;
  let n = 0;
  let stop = end;
  let first = -1;
  let last = -1;
  const flush = (): void => {
    i_pages.xa_store_range(first, last, null);
    first = -1;
    if (free_folio !== undefined) for (let k = 0; k < n; k++) free_folio(folios[k] as Folio);
    for (let k = 0; k < n; k += PAGEVEC_SIZE) {
      const nr = Math.min(PAGEVEC_SIZE, n - k);
      folios_free_frozen(store, folios.subarray(k, k + nr), nr);
      kernel.cost.chargeId(PAGE_FREE, nr);
    }
    n = 0;
  };
  const xas = new XaState(i_pages, start);
  for (let folio = xas.xas_find(end - 1); folio !== undefined; folio = xas.xas_next_entry(end - 1)) {
    const i = folio - base;
    /* a swap entry (a negative value) or a folio of another kind is the general loop's */
    if (!(i >= 0 && i < nr_pages) || mappings[i] !== id || (flags[i] & other) !== 0 || refcount[i] !== mapcount[i] + 2) {
      stop = xas.xa_index;
      break;
    }
    if (mapcount[i] !== -1) {
      if (batch !== PAGEVEC_SIZE) {
        batch = PAGEVEC_SIZE;
        if (n >= batch) flush();
      }
      unmap_mapping_folio(kernel, folio);
      if (refcount[i] !== 1 || mapcount[i] !== -1) {
        stop = xas.xa_index;
        break;
      }
    }
    if (first < 0) first = xas.xa_index;
    last = xas.xa_index;
    mappings[i] = 0;
    mapping.nrpages--;
    flags[i] &= ~(1 << PG_dirty);
    refcount[i] = 0;
    folios[n++] = folio;
    if (n === batch) flush();
  }
  if (n !== 0) flush();
  return stop;
}

/**
 * truncate_inode_pages_range(): remove the page cache of the byte range [lstart, lend] (lend -1:
 * to the end of the file). Whole folios inside the range are removed a batch at a time; the folios
 * at either edge that the range only partly covers have the covered bytes zeroed. The caller has
 * unmapped the range already (truncate_pagecache()); folios faulted in since are unmapped here.
 */
export function truncate_inode_pages_range(kernel: Kernel, mapping: AddressSpace, lstart: bigint, lend: bigint): void {
  if (mapping.i_pages.xa_empty()) return;
  const store = kernel.store;
  /* Offsets of whole pages: the partial pages at either end are zeroed, not removed. */
  let start = pos_to_index(lstart + PAGE_SIZE_N - 1n);
  let end = lend === -1n ? XA_MAX_INDEX : pos_to_index(lend + 1n);
  const fbatch = new FolioBatch();
  const index: PgoffRef = { index: truncate_small_folios(kernel, mapping, start, end) };
  while (index.index < end && find_lock_entries(kernel, mapping, index, end - 1, fbatch)) {
    const n = folio_batch_count(fbatch);
    for (let k = 0; k < n; k++) truncate_cleanup_folio(kernel, fbatch.folios[k]);
    delete_from_page_cache_batch(kernel, mapping, fbatch);
    for (let k = 0; k < n; k++) folio_unlock(store, fbatch.folios[k]);
    kernel.cost.charge('page_free', folio_batch_release(store, fbatch));
  }

  /* lend -1 shifts to -1, never lstart's page: the kernel's arithmetic, with the same result */
  let same_folio = lend !== -1n && pos_to_index(lstart) === pos_to_index(lend);
  let folio = __filemap_get_folio(kernel, mapping, pos_to_index(lstart), FGP_LOCK, 0);
  if (!IS_ERR(folio)) {
    /* signed: lend -1 is below any position, so the first partial folio ends the range */
    same_folio = lend < folio_pos(store, folio) + BigInt(folio_size(store, folio));
    if (!truncate_inode_partial_folio(kernel, mapping, folio, lstart, lend)) {
      start = folio_next_index(store, folio);
      if (same_folio) end = store.index[store.idx(folio)];
    }
    folio_unlock(store, folio);
    folio_put(store, folio);
  }
  /* (with lend -1 the kernel looks up index ULONG_MAX, which holds nothing) */
  if (!same_folio && lend !== -1n) {
    folio = __filemap_get_folio(kernel, mapping, pos_to_index(lend), FGP_LOCK, 0);
    if (!IS_ERR(folio)) {
      if (!truncate_inode_partial_folio(kernel, mapping, folio, lstart, lend)) end = store.index[store.idx(folio)];
      folio_unlock(store, folio);
      folio_put(store, folio);
    }
  }

  /* The second pass: whatever the first one could not lock, and large folios it skipped. */
  index.index = start;
  while (index.index < end) {
    if (!find_get_entries(kernel, mapping, index, end - 1, fbatch)) {
      if (index.index === start) break;
      index.index = start;
      continue;
    }
    const n = folio_batch_count(fbatch);
    for (let k = 0; k < n; k++) {
      const f = fbatch.folios[k];
      folio_lock(store, f);
      if (!folio_contains(store, f, fbatch.indices[k])) BUG(`VM_BUG_ON_FOLIO: folio 0x${f.toString(16)} does not contain index ${fbatch.indices[k]}`);
      truncate_inode_folio(kernel, mapping, f);
      folio_unlock(store, f);
    }
    kernel.cost.charge('page_free', folio_batch_release(store, fbatch));
  }
}

/** truncate_inode_pages(): remove the page cache from byte `lstart` on. */
export function truncate_inode_pages(kernel: Kernel, mapping: AddressSpace, lstart: bigint): void {
  truncate_inode_pages_range(kernel, mapping, lstart, -1n);
}

/** truncate_inode_pages_final(): the inode is going away; empty its page cache for good. */
export function truncate_inode_pages_final(kernel: Kernel, mapping: AddressSpace): void {
  mapping.flags |= 1 << AS_EXITING;
  truncate_inode_pages(kernel, mapping, 0n);
}

/**
 * truncate_pagecache(): after i_size went down to `newsize`, unmap and remove everything past it
 * (the partial page at newsize is zeroed past newsize). Unmaps twice, as the kernel does, to catch
 * private COW pages made while the page cache was being truncated.
 */
export function truncate_pagecache(kernel: Kernel, inode: Inode, newsize: bigint): void {
  const mapping = inode.i_mapping;
  const holebegin = page_round_up(newsize);
  unmap_mapping_range(kernel, mapping, holebegin, 0n, true);
  truncate_inode_pages(kernel, mapping, newsize);
  unmap_mapping_range(kernel, mapping, holebegin, 0n, true);
}

/**
 * truncate_setsize(): set i_size and drop the page cache past it. (The kernel's
 * pagecache_isize_extended() step only acts when the block size is below PAGE_SIZE, which no
 * cocosim file system has.)
 */
export function truncate_setsize(kernel: Kernel, inode: Inode, newsize: bigint): void {
  inode.i_size = newsize;
  truncate_pagecache(kernel, inode, newsize);
}

/**
 * truncate_pagecache_range(): hole punching: unmap the whole pages of [lstart, lend] (private COW
 * copies stay), then truncate the page cache of the range.
 */
export function truncate_pagecache_range(kernel: Kernel, inode: Inode, lstart: bigint, lend: bigint): void {
  const mapping = inode.i_mapping;
  const unmap_start = page_round_up(lstart);
  const unmap_end = page_round_down(1n + lend) - 1n;
  /* (u64)unmap_end > (u64)unmap_start: an unmap_end of -1 compares as huge, as in the kernel */
  if (BigInt.asUintN(64, unmap_end) > BigInt.asUintN(64, unmap_start)) {
    unmap_mapping_range(kernel, mapping, unmap_start, 1n + unmap_end - unmap_start, false);
  }
  truncate_inode_pages_range(kernel, mapping, lstart, lend);
}

/**
 * mapping_evict_folio(): drop a clean, unmapped, otherwise unused locked folio from the page cache.
 * @returns 1 if it was removed.
 */
export function mapping_evict_folio(kernel: Kernel, folio: Folio): number {
  const store = kernel.store;
  if (folio_test_dirty(store, folio) || folio_test_writeback(store, folio)) return 0;
  /* The refcount check must hold the page cache's references, the lookup's, and PG_private's. */
  if (folio_ref_count(store, folio) > folio_nr_pages(store, folio) + (folio_test_private(store, folio) ? 1 : 0) + 1) return 0;
  if (folio_mapped(store, folio)) return 0;
  if (!folio_test_locked(store, folio)) BUG('mapping_evict_folio of an unlocked folio');
  filemap_remove_folio(kernel, folio);
  return 1;
}

/**
 * invalidate_mapping_pages() (mapping_try_invalidate()): drop the clean, unmapped, unused folios
 * in page range [start, end]; dirty, locked, mapped or referenced ones stay. Shmem folios are
 * always dirty, so this never drops shmem data (as drop_caches does not).
 * @returns the number of folios removed.
 */
export function invalidate_mapping_pages(kernel: Kernel, mapping: AddressSpace, start: number, end: number): number {
  const store = kernel.store;
  const fbatch = new FolioBatch();
  const index: PgoffRef = { index: start };
  let count = 0;
  while (find_lock_entries(kernel, mapping, index, end, fbatch)) {
    const n = folio_batch_count(fbatch);
    for (let k = 0; k < n; k++) {
      const folio = fbatch.folios[k];
      count += mapping_evict_folio(kernel, folio);
      folio_unlock(store, folio);
    }
    kernel.cost.charge('page_free', folio_batch_release(store, fbatch));
  }
  return count;
}
