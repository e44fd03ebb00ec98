/**
 * The KVM half of D4 (virt/kvm/kvm_main.c, arch/x86/kvm/memfd.c and arch/x86/kvm/mmu/mmu.c of
 * Chao Peng's RFC v1, 20211111141352.26311-{3,4,5}-chao.p.peng@linux.intel.com, which codes
 * Sean Christopherson's proposal 20210824005248.200037-1-seanjc@google.com):
 *   - private memory is a separate KVM address space, KVM_PRIVATE_ADDRESS_SPACE (2), "a third
 *     set of memslots, like SMM"; a private slot carries the fd of an enlightened store in the
 *     RFC's `fd` field, `userspace_addr` being the offset into it (there is no host address);
 *   - kvm_register_private_memslot() pairs the slot with the store at KVM_MR_CREATE; private
 *     slots are immutable ("they can only be deleted"), access_ok() is skipped for them;
 *   - a fault looks its slot up in the address space of the access (__kvm_vcpu_gfn_to_memslot(vcpu,
 *     gfn, private)) and a private one asks the store (private_ops->get_lock_pfn);
 *   - a gfn is private where a private memslot covers it: conversion is punching holes in one
 *     address space and creating slots in the other (memslot churn, designs.md S14/S15).
 *
 * Rebased on 6.18: a private slot is a KVM_MEM_GUEST_MEMFD slot of address space 2 whose file is
 * a registered private store (kvm_hooks.ts KvmPrivateStore), so the base's rules for such slots
 * apply (no dirty logging, no READONLY: the RFC allowed a read-only private slot). The RFC's
 * KVM_EXIT_MEMORY_ERROR (36, KVM_EXIT_MEM_MAP_SHARE/PRIVATE) for an access with no slot of its
 * kind is the base's KVM_EXIT_MEMORY_FAULT here (6.18 gave 36 to KVM_EXIT_RISCV_CSR).
 */
import { Errno, PAGE_SHIFT, PAGE_SIZE, type Gpa, type Hva } from '@cocosim/core';
import type { File, FileOwner, Inode } from '@cocosim/mm';
import { KVM_FILTER_PRIVATE, KVM_USER_MEM_SLOTS, KvmMemslots, kvm_arch_has_private_mem, type Kvm, type KvmMemorySlot } from '../../kvm_host.js';
import { ENOIOCTLCMD, KVM_HOOK_DEFAULT, kvm_private_store_register, type KvmHooks, type KvmPrivateStore } from '../../kvm_hooks.js';
import { __gfn_to_memslot, kvm_set_memory_region, kvm_vm_ioctl_set_memory_region, user_struct_field } from '../../kvm_memslots.js';
import {
  KVM_CAP_MEMORY_ATTRIBUTES, KVM_CAP_MULTI_ADDRESS_SPACE, KVM_MEM_GUEST_MEMFD, KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY,
  KVM_SET_MEMORY_ATTRIBUTES, KVM_SET_USER_MEMORY_REGION, KVM_SET_USER_MEMORY_REGION2,
} from '../../uapi.js';
import { kvm_private_slot_invalidate } from '../memfd_seal/kvm.js';
import { shmem_get_lock_pfn, shmem_register_guest, shmem_test_guest, shmem_unregister_guest, type GuestOps } from './shmem.js';
import { KVM_ADDRESS_SPACE_NUM, KVM_PRIVATE_ADDRESS_SPACE, KVM_SET_USER_MEMORY_REGION_RFC } from './uapi.js';

const PAGE = BigInt(PAGE_SIZE);

/**
 * KVM_ADDRESS_SPACE_NUM 3: the VM gets the SMM and private memslot sets (the base's
 * kvm_arch_nr_memslot_as_ids() is the number of sets). Done in kvm_create_vm() (the vm_init
 * hook), so the sets exist for the VM's whole life as in the RFC's struct kvm.
 */
function kvm_init_private_address_space(kvm: Kvm): void {
  const sets = kvm.memslots as KvmMemslots[];
  while (sets.length < KVM_ADDRESS_SPACE_NUM) sets.push(new KvmMemslots());
}

/** The private memslots of `kvm`. */
export function kvm_private_memslots(kvm: Kvm): KvmMemslots | undefined {
  return kvm.memslots[KVM_PRIVATE_ADDRESS_SPACE];
}

