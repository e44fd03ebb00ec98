/**
 * Opening files on pseudo file systems and the inode reference count (fs/file_table.c
 * alloc_file_pseudo(), fs/open.c do_dentry_open()'s f_mode rules, fs/inode.c ihold()/iput()).
 *
 * An inode stays alive while a File refers to it (each File holds one inode reference, as its
 * dentry does in the kernel); the file system's f_op->release drops it with iput(), and the last
 * iput() of an unlinked inode evicts it (super_operations->evict_inode).
 */
import { BUG } from '@cocosim/core';
import {
  FMODE_CAN_READ,
  FMODE_CAN_WRITE,
  FMODE_READ,
  FMODE_WRITE,
  File,
  O_ACCMODE,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  type FileOperations,
  type Inode,
} from './fs.js';

const i_count = new WeakMap<Inode, number>();

/** ihold(): one more reference to an inode that is already referenced (or new). */
export function ihold(inode: Inode): void {
  i_count.set(inode, (i_count.get(inode) ?? 0) + 1);
}

/** The inode's reference count (inode->i_count). */
export function icount(inode: Inode): number {
  return i_count.get(inode) ?? 0;
}

/**
 * iput(): drop an inode reference; the last one of an inode with no links left calls `evict`
 * (the file system's evict_inode).
 */
export function iput(inode: Inode, evict: (inode: Inode) => void): void {
  const n = i_count.get(inode) ?? 0;
  if (n <= 0) BUG(`iput of inode ${inode.i_ino} with no references`);
  if (n > 1) {
    i_count.set(inode, n - 1);
    return;
  }
  i_count.delete(inode);
  if (inode.i_nlink === 0) evict(inode);
}

/**
 * OPEN_FMODE() plus do_dentry_open()'s capability bits: FMODE_READ/FMODE_WRITE from the access
 * mode, and FMODE_CAN_READ/FMODE_CAN_WRITE only when the file type can read or write at all (a
 * hugetlbfs file has no write method, so write(2) on it is -EINVAL, not -EBADF).
 */
export function file_fmode(flags: number, fops: FileOperations): number {
  const acc = flags & O_ACCMODE;
  let mode = 0;
  if (acc === O_RDONLY || acc === O_RDWR) mode |= FMODE_READ;
  if (acc === O_WRONLY || acc === O_RDWR) mode |= FMODE_WRITE;
  if (mode & FMODE_READ && fops.read !== undefined) mode |= FMODE_CAN_READ;
  if (mode & FMODE_WRITE && fops.write !== undefined) mode |= FMODE_CAN_WRITE;
  return mode;
}

/**
 * alloc_file_pseudo(): a File on `inode` of a pseudo file system (shmem, hugetlbfs, anon
 * inodes), taking an inode reference.
 */
export function alloc_file_pseudo(inode: Inode, flags: number, fops: FileOperations): File {
  ihold(inode);
  return new File(inode, fops, flags, file_fmode(flags, fops));
}
