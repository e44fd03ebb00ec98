/**
 * The arch/x86/kvm/x86.c part of RFCv2 13/13 (20210416154106.23721-14-kirill.shutemov@linux.intel.com;
 * designs.md D2): kvm_emulate_hypercall() handles the guest's two hypercalls inside KVM, without
 * an exit to the VMM.
 */
import type { Kvm, KvmVcpu } from '../../kvm_host.js';
import { kvm_arch_flush_shadow_all } from '../../mmu/mmu.js';
import { ENOIOCTLCMD } from '../../kvm_hooks.js';
import { KVM_E2BIG, KVM_EINVAL } from '../../x86.js';
import { kvm_mem_protected, kvm_share_pfn } from './kvm_main.js';
import { add_range_with_merge } from './range.js';
import { KVM_HC_ENABLE_MEM_PROTECTED, KVM_HC_MEM_SHARE, KVM_NR_SHARED_RANGES } from './uapi.js';

/**
 * kvm_protect_memory(): under mmap_write_lock(kvm->mm), kvm->mem_protected = true and every
 * SPTE goes (kvm_arch_flush_shadow_all()), so that each page is faulted again, and poisoned, on
 * the guest's next access. Enabling twice changes nothing more.
 */
export function kvm_protect_memory(kvm: Kvm): number {
  kvm_mem_protected(kvm).mem_protected = true;
  kvm_arch_flush_shadow_all(kvm);
  return 0;
}

/**
 * kvm_share_memory(): KVM_HC_MEM_SHARE(gfn, npages): the range joins kvm->shared_ranges
 * (add_range_with_merge() under mmu_lock) and each page KVM poisoned in it is unpoisoned
 * (gfn_to_page() + kvm_share_pfn()). Pages the guest never touched were never poisoned. There is
 * no reverse hypercall: the ranges only grow.
 * An empty or wrapping range is -KVM_EINVAL, and a 33rd range that merges with none hits the
 * RFC's WARN_ON_ONCE and is -KVM_E2BIG with nothing shared: which value the guest got there is
 * not in designs.md; these two results are cocosim's.
 */
export function kvm_share_memory(kvm: Kvm, gfn: bigint, npages: bigint): number {
  const end = gfn + npages;
  if (npages === 0n || end > 2n ** 52n) return -KVM_EINVAL;
  const s = kvm_mem_protected(kvm);
  const start = Number(gfn);
  const stop = Number(end);
  const merged = s.shared_ranges.map((r) => ({ ...r }));
  const nr = add_range_with_merge(merged, KVM_NR_SHARED_RANGES, s.nr_shared_ranges, start, stop);
  const added = merged.slice(0, nr).some((r) => r.start <= start && r.end >= stop);
  if (kvm.kernel.warn.WARN_ON_ONCE(!added, 'kvm_share_memory', 'WARN_ON_ONCE: kvm->shared_ranges full')) return -KVM_E2BIG;
  s.shared_ranges.length = 0;
  s.shared_ranges.push(...merged.slice(0, nr));
  s.nr_shared_ranges = nr;
  // gfn_to_page() per page of the range, or the pages KVM poisoned when they are fewer.
  if (stop - start <= s.protected_gfns.size) {
    for (let g = start; g < stop; g++) {
      const pfn = s.protected_gfns.get(g);
      if (pfn === undefined) continue;
      kvm_share_pfn(kvm, pfn);
      s.protected_gfns.delete(g);
    }
  } else {
    for (const [g, pfn] of s.protected_gfns) {
      if (g < start || g >= stop) continue;
      kvm_share_pfn(kvm, pfn);
      s.protected_gfns.delete(g);
    }
  }
  return 0;
}

/**
 * kvm_emulate_hypercall()'s cases of the series: the guest's result, or -ENOIOCTLCMD for the
 * base's (every other hypercall).
 */
export function kvm_hwpoison_emulate_hypercall(vcpu: KvmVcpu, nr: bigint, a0: bigint, a1: bigint): number {
  if (nr === BigInt(KVM_HC_ENABLE_MEM_PROTECTED)) return kvm_protect_memory(vcpu.kvm);
  if (nr === BigInt(KVM_HC_MEM_SHARE)) return kvm_share_memory(vcpu.kvm, a0, a1);
  return -ENOIOCTLCMD;
}
