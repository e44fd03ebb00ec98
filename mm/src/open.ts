/**
 * The open-file system calls of fs/open.c (Linux 6.18) that memory files need: ftruncate(2),
 * fallocate(2), fchmod(2), and opening an already open file again through /proc/self/fd/N
 * (do_dentry_open() on the same inode, with O_TRUNC handled as do_open() does).
 *
 * Arguments arrive as any JS value and are converted to their C types as the syscall entry does
 * (mman.ts ulong_arg()/int_arg()); a value no C program can pass is treated as an invalid value
 * of that argument, at the point where the kernel checks it.
 */
import { Errno } from '@cocosim/core';
import { ATTR_CTIME, ATTR_MODE, ATTR_MTIME, ATTR_OPEN, S_IALLUGO, MAX_LFS_FILESIZE, notify_change, type IattrMode } from './attr.js';
import { file_fmode, ihold } from './file_table.js';
import {
  ATTR_SIZE,
  FMODE_LSEEK,
  FMODE_PREAD,
  FMODE_PWRITE,
  FMODE_WRITE,
  IS_APPEND,
  IS_IMMUTABLE,
  File,
  O_CLOEXEC,
  O_CREAT,
  O_EXCL,
  O_LARGEFILE,
  O_NOCTTY,
  O_TRUNC,
  S_IFDIR,
  S_IFMT,
  S_IFREG,
  type Iattr,
} from './fs.js';
import { int_arg, ulong_arg } from './mman.js';
import type { Task } from './process.js';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_MODE_MASK, FALLOC_FL_PUNCH_HOLE } from './uapi/falloc.js';
import {
  FALLOC_FL_ALLOCATE_RANGE,
  FALLOC_FL_COLLAPSE_RANGE,
  FALLOC_FL_INSERT_RANGE,
  FALLOC_FL_UNSHARE_RANGE,
  FALLOC_FL_WRITE_ZEROES,
  FALLOC_FL_ZERO_RANGE,
} from './uapi/falloc.js';

/** S_IFIFO and S_IFBLK (include/uapi/linux/stat.h; fs.ts has the others). */
const S_IFIFO = 0o010000;
const S_IFBLK = 0o060000;

/** A `loff_t`/`off_t` argument: the 64-bit register as a signed value, or undefined. */
export function loff_arg(x: unknown): bigint | undefined {
  const v = ulong_arg(x);
  return v === undefined ? undefined : BigInt.asIntN(64, v);
}

/**
 * do_truncate(): set the size through notify_change() (ATTR_SIZE with the time attributes).
 * @returns 0 or -errno (-EINVAL for a negative length).
 */
export function do_truncate(file: File, length: bigint, time_attrs: number): number {
  if (length < 0n) return -Errno.EINVAL;
  const attr: Iattr = { ia_valid: ATTR_SIZE | time_attrs, ia_size: length };
  return notify_change(file.f_inode, attr);
}

/**
 * do_ftruncate(): only a regular file opened for writing can be truncated through its fd
 * (-EINVAL otherwise, not -EBADF).
 */
export function do_ftruncate(file: File, length: bigint): number {
  const inode = file.f_inode;
  if ((inode.i_mode & S_IFMT) !== S_IFREG || !(file.f_mode & FMODE_WRITE)) return -Errno.EINVAL;
  /* an immutable file can be truncated through an fd opened before (Linux 6.18.44) */
  if (IS_APPEND(inode)) return -Errno.EPERM;
  return do_truncate(file, length, ATTR_MTIME | ATTR_CTIME);
}

/**
 * ksys_ftruncate() / do_sys_ftruncate(): the length is checked before the fd, so a negative length
 * is -EINVAL even on a bad fd.
 */
export function ksys_ftruncate(task: Task, fd: unknown, length: unknown): number {
  const len = loff_arg(length);
  if (len === undefined || len < 0n) return -Errno.EINVAL;
  const file = task.files.lookup(fd);
  if (file === undefined) return -Errno.EBADF;
  return do_ftruncate(file, len);
}

/**
 * vfs_fallocate(), in the kernel's order: -EINVAL for offset < 0 or len <= 0; -EOPNOTSUPP for
 * unknown mode bits, for more than one mode, for PUNCH_HOLE without KEEP_SIZE and for
 * COLLAPSE/INSERT/WRITE_ZEROES with KEEP_SIZE; -EBADF when not opened for writing; -ESPIPE for a
 * FIFO, -EISDIR for a directory, -ENODEV for anything but a regular file or block device; -EFBIG
 * when offset + len overflows or passes s_maxbytes; -EOPNOTSUPP when the file system has no
 * fallocate. Then the file system's fallocate.
 */
