/**
 * The page cache (mm/filemap.c, Linux 6.18): a file's folios in mapping->i_pages, indexed by file
 * page offset, each holding one reference per page it spans (folio_ref_add(folio, nr) on insertion,
 * folio_put_refs() on removal), with folio->mapping and folio->index in the page store.
 *
 * Layout: a folio is stored at every index it covers (the kernel stores one multi-index entry;
 * cocosim's XArray has none), and only at indexes it covers, so that `i_pages.xa_load(index)` is
 * the folio holding that page. Lookups that walk a range report a large folio once.
 *
 * Page-cache folios are found by address_space id through lookupMapping(): folio->mapping in the
 * page store is that id (page_store.ts), and rmap, reclaim and memory-failure code turn it back
 * into the AddressSpace. A file system registers its mappings (registerMapping) when it creates
 * the inode and unregisters them when the inode is evicted.
 *
 * Value entries: shmem keeps a swapped-out page as a swap entry in i_pages (swapops.ts
 * xa_is_value(): a negative number). The lookups and walks here skip them, as the kernel's
 * filemap_get_entry() callers and find_lock_entries() leave them to shmem (shmem.ts).
 *
 * What is not modelled: shadow entries (workingset refault detection), the vmstat counters
 * (NR_FILE_PAGES, NR_SHMEM), memcg charging, readahead and writeback.
 *
 * Tracepoints: mm_filemap_add_to_page_cache from __filemap_add_folio() and
 * mm_filemap_delete_from_page_cache from __filemap_remove_folio() and
 * delete_from_page_cache_batch(), as in the kernel (shmem_add_to_page_cache() does not emit the
 * add event, so shmem insertions are silent there too).
 */
import { BUG, BUG_ON, ERR_PTR, Errno, PAGE_SIZE, XaState, costId, type ErrPtr, type PgOff } from '@cocosim/core';
import type { AddressSpace } from './fs.js';
import {
  folio_mapped,
  folio_mapping,
  folio_nr_pages,
  folio_order,
  folio_put,
  folio_put_refs,
  folio_ref_add,
  folio_try_get,
  folio_lock,
  folio_unlock,
  noop_dirty_folio,
  type Folio,
} from './folio.js';
import type { gfp_t } from './gfp.js';
import type { Kernel } from './kernel.js';
import {
  PG_head,
  PG_locked,
  PG_writeback,
  __folio_clear_locked,
  __folio_set_locked,
  folio_set_referenced,
  folio_test_active,
  folio_test_locked,
  folio_test_referenced,
  folio_test_swapbacked,
  folio_test_unevictable,
  folio_clear_referenced,
} from './page-flags.js';
import type { PageStore } from './page_store.js';
import { PAGEVEC_SIZE, folio_batch_add, folio_batch_count, folio_batch_init, type FolioBatch } from './pagevec.js';
import { folio_flags_mlocked, lru_activate, lru_add } from './mm_inline.js';
import { xa_is_value } from './swapops.js';

/* include/linux/pagemap.h: fgf_t, the flags of __filemap_get_folio() */
export const FGP_ACCESSED = 0x00000001;
export const FGP_LOCK = 0x00000002;
export const FGP_CREAT = 0x00000004;
export const FGP_WRITE = 0x00000008;
export const FGP_NOFS = 0x00000010;
export const FGP_NOWAIT = 0x00000020;
export const FGP_FOR_MMAP = 0x00000040;
export const FGP_STABLE = 0x00000080;
export const FGP_DONTCACHE = 0x00000100;
export const FGP_WRITEBEGIN = FGP_LOCK | FGP_WRITE | FGP_CREAT | FGP_STABLE;

/** FGF_GET_ORDER(): the folio order a FGP_CREAT caller asks for, in the top 6 bits. */
export function FGF_GET_ORDER(fgp_flags: number): number {
  return Math.floor((fgp_flags >>> 0) / 2 ** 26);
}

/** fgf_set_order(): encode a preferred folio order into fgp flags. */
export function fgf_set_order(order: number): number {
  return order * 2 ** 26;
}

