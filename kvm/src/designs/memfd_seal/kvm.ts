/**
 * The KVM half of the fd-based series (virt/kvm/kvm_main.c, virt/kvm/memfile.c of v3-v6; the
 * memslot part is shared by D5, D6 and D7): a memslot with KVM_MEM_PRIVATE holds both halves of
 * its guest memory, the shared one at userspace_addr and the private one in a file at an offset
 * (struct kvm_userspace_memory_region_ext), and a guest page is served from the file when it is
 * private. For D5/D6 the file is the source of truth: "A page is private only when it's already
 * allocated in the backing store fd, all the other cases it's treated as shared"; conversion is
 * fallocate() (to private) and FALLOCATE_PUNCH_HOLE (to shared), and the store's notifier zaps
 * the guest mappings of the other kind.
 *
 * Rebased on 6.18: a KVM_MEM_PRIVATE slot is created through the base's memslot code, where the
 * flag is KVM_MEM_GUEST_MEMFD's bit and the file is bound by kvm_gmem_bind(), which hands a file
 * of a registered backing store to it (kvm_hooks.ts KvmPrivateStore). Hence the base's rules for
 * such slots apply (no dirty logging, no READONLY, immutable), and a private_fd that is not open
 * is -EBADF (the series' fget() failure was -EINVAL).
 *
 * The vendor's part of a private page (SNP's RMP; TDX and CCA map private pages through the
 * mirror root's external SPTEs, which the MMU does for any private pfn): the store's pfn is
 * prepared on the private fault path (kvm_private_mem_prepare(): kvm_arch_gmem_prepare(), SNP's
 * RMPUPDATE to assigned), and pages leaving the store go back to the hypervisor first
 * (kvm_arch_invalidate_restricted_mem(): kvm_arch_gmem_invalidate()), from the store's
 * invalidation notifier and when the memslot unbinds, as the SNP host series on the fd-based
 * stores did (Michael Roth, "Add AMD Secure Nested Paging (SEV-SNP) Hypervisor Support" RFC v8,
 * 20230220183847.59159-1-michael.roth@amd.com, 03/56 and 50/56).
 */
import { Errno, PAGE_SHIFT, type Gpa, type Hva } from '@cocosim/core';
import {
  FolioBatch, filemap_get_folios, folio_batch_count, folio_batch_release, folio_nr_pages, pr_warn, type AddressSpace, type File,
  type FileOwner, type Inode,
} from '@cocosim/mm';
import {
  KVM_FILTER_PRIVATE, KVM_FILTER_SHARED, KVM_USER_MEM_SLOTS, kvm_arch_has_private_mem, type Kvm, type KvmGfnRange, type KvmMemorySlot,
} from '../../kvm_host.js';
import { ENOIOCTLCMD, KVM_HOOK_DEFAULT, type KvmPrivateStore } from '../../kvm_hooks.js';
import { gfn_to_memslot, kvm_set_memory_region, user_struct_field } from '../../kvm_memslots.js';
import { kvm_flush_remote_tlbs, kvm_mmu_invalidate_begin, kvm_mmu_invalidate_end, kvm_mmu_unmap_gfn_range } from '../../mmu/mmu.js';
import { KVM_SET_USER_MEMORY_REGION } from '../../uapi.js';
import { KVM_MEM_PRIVATE } from './uapi.js';
import { memfile_register_notifier, memfile_unregister_notifier, shmem_get_lock_pfn, type MemfileNotifier, type MemfileNotifierOps } from './memfile_notifier.js';

/** The names of the private half's fields in struct kvm_userspace_memory_region_ext. */
export interface PrivateFdAbi {
  /** private_fd (v3-v7) or restricted_fd (v9-v10). */
  readonly fd: string;
  /** private_offset or restricted_offset. */
  readonly offset: string;
}

export const MEMFILE_ABI: PrivateFdAbi = { fd: 'private_fd', offset: 'private_offset' };

/**
 * The KVM_SET_USER_MEMORY_REGION case of the series' kvm_vm_ioctl(): get_user() of flags
 * (-EFAULT), then with KVM_MEM_PRIVATE the copy of struct kvm_userspace_memory_region_ext
 * (-EFAULT), (u16)slot beyond the user slots (-EINVAL), check_memory_region_flags() refusing
 * KVM_MEM_PRIVATE on a VM without private memory (-EINVAL), then __kvm_set_memory_region().
 * @returns -ENOIOCTLCMD for any other request or a region without KVM_MEM_PRIVATE (the base's)
 */