export function vfs_fallocate(file: File, mode: number, offset: bigint, len: bigint): number {
  const inode = file.f_inode;
  if (offset < 0n || len <= 0n) return -Errno.EINVAL;
  if (mode & ~(FALLOC_FL_MODE_MASK | FALLOC_FL_KEEP_SIZE)) return -Errno.EOPNOTSUPP;
  /* Modes are exclusive; FALLOC_FL_ALLOCATE_RANGE is encoded as no bit set. */
  switch (mode & FALLOC_FL_MODE_MASK) {
    case FALLOC_FL_ALLOCATE_RANGE:
    case FALLOC_FL_UNSHARE_RANGE:
    case FALLOC_FL_ZERO_RANGE:
      break;
    case FALLOC_FL_PUNCH_HOLE:
      if (!(mode & FALLOC_FL_KEEP_SIZE)) return -Errno.EOPNOTSUPP;
      break;
    case FALLOC_FL_COLLAPSE_RANGE:
    case FALLOC_FL_INSERT_RANGE:
    case FALLOC_FL_WRITE_ZEROES:
      if (mode & FALLOC_FL_KEEP_SIZE) return -Errno.EOPNOTSUPP;
      break;
    default:
      return -Errno.EOPNOTSUPP;
  }
  if (!(file.f_mode & FMODE_WRITE)) return -Errno.EBADF;
  /* On append-only files only space preallocation is supported. */
  if (mode & ~FALLOC_FL_KEEP_SIZE && IS_APPEND(inode)) return -Errno.EPERM;
  if (IS_IMMUTABLE(inode)) return -Errno.EPERM;
  const type = inode.i_mode & S_IFMT;
  if (type === S_IFIFO) return -Errno.ESPIPE;
  if (type === S_IFDIR) return -Errno.EISDIR;
  if (type !== S_IFREG && type !== S_IFBLK) return -Errno.ENODEV;
  /* check_add_overflow(offset, len, &sum), then sum > s_maxbytes */
  const sum = offset + len;
  if (sum > MAX_LFS_FILESIZE) return -Errno.EFBIG;
  const fallocate = file.f_op.fallocate;
  if (fallocate === undefined) return -Errno.EOPNOTSUPP;
  return fallocate(file, mode, offset, len);
}

/**
 * ksys_fallocate(): SYSCALL_DEFINE4(fallocate, int fd, int mode, loff_t offset, loff_t len). The
 * fd is looked up first. A mode no C program can pass is refused where the mode is checked
 * (-EOPNOTSUPP), an offset or length none can pass where they are (-EINVAL).
 */
export function ksys_fallocate(task: Task, fd: unknown, mode: unknown, offset: unknown, len: unknown): number {
  const file = task.files.lookup(fd);
  if (file === undefined) return -Errno.EBADF;
  const off = loff_arg(offset);
  const length = loff_arg(len);
  if (off === undefined || length === undefined) return -Errno.EINVAL;
  const m = int_arg(mode);
  if (m === undefined) return off < 0n || length <= 0n ? -Errno.EINVAL : -Errno.EOPNOTSUPP;
  return vfs_fallocate(file, m, off, length);
}

/**
 * chmod_common(): keep the file type, replace the permission bits (ATTR_MODE | ATTR_CTIME).
 */
export function chmod_common(file: File, mode: number): number {
  const inode = file.f_inode;
  const attr: IattrMode = {
    ia_valid: ATTR_MODE | ATTR_CTIME,
    ia_size: inode.i_size,
    ia_mode: (mode & S_IALLUGO) | (inode.i_mode & ~S_IALLUGO),
  };
  return notify_change(inode, attr);
}

/**
 * SYSCALL_DEFINE2(fchmod, unsigned int fd, umode_t mode): the mode is truncated to 16 bits. The
 * fd need not be open for writing: ownership decides, and a simulated process owns its files.
 */
export function ksys_fchmod(task: Task, fd: unknown, mode: unknown): number {
  const file = task.files.lookup(fd);
  if (file === undefined) return -Errno.EBADF;
  const m = int_arg(mode);
  if (m === undefined) return -Errno.EINVAL;
  return chmod_common(file, m & 0xffff);
}

/**
 * do_dentry_open() of an inode that is already open (what open("/proc/self/fd/N") reaches): a new
 * open file description with its own access mode and file position, sharing the inode (and so its
 * page cache and seals). O_TRUNC truncates to 0 through do_truncate() (handle_truncate()), which
 * seals can refuse: the open then fails with that error.
 * @returns the new File (the caller installs it) or -errno.
 */
export function proc_fd_reopen(task: Task, fd: number, flags: number): File | number {
  const old = task.files.lookup_raw(fd);
  if (old === undefined) return -Errno.ENOENT;
  const inode = old.f_inode;
  const f_flags = (flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC)) | O_LARGEFILE;
  const fops = inode.i_fop;
  const f_mode = file_fmode(flags, fops) | FMODE_LSEEK | FMODE_PREAD | FMODE_PWRITE;
  ihold(inode);
  const file = new File(inode, fops, f_flags, f_mode);
  if (flags & O_TRUNC && (inode.i_mode & S_IFMT) === S_IFREG) {
    const error = do_truncate(file, 0n, ATTR_MTIME | ATTR_CTIME | ATTR_OPEN);
    if (error) {
      file.fput();
      return error;
    }
  }
  return file;
}
