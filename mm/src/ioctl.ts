/**
 * ioctl(2) (fs/ioctl.c): do_vfs_ioctl()'s generic commands, which every file has (Linux 6.18),
 * then the file's own f_op->unlocked_ioctl, or -ENOTTY when it has none (vfs_ioctl()). A generic
 * command that finds nothing to do for the file (-ENOIOCTLCMD: no ->fileattr_get) goes on to the
 * file's own ioctl too, as ksys_ioctl() does.
 */
import { Errno, PAGE_SIZE } from '@cocosim/core';
import { ioctl_fsgetxattr, ioctl_fssetxattr, ioctl_getflags, ioctl_setflags } from './file_attr.js';
import { IS_ANON_FILE, O_NONBLOCK, S_IFDIR, S_IFMT, inode_sb, regular_file, type File, type Inode } from './fs.js';
import { huge_page_size } from './hugetlb.js';
import { hstate_inode, hugetlbfs_inode_operations } from './hugetlbfs.js';
import { ulong_arg } from './mman.js';
import { task_mm } from './mm_types.js';
import { vfs_fallocate } from './open.js';
import type { Task } from './process.js';
import { vfs_clone_file_range, vfs_dedupe_file_range } from './remap_range.js';
import { copy_from_user, copy_to_user, get_user_int, put_user_int } from './uaccess.js';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE } from './uapi/falloc.js';
import {
  FIBMAP, FICLONE, FICLONERANGE, FIDEDUPERANGE, FIFREEZE, FIGETBSZ, FITHAW, FS_IOC_FIEMAP, FS_IOC_FSGETXATTR,
  FS_IOC_FSSETXATTR, FS_IOC_GETFLAGS, FS_IOC_GETFSSYSFSPATH, FS_IOC_GETFSUUID, FS_IOC_RESVSP, FS_IOC_RESVSP64,
  FS_IOC_SETFLAGS, FS_IOC_UNRESVSP, FS_IOC_UNRESVSP64, FS_IOC_ZERO_RANGE, SEEK_CUR, SEEK_END, SEEK_SET,
} from './uapi/fs.js';

export {
  FIBMAP, FICLONE, FICLONERANGE, FIDEDUPERANGE, FIFREEZE, FIGETBSZ, FITHAW, FS_IOC_FIEMAP, FS_IOC_FSGETXATTR, FS_IOC_FSSETXATTR,
  FS_IOC_GETFLAGS, FS_IOC_GETFSSYSFSPATH, FS_IOC_GETFSUUID, FS_IOC_RESVSP, FS_IOC_RESVSP64, FS_IOC_SETFLAGS, FS_IOC_UNRESVSP,
  FS_IOC_UNRESVSP64, FS_IOC_ZERO_RANGE,
};

/* include/uapi/asm-generic/ioctls.h */
export const FIONREAD = 0x541b;
export const FIONBIO = 0x5421;
export const FIONCLEX = 0x5450;
export const FIOCLEX = 0x5451;
export const FIOASYNC = 0x5452;
export const FIOQSIZE = 0x5460;

/** FASYNC (O_ASYNC). */
const FASYNC = 0o20000;
/** S_IFLNK. */
const S_IFLNK = 0o120000;
/** sizeof(struct space_resv), sizeof(struct file_clone_range), the header of struct file_dedupe_range. */
const SPACE_RESV_SIZE = 48;
const FILE_CLONE_RANGE_SIZE = 32;
const DEDUPE_HEADER_SIZE = 24;
const DEDUPE_INFO_SIZE = 32;

/** inode->i_sb->s_blocksize: a hugetlbfs file's is its huge page size, every other file system's a page. */
function s_blocksize(inode: Inode): number {
  return inode.i_op === hugetlbfs_inode_operations ? huge_page_size(hstate_inode(inode)) : PAGE_SIZE;
}

/** ioctl_fionbio(): an int at argp turns O_NONBLOCK on or off. */
function ioctl_fionbio(task: Task, file: File, argp: bigint): number {
  const on = get_user_int(task_mm(task), argp);
  if (on === undefined) return -Errno.EFAULT;
  file.f_flags = on ? file.f_flags | O_NONBLOCK : file.f_flags & ~O_NONBLOCK;
  return 0;
}

/** ioctl_fioasync(): changing FASYNC needs f_op->fasync, which no cocosim file has. */
function ioctl_fioasync(task: Task, file: File, argp: bigint): number {
  const on = get_user_int(task_mm(task), argp);
  if (on === undefined) return -Errno.EFAULT;
  const flag = on ? FASYNC : 0;
  return (flag ^ file.f_flags) & FASYNC ? -Errno.ENOTTY : 0;
}

