/**
 * read(2), write(2), pread64(2), pwrite64(2) and lseek(2) (fs/read_write.c, Linux 6.18).
 *
 * The user buffer is a Uint8Array: its length is the count, and anything else is a buffer
 * access_ok() refuses (-EFAULT, checked where the kernel checks it). Counts above MAX_RW_COUNT
 * are clamped. A read fills the front of the buffer and returns how many bytes it filled.
 */
import { Errno, PAGE_SIZE } from '@cocosim/core';
import { FMODE_CAN_READ, FMODE_CAN_WRITE, FMODE_LSEEK, FMODE_PREAD, FMODE_PWRITE, FMODE_READ, FMODE_WRITE, type File, type Loff } from './fs.js';
import { int_arg } from './mman.js';
import { loff_arg } from './open.js';
import type { Task } from './process.js';
import type { Kernel } from './kernel.js';
import { call_mm_hook } from './mm_hooks.js';

/** MAX_RW_COUNT: INT_MAX rounded down to a page, the most one call transfers. */
export const MAX_RW_COUNT = 0x7fff_ffff - (PAGE_SIZE - 1);

/* lseek whence (include/uapi/linux/fs.h) */
import { SEEK_CUR, SEEK_DATA, SEEK_END, SEEK_HOLE, SEEK_MAX, SEEK_SET } from './uapi/fs.js';
export { SEEK_CUR, SEEK_DATA, SEEK_END, SEEK_HOLE, SEEK_MAX, SEEK_SET };

/**
 * rw_verify_area(): a position that is negative or would overflow with `count` is -EINVAL (no
 * cocosim file has unsigned offsets).
 */
export function rw_verify_area(pos: bigint | null, count: number): number {
  if (pos !== null) {
    if (pos < 0n) return -Errno.EINVAL;
    if (BigInt.asIntN(64, pos + BigInt(count)) < 0n) return -Errno.EINVAL;
  }
  return 0;
}

/**
 * vfs_read(): -EBADF if not open for reading, -EINVAL if the file cannot be read, -EFAULT for a
 * buffer that is not one, then rw_verify_area(), then the file's read method.
 */
export function vfs_read(kernel: Kernel, file: File, buf: unknown, ppos: Loff): number {
  if (!(file.f_mode & FMODE_READ)) return -Errno.EBADF;
  if (!(file.f_mode & FMODE_CAN_READ)) return -Errno.EINVAL;
  if (!(buf instanceof Uint8Array)) return -Errno.EFAULT;
  const ret = rw_verify_area(ppos.pos, buf.length);
  if (ret) return ret;
  const count = Math.min(buf.length, MAX_RW_COUNT);
  /* security_file_permission()'s place in rw_verify_area() */
  const hook = call_mm_hook(kernel, 'file_rw', file, ppos.pos, count, false);
  if (hook) return hook;
  const read = file.f_op.read;
  if (read === undefined) return -Errno.EINVAL;
  return read(file, count === buf.length ? buf : buf.subarray(0, count), ppos);
}

/** vfs_write(): as vfs_read() for writing. */
export function vfs_write(kernel: Kernel, file: File, buf: unknown, ppos: Loff): number {
  if (!(file.f_mode & FMODE_WRITE)) return -Errno.EBADF;
  if (!(file.f_mode & FMODE_CAN_WRITE)) return -Errno.EINVAL;
  if (!(buf instanceof Uint8Array)) return -Errno.EFAULT;
  const ret = rw_verify_area(ppos.pos, buf.length);
  if (ret) return ret;
  const count = Math.min(buf.length, MAX_RW_COUNT);
  const hook = call_mm_hook(kernel, 'file_rw', file, ppos.pos, count, true);
  if (hook) return hook;
  const write = file.f_op.write;
  if (write === undefined) return -Errno.EINVAL;
  return write(file, count === buf.length ? buf : buf.subarray(0, count), ppos);
}

