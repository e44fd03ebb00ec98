/**
 * The KVM half of memfd_restricted (virt/kvm/restrictedmem.h, kvm_main.c of v10 and its
 * follow-ups): a KVM_MEM_PRIVATE memslot binds [restricted_offset, + size) of its restricted file
 * exclusively (kvm_restrictedmem_bind() -> restrictedmem_bind(); -EINVAL on an overlap), holds a
 * reference on the file, and serves private guest pages with restrictedmem_get_page(). A punch
 * of the file invalidates the guest's private mappings of the range. Which gfns are private is
 * the VM's KVM_SET_MEMORY_ATTRIBUTES (the base's), new in v10.
 *
 * With the SNP host series on restrictedmem (RFC v8, 20230220183847.59159-1-michael.roth@amd.com):
 * the private fault prepares the page (kvm_private_mem_prepare()), and kvm_restrictedmem_invalidate_begin()
 * gives the punched pages back to the hypervisor after the zap (03/56), as the slot's unbinding
 * does for all of its pages (03/56 issues it from restrictedmem_unbind()).
 */
import { Errno, PAGE_SHIFT } from '@cocosim/core';
import type { File } from '@cocosim/mm';
import { KVM_FILTER_PRIVATE, type Kvm, type KvmMemorySlot } from '../../kvm_host.js';
import type { KvmPrivateStore } from '../../kvm_hooks.js';
import { kvm_arch_invalidate_restricted_mem, kvm_private_mem_prepare, kvm_private_slot_invalidate, type PrivateFdAbi } from '../memfd_seal/kvm.js';
import { restrictedmem, restrictedmem_bind, restrictedmem_get_page, restrictedmem_unbind, type RestrictedmemNotifier } from './restrictedmem.js';

/** v10's memslot fields. */
export const RESTRICTED_ABI: PrivateFdAbi = { fd: 'restricted_fd', offset: 'restricted_offset' };

/** The shmem file holding a restricted file's pages. */
function restrictedmem_mapping(file: File) {
  return restrictedmem(file)!.memfd.f_mapping;
}

/**
 * kvm_restrictedmem_invalidate_begin(): zap the slot's private mappings of the punched range,
 * then kvm_arch_invalidate_restricted_mem() of it (SNP RFC v8 03/56).
 */
function kvm_restrictedmem_notifier(kvm: Kvm, slot: KvmMemorySlot): RestrictedmemNotifier {
  return {
    ops: {
      invalidate_start: (start, end) => {
        kvm_private_slot_invalidate(kvm, slot, start, end, KVM_FILTER_PRIVATE);
        if (slot.gmem.file !== null) kvm_arch_invalidate_restricted_mem(kvm, slot, restrictedmem_mapping(slot.gmem.file), start, end);
      },
      invalidate_end: () => undefined,
    },
  };
}

/**
 * slot->kvm of a bound slot (the simulator's memslot has no back pointer), keyed by the slot's
 * gmem binding, which the copies a memslot update makes share.
 */
const kvm_of_slot = new WeakMap<KvmMemorySlot['gmem'], Kvm>();

/** kvm_restrictedmem_bind() / _unbind() / kvm_restrictedmem_get_pfn(). */
export const kvm_restrictedmem_store: KvmPrivateStore = {
  bind(kvm: Kvm, slot: KvmMemorySlot, file: File, offset: bigint): number {
    const loff = BigInt.asIntN(64, offset);
    if (loff < 0n) return -Errno.EINVAL;
    const start = Number(loff >> BigInt(PAGE_SHIFT));
    const r = restrictedmem_bind(file, start, start + slot.npages - 1, kvm_restrictedmem_notifier(kvm, slot), true);
    if (r) return r;
    slot.gmem.file = file.get_file();
    slot.gmem.pgoff = start;
    kvm_of_slot.set(slot.gmem, kvm);
    return 0;
  },
  unbind(slot: KvmMemorySlot): void {
    const file = slot.gmem.file;
    if (file === null) return;
    // SNP RFC v8 03/56: restrictedmem_unbind() invalidates the bound range through the notifier,
    // whose zap finds nothing left (the memslot's SPTEs are gone); its arch part returns the pages.
    kvm_arch_invalidate_restricted_mem(kvm_of_slot.get(slot.gmem)!, slot, restrictedmem_mapping(file), slot.gmem.pgoff, slot.gmem.pgoff + slot.npages);
    kvm_of_slot.delete(slot.gmem);
    restrictedmem_unbind(file, slot.gmem.pgoff, slot.gmem.pgoff + slot.npages - 1);
    slot.gmem.file = null;
    file.fput();
  },
  get_pfn(kvm: Kvm, slot: KvmMemorySlot, gfn: number) {
    const file = slot.gmem.file;
    if (file === null) return -Errno.EFAULT;
    return kvm_private_mem_prepare(kvm, gfn, restrictedmem_get_page(file, gfn - slot.base_gfn + slot.gmem.pgoff));
  },
};