/** FIOQSIZE: inode_get_bytes() as a loff_t, for directories, regular files and symlinks. */
function ioctl_fioqsize(task: Task, file: File, argp: bigint): number {
  const inode = file.f_inode;
  const type = inode.i_mode & S_IFMT;
  if (type !== S_IFDIR && !regular_file(inode) && type !== S_IFLNK) return -Errno.ENOTTY;
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigInt64(0, inode.i_blocks * 512n, true);
  return copy_to_user(task_mm(task), argp, b);
}

/**
 * ioctl_fibmap(): CAP_SYS_RAWIO (a simulated process has it), an int block number at argp
 * (-EINVAL when negative); bmap() finds no ->bmap in any cocosim file system, so 0 is put back
 * and the answer is -EINVAL.
 */
function ioctl_fibmap(task: Task, argp: bigint): number {
  const mm = task_mm(task);
  const ur_block = get_user_int(mm, argp);
  if (ur_block === undefined) return -Errno.EFAULT;
  if (ur_block < 0) return -Errno.EINVAL;
  return put_user_int(mm, argp, 0) || -Errno.EINVAL;
}

/**
 * ioctl_preallocate(): a struct space_resv's l_whence, l_start and l_len as an fallocate() of
 * `mode` | FALLOC_FL_KEEP_SIZE (FS_IOC_RESVSP: allocate, UNRESVSP: punch, ZERO_RANGE: zero).
 */
function ioctl_preallocate(task: Task, file: File, mode: number, argp: bigint): number {
  const b = copy_from_user(task_mm(task), argp, SPACE_RESV_SIZE);
  if (b === undefined) return -Errno.EFAULT;
  const v = new DataView(b.buffer, b.byteOffset, SPACE_RESV_SIZE);
  let start = v.getBigInt64(8, true);
  const len = v.getBigInt64(16, true);
  switch (v.getInt16(2, true)) {
    case SEEK_SET:
      break;
    case SEEK_CUR:
      start = BigInt.asIntN(64, start + file.f_pos);
      break;
    case SEEK_END:
      start = BigInt.asIntN(64, start + file.f_inode.i_size);
      break;
    default:
      return -Errno.EINVAL;
  }
  return vfs_fallocate(file, mode | FALLOC_FL_KEEP_SIZE, start, len);
}

/** file_ioctl(): the commands of regular files, then the file's own. */
function file_ioctl(task: Task, file: File, cmd: number, arg: unknown, argp: bigint): number {
  switch (cmd) {
    case FIBMAP:
      return ioctl_fibmap(task, argp);
    case FIONREAD:
      /* put_user() of an int: the low 32 bits of i_size - f_pos */
      return put_user_int(task_mm(task), argp, BigInt.asIntN(64, file.f_inode.i_size - file.f_pos));
    case FS_IOC_RESVSP:
    case FS_IOC_RESVSP64:
      return ioctl_preallocate(task, file, 0, argp);
    case FS_IOC_UNRESVSP:
    case FS_IOC_UNRESVSP64:
      return ioctl_preallocate(task, file, FALLOC_FL_PUNCH_HOLE, argp);
    case FS_IOC_ZERO_RANGE:
      return ioctl_preallocate(task, file, FALLOC_FL_ZERO_RANGE, argp);
  }
  return vfs_ioctl(task, file, cmd, arg);
}

/** vfs_ioctl(): the file's own unlocked_ioctl, -ENOTTY without one. */
function vfs_ioctl(task: Task, file: File, cmd: number, arg: unknown): number {
  const ioctl = file.f_op.unlocked_ioctl;
  return ioctl === undefined ? -Errno.ENOTTY : ioctl(file, cmd, arg, task);
}

/**
 * ioctl_file_clone(): the source fd (an unsigned int: fdget() of the low 32 bits; -EBADF, O_PATH
 * included) on the same mount (-EXDEV), then vfs_clone_file_range().
 */
function ioctl_file_clone(task: Task, dst: File, srcfd: bigint): number {
  const src = task.files.lookup(Number(BigInt.asUintN(32, srcfd)));
  if (src === undefined) return -Errno.EBADF;
  if (inode_sb(src.f_inode) !== inode_sb(dst.f_inode)) return -Errno.EXDEV;
  return vfs_clone_file_range(src, dst);
}

/** ioctl_file_clone_range(): struct file_clone_range { __s64 src_fd; __u64 src_offset, src_length, dest_offset; }. */
function ioctl_file_clone_range(task: Task, file: File, argp: bigint): number {
  const b = copy_from_user(task_mm(task), argp, FILE_CLONE_RANGE_SIZE);
  if (b === undefined) return -Errno.EFAULT;
  return ioctl_file_clone(task, file, new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true));
}

/**
 * ioctl_file_dedupe_range(): dest_count first (get_user(), -EFAULT), the size it makes at most a
 * page (-ENOMEM), the whole struct copied in (-EFAULT), then vfs_dedupe_file_range().
 */
