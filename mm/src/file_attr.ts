/**
 * fs/file_attr.c (Linux 6.17+): the inode flags of FS_IOC_GETFLAGS / FS_IOC_SETFLAGS and the
 * struct fsxattr of FS_IOC_FSGETXATTR / FS_IOC_FSSETXATTR, through the inode's ->fileattr_get and
 * ->fileattr_set (shmem has them; devices, guest_memfd, hugetlbfs and anonymous inodes do not:
 * -ENOIOCTLCMD, so the request goes on to the file's own ioctl, ENOTTY without one).
 */
import { Errno } from '@cocosim/core';
import type { File, Inode } from './fs.js';
import { task_mm } from './mm_types.js';
import type { Task } from './process.js';
import { copy_from_user, copy_to_user, get_user_int, put_user_int } from './uaccess.js';
import {
  FS_APPEND_FL, FS_DAX_FL, FS_IMMUTABLE_FL, FS_NOATIME_FL, FS_NODUMP_FL, FS_PROJINHERIT_FL, FS_SYNC_FL, FS_XFLAG_APPEND,
  FS_XFLAG_DAX, FS_XFLAG_IMMUTABLE, FS_XFLAG_NOATIME, FS_XFLAG_NODUMP, FS_XFLAG_PROJINHERIT, FS_XFLAG_SYNC,
} from './uapi/fs.js';

/** struct file_kattr: the flags, the fsxattr fields, and which of the two the caller filled. */
export interface FileKattr {
  flags: number;
  fsx_xflags: number;
  fsx_extsize: number;
  fsx_nextents: number;
  fsx_projid: number;
  fsx_cowextsize: number;
  flags_valid: boolean;
  fsx_valid: boolean;
}

/** The flag <-> xflag pairs of fileattr_fill_flags() and fileattr_fill_xflags(). */
const FLAG_PAIRS: readonly (readonly [number, number])[] = [
  [FS_SYNC_FL, FS_XFLAG_SYNC], [FS_IMMUTABLE_FL, FS_XFLAG_IMMUTABLE], [FS_APPEND_FL, FS_XFLAG_APPEND],
  [FS_NODUMP_FL, FS_XFLAG_NODUMP], [FS_NOATIME_FL, FS_XFLAG_NOATIME], [FS_DAX_FL, FS_XFLAG_DAX],
  [FS_PROJINHERIT_FL, FS_XFLAG_PROJINHERIT],
];

/** FS_XFLAG_COMMON: the xflags that have an inode flag. */
const FS_XFLAG_COMMON = FLAG_PAIRS.reduce((m, [, x]) => m | x, 0);
/** FS_COMMON_FL: the inode flags that have an xflag. */
const FS_COMMON_FL = FLAG_PAIRS.reduce((m, [f]) => m | f, 0);
/* FS_XFLAG_EXTSIZE | FS_XFLAG_EXTSZINHERIT, FS_XFLAG_COWEXTSIZE */
const FS_XFLAG_EXTSIZE_BITS = 0x800 | 0x1000;
const FS_XFLAG_COWEXTSIZE = 0x10000;
/** sizeof(struct fsxattr): five __u32 and 8 bytes of padding. */
const FSXATTR_SIZE = 28;

function empty(): FileKattr {
  return { flags: 0, fsx_xflags: 0, fsx_extsize: 0, fsx_nextents: 0, fsx_projid: 0, fsx_cowextsize: 0, flags_valid: false, fsx_valid: false };
}

/** fileattr_fill_flags(): from inode flags, with the xflags they imply. */
export function fileattr_fill_flags(fa: FileKattr, flags: number): void {
  Object.assign(fa, empty(), { flags: flags >>> 0, flags_valid: true });
  for (const [f, x] of FLAG_PAIRS) if (flags & f) fa.fsx_xflags |= x;
  fa.fsx_xflags >>>= 0;
}

/** fileattr_fill_xflags(): from xflags, with the inode flags they imply. */
export function fileattr_fill_xflags(fa: FileKattr, xflags: number): void {
  Object.assign(fa, empty(), { fsx_xflags: xflags >>> 0, fsx_valid: true });
  for (const [f, x] of FLAG_PAIRS) if (xflags & x) fa.flags |= f;
  fa.flags >>>= 0;
}

/** fileattr_has_fsx(): the fsxattr asks for something beyond the common flags. */
export function fileattr_has_fsx(fa: FileKattr): boolean {
  return fa.fsx_valid && ((fa.fsx_xflags & ~FS_XFLAG_COMMON) !== 0 || fa.fsx_extsize !== 0 || fa.fsx_projid !== 0 || fa.fsx_cowextsize !== 0);
}

