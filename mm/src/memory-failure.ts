/**
 * Memory failure (mm/memory-failure.c, Linux 6.18): what the kernel does when a page is found
 * corrupted, by a machine check on consumption (x86 kill_me_maybe()), a scrubber or injection
 * (MADV_HWPOISON, the hwpoison-inject debugfs files), and the undo (unpoison_memory()) and soft
 * offlining of a page that is still good (soft_offline_page()).
 *
 * memory_failure(pfn, flags) marks the page PG_hwpoison, takes a reference it never drops
 * (num_poisoned_pages counts the pages so kept), and then by the page's state:
 *   - a free buddy page is taken off the free lists ("free buddy page": Recovered);
 *   - a page in use by the kernel (reserved, slab, page tables, anything not on the LRU) is left
 *     alone ("reserved kernel page" / "get hwpoison page" / "unknown page": Ignored);
 *   - a page on the LRU is unmapped from every process (try_to_unmap() with TTU_HWPOISON, rmap.ts:
 *     each PTE becomes a hwpoison swap entry, so a later access is SIGBUS BUS_MCEERR_AR), the
 *     processes that mapped it are signalled, and the error_states[] table picks the action by
 *     its flags: swap cache (clean: drop it from the swap cache; dirty: keep it, !uptodate),
 *     mlocked, unevictable or plain LRU page cache (truncate the folio through
 *     mapping->a_ops->error_remove_folio; shmem keeps it in the page cache, so reads are -EIO;
 *     a dirty one also sets AS_EIO on the mapping), anonymous (Recovered once off the LRU);
 *   - a hugetlb page: the huge folio is poisoned as a whole (me_huge_page());
 *   - a large folio (THP): the kernel splits it first. The simulator does not split folios, so
 *     it takes the kernel's path for a folio that fails to split: the processes are signalled and
 *     the result is "unsplit thp": Failed.
 * Each outcome is an action_result(): the memory_failure_event tracepoint (type and result as
 * their action_page_types[] / action_name[] text), the per-node statistics, num_poisoned_pages,
 * and the kernel's line "Memory failure: 0x...: recovery action for <type>: <result>" as a
 * `console` record (printk.ts). The result is 0 for Recovered or Delayed, -EBUSY otherwise.
 *
 * Signals (kill_proc()): with MF_ACTION_REQUIRED the current process gets SIGBUS BUS_MCEERR_AR
 * at the page's address (si_addr_lsb: the folio's page shift); processes that asked for early
 * kill (prctl(PR_MCE_KILL), or vm.memory_failure_early_kill) get BUS_MCEERR_AO; nobody is
 * signalled for a clean page. They are queued on the Task (process.ts `pending`, taken with
 * dequeue_signal()); the machine-check path returns the AR one as the faulting access's result.
 * "current" is the task whose mm the caller passes (the MADV_HWPOISON caller, the faulting one).
 *
 * A hwpoison entry installed by a real error and one installed by a design that reuses hwpoison
 * for guest private memory (D2 in shared/research/designs.md) are the same PTE: a design calls
 * unmap_poisoned_folio() on a folio whose page it has marked PG_hwpoison (SetPageHWPoison()),
 * and memory_failure() and unpoison_memory() cannot tell the two apart.
 *
 * Host configuration: vm_sysctl(kernel).memory_failure says whether the host kernel has
 * CONFIG_MEMORY_FAILURE (off, like the oracle machine); with it off MADV_HWPOISON and
 * MADV_SOFT_OFFLINE are unknown advice (madvise.ts). memory_failure_sysctl() holds
 * /proc/sys/vm/memory_failure_early_kill, memory_failure_recovery and enable_soft_offline.
 * hwpoison_filter is not modelled (it is off by default).
 */
import { Errno, KernelBug, PAGE_SHIFT, type Pfn } from '@cocosim/core';
import { folio_address_space, lookupMapping } from './filemap.js';
import {
  folio_raw_mapping,
  folio_mapcount,
  folio_mapped,
  folio_nr_pages,
  folio_order,
  folio_put,
  folio_test_anon,
  folio_try_get,
  folio_lock,
  folio_unlock,
  page_count,
  page_folio,
  page_ref_inc,
  put_page,
  type Folio,
} from './folio.js';
import { AS_EIO, type AddressSpace } from './fs.js';
import { GFP_USER, __GFP_MOVABLE, __GFP_RETRY_MAYFAIL } from './gfp.js';
import { dissolve_free_hugetlb_folio } from './hugetlb.js';
import { is_huge_zero_pfn } from './huge_memory.js';
import type { Kernel } from './kernel.js';
import { MF_ACTION_REQUIRED, MF_COUNT_INCREASED, MF_SW_SIMULATED, memory_failure_hooks } from './madvise.js';
import { alloc_migration_target, migrate_pages, putback_movable_pages, MIGRATE_SYNC, MR_MEMORY_FAILURE } from './migrate.js';
import { task_mm, type MmStruct, type VmAreaStruct } from './mm_types.js';
import {
  PG_dirty,
  PG_head,
  PG_lru,
  PG_mlocked,
  PG_reserved,
  PG_swapbacked,
  PG_swapcache,
  PG_unevictable,
  PageHWPoison,
  PageHuge,
  PageSlab,
  SetPageHWPoison,
  TestClearPageHWPoison,
  TestSetPageHWPoison,
  ClearPageHWPoison,
  folio_clear_active,
  folio_clear_dirty,
  folio_clear_hwpoison,
  folio_clear_unevictable,
  folio_clear_uptodate,
  folio_set_has_hwpoisoned,
  folio_test_dirty,
  folio_test_hugetlb,
  folio_test_large,
  folio_test_lru,
  folio_test_offline,
  folio_test_pgtable,
  folio_test_reserved,
  folio_test_set_hwpoison,
  folio_test_slab,
  folio_test_swapcache,
  folio_test_writeback,
} from './page-flags.js';
import { PTRS_PER_PTE, PAGES_PER_PUD, pte_present, pte_swp_type, is_swap_pte } from './pgtable.js';
import { hex_lx, pr_err, pr_info } from './printk.js';
import { PF_MCE_EARLY, PF_MCE_PROCESS, for_each_process, type Task } from './process.js';
import {
  PVMW_SYNC,
  PageVmaMappedWalk,
  TTU_HWPOISON,
  TTU_IGNORE_MLOCK,
  TTU_RMAP_LOCKED,
  TTU_SYNC,
  anon_vma_lookup,
  i_mmap_of,
  page_address_in_vma,
  page_vma_mapped_walk,
  try_to_unmap,
  vma_address,
} from './rmap.js';
import { shmem_mapping } from './shmem.js';
import { folio_isolate_lru } from './swap.js';
import { swap_cache_del_folio } from './swap_state.js';
import { SWP_HWPOISON } from './swapops.js';
import { mapping_evict_folio } from './truncate.js';
import { x86_mce_hooks, type SigInfo } from './fault.js';
import { mf_hooks } from './vmscan.js';

/* enum mf_flags (include/linux/mm.h); MF_COUNT_INCREASED, MF_ACTION_REQUIRED and MF_SW_SIMULATED are madvise.ts' */
export const MF_MUST_KILL = 1 << 2;
export const MF_SOFT_OFFLINE = 1 << 3;
export const MF_UNPOISON = 1 << 4;
export const MF_NO_RETRY = 1 << 6;
export const MF_MEM_PRE_REMOVE = 1 << 7;

