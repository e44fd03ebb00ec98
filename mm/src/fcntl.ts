/**
 * fcntl(2) (fs/fcntl.c, Linux 6.18): the descriptor commands (F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD,
 * F_SETFD, F_GETFL, F_SETFL, F_DUPFD_QUERY, F_CREATED_QUERY), the owner and signal of SIGIO
 * (F_GETOWN, F_SETOWN, F_GETOWN_EX, F_SETOWN_EX, F_GETOWNER_UIDS, F_GETSIG, F_SETSIG), leases,
 * dnotify, the pipe size commands (no pipes here: -EBADF), write-life hints, and the memfd seal
 * commands, which do_fcntl() hands to memfd_fcntl() with the argument truncated to 32 bits. Any
 * other command is -EINVAL (do_fcntl()'s default). The answers were checked on Linux 6.18.44 for a
 * memfd and /dev/null (test/traces/fcntl-cmds.trace.jsonl).
 *
 * Record locks (F_GETLK, F_SETLK, F_SETLKW, F_OFD_*) read a struct flock from user memory (-EFAULT
 * if the process cannot) and go to locks.ts (fs/locks.c).
 */
import { Errno } from '@cocosim/core';
import { copy_from_user, copy_to_user, put_user_int } from './uaccess.js';
import { int_arg, ulong_arg } from './mman.js';
import { task_mm } from './mm_types.js';
import { fcntl_getlk, fcntl_setlk, type Flock } from './locks.js';
import { memfd_fcntl } from './memfd.js';
import { FMODE_PATH, IS_APPEND, O_APPEND, O_DIRECT, O_NOATIME, O_NONBLOCK, S_IFMT, S_IFREG, type File } from './fs.js';
import { for_each_process, type Task } from './process.js';
import {
  DN_MULTISHOT, FD_CLOEXEC, F_ADD_SEALS, F_CREATED_QUERY, F_DUPFD, F_DUPFD_CLOEXEC, F_DUPFD_QUERY, F_GETFD, F_GETFL, F_GETLEASE, F_GETLK,
  F_GETOWN, F_GETOWNER_UIDS, F_GETOWN_EX, F_GETPIPE_SZ, F_GETSIG, F_GET_RW_HINT, F_GET_SEALS, F_NOTIFY, F_OFD_GETLK, F_OFD_SETLK,
  F_OFD_SETLKW, F_OWNER_PGRP, F_OWNER_PID, F_OWNER_TID, F_RDLCK, F_SETFD, F_SETFL, F_SETLEASE, F_SETLK, F_SETLKW, F_SETOWN,
  F_SETOWN_EX, F_SETPIPE_SZ, F_SETSIG, F_SET_RW_HINT, F_UNLCK, F_WRLCK,
} from './uapi/fcntl.js';

/**
 * f_dupfd(): the lowest free fd at or above `from`, now also referring to `file`.
 * @returns the fd, -EINVAL when `from` is at or past RLIMIT_NOFILE, -EMFILE when none is free.
 */
function f_dupfd(task: Task, from: number, file: File, cloexec: boolean): number {
  const files = task.files;
  if (from >= files.rlimit_nofile) return -Errno.EINVAL;
  for (let fd = from; fd < files.rlimit_nofile; fd++) {
    if (files.lookup_raw(fd) === undefined) {
      files.fd_install(fd, file.get_file(), cloexec);
      return fd;
    }
  }
  return -Errno.EMFILE;
}

/** SETFL_MASK: the status flags F_SETFL may change (O_NDELAY is O_NONBLOCK on x86 and arm64). */
const SETFL_MASK = O_APPEND | O_NONBLOCK | O_DIRECT | O_NOATIME;
/** _NSIG: valid_signal() takes 0..64. */
const _NSIG = 64;
/** sizeof(struct flock) on 64-bit. */
const FLOCK_SIZE = 32;
/** RWH_WRITE_LIFE_EXTREME: the last valid write-life hint. */
const RWH_WRITE_LIFE_EXTREME = 5;

/**
 * setfl(): the status flags in SETFL_MASK from `arg`, the rest kept. O_DIRECT needs a file that
 * can do direct I/O; neither shmem files made by memfd_create() nor the character devices here
 * can (FMODE_CAN_ODIRECT unset): -EINVAL, as Linux 6.18 says for both.
 */
function setfl(file: File, arg: number): number {
  /* O_APPEND cannot be changed on an append-only file */
  if ((arg ^ file.f_flags) & O_APPEND && IS_APPEND(file.f_inode)) return -Errno.EPERM;
  if (arg & O_DIRECT) return -Errno.EINVAL;
  file.f_flags = (arg & SETFL_MASK) | (file.f_flags & ~SETFL_MASK);
  return 0;
}

/** find_vpid() != NULL: the simulated tasks' pids, and init (pid 1), which every pid namespace has. */
function pid_exists(task: Task, nr: number): boolean {
  return nr === 1 || for_each_process(task.kernel).some((t) => t.pid === nr);
}

