/**
 * memfd_create(2) and file sealing (mm/memfd.c, Linux 6.18).
 *
 * memfd_create() makes an unlinked shmem file (or a hugetlbfs one with MFD_HUGETLB) and
 * installs it at the lowest free fd: O_RDWR | O_LARGEFILE, size 0, mode 0777 (0666 with
 * MFD_NOEXEC_SEAL), seals F_SEAL_SEAL unless MFD_ALLOW_SEALING or MFD_NOEXEC_SEAL clear it.
 * Seals live in the inode, so every fd and every reopen of the file shares them.
 *
 * The vm.memfd_noexec sysctl of the caller's pid namespace is the host's here (cocosim has no
 * pid namespaces): memfd_noexec(kernel).scope, 0 by default as on the oracle machine. 6.18 no
 * longer warns when neither MFD_EXEC nor MFD_NOEXEC_SEAL is given (checked: dmesg stays quiet),
 * so nothing is recorded for it; the pr_err_ratelimited() of an -EACCES under scope 2 is a log
 * line, not a WARN, and is not modelled either.
 */
import { Errno, IS_ERR } from '@cocosim/core';
import { FMODE_LSEEK, FMODE_PREAD, FMODE_PWRITE, FMODE_WRITE, O_LARGEFILE, type AddressSpace, type File } from './fs.js';
import { folio_mapcount, folio_order, folio_ref_count, folio_test_anon, type Folio } from './folio.js';
import { folio_test_hugetlb, folio_test_private, folio_test_swapcache, page_has_type } from './page-flags.js';
import type { PageStore } from './page_store.js';
import { hugetlb_file_setup, hugetlbfs_alloc_folio, HUGETLBFS_I, HUGETLB_ANONHUGE_INODE, is_file_hugepages } from './hugetlbfs.js';
import type { Kernel } from './kernel.js';
import { xa_is_value } from './swapops.js';
import { VM_MAYWRITE, VM_NORESERVE, VM_SHARED, VM_WRITE, task_mm } from './mm_types.js';
import { int_arg } from './mman.js';
import type { Task } from './process.js';
import { call_mm_hook, mm_hooks_mfd_flags, mm_hooks_seal_flags } from './mm_hooks.js';
import { SHMEM_I, shmem_file, shmem_file_setup, shmem_read_folio } from './shmem.js';
import { strncpy_from_user } from './uaccess.js';
import { F_ADD_SEALS, F_GET_SEALS, F_SEAL_EXEC, F_SEAL_FUTURE_WRITE, F_SEAL_GROW, F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_WRITE } from './uapi/fcntl.js';
import {
  MFD_ALLOW_SEALING,
  MFD_CLOEXEC,
  MFD_EXEC,
  MFD_HUGETLB,
  MFD_HUGE_MASK,
  MFD_HUGE_SHIFT,
  MFD_NOEXEC_SEAL,
} from './uapi/memfd.js';
import type { ErrPtr } from '@cocosim/core';

/** Every seal F_ADD_SEALS accepts. */
export const F_ALL_SEALS = F_SEAL_SEAL | F_SEAL_EXEC | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE;

/** "memfd:", the dentry name prefix. */
export const MFD_NAME_PREFIX = 'memfd:';
/** NAME_MAX - strlen("memfd:") = 249 bytes. */
export const MFD_NAME_MAX_LEN = 255 - MFD_NAME_PREFIX.length;
export const MFD_ALL_FLAGS = MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | MFD_NOEXEC_SEAL | MFD_EXEC;

/* vm.memfd_noexec values (include/linux/pid_namespace.h) */
/** MFD_EXEC is the default. */
export const MEMFD_NOEXEC_SCOPE_EXEC = 0;
/** MFD_NOEXEC_SEAL is the default. */
export const MEMFD_NOEXEC_SCOPE_NOEXEC_SEAL = 1;
/** MFD_NOEXEC_SEAL is required (MFD_EXEC and the default are -EACCES). */
export const MEMFD_NOEXEC_SCOPE_NOEXEC_ENFORCED = 2;

/** /proc/sys/vm/memfd_noexec of a simulated host. */
export interface MemfdNoexecSysctl {
  scope: number;
}

const noexec = new WeakMap<Kernel, MemfdNoexecSysctl>();

/** The host's vm.memfd_noexec (tests and experiments set `scope`). */
export function memfd_noexec(kernel: Kernel): MemfdNoexecSysctl {
  let s = noexec.get(kernel);
  if (s === undefined) {
    s = { scope: MEMFD_NOEXEC_SCOPE_EXEC };
    noexec.set(kernel, s);
  }
  return s;
}

