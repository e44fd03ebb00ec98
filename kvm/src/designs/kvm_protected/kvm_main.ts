/**
 * virt/kvm/kvm_main.c of "[RFC 09/16] KVM: Protected memory extension" (Kirill A. Shutemov,
 * 22 May 2020, https://lore.kernel.org/all/20200522125214.31348-10-kirill.shutemov@linux.intel.com/,
 * carried into RFCv2, https://lore.kernel.org/all/20201020061859.18385-1-kirill.shutemov@linux.intel.com/):
 * KVM changes the VMAs behind the memslots itself, with mprotect_fixup() on the VMM's mm
 * (protect_memory()), for the whole guest when it enables protection and per range when it
 * shares or unshares; a memslot added once the VM is protected is protected as it is created
 * (__kvm_set_memory_region()). hva_to_pfn_slow() passes FOLL_KVM ("[RFCv2 09/16]").
 */
import { Errno } from '@cocosim/core';
import { find_vma, mprotect_fixup, vm_flags_andnot, vm_flags_or, type FileOwner, type MmStruct } from '@cocosim/mm';
import { kvm_memslots, memslot_end_gfn, type Kvm } from '../../kvm_host.js';
import { ENOIOCTLCMD } from '../../kvm_hooks.js';
import { gfn_to_memslot, kvm_vm_ioctl_set_memory_region } from '../../kvm_memslots.js';
import { KVM_SET_USER_MEMORY_REGION, KVM_SET_USER_MEMORY_REGION2 } from '../../uapi.js';
import { VM_KVM_PROTECTED } from './uapi.js';

const PAGE = 4096n;

/** kvm->mem_protected, which the series added to struct kvm. */
const mem_protected = new WeakSet<Kvm>();

/** kvm->mem_protected: the guest has enabled protection (KVM_HC_ENABLE_MEM_PROTECTED). */
export function kvm_mem_protected(kvm: Kvm): boolean {
  return mem_protected.has(kvm);
}

/**
 * protect_memory(): set (protect) or clear VM_KVM_PROTECTED on the VMAs of bytes [start, end) of
 * `mm` with mprotect_fixup(): -ENOMEM where no VMA is at or after start or the VMAs leave a
 * hole, -EINVAL where the first VMA begins after start, or mprotect_fixup()'s error. VMAs
 * already as asked are skipped ("The VMA has been handled as part of other memslot").
 */
export function protect_memory(mm: MmStruct, start: bigint, end: bigint, protect: boolean): number {
  let s = Number(start / PAGE);
  const e = Number(end / PAGE);
  let vma = find_vma(mm, s);
  if (vma === undefined) return -Errno.ENOMEM;
  if (vma.start_vpn > s) return -Errno.EINVAL;
  for (;;) {
    const tmp = Math.min(vma.end_vpn, e);
    const newflags = protect ? vm_flags_or(vma.vm_flags, VM_KVM_PROTECTED) : vm_flags_andnot(vma.vm_flags, VM_KVM_PROTECTED);
    let done = tmp;
    if (newflags !== vma.vm_flags) {
      const r = mprotect_fixup(vma, s, tmp, newflags);
      if (typeof r === 'number') return r;
      done = Math.max(tmp, r.end_vpn);
    }
    s = done;
    if (s >= e) return 0;
    const next = find_vma(mm, s);
    if (next === undefined || next.start_vpn !== s) return -Errno.ENOMEM;
    vma = next;
  }
}

/**
 * kvm_protect_memory(): [gfn, gfn + npages) of one memslot (KVM_HC_MEM_SHARE: protect false,
 * KVM_HC_MEM_UNSHARE: true). Nothing to do for npages 0 or a gfn without a memslot ("Not backed
 * by memory. It's okay."); -EINVAL, with a warning, for a range past its memslot ("XXX: Share
 * range across memory slots?").
 */
export function kvm_protect_memory(kvm: Kvm, gfn: bigint, npages: bigint, protect: boolean): number {
  if (npages === 0n) return 0;
  const slot = gfn <= BigInt(Number.MAX_SAFE_INTEGER) ? gfn_to_memslot(kvm, Number(gfn)) : undefined;
  if (slot === undefined) return 0;
  const numpages = BigInt(memslot_end_gfn(slot)) - gfn;
  if (kvm.kernel.warn.WARN_ON(numpages < npages, 'kvm_protect_memory: range past its memslot')) return -Errno.EINVAL;
  const start = slot.userspace_addr + (gfn - BigInt(slot.base_gfn)) * PAGE;
  return protect_memory(kvm.mm, start, start + npages * PAGE, protect);
}

/** kvm_protect_all_memory(): kvm->mem_protected = true, then protect every memslot's memory. */
export function kvm_protect_all_memory(kvm: Kvm): number {
  mem_protected.add(kvm);
  for (const slot of kvm_memslots(kvm).id_hash.values()) {
    const ret = protect_memory(kvm.mm, slot.userspace_addr, slot.userspace_addr + BigInt(slot.npages) * PAGE, true);
    if (ret) return ret;
  }
  return 0;
}

/**
 * __kvm_set_memory_region()'s addition (the vm_ioctl hook): once the VM is protected, the memory
 * of a slot it creates or moves is protected too, and protect_memory()'s error is the ioctl's
 * (the slot stays, as in the patch, whose error path only frees the dirty bitmap).
 */
export function kvm_set_memory_region_protected(kvm: Kvm, cmd: number, arg: unknown, current: FileOwner): number {
  if ((cmd !== KVM_SET_USER_MEMORY_REGION && cmd !== KVM_SET_USER_MEMORY_REGION2) || !kvm_mem_protected(kvm)) return -ENOIOCTLCMD;
  const r = kvm_vm_ioctl_set_memory_region(kvm, cmd === KVM_SET_USER_MEMORY_REGION2, arg, current);
  if (r) return r;
  const id = Number((arg as { slot: unknown }).slot);
  const slot = kvm_memslots(kvm, id >>> 16).id_hash.get(id);
  if (slot === undefined) return 0;
  return protect_memory(kvm.mm, slot.userspace_addr, slot.userspace_addr + BigInt(slot.npages) * PAGE, true);
}