/** __f_setown() after find_vpid(): -ESRCH for a pid no task has, else the owner is set. */
function __f_setown(task: Task, file: File, type: number, pid: number): number {
  if (pid !== 0 && !pid_exists(task, pid)) return -Errno.ESRCH;
  file.f_owner_pid = pid;
  file.f_owner_type = type;
  return 0;
}

/** f_setown(): `arg` as an int, negative for a process group. */
function f_setown(task: Task, file: File, arg: bigint): number {
  const who = Number(BigInt.asIntN(32, arg));
  if (who === -(2 ** 31)) return -Errno.EINVAL;
  return who < 0 ? __f_setown(task, file, F_OWNER_PGRP, -who) : __f_setown(task, file, F_OWNER_PID, who);
}

/**
 * f_getown(): the owner's pid if pid_task() finds a task of its type, negated for a process
 * group. cocosim has no process groups: a group owner is 0, what Linux 6.18 says for
 * F_OWNER_PGRP 1 on a machine whose init leads no group (and the negative value a group would
 * give is one the syscall's errno convention cannot carry anyway).
 */
function f_getown(task: Task, file: File): number {
  const nr = file.f_owner_pid;
  if (nr === 0 || file.f_owner_type === F_OWNER_PGRP) return 0;
  return pid_exists(task, nr) ? nr : 0;
}

/** f_getown_ex(): struct f_owner_ex { int type; pid_t pid; } to `uaddr`. */
function f_getown_ex(task: Task, file: File, uaddr: bigint): number {
  const b = new Uint8Array(8);
  const v = new DataView(b.buffer);
  v.setInt32(0, file.f_owner_type, true);
  v.setInt32(4, file.f_owner_pid, true);
  return copy_to_user(task_mm(task), uaddr, b);
}

/** f_setown_ex(): struct f_owner_ex from `uaddr`. */
function f_setown_ex(task: Task, file: File, uaddr: bigint): number {
  const b = copy_from_user(task_mm(task), uaddr, 8);
  if (b === undefined) return -Errno.EFAULT;
  const v = new DataView(b.buffer);
  const type = v.getInt32(0, true);
  const pid = v.getInt32(4, true);
  if (type !== F_OWNER_TID && type !== F_OWNER_PID && type !== F_OWNER_PGRP) return -Errno.EINVAL;
  return __f_setown(task, file, type, pid);
}

/** f_getowner_uids(): put_user() of the owner's uid and euid (root here: 0), each on its own. */
function f_getowner_uids(task: Task, uaddr: bigint): number {
  const first = put_user_int(task_mm(task), uaddr, 0);
  const second = put_user_int(task_mm(task), uaddr + 4n, 0);
  return first !== 0 || second !== 0 ? -Errno.EFAULT : 0;
}

/**
 * fcntl_setlease() -> vfs_setlease() -> generic_setlease() for a regular file of this process
 * alone. F_UNLCK without a lease is generic_delete_lease()'s -EAGAIN; a write lease is refused by
 * check_conflicting_open() (Linux 6.18 says -EAGAIN for a memfd, whose dentry the file holds).
 */
function fcntl_setlease(file: File, arg: number): number {
  if (arg !== F_UNLCK && arg !== F_RDLCK && arg !== F_WRLCK) return -Errno.EINVAL;
  if ((file.f_inode.i_mode & S_IFMT) !== S_IFREG) return -Errno.EINVAL;
  if (arg === F_UNLCK) {
    if (file.f_lease === F_UNLCK) return -Errno.EAGAIN;
    file.f_lease = F_UNLCK;
    return 0;
  }
  if (arg === F_WRLCK) return -Errno.EAGAIN;
  file.f_lease = F_RDLCK;
  return 0;
}

/** struct flock (x86-64): short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid. */
function flock_read(b: Uint8Array): Flock {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return { l_type: v.getInt16(0, true), l_whence: v.getInt16(2, true), l_start: v.getBigInt64(8, true), l_len: v.getBigInt64(16, true), l_pid: v.getInt32(24, true) };
}

/** `l` into the struct flock bytes `b`, their padding left as it is. */
function flock_write(b: Uint8Array, l: Flock): void {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  v.setInt16(0, l.l_type, true);
  v.setInt16(2, l.l_whence, true);
  v.setBigInt64(8, l.l_start, true);
  v.setBigInt64(16, l.l_len, true);
  v.setInt32(24, l.l_pid, true);
}

/**
 * F_GETLK / F_OFD_GETLK: the struct flock from user memory, fcntl_getlk(), and the answer back into
 * the same bytes (its padding as the caller left it).
 */
function fcntl_getlk_user(task: Task, file: File, cmd: number, uaddr: bigint): number {
  const b = copy_from_user(task_mm(task), uaddr, FLOCK_SIZE);
  if (b === undefined) return -Errno.EFAULT;
  const l = flock_read(b);
  const err = fcntl_getlk(file, cmd, l, task.files, task.pid);
  if (err) return err;
  flock_write(b, l);
  return copy_to_user(task_mm(task), uaddr, b);
}

