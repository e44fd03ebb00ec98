/**
 * mm/shmem.c of "mm: Introduce guest-only pages" (Kirill A. Shutemov,
 * https://lore.kernel.org/all/20210521123148.a3t4uh4iezm6ax47@box/):
 *   - shmem_getpage_gfp(): "if (page && PageGuest(page) && sgp != SGP_CACHE) error = -EIO", so
 *     read(2)/write(2) of the file's guest pages (SGP_READ, SGP_WRITE) and fallocate(2) over them
 *     (SGP_FALLOC) fail with -EIO; only the fault path (SGP_CACHE) gets them;
 *   - shmem_fault(): PageGuest is set there (memory.ts).
 *
 * cocosim asks at vfs_read()/vfs_write() (the file_rw hook) and shmem_fallocate() (its hook) for
 * the whole range: where a range starts with ordinary pages and reaches a guest page, the kernel
 * returns the bytes done before it (a short count); the simulator fails the call with -EIO.
 */
import { Errno, PAGE_SIZE } from '@cocosim/core';
import { FALLOC_FL_PUNCH_HOLE, shmem_mapping, xa_is_value, type AddressSpace, type File, type Kernel } from '@cocosim/mm';
import { PageGuest } from './page-flags.js';

const P = BigInt(PAGE_SIZE);

/** Whether a page-cache page of `mapping` at a byte in [start, end) is PageGuest. */
export function shmem_range_has_guest(kernel: Kernel, mapping: AddressSpace, start: bigint, end: bigint): boolean {
  if (end <= start) return false;
  let found = false;
  /* only the cached pages: a range may span up to 2^52 indices (fallocate(2) of any length) */
  mapping.i_pages.xa_for_each_range(Number(start / P), Number((end - 1n) / P), (_index, folio) => {
    found = !xa_is_value(folio) && PageGuest(kernel.store, folio);
    return !found;
  });
  return found;
}

/** shmem_getpage_gfp()'s -EIO for read(2)/write(2) of guest pages (the file_rw hook). */
export function shmem_file_rw_guest(kernel: Kernel, file: File, pos: bigint | null, count: number, write: boolean): number {
  if (pos === null || !shmem_mapping(file.f_mapping)) return 0;
  /* a read stops at i_size before it asks for a page */
  const end = write ? pos + BigInt(count) : bigint_min(pos + BigInt(count), file.f_inode.i_size);
  return shmem_range_has_guest(kernel, file.f_mapping, pos, end) ? -Errno.EIO : 0;
}

/** shmem_getpage_gfp(SGP_FALLOC)'s -EIO for fallocate(2) over guest pages; a punch asks for no page. */
export function shmem_fallocate_guest(kernel: Kernel, file: File, mode: number, offset: bigint, len: bigint): number {
  if (mode & FALLOC_FL_PUNCH_HOLE) return 0;
  return shmem_range_has_guest(kernel, file.f_mapping, offset, offset + len) ? -Errno.EIO : 0;
}

function bigint_min(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}