/* enum mf_result */
/** Error: cannot be handled */
export const MF_IGNORED = 0;
/** Error: handling failed */
export const MF_FAILED = 1;
/** Will be handled later */
export const MF_DELAYED = 2;
/** Successfully recovered */
export const MF_RECOVERED = 3;
/** action_name[] */
export const MF_ACTION_NAMES = ['Ignored', 'Failed', 'Delayed', 'Recovered'] as const;

/* enum mf_action_page_type (include/linux/mm.h) */
export const MF_MSG_KERNEL = 0;
export const MF_MSG_KERNEL_HIGH_ORDER = 1;
export const MF_MSG_HUGE = 2;
export const MF_MSG_FREE_HUGE = 3;
export const MF_MSG_GET_HWPOISON = 4;
export const MF_MSG_UNMAP_FAILED = 5;
export const MF_MSG_DIRTY_SWAPCACHE = 6;
export const MF_MSG_CLEAN_SWAPCACHE = 7;
export const MF_MSG_DIRTY_MLOCKED_LRU = 8;
export const MF_MSG_CLEAN_MLOCKED_LRU = 9;
export const MF_MSG_DIRTY_UNEVICTABLE_LRU = 10;
export const MF_MSG_CLEAN_UNEVICTABLE_LRU = 11;
export const MF_MSG_DIRTY_LRU = 12;
export const MF_MSG_CLEAN_LRU = 13;
export const MF_MSG_TRUNCATED_LRU = 14;
export const MF_MSG_BUDDY = 15;
export const MF_MSG_DAX = 16;
export const MF_MSG_UNSPLIT_THP = 17;
export const MF_MSG_ALREADY_POISONED = 18;
export const MF_MSG_PFN_MAP = 19;
export const MF_MSG_UNKNOWN = 20;

/** action_page_types[]: the text memory_failure_event and the log print for each type. */
export const MF_ACTION_PAGE_TYPES: readonly string[] = [
  'reserved kernel page',
  'high-order kernel page',
  'huge page',
  'free huge page',
  'get hwpoison page',
  'unmapping failed page',
  'dirty swapcache page',
  'clean swapcache page',
  'dirty mlocked LRU page',
  'clean mlocked LRU page',
  'dirty unevictable LRU page',
  'clean unevictable LRU page',
  'dirty LRU page',
  'clean LRU page',
  'already truncated LRU page',
  'free buddy page',
  'dax page',
  'unsplit thp',
  'already poisoned page',
  'non struct page pfn',
  'unknown page',
];

/** /proc/sys/vm tunables of memory failure. */
export interface MemoryFailureSysctl {
  /** vm.memory_failure_early_kill (0): signal every process mapping a page at once (AO). */
  memory_failure_early_kill: number;
  /** vm.memory_failure_recovery (1): 0 panics on any memory failure. */
  memory_failure_recovery: number;
  /** vm.enable_soft_offline (1). */
  enable_soft_offline: number;
}

/** struct memory_failure_stats: /sys/devices/system/node/nodeN/memory_failure/. */
export interface MemoryFailureStats {
  total: number;
  ignored: number;
  failed: number;
  delayed: number;
  recovered: number;
}

/** The memory-failure state of one host. */
class MfState {
  readonly sysctl: MemoryFailureSysctl = { memory_failure_early_kill: 0, memory_failure_recovery: 1, enable_soft_offline: 1 };
  /** num_poisoned_pages. */
  num_poisoned_pages = 0;
  /** hw_memory_failure: a memory failure did not come from software injection (unpoison refuses then). */
  hw_memory_failure = false;
  readonly stats = new Map<number, MemoryFailureStats>();
  /** The raw error pages of each poisoned hugetlb folio (folio->_hugetlb_hwpoison). */
  readonly raw_hwp = new Map<number, Set<number>>();
}

const states = new WeakMap<Kernel, MfState>();

function mf(kernel: Kernel): MfState {
  let s = states.get(kernel);
  if (s === undefined) {
    s = new MfState();
    states.set(kernel, s);
  }
  return s;
}

/**
 * The memory-failure state of a host if a failure ever happened, without creating it (debug walks):
 * num_poisoned_pages, hw_memory_failure and the raw error pages of poisoned hugetlb folios.
 */
export function memory_failure_state_if_any(kernel: Kernel): {
  readonly num_poisoned_pages: number;
  readonly hw_memory_failure: boolean;
  readonly raw_hwp: ReadonlyMap<number, ReadonlySet<number>>;
} | undefined {
  return states.get(kernel);
}

/** The memory-failure sysctls of a host. */
export function memory_failure_sysctl(kernel: Kernel): MemoryFailureSysctl {
  return mf(kernel).sysctl;
}

/** num_poisoned_pages: pages memory-failure holds (HardwareCorrupted in /proc/meminfo, in pages). */
export function num_poisoned_pages(kernel: Kernel): number {
  return states.get(kernel)?.num_poisoned_pages ?? 0;
}

/** The node's memory-failure statistics (all zero before the first failure). */
export function memory_failure_stats(kernel: Kernel, nid: number): MemoryFailureStats {
  return mf(kernel).stats.get(nid) ?? { total: 0, ignored: 0, failed: 0, delayed: 0, recovered: 0 };
}

function num_poisoned_pages_inc(kernel: Kernel): void {
  mf(kernel).num_poisoned_pages++;
}

function num_poisoned_pages_sub(kernel: Kernel, n: number): void {
  mf(kernel).num_poisoned_pages -= n;
}

const MF_PREFIX = 'Memory failure: ';

/* Killing processes */

/** struct to_kill. */
interface ToKill {
  tsk: Task;
  /** The address (vpn * PAGE_SIZE) the task maps the page at, or -1 (-EFAULT) when unknown. */
  addr: bigint;
  size_shift: number;
}

/** The task whose mm is `mm` (the owner of current->mm), if any. */
function task_of_mm(kernel: Kernel, mm: MmStruct | undefined): Task | undefined {
  if (mm === undefined) return undefined;
  for (const t of for_each_process(kernel)) if (task_mm(t) === mm) return t;
  return undefined;
}

/**
 * send_signal_locked() for the signals memory-failure sends: legacy_queue() keeps at most one of
 * each non-realtime signal pending, so a second SIGBUS (or SIGKILL) is dropped.
 */
function send_sig(t: Task, info: SigInfo): void {
  if (!t.pending.some((s) => s.signo === info.signo)) t.pending.push(info);
}

/**
 * kill_proc(): send SIGBUS to one collected task: BUS_MCEERR_AR to current when the error was
 * action-required, BUS_MCEERR_AO otherwise.
 */
function kill_proc(kernel: Kernel, tk: ToKill, pfn: number, flags: number, current: Task | undefined): void {
  const t = tk.tsk;
  pr_err(kernel, `${MF_PREFIX}${hex_lx(pfn)}: Sending SIGBUS to ${t.comm}:${t.pid} due to hardware memory corruption`);
  const si_code = flags & MF_ACTION_REQUIRED && t === current ? 'BUS_MCEERR_AR' : 'BUS_MCEERR_AO';
  send_sig(t, { signo: 'SIGBUS', si_code, si_addr: tk.addr, si_addr_lsb: tk.size_shift });
}

/**
 * kill_procs(): signal the collected tasks when `forcekill` (the page was dirty, MF_MUST_KILL, or
 * unmapping failed); a task whose address is unknown gets SIGKILL.
 */