/** A `pgoff_t *` in/out argument of the range lookups. */
export interface PgoffRef {
  index: number;
}

/* Simulator plumbing: folio->mapping ids back to their AddressSpace, per host. */

const mappingsByStore = new WeakMap<PageStore, Map<number, AddressSpace>>();

/**
 * Make `mapping` findable from folio->mapping (its id) on this host, and route folio_mark_dirty()
 * of its folios to mapping->a_ops->dirty_folio.
 */
export function registerMapping(store: PageStore, mapping: AddressSpace): void {
  let map = mappingsByStore.get(store);
  if (map === undefined) {
    map = new Map();
    mappingsByStore.set(store, map);
  }
  BUG_ON(map.has(mapping.id) && map.get(mapping.id) !== mapping, `address_space id ${mapping.id} registered twice`);
  map.set(mapping.id, mapping);
  if (store.dirty_folio === undefined) {
    /* the store's map of mappings lives as long as the store: look ids up in it directly */
    const byId = map;
    store.dirty_folio = (id, folio) => {
      const m = byId.get(id);
      const dirty = m?.a_ops.dirty_folio;
      return dirty !== undefined ? dirty(m!, folio) : noop_dirty_folio(store, id, folio);
    };
  }
}

/** Forget a mapping (inode eviction). Its page cache must be empty. */
export function unregisterMapping(store: PageStore, mapping: AddressSpace): void {
  BUG_ON(!mapping.i_pages.xa_empty(), `unregistering address_space ${mapping.id} with ${mapping.nrpages} pages cached`);
  mappingsByStore.get(store)?.delete(mapping.id);
}

/** Every address_space registered on this host, in id order (debug walks). */
export function registered_mappings(store: PageStore): AddressSpace[] {
  const map = mappingsByStore.get(store);
  return map === undefined ? [] : [...map.values()].sort((a, b) => a.id - b.id);
}

/** The AddressSpace whose id is `id` (folio_mapping()'s result), or undefined. */
export function lookupMapping(store: PageStore, id: number): AddressSpace | undefined {
  if (id === 0) return undefined;
  /* one-entry cache in front of the WeakMap: rmap walks and faults ask for every folio */
  if (store === lookup_store) return lookup_map!.get(id);
  const map = mappingsByStore.get(store);
  if (map === undefined) return undefined;
  lookup_store = store;
  lookup_map = map;
  return map.get(id);
}
let lookup_store: PageStore | undefined;
let lookup_map: Map<number, AddressSpace> | undefined;

/** folio_mapping() as the object: the page-cache AddressSpace of a folio, or undefined. */
export function folio_address_space(store: PageStore, folio: Folio): AddressSpace | undefined {
  return lookupMapping(store, folio_mapping(store, folio));
}

/** mapping_empty(). */
export function mapping_empty(mapping: AddressSpace): boolean {
  return mapping.i_pages.xa_empty();
}

/** folio_contains(): the folio holds the page at `index` of its file. */
export function folio_contains(store: PageStore, folio: Folio, index: number): boolean {
  const first = store.index[store.idx(folio)];
  return index >= first && index < first + folio_nr_pages(store, folio);
}

/** folio_next_index(): the file index just past the folio. */
export function folio_next_index(store: PageStore, folio: Folio): number {
  return store.index[store.idx(folio)] + folio_nr_pages(store, folio);
}

/** folio_pos(): the file offset of the folio's first byte. */
export function folio_pos(store: PageStore, folio: Folio): bigint {
  return BigInt(store.index[store.idx(folio)]) * BigInt(PAGE_SIZE);
}

/** folio_file_page(): the page of a page-cache folio that holds file index `index`. */
export function folio_file_page(store: PageStore, folio: Folio, index: number): number {
  return folio + (index - store.index[store.idx(folio)]);
}

/**
 * folio_mark_accessed() (mm/swap.c): the first access sets PG_referenced, the second activates
 * the folio (folio_activate(): to the head of its active list, PG_referenced cleared). A folio
 * off the LRU is not activated: the kernel only marks it when it sits in the local lru_add batch
 * (__lru_cache_activate_folio()), and the simulator's batches are always drained.
 */
