/**
 * fcntl(2) (fs/fcntl.c, Linux 6.18): the descriptor commands (F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD,
 * F_SETFD, F_GETFL) and the memfd seal commands, which do_fcntl() hands to memfd_fcntl() with the
 * argument truncated to 32 bits. Any other command is -EINVAL (do_fcntl()'s default).
 */
import { Errno } from '@cocosim/core';
import { int_arg, ulong_arg } from './mman.js';
import { memfd_fcntl } from './memfd.js';
import type { File } from './fs.js';
import type { Task } from './process.js';
import {
  FD_CLOEXEC,
  F_ADD_SEALS,
  F_DUPFD,
  F_DUPFD_CLOEXEC,
  F_GETFD,
  F_GETFL,
  F_GET_SEALS,
  F_SETFD,
} from './uapi/fcntl.js';

/**
 * f_dupfd(): the lowest free fd at or above `from`, now also referring to `file`.
 * @returns the fd, -EINVAL when `from` is at or past RLIMIT_NOFILE, -EMFILE when none is free.
 */
function f_dupfd(task: Task, from: number, file: File, cloexec: boolean): number {
  const files = task.files;
  if (from >= files.rlimit_nofile) return -Errno.EINVAL;
  for (let fd = from; fd < files.rlimit_nofile; fd++) {
    if (files.lookup(fd) === undefined) {
      files.fd_install(fd, file.get_file(), cloexec);
      return fd;
    }
  }
  return -Errno.EMFILE;
}

/**
 * do_fcntl() behind SYSCALL_DEFINE3(fcntl, unsigned int fd, unsigned int cmd, unsigned long arg):
 * -EBADF for a bad fd, then the command. `arg` is the register value; the commands that take an
 * int use its low 32 bits (argi), as the kernel does, so F_ADD_SEALS of 0x100000001 adds
 * F_SEAL_SEAL. An argument no C program can pass is -EINVAL.
 */
export function ksys_fcntl(task: Task, fd: unknown, cmd: unknown, arg: unknown = 0): number {
  const file = task.files.lookup(fd);
  if (file === undefined) return -Errno.EBADF;
  const c = int_arg(cmd);
  if (c === undefined) return -Errno.EINVAL;
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
    case F_ADD_SEALS:
    case F_GET_SEALS:
      return memfd_fcntl(task.kernel, file, c >>> 0, argi >>> 0);
    default:
      return -Errno.EINVAL;
  }
}