/**
 * folio_expected_ref_count() (include/linux/mm.h): the references a folio has when nobody but
 * its owners holds one: one per page from the swap cache or the page cache, one for PG_private,
 * one per page-table mapping. More than that means a pin (or a transient reference).
 */
export function folio_expected_ref_count(store: PageStore, folio: Folio): number {
  if (store.warn.WARN_ON_ONCE(page_has_type(store, folio) && !folio_test_hugetlb(store, folio), 'folio_expected_ref_count')) return 0;
  const nr = 2 ** folio_order(store, folio);
  let ref_count = folio_test_swapcache(store, folio) ? nr : 0;
  if (!folio_test_anon(store, folio)) {
    if (store.mapping[store.idx(folio)] !== 0) ref_count += nr;
    if (folio_test_private(store, folio)) ref_count += 1;
  }
  return ref_count + folio_mapcount(store, folio);
}

/** The LAST_SCAN waits of memfd_wait_for_pins(): (HZ << scan) / 200 jiffies for scan 1..4, 150 ms. */
const PIN_WAIT_NS = [10, 20, 40, 80].reduce((a, ms) => a + ms, 0) * 1e6;

/** Where a seals word lives: shmem_inode_info or hugetlbfs_inode_info. */
interface SealsHolder {
  seals: number;
}

/** memfd_file_seals_ptr(): the file's seals, or null for a file that cannot be sealed. */
export function memfd_file_seals_ptr(file: File): SealsHolder | null {
  if (shmem_file(file)) return SHMEM_I(file.f_inode);
  if (is_file_hugepages(file)) return HUGETLBFS_I(file.f_inode);
  return null;
}

/**
 * memfd_wait_for_pins(): F_SEAL_WRITE must not leave a writer behind, and a folio with references
 * beyond the page cache's and its page tables' may be under DMA (pinned by GUP). The kernel
 * rescans for about 150 ms; nothing can drop a pin while the simulator runs this call, so a
 * pinned folio makes it -EBUSY after that (virtual) time.
 */
function memfd_wait_for_pins(kernel: Kernel, mapping: AddressSpace): number {
  const store = kernel.store;
  let pinned = false;
  let last: Folio | -1 = -1;
  mapping.i_pages.xa_for_each((_index, folio) => {
    /* a swapped-out page (a value entry) cannot be pinned */
    if (folio === last || xa_is_value(folio)) return true;
    last = folio;
    if (folio_ref_count(store, folio) !== folio_expected_ref_count(store, folio)) pinned = true;
    return !pinned;
  });
  if (!pinned) return 0;
  kernel.clock.advance(PIN_WAIT_NS);
  return -Errno.EBUSY;
}

/**
 * memfd_add_seals(), in the kernel's order: -EPERM if the file is not open for writing, -EINVAL
 * for unknown seal bits or a file that cannot be sealed, -EPERM once F_SEAL_SEAL is set (even
 * for no new seal), -EBUSY for F_SEAL_WRITE while a shared writable mapping exists
 * (mapping_deny_writable()) or a folio is pinned. F_SEAL_EXEC on an executable file adds
 * SHRINK | GROW | WRITE | FUTURE_WRITE too (W^X). Seals are never removed.
 */
export function memfd_add_seals(kernel: Kernel, file: File, seals: number): number {
  if (!(file.f_mode & FMODE_WRITE)) return -Errno.EPERM;
  if (seals & ~(F_ALL_SEALS | mm_hooks_seal_flags(kernel))) return -Errno.EINVAL;
  const file_seals = memfd_file_seals_ptr(file);
  if (file_seals === null) return -Errno.EINVAL;
  if (file_seals.seals & F_SEAL_SEAL) return -Errno.EPERM;
  const hook = call_mm_hook(kernel, 'memfd_add_seals', file, seals);
  if (hook) return hook;
  /*
   * SEAL_EXEC implies SEAL_WRITE, making W^X from the start; before the F_SEAL_WRITE checks, so
   * that a writable shared mapping refuses it too ("memfd: deny writeable mappings when implying
   * SEAL_WRITE", in Linux 6.18's stable series: EBUSY on 6.18.44).
   */
  if (seals & F_SEAL_EXEC && file.f_inode.i_mode & 0o111) {
    seals |= F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE;
  }
  if (seals & F_SEAL_WRITE && !(file_seals.seals & F_SEAL_WRITE)) {
    let error = file.f_mapping.mapping_deny_writable();
    if (error) return error;
    error = memfd_wait_for_pins(kernel, file.f_mapping);
    if (error) {
      file.f_mapping.mapping_allow_writable();
      return error;
    }
  }
  file_seals.seals |= seals;
  return 0;
}