function ioctl_file_dedupe_range(task: Task, file: File, argp: bigint): number {
  const mm = task_mm(task);
  const head = copy_from_user(mm, argp + 16n, 2);
  if (head === undefined) return -Errno.EFAULT;
  const count = head[0] | (head[1] << 8);
  const size = DEDUPE_HEADER_SIZE + count * DEDUPE_INFO_SIZE;
  if (size > PAGE_SIZE) return -Errno.ENOMEM;
  const same = copy_from_user(mm, argp, size);
  if (same === undefined) return -Errno.EFAULT;
  const v = new DataView(same.buffer, same.byteOffset, size);
  return vfs_dedupe_file_range(file, v.getUint16(18, true), v.getUint32(20, true));
}

/**
 * ioctl_getfsuuid(): tmpfs (memfds, and devtmpfs on it) has a UUID, made at mount time: the
 * simulator's is all zeros, and 16 its length. Other file systems have none (-ENOTTY).
 */
function ioctl_getfsuuid(task: Task, file: File, argp: bigint): number {
  const inode = file.f_inode;
  if (IS_ANON_FILE(inode) || inode.i_op === hugetlbfs_inode_operations) return -Errno.ENOTTY;
  const u = new Uint8Array(17);
  u[0] = 16;
  return copy_to_user(task_mm(task), argp, u);
}

/**
 * do_vfs_ioctl(): the commands of every file; -ENOIOCTLCMD for one the file should see itself.
 * FIFREEZE and FITHAW pass CAP_SYS_ADMIN (root) and find file systems that cannot freeze
 * (-EOPNOTSUPP) and are not frozen (-EINVAL); no file system has ->fiemap (-EOPNOTSUPP).
 */
function do_vfs_ioctl(task: Task, file: File, fd: number, cmd: number, arg: unknown, argp: bigint): number {
  const inode = file.f_inode;
  switch (cmd) {
    case FIOCLEX:
      task.files.set_close_on_exec(fd, true);
      return 0;
    case FIONCLEX:
      task.files.set_close_on_exec(fd, false);
      return 0;
    case FIONBIO:
      return ioctl_fionbio(task, file, argp);
    case FIOASYNC:
      return ioctl_fioasync(task, file, argp);
    case FIOQSIZE:
      return ioctl_fioqsize(task, file, argp);
    case FIFREEZE:
      return -Errno.EOPNOTSUPP;
    case FITHAW:
      return -Errno.EINVAL;
    case FS_IOC_FIEMAP:
      return -Errno.EOPNOTSUPP;
    case FIGETBSZ:
      return put_user_int(task_mm(task), argp, s_blocksize(inode));
    case FICLONE:
      return ioctl_file_clone(task, file, argp);
    case FICLONERANGE:
      return ioctl_file_clone_range(task, file, argp);
    case FIDEDUPERANGE:
      return ioctl_file_dedupe_range(task, file, argp);
    case FS_IOC_GETFLAGS:
      return ioctl_getflags(task, file, argp);
    case FS_IOC_SETFLAGS:
      return ioctl_setflags(task, file, argp);
    case FS_IOC_FSGETXATTR:
      return ioctl_fsgetxattr(task, file, argp);
    case FS_IOC_FSSETXATTR:
      return ioctl_fssetxattr(task, file, argp);
    case FS_IOC_GETFSUUID:
      return ioctl_getfsuuid(task, file, argp);
    case FS_IOC_GETFSSYSFSPATH:
      /* no cocosim file system has a sysfs name */
      return -Errno.ENOTTY;
  }
  return regular_file(inode) ? file_ioctl(task, file, cmd, arg, argp) : -Errno.ENOIOCTLCMD;
}

/** ksys_ioctl(): SYSCALL_DEFINE3(ioctl, fd, cmd, arg). */
export function ksys_ioctl(task: Task, fd: unknown, cmd: unknown, arg: unknown): number {
  const file = task.files.lookup(fd);
  if (file === undefined) return -Errno.EBADF;
  // `cmd` is an unsigned int: C truncates a wider integer to its low 32 bits; a value C could
  // not pass at all (fractional, NaN, not a number) matches no command.
  if (typeof cmd !== 'number' || !Number.isSafeInteger(cmd)) return -Errno.ENOTTY;
  cmd = ((cmd % 2 ** 32) + 2 ** 32) % 2 ** 32;
  /* the generic commands take arg as a user pointer (or an fd); a struct the trace spelled is none */
  const argp = ulong_arg(arg) ?? 0n;
  const error = do_vfs_ioctl(task, file, fd as number, cmd as number, arg, argp);
  return error === -Errno.ENOIOCTLCMD ? vfs_ioctl(task, file, cmd as number, arg) : error;
}
