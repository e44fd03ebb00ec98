/**
 * fstat(2) (fs/stat.c): vfs_getattr() through inode->i_op->getattr, or generic_fillattr(), and the
 * struct stat a C program receives.
 */
import { Errno, PAGE_SIZE } from '@cocosim/core';
import type { Inode, Kstat } from './fs.js';
import type { Task } from './process.js';

/**
 * struct stat, the fields cocosim models (x86-64 layout names). Sizes and block counts are
 * bigints: a sparse memfd can be 2^63 - 4096 bytes long.
 */
export interface Stat {
  st_ino: number;
  st_mode: number;
  st_nlink: number;
  st_size: bigint;
  st_blksize: number;
  /** 512-byte blocks allocated. */
  st_blocks: bigint;
}

/** generic_fillattr(): the attributes straight from the inode; st_blksize is PAGE_SIZE. */
export function generic_fillattr(inode: Inode, stat: Kstat): void {
  stat.ino = inode.i_ino;
  stat.mode = inode.i_mode;
  stat.nlink = inode.i_nlink;
  stat.size = inode.i_size;
  stat.blocks = inode.i_blocks;
  stat.blksize = PAGE_SIZE;
}

/** vfs_getattr(): the file system's getattr, or the generic one. */
export function vfs_getattr(inode: Inode): Kstat {
  const stat: Kstat = { mode: 0, ino: 0, nlink: 0, size: 0n, blocks: 0n, blksize: 0 };
  const getattr = inode.i_op.getattr;
  if (getattr !== undefined) getattr(inode, stat);
  else generic_fillattr(inode, stat);
  return stat;
}

/**
 * SYSCALL_DEFINE2(newfstat): vfs_fstat() then cp_new_stat() into the caller's struct stat.
 * @returns 0, -EBADF, or -EFAULT when `statbuf` is not an object to fill.
 */
export function sys_newfstat(task: Task, fd: unknown, statbuf: unknown): number {
  const file = task.files.lookup_raw(fd);
  if (file === undefined) return -Errno.EBADF;
  const stat = vfs_getattr(file.f_inode);
  if (typeof statbuf !== 'object' || statbuf === null) return -Errno.EFAULT;
  const st = statbuf as Stat;
  st.st_ino = stat.ino;
  st.st_mode = stat.mode;
  st.st_nlink = stat.nlink;
  st.st_size = stat.size;
  st.st_blksize = stat.blksize;
  st.st_blocks = stat.blocks;
  return 0;
}
