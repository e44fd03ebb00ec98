/**
 * The backing store of D4 (mm/shmem.c and mm/memfd.c of Kirill A. Shutemov's F_SEAL_GUEST, the
 * prototype he posted in the RFC thread and that Chao Peng's RFC v1 carried as patches 1-2/6,
 * 20211111141352.26311-2-chao.p.peng@linux.intel.com): a shmem memfd sealed F_SEAL_GUEST is guest
 * private memory, "enlightened" in Sean's words: KVM and the file exchange callbacks at pairing
 * (shmem_register_guest(): the store's get_lock_pfn/put_unlock_pfn for KVM, KVM's
 * invalidate_page_range for the store). In the patch's places and order:
 *   - memfd_add_seals(): F_SEAL_GUEST on a mapped file or one with a non-zero size is -EBUSY;
 *   - shmem_file_read_iter(): -EPERM before anything else (a read of 0 bytes too);
 *   - shmem_write_begin(): -EPERM after the F_SEAL_WRITE/F_SEAL_GROW checks;
 *   - shmem_mmap(): -EPERM: "there is never a host virtual address associated with the fd";
 *   - shmem_setattr(): a size that is not page aligned is -EINVAL;
 *   - shmem_fallocate(): a punch that is not page aligned is -EINVAL; the pages it frees are
 *     invalidated in KVM first (guest_invalidate_page() from shmem_undo_range());
 *   - shmem_writepage(): redirty (no swap) and shmem_migrate_page(): -ENOTSUPP — the simulator
 *     reaches neither for these pages, which no LRU scan of the tests selects (not modelled).
 * shmem_get_lock_pfn() allocates with SGP_WRITE, which leaves a new page uncleared (the SGP_WRITE
 * zeroing bug D7 inherited): the first private use of a page shows what the allocator left there.
 */
import { Errno, PAGE_SIZE, type Pfn } from '@cocosim/core';
import {
  FALLOC_FL_PUNCH_HOLE, SGP_WRITE, SHMEM_I, folio_file_page, folio_mark_dirty, folio_put, folio_unlock, mapping_mapped, shmem_get_folio,
  shmem_mapping, type File, type FolioRef, type Inode, type MmHooks, type PageStore, type VmAreaStruct,
} from '@cocosim/mm';
import { F_SEAL_GUEST } from './uapi.js';

const PAGE = BigInt(PAGE_SIZE);

/** struct guest_ops: the store's call into its user (KVM): pages [start, end) are going away. */
export interface GuestOps {
  invalidate_page_range(inode: Inode, start: number, end: number): void;
}

/** shmem_inode_info->guest_owner / ->guest_ops: the VM paired with the file and its callbacks. */
interface GuestPairing {
  readonly owner: object;
  readonly ops: Set<GuestOps>;
}

const pairings = new WeakMap<Inode, GuestPairing>();

/** The file is sealed F_SEAL_GUEST. */
export function shmem_test_guest(inode: Inode): boolean {
  return shmem_mapping(inode.i_mapping) && (SHMEM_I(inode).seals & F_SEAL_GUEST) !== 0;
}

/**
 * shmem_register_guest() / memfd_register_guest(): pair the file with `owner` (a struct kvm):
 * -EINVAL for a file that is no shmem or no F_SEAL_GUEST file, -EPERM when another owner holds
 * it ("the rule should be 1:1 between memfd and KVM instance", several memslots of one VM may
 * share it). The patch checked the owner but never stored it; the simulator stores it, as its
 * stated rule needs, until the last of the owner's callbacks unregisters.
 */
export function shmem_register_guest(inode: Inode, owner: object, ops: GuestOps): number {
  if (!shmem_test_guest(inode)) return -Errno.EINVAL;
  const cur = pairings.get(inode);
  if (cur !== undefined && cur.owner !== owner) return -Errno.EPERM;
  if (cur === undefined) pairings.set(inode, { owner, ops: new Set([ops]) });
  else cur.ops.add(ops);
  // A guest's store is never swapped (shmem_writepage redirties it) nor migrated (-ENOTSUPP),
  // designs.md §1 D5: KVM holds its pfns without an MMU notifier to follow a move. An
  // inaccessible mapping is both unevictable and unmovable (mm/migrate.c, 6.18).
  inode.i_mapping.mapping_set_inaccessible();
  return 0;
}