export function folio_mark_accessed(store: PageStore, folio: Folio): void {
  if (!folio_test_referenced(store, folio)) {
    folio_set_referenced(store, folio);
  } else if (folio_test_unevictable(store, folio)) {
    /* Unevictable folios stay where they are; the kernel leaves PG_referenced set. */
  } else if (!folio_test_active(store, folio)) {
    lru_activate(store, folio);
    folio_clear_referenced(store, folio);
  }
}

/**
 * folio_evictable() (mm/internal.h): reclaim may take the folio: its mapping is not
 * AS_UNEVICTABLE (guest_memfd, SHM_LOCK, an inode being evicted) and it is not mlocked.
 */
export function folio_evictable(store: PageStore, folio: Folio): boolean {
  const mapping = folio_address_space(store, folio);
  if (mapping !== undefined && mapping.mapping_unevictable()) return false;
  return !folio_flags_mlocked(store, folio);
}

/**
 * folio_add_lru() (mm/swap.c): the folio joins the head of its LRU list (mm_inline.ts), the
 * unevictable list if folio_evictable() says so. The per-CPU batch is drained at once.
 */
export function folio_add_lru(store: PageStore, folio: Folio): void {
  lru_add(store, folio, folio_evictable(store, folio));
}

/* Insertion */

/**
 * Store `folio` at every index it covers, or fail with -EEXIST if any of them is taken (the
 * kernel's xas_store() of a multi-index entry after xas_find_conflict()).
 */
export function page_cache_insert(mapping: AddressSpace, folio: Folio, index: number, nr: number): number {
  const i_pages = mapping.i_pages;
  if (nr === 1) return i_pages.xa_insert(index, folio) ? -Errno.EEXIST : 0;
  if (i_pages.xa_find(index, index + nr - 1) !== undefined) return -Errno.EEXIST;
  for (let k = 0; k < nr; k++) i_pages.xa_store(index + k, folio);
  return 0;
}

/**
 * __filemap_add_folio(): insert a locked folio at `index` (aligned to its size), taking one
 * reference per page for the page cache and setting folio->mapping and folio->index.
 * @returns 0, or -EEXIST when the range is occupied (the folio is then left as it came).
 */
export function __filemap_add_folio(kernel: Kernel, mapping: AddressSpace, folio: Folio, index: PgOff | number, _gfp: gfp_t): number {
  const store = kernel.store;
  if (!folio_test_locked(store, folio)) BUG(`VM_BUG_ON_FOLIO: __filemap_add_folio of unlocked folio 0x${folio.toString(16)}`);
  if (folio_test_swapbacked(store, folio)) BUG(`VM_BUG_ON_FOLIO: __filemap_add_folio of swap-backed folio 0x${folio.toString(16)}`);
  const nr = folio_nr_pages(store, folio);
  if (index % nr !== 0) BUG(`VM_BUG_ON_FOLIO: index ${index} not aligned to the folio's ${nr} pages`);
  folio_ref_add(store, folio, nr);
  const i = store.idx(folio);
  store.mapping[i] = mapping.id;
  store.index[i] = index;
  const err = page_cache_insert(mapping, folio, index, nr);
  if (err) {
    store.mapping[i] = 0;
    folio_put_refs(store, folio, nr);
    return err;
  }
  mapping.nrpages += nr;
  if (kernel.tracer.enabled('mm_filemap_add_to_page_cache')) {
    kernel.tracer.emit('mm_filemap_add_to_page_cache', { pfn: folio, i_ino: mapping.host.i_ino, index: index as PgOff, order: folio_order(store, folio) });
  }
  return 0;
}

/**
 * filemap_add_folio(): lock a new folio, add it to the page cache and to the LRU.
 * @returns 0 with the folio locked, or -errno with it unlocked.
 */
export function filemap_add_folio(kernel: Kernel, mapping: AddressSpace, folio: Folio, index: PgOff | number, gfp: gfp_t): number {
  const store = kernel.store;
  __folio_set_locked(store, folio);
  const ret = __filemap_add_folio(kernel, mapping, folio, index, gfp);
  if (ret) {
    __folio_clear_locked(store, folio);
    return ret;
  }
  folio_add_lru(store, folio);
  return 0;
}