function kill_procs(kernel: Kernel, to_kill: ToKill[], forcekill: boolean, pfn: number, flags: number, current: Task | undefined): void {
  for (const tk of to_kill) {
    if (!forcekill) continue;
    if (tk.addr === -1n) {
      pr_err(kernel, `${MF_PREFIX}${hex_lx(pfn)}: forcibly killing ${tk.tsk.comm}:${tk.tsk.pid} because of failure to unmap corrupted page`);
      send_sig(tk.tsk, { signo: 'SIGKILL', si_code: 'SI_KERNEL', si_addr: 0n });
    } else {
      kill_proc(kernel, tk, pfn, flags, current);
    }
  }
  to_kill.length = 0;
}

/**
 * task_early_kill(): the task to signal when `tsk` maps the page: current itself for an
 * action-required error in its own mm (force_early), else `tsk` if it asked for early kill
 * (PF_MCE_PROCESS with PF_MCE_EARLY, or vm.memory_failure_early_kill without PF_MCE_PROCESS).
 */
function task_early_kill(kernel: Kernel, tsk: Task, force_early: boolean, current: Task | undefined): Task | undefined {
  if (force_early && tsk === current) return current;
  /* find_early_kill_thread(): one thread per simulated process */
  if (tsk.flags & PF_MCE_PROCESS) return tsk.flags & PF_MCE_EARLY ? tsk : undefined;
  return mf(kernel).sysctl.memory_failure_early_kill ? tsk : undefined;
}

/** __add_to_kill(): queue `tsk` with the page's address in `vma` and the folio's page shift. */
function add_to_kill_anon_file(kernel: Kernel, tsk: Task, page: number, to_kill: ToKill[], vpn: number): void {
  if (vpn < 0) return;
  const folio = page_folio(kernel.store, page);
  to_kill.push({ tsk, addr: BigInt(vpn) * 4096n, size_shift: PAGE_SHIFT + folio_order(kernel.store, folio) });
}

/**
 * page_mapped_in_vma() (mm/page_vma_mapped.c): the page number where `vma` maps `page` of
 * `folio`, or -1 when it does not map it.
 */
function page_mapped_in_vma(kernel: Kernel, folio: Folio, page: number, vma: VmAreaStruct): number {
  const store = kernel.store;
  const pgoff = store.index[store.idx(folio)] + (page - folio);
  const vpn = vma_address(vma, pgoff, 1);
  if (vpn < 0) return -1;
  const pvmw = new PageVmaMappedWalk(folio_test_hugetlb(store, folio) ? folio : page, 1, pgoff, vma, vpn, PVMW_SYNC);
  return page_vma_mapped_walk(pvmw) ? vpn : -1;
}

/** collect_procs_anon(): the tasks mapping an anonymous page (their VMAs of its anon_vma). */
function collect_procs_anon(kernel: Kernel, folio: Folio, page: number, to_kill: ToKill[], force_early: boolean, current: Task | undefined): void {
  const store = kernel.store;
  const av = anon_vma_lookup(kernel, folio_raw_mapping(store, folio));
  /* Not actually mapped anymore */
  if (av === undefined) return;
  const pgoff = store.index[store.idx(folio)] + (page - folio);
  for (const tsk of for_each_process(kernel)) {
    const t = task_early_kill(kernel, tsk, force_early, current);
    if (t === undefined) continue;
    const mm = task_mm(t);
    for (const vma of av.vmas) {
      if (vma.vm_mm !== mm || vma_address(vma, pgoff, 1) < 0) continue;
      add_to_kill_anon_file(kernel, t, page, to_kill, page_mapped_in_vma(kernel, folio, page, vma));
    }
  }
}

/**
 * collect_procs_file(): the tasks whose VMAs cover a page-cache page, mapped or not ("applications
 * who requested early kill want to be informed of all such data corruptions").
 */
function collect_procs_file(kernel: Kernel, folio: Folio, page: number, to_kill: ToKill[], force_early: boolean, current: Task | undefined): void {
  const store = kernel.store;
  const mapping = lookupMapping(store, store.mapping[store.idx(folio)]);
  if (mapping === undefined) return;
  const pgoff = store.index[store.idx(folio)] + (page - folio);
  for (const tsk of for_each_process(kernel)) {
    const t = task_early_kill(kernel, tsk, force_early, current);
    if (t === undefined) continue;
    const mm = task_mm(t);
    for (const vma of i_mmap_of(mapping)) {
      if (vma.vm_mm !== mm || vma_address(vma, pgoff, 1) < 0) continue;
      add_to_kill_anon_file(kernel, t, page, to_kill, page_address_in_vma(kernel, folio, page, vma));
    }
  }
}

/** collect_procs(): the tasks to signal about `page`, before its mappings go. */
function collect_procs(kernel: Kernel, folio: Folio, page: number, to_kill: ToKill[], force_early: boolean, current: Task | undefined): void {
  if (kernel.store.mapping[kernel.store.idx(folio)] === 0) return;
  if (folio_test_anon(kernel.store, folio)) collect_procs_anon(kernel, folio, page, to_kill, force_early, current);
  else collect_procs_file(kernel, folio, page, to_kill, force_early, current);
}

/**
 * kill_accessing_process(): an action-required error on a page that is already poisoned: find
 * where current maps it (a present entry or a hwpoison entry of that pfn) and send it SIGBUS
 * BUS_MCEERR_AR there. -EHWPOISON when found, -EFAULT when not.
 */
function kill_accessing_process(kernel: Kernel, current: Task | undefined, pfn: number, flags: number): number {
  if (current === undefined) return -Errno.EFAULT;
  const pt = task_mm(current).pgd;
  const found = (addr: number, shift: number): number => {
    kill_proc(kernel, { tsk: current, addr: BigInt(addr) * 4096n, size_shift: shift }, pfn, flags, current);
    return -Errno.EHWPOISON;
  };
  const pmds = [...pt.ptes.keys()].sort((a, b) => a - b);
  for (const pmd of pmds) {
    const t = pt.ptes.get(pmd)!;
    for (let i = 0; i < PTRS_PER_PTE; i++) {
      const f = t.flags[i];
      if (f === 0) continue;
      const hit = pte_present(f) ? t.val[i] === pfn : is_swap_pte(f) && pte_swp_type(f) === SWP_HWPOISON && t.val[i] === pfn;
      if (hit) return found(pmd * PTRS_PER_PTE + i, PAGE_SHIFT);
    }
  }
  for (const [pmd, e] of [...pt.pmds].sort((a, b) => a[0] - b[0])) {
    if (pte_present(e.flags) && pfn >= e.val && pfn < e.val + PTRS_PER_PTE) return found(pmd * PTRS_PER_PTE + (pfn - e.val), PAGE_SHIFT);
    if (!pte_present(e.flags) && pte_swp_type(e.flags) === SWP_HWPOISON && e.val === page_folio(kernel.store, pfn)) return found(pmd * PTRS_PER_PTE, PAGE_SHIFT + 9);
  }
  for (const [pud, e] of [...pt.puds].sort((a, b) => a[0] - b[0])) {
    const hit = pte_present(e.flags) ? pfn >= e.val && pfn < e.val + PAGES_PER_PUD : pte_swp_type(e.flags) === SWP_HWPOISON && e.val === page_folio(kernel.store, pfn);
    if (hit) return found(pud * PAGES_PER_PUD, PAGE_SHIFT + 18);
  }
  return -Errno.EFAULT;
}

/* Results */

