/**
 * Error injection by pfn (mm/hwpoison-inject.c, Linux 6.18): the debugfs files
 * /sys/kernel/debug/hwpoison/corrupt-pfn and unpoison-pfn, which poison any page (a free one
 * too) and undo it, without a process mapping it. Both are software injection (MF_SW_SIMULATED):
 * the memory itself stays good. hw_memory_error() is the simulator's hardware error instead: the
 * memory line is corrupted (PhysMem poison) and reported as a scrubber or CMCI would
 * (memory_failure() without MF_SW_SIMULATED), after which unpoison_memory() refuses.
 * The simulated processes run as root: the CAP_SYS_ADMIN checks pass. hwpoison_filter is off.
 */
import { Errno, type Pfn } from '@cocosim/core';
import type { Kernel } from './kernel.js';
import { MF_SW_SIMULATED } from './madvise.js';
import { memory_failure, unpoison_memory } from './memory-failure.js';
import { pr_info, hex_lx } from './printk.js';

/**
 * hwpoison_inject(): a write of `pfn` to corrupt-pfn: memory_failure(pfn, MF_SW_SIMULATED).
 * @returns 0, or memory_failure()'s error (-ENXIO for a pfn without a struct page).
 */
export function hwpoison_inject(kernel: Kernel, pfn: number): number {
  if (!Number.isSafeInteger(pfn) || !kernel.store.pfn_valid(pfn)) return -Errno.ENXIO;
  pr_info(kernel, `Injecting memory failure at pfn ${hex_lx(pfn)}`);
  const err = memory_failure(kernel, pfn, MF_SW_SIMULATED);
  return err === -Errno.EOPNOTSUPP ? 0 : err;
}

/** hwpoison_unpoison(): a write of `pfn` to unpoison-pfn: unpoison_memory(pfn). */
export function hwpoison_unpoison(kernel: Kernel, pfn: number): number {
  return unpoison_memory(kernel, pfn);
}

/**
 * A hardware memory error found in `pfn` (at 64-byte line `line`, default 0) without a consumer,
 * as a patrol scrubber or a corrected-then-uncorrected report finds it: the line is poisoned in
 * PhysMem and memory_failure(pfn, 0) runs (the kernel's memory_failure_queue() work, done at once).
 * @returns memory_failure()'s result.
 */
export function hw_memory_error(kernel: Kernel, pfn: number, line = 0): number {
  if (!Number.isSafeInteger(pfn) || !kernel.store.pfn_valid(pfn)) return memory_failure(kernel, pfn, 0);
  kernel.phys.poison(pfn as Pfn, line);
  return memory_failure(kernel, pfn, 0);
}
