/**
 * Overcommit accounting (mm/util.c __vm_enough_memory(), vm_commit_limit(), include/linux/mman.h
 * vm_acct_memory(); Linux 6.18): the check private writable mappings (VM_ACCOUNT) and
 * mprotect(PROT_WRITE) of private mappings pass through.
 *
 * overcommit_memory (vm_sysctl()): 0 (the default heuristic) refuses a single request larger than
 * RAM plus swap; 1 always agrees; 2 keeps the sum of all commitments below the commit limit,
 * (RAM - hugetlb) * overcommit_ratio / 100 + swap, less the user reserve of the requesting mm.
 * Checked on Linux 6.18 (24 GiB, no swap): a 1 TiB PROT_WRITE MAP_PRIVATE anonymous mmap is
 * ENOMEM, RAM-sized succeeds, one page more fails, MAP_NORESERVE or PROT_READ succeed.
 * cocosim has no swap; processes run as root (no admin reserve).
 */
import { Errno, PAGE_SIZE } from '@cocosim/core';
import type { Kernel } from './kernel.js';
import { vm_sysctl, type MmStruct } from './mm_types.js';

export const OVERCOMMIT_GUESS = 0;
export const OVERCOMMIT_ALWAYS = 1;
export const OVERCOMMIT_NEVER = 2;

/** sysctl_overcommit_ratio (percent of RAM in the commit limit). */
export const sysctl_overcommit_ratio = 50;
/** sysctl_user_reserve_kbytes: at most 128 MiB (init_user_reserve()). */
export const sysctl_user_reserve_kbytes = 1 << 17;

const committed = new WeakMap<Kernel, { pages: number }>();

function committed_of(kernel: Kernel): { pages: number } {
  let c = committed.get(kernel);
  if (c === undefined) {
    c = { pages: 0 };
    committed.set(kernel, c);
  }
  return c;
}

/** totalram_pages(): the pages the buddy allocator manages. */
export function totalram_pages(kernel: Kernel): number {
  let n = 0;
  for (const z of kernel.page_alloc.zones) n += z.managed_pages;
  return n;
}

/** vm_memory_committed(): pages committed (vm_committed_as). */
export function vm_memory_committed(kernel: Kernel): number {
  return committed_of(kernel).pages;
}

/** vm_acct_memory(). */
export function vm_acct_memory(kernel: Kernel, pages: number): void {
  committed_of(kernel).pages += pages;
}

/** vm_unacct_memory(). */
export function vm_unacct_memory(kernel: Kernel, pages: number): void {
  committed_of(kernel).pages -= pages;
}

/** vm_commit_limit(). */
export function vm_commit_limit(kernel: Kernel): number {
  return Math.floor((totalram_pages(kernel) * sysctl_overcommit_ratio) / 100);
}

/**
 * __vm_enough_memory() / security_vm_enough_memory_mm(): commit `pages` more, or -ENOMEM (and
 * nothing committed).
 */
export function __vm_enough_memory(kernel: Kernel, mm: MmStruct | null, pages: number): number {
  vm_acct_memory(kernel, pages);
  const mode = vm_sysctl(kernel).overcommit_memory;
  if (mode === OVERCOMMIT_ALWAYS) return 0;
  if (mode !== OVERCOMMIT_NEVER) {
    if (pages > totalram_pages(kernel)) {
      vm_unacct_memory(kernel, pages);
      return -Errno.ENOMEM;
    }
    return 0;
  }
  let allowed = vm_commit_limit(kernel);
  if (mm !== null) allowed -= Math.min(Math.floor(mm.total_vm / 32), sysctl_user_reserve_kbytes / (PAGE_SIZE / 1024));
  if (vm_memory_committed(kernel) < allowed) return 0;
  vm_unacct_memory(kernel, pages);
  return -Errno.ENOMEM;
}

/**
 * __account_locked_vm() (mm/util.c): account `pages` pages of a long-term pin (VFIO, iommufd's
 * compatibility mode) to mm->locked_vm, the way mlock counts. An increase is refused with -ENOMEM
 * when it would take locked_vm past task's RLIMIT_MEMLOCK, unless bypass_rlim (the caller had
 * CAP_IPC_LOCK); a decrease below zero is a caller bug (WARN_ON_ONCE, then done anyway).
 */
export function __account_locked_vm(mm: MmStruct, pages: number, inc: boolean, task: { readonly rlimit_memlock: bigint }, bypass_rlim: boolean): number {
  const locked_vm = mm.locked_vm;
  let ret = 0;
  if (inc) {
    if (!bypass_rlim) {
      const limit = task.rlimit_memlock >> 12n;
      if (BigInt(locked_vm + pages) > limit) ret = -Errno.ENOMEM;
    }
    if (!ret) mm.locked_vm = locked_vm + pages;
  } else {
    mm.kernel.warn.WARN_ON_ONCE(pages > locked_vm, '__account_locked_vm', `__account_locked_vm: unlocking ${pages} pages of ${locked_vm}`);
    mm.locked_vm = locked_vm - pages;
  }
  return ret;
}
