/**
 * process_vm_readv(2) and process_vm_writev(2) (mm/process_vm_access.c, lib/iov_iter.c
 * import_iovec(); Linux 6.18): copy between the caller's buffers and another process's memory
 * (or its own), by pinning the target's pages with pin_user_pages_remote().
 *
 * The iovecs as a simulated C program passes them:
 *   - local_iov: an array of local iovecs. A local iovec is a Uint8Array (iov_base is the buffer,
 *     iov_len its length) or { iov_base: Uint8Array, iov_len }: an iov_len beyond the buffer's
 *     length reaches memory that is not mapped (the copy stops there, as copy_to_user() does at a
 *     hole), and an iov_base that is not a buffer is one access_ok() refuses. The simulator cannot
 *     know where a buffer lies, so access_ok() fails only for lengths beyond TASK_SIZE_MAX, as for
 *     a buffer at the bottom of the address space;
 *   - remote_iov: an array of { iov_base, iov_len } with u64 values of any JS shape (numbers or
 *     bigints): addresses and lengths in the target.
 * An array shorter than its count reads past the end of the caller's iovec array: -EFAULT.
 *
 * The kernel's order, checked on Linux 6.18 (test/mm/c/process_vm_access.c): flags != 0 ->
 * -EINVAL; the local iovecs (liovcnt is truncated to 32 bits; > UIO_MAXIOV -> -EINVAL, a length
 * that is negative as ssize_t -> -EINVAL, access_ok() -> -EFAULT; lengths are clamped to
 * MAX_RW_COUNT in total); nothing to copy locally -> 0, before the remote iovecs are even read;
 * the remote iovecs (> UIO_MAXIOV -> -EINVAL, negative length -> -EINVAL); no remote byte -> 0;
 * then the target (-ESRCH). Then each remote iovec in turn, in chunks of up to 1024 pages pinned
 * without FOLL_FORCE (FOLL_WRITE for writev): a chunk that pins nothing is -EFAULT; a chunk that
 * pins some pages copies those and the next chunk starts at the first it did not pin. The first
 * error ends the call, which returns the bytes copied so far, or the error if there are none.
 * Written pages are dirtied (unpin_user_pages_dirty_lock()).
 */
import { BUG, Errno, PAGE_SIZE, isMemPoison, type Pfn } from '@cocosim/core';
import type { Kernel } from './kernel.js';
import { FOLL_WRITE } from './folio.js';
import { uaccess_host_access } from './fault.js';
import { MM_HOST_ACCESS_ZERO, mm_host_access_key } from './mm_hooks.js';
import { pin_user_pages_remote, unpin_user_pages_dirty_lock } from './gup.js';
import { ulong_arg } from './mman.js';
import { TASK_SIZE_MAX, task_mm } from './mm_types.js';
import type { Task } from './process.js';
import { MAX_RW_COUNT } from './read_write.js';

/** UIO_MAXIOV (include/uapi/linux/uio.h): the most iovecs one call takes. */
export const UIO_MAXIOV = 1024;
/** PVM_MAX_KMALLOC_PAGES / sizeof(struct page *): pages pinned per chunk. */
const PVM_MAX_PAGES_PER_LOOP = (PAGE_SIZE * 2) / 8;
const PAGE_SIZE_N = BigInt(PAGE_SIZE);
const U64 = 1n << 64n;
/** A user address no VMA can cover (above TASK_SIZE_MAX). */
const UNMAPPED_ADDRESS = 1n << 63n;

/** One local segment of the iov_iter: the buffer and the length the caller claims for it. */
interface LocalSeg {
  buf: Uint8Array;
  len: number;
}

/** struct iov_iter over the local iovecs: the segments and where the copy is. */
class IovIter {
  seg = 0;
  off = 0;
  count: number;

  constructor(readonly segs: LocalSeg[], total: number) {
    this.count = total;
  }

  /**
   * Copy up to `n` bytes between the iterator and `data` (from `data` into the local buffers
   * when `to_local`), stopping where a segment's buffer ends before its length: the bytes done.
   */
  copy(data: Uint8Array, n: number, to_local: boolean): number {
    let done = 0;
    while (done < n && this.count > 0) {
      const s = this.segs[this.seg];
      if (this.off === s.len) {
        this.seg++;
        this.off = 0;
        continue;
      }
      const want = Math.min(n - done, s.len - this.off);
      /* copy_to_user()/copy_from_user() stop where the memory behind the buffer is not mapped */
      const can = Math.max(0, Math.min(want, s.buf.length - this.off));
      if (to_local) s.buf.set(data.subarray(done, done + can), this.off);
      else data.set(s.buf.subarray(this.off, this.off + can), done);
      this.off += can;
      this.count -= can;
      done += can;
      if (can < want) break;
    }
    return done;
  }
}

/** A JS array standing for a `const struct iovec __user *` of `nr` entries; undefined: -EFAULT. */
function iovec_array(uvec: unknown, nr: number): readonly unknown[] | undefined {
  if (!Array.isArray(uvec) || uvec.length < nr) return undefined;
  return uvec as readonly unknown[];
}

