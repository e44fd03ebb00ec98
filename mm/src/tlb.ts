/**
 * User TLB flushes (arch/x86/mm/tlb.c): what zapping PTEs, removing write permission or
 * replacing a PTE costs in TLB maintenance.
 *
 * A simulated process runs on one CPU and its mm is active on no other (mm_cpumask has that CPU
 * only), so every flush is local: flush_tlb_func() on this CPU, never an IPI. That is
 * `tlb_flush_local` once per flush request, and the tlb_flush tracepoint with the reason the
 * kernel gives a local flush of an mm (TLB_LOCAL_MM_SHOOTDOWN) and the pages it invalidates one
 * by one, or TLB_FLUSH_ALL (-1) past tlb_single_page_flush_ceiling. When vCPU threads or devices
 * share the mm, their layers add their own shootdowns (tlb_shootdown_ipi, mmu_notifier).
 */
import { costId } from '@cocosim/core';
import type { MmStruct } from './mm_types.js';

const TLB_FLUSH_LOCAL = costId('tlb_flush_local');

/* enum tlb_flush_reason (include/linux/mm_types.h) */
export const TLB_FLUSH_ON_TASK_SWITCH = 0;
export const TLB_REMOTE_SHOOTDOWN = 1;
export const TLB_LOCAL_SHOOTDOWN = 2;
export const TLB_LOCAL_MM_SHOOTDOWN = 3;
export const TLB_REMOTE_SEND_IPI = 4;
/** TLB_FLUSH_ALL as the tracepoint's page count. */
export const TLB_FLUSH_ALL = -1;

/** tlb_single_page_flush_ceiling (arch/x86/mm/tlb.c): above it, one full flush. */
export const tlb_single_page_flush_ceiling = 33;

/**
 * flush_tlb_mm_range(): invalidate the user translations of pages [start_vpn, end_vpn) of `mm`
 * (stride: pages per entry, 512 for PMD mappings).
 */
export function flush_tlb_mm_range(mm: MmStruct, start_vpn: number, end_vpn: number, stride = 1): void {
  const kernel = mm.kernel;
  const entries = Math.ceil((end_vpn - start_vpn) / stride);
  kernel.cost.chargeId(TLB_FLUSH_LOCAL);
  if (kernel.tracer.enabled('tlb_flush')) {
    kernel.tracer.emit('tlb_flush', {
      reason: TLB_LOCAL_MM_SHOOTDOWN,
      pages: entries > tlb_single_page_flush_ceiling ? TLB_FLUSH_ALL : end_vpn - start_vpn,
    });
  }
}

/** flush_tlb_page(): one page. */
export function flush_tlb_page(mm: MmStruct, vpn: number): void {
  flush_tlb_mm_range(mm, vpn, vpn + 1);
}