/** vfs_fileattr_get(): -ENOIOCTLCMD where the inode has no ->fileattr_get. */
export function vfs_fileattr_get(inode: Inode, fa: FileKattr): number {
  const get = inode.i_op.fileattr_get;
  if (get === undefined) return -Errno.ENOIOCTLCMD;
  return get(inode, fa);
}

/**
 * vfs_fileattr_set(): the missing half filled from the current attributes, then
 * fileattr_set_prepare() (IMMUTABLE and APPEND need CAP_LINUX_IMMUTABLE, which the simulated
 * processes, running as root, have; zero extent size hints clear their flags) and ->fileattr_set.
 * The caller owns the inode (inode_owner_or_capable()).
 */
export function vfs_fileattr_set(inode: Inode, fa: FileKattr): number {
  const set = inode.i_op.fileattr_set;
  if (set === undefined) return -Errno.ENOIOCTLCMD;
  const old = empty();
  const err = vfs_fileattr_get(inode, old);
  if (err) return err;
  if (fa.flags_valid) {
    fa.fsx_xflags = (fa.fsx_xflags | (old.fsx_xflags & ~FS_XFLAG_COMMON)) >>> 0;
    fa.fsx_extsize = old.fsx_extsize;
    fa.fsx_nextents = old.fsx_nextents;
    fa.fsx_projid = old.fsx_projid;
    fa.fsx_cowextsize = old.fsx_cowextsize;
  } else {
    fa.flags = (fa.flags | (old.flags & ~FS_COMMON_FL)) >>> 0;
  }
  if (fa.fsx_valid) {
    if (fa.fsx_extsize === 0) fa.fsx_xflags &= ~FS_XFLAG_EXTSIZE_BITS;
    if (fa.fsx_cowextsize === 0) fa.fsx_xflags &= ~FS_XFLAG_COWEXTSIZE;
    fa.fsx_xflags >>>= 0;
  }
  return set(inode, fa);
}

/** ioctl_getflags(): FS_IOC_GETFLAGS puts the flags as an unsigned int. */
export function ioctl_getflags(task: Task, file: File, argp: bigint): number {
  const fa = empty();
  fa.flags_valid = true;
  const err = vfs_fileattr_get(file.f_inode, fa);
  return err ? err : put_user_int(task_mm(task), argp, fa.flags);
}

/** ioctl_setflags(): FS_IOC_SETFLAGS gets an unsigned int of flags (the mount is writable). */
export function ioctl_setflags(task: Task, file: File, argp: bigint): number {
  const flags = get_user_int(task_mm(task), argp, false);
  if (flags === undefined) return -Errno.EFAULT;
  const fa = empty();
  fileattr_fill_flags(fa, flags);
  return vfs_fileattr_set(file.f_inode, fa);
}

/** ioctl_fsgetxattr(): FS_IOC_FSGETXATTR copies a struct fsxattr out. */
export function ioctl_fsgetxattr(task: Task, file: File, argp: bigint): number {
  const fa = empty();
  fa.fsx_valid = true;
  const err = vfs_fileattr_get(file.f_inode, fa);
  if (err) return err;
  const b = new Uint8Array(FSXATTR_SIZE);
  const v = new DataView(b.buffer);
  v.setUint32(0, fa.fsx_xflags, true);
  v.setUint32(4, fa.fsx_extsize, true);
  v.setUint32(8, fa.fsx_nextents, true);
  v.setUint32(12, fa.fsx_projid, true);
  v.setUint32(16, fa.fsx_cowextsize, true);
  return copy_to_user(task_mm(task), argp, b);
}

/** ioctl_fssetxattr(): FS_IOC_FSSETXATTR copies a struct fsxattr in (copy_fsxattr_from_user()). */
export function ioctl_fssetxattr(task: Task, file: File, argp: bigint): number {
  const b = copy_from_user(task_mm(task), argp, FSXATTR_SIZE);
  if (b === undefined) return -Errno.EFAULT;
  const v = new DataView(b.buffer, b.byteOffset, FSXATTR_SIZE);
  const fa = empty();
  fileattr_fill_xflags(fa, v.getUint32(0, true));
  fa.fsx_extsize = v.getUint32(4, true);
  fa.fsx_nextents = v.getUint32(8, true);
  fa.fsx_projid = v.getUint32(12, true);
  fa.fsx_cowextsize = v.getUint32(16, true);
  return vfs_fileattr_set(file.f_inode, fa);
}