const PAGE_ALLOC = costId('page_alloc');

/**
 * filemap_alloc_folio(): a new folio for the page cache, charged as one allocation.
 * @returns the folio, or null when memory is exhausted.
 */
export function filemap_alloc_folio(kernel: Kernel, gfp: gfp_t, order: number): Folio | null {
  const pfn = kernel.page_alloc.folio_alloc(gfp, order);
  if (pfn < 0) return null;
  kernel.cost.chargeId(PAGE_ALLOC);
  return pfn as Folio;
}

/* Lookup */

/**
 * filemap_get_entry(): the folio at `index` with a reference taken, or undefined (also for a
 * value entry, which its callers treat as no folio; shmem looks for those itself).
 */
export function filemap_get_entry(kernel: Kernel, mapping: AddressSpace, index: PgOff | number): Folio | undefined {
  const folio = mapping.i_pages.xa_load(index);
  if (folio === undefined || xa_is_value(folio)) return undefined;
  return folio_try_get(kernel.store, folio) ? folio : undefined;
}

/**
 * __filemap_get_folio(): find (and with FGP_CREAT create) the folio at `index`.
 * @returns the folio with a reference for the caller (locked with FGP_LOCK), or ERR_PTR(-ENOENT)
 * when there is none and FGP_CREAT was not given, or ERR_PTR(-ENOMEM).
 */
export function __filemap_get_folio(kernel: Kernel, mapping: AddressSpace, index: PgOff | number, fgp_flags: number, gfp: gfp_t): Folio | ErrPtr {
  const store = kernel.store;
  for (;;) {
    let folio = filemap_get_entry(kernel, mapping, index);
    if (folio !== undefined) {
      if (fgp_flags & FGP_LOCK) folio_lock(store, folio);
      if (fgp_flags & FGP_ACCESSED) folio_mark_accessed(store, folio);
      return folio;
    }
    if (!(fgp_flags & FGP_CREAT)) return ERR_PTR(-Errno.ENOENT);
    let order = Math.min(FGF_GET_ORDER(fgp_flags), 9);
    while (order > 0 && index % 2 ** order !== 0) order--;
    folio = undefined;
    let err = 0;
    for (;;) {
      const f = filemap_alloc_folio(kernel, gfp, order);
      if (f !== null) {
        err = filemap_add_folio(kernel, mapping, f, index - (index % 2 ** order), gfp);
        if (!err) {
          folio = f;
          break;
        }
        folio_put(store, f);
        if (err === -Errno.EEXIST) break;
      }
      if (order === 0) break;
      order--;
    }
    if (folio === undefined) {
      if (err === -Errno.EEXIST) continue;
      return ERR_PTR(err || -Errno.ENOMEM);
    }
    /* "Init accessed so avoid atomic mark_page_accessed later" */
    if (fgp_flags & FGP_ACCESSED) folio_set_referenced(store, folio);
    /* filemap_add_folio() locks the folio, and for mmap we expect an unlocked one */
    if (fgp_flags & FGP_FOR_MMAP) folio_unlock(store, folio);
    return folio;
  }
}

/** filemap_get_folio(): the folio at `index` with a reference, or ERR_PTR(-ENOENT). */
export function filemap_get_folio(kernel: Kernel, mapping: AddressSpace, index: PgOff | number): Folio | ErrPtr {
  return __filemap_get_folio(kernel, mapping, index, 0, 0);
}

/** filemap_lock_folio(): as filemap_get_folio(), locked. */
export function filemap_lock_folio(kernel: Kernel, mapping: AddressSpace, index: PgOff | number): Folio | ErrPtr {
  return __filemap_get_folio(kernel, mapping, index, FGP_LOCK, 0);
}

/**
 * Fill `fbatch` with the folios of [first, end], each once (a large folio at the index it is first
 * seen at) and with a reference taken; swap entries are passed over.
 * @returns true if it stopped because the batch is full
 */