/**
 * action_result(): report the outcome: memory_failure_event, num_poisoned_pages and the node's
 * statistics (not for an already poisoned page), the log line. 0 for Recovered or Delayed,
 * -EBUSY otherwise.
 */
function action_result(kernel: Kernel, pfn: number, type: number, result: number): number {
  if (kernel.tracer.enabled('memory_failure_event')) {
    kernel.tracer.emit('memory_failure_event', { pfn: pfn as Pfn, type: MF_ACTION_PAGE_TYPES[type], result: MF_ACTION_NAMES[result] });
  }
  if (type !== MF_MSG_ALREADY_POISONED) {
    num_poisoned_pages_inc(kernel);
    const nid = kernel.store.pfn_valid(pfn) ? kernel.store.node[kernel.store.idx(pfn)] : 0;
    const s = mf(kernel);
    let st = s.stats.get(nid);
    if (st === undefined) s.stats.set(nid, (st = { total: 0, ignored: 0, failed: 0, delayed: 0, recovered: 0 }));
    st[(['ignored', 'failed', 'delayed', 'recovered'] as const)[result]]++;
    st.total++;
  }
  pr_err(kernel, `${MF_PREFIX}${hex_lx(pfn)}: recovery action for ${MF_ACTION_PAGE_TYPES[type]}: ${MF_ACTION_NAMES[result]}`);
  return result === MF_RECOVERED || result === MF_DELAYED ? 0 : -Errno.EBUSY;
}

/* The page states (error_states[]) and their actions */

/** struct page_state. */
interface PageState {
  readonly mask: number;
  readonly res: number;
  readonly type: number;
  /** The action; it has to unlock the folio. */
  readonly action: (kernel: Kernel, ps: PageState, p: number) => number;
}

/**
 * delete_from_lru_cache(): take the folio off the LRU and clear the flags the buddy allocator
 * would object to when it is unpoisoned and freed. 0, or -EIO if it was not on the LRU.
 */
function delete_from_lru_cache(kernel: Kernel, folio: Folio): number {
  const store = kernel.store;
  if (folio_isolate_lru(store, folio)) {
    folio_clear_active(store, folio);
    folio_clear_unevictable(store, folio);
    /* drop the refcount elevated by folio_isolate_lru() */
    folio_put(store, folio);
    return 0;
  }
  return -Errno.EIO;
}

/** mapping_set_error(mapping, -EIO): write(), fsync() and friends will report it. */
function mapping_set_error(mapping: AddressSpace): void {
  mapping.flags |= 1 << AS_EIO;
}

/**
 * truncate_error_folio(): the "temporary hole punch" of a page-cache folio: the mapping's
 * error_remove_folio (shmem and guest_memfd keep the folio), or a plain invalidation, which
 * fails for a dirty folio.
 */
function truncate_error_folio(kernel: Kernel, folio: Folio, pfn: number, mapping: AddressSpace): number {
  let ret = MF_FAILED;
  const remove = mapping.a_ops.error_remove_folio;
  if (remove !== undefined) {
    const err = remove(mapping, folio);
    if (err !== 0) pr_info(kernel, `${MF_PREFIX}${hex_lx(pfn)}: Failed to punch page: ${err}`);
    /* filemap_release_folio(): no buffers to release */ else ret = MF_RECOVERED;
  } else if (mapping_evict_folio(kernel, folio)) {
    ret = MF_RECOVERED;
  } else {
    pr_info(kernel, `${MF_PREFIX}${hex_lx(pfn)}: Failed to invalidate`);
  }
  return ret;
}

/**
 * has_extra_refcount(): someone besides memory-failure (and, with extra_pins, the page cache that
 * keeps the folio) still holds the page.
 */
function has_extra_refcount(kernel: Kernel, ps: PageState, p: number, extra_pins: boolean): boolean {
  const store = kernel.store;
  let count = page_count(store, p) - 1;
  if (extra_pins) count -= folio_nr_pages(store, page_folio(store, p));
  if (count > 0) {
    pr_err(kernel, `${MF_PREFIX}${hex_lx(p)}: ${MF_ACTION_PAGE_TYPES[ps.type]} still referenced by ${count} users`);
    return true;
  }
  return false;
}

/** me_kernel(): error hit kernel page: do nothing, try to be lucky. */
function me_kernel(kernel: Kernel, _ps: PageState, p: number): number {
  folio_unlock(kernel.store, page_folio(kernel.store, p));
  return MF_IGNORED;
}

/** me_unknown(): page in unknown state: do nothing. */
function me_unknown(kernel: Kernel, _ps: PageState, p: number): number {
  pr_err(kernel, `${MF_PREFIX}${hex_lx(p)}: Unknown page state`);
  folio_unlock(kernel.store, page_folio(kernel.store, p));
  return MF_IGNORED;
}

/** me_pagecache_clean(): clean (or cleaned) page cache page, or an anonymous page. */
function me_pagecache_clean(kernel: Kernel, ps: PageState, p: number): number {
  const store = kernel.store;
  const folio = page_folio(store, p);
  let ret: number;
  delete_from_lru_cache(kernel, folio);
  if (folio_test_anon(store, folio)) {
    /* For anonymous folios the only reference left should be the one m_f() holds. */
    ret = MF_RECOVERED;
  } else {
    const mapping = folio_address_space(store, folio);
    if (mapping === undefined) {
      /* Folio has been torn down in the meantime */
      ret = MF_FAILED;
    } else {
      /* The shmem page is kept in page cache instead of truncating, so has an extra refcount. */
      const extra_pins = shmem_mapping(mapping);
      ret = truncate_error_folio(kernel, folio, p, mapping);
      if (has_extra_refcount(kernel, ps, p, extra_pins)) ret = MF_FAILED;
    }
  }
  folio_unlock(store, folio);
  return ret;
}

/** me_pagecache_dirty(): dirty page cache page: the mapping reports -EIO, then as clean. */
function me_pagecache_dirty(kernel: Kernel, ps: PageState, p: number): number {
  const mapping = folio_address_space(kernel.store, page_folio(kernel.store, p));
  if (mapping !== undefined) mapping_set_error(mapping);
  return me_pagecache_clean(kernel, ps, p);
}

/**
 * me_swapcache_dirty(): a dirty swap-cache page stays in the swap cache, clean and !uptodate,
 * so that a later swap-in finds it and kills the process (do_swap_page()'s PageHWPoison check).
 */
function me_swapcache_dirty(kernel: Kernel, ps: PageState, p: number): number {
  const store = kernel.store;
  const folio = page_folio(store, p);
  folio_clear_dirty(store, folio);
  /* Trigger EIO in shmem: */
  folio_clear_uptodate(store, folio);
  let ret = delete_from_lru_cache(kernel, folio) ? MF_FAILED : MF_DELAYED;
  folio_unlock(store, folio);
  if (has_extra_refcount(kernel, ps, p, ret === MF_DELAYED)) ret = MF_FAILED;
  return ret;
}

/** me_swapcache_clean(): a clean swap-cache page is dropped; the next fault reads the good copy from swap. */
function me_swapcache_clean(kernel: Kernel, ps: PageState, p: number): number {
  const store = kernel.store;
  const folio = page_folio(store, p);
  swap_cache_del_folio(kernel, folio);
  let ret = delete_from_lru_cache(kernel, folio) ? MF_FAILED : MF_RECOVERED;
  folio_unlock(store, folio);
  if (has_extra_refcount(kernel, ps, p, false)) ret = MF_FAILED;
  return ret;
}