/** An iov_len as the kernel reads it (ssize_t); undefined for JS values no C program can pass. */
function iov_len_arg(x: unknown): bigint | undefined {
  const v = ulong_arg(x);
  return v === undefined ? undefined : BigInt.asIntN(64, v);
}

/**
 * import_iovec() of the local iovecs: the iterator, or -errno. A single iovec is clamped to
 * MAX_RW_COUNT before access_ok() (__import_iovec_ubuf()); several are checked whole and their
 * total clamped.
 */
function import_iovec(uvec: unknown, nr_segs: number): IovIter | number {
  if (nr_segs > UIO_MAXIOV) return -Errno.EINVAL;
  if (nr_segs === 0) return new IovIter([], 0);
  const arr = iovec_array(uvec, nr_segs);
  if (arr === undefined) return -Errno.EFAULT;
  const bases: unknown[] = [];
  const lens: bigint[] = [];
  /* copy_iovec_from_user(): check for size_t not fitting in ssize_t */
  for (let k = 0; k < nr_segs; k++) {
    const v = arr[k];
    const len = v instanceof Uint8Array ? BigInt(v.length) : iov_len_arg((v as { iov_len?: unknown } | null)?.iov_len);
    if (len === undefined || len < 0n) return -Errno.EINVAL;
    bases.push(v instanceof Uint8Array ? v : (v as { iov_base?: unknown } | null)?.iov_base);
    lens.push(len);
  }
  const segs: LocalSeg[] = [];
  let total = 0;
  for (let k = 0; k < nr_segs; k++) {
    let len = lens[k];
    if (nr_segs === 1 && len > BigInt(MAX_RW_COUNT)) len = BigInt(MAX_RW_COUNT);
    /* access_ok(): a buffer at the bottom of the address space; anything but a buffer is refused */
    const base = bases[k];
    if (!(base instanceof Uint8Array) || len > TASK_SIZE_MAX) return -Errno.EFAULT;
    if (len > BigInt(MAX_RW_COUNT - total)) len = BigInt(MAX_RW_COUNT - total);
    segs.push({ buf: base, len: Number(len) });
    total += Number(len);
  }
  return new IovIter(segs, total);
}

/**
 * iovec_from_user() of the remote iovecs: [base, len] pairs, or -errno. An iov_base of a JS
 * shape no C program can pass is an address nothing maps (-EFAULT when its turn comes).
 */
function remote_iovecs(uvec: unknown, nr_segs: bigint): [bigint, bigint][] | number {
  if (nr_segs === 0n) return [];
  if (nr_segs > BigInt(UIO_MAXIOV)) return -Errno.EINVAL;
  const arr = iovec_array(uvec, Number(nr_segs));
  if (arr === undefined) return -Errno.EFAULT;
  const out: [bigint, bigint][] = [];
  for (const v of arr.slice(0, Number(nr_segs))) {
    if (typeof v !== 'object' || v === null) return -Errno.EFAULT;
    const len = iov_len_arg((v as { iov_len?: unknown }).iov_len);
    const base = ulong_arg((v as { iov_base?: unknown }).iov_base);
    if (len === undefined || len < 0n) return -Errno.EINVAL;
    out.push([base ?? UNMAPPED_ADDRESS, len]);
  }
  return out;
}

/**
 * process_vm_rw_pages(): copy `len` bytes from byte `offset` of the pinned `pages` to the local
 * buffers (or from them, `vm_write`). -EFAULT when a local buffer ends before the data does.
 */
function process_vm_rw_pages(kernel: Kernel, pages: number[], offset: number, len: number, iter: IovIter, vm_write: boolean): number {
  let k = 0;
  while (len && iter.count) {
    const pfn = pages[k++] as Pfn;
    const copy = Math.min(PAGE_SIZE - offset, len);
    let copied: number;
    if (vm_write) {
      /* copy_from_user() into the page: a refused write is fixed up, nothing is copied */
      if (uaccess_host_access(kernel, pfn, true, offset, copy) < 0) {
        copied = 0;
      } else {
        const data = new Uint8Array(copy);
        copied = iter.copy(data, copy, false);
        if (copied) kernel.phys.write(pfn, offset, data.subarray(0, copied), mm_host_access_key(kernel, pfn));
      }
    } else {
      const ha = pfn === kernel.store.zero_pfn ? MM_HOST_ACCESS_ZERO : uaccess_host_access(kernel, pfn, false, offset, copy);
      if (ha < 0) {
        copied = 0;
      } else {
        const data = ha === MM_HOST_ACCESS_ZERO ? new Uint8Array(copy) : kernel.phys.read(pfn, offset, copy, mm_host_access_key(kernel, pfn));
        /* copy_page_to_iter() is no machine-check-safe copy: the kernel would panic */
        if (isMemPoison(data)) BUG(`process_vm_readv(): the kernel consumed poison at pfn 0x${pfn.toString(16)}`);
        copied = iter.copy(data, copy, true);
      }
    }
    kernel.cost.charge('page_copy_4k', copied / PAGE_SIZE);
    len -= copied;
    if (copied < copy && iter.count) return -Errno.EFAULT;
    offset = 0;
  }
  return 0;
}

