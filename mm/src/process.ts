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
import {
  O_ACCMODE, O_CLOEXEC, O_CREAT, O_DIRECT, O_DIRECTORY, O_EXCL, O_LARGEFILE, O_NOCTTY, O_NOFOLLOW, O_PATH, O_RDONLY, O_RDWR, O_TRUNC, type File,
  type GuestAccessExit,
} from './fs.js';
import type { Kernel } from './kernel.js';
import { ksys_ioctl } from './ioctl.js';
import { ksys_fcntl } from './fcntl.js';
import { sys_memfd_create } from './memfd.js';
import { ksys_fallocate, ksys_fchmod, ksys_ftruncate } from './open.js';
import { ksys_lseek, ksys_pread64, ksys_pwrite64, ksys_read, ksys_write } from './read_write.js';
import { sys_newfstat } from './stat.js';
import { userLoad, userLoadInto, userStore, type SigInfo } from './fault.js';
import { sys_madvise } from './madvise.js';
import { MAP_FAILED, int_arg } from './mman.js';
import { sys_mlock, sys_mlock2, sys_munlock } from './mlock.js';
import { task_mm, type MmStruct } from './mm_types.js';
import { sys_mmap, sys_munmap } from './mmap.js';
import { sys_mprotect } from './mprotect.js';
import { sys_prctl } from './sys.js';
import { copy_process } from './fork.js';
import { sys_process_vm_readv, sys_process_vm_writev } from './process_vm_access.js';
import { strncpy_from_user } from './uaccess.js';

/** struct task_struct, the parts a simulated process has. */
export class Task {
  readonly pid: number;
  readonly files = new FilesStruct();
  /** task->comm: the name kernel messages give the task ("Sending SIGBUS to comm:pid"). */
  comm = 'cocosim';
  /** PF_* flags the simulator models: PF_MCE_PROCESS and PF_MCE_EARLY (prctl(PR_MCE_KILL)). */
  flags = 0;
  /**
   * Signals sent to the task and not yet delivered (struct sigpending), oldest first: what
   * memory-failure sends (SIGBUS BUS_MCEERR_AR / BUS_MCEERR_AO, SIGKILL). A fault's own signal is
   * the faulting access's result instead (fault.ts). Taken with dequeue_signal().
   */
  readonly pending: SigInfo[] = [];
  /**
   * RLIMIT_MEMLOCK's soft limit in bytes (task_rlimit(task, RLIMIT_MEMLOCK)): MLOCK_LIMIT, 8 MiB,
   * by default (include/uapi/linux/resource.h); RLIM_INFINITY is 2^64 - 1. What VFIO and iommufd
   * charge their long-term pins against when the task lacks CAP_IPC_LOCK.
   */
  rlimit_memlock = 8n * 1024n * 1024n;
  /**
   * CAP_IPC_LOCK in the task's effective set (capable(CAP_IPC_LOCK)): simulated processes run as
   * root, as the oracle's do; clear it to have RLIMIT_MEMLOCK apply.
   */
  cap_ipc_lock = true;

  constructor(readonly kernel: Kernel) {
    this.pid = kernel.next_pid();
    let list = task_lists.get(kernel);
    if (list === undefined) task_lists.set(kernel, (list = []));
    list.push(this);
  }
}

/* PF_* (include/linux/sched.h) */
/** Process policy on mce errors */
export const PF_MCE_PROCESS = 0x00000080;
/** Early kill for mce process policy */
export const PF_MCE_EARLY = 0x08000000;

/* include/uapi/linux/limits.h */
const NAME_MAX = 255;
const PATH_MAX = 4096;
/* include/uapi/asm-generic/fcntl.h: the bits open(2) keeps (VALID_OPEN_FLAGS, O_0 .. __O_TMPFILE) */
const VALID_OPEN_FLAGS = 0o37777703;
const O_TMPFILE_BIT = 0o20000000;
const O_PATH_FLAGS = O_DIRECTORY | O_NOFOLLOW | O_PATH | O_CLOEXEC;

/** The tasks of each host (the init_task list); simulated processes never exit. */
const task_lists = new WeakMap<Kernel, Task[]>();