export function kvm_vm_ioctl_set_private_memory_region(kvm: Kvm, cmd: number, arg: unknown, current: FileOwner, abi: PrivateFdAbi): number {
  if (cmd !== KVM_SET_USER_MEMORY_REGION || typeof arg !== 'object' || arg === null) return -ENOIOCTLCMD;
  const o = arg as Record<string, unknown>;
  const flags = user_struct_field(o, 'flags', 32);
  if (flags === undefined || !(Number(flags) & KVM_MEM_PRIVATE)) return -ENOIOCTLCMD;
  const slot = user_struct_field(o, 'slot', 32);
  const guest_phys_addr = user_struct_field(o, 'guest_phys_addr', 64);
  const memory_size = user_struct_field(o, 'memory_size', 64);
  const userspace_addr = user_struct_field(o, 'userspace_addr', 64);
  const private_offset = user_struct_field(o, abi.offset, 64);
  const private_fd = user_struct_field(o, abi.fd, 32);
  if (slot === undefined || guest_phys_addr === undefined || memory_size === undefined || userspace_addr === undefined ||
    private_offset === undefined || private_fd === undefined) {
    return -Errno.EFAULT;
  }
  if ((Number(slot) & 0xffff) >= KVM_USER_MEM_SLOTS) return -Errno.EINVAL;
  if (!kvm_arch_has_private_mem(kvm)) return -Errno.EINVAL;
  const mem = {
    slot: Number(slot), flags: Number(flags), guest_phys_addr, memory_size, userspace_addr,
    guest_memfd_offset: private_offset, guest_memfd: Number(private_fd),
  };
  const r = kvm_set_memory_region(kvm, mem, current);
  if (r === 0) {
    kvm.kernel.tracer.emit('cocosim_kvm_set_user_memory_region', {
      slot: mem.slot, flags: mem.flags, guest_phys_addr: guest_phys_addr as Gpa, memory_size, userspace_addr: userspace_addr as Hva,
      guest_memfd: mem.guest_memfd, guest_memfd_offset: private_offset,
    });
  }
  return r;
}

/**
 * Zap the guest mappings of `kind` (KVM_FILTER_*) of file pages [start, end) of `slot`, as the
 * series' notifier handlers do (kvm_memfile_invalidate(), kvm_restrictedmem_invalidate_begin()):
 * an MMU invalidation around kvm_mmu_unmap_gfn_range(), and a TLB flush if anything was mapped.
 */
export function kvm_private_slot_invalidate(kvm: Kvm, slot: KvmMemorySlot, start: number, end: number, attr_filter: number): void {
  const pgoff = slot.gmem.pgoff;
  const s = Math.max(pgoff, start);
  const e = Math.min(pgoff + slot.npages, end);
  if (s >= e) return;
  const range: KvmGfnRange = { slot, start: slot.base_gfn + s - pgoff, end: slot.base_gfn + e - pgoff, may_block: true, attr_filter };
  kvm_mmu_invalidate_begin(kvm);
  if (kvm_mmu_unmap_gfn_range(kvm, range)) kvm_flush_remote_tlbs(kvm);
  kvm_mmu_invalidate_end(kvm);
}

/**
 * The private fault path's preparation of the pfn a backing store gave for `gfn`:
 * kvm_arch_gmem_prepare() (kvm_x86_ops.gmem_prepare; SNP: RMPUPDATE to assigned, nothing for a
 * page already assigned), as __kvm_gmem_prepare_folio() does for guest_memfd. SNP RFC v7/v8 made
 * the RMP entries private when the attributes changed (sev_update_mem_attr(), v7 55/64,
 * 20221214194056.161492-56-michael.roth@amd.com), allocating the pages there; its guest_memfd
 * successor (sev_gmem_prepare()) does it when the guest faults the page, which also covers D5/D6,
 * whose conversion is no attribute change. Either way the page is assigned before the guest's
 * PVALIDATE completes. An error is reported and returned (the fault fails).
 */
export function kvm_private_mem_prepare(kvm: Kvm, gfn: number, got: { pfn: number; max_order: number } | number): { pfn: number; max_order: number } | number {
  if (typeof got === 'number') return got;
  const rc = kvm.x86_ops.gmem_prepare(kvm, got.pfn, gfn, got.max_order);
  if (rc) {
    pr_warn(kvm.kernel, `private mem: Failed to prepare GFN ${gfn.toString(16)} PFN ${got.pfn.toString(16)} error ${rc}.`);
    return rc;
  }
  return got;
}

/**
 * kvm_arch_invalidate_restricted_mem() (SNP RFC v8 03/56, 20230220183847.59159-4-michael.roth@amd.com:
 * kvm_x86_ops.invalidate_restricted_mem, SNP's sev_invalidate_private_range() of 50/56,
 * 20230220183847.59159-51-michael.roth@amd.com): file pages [start, end) of `slot`'s store
 * (`mapping`) are leaving it, so each of its pages goes back to the hypervisor first, here through
 * the vendor's kvm_arch_gmem_invalidate() (SNP: PSMASH where needed, RMPUPDATE to shared, cache
 * flush; nothing for a page not assigned). v8 looked each gfn up with kvm_restrictedmem_get_pfn(),
 * which allocates a hole only to return it at once; the page cache walk here skips holes, with the
 * same RMP at the end.
 */