/**
 * me_huge_page(): a hugetlb page. A hugetlbfs (or memfd) page stays in its page cache; an
 * anonymous one, now unmapped, is freed and dissolved into its base pages so that only the bad
 * page is lost.
 */
function me_huge_page(kernel: Kernel, ps: PageState, p: number): number {
  const store = kernel.store;
  const folio = page_folio(store, p);
  let res: number;
  let extra_pins = false;
  const mapping = folio_address_space(store, folio);
  if (mapping !== undefined) {
    res = truncate_error_folio(kernel, folio, p, mapping);
    /* The page is kept in page cache. */
    extra_pins = true;
    folio_unlock(store, folio);
  } else {
    folio_unlock(store, folio);
    /* migration entry prevents later access on error hugepage: free it and dissolve it */
    folio_clear_hugetlb_hwpoison(kernel, folio);
    folio_put(store, folio);
    if (__page_handle_poison(kernel, p) > 0) {
      page_ref_inc(store, p);
      res = MF_RECOVERED;
    } else {
      res = MF_FAILED;
    }
  }
  if (has_extra_refcount(kernel, ps, p, extra_pins)) res = MF_FAILED;
  return res;
}

const dirty = 1 << PG_dirty;
const sc = (1 << PG_swapcache) | (1 << PG_swapbacked);
const unevict = 1 << PG_unevictable;
const mlock = 1 << PG_mlocked;
const lru = 1 << PG_lru;
const head = 1 << PG_head;
const reserved = 1 << PG_reserved;

/** error_states[]: matched in order against the page's flags. */
const error_states: readonly PageState[] = [
  { mask: reserved, res: reserved, type: MF_MSG_KERNEL, action: me_kernel },
  /* free pages are specially detected outside this table */
  { mask: head, res: head, type: MF_MSG_HUGE, action: me_huge_page },
  { mask: sc | dirty, res: sc | dirty, type: MF_MSG_DIRTY_SWAPCACHE, action: me_swapcache_dirty },
  { mask: sc | dirty, res: sc, type: MF_MSG_CLEAN_SWAPCACHE, action: me_swapcache_clean },
  { mask: mlock | dirty, res: mlock | dirty, type: MF_MSG_DIRTY_MLOCKED_LRU, action: me_pagecache_dirty },
  { mask: mlock | dirty, res: mlock, type: MF_MSG_CLEAN_MLOCKED_LRU, action: me_pagecache_clean },
  { mask: unevict | dirty, res: unevict | dirty, type: MF_MSG_DIRTY_UNEVICTABLE_LRU, action: me_pagecache_dirty },
  { mask: unevict | dirty, res: unevict, type: MF_MSG_CLEAN_UNEVICTABLE_LRU, action: me_pagecache_clean },
  { mask: lru | dirty, res: lru | dirty, type: MF_MSG_DIRTY_LRU, action: me_pagecache_dirty },
  { mask: lru | dirty, res: lru, type: MF_MSG_CLEAN_LRU, action: me_pagecache_clean },
  /* Catchall entry: must be at end. */
  { mask: 0, res: 0, type: MF_MSG_UNKNOWN, action: me_unknown },
];

/**
 * identify_page_state(): pick the action from the page's current flags, else (when only the
 * catch-all matches) from the flags saved before the unmapping, with the current dirty bit.
 */
function identify_page_state(kernel: Kernel, pfn: number, p: number, page_flags: number): number {
  const pflags = kernel.store.flags[kernel.store.idx(p)];
  let ps = error_states.find((s) => (pflags & s.mask) === s.res)!;
  page_flags |= pflags & dirty;
  if (!ps.mask) ps = error_states.find((s) => (page_flags & s.mask) === s.res)!;
  /* page_action(): page p should be unlocked after returning from ps->action(). */
  return action_result(kernel, pfn, ps.type, ps.action(kernel, ps, p));
}

/* Taking the page */

/** HWPoisonHandlable(): an LRU page or a free buddy page (not slab), or movable for soft offline. */
function HWPoisonHandlable(kernel: Kernel, page: number): boolean {
  const store = kernel.store;
  if (PageSlab(store, page)) return false;
  return folio_test_lru(store, page_folio(store, page)) || kernel.page_alloc.is_free_buddy_page(page);
}

/**
 * __get_hwpoison_page(): a reference on a page memory-failure can handle. 1 taken, 0 free (or
 * not referenced), -EBUSY for a page of an unhandlable type.
 */
function __get_hwpoison_page(kernel: Kernel, page: number): number {
  const store = kernel.store;
  const folio = page_folio(store, page);
  if (folio_test_hugetlb(store, folio)) return folio_try_get(store, folio) ? 1 : 0;
  /* This check prevents from calling folio_try_get() for any unsupported type of folio. */
  if (!HWPoisonHandlable(kernel, folio)) return -Errno.EBUSY;
  return folio_try_get(store, folio) ? 1 : 0;
}

/** GET_PAGE_MAX_RETRY_NUM. */
const GET_PAGE_MAX_RETRY_NUM = 3;

/**
 * get_any_page(): __get_hwpoison_page() with the kernel's retries (shake_page() cannot change a
 * page's type here: the LRU batches are always drained).
 * @returns 1 with a reference, 0 for a free page, -EBUSY or -EIO for pages it cannot handle.
 */
function get_any_page(kernel: Kernel, p: number, flags: number): number {
  const store = kernel.store;
  let pass = 0;
  let count_increased = (flags & MF_COUNT_INCREASED) !== 0;
  let ret = 0;
  for (;;) {
    if (!count_increased) {
      ret = __get_hwpoison_page(kernel, p);
      if (!ret) {
        if (page_count(store, p)) {
          /* We raced with an allocation, retry. */
          if (pass++ < GET_PAGE_MAX_RETRY_NUM) continue;
          ret = -Errno.EBUSY;
        } else if (!PageHuge(store, p) && !kernel.page_alloc.is_free_buddy_page(p)) {
          /* We raced with put_page, retry. */
          if (pass++ < GET_PAGE_MAX_RETRY_NUM) continue;
          ret = -Errno.EIO;
        }
        break;
      } else if (ret === -Errno.EBUSY) {
        /* We raced with (possibly temporary) unhandlable page, retry. */
        if (pass++ < 3) continue;
        ret = -Errno.EIO;
        break;
      }
    }
    if (PageHuge(store, p) || HWPoisonHandlable(kernel, p)) {
      ret = 1;
    } else {
      /* A page we cannot handle. Check whether we can turn it into something we can handle. */
      if (pass++ < GET_PAGE_MAX_RETRY_NUM) {
        put_page(store, p);
        count_increased = false;
        continue;
      }
      put_page(store, p);
      ret = -Errno.EIO;
    }
    break;
  }
  if (ret === -Errno.EIO) pr_err(kernel, `${MF_PREFIX}${hex_lx(p)}: unhandlable page.`);
  return ret;
}

/** __get_unpoison_page(): -EHWPOISON for a page taken off the buddy lists, else a reference (1) or 0. */
function __get_unpoison_page(kernel: Kernel, page: number): number {
  if (kernel.page_alloc.PageHWPoisonTakenOff(page)) return -Errno.EHWPOISON;
  return folio_try_get(kernel.store, page_folio(kernel.store, page)) ? 1 : 0;
}

/** get_hwpoison_page(). */
function get_hwpoison_page(kernel: Kernel, p: number, flags: number): number {
  return flags & MF_UNPOISON ? __get_unpoison_page(kernel, p) : get_any_page(kernel, p, flags);
}

