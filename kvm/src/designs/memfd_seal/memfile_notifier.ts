/**
 * memfile_notifier (mm/memfile_notifier.c of the fd-based series v4/v5, Chao Peng, Jan-Mar 2022):
 * the link between a backing store of private memory (shmem) and its users (KVM memslots). The
 * store calls its notifiers when pages of the file are allocated (they became private: "A page is
 * private only when it's already allocated in the backing store fd") and when pages are freed by
 * a punch or truncation; the users ask the store for the pfn of a page (memfile_pfn_ops,
 * shmem_get_lock_pfn()). v4 allowed several notifiers (memslots) on one file.
 */
import { Errno, type Pfn } from '@cocosim/core';
import {
  SGP_NOALLOC, folio_file_page, folio_put, folio_unlock, shmem_get_folio, type FolioRef, type Inode, type PageStore,
} from '@cocosim/mm';

/** struct memfile_notifier_ops (v4): the store's calls into a user. */
export interface MemfileNotifierOps {
  /** Pages [start, end) of the file were freed (punch hole, truncate). */
  invalidate(start: number, end: number): void;
  /** Pages [start, end) of the file were allocated (fallocate): they are private now. */
  fallocate(start: number, end: number): void;
}

/** struct memfile_notifier: one user (a memslot) registered on a file. */
export interface MemfileNotifier {
  readonly ops: MemfileNotifierOps;
}

/** memfile_notifier_list of each backing-store inode (shmem_inode_info->memfile_notifiers). */
const notifier_lists = new WeakMap<Inode, Set<MemfileNotifier>>();

/** memfile_register_notifier(): `notifier` hears about `inode`'s allocations and frees. */
export function memfile_register_notifier(inode: Inode, notifier: MemfileNotifier): void {
  let list = notifier_lists.get(inode);
  if (list === undefined) notifier_lists.set(inode, (list = new Set()));
  list.add(notifier);
}

/** memfile_unregister_notifier(). */
export function memfile_unregister_notifier(inode: Inode, notifier: MemfileNotifier): void {
  notifier_lists.get(inode)?.delete(notifier);
}

/** memfile_notifier_invalidate(): pages [start, end) are going away. */
export function memfile_notifier_invalidate(inode: Inode, start: number, end: number): void {
  const list = notifier_lists.get(inode);
  if (list === undefined) return;
  for (const n of list) n.ops.invalidate(start, end);
}

/** memfile_notifier_fallocate(): pages [start, end) were allocated. */
export function memfile_notifier_fallocate(inode: Inode, start: number, end: number): void {
  const list = notifier_lists.get(inode);
  if (list === undefined) return;
  for (const n of list) n.ops.fallocate(start, end);
}

/**
 * shmem_get_lock_pfn() (memfile_pfn_ops.get_lock_pfn of shmem, v5): the pfn of file page
 * `index`, which must be allocated (SGP_NOALLOC: a hole is -ENOENT, a fallocated page is zeroed
 * on first use). The order is 0: KVM maps private memory of these stores with 4 KiB SPTEs (the
 * series' "TODO: require gfn be aligned with private offset"). The page lock and reference are
 * dropped before returning, as nothing runs between this and the SPTE install.
 */
export function shmem_get_lock_pfn(inode: Inode, index: number, store: PageStore): { pfn: number; max_order: number } | number {
  const ref: FolioRef = { folio: null };
  const r = shmem_get_folio(inode, index, 0n, ref, SGP_NOALLOC);
  if (r) return r;
  const folio = ref.folio;
  if (folio === null) return -Errno.ENOENT;
  const pfn = folio_file_page(store, folio, index) as Pfn;
  folio_unlock(store, folio);
  folio_put(store, folio);
  return { pfn, max_order: 0 };
}
