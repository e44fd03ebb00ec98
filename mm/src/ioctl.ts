/**
 * ioctl(2) (fs/ioctl.c): the generic commands every file has, then the file's own
 * f_op->unlocked_ioctl, or -ENOTTY when it has none (vfs_ioctl()).
 */
import { Errno } from '@cocosim/core';
import type { Task } from './process.js';

/* include/uapi/asm-generic/ioctls.h */
export const FIONCLEX = 0x5450;
export const FIOCLEX = 0x5451;

/** ksys_ioctl(): SYSCALL_DEFINE3(ioctl, fd, cmd, arg). */
export function ksys_ioctl(task: Task, fd: unknown, cmd: unknown, arg: unknown): number {
  const file = task.files.lookup(fd);
  if (file === undefined) return -Errno.EBADF;
  // `cmd` is an unsigned int: C truncates a wider integer to its low 32 bits; a value C could
  // not pass at all (fractional, NaN, not a number) matches no command.
  if (typeof cmd !== 'number' || !Number.isSafeInteger(cmd)) return -Errno.ENOTTY;
  cmd = ((cmd % 2 ** 32) + 2 ** 32) % 2 ** 32;
  switch (cmd) {
    case FIOCLEX:
      task.files.set_close_on_exec(fd as number, true);
      return 0;
    case FIONCLEX:
      task.files.set_close_on_exec(fd as number, false);
      return 0;
  }
  const ioctl = file.f_op.unlocked_ioctl;
  return ioctl === undefined ? -Errno.ENOTTY : ioctl(file, cmd as number, arg, task);
}