/**
 * __page_handle_poison(): dissolve a free hugetlb folio (if it is one) and take the page off the
 * buddy lists. 1 taken off, 0 not, < 0 failed to dissolve.
 */
function __page_handle_poison(kernel: Kernel, page: number): number {
  const ret = dissolve_free_hugetlb_folio(kernel, page_folio(kernel.store, page));
  if (ret) return ret;
  return kernel.page_alloc.take_page_off_buddy(page) ? 1 : 0;
}

/** page_handle_poison(): soft offline's end: the page is poisoned and held. */
function page_handle_poison(kernel: Kernel, page: number, hugepage_or_freepage: boolean, release: boolean): boolean {
  const store = kernel.store;
  /* We could fail to take off the target page from buddy; acceptable for a soft-offlined page. */
  if (hugepage_or_freepage && __page_handle_poison(kernel, page) <= 0) return false;
  SetPageHWPoison(store, page);
  if (release) put_page(store, page);
  page_ref_inc(store, page);
  num_poisoned_pages_inc(kernel);
  return true;
}

/* Unmapping */

/**
 * unmap_poisoned_folio(): remove every user mapping of a locked folio whose page `pfn` is
 * PG_hwpoison, leaving hwpoison entries (TTU_HWPOISON) so that later accesses are SIGBUS
 * BUS_MCEERR_AR; a swap-cache folio's PTEs become swap entries instead (its data may still be
 * good on swap). This is also the documented way for a design to give a page the PTE of a memory
 * error: SetPageHWPoison() the page, lock the folio, call this.
 * @returns 0, or -EBUSY if some mapping remains.
 */
export function unmap_poisoned_folio(kernel: Kernel, folio: Folio, pfn: number, _must_kill: boolean): number {
  const store = kernel.store;
  let ttu = TTU_IGNORE_MLOCK | TTU_SYNC | TTU_HWPOISON;
  if (folio_test_swapcache(store, folio)) {
    pr_err(kernel, `${MF_PREFIX}${hex_lx(pfn)}: keeping poisoned page in swap cache`);
    ttu &= ~TTU_HWPOISON;
  }
  /*
   * Propagating the dirty bit from the PTEs first (folio_mkclean()) is only done for mappings
   * with writeback (mapping_can_writeback()) and without `must_kill`: no simulated file system
   * has writeback, so TTU_HWPOISON always stays.
   */
  if (folio_test_hugetlb(store, folio) && !folio_test_anon(store, folio)) ttu |= TTU_RMAP_LOCKED;
  try_to_unmap(kernel, folio, ttu);
  return folio_mapped(store, folio) ? -Errno.EBUSY : 0;
}

/**
 * hwpoison_user_mappings(): unmap a user-mapped LRU (or hugetlb) folio and signal the processes
 * that mapped it: all of them if the page was dirty (or MF_MUST_KILL, or unmapping failed), else
 * none. @returns whether no mapping is left.
 */
function hwpoison_user_mappings(kernel: Kernel, folio: Folio, p: number, pfn: number, flags: number, current: Task | undefined): boolean {
  const store = kernel.store;
  /* Here we are interested only in user-mapped pages, so skip any other types of pages. */
  if (folio_test_reserved(store, folio) || folio_test_slab(store, folio) || folio_test_pgtable(store, folio) || folio_test_offline(store, folio)) return true;
  if (!(folio_test_lru(store, folio) || folio_test_hugetlb(store, folio))) return true;
  /* This check implies we don't kill processes if their pages are in the swap cache early. */
  if (!folio_mapped(store, folio)) return true;
  /* Collect the processes before try_to_unmap() takes the rmap down. */
  const tokill: ToKill[] = [];
  collect_procs(kernel, folio, p, tokill, (flags & MF_ACTION_REQUIRED) !== 0, current);
  unmap_poisoned_folio(kernel, folio, pfn, (flags & MF_MUST_KILL) !== 0);
  const unmap_success = !folio_mapped(store, folio);
  if (!unmap_success) pr_err(kernel, `${MF_PREFIX}${hex_lx(pfn)}: failed to unmap page (folio mapcount=${folio_mapcount(store, folio)})`);
  /* Only kill when the page was dirty or the process is not restartable. */
  const forcekill = folio_test_dirty(store, folio) || (flags & MF_MUST_KILL) !== 0 || !unmap_success;
  kill_procs(kernel, tokill, forcekill, pfn, flags, current);
  return unmap_success;
}

/* hugetlb */

/** folio_set_hugetlb_hwpoison(): record a raw error page; -EHWPOISON if the folio was poisoned already. */
function folio_set_hugetlb_hwpoison(kernel: Kernel, folio: Folio, page: number): number {
  const s = mf(kernel);
  const ret = folio_test_set_hwpoison(kernel.store, folio) ? -Errno.EHWPOISON : 0;
  let raw = s.raw_hwp.get(folio);
  if (raw === undefined) s.raw_hwp.set(folio, (raw = new Set()));
  if (raw.has(page)) return -Errno.EHWPOISON;
  raw.add(page);
  /* the first error event will be counted in action_result(). */
  if (ret) num_poisoned_pages_inc(kernel);
  return ret;
}

/**
 * folio_clear_hugetlb_hwpoison(): the poison moves from the huge folio to its raw error pages
 * (the folio is being dissolved into base pages).
 */
function folio_clear_hugetlb_hwpoison(kernel: Kernel, folio: Folio): void {
  const store = kernel.store;
  const s = mf(kernel);
  const raw = s.raw_hwp.get(folio);
  folio_clear_hwpoison(store, folio);
  if (raw === undefined) return;
  for (const page of raw) SetPageHWPoison(store, page);
  s.raw_hwp.delete(folio);
}

/**
 * try_memory_failure_hugetlb(): memory_failure() of a page of a hugetlb folio. `hugetlb.v` is set
 * false when the page is not one (the normal path goes on).
 */
function try_memory_failure_hugetlb(kernel: Kernel, pfn: number, flags: number, hugetlb: { v: boolean }, current: Task | undefined): number {
  const store = kernel.store;
  const folio = page_folio(store, pfn);
  if (!folio_test_hugetlb(store, folio)) {
    hugetlb.v = false;
    return 0;
  }
  hugetlb.v = true;
  /* get_huge_page_for_hwpoison() */
  let res: number;
  let count_increased = false;
  if (flags & MF_COUNT_INCREASED) {
    res = 1;
    count_increased = true;
  } else if (store._refcount[store.idx(folio)] === 0) {
    /* a free pool page (hugetlb_freed) */
    res = 0;
  } else {
    res = folio_try_get(store, folio) ? 1 : 0;
    count_increased = res === 1;
  }
  if (folio_set_hugetlb_hwpoison(kernel, folio, pfn)) {
    if (count_increased) folio_put(store, folio);
    if (flags & MF_ACTION_REQUIRED) res = kill_accessing_process(kernel, current, pfn, flags);
    else res = -Errno.EHWPOISON;
    action_result(kernel, pfn, MF_MSG_ALREADY_POISONED, MF_FAILED);
    return res;
  }
  folio_lock(store, folio);
  /* Handling free hugepage. The possible race with hugepage allocation is prevented by PageHWPoison. */
  if (res === 0) {
    folio_unlock(store, folio);
    folio_clear_hugetlb_hwpoison(kernel, folio);
    if (__page_handle_poison(kernel, pfn) > 0) {
      page_ref_inc(store, pfn);
      res = MF_RECOVERED;
    } else {
      res = MF_FAILED;
    }
    return action_result(kernel, pfn, MF_MSG_FREE_HUGE, res);
  }
  const page_flags = store.flags[store.idx(folio)];
  if (!hwpoison_user_mappings(kernel, folio, pfn, pfn, flags, current)) {
    folio_unlock(store, folio);
    return action_result(kernel, pfn, MF_MSG_UNMAP_FAILED, MF_FAILED);
  }
  return identify_page_state(kernel, pfn, pfn, page_flags);
}

