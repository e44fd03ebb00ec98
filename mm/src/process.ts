/**
 * A simulated user process as a C program sees it through libc: each method is the system call
 * of the same name, returning what C gets (a result, or -1 with `errno` set to the kernel's
 * errno) so that tests read like the kernel selftests:
 *
 *   const fd = p.memfd_create('kvm_selftest', MFD_ALLOW_SEALING);
 *   TEST_ASSERT(fd === -1 && p.errno === EINVAL, ...);
 *
 * The kernel side of each call is a function named after the kernel's (ksys_ftruncate,
 * do_sys_openat2, memfd_create...) in the file that mirrors the kernel file defining it; this
 * class only converts its `-errno` into C's -1 + errno. Arguments of any JS shape are passed
 * through: the kernel functions validate them in the kernel's order.
 */
import { Errno } from '@cocosim/core';
import { FilesStruct } from './fdtable.js';
import { O_CLOEXEC, O_RDWR, type File } from './fs.js';
import type { Kernel } from './kernel.js';
import { ksys_ioctl } from './ioctl.js';

/** struct task_struct, the parts a simulated process has. */
export class Task {
  readonly pid: number;
  readonly files = new FilesStruct();

  constructor(readonly kernel: Kernel) {
    this.pid = kernel.next_pid();
  }
}

export class Process {
  /** The errno of the last failed call (C's `errno`); calls that succeed leave it alone. */
  errno = 0;
  readonly task: Task;

  constructor(readonly kernel: Kernel) {
    this.task = new Task(kernel);
    // stdin, stdout, stderr: a process's first own file is fd 3.
    for (let fd = 0; fd < 3; fd++) {
      const file = kernel.open_device('/dev/null', O_RDWR) as File;
      this.task.files.install(file, false);
    }
  }

  /** The C convention: a negative kernel result becomes -1 with errno set. */
  protected sys(ret: number): number {
    if (ret < 0) {
      this.errno = -ret;
      return -1;
    }
    return ret;
  }

  /** open(2) of a device node (/dev/kvm, /dev/null, /dev/zero). */
  open(path: unknown, flags: unknown = O_RDWR): number {
    if (typeof path !== 'string') return this.sys(-Errno.EFAULT);
    if (typeof flags !== 'number' || !Number.isInteger(flags)) return this.sys(-Errno.EINVAL);
    const file = this.kernel.open_device(path, flags);
    if (typeof file === 'number') return this.sys(file);
    const fd = this.task.files.install(file, (flags & O_CLOEXEC) !== 0);
    if (fd < 0) file.fput();
    return this.sys(fd);
  }

  /** close(2). */
  close(fd: unknown): number {
    return this.sys(this.task.files.close_fd(fd));
  }

  /** ioctl(2): `arg` is a number or a struct object whose out-fields the call fills. */
  ioctl(fd: unknown, cmd: unknown, arg?: unknown): number {
    return this.sys(ksys_ioctl(this.task, fd, cmd, arg));
  }

  /* ---- file syscalls (fs/, mm/memfd.c, mm/shmem.c): memfd_create, ftruncate, fallocate, read,
   * pread, write, pwrite, fstat, fcntl ---- */

  /* ---- address-space syscalls (mm/): mmap, munmap, mprotect, madvise, mlock, munlock, load,
   * store, process_vm_readv, process_vm_writev ---- */
}
