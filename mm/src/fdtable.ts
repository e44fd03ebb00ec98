/**
 * A process's file descriptor table (include/linux/fdtable.h, fs/file.c): the lowest free fd
 * first, close-on-exec bits, RLIMIT_NOFILE.
 */
import { Errno } from '@cocosim/core';
import { FMODE_PATH, type File } from './fs.js';
import { locks_remove_posix } from './locks.js';

/** The default RLIMIT_NOFILE soft limit of a Linux process. */
export const NR_OPEN_DEFAULT_RLIMIT = 1024;

export class FilesStruct {
  private readonly fds: (File | undefined)[] = [];
  private readonly cloexec = new Set<number>();

  constructor(public rlimit_nofile = NR_OPEN_DEFAULT_RLIMIT) {}

  /** get_unused_fd_flags(): the lowest free fd, or -EMFILE past RLIMIT_NOFILE. */
  get_unused_fd(): number {
    for (let fd = 0; fd < this.rlimit_nofile; fd++) {
      if (this.fds[fd] === undefined) return fd;
    }
    return -Errno.EMFILE;
  }

  /** fd_install(): `fd` from get_unused_fd now refers to `file` (the table takes the caller's reference). */
  fd_install(fd: number, file: File, cloexec: boolean): void {
    this.fds[fd] = file;
    if (cloexec) this.cloexec.add(fd);
    else this.cloexec.delete(fd);
  }

  /** get_unused_fd + fd_install: the new fd or -EMFILE (the file's reference is consumed only on success). */
  install(file: File, cloexec: boolean): number {
    const fd = this.get_unused_fd();
    if (fd < 0) return fd;
    this.fd_install(fd, file, cloexec);
    return fd;
  }

  /**
   * fget()/fdget() without taking a reference: the open file behind `fd`, or undefined for
   * anything that is not an open fd (negative, fractional, NaN, too large, closed) and for an
   * O_PATH file (__fget_light(fd, FMODE_PATH)). Callers turn that into -EBADF.
   */
  lookup(fd: unknown): File | undefined {
    const file = this.lookup_raw(fd);
    return file === undefined || file.f_mode & FMODE_PATH ? undefined : file;
  }

  /** fdget_raw(): as lookup(), O_PATH files included (fstat, fcntl, close). */
  lookup_raw(fd: unknown): File | undefined {
    if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0) return undefined;
    return this.fds[fd];
  }

  /** close_fd(): 0, or -EBADF. Drops the table's reference. */
  close_fd(fd: unknown): number {
    const file = this.lookup_raw(fd);
    if (file === undefined) return -Errno.EBADF;
    /* filp_flush(): this process's POSIX locks on the file's inode go with any of its fds */
    locks_remove_posix(file, this);
    this.fds[fd as number] = undefined;
    this.cloexec.delete(fd as number);
    file.fput();
    return 0;
  }

  get_close_on_exec(fd: number): boolean {
    return this.cloexec.has(fd);
  }

  set_close_on_exec(fd: number, on: boolean): void {
    if (on) this.cloexec.add(fd);
    else this.cloexec.delete(fd);
  }

  /** Every open fd, in order (for exit and for state digests). */
  open_fds(): number[] {
    const out: number[] = [];
    this.fds.forEach((f, fd) => {
      if (f !== undefined) out.push(fd);
    });
    return out;
  }

  /** exit_files(): close everything. */
  close_all(): void {
    for (const fd of this.open_fds()) this.close_fd(fd);
  }
}