function pagecache_fill(kernel: Kernel, mapping: AddressSpace, first: number, end: number, fbatch: FolioBatch): boolean {
  const store = kernel.store;
  let last: Folio | -1 = -1;
  const xas = new XaState(mapping.i_pages, first);
  for (let folio = xas.xas_find(end); folio !== undefined; folio = xas.xas_next_entry(end)) {
    if (folio === last || xa_is_value(folio)) continue;
    last = folio;
    if (!folio_try_get(store, folio)) continue;
    if (folio_batch_add(fbatch, folio, xas.xa_index) === 0) return true;
  }
  return false;
}

/**
 * find_lock_entries(): up to a batch of folios wholly inside [*start, end], locked and referenced;
 * a large folio that straddles either end is skipped, and so is a locked one, one under
 * writeback or one that left the mapping. *start moves past the last folio taken.
 * Truncation calls this for every folio of a file, so it reads the page store's arrays directly
 * (folio_try_get(), folio_trylock(), folio_test_writeback() without the helpers' checks).
 * @returns the number of folios in the batch.
 */
export function find_lock_entries(kernel: Kernel, mapping: AddressSpace, start: PgoffRef, end: number, fbatch: FolioBatch): number {
  const store = kernel.store;
  const base = store.base_pfn;
  const flags = store.flags;
  const refcount = store._refcount;
  const orders = store.order;
  const indexes = store.index;
  const mappings = store.mapping;
  const id = mapping.id;
  const from = start.index;
  folio_batch_init(fbatch);
  const folios = fbatch.folios;
  const indices = fbatch.indices;
  let n = 0;
  let next = -1;
  let last = -1;
  const xas = new XaState(mapping.i_pages, from);
  for (let folio = xas.xas_find(end); folio !== undefined; folio = xas.xas_next_entry(end)) {
    /* a swap entry (value entry): shmem_undo_range() frees those */
    if (folio === last || folio < 0) continue;
    last = folio;
    const i = folio - base;
    if (refcount[i] === 0) continue;
    const f = flags[i];
    const nr = f & (1 << PG_head) ? 2 ** orders[i] : 1;
    const first = indexes[i];
    /* Omit large folios which begin before the start or extend beyond the end */
    if (first < from || first + nr - 1 > end) continue;
    /* !folio_trylock(), or the folio moved or is under writeback */
    if (f & ((1 << PG_locked) | (1 << PG_writeback)) || mappings[i] !== id) continue;
    refcount[i]++;
    flags[i] = f | (1 << PG_locked);
    next = first + nr;
    indices[n] = xas.xa_index;
    folios[n++] = folio;
    if (n === PAGEVEC_SIZE) break;
  }
  fbatch.nr = n;
  if (n !== 0) start.index = next;
  return n;
}

/**
 * find_get_entries(): up to a batch of folios in [*start, end] (large folios that straddle the
 * range included), referenced but not locked. *start moves past the last folio returned.
 */
export function find_get_entries(kernel: Kernel, mapping: AddressSpace, start: PgoffRef, end: number, fbatch: FolioBatch): number {
  const store = kernel.store;
  folio_batch_init(fbatch);
  pagecache_fill(kernel, mapping, start.index, end, fbatch);
  const n = folio_batch_count(fbatch);
  if (n) {
    const nr = folio_nr_pages(store, fbatch.folios[n - 1]);
    start.index = Math.floor((fbatch.indices[n - 1] + nr) / nr) * nr;
  }
  return n;
}

/**
 * filemap_get_folios(): up to a batch of folios that overlap [*start, end], referenced. *start
 * moves past the last folio returned, or to end + 1 when the range is exhausted.
 */
export function filemap_get_folios(kernel: Kernel, mapping: AddressSpace, start: PgoffRef, end: number, fbatch: FolioBatch): number {
  const store = kernel.store;
  folio_batch_init(fbatch);
  const full = pagecache_fill(kernel, mapping, start.index, end, fbatch);
  const n = folio_batch_count(fbatch);
  if (n && full) start.index = folio_next_index(store, fbatch.folios[n - 1]);
  else start.index = end + 1;
  return n;
}