/** memfd_get_seals(): the seals, or -EINVAL for a file that cannot be sealed. */
export function memfd_get_seals(file: File): number {
  const seals = memfd_file_seals_ptr(file);
  return seals === null ? -Errno.EINVAL : seals.seals;
}

/** memfd_fcntl(): F_ADD_SEALS and F_GET_SEALS; `arg` is fcntl's argument truncated to unsigned int. */
export function memfd_fcntl(kernel: Kernel, file: File, cmd: number, arg: number): number {
  switch (cmd) {
    case F_ADD_SEALS:
      return memfd_add_seals(kernel, file, arg);
    case F_GET_SEALS:
      return memfd_get_seals(file);
    default:
      return -Errno.EINVAL;
  }
}

/** is_write_sealed(). */
function is_write_sealed(seals: number): boolean {
  return (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) !== 0;
}

/**
 * memfd_check_seals_mmap(): called by do_mmap() for every file mapping. Under F_SEAL_WRITE or
 * F_SEAL_FUTURE_WRITE a shared writable mapping is -EPERM, and a shared read-only one loses
 * VM_MAYWRITE so that mprotect() cannot make it writable later (and mmap_region() then does not
 * count it in i_mmap_writable). Private mappings are not affected.
 * @param vm_flags in/out: the VMA flags of the new mapping
 * @returns 0 or -EPERM
 */
export function memfd_check_seals_mmap(file: File, vm_flags: { vm_flags: number }): number {
  const seals_ptr = memfd_file_seals_ptr(file);
  const seals = seals_ptr === null ? 0 : seals_ptr.seals;
  if (!is_write_sealed(seals)) return 0;
  /* check_write_seal(); VM_SHARED, VM_WRITE and VM_MAYWRITE are all below bit 31 */
  const mask = vm_flags.vm_flags & (VM_SHARED | VM_WRITE);
  if (!(mask & VM_SHARED)) return 0;
  if (mask & VM_WRITE) return -Errno.EPERM;
  vm_flags.vm_flags -= vm_flags.vm_flags & VM_MAYWRITE;
  return 0;
}

/**
 * memfd_alloc_folio(): the folio at `idx` of a memfd for memfd_pin_folios(), allocated (and
 * cleared) if missing: shmem_read_folio() for shmem, a huge page from the pool for hugetlbfs.
 * @returns the folio, unlocked with a reference, or ERR_PTR(-errno).
 */
export function memfd_alloc_folio(memfd: File, idx: number): Folio | ErrPtr {
  if (is_file_hugepages(memfd)) return hugetlbfs_alloc_folio(memfd, idx);
  return shmem_read_folio(memfd.f_mapping, idx);
}

/**
 * sanitize_flags() and check_sysctl_memfd_noexec(): unknown flags (MFD_HUGE_* size bits only with
 * MFD_HUGETLB) or MFD_EXEC with MFD_NOEXEC_SEAL are -EINVAL; without either, the sysctl picks
 * one; under scope 2 anything but MFD_NOEXEC_SEAL is -EACCES.
 * @returns the flags to use, or -errno
 */
function sanitize_flags(kernel: Kernel, flags: number): number {
  const all = MFD_ALL_FLAGS | mm_hooks_mfd_flags(kernel);
  if (!(flags & MFD_HUGETLB)) {
    if (flags & ~all) return -Errno.EINVAL;
  } else if ((flags & ~(all | (MFD_HUGE_MASK << MFD_HUGE_SHIFT))) >>> 0) {
    return -Errno.EINVAL;
  }
  if (flags & MFD_EXEC && flags & MFD_NOEXEC_SEAL) return -Errno.EINVAL;
  const sysctl = memfd_noexec(kernel).scope;
  if (!(flags & (MFD_EXEC | MFD_NOEXEC_SEAL))) flags |= sysctl >= MEMFD_NOEXEC_SCOPE_NOEXEC_SEAL ? MFD_NOEXEC_SEAL : MFD_EXEC;
  if (!(flags & MFD_NOEXEC_SEAL) && sysctl >= MEMFD_NOEXEC_SCOPE_NOEXEC_ENFORCED) return -Errno.EACCES;
  return flags >>> 0;
}

