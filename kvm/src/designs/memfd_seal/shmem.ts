/**
 * The mm half of the memfd designs (mm/shmem.c of "mm/shmem: Introduce F_SEAL_INACCESSIBLE", v4
 * 01/12, and of v5's MFD_INACCESSIBLE / SHM_F_INACCESSIBLE): an inaccessible shmem file has no
 * ordinary MMU access. In the series' places and order:
 *   - shmem_file_read_iter(): -EPERM once the position is within i_size's last page (the check
 *     comes after "index > end_index", so a read past it is 0);
 *   - shmem_write_begin(): -EPERM after the F_SEAL_WRITE/F_SEAL_GROW checks (a 0-byte write is 0:
 *     generic_write_checks() returns before);
 *   - shmem_mmap(): -EPERM;
 *   - shmem_setattr(): the size is set once (-EPERM when it is not 0) and page aligned (-EINVAL);
 *   - shmem_fallocate(): a punch must be page aligned (-EINVAL);
 *   - the memfile notifiers hear of punched (freed) and fallocated (now private) pages;
 *   - shmem_writepage(): never swapped (redirty): the designs mark the mapping unevictable instead
 *     (memfd_seal index.ts memfd_seal_make_inaccessible(); mfd_inaccessible at creation).
 * Which files are inaccessible is the design's: D5 the F_SEAL_INACCESSIBLE seal (or v3's
 * MFD_INACCESSIBLE forcing it), D6 the in-kernel SHM_F_INACCESSIBLE flag of MFD_INACCESSIBLE.
 */
import { Errno, PAGE_SHIFT, PAGE_SIZE } from '@cocosim/core';
import {
  FALLOC_FL_PUNCH_HOLE, SGP_CACHE, SGP_WRITE, shmem_mapping, type File, type Inode, type MmHooks, type VmAreaStruct,
} from '@cocosim/mm';
import { memfile_notifier_fallocate, memfile_notifier_invalidate } from './memfile_notifier.js';

const PAGE = BigInt(PAGE_SIZE);

/** Whether a shmem inode is inaccessible, as the design decides. */
export type InaccessiblePredicate = (inode: Inode) => boolean;

/** pos >> PAGE_SHIFT as a number (positions are below 2^63: indexes below 2^51). */
function index_of(pos: bigint): number {
  return Number(pos >> BigInt(PAGE_SHIFT));
}

/**
 * The mm hooks of an inaccessible shmem file, for a design whose predicate says which files are
 * (see the file comment). `name` is the design's.
 */
export function shmem_inaccessible_hooks(name: string, is_inaccessible: InaccessiblePredicate): MmHooks {
  const inaccessible_file = (file: File | null): boolean => file !== null && shmem_mapping(file.f_mapping) && is_inaccessible(file.f_inode);
  return {
    name,
    file_rw(file: File, pos: bigint | null, _count: number, write: boolean): number {
      if (write || !inaccessible_file(file) || pos === null) return 0;
      // shmem_file_read_iter(): "Check F_SEAL_INACCESSIBLE after i_size."
      return index_of(pos) > index_of(file.f_inode.i_size) ? 0 : -Errno.EPERM;
    },
    shmem_mmap(file: File, _vma: VmAreaStruct): number {
      return is_inaccessible(file.f_inode) ? -Errno.EPERM : 0;
    },
    shmem_setattr(inode: Inode, oldsize: bigint, newsize: bigint): number {
      if (!is_inaccessible(inode)) return 0;
      if (oldsize) return -Errno.EPERM;
      if (newsize % PAGE !== 0n) return -Errno.EINVAL;
      return 0;
    },
    shmem_fallocate(file: File, mode: number, offset: bigint, len: bigint): number {
      const inode = file.f_inode;
      if (mode & FALLOC_FL_PUNCH_HOLE) {
        if (is_inaccessible(inode) && (offset % PAGE !== 0n || len % PAGE !== 0n)) return -Errno.EINVAL;
        // notify_invalidate_page() from shmem_undo_range(), for every page the punch frees.
        memfile_notifier_invalidate(inode, index_of(offset + PAGE - 1n), index_of(offset + len));
        return 0;
      }
      // notify_fallocate() of the allocated range.
      memfile_notifier_fallocate(inode, index_of(offset), index_of(offset + len + PAGE - 1n));
      return 0;
    },
    shmem_sgp(inode: Inode, sgp: number): number {
      // shmem_write_begin(): -EPERM; shmem_fault() of a mapping that predates the seal
      // (populate-then-seal): the fault fails, SIGBUS.
      return (sgp === SGP_WRITE || sgp === SGP_CACHE) && is_inaccessible(inode) ? -Errno.EPERM : 0;
    },
  };
}