/** for_each_process(): the host's tasks in pid order. */
export function for_each_process(kernel: Kernel): readonly Task[] {
  return task_lists.get(kernel) ?? [];
}

/** dequeue_signal(): take the oldest pending signal of `task`, or undefined when none is pending. */
export function dequeue_signal(task: Task): SigInfo | undefined {
  return task.pending.shift();
}

export class Process {
  /** The errno of the last failed call (C's `errno`); calls that succeed leave it alone. */
  errno = 0;
  readonly task: Task;

  /**
   * A new process with /dev/null as stdin, stdout and stderr; or, given `task` (a child that
   * copy_process() made), the process of that task with the files it inherited.
   */
  constructor(readonly kernel: Kernel, task?: Task) {
    this.task = task ?? new Task(kernel);
    if (task !== undefined) return;
    /*
     * stdin, stdout, stderr: one open file description of /dev/null on all three, as a shell
     * leaves a terminal (opened once, dup'ed: F_DUPFD_QUERY of 0 and 1 is 1), open()ed O_RDWR by a
     * 64-bit program (O_LARGEFILE: force_o_largefile()); a process's first own file is fd 3.
     */
    const stdio = kernel.open_device('/dev/null', O_RDWR | O_LARGEFILE) as File;
    for (let fd = 0; fd < 3; fd++) this.task.files.install(fd === 0 ? stdio : stdio.get_file(), false);
  }

  /** The C convention: a negative kernel result becomes -1 with errno set. */
  protected sys(ret: number): number {
    if (ret < 0) {
      this.errno = -ret;
      return -1;
    }
    return ret;
  }

