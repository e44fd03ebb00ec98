/**
 * /proc/PID/pagemap (fs/proc/task_mmu.c pagemap_pmd_range()): which pfn backs a user address.
 * Tests and experiments use it the way selftests read pagemap, to see a page move (migration,
 * longterm-pin unshare) or go away (reclaim, zap).
 */
import { PAGE_SIZE, type Pfn } from '@cocosim/core';
import type { MmStruct } from './mm_types.js';
import { pte_present } from './pgtable.js';

const PG = BigInt(PAGE_SIZE);

/** The pfn mapped at `addr` (a present PTE, or a page of a present PMD leaf), or undefined (PM_PRESENT clear). */
export function pagemap_pfn(mm: MmStruct, addr: bigint): Pfn | undefined {
  const vpn = Number(addr / PG);
  const pmd = Math.floor(vpn / 512);
  const t = mm.pgd.ptes.get(pmd);
  if (t !== undefined) return pte_present(t.flags[vpn % 512]!) ? (t.val[vpn % 512] as Pfn) : undefined;
  const e = mm.pgd.pmds.get(pmd);
  return e !== undefined && pte_present(e.flags) ? ((e.val + (vpn % 512)) as Pfn) : undefined;
}