/** The number of memslots in each address space (S14/S15's memslot count). */
export function kvm_nr_memslots(kvm: Kvm): { shared: number; private: number } {
  return { shared: kvm.memslots[0]!.id_hash.size, private: kvm_private_memslots(kvm)?.id_hash.size ?? 0 };
}

/** memslot_is_private(). */
export function memslot_is_private(slot: KvmMemorySlot): boolean {
  return slot.as_id === KVM_PRIVATE_ADDRESS_SPACE;
}

/** A private slot's pairing with its store: the guest_ops the store calls back. */
class PrivateSlotBinding implements GuestOps {
  constructor(readonly kvm: Kvm, readonly slot: KvmMemorySlot) {}

  /** kvm's guest_ops.invalidate_page_range: freed store pages lose their private SPTEs. */
  invalidate_page_range(_inode: Inode, start: number, end: number): void {
    kvm_private_slot_invalidate(this.kvm, this.slot, start, end, KVM_FILTER_PRIVATE);
  }
}

const bindings = new WeakMap<KvmMemorySlot, PrivateSlotBinding>();

/**
 * kvm_register_private_memslot() / kvm_unregister_private_memslot() / memfd_get_lock_pfn()
 * (arch/x86/kvm/memfd.c, RFC v1 4/6): the slot holds a reference on the file; the index of a gfn
 * is gfn - base_gfn + the offset's page. The patch ignored memfd_register_guest()'s result; the
 * simulator returns it (-EPERM: the file is paired with another VM), as the 1:1 rule requires.
 */
const kvm_memfd_private_store: KvmPrivateStore = {
  bind(kvm: Kvm, slot: KvmMemorySlot, file: File, offset: bigint): number {
    if (!shmem_test_guest(file.f_inode)) return -Errno.EINVAL;
    const b = new PrivateSlotBinding(kvm, slot);
    const r = shmem_register_guest(file.f_inode, kvm, b);
    if (r) return r;
    bindings.set(slot, b);
    slot.gmem.file = file.get_file();
    slot.gmem.pgoff = Number(offset >> BigInt(PAGE_SHIFT));
    return 0;
  },
  unbind(slot: KvmMemorySlot): void {
    const b = bindings.get(slot);
    const file = slot.gmem.file;
    if (b === undefined || file === null) return;
    shmem_unregister_guest(file.f_inode, b);
    bindings.delete(slot);
    slot.gmem.file = null;
    file.fput();
  },
  get_pfn(kvm: Kvm, slot: KvmMemorySlot, gfn: number) {
    const file = slot.gmem.file;
    if (file === null) return -Errno.EFAULT;
    return shmem_get_lock_pfn(file.f_inode, gfn - slot.base_gfn + slot.gmem.pgoff, kvm.kernel.store);
  },
};

/** F_SEAL_GUEST made the file an enlightened store: KVM may pair a private memslot with it. */
export function kvm_memfd_register_store(inode: Inode): void {
  kvm_private_store_register(inode, kvm_memfd_private_store);
}

/**
 * The KVM_SET_USER_MEMORY_REGION of the RFC's header (struct kvm_userspace_memory_region with
 * `__u32 fd`) for the private address space: copy the struct (-EFAULT), (u16)slot beyond the
 * user slots (-EINVAL), check_memory_region_flags() (LOG_DIRTY_PAGES and READONLY only:
 * -EINVAL), a VM without private memory (-EINVAL), then __kvm_set_memory_region() with the
 * RFC's checks: page alignment of size, gpa and offset, no access_ok(), immutable private slots
 * (-EINVAL), overlaps within the address space (-EEXIST), the fd (-EINVAL when not open).
 */
