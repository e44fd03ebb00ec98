/**
 * fs/locks.c: POSIX record locks and open file description (OFD) locks, the fcntl commands
 * F_GETLK, F_SETLK, F_SETLKW and their F_OFD_* forms, on an inode's list of locks (i_flctx's
 * flc_posix). A POSIX lock is owned by the process's files_struct and goes when the process
 * closes any fd of the inode (locks_remove_posix()); an OFD lock is owned by the open file and
 * goes with its last reference (locks_remove_file()). Locks of one owner never conflict; two
 * owners conflict where they overlap and one of them writes.
 *
 * One difference: F_SETLKW that would have to wait (another owner holds a conflicting lock, and no
 * deadlock) sleeps in Linux until that lock goes; the simulator runs one call at a time and
 * nothing could ever release it, so it answers -EDEADLK, what waiting would come to here.
 */
import { Errno } from '@cocosim/core';
import { FMODE_READ, FMODE_WRITE, type File, type Inode } from './fs.js';
import { SEEK_CUR, SEEK_END, SEEK_SET } from './uapi/fs.js';
import { F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW, F_RDLCK, F_SETLKW, F_UNLCK, F_WRLCK } from './uapi/fcntl.js';

/** OFFSET_MAX: the largest loff_t. */
const OFFSET_MAX = 2n ** 63n - 1n;

/** struct file_lock, the POSIX part: [start, end] inclusive, end OFFSET_MAX for "to EOF". */
export interface FileLock {
  /** flc_owner: the files_struct of a POSIX lock, the struct file of an OFD lock. */
  readonly owner: object;
  readonly ofd: boolean;
  /** flc_pid: the tgid that took a POSIX lock (F_GETLK reports -1 for an OFD lock). */
  readonly pid: number;
  type: number;
  start: bigint;
  end: bigint;
}

/** The fields of struct flock that the kernel reads and writes. */
export interface Flock {
  l_type: number;
  l_whence: number;
  l_start: bigint;
  l_len: bigint;
  l_pid: number;
}

/** The inode's POSIX and OFD locks (i_flctx->flc_posix), in the kernel's list order. */
function inode_posix_locks(inode: Inode): FileLock[] {
  inode.i_flctx ??= [];
  return inode.i_flctx;
}

/** flock64_to_posix_lock(): the byte range and type of `l` for `file`, or -errno. */
function flock_to_posix_lock(file: File, l: Flock, owner: object, pid: number, ofd: boolean): FileLock | number {
  let start: bigint;
  switch (l.l_whence) {
    case SEEK_SET:
      start = 0n;
      break;
    case SEEK_CUR:
      start = file.f_pos;
      break;
    case SEEK_END:
      start = file.f_inode.i_size;
      break;
    default:
      return -Errno.EINVAL;
  }
  if (l.l_start > OFFSET_MAX - start) return -Errno.EOVERFLOW;
  start += l.l_start;
  if (start < 0n) return -Errno.EINVAL;
  let end: bigint;
  if (l.l_len > 0n) {
    if (l.l_len - 1n > OFFSET_MAX - start) return -Errno.EOVERFLOW;
    end = start + (l.l_len - 1n);
  } else if (l.l_len < 0n) {
    if (start + l.l_len < 0n) return -Errno.EINVAL;
    end = start - 1n;
    start += l.l_len;
  } else {
    end = OFFSET_MAX;
  }
  /* assign_type() */
  if (l.l_type !== F_RDLCK && l.l_type !== F_WRLCK && l.l_type !== F_UNLCK) return -Errno.EINVAL;
  return { owner, ofd, pid, type: l.l_type, start, end };
}

/** posix_locks_conflict(): other owners, overlapping, one of them a write lock. */
function posix_locks_conflict(caller: FileLock, sys: FileLock): boolean {
  if (caller.owner === sys.owner) return false;
  if (caller.end < sys.start || sys.end < caller.start) return false;
  return caller.type === F_WRLCK || sys.type === F_WRLCK;
}

/** posix_lock_to_flock(): what F_GETLK reports of the conflicting lock. */
function posix_lock_to_flock(l: Flock, fl: FileLock): void {
  l.l_pid = fl.ofd ? -1 : fl.pid;
  l.l_start = fl.start;
  l.l_len = fl.end === OFFSET_MAX ? 0n : fl.end - fl.start + 1n;
  l.l_whence = SEEK_SET;
  l.l_type = fl.type;
}

/**
 * posix_test_locks_conflict(): what blocks `caller` on the F_GETLK path; an F_UNLCK request (only
 * F_OFD_GETLK takes one: "F_UNLCK checks any locks on the same fd", Linux 6.8+) finds the caller's
 * own locks that overlap it.
 */
function posix_test_locks_conflict(caller: FileLock, sys: FileLock): boolean {
  if (caller.type === F_UNLCK) return caller.owner === sys.owner && !(caller.end < sys.start || sys.end < caller.start);
  return posix_locks_conflict(caller, sys);
}

/**
 * fcntl_getlk(): whether `l` could be placed; `l` becomes F_UNLCK, or the first conflicting
 * lock (posix_test_lock()). F_OFD_GETLK also takes F_UNLCK, to query the open file's own locks.
 * 0 or -errno (nothing written back then).
 */