  /**
   * open(2) of a device node (/dev/kvm, /dev/null, /dev/zero), in do_sys_open()'s order:
   * build_open_how() keeps the valid bits of the int `flags` (O_PATH only O_PATH_FLAGS);
   * build_open_flags() refuses O_CREAT|O_DIRECTORY and a malformed O_TMPFILE (-EINVAL); getname()
   * reads the name (-EFAULT, -ENAMETOOLONG at PATH_MAX bytes); the lookup gives -ENAMETOOLONG for
   * a component beyond NAME_MAX and -ENOENT for no node; do_open() gives -EEXIST for
   * O_CREAT|O_EXCL and -ENOTDIR for O_DIRECTORY, the nodes being neither new nor directories;
   * do_dentry_open() refuses O_DIRECT (-EINVAL).
   */
  open(path: unknown, flags: unknown = O_RDWR): number {
    const f = int_arg(flags);
    if (f === undefined) return this.sys(-Errno.EINVAL);
    /* force_o_largefile(): open() and openat() on 64-bit add O_LARGEFILE */
    let how = (f | O_LARGEFILE) & VALID_OPEN_FLAGS;
    if (how & O_PATH) how &= O_PATH_FLAGS;
    if (how & O_CREAT && how & O_DIRECTORY) return this.sys(-Errno.EINVAL);
    if (how & O_TMPFILE_BIT && (!(how & O_DIRECTORY) || (how & O_ACCMODE) === O_RDONLY)) return this.sys(-Errno.EINVAL);
    const utf8 = new TextEncoder();
    if (path === null) {
      /* getname(NULL): the string at address 0, if the process mapped something there */
      const at0 = strncpy_from_user(this.mm, 0n, PATH_MAX);
      if (at0 === undefined) return this.sys(-Errno.EFAULT);
      if (at0.length === PATH_MAX) return this.sys(-Errno.ENAMETOOLONG);
      /* an empty name is -ENOENT without LOOKUP_EMPTY */
      if (at0.length === 0) return this.sys(-Errno.ENOENT);
      path = new TextDecoder('latin1').decode(at0);
    }
    if (typeof path !== 'string') return this.sys(-Errno.EFAULT);
    if (utf8.encode(path).length >= PATH_MAX) return this.sys(-Errno.ENAMETOOLONG);
    if (path.split('/').some((c) => utf8.encode(c).length > NAME_MAX)) return this.sys(-Errno.ENAMETOOLONG);
    const file = this.kernel.open_device(path, how);
    if (typeof file === 'number') return this.sys(file);
    if (how & O_CREAT && how & O_EXCL || how & O_DIRECTORY) {
      file.fput();
      return this.sys(how & O_DIRECTORY ? -Errno.ENOTDIR : -Errno.EEXIST);
    }
    /* do_dentry_open(): no device node here sets FMODE_CAN_ODIRECT (Linux 6.18: /dev/zero EINVAL) */
    if (how & O_DIRECT) {
      file.fput();
      return this.sys(-Errno.EINVAL);
    }
    /* do_dentry_open() drops the open-time flags (F_GETFL on Linux 6.18 shows none of them) */
    file.f_flags = how & ~(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC);
    const fd = this.task.files.install(file, (how & O_CLOEXEC) !== 0);
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

  /** memfd_create(2): `name` is a string (or a Uint8Array of bytes, as a C buffer). */
  memfd_create(name: unknown, flags: unknown = 0): number {
    this.kernel.cost.charge('syscall_entry');
    return this.sys(sys_memfd_create(this.task, name, flags));
  }

  /** ftruncate(2): `length` is a number or bigint (off_t). */
  ftruncate(fd: unknown, length: unknown): number {
    this.kernel.cost.charge('syscall_entry');
    return this.sys(ksys_ftruncate(this.task, fd, length));
  }

  /** fallocate(2): `offset` and `len` are numbers or bigints (loff_t). */
  fallocate(fd: unknown, mode: unknown, offset: unknown, len: unknown): number {
    this.kernel.cost.charge('syscall_entry');
    return this.sys(ksys_fallocate(this.task, fd, mode, offset, len));
  }

  /** read(2) into `buf` (count = buf.length): the bytes read. */
  read(fd: unknown, buf: unknown): number {
    this.kernel.cost.charge('syscall_entry');
    return this.sys(ksys_read(this.task, fd, buf));
  }

  /** pread(2) into `buf` at `offset`; the file position stays. */
  pread(fd: unknown, buf: unknown, offset: unknown): number {
    this.kernel.cost.charge('syscall_entry');
    return this.sys(ksys_pread64(this.task, fd, buf, offset));
  }

  /** write(2) of `data` (count = data.length): the bytes written. */
  write(fd: unknown, data: unknown): number {
    this.kernel.cost.charge('syscall_entry');
    return this.sys(ksys_write(this.task, fd, data));
  }

  /** pwrite(2) of `data` at `offset`; the file position stays. */
  pwrite(fd: unknown, data: unknown, offset: unknown): number {
    this.kernel.cost.charge('syscall_entry');
    return this.sys(ksys_pwrite64(this.task, fd, data, offset));
  }

  /** lseek(2): the new offset as a bigint (off_t reaches 2^63 - 1), or -1n with errno set. */
  lseek(fd: unknown, offset: unknown, whence: unknown): bigint {
    this.kernel.cost.charge('syscall_entry');
    const ret = ksys_lseek(this.task, fd, offset, whence);
    return typeof ret === 'bigint' ? ret : BigInt(this.sys(ret));
  }

  /** fstat(2): fills `statbuf` (st_ino, st_mode, st_nlink, st_size, st_blksize, st_blocks). */
  fstat(fd: unknown, statbuf: unknown): number {
    this.kernel.cost.charge('syscall_entry');
    return this.sys(sys_newfstat(this.task, fd, statbuf));
  }

  /** fcntl(2): F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD, F_SETFD, F_GETFL, F_ADD_SEALS, F_GET_SEALS. */
  fcntl(fd: unknown, cmd: unknown, arg: unknown = 0): number {
    this.kernel.cost.charge('syscall_entry');
    return this.sys(ksys_fcntl(this.task, fd, cmd, arg));
  }

  /** fchmod(2). */
  fchmod(fd: unknown, mode: unknown): number {
    this.kernel.cost.charge('syscall_entry');
    return this.sys(ksys_fchmod(this.task, fd, mode));
  }

  /* ---- address-space syscalls (mm/): mmap, munmap, mprotect, madvise, mlock, munlock, load,
   * store, process_vm_readv, process_vm_writev ---- */

  /** current->mm: the process's address space (mm_types.ts). */
  get mm(): MmStruct {
    return task_mm(this.task);
  }

  /**
   * mmap(2): the address of the new mapping as a u64 bigint, or MAP_FAILED (C's (void *)-1)
   * with errno set.
   */
  mmap(addr: unknown, length: unknown, prot: unknown, flags: unknown, fd: unknown, offset: unknown): bigint {
    const ret = sys_mmap(this.task, this.mm, addr, length, prot, flags, fd, offset);
    if (typeof ret === 'number') {
      this.errno = -ret;
      return MAP_FAILED;
    }
    return ret;
  }

  /** munmap(2). */
  munmap(addr: unknown, length: unknown): number {
    return this.sys(sys_munmap(this.mm, addr, length));
  }

  /** mprotect(2). */
  mprotect(addr: unknown, len: unknown, prot: unknown): number {
    return this.sys(sys_mprotect(this.mm, addr, len, prot));
  }

  /** madvise(2). */
  madvise(addr: unknown, length: unknown, advice: unknown): number {
    return this.sys(sys_madvise(this.mm, addr, length, advice));
  }

  /** mlock(2). */
  mlock(addr: unknown, len: unknown): number {
    return this.sys(sys_mlock(this.mm, addr, len));
  }

  /** mlock2(2): flags 0 or MLOCK_ONFAULT. */
  mlock2(addr: unknown, len: unknown, flags: unknown): number {
    return this.sys(sys_mlock2(this.mm, addr, len, flags));
  }

  /** munlock(2). */
  munlock(addr: unknown, len: unknown): number {
    return this.sys(sys_munlock(this.mm, addr, len));
  }

  /**
   * A user-mode load of `len` bytes at `addr` (fault.ts): the bytes, or the signal the access
   * raised ({ signo, si_code, si_addr }).
   */
  load(addr: unknown, len: number): Uint8Array | SigInfo {
    return userLoad(this.mm, addr, len);
  }

  /**
   * A user-mode load of `dst.length` bytes at `addr` into `dst` (fault.ts userLoadInto()): 0, or
   * the signal the access raised. What a C program's byte load does, without a new array per load.
   */
  load_into(addr: unknown, dst: Uint8Array): 0 | SigInfo {
    return userLoadInto(this.mm, addr, dst);
  }

  /**
   * A user-mode store of `data` at `addr`: 0, or the signal the access raised (the pages before
   * the faulting one are written, as by a CPU).
   */
  store(addr: unknown, data: Uint8Array): 0 | SigInfo {
    return userStore(this.mm, addr, data);
  }

  /**
   * fork(2): a child process (copy_process(), fork.ts) whose address space is a copy of this
   * one's (private memory copy-on-write, shared memory shared, mlock not inherited) and whose
   * fds refer to the same open files. The child's Process (its pid is child.task.pid), or -1
   * with errno (ENOMEM, EHWPOISON): no child is left, but, as in the kernel, the parent's
   * private entries copied before the failure stay write-protected (the next write reuses them).
   */
  fork(): Process | number {
    this.kernel.cost.charge('syscall_entry');
    const child = copy_process(this.task);
    if (typeof child === 'number') return this.sys(child);
    return new Process(this.kernel, child);
  }

  /* ---- guest accesses on a KVM vCPU (the trace ops guest_load / guest_store) ---- */

  /**
   * guest_load (docs/trace-format.md): the vCPU of `vcpu_fd` reads `len` bytes at `gpa`, as the
   * kernel oracle's guest does (kvm/src/x86.ts kvm_vcpu_guest_access): the bytes; the exit when
   * KVM_RUN returned to user space for another reason (`{reason: 'KVM_EXIT_MMIO', mmio}`...);
   * -1 with errno when KVM_RUN failed, `{ret: -1, exit}` when it failed with struct kvm_run
   * filled in (KVM_EXIT_MEMORY_FAULT); or the signal the thread took. EBADF for a bad fd, ENOTTY
   * for a file that is no vCPU.
   */
  guest_load(vcpu_fd: unknown, gpa: unknown, len: unknown): Uint8Array | GuestAccessExit | SigInfo | number {
    return this.guest_access(vcpu_fd, gpa, len);
  }

  /** guest_store: the vCPU writes `data` at `gpa`; 0, or what guest_load gives on another outcome. */
  guest_store(vcpu_fd: unknown, gpa: unknown, data: Uint8Array): Uint8Array | GuestAccessExit | SigInfo | number {
    return this.guest_access(vcpu_fd, gpa, data instanceof Uint8Array ? data : undefined);
  }

  private guest_access(vcpu_fd: unknown, gpa: unknown, access: unknown): Uint8Array | GuestAccessExit | SigInfo | number {
    const file = this.task.files.lookup(vcpu_fd);
    if (file === undefined) return this.sys(-Errno.EBADF);
    const guest_access = file.f_op.guest_access;
    if (guest_access === undefined) return this.sys(-Errno.ENOTTY);
    const r = guest_access(file, gpa, access, this.task);
    if (typeof r === 'number') return this.sys(r);
    if (!(r instanceof Uint8Array) && 'exit' in r && typeof r.ret === 'number') {
      this.errno = -r.ret;
      return { ret: -1, exit: r.exit };
    }
    return r;
  }

  /* ---- memory failure (mm/memory-failure.c, kernel/sys.c prctl PR_MCE_KILL) and pending
   * signals ---- */

  /** prctl(2): PR_MCE_KILL and PR_MCE_KILL_GET (sys.ts); any other option is EINVAL. */
  prctl(option: unknown, arg2: unknown = 0, arg3: unknown = 0, arg4: unknown = 0, arg5: unknown = 0): number {
    this.kernel.cost.charge('syscall_entry');
    return this.sys(sys_prctl(this.task, option, arg2, arg3, arg4, arg5));
  }

  /**
   * The oldest signal sent to this process and not yet taken (memory-failure's SIGBUS
   * BUS_MCEERR_AR / BUS_MCEERR_AO, SIGKILL), removed from the queue: what the process's signal
   * handler would receive next. Undefined when none is pending.
   */
  dequeue_signal(): SigInfo | undefined {
    return dequeue_signal(this.task);
  }

  /* ---- cross-process memory access (mm/process_vm_access.c): process_vm_readv,
   * process_vm_writev ---- */

  /**
   * process_vm_readv(2): copy from the memory of process `pid` (a pid, or the Process itself:
   * this one or another of the same host) described by `remote_iov` ({ iov_base, iov_len }[])
   * into the buffers of `local_iov` (Uint8Arrays, or { iov_base: Uint8Array, iov_len }), as
   * process_vm_access.ts describes. The bytes copied, or -1 with errno set.
   */
  process_vm_readv(pid: unknown, local_iov: unknown, liovcnt: unknown, remote_iov: unknown, riovcnt: unknown, flags: unknown = 0): number {
    this.kernel.cost.charge('syscall_entry');
    return this.sys(sys_process_vm_readv(this.find_task_by_vpid(pid), local_iov, liovcnt, remote_iov, riovcnt, flags));
  }

  /** process_vm_writev(2): the same from the local buffers into process `pid`'s memory. */
  process_vm_writev(pid: unknown, local_iov: unknown, liovcnt: unknown, remote_iov: unknown, riovcnt: unknown, flags: unknown = 0): number {
    this.kernel.cost.charge('syscall_entry');
    return this.sys(sys_process_vm_writev(this.find_task_by_vpid(pid), local_iov, liovcnt, remote_iov, riovcnt, flags));
  }

  /** find_task_by_vpid(): the task of a pid_t (a Process or Task stands for its own pid). */
  private find_task_by_vpid(pid: unknown): Task | undefined {
    if (pid instanceof Process) return pid.kernel === this.kernel ? pid.task : undefined;
    if (pid instanceof Task) return pid.kernel === this.kernel ? pid : undefined;
    const nr = int_arg(pid);
    return nr === undefined ? undefined : for_each_process(this.kernel).find((t) => t.pid === nr);
  }
}