/* The entry points */

/**
 * memory_failure(): handle a corrupted page. `flags` are MF_*; `current` is the mm of the task
 * the error hit (MADV_HWPOISON's caller, the task that consumed the poison), if any.
 * @returns 0 when handled (Recovered or Delayed), -EHWPOISON when the page was already poisoned
 * (or a large folio could not be split; the processes have been signalled), -EBUSY when it was
 * handled but not recovered, -ENXIO for a pfn outside the memory map.
 */
export function memory_failure(kernel: Kernel, pfn: number, flags: number, current_mm?: MmStruct): number {
  const store = kernel.store;
  const s = mf(kernel);
  if (!s.sysctl.memory_failure_recovery) throw new KernelBug(`Kernel panic - not syncing: Memory failure on page ${pfn.toString(16)}`);
  if (!(flags & MF_SW_SIMULATED)) s.hw_memory_failure = true;
  const current = task_of_mm(kernel, current_mm);
  if (!Number.isSafeInteger(pfn) || !store.pfn_valid(pfn)) {
    pr_err(kernel, `${MF_PREFIX}${Number.isSafeInteger(pfn) && pfn >= 0 ? hex_lx(pfn) : String(pfn)}: memory outside kernel control`);
    return -Errno.ENXIO;
  }
  const p = pfn;
  let retry = true;
  for (;;) {
    const hugetlb = { v: false };
    const hres = try_memory_failure_hugetlb(kernel, pfn, flags, hugetlb, current);
    if (hugetlb.v) return hres;
    if (TestSetPageHWPoison(store, p)) {
      let res = -Errno.EHWPOISON;
      if (flags & MF_ACTION_REQUIRED) res = kill_accessing_process(kernel, current, pfn, flags);
      if (flags & MF_COUNT_INCREASED) put_page(store, p);
      action_result(kernel, pfn, MF_MSG_ALREADY_POISONED, MF_FAILED);
      return res;
    }
    /*
     * We need/can do nothing about count=0 pages: a free page is in safe hands (check_new_page()
     * is the gate keeper); a page of a non-compound high order allocation is some kernel user's.
     */
    if (!(flags & MF_COUNT_INCREASED)) {
      const res = get_hwpoison_page(kernel, p, flags);
      if (!res) {
        if (kernel.page_alloc.is_free_buddy_page(p)) {
          let r: number;
          if (kernel.page_alloc.take_page_off_buddy(p)) {
            page_ref_inc(store, p);
            r = MF_RECOVERED;
          } else {
            /* We lost the race, try again */
            if (retry) {
              ClearPageHWPoison(store, p);
              retry = false;
              continue;
            }
            r = MF_FAILED;
          }
          return action_result(kernel, pfn, MF_MSG_BUDDY, r);
        }
        return action_result(kernel, pfn, MF_MSG_KERNEL_HIGH_ORDER, MF_IGNORED);
      } else if (res < 0) {
        return action_result(kernel, pfn, MF_MSG_GET_HWPOISON, MF_IGNORED);
      }
    }
    break;
  }
  let folio = page_folio(store, p);
  if (folio_test_large(store, folio)) {
    /*
     * The flag must be set after the refcount is bumped. The kernel then splits the THP; the
     * simulator cannot (try_to_split_thp_page() fails): signal the processes and give up.
     */
    folio_set_has_hwpoisoned(store, folio);
    kill_procs_now(kernel, p, pfn, flags, folio, current);
    put_page(store, p);
    action_result(kernel, pfn, MF_MSG_UNSPLIT_THP, MF_FAILED);
    return -Errno.EHWPOISON;
  }
  folio = page_folio(store, p);
  folio_lock(store, folio);
  /* Save the flags: the containment action changes them (try_to_unmap() clears PG_mlocked...). */
  const page_flags = store.flags[store.idx(folio)];
  if (folio_test_lru(store, folio) || folio_test_writeback(store, folio)) {
    /* Now take care of user space mappings. Abort on fail: __filemap_remove_folio() assumes unmapped page. */
    if (!hwpoison_user_mappings(kernel, folio, p, pfn, flags, current)) {
      const r = action_result(kernel, pfn, MF_MSG_UNMAP_FAILED, MF_FAILED);
      folio_unlock(store, folio);
      return r;
    }
    /* Torn down by someone else? */
    if (folio_test_lru(store, folio) && !folio_test_swapcache(store, folio) && store.mapping[store.idx(folio)] === 0) {
      const r = action_result(kernel, pfn, MF_MSG_TRUNCATED_LRU, MF_IGNORED);
      folio_unlock(store, folio);
      return r;
    }
  }
  return identify_page_state(kernel, pfn, p, page_flags);
}

/** kill_procs_now(): a folio that could not be split: SIGBUS with the address to every collected process. */
function kill_procs_now(kernel: Kernel, p: number, pfn: number, flags: number, folio: Folio, current: Task | undefined): void {
  const tokill: ToKill[] = [];
  collect_procs(kernel, folio, p, tokill, (flags & MF_ACTION_REQUIRED) !== 0, current);
  kill_procs(kernel, tokill, true, pfn, flags, current);
}

const UNPOISON_PREFIX = 'Unpoison: ';

/**
 * unpoison_memory(): undo a software-injected memory failure, once nothing but memory-failure
 * holds the page. -ENXIO for an invalid pfn, -EOPNOTSUPP after any hardware memory failure (and
 * for the huge zero page), -EBUSY when the page is not poisoned, still referenced, mapped, in a
 * page cache, or a kernel page.
 */