function kvm_vm_ioctl_set_private_memory_region(kvm: Kvm, o: Record<string, unknown>, current: FileOwner): number {
  const slot = user_struct_field(o, 'slot', 32);
  const flags = user_struct_field(o, 'flags', 32);
  const guest_phys_addr = user_struct_field(o, 'guest_phys_addr', 64);
  const memory_size = user_struct_field(o, 'memory_size', 64);
  const userspace_addr = user_struct_field(o, 'userspace_addr', 64);
  const fd = user_struct_field(o, 'fd', 32);
  if (slot === undefined || flags === undefined || guest_phys_addr === undefined || memory_size === undefined ||
    userspace_addr === undefined || fd === undefined) {
    return -Errno.EFAULT;
  }
  if ((Number(slot) & 0xffff) >= KVM_USER_MEM_SLOTS) return -Errno.EINVAL;
  if (Number(flags) & ~(KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY)) return -Errno.EINVAL;
  if (!kvm_arch_has_private_mem(kvm)) return -Errno.EINVAL;
  if (userspace_addr % PAGE !== 0n) return -Errno.EINVAL;
  const mem = {
    slot: Number(slot), flags: Number(flags) | KVM_MEM_GUEST_MEMFD, guest_phys_addr, memory_size, userspace_addr: 0n,
    guest_memfd_offset: userspace_addr, guest_memfd: Number(fd),
  };
  const r = kvm_set_memory_region(kvm, mem, current);
  if (r === 0) {
    kvm.kernel.tracer.emit('cocosim_kvm_set_user_memory_region', {
      slot: mem.slot, flags: Number(flags), guest_phys_addr: guest_phys_addr as Gpa, memory_size, userspace_addr: userspace_addr as Hva,
      guest_memfd: mem.guest_memfd, guest_memfd_offset: userspace_addr,
    });
  }
  // kvm_register_private_memslot(): "if (!memfd.file) return -EINVAL" where the base's fget() is -EBADF.
  return r === -Errno.EBADF ? -Errno.EINVAL : r;
}

/**
 * kvm_vm_ioctl() of the RFC kernel: its KVM_SET_USER_MEMORY_REGION has the RFC's number
 * (0x4028ae46); the 32-byte struct's number (0x4020ae46) is no ioctl of that kernel (-ENOTTY).
 * KVM_SET_USER_MEMORY_REGION2 (6.8) cannot carry the private fd: -EINVAL for the private
 * address space. The VM attributes of 6.8 do not exist: the private slots are the attribute.
 */
export function fd_rfc_vm_ioctl(kvm: Kvm, cmd: number, arg: unknown, current: FileOwner): number {
  if (cmd === KVM_SET_USER_MEMORY_REGION || cmd === KVM_SET_MEMORY_ATTRIBUTES) return -Errno.ENOTTY;
  if (cmd !== KVM_SET_USER_MEMORY_REGION_RFC && cmd !== KVM_SET_USER_MEMORY_REGION2) return -ENOIOCTLCMD;
  if (typeof arg !== 'object' || arg === null) return -Errno.EFAULT;
  const o = arg as Record<string, unknown>;
  const slot = user_struct_field(o, 'slot', 32);
  if (slot === undefined) return -Errno.EFAULT;
  const as_id = Number(slot) >>> 16;
  if (cmd === KVM_SET_USER_MEMORY_REGION2) return as_id === KVM_PRIVATE_ADDRESS_SPACE ? -Errno.EINVAL : -ENOIOCTLCMD;
  if (as_id === KVM_PRIVATE_ADDRESS_SPACE) return kvm_vm_ioctl_set_private_memory_region(kvm, o, current);
  return kvm_vm_ioctl_set_memory_region(kvm, false, arg, current);
}

/** __kvm_vcpu_gfn_to_memslot(vcpu, gfn, private): a private access uses the private address space. */
function fd_rfc_fault_memslot(kvm: Kvm, gfn: number, is_private: boolean): KvmMemorySlot | undefined {
  if (!is_private) return undefined;
  const slots = kvm_private_memslots(kvm);
  return slots === undefined ? undefined : __gfn_to_memslot(slots, gfn);
}

/** is_private_gfn() of a VM with private memory: a private memslot covers the gfn. */
function fd_rfc_mem_is_private(kvm: Kvm, gfn: number): number {
  if (!kvm_arch_has_private_mem(kvm)) return KVM_HOOK_DEFAULT;
  const slots = kvm_private_memslots(kvm);
  return slots !== undefined && __gfn_to_memslot(slots, gfn) !== undefined ? 1 : 0;
}

/** The design's KVM hooks. */
export const fd_rfc_kvm_hooks: KvmHooks = {
  name: 'fd_rfc',
  vm_init: kvm_init_private_address_space,
  vm_ioctl: fd_rfc_vm_ioctl,
  check_extension(_kvm, cap) {
    if (cap === KVM_CAP_MULTI_ADDRESS_SPACE) return KVM_ADDRESS_SPACE_NUM;
    if (cap === KVM_CAP_MEMORY_ATTRIBUTES) return 0;
    return KVM_HOOK_DEFAULT;
  },
  mem_is_private: fd_rfc_mem_is_private,
  fault_memslot: fd_rfc_fault_memslot,
};