/** ksys_read(): read at the file position, which moves on success. */
export function ksys_read(task: Task, fd: unknown, buf: unknown): number {
  const file = task.files.lookup(fd);
  if (file === undefined) return -Errno.EBADF;
  const pos: Loff = { pos: file.f_pos };
  const ret = vfs_read(task.kernel, file, buf, pos);
  if (ret >= 0) file.f_pos = pos.pos;
  return ret;
}

/** ksys_write(): write at the file position (at EOF with O_APPEND), which moves on success. */
export function ksys_write(task: Task, fd: unknown, buf: unknown): number {
  const file = task.files.lookup(fd);
  if (file === undefined) return -Errno.EBADF;
  const pos: Loff = { pos: file.f_pos };
  const ret = vfs_write(task.kernel, file, buf, pos);
  if (ret >= 0) file.f_pos = pos.pos;
  return ret;
}

/**
 * ksys_pread64(): a negative position is -EINVAL before the fd is looked up; the file position
 * does not move; -ESPIPE for files without positioned reads.
 */
export function ksys_pread64(task: Task, fd: unknown, buf: unknown, pos: unknown): number {
  const p = loff_arg(pos);
  if (p === undefined || p < 0n) return -Errno.EINVAL;
  const file = task.files.lookup(fd);
  if (file === undefined) return -Errno.EBADF;
  if (!(file.f_mode & FMODE_PREAD)) return -Errno.ESPIPE;
  return vfs_read(task.kernel, file, buf, { pos: p });
}

/** ksys_pwrite64(): as ksys_pread64() for writing (O_APPEND still appends, as Linux does). */
export function ksys_pwrite64(task: Task, fd: unknown, buf: unknown, pos: unknown): number {
  const p = loff_arg(pos);
  if (p === undefined || p < 0n) return -Errno.EINVAL;
  const file = task.files.lookup(fd);
  if (file === undefined) return -Errno.EBADF;
  if (!(file.f_mode & FMODE_PWRITE)) return -Errno.ESPIPE;
  return vfs_write(task.kernel, file, buf, { pos: p });
}

/**
 * ksys_lseek(): -EBADF, -EINVAL for whence > SEEK_MAX, -ESPIPE for unseekable files, then the
 * file's llseek (default_llseek() semantics when it has none).
 * @returns the new position (a bigint: files reach 2^63 - 1) or -errno (a number)
 */
export function ksys_lseek(task: Task, fd: unknown, offset: unknown, whence: unknown): bigint | number {
  const file = task.files.lookup(fd);
  if (file === undefined) return -Errno.EBADF;
  const w = int_arg(whence);
  const off = loff_arg(offset);
  if (w === undefined || w >>> 0 > SEEK_MAX || off === undefined) return -Errno.EINVAL;
  if (!(file.f_mode & FMODE_LSEEK)) return -Errno.ESPIPE;
  const llseek = file.f_op.llseek;
  if (llseek !== undefined) return llseek(file, off, w >>> 0);
  return default_llseek(file, off, w >>> 0);
}

/** noop_llseek(): the position stays where it is (KVM's files, which have no position). */
export function noop_llseek(file: File): bigint {
  return file.f_pos;
}

/** default_llseek(): SEEK_SET, SEEK_CUR, SEEK_END, and SEEK_DATA/SEEK_HOLE treating the file as all data. */
export function default_llseek(file: File, offset: bigint, whence: number): bigint | number {
  const size = file.f_inode.i_size;
  switch (whence) {
    case SEEK_END:
      offset += size;
      break;
    case SEEK_CUR:
      if (offset === 0n) return file.f_pos;
      offset += file.f_pos;
      break;
    case SEEK_DATA:
      if (offset >= size) return -Errno.ENXIO;
      break;
    case SEEK_HOLE:
      if (offset >= size) return -Errno.ENXIO;
      offset = size;
      break;
  }
  if (offset < 0n) return -Errno.EINVAL;
  file.f_pos = offset;
  return offset;
}