export function unpoison_memory(kernel: Kernel, pfn: number): number {
  const store = kernel.store;
  if (!Number.isSafeInteger(pfn) || !store.pfn_valid(pfn)) return -Errno.ENXIO;
  const s = mf(kernel);
  const p = pfn;
  const folio = page_folio(store, p);
  let ret = -Errno.EBUSY;
  let huge = false;
  const info = (msg: string): void => pr_info(kernel, `${UNPOISON_PREFIX}${hex_lx(pfn)}: ${msg}`);
  if (s.hw_memory_failure) {
    info('disabled after HW memory failure');
    return -Errno.EOPNOTSUPP;
  }
  if (is_huge_zero_pfn(kernel, folio)) {
    info('huge zero page is not supported');
    return -Errno.EOPNOTSUPP;
  }
  if (!PageHWPoison(store, p)) {
    info('page was already unpoisoned');
    return ret;
  }
  if (store._refcount[store.idx(folio)] > 1) {
    info('someone grabs the hwpoison page');
    return ret;
  }
  if (folio_test_slab(store, folio) || folio_test_pgtable(store, folio) || folio_test_reserved(store, folio) || folio_test_offline(store, folio)) return ret;
  if (folio_mapped(store, folio)) {
    info('someone maps the hwpoison page');
    return ret;
  }
  if (folio_address_space(store, folio) !== undefined) {
    info('the hwpoison page has non-NULL mapping');
    return ret;
  }
  const ghp = get_hwpoison_page(kernel, p, MF_UNPOISON);
  if (!ghp) {
    if (folio_test_hugetlb(store, folio)) {
      huge = true;
      const raw = s.raw_hwp.get(folio);
      if (raw === undefined || raw.size === 0) return ret;
      num_poisoned_pages_sub(kernel, raw.size);
      s.raw_hwp.delete(folio);
    }
    ret = TestClearPageHWPoison(store, folio) ? 0 : -Errno.EBUSY;
  } else if (ghp < 0) {
    if (ghp === -Errno.EHWPOISON) {
      ret = kernel.page_alloc.put_page_back_buddy(p) ? 0 : -Errno.EBUSY;
    } else {
      ret = ghp;
      info('failed to grab page');
    }
  } else {
    if (folio_test_hugetlb(store, folio)) {
      huge = true;
      const raw = s.raw_hwp.get(folio);
      if (raw === undefined || raw.size === 0) {
        folio_put(store, folio);
        return ret;
      }
      num_poisoned_pages_sub(kernel, raw.size);
      s.raw_hwp.delete(folio);
    }
    folio_put(store, folio);
    if (TestClearPageHWPoison(store, p)) {
      folio_put(store, folio);
      ret = 0;
    }
  }
  if (!ret) {
    if (!huge) num_poisoned_pages_sub(kernel, 1);
    info('software-unpoisoned page');
  }
  return ret;
}

const SOFT_OFFLINE_PREFIX = 'Soft offline: ';

/** mf_isolate_folio(): isolate an in-use folio for migration, dropping get_any_page()'s reference. */
function mf_isolate_folio(kernel: Kernel, folio: Folio, pagelist: Folio[]): boolean {
  const store = kernel.store;
  const isolated = !folio_test_hugetlb(store, folio) && folio_isolate_lru(store, folio);
  if (isolated) pagelist.push(folio);
  folio_put(store, folio);
  return isolated;
}

/**
 * soft_offline_in_use_page(): a clean unmapped page-cache page is invalidated; anything else is
 * migrated away (migrate.ts), and the old page then poisoned and held.
 */
function soft_offline_in_use_page(kernel: Kernel, page: number): number {
  const store = kernel.store;
  const pfn = page;
  let folio = page_folio(store, page);
  const huge = folio_test_hugetlb(store, folio);
  const msg = huge ? 'hugepage' : 'page';
  if (!huge && folio_test_large(store, folio)) {
    /* try_to_split_thp_page(): the simulator does not split folios */
    pr_info(kernel, `${SOFT_OFFLINE_PREFIX}${hex_lx(pfn)}: thp split failed`);
    put_page(store, page);
    return -Errno.EBUSY;
  }
  folio = page_folio(store, page);
  folio_lock(store, folio);
  if (PageHWPoison(store, page)) {
    folio_unlock(store, folio);
    folio_put(store, folio);
    pr_info(kernel, `${SOFT_OFFLINE_PREFIX}${hex_lx(pfn)}: page already poisoned`);
    return 0;
  }
  let ret = 0;
  if (!huge && folio_test_lru(store, folio) && !folio_test_swapcache(store, folio)) {
    /* Try to invalidate first. This should work for non dirty unmapped page cache pages. */
    ret = mapping_evict_folio(kernel, folio);
  }
  folio_unlock(store, folio);
  if (ret) {
    pr_info(kernel, `${SOFT_OFFLINE_PREFIX}${hex_lx(pfn)}: invalidated`);
    page_handle_poison(kernel, page, false, true);
    return 0;
  }
  const pagelist: Folio[] = [];
  if (mf_isolate_folio(kernel, folio, pagelist)) {
    const mtc = { nid: -1, gfp_mask: GFP_USER | __GFP_MOVABLE | __GFP_RETRY_MAYFAIL, reason: MR_MEMORY_FAILURE };
    ret = migrate_pages(kernel, pagelist, (src) => alloc_migration_target(kernel, src, mtc), undefined, MIGRATE_SYNC, MR_MEMORY_FAILURE);
    if (!ret) {
      if (!page_handle_poison(kernel, page, huge, !huge)) ret = -Errno.EBUSY;
    } else {
      if (pagelist.length !== 0) putback_movable_pages(kernel, pagelist);
      pr_info(kernel, `${SOFT_OFFLINE_PREFIX}${hex_lx(pfn)}: ${msg} migration failed ${ret}, type ${store.flags[store.idx(page)].toString(16)}`);
      if (ret > 0) ret = -Errno.EBUSY;
    }
  } else {
    pr_info(kernel, `${SOFT_OFFLINE_PREFIX}${hex_lx(pfn)}: ${msg} isolation failed, page count ${page_count(store, page)}`);
    ret = -Errno.EBUSY;
  }
  return ret;
}

/**
 * soft_offline_page(): take a page that had corrected errors out of use without losing data: a
 * free page is taken off the buddy lists, an in-use one migrated (or invalidated). -ENXIO for an
 * invalid pfn, -EOPNOTSUPP when vm.enable_soft_offline is 0, -EBUSY when it cannot be done; 0 for
 * a page already poisoned.
 */
export function soft_offline_page(kernel: Kernel, pfn: number, flags: number): number {
  const store = kernel.store;
  if (!Number.isSafeInteger(pfn) || !store.pfn_valid(pfn)) {
    kernel.warn.WARN_ON_ONCE((flags & MF_COUNT_INCREASED) !== 0, 'soft_offline_page');
    return -Errno.ENXIO;
  }
  const page = pfn;
  const put_ref_page = (): void => {
    if (flags & MF_COUNT_INCREASED) put_page(store, page);
  };
  if (!mf(kernel).sysctl.enable_soft_offline) {
    pr_info(kernel, `${SOFT_OFFLINE_PREFIX}disabled by /proc/sys/vm/enable_soft_offline`);
    put_ref_page();
    return -Errno.EOPNOTSUPP;
  }
  if (PageHWPoison(store, page)) {
    pr_info(kernel, `${SOFT_OFFLINE_PREFIX}${hex_lx(pfn)}: page already poisoned`);
    put_ref_page();
    return 0;
  }
  let try_again = true;
  for (;;) {
    let ret = get_hwpoison_page(kernel, page, flags | MF_SOFT_OFFLINE);
    if (ret > 0) {
      ret = soft_offline_in_use_page(kernel, page);
    } else if (ret === 0) {
      if (!page_handle_poison(kernel, page, true, false)) {
        if (try_again) {
          try_again = false;
          flags &= ~MF_COUNT_INCREASED;
          continue;
        }
        ret = -Errno.EBUSY;
      }
    }
    return ret;
  }
}

/*
 * The entry points' seams. MADV_HWPOISON / MADV_SOFT_OFFLINE (madvise.ts) reach them only when
 * vm_sysctl(kernel).memory_failure says the host kernel has CONFIG_MEMORY_FAILURE; a consumed
 * poisoned line reaches memory_failure() through the machine-check handler (fault.ts); reclaim
 * unmaps a poisoned folio it finds on the LRU (vmscan.ts).
 */
memory_failure_hooks.memory_failure = memory_failure;
memory_failure_hooks.soft_offline_page = soft_offline_page;
x86_mce_hooks.memory_failure = memory_failure;
mf_hooks.unmap_poisoned_folio = unmap_poisoned_folio;