export function fcntl_getlk(file: File, cmd: number, l: Flock, files: object, tgid: number): number {
  const ofd = cmd === F_OFD_GETLK;
  if (!ofd && l.l_type !== F_RDLCK && l.l_type !== F_WRLCK) return -Errno.EINVAL;
  const fl = flock_to_posix_lock(file, l, ofd ? file : files, tgid, ofd);
  if (typeof fl === 'number') return fl;
  if (ofd && l.l_pid !== 0) return -Errno.EINVAL;
  const conflict = (file.f_inode.i_flctx ?? []).find((sys) => posix_test_locks_conflict(fl, sys));
  if (conflict === undefined) l.l_type = F_UNLCK;
  else posix_lock_to_flock(l, conflict);
  return 0;
}

/** check_fmode_for_setlk(): a read lock needs a file open for reading, a write lock one open for writing. */
function check_fmode_for_setlk(file: File, type: number): number {
  if (type === F_RDLCK && !(file.f_mode & FMODE_READ)) return -Errno.EBADF;
  if (type === F_WRLCK && !(file.f_mode & FMODE_WRITE)) return -Errno.EBADF;
  return 0;
}

/** fcntl_setlk(): place or remove `l` for its owner. 0 or -errno; a failure changes no lock. */
export function fcntl_setlk(file: File, cmd: number, l: Flock, files: object, tgid: number): number {
  const ofd = cmd === F_OFD_SETLK || cmd === F_OFD_SETLKW;
  const fl = flock_to_posix_lock(file, l, ofd ? file : files, tgid, ofd);
  if (typeof fl === 'number') return fl;
  const err = check_fmode_for_setlk(file, fl.type);
  if (err) return err;
  if (ofd && l.l_pid !== 0) return -Errno.EINVAL;
  return posix_lock_inode(file.f_inode, fl, cmd === F_SETLKW || cmd === F_OFD_SETLKW);
}

/**
 * posix_lock_inode(): a conflict is -EAGAIN (-EDEADLK for a waiting request, see above); else the
 * owner's locks are merged with, cut by or replaced by `request`, in the kernel's order: an
 * owner's locks stay together, sorted by start, and adjacent locks of one type merge.
 */
function posix_lock_inode(inode: Inode, request: FileLock, sleep: boolean): number {
  const list = inode_posix_locks(inode);
  if (request.type !== F_UNLCK && list.some((fl) => posix_locks_conflict(request, fl))) {
    return sleep ? -Errno.EDEADLK : -Errno.EAGAIN;
  }
  let req = request;
  let added = false;
  let left: FileLock | undefined;
  let right: FileLock | undefined;
  /* the first old lock of the same owner: the walk starts there, and inserts before where it stops */
  let i = list.findIndex((fl) => fl.owner === req.owner);
  if (i < 0) i = list.length;
  while (i < list.length) {
    const fl = list[i];
    if (fl.owner !== req.owner) break;
    if (req.type === fl.type) {
      /* "start - 1" rather than "end + 1": end may be OFFSET_MAX */
      if (fl.end < req.start - 1n) {
        i++;
        continue;
      }
      if (fl.start - 1n > req.end) break;
      if (fl.start > req.start) fl.start = req.start;
      else req.start = fl.start;
      if (fl.end < req.end) fl.end = req.end;
      else req.end = fl.end;
      if (added) {
        list.splice(i, 1);
        continue;
      }
      req = fl;
      added = true;
      i++;
    } else {
      if (fl.end < req.start) {
        i++;
        continue;
      }
      if (fl.start > req.end) break;
      if (req.type === F_UNLCK) added = true;
      if (fl.start < req.start) left = fl;
      if (fl.end > req.end) {
        right = fl;
        break;
      }
      if (fl.start >= req.start) {
        /* the new lock replaces an old one whole */
        if (added) {
          list.splice(i, 1);
          continue;
        }
        req = { ...req };
        list.splice(i, 1, req);
        added = true;
      }
      i++;
    }
  }
  /* where the walk stopped: the kernel's cursor, before which a split's left part goes */
  let anchor: FileLock | undefined = list[i];
  if (!added) {
    if (req.type === F_UNLCK) {
      if (list.length === 0) inode.i_flctx = null;
      return 0;
    }
    req = { ...req };
    list.splice(i, 0, req);
    anchor = req;
  }
  if (right !== undefined) {
    if (left === right) {
      /* the new lock cuts the old one in two: its left part is a lock of its own */
      left = { ...right };
      list.splice(anchor === undefined ? list.length : list.indexOf(anchor), 0, left);
    }
    right.start = req.end + 1n;
  }
  if (left !== undefined) left.end = req.start - 1n;
  if (list.length === 0) inode.i_flctx = null;
  return 0;
}

/** locks_remove_posix(): `owner` closed an fd of `file`'s inode: its POSIX locks there go. */
export function locks_remove_posix(file: File, owner: object): void {
  remove_owner(file.f_inode, owner);
}

/** locks_remove_file(): the last reference to `file` went: its OFD locks go. */
export function locks_remove_file(file: File): void {
  remove_owner(file.f_inode, file);
}

/** The locks of `owner` on `inode` go (nothing to do on an inode without locks: the common case). */
function remove_owner(inode: Inode, owner: object): void {
  const list = inode.i_flctx;
  if (list === null) return;
  const kept = list.filter((fl) => fl.owner !== owner);
  inode.i_flctx = kept.length === 0 ? null : kept;
}