/** fcntl_rw_hint() for the inode's hint: a u64 through `uaddr`. */
function fcntl_rw_hint(task: Task, file: File, set: boolean, uaddr: bigint): number {
  if (!set) {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(file.f_inode.i_write_hint), true);
    return copy_to_user(task_mm(task), uaddr, b);
  }
  const b = copy_from_user(task_mm(task), uaddr, 8);
  if (b === undefined) return -Errno.EFAULT;
  const h = new DataView(b.buffer).getBigUint64(0, true);
  if (h > BigInt(RWH_WRITE_LIFE_EXTREME)) return -Errno.EINVAL;
  file.f_inode.i_write_hint = Number(h);
  return 0;
}

/** check_fcntl_cmd(): the commands an O_PATH file takes. */
function check_fcntl_cmd(cmd: number): boolean {
  return cmd === F_CREATED_QUERY || cmd === F_DUPFD || cmd === F_DUPFD_CLOEXEC || cmd === F_DUPFD_QUERY || cmd === F_GETFD || cmd === F_SETFD || cmd === F_GETFL;
}

/**
 * do_fcntl() behind SYSCALL_DEFINE3(fcntl, unsigned int fd, unsigned int cmd, unsigned long arg):
 * -EBADF for a bad fd, then the command. `arg` is the register value; the commands that take an
 * int use its low 32 bits (argi), as the kernel does, so F_ADD_SEALS of 0x100000001 adds
 * F_SEAL_SEAL. An argument no C program can pass is -EINVAL.
 */
export function ksys_fcntl(task: Task, fd: unknown, cmd: unknown, arg: unknown = 0): number {
  const file = task.files.lookup_raw(fd);
  if (file === undefined) return -Errno.EBADF;
  const c = int_arg(cmd);
  if (c === undefined) return -Errno.EINVAL;
  if (file.f_mode & FMODE_PATH && !check_fcntl_cmd(c >>> 0)) return -Errno.EBADF;
  const reg = ulong_arg(arg);
  if (reg === undefined) return -Errno.EINVAL;
  const argi = Number(BigInt.asIntN(32, reg));
  switch (c >>> 0) {
    case F_DUPFD:
      return f_dupfd(task, argi >>> 0, file, false);
    case F_DUPFD_CLOEXEC:
      return f_dupfd(task, argi >>> 0, file, true);
    case F_GETFD:
      return task.files.get_close_on_exec(fd as number) ? FD_CLOEXEC : 0;
    case F_SETFD:
      task.files.set_close_on_exec(fd as number, (argi & FD_CLOEXEC) !== 0);
      return 0;
    case F_GETFL:
      return file.f_flags;
    case F_SETFL:
      return setfl(file, argi);
    case F_GETLK:
    case F_OFD_GETLK:
      return fcntl_getlk_user(task, file, c >>> 0, reg);
    case F_SETLK:
    case F_SETLKW:
    case F_OFD_SETLK:
    case F_OFD_SETLKW: {
      const b = copy_from_user(task_mm(task), reg, FLOCK_SIZE);
      return b === undefined ? -Errno.EFAULT : fcntl_setlk(file, c >>> 0, flock_read(b), task.files, task.pid);
    }
    case F_GETOWN:
      return f_getown(task, file);
    case F_SETOWN:
      return f_setown(task, file, reg);
    case F_GETOWN_EX:
      return f_getown_ex(task, file, reg);
    case F_SETOWN_EX:
      return f_setown_ex(task, file, reg);
    case F_GETOWNER_UIDS:
      return f_getowner_uids(task, reg);
    case F_GETSIG:
      return file.f_owner_signum;
    case F_SETSIG:
      /* valid_signal() of argi, sign-extended: Linux 6.18 says 0 for 0x100000000 */
      if (argi < 0 || argi > _NSIG) return -Errno.EINVAL;
      file.f_owner_signum = argi;
      return 0;
    case F_GETLEASE:
      return file.f_lease;
    case F_SETLEASE:
      return fcntl_setlease(file, argi);
    case F_NOTIFY:
      /* fcntl_dirnotify(): no events asked is a flush; anything else wants a directory */
      return (argi & ~DN_MULTISHOT) === 0 ? 0 : -Errno.ENOTDIR;
    case F_SETPIPE_SZ:
    case F_GETPIPE_SZ:
      /* pipe_fcntl(): get_pipe_info() finds no pipe */
      return -Errno.EBADF;
    case F_DUPFD_QUERY: {
      const other = task.files.lookup_raw(argi);
      return other === undefined ? -Errno.EBADF : other === file ? 1 : 0;
    }
    case F_CREATED_QUERY:
      /* FMODE_CREATED: no open() here creates a file */
      return 0;
    case F_GET_RW_HINT:
    case F_SET_RW_HINT:
      return fcntl_rw_hint(task, file, c >>> 0 === F_SET_RW_HINT, reg);
    case F_ADD_SEALS:
    case F_GET_SEALS:
      return memfd_fcntl(task.kernel, file, c >>> 0, argi >>> 0);
    default:
      return -Errno.EINVAL;
  }
}