/** process_vm_rw_single_vec(): one remote iovec. 0 or -EFAULT. */
function process_vm_rw_single_vec(target: Task, addr: bigint, len: bigint, iter: IovIter, vm_write: boolean): number {
  const mm = task_mm(target);
  const kernel = mm.kernel;
  let pa = addr - (addr % PAGE_SIZE_N);
  let start_offset = Number(addr - pa);
  let rc = 0;
  /* Work out address and page range required */
  if (len === 0n) return 0;
  let nr_pages = BigInt.asUintN(64, BigInt.asUintN(64, addr + len - 1n) / PAGE_SIZE_N - addr / PAGE_SIZE_N + 1n);
  const flags = vm_write ? FOLL_WRITE : 0;
  while (!rc && nr_pages && iter.count) {
    const want = Number(nr_pages < BigInt(PVM_MAX_PAGES_PER_LOOP) ? nr_pages : BigInt(PVM_MAX_PAGES_PER_LOOP));
    const pages: number[] = [];
    /* Get the pages we're interested in. We must access remotely because task/mm might not current/current->mm */
    const pinned = pin_user_pages_remote(mm, Number(pa / PAGE_SIZE_N), want, flags, pages, { locked: 1 });
    if (pinned <= 0) return -Errno.EFAULT;
    let bytes = BigInt(pinned) * PAGE_SIZE_N - BigInt(start_offset);
    if (bytes > len) bytes = len;
    rc = process_vm_rw_pages(kernel, pages, start_offset, Number(bytes), iter, vm_write);
    len -= bytes;
    start_offset = 0;
    nr_pages -= BigInt(pinned);
    pa = (pa + BigInt(pinned) * PAGE_SIZE_N) % U64;
    /* If vm_write is set, the pages need to be made dirty: */
    unpin_user_pages_dirty_lock(kernel, pages, pinned, vm_write);
  }
  return rc;
}

/**
 * process_vm_rw(): the common part of the two system calls. `target` is the task `pid` named
 * (find_task_by_vpid()), undefined when there is none: -ESRCH in the kernel's order.
 * @returns the bytes copied, or -errno
 */
export function process_vm_rw(
  target: Task | undefined,
  lvec: unknown,
  uliovcnt: unknown,
  rvec: unknown,
  uriovcnt: unknown,
  uflags: unknown,
  vm_write: boolean,
): number {
  const flags = ulong_arg(uflags);
  const liovcnt = ulong_arg(uliovcnt);
  const riovcnt = ulong_arg(uriovcnt);
  if (flags === undefined || flags !== 0n) return -Errno.EINVAL;
  /* Check iovecs: import_iovec() takes the count as an unsigned int */
  if (liovcnt === undefined) return -Errno.EINVAL;
  const iter = import_iovec(lvec, Number(liovcnt & 0xffff_ffffn));
  if (typeof iter === 'number') return iter;
  if (!iter.count) return 0;
  if (riovcnt === undefined) return -Errno.EINVAL;
  const iov_r = remote_iovecs(rvec, riovcnt);
  if (typeof iov_r === 'number') return iov_r;
  /* process_vm_rw_core(): work out how many pages of struct pages we're going to need */
  let nr_pages = 0n;
  for (const [base, len] of iov_r) {
    if (len > 0n) {
      const nr = BigInt.asUintN(64, BigInt.asUintN(64, base + len) / PAGE_SIZE_N - base / PAGE_SIZE_N + 1n);
      if (nr > nr_pages) nr_pages = nr;
    }
  }
  if (nr_pages === 0n) return 0;
  if (target === undefined) return -Errno.ESRCH;
  /* mm_access(PTRACE_MODE_ATTACH_REALCREDS): simulated processes run as root */
  const total_len = iter.count;
  let rc = 0;
  for (let i = 0; i < iov_r.length && iter.count && !rc; i++) rc = process_vm_rw_single_vec(target, iov_r[i][0], iov_r[i][1], iter, vm_write);
  /* copied = space before - space after */
  const copied = total_len - iter.count;
  /* If we have managed to copy any data at all then we return the number of bytes copied. Otherwise we return the error code */
  return copied ? copied : rc;
}

/** SYSCALL_DEFINE6(process_vm_readv). */
export function sys_process_vm_readv(target: Task | undefined, lvec: unknown, liovcnt: unknown, rvec: unknown, riovcnt: unknown, flags: unknown): number {
  return process_vm_rw(target, lvec, liovcnt, rvec, riovcnt, flags, false);
}

/** SYSCALL_DEFINE6(process_vm_writev). */
export function sys_process_vm_writev(target: Task | undefined, lvec: unknown, liovcnt: unknown, rvec: unknown, riovcnt: unknown, flags: unknown): number {
  return process_vm_rw(target, lvec, liovcnt, rvec, riovcnt, flags, true);
}

/** The remote iovec of a C program's `struct iovec` for the target's memory. */
export interface RemoteIovec {
  iov_base: unknown;
  iov_len: unknown;
}