export function kvm_arch_invalidate_restricted_mem(kvm: Kvm, slot: KvmMemorySlot, mapping: AddressSpace, start: number, end: number): void {
  const pgoff = slot.gmem.pgoff;
  const s = Math.max(pgoff, start);
  const e = Math.min(pgoff + slot.npages, end);
  if (s >= e) return;
  const kernel = kvm.kernel;
  const store = kernel.store;
  const fbatch = new FolioBatch();
  const next = { index: s };
  while (next.index < e && filemap_get_folios(kernel, mapping, next, e - 1, fbatch)) {
    for (let i = 0; i < folio_batch_count(fbatch); i++) {
      const folio = fbatch.folios[i]!;
      const index = store.index[store.idx(folio)];
      const first = Math.max(s, index);
      const last = Math.min(e, index + folio_nr_pages(store, folio));
      const pfn = folio + (first - index);
      kvm.x86_ops.gmem_invalidate(kvm, pfn, pfn + last - first);
    }
    folio_batch_release(store, fbatch);
  }
}

/** A memslot bound to a memfile backing store: its notifier. */
class KvmMemfileBinding implements MemfileNotifier {
  readonly ops: MemfileNotifierOps;

  constructor(readonly kvm: Kvm, readonly slot: KvmMemorySlot, readonly inode: Inode) {
    this.ops = {
      // Freed private pages: zap the private mappings, then give the pages back to the
      // hypervisor before the punch frees them. Allocated pages became private: zap the shared
      // mappings of them (they were served from userspace_addr).
      invalidate: (start: number, end: number) => {
        kvm_private_slot_invalidate(kvm, slot, start, end, KVM_FILTER_PRIVATE);
        kvm_arch_invalidate_restricted_mem(kvm, slot, inode.i_mapping, start, end);
      },
      fallocate: (start: number, end: number) => kvm_private_slot_invalidate(kvm, slot, start, end, KVM_FILTER_SHARED),
    };
  }
}

const memfile_bindings = new WeakMap<KvmMemorySlot, KvmMemfileBinding>();

/**
 * kvm_memfile_register() / kvm_memfile_unregister() / kvm_private_mem_get_pfn() (v4/v5): the KVM
 * side of a memfile backing store (D5, D6). The slot holds a reference on the file while bound;
 * the pfn is prepared by the vendor, and unbinding gives the slot's pages back to it.
 */
export const kvm_memfile_store: KvmPrivateStore = {
  bind(kvm: Kvm, slot: KvmMemorySlot, file: File, offset: bigint): number {
    const loff = BigInt.asIntN(64, offset);
    if (loff < 0n) return -Errno.EINVAL;
    slot.gmem.file = file.get_file();
    slot.gmem.pgoff = Number(loff >> BigInt(PAGE_SHIFT));
    const b = new KvmMemfileBinding(kvm, slot, file.f_inode);
    memfile_bindings.set(slot, b);
    memfile_register_notifier(file.f_inode, b);
    return 0;
  },
  unbind(slot: KvmMemorySlot): void {
    const b = memfile_bindings.get(slot);
    const file = slot.gmem.file;
    if (b === undefined || file === null) return;
    // The slot's SPTEs went with the memslot; its pages go back to the hypervisor before the
    // file can free them (SNP RFC v8 03/56 did this in restrictedmem_unbind()).
    kvm_arch_invalidate_restricted_mem(b.kvm, slot, b.inode.i_mapping, slot.gmem.pgoff, slot.gmem.pgoff + slot.npages);
    memfile_unregister_notifier(b.inode, b);
    memfile_bindings.delete(slot);
    slot.gmem.file = null;
    file.fput();
  },
  get_pfn(kvm: Kvm, slot: KvmMemorySlot, gfn: number) {
    const file = slot.gmem.file;
    if (file === null) return -Errno.EFAULT;
    return kvm_private_mem_prepare(kvm, gfn, shmem_get_lock_pfn(file.f_inode, gfn - slot.base_gfn + slot.gmem.pgoff, kvm.kernel.store));
  },
};

/**
 * kvm_mem_is_private() of D5/D6: a gfn of a KVM_MEM_PRIVATE slot is private when its page is
 * allocated in the slot's file; other gfns are left to the base.
 */
export function kvm_memfile_mem_is_private(kvm: Kvm, gfn: number): number {
  const slot = gfn_to_memslot(kvm, gfn);
  if (slot === undefined) return KVM_HOOK_DEFAULT;
  const b = memfile_bindings.get(slot);
  if (b === undefined) return KVM_HOOK_DEFAULT;
  return b.inode.i_mapping.i_pages.xa_load(gfn - slot.base_gfn + slot.gmem.pgoff) === undefined ? 0 : 1;
}