/* Removal */

/**
 * filemap_unaccount_folio(): a folio leaving the page cache must no longer be mapped; with
 * CONFIG_DEBUG_VM a mapped one is VM_BUG_ON_FOLIO (truncation unmaps first).
 */
function filemap_unaccount_folio(store: PageStore, folio: Folio): void {
  if (folio_mapped(store, folio)) BUG(`VM_BUG_ON_FOLIO: folio 0x${folio.toString(16)} still mapped when leaving the page cache`);
}

/** page_cache_delete(): take the folio out of i_pages; folio->index is kept, folio->mapping cleared. */
function page_cache_delete(store: PageStore, mapping: AddressSpace, folio: Folio): void {
  const i = store.idx(folio);
  const nr = folio_nr_pages(store, folio);
  const index = store.index[i];
  const i_pages = mapping.i_pages;
  for (let k = 0; k < nr; k++) i_pages.xa_erase(index + k);
  store.mapping[i] = 0;
  mapping.nrpages -= nr;
}

function trace_delete(kernel: Kernel, mapping: AddressSpace, folio: Folio): void {
  if (kernel.tracer.enabled('mm_filemap_delete_from_page_cache')) {
    const store = kernel.store;
    kernel.tracer.emit('mm_filemap_delete_from_page_cache', {
      pfn: folio,
      i_ino: mapping.host.i_ino,
      index: store.index[store.idx(folio)] as PgOff,
      order: folio_order(store, folio),
    });
  }
}

/** The mapping a page-cache folio belongs to; a folio outside the page cache here is a bug. */
function folio_cache_mapping(store: PageStore, folio: Folio): AddressSpace {
  const mapping = folio_address_space(store, folio);
  if (mapping === undefined) BUG(`folio 0x${folio.toString(16)} is not in a registered page cache`);
  return mapping;
}

/** __filemap_remove_folio(): unlink a locked folio from its page cache (the caller frees it). */
export function __filemap_remove_folio(kernel: Kernel, folio: Folio): void {
  const store = kernel.store;
  const mapping = folio_cache_mapping(store, folio);
  trace_delete(kernel, mapping, folio);
  filemap_unaccount_folio(store, folio);
  page_cache_delete(store, mapping, folio);
}

/**
 * filemap_free_folio(): the page cache's references go; mapping->a_ops->free_folio is told first
 * (guest_memfd hands the memory back to the vendor there).
 */
export function filemap_free_folio(kernel: Kernel, mapping: AddressSpace, folio: Folio): void {
  mapping.a_ops.free_folio?.(folio);
  folio_put_refs(kernel.store, folio, folio_nr_pages(kernel.store, folio));
}

/** filemap_remove_folio(): remove a locked folio from the page cache and drop the cache's references. */
export function filemap_remove_folio(kernel: Kernel, folio: Folio): void {
  const store = kernel.store;
  if (!folio_test_locked(store, folio)) BUG(`filemap_remove_folio of unlocked folio 0x${folio.toString(16)}`);
  const mapping = folio_cache_mapping(store, folio);
  __filemap_remove_folio(kernel, folio);
  filemap_free_folio(kernel, mapping, folio);
}

/**
 * delete_from_page_cache_batch(): remove a batch of locked folios of one mapping (truncation),
 * then drop the page cache's references on each. The folios stay locked and keep the batch's
 * references. (6.18 has no single-folio delete_from_page_cache(); filemap_remove_folio() is it.)
 */
export function delete_from_page_cache_batch(kernel: Kernel, mapping: AddressSpace, fbatch: FolioBatch): void {
  const store = kernel.store;
  const n = folio_batch_count(fbatch);
  if (!n) return;
  for (let k = 0; k < n; k++) {
    const folio = fbatch.folios[k];
    trace_delete(kernel, mapping, folio);
    filemap_unaccount_folio(store, folio);
  }
  for (let k = 0; k < n; k++) page_cache_delete(store, mapping, fbatch.folios[k]);
  for (let k = 0; k < n; k++) filemap_free_folio(kernel, mapping, fbatch.folios[k]);
}
