/**
 * The content modes of the in-place conversion RFCs, x86 side (arch/x86/kvm/x86.c of RFC v4
 * 14/44 "KVM: x86: Add support for applying content modes" and RFC v5's rework): which modes a VM
 * type supports and what applying one does. Like the kernel, the answer is per VM type (the arch
 * code switches on kvm->arch.vm_type); the vendor tables are not asked.
 *
 * RFC v4 (2026-03-26): SW_PROTECTED supports ZERO and PRESERVE, SNP and TDX only ZERO, zeroed by
 * KVM ("suppose a shared page with contents was converted to private, and then converted back
 * without ever being mapped into Secure-EPTs: guest_memfd can't rely on TDX firmware").
 * RFC v5 (2026-04-28): SNP and TDX also support PRESERVE, but only converting to private before
 * the VM is finalized (!kvm->arch.pre_fault_allowed), which populate in place needs.
 * UNSPECIFIED scrambles SW_PROTECTED memory with random bytes, "so test behavior will differ from
 * that of PRESERVE"; the other types leave the bytes to their firmware.
 */
import { Errno, PAGE_SIZE, type Pfn } from '@cocosim/core';
import { folio_test_hwpoison, type Inode } from '@cocosim/mm';
import type { Kvm } from '../../kvm_host.js';
import { GMEM_I } from '../../guest_memfd.js';
import { KVM_X86_SNP_VM, KVM_X86_SW_PROTECTED_VM, KVM_X86_TDX_VM } from '../../uapi.js';
import { KVM_SET_MEMORY_ATTRIBUTES2_PRESERVE, KVM_SET_MEMORY_ATTRIBUTES2_ZERO } from './uapi.js';
import { for_each_gmem_folio } from './guest_memfd.js';

/** Which RFC's content modes a platform runs. */
export type ContentModesVersion = 'rfc-v4' | 'rfc-v5';

/**
 * kvm_arch_gmem_supported_content_modes(): the modes a conversion of `kvm`'s memory towards
 * `to_private` may ask for, or (for_cap) those KVM_CAP_MEMORY_ATTRIBUTES2_FLAGS reports. `kvm`
 * undefined is /dev/kvm: RFC v5 answers ZERO | PRESERVE (RFC v4 had only the VM-fd answer; the
 * simulator gives /dev/kvm v5's there too).
 */
export function kvm_arch_gmem_supported_content_modes(version: ContentModesVersion, kvm: Kvm | undefined, to_private: boolean, for_cap: boolean): number {
  if (kvm === undefined) return KVM_SET_MEMORY_ATTRIBUTES2_ZERO | KVM_SET_MEMORY_ATTRIBUTES2_PRESERVE;
  switch (kvm.arch.vm_type) {
    case KVM_X86_SW_PROTECTED_VM:
      return KVM_SET_MEMORY_ATTRIBUTES2_ZERO | KVM_SET_MEMORY_ATTRIBUTES2_PRESERVE;
    case KVM_X86_SNP_VM:
    case KVM_X86_TDX_VM: {
      let supported = KVM_SET_MEMORY_ATTRIBUTES2_ZERO;
      // v5: "For TDX and SNP, content preservation is only supported before the VM is finalized,
      // and only on conversion to private."
      if (version === 'rfc-v5' && (for_cap || (to_private && !kvm.arch.pre_fault_allowed))) supported |= KVM_SET_MEMORY_ATTRIBUTES2_PRESERVE;
      return supported;
    }
    default:
      return 0;
  }
}

/**
 * kvm_gmem_apply_content_mode_zero() (virt/kvm/guest_memfd.c of the RFCs): zero every allocated
 * page of file pages [start, end); the pages not allocated read as zeros when they are.
 */
export function kvm_gmem_apply_content_mode_zero(inode: Inode, start: number, end: number): number {
  const kernel = GMEM_I(inode).kernel;
  const store = kernel.store;
  let nr = 0;
  for_each_gmem_folio(inode, start, end, (folio, first, last) => {
    const pfn = folio + (first - store.index[store.idx(folio)]);
    for (let i = 0; i < last - first; i++) kernel.phys.clear((pfn + i) as Pfn);
    nr += last - first;
    return 0;
  });
  kernel.cost.charge('page_zero_4k', nr);
  return 0;
}

/** kvm_arch_gmem_apply_content_mode_zero(): KVM zeroes SW_PROTECTED, SNP and TDX memory. */
export function kvm_arch_gmem_apply_content_mode_zero(kvm: Kvm, inode: Inode, start: number, end: number): number {
  switch (kvm.arch.vm_type) {
    case KVM_X86_SW_PROTECTED_VM:
    case KVM_X86_SNP_VM:
    case KVM_X86_TDX_VM:
      return kvm_gmem_apply_content_mode_zero(inode, start, end);
    default:
      kvm.kernel.warn.WARN_ON_ONCE(true, 'kvm_arch_gmem_apply_content_mode_zero', 'Unexpected request to zero for vm_type.');
      return -Errno.EOPNOTSUPP;
  }
}

/**
 * kvm_arch_gmem_apply_content_mode_preserve(): SW_PROTECTED memory keeps its bytes (nothing
 * encrypts it); in RFC v5 SNP and TDX do nothing either (their launch flow measures in place).
 */
export function kvm_arch_gmem_apply_content_mode_preserve(version: ContentModesVersion, kvm: Kvm): number {
  if (kvm.arch.vm_type === KVM_X86_SW_PROTECTED_VM || version === 'rfc-v5') return 0;
  kvm.kernel.warn.WARN_ON_ONCE(true, 'kvm_arch_gmem_apply_content_mode_preserve', 'Unexpected request to preserve for vm_type.');
  return -Errno.EOPNOTSUPP;
}

/**
 * kvm_arch_gmem_apply_content_mode_unspecified(): __scramble_range() for SW_PROTECTED, every
 * allocated page of [start, end) filled with random bytes (-EHWPOISON at a poisoned folio);
 * nothing for the other types.
 */
export function kvm_arch_gmem_apply_content_mode_unspecified(kvm: Kvm, inode: Inode, start: number, end: number): number {
  if (kvm.arch.vm_type !== KVM_X86_SW_PROTECTED_VM) return 0;
  const kernel = kvm.kernel;
  const store = kernel.store;
  return for_each_gmem_folio(inode, start, end, (folio, first, last) => {
    if (folio_test_hwpoison(store, folio)) return -Errno.EHWPOISON;
    const pfn = folio + (first - store.index[store.idx(folio)]);
    for (let i = 0; i < last - first; i++) kernel.phys.write((pfn + i) as Pfn, 0, kernel.rng.bytes(PAGE_SIZE));
    return 0;
  });
}
