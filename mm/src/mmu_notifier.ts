/**
 * MMU notifiers (mm/mmu_notifier.c, include/linux/mmu_notifier.h): secondary MMUs (KVM's
 * stage-2 tables, IOMMU SVA) that mirror an mm's page tables subscribe here and are told before
 * and after PTEs in a range are zapped or lose permissions, so that they drop their copies.
 *
 * The simulator calls the subscribers synchronously in subscription order. The cost of the
 * secondary MMU's work is charged by the subscriber; `mmu_notifier_invalidate` is charged here
 * once per subscriber and invalidation, for the notifier call itself.
 */
import { BUG_ON, costId } from '@cocosim/core';
import type { MmStruct, MmuNotifier } from './mm_types.js';

const MMU_NOTIFIER_INVALIDATE = costId('mmu_notifier_invalidate');

/** mmu_notifier_register(). */
export function mmu_notifier_register(subscription: MmuNotifier, mm: MmStruct): number {
  BUG_ON(mm.notifier_subscriptions.includes(subscription), 'mmu_notifier_register: subscribed twice');
  mm.notifier_subscriptions.push(subscription);
  return 0;
}

/** mmu_notifier_unregister(). */
export function mmu_notifier_unregister(subscription: MmuNotifier, mm: MmStruct): void {
  const i = mm.notifier_subscriptions.indexOf(subscription);
  BUG_ON(i < 0, 'mmu_notifier_unregister: not subscribed');
  mm.notifier_subscriptions.splice(i, 1);
}

/** mmu_notifier_invalidate_range_start() for pages [start_vpn, end_vpn). */
export function mmu_notifier_invalidate_range_start(mm: MmStruct, start_vpn: number, end_vpn: number): void {
  const subs = mm.notifier_subscriptions;
  if (subs.length === 0) return;
  mm.kernel.cost.chargeId(MMU_NOTIFIER_INVALIDATE, subs.length);
  /* each subscriber of the time is told, whoever (un)subscribes meanwhile: one needs no copy */
  if (subs.length === 1) subs[0].invalidate_range_start?.(mm, start_vpn, end_vpn);
  else for (const s of [...subs]) s.invalidate_range_start?.(mm, start_vpn, end_vpn);
}

/** mmu_notifier_invalidate_range_end(). */
export function mmu_notifier_invalidate_range_end(mm: MmStruct, start_vpn: number, end_vpn: number): void {
  const subs = mm.notifier_subscriptions;
  if (subs.length === 0) return;
  if (subs.length === 1) subs[0].invalidate_range_end?.(mm, start_vpn, end_vpn);
  else for (const s of [...subs]) s.invalidate_range_end?.(mm, start_vpn, end_vpn);
}

/** mmu_notifier_release() (__mmu_notifier_release): the mm is being torn down. */
export function mmu_notifier_release(mm: MmStruct): void {
  const subs = [...mm.notifier_subscriptions];
  mm.notifier_subscriptions.length = 0;
  for (const s of subs) s.release?.(mm);
}