/** The owner's callbacks leave the file (kvm_unregister_private_memslot()). */
export function shmem_unregister_guest(inode: Inode, ops: GuestOps): void {
  const cur = pairings.get(inode);
  if (cur === undefined) return;
  cur.ops.delete(ops);
  if (cur.ops.size === 0) pairings.delete(inode);
}

/** guest_invalidate_page(): tell the paired VM that pages [start, end) of the file are freed. */
function guest_invalidate_page(inode: Inode, start: number, end: number): void {
  const cur = pairings.get(inode);
  if (cur === undefined || start >= end) return;
  for (const ops of cur.ops) ops.invalidate_page_range(inode, start, end);
}

/**
 * shmem_get_lock_pfn() (guest_mem_ops.get_lock_pfn): the pfn of file page `index`, allocated
 * on first use with SGP_WRITE (not cleared), and the page level (4K: shmem's order-0 pages).
 * shmem_put_unlock_pfn() follows at once (set_page_dirty, unlock, put): nothing runs between
 * the lookup and the SPTE install in the simulator.
 */
export function shmem_get_lock_pfn(inode: Inode, index: number, store: PageStore): { pfn: number; max_order: number } | number {
  const ref: FolioRef = { folio: null };
  const r = shmem_get_folio(inode, index, BigInt(index + 1) * PAGE, ref, SGP_WRITE);
  if (r) return r;
  const folio = ref.folio!;
  const pfn = folio_file_page(store, folio, index) as Pfn;
  folio_mark_dirty(store, folio);
  folio_unlock(store, folio);
  folio_put(store, folio);
  return { pfn, max_order: 0 };
}

/** Index of byte `pos`. */
function index_of(pos: bigint): number {
  return Number(pos / PAGE);
}

/** The mm hooks of F_SEAL_GUEST (see the file comment). */
export function shmem_guest_hooks(name: string): MmHooks {
  const guest_file = (file: File | null): boolean => file !== null && shmem_test_guest(file.f_inode);
  return {
    name,
    seal_flags: F_SEAL_GUEST,
    memfd_add_seals(file: File, seals: number): number {
      if (!(seals & F_SEAL_GUEST) || !shmem_mapping(file.f_mapping)) return 0;
      if (mapping_mapped(file.f_mapping)) return -Errno.EBUSY;
      if (file.f_inode.i_size) return -Errno.EBUSY;
      return 0;
    },
    file_rw(file: File, _pos: bigint | null, _count: number, write: boolean): number {
      // shmem_file_read_iter() refuses first; a write reaches shmem_write_begin() (shmem_sgp).
      return !write && guest_file(file) ? -Errno.EPERM : 0;
    },
    shmem_mmap(file: File, _vma: VmAreaStruct): number {
      return shmem_test_guest(file.f_inode) ? -Errno.EPERM : 0;
    },
    shmem_setattr(inode: Inode, _oldsize: bigint, newsize: bigint): number {
      return shmem_test_guest(inode) && newsize % PAGE !== 0n ? -Errno.EINVAL : 0;
    },
    shmem_fallocate(file: File, mode: number, offset: bigint, len: bigint): number {
      const inode = file.f_inode;
      if (!(mode & FALLOC_FL_PUNCH_HOLE) || !shmem_test_guest(inode)) return 0;
      if (offset % PAGE !== 0n || len % PAGE !== 0n) return -Errno.EINVAL;
      guest_invalidate_page(inode, index_of(offset), index_of(offset + len));
      return 0;
    },
    shmem_sgp(inode: Inode, sgp: number): number {
      // shmem_write_begin(): F_SEAL_GUEST is -EPERM after the WRITE/GROW seals.
      return sgp === SGP_WRITE && shmem_test_guest(inode) ? -Errno.EPERM : 0;
    },
  };
}
