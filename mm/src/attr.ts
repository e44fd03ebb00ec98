/**
 * Inode attribute changes (fs/attr.c): notify_change(), setattr_prepare(), inode_newsize_ok(),
 * and the ATTR_* bits of struct iattr that ftruncate and fchmod use (include/linux/fs.h; fs.ts
 * has ATTR_SIZE and the size-only Iattr).
 */
import { Errno } from '@cocosim/core';
import { ATTR_SIZE, IS_APPEND, IS_IMMUTABLE, S_IFMT, type Iattr, type Inode } from './fs.js';

export const ATTR_MODE = 1 << 0;
export const ATTR_UID = 1 << 1;
export const ATTR_GID = 1 << 2;
export const ATTR_ATIME = 1 << 4;
export const ATTR_MTIME = 1 << 5;
export const ATTR_CTIME = 1 << 6;
export const ATTR_FILE = 1 << 13;
export const ATTR_OPEN = 1 << 15;
/** ATTR_TIMES_SET: (1 << 16), set explicitly by utimes(). */
export const ATTR_TIMES_SET = 1 << 16;

/** S_IALLUGO: the permission bits chmod may change (include/linux/stat.h). */
export const S_IALLUGO = 0o7777;

/** struct iattr with the new mode (ATTR_MODE). */
export interface IattrMode extends Iattr {
  ia_mode: number;
}

/** MAX_LFS_FILESIZE on 64-bit: LLONG_MAX, the s_maxbytes of every cocosim file system. */
export const MAX_LFS_FILESIZE = 0x7fff_ffff_ffff_ffffn;

/**
 * inode_newsize_ok(): may the file grow to `offset`? RLIMIT_FSIZE is unlimited in a simulated
 * process, so only s_maxbytes can refuse (-EFBIG).
 */
export function inode_newsize_ok(inode: Inode, offset: bigint): number {
  if (inode.i_size < offset && offset > MAX_LFS_FILESIZE) return -Errno.EFBIG;
  return 0;
}

/**
 * notify_change(): apply `attr` through the file system's setattr (setattr_prepare() first). The
 * caller owns the file (simulated processes run as its owner), so no permission check fails.
 */
export function notify_change(inode: Inode, attr: Iattr): number {
  /* may_setattr(): the mode, owner and times of an immutable or append-only file stay */
  if (attr.ia_valid & (ATTR_MODE | ATTR_UID | ATTR_GID | ATTR_TIMES_SET) && (IS_IMMUTABLE(inode) || IS_APPEND(inode))) return -Errno.EPERM;
  if (attr.ia_valid & ATTR_SIZE) {
    const error = inode_newsize_ok(inode, attr.ia_size);
    if (error) return error;
  }
  const setattr = inode.i_op.setattr;
  if (setattr !== undefined) return setattr(inode, attr);
  /* simple_setattr(): setattr_copy() and truncate_setsize() of an in-memory inode */
  if (attr.ia_valid & ATTR_SIZE) inode.i_size = attr.ia_size;
  if (attr.ia_valid & ATTR_MODE) inode.i_mode = (inode.i_mode & S_IFMT) | ((attr as IattrMode).ia_mode & S_IALLUGO);
  return 0;
}
