/**
 * The scenario catalog of designs.md §2 (S1..S27), one file per scenario named after it. Each
 * runs on every platform that can host a confidential VM (cvm_scenario.ts) and states the
 * outcome designs.md gives for each design.
 */
import type { Scenario } from '../scenario.js';
import { s01VmmStorePrivate } from './s01_vmm_store_private.js';
import { s02VmmLoadPrivate } from './s02_vmm_load_private.js';
import { s03VmmUaccessPrivate } from './s03_vmm_uaccess_private.js';
import { s04GupPrivate } from './s04_gup_private.js';
import { s05PopulateThenPrivate } from './s05_populate_then_private.js';
import { s06SplitHuge } from './s06_split_huge.js';
import { s07DmaPrivate } from './s07_dma_private.js';
import { s08ConvertPinned } from './s08_convert_pinned.js';
import { s09ReclaimPrivate } from './s09_reclaim_private.js';
import { s10NumaPrivate } from './s10_numa_private.js';
import { s11CompactionPrivate } from './s11_compaction_private.js';
import { s12SecondVm } from './s12_second_vm.js';
import { s13PfnBoth } from './s13_pfn_both.js';
import { s14PingPong } from './s14_ping_pong.js';
import { s15BigAndScattered } from './s15_big_and_scattered.js';
import { s16DoubleAllocation } from './s16_double_allocation.js';
import { s17McePrivate } from './s17_mce_private.js';
import { s18Teardown } from './s18_teardown.js';
import { s19LiveMigration } from './s19_live_migration.js';
import { s20KvmReadsPrivate } from './s20_kvm_reads_private.js';
import { s21ReadAfterShare } from './s21_read_after_share.js';
import { s22KernelDirectMap } from './s22_kernel_direct_map.js';
import { s23VmmFork } from './s23_vmm_fork.js';
import { s24PunchPrivate } from './s24_punch_private.js';
import { s25KsmZeroPage } from './s25_ksm_zero_page.js';
import { s26Accounting } from './s26_accounting.js';
import { s27SecondProcess } from './s27_second_process.js';

/** The catalog in designs.md order. */
export const CATALOG: readonly Scenario[] = [
  s01VmmStorePrivate,
  s02VmmLoadPrivate,
  s03VmmUaccessPrivate,
  s04GupPrivate,
  s05PopulateThenPrivate,
  s06SplitHuge,
  s07DmaPrivate,
  s08ConvertPinned,
  s09ReclaimPrivate,
  s10NumaPrivate,
  s11CompactionPrivate,
  s12SecondVm,
  s13PfnBoth,
  s14PingPong,
  s15BigAndScattered,
  s16DoubleAllocation,
  s17McePrivate,
  s18Teardown,
  s19LiveMigration,
  s20KvmReadsPrivate,
  s21ReadAfterShare,
  s22KernelDirectMap,
  s23VmmFork,
  s24PunchPrivate,
  s25KsmZeroPage,
  s26Accounting,
  s27SecondProcess,
];
