/**
 * fs/remap_range.c as far as the ioctls reach it: FICLONE, FICLONERANGE and FIDEDUPERANGE check
 * their files in the kernel's order and then find that no cocosim file system can share extents
 * (no ->remap_file_range): -EOPNOTSUPP, nothing copied.
 */
import { Errno } from '@cocosim/core';
import { FMODE_READ, FMODE_WRITE, O_APPEND, S_IFDIR, S_IFMT, inode_sb, regular_file, type File } from './fs.js';

/** generic_file_rw_checks(): both regular, the source readable, the target writable and not O_APPEND. */
export function generic_file_rw_checks(file_in: File, file_out: File): number {
  const inode_in = file_in.f_inode;
  const inode_out = file_out.f_inode;
  if ((inode_in.i_mode & S_IFMT) === S_IFDIR || (inode_out.i_mode & S_IFMT) === S_IFDIR) return -Errno.EISDIR;
  if (!regular_file(inode_in) || !regular_file(inode_out)) return -Errno.EINVAL;
  if (!(file_in.f_mode & FMODE_READ) || !(file_out.f_mode & FMODE_WRITE) || file_out.f_flags & O_APPEND) return -Errno.EBADF;
  return 0;
}

/** vfs_clone_file_range(): one file system, the rw checks, then ->remap_file_range, which none has. */
export function vfs_clone_file_range(file_in: File, file_out: File): number {
  if (inode_sb(file_in.f_inode) !== inode_sb(file_out.f_inode)) return -Errno.EXDEV;
  const ret = generic_file_rw_checks(file_in, file_out);
  if (ret < 0) return ret;
  return -Errno.EOPNOTSUPP;
}

/**
 * vfs_dedupe_file_range(): the source readable (-EINVAL), the reserved fields zero (-EINVAL), a
 * regular file (-EISDIR, -EINVAL), then ->remap_file_range, which none has.
 */
export function vfs_dedupe_file_range(file: File, reserved1: number, reserved2: number): number {
  const src = file.f_inode;
  if (!(file.f_mode & FMODE_READ)) return -Errno.EINVAL;
  if (reserved1 || reserved2) return -Errno.EINVAL;
  if ((src.i_mode & S_IFMT) === S_IFDIR) return -Errno.EISDIR;
  if (!regular_file(src)) return -Errno.EINVAL;
  return -Errno.EOPNOTSUPP;
}