const utf8 = new TextEncoder();
const latin = new TextDecoder('latin1');

/**
 * alloc_name(): the user's name as strncpy_from_user(..., MFD_NAME_MAX_LEN + 1) reads it. A string
 * is its UTF-8 bytes up to the first NUL; a Uint8Array is raw bytes up to its first NUL, and one
 * with no NUL in its first 250 bytes runs off its end (-EFAULT) unless it is long enough to be
 * over-long. NULL (null) is the string at address 0, read from the process's memory. Longer than
 * 249 bytes: -EINVAL; anything else (a number...): -EFAULT.
 * @returns "memfd:<name>" (bytes shown as latin1), or -errno
 */
function alloc_name(task: Task, uname: unknown): string | number {
  let bytes: Uint8Array;
  if (typeof uname === 'string') bytes = utf8.encode(uname);
  else if (uname instanceof Uint8Array) bytes = uname;
  else if (uname === null) {
    /* NULL: whatever the process has mapped at address 0 (nothing, usually: -EFAULT) */
    const at0 = strncpy_from_user(task_mm(task), 0n, MFD_NAME_MAX_LEN + 1);
    if (at0 === undefined) return -Errno.EFAULT;
    bytes = at0.length > MFD_NAME_MAX_LEN ? at0 : Uint8Array.of(...at0, 0);
  } else return -Errno.EFAULT;
  let len = bytes.indexOf(0);
  if (len < 0) {
    if (bytes.length <= MFD_NAME_MAX_LEN && !(typeof uname === 'string')) return -Errno.EFAULT;
    len = bytes.length;
  }
  if (len > MFD_NAME_MAX_LEN) return -Errno.EINVAL;
  return MFD_NAME_PREFIX + latin.decode(bytes.subarray(0, len));
}

/**
 * alloc_file(): the shmem or hugetlbfs file, opened for memfd (FMODE_LSEEK | FMODE_PREAD |
 * FMODE_PWRITE, O_LARGEFILE), with its exec bits and seals set from the flags.
 */
function alloc_file(kernel: Kernel, name: string, flags: number): File | ErrPtr {
  const file = flags & MFD_HUGETLB
    ? hugetlb_file_setup(kernel, name, 0n, VM_NORESERVE, HUGETLB_ANONHUGE_INODE, (flags >>> MFD_HUGE_SHIFT) & MFD_HUGE_MASK)
    : shmem_file_setup(kernel, name, 0n, VM_NORESERVE);
  if (IS_ERR(file)) return file;
  file.f_mode |= FMODE_LSEEK | FMODE_PREAD | FMODE_PWRITE;
  file.f_flags |= O_LARGEFILE;
  if (flags & MFD_NOEXEC_SEAL) {
    file.f_inode.i_mode &= ~0o111;
    const file_seals = memfd_file_seals_ptr(file);
    if (file_seals !== null) {
      file_seals.seals &= ~F_SEAL_SEAL;
      file_seals.seals |= F_SEAL_EXEC;
    }
  } else if (flags & MFD_ALLOW_SEALING) {
    /* MFD_EXEC and MFD_ALLOW_SEALING are set */
    const file_seals = memfd_file_seals_ptr(file);
    if (file_seals !== null) file_seals.seals &= ~F_SEAL_SEAL;
  }
  return file;
}

/**
 * SYSCALL_DEFINE2(memfd_create, const char __user *uname, unsigned int flags), in the kernel's
 * order: flags (-EINVAL, -EACCES), name (-EFAULT, -EINVAL), a free fd (-EMFILE), then the file
 * (-ENODEV for an MFD_HUGE_* size with no hstate, -ENOMEM).
 * @returns the new fd or -errno
 */
export function sys_memfd_create(task: Task, uname: unknown, uflags: unknown): number {
  const kernel = task.kernel;
  const f = int_arg(uflags);
  if (f === undefined) return -Errno.EINVAL;
  const flags = sanitize_flags(kernel, f >>> 0);
  if (flags < 0) return flags;
  const name = alloc_name(task, uname);
  if (typeof name === 'number') return name;
  const fd = task.files.get_unused_fd();
  if (fd < 0) return fd;
  const file = alloc_file(kernel, name, flags);
  if (IS_ERR(file)) return file.errno;
  const hook = call_mm_hook(kernel, 'memfd_create', file, flags);
  if (hook) {
    file.fput();
    return hook;
  }
  task.files.fd_install(fd, file, (flags & MFD_CLOEXEC) !== 0);
  return fd;
}

