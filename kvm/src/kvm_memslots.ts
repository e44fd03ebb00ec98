/**
 * Memslots (virt/kvm/kvm_main.c): KVM_SET_USER_MEMORY_REGION and KVM_SET_USER_MEMORY_REGION2,
 * from the VM-ioctl case through kvm_set_memory_region() and kvm_set_memslot(), and the lookups
 * the rest of KVM uses (id_to_memslot, __gfn_to_memslot, __gfn_to_hva_memslot...).
 *
 * The kernel keeps two copies of each address space's memslots and swaps them under SRCU
 * (kvm_swap_active_memslots()); the simulator updates the one KvmMemslots in place at the points
 * where the kernel swaps, and counts the swaps in `generation` as the kernel does. What a reader
 * outside the ioctl sees is the same: the INVALID copy of a slot being deleted or moved while the
 * arch code flushes it, then the result. A slot that changes (MOVE, FLAGS_ONLY) is a new
 * KvmMemorySlot object, as the kernel allocates a new struct kvm_memory_slot.
 *
 * Order of validation (kvm_vm_ioctl, kvm_vm_ioctl_set_memory_region, kvm_set_memory_region):
 * copy_from_user (EFAULT); v1 flags beyond LOG_DIRTY_PAGES|READONLY (EINVAL); (u16)slot beyond
 * the user slots (EINVAL); check_memory_region_flags (EINVAL); memory_size, guest_phys_addr and
 * userspace_addr alignment, access_ok of the user range (EINVAL); guest_memfd_offset alignment
 * and wrap (EINVAL); address space and id (EINVAL); GPA wrap (EINVAL); KVM_MEM_MAX_NR_PAGES
 * (EINVAL); then DELETE of a missing slot (EINVAL), changes of an existing slot (EINVAL),
 * overlap (EEXIST), kvm_gmem_bind (EBADF/EINVAL), and the arch's prepare (EINVAL...).
 */
import { Errno, PAGE_SIZE, type Gpa, type Hva } from '@cocosim/core';
import { TASK_SIZE_MAX, type FileOwner } from '@cocosim/mm';
import {
  KVM_MEMSLOT_INVALID, KVM_MEM_MAX_NR_PAGES, KVM_MEM_SLOTS_NUM, KVM_MR_CREATE, KVM_MR_DELETE, KVM_MR_FLAGS_ONLY,
  KVM_MR_MOVE, KVM_USER_MEM_SLOTS, KvmMemorySlot, kvm_memslots, memslot_end_gfn,
  type Kvm, type KvmMemslots, type KvmMrChange, type KvmVcpu,
} from './kvm_host.js';
import { kvm_gmem_bind, kvm_gmem_unbind } from './guest_memfd.js';
import { kvm_use_dirty_bitmap } from './dirty_ring.js';
import { kvm_alloc_dirty_bitmap } from './kvm_dirty_log.js';
import { kvm_module } from './kvm_main.js';
import { kvm_arch_commit_memory_region, kvm_arch_flush_shadow_memslot, kvm_arch_prepare_memory_region } from './mmu/mmu.js';
import { KVM_MEM_GUEST_MEMFD, KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY } from './uapi.js';

const PAGE = BigInt(PAGE_SIZE);
const TWO63 = 2n ** 63n;
const TWO64 = 2n ** 64n;

/** x86-64 PAGE_OFFSET (no KASLR): the first address kvm_is_error_hva() refuses. */
export const PAGE_OFFSET = 0xffff888000000000n;
/** KVM_HVA_ERR_BAD: no usable slot for the gfn. */
export const KVM_HVA_ERR_BAD = PAGE_OFFSET;
/** KVM_HVA_ERR_RO_BAD: a write to a KVM_MEM_READONLY slot. */
export const KVM_HVA_ERR_RO_BAD = PAGE_OFFSET + PAGE;

/**
 * KVM_SET_USER_MEMORY_REGION_V1_FLAGS: the flags that do not use the extra space of struct
 * kvm_userspace_memory_region2, the only ones the v1 ioctl takes.
 */
export const KVM_SET_USER_MEMORY_REGION_V1_FLAGS = KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY;

/** struct kvm_userspace_memory_region2 as the kernel holds it after copy_from_user(). */
export interface KvmUserspaceMemoryRegion2 {
  readonly slot: number;
  readonly flags: number;
  readonly guest_phys_addr: bigint;
  readonly memory_size: bigint;
  readonly userspace_addr: bigint;
  readonly guest_memfd_offset: bigint;
  readonly guest_memfd: number;
}

/**
 * A struct field as copy_from_user() reads it: the C field is zeroed when absent (null or
 * undefined), an integer a C program can store (in [-2^63, 2^64)) truncated to the field's
 * width as C's assignment does; undefined for a value no C program can put in the struct.
 */
export function user_struct_field(o: Record<string, unknown>, name: string, bits: 32 | 64): bigint | undefined {
  const v = o[name];
  if (v === undefined || v === null) return 0n;
  let b: bigint;
  if (typeof v === 'bigint') b = v;
  else if (typeof v === 'number' && Number.isInteger(v)) b = BigInt(v);
  else return undefined;
  if (b < -TWO63 || b >= TWO64) return undefined;
  return BigInt.asUintN(bits, b);
}

/**
 * The copy_from_user() of kvm_vm_ioctl()'s KVM_SET_USER_MEMORY_REGION(2) case: v1 copies the 32
 * bytes of struct kvm_userspace_memory_region into a zeroed region2 (guest_memfd and its offset
 * read as 0, whatever the object holds), v2 the 160 of region2 (pad1/pad2 are copied and never
 * read). -EFAULT for an argument that is not a struct, or a struct with a field no C program can
 * write (the simulator's stand-in for a pointer copy_from_user() cannot read).
 */
function copy_userspace_memory_region(arg: unknown, v2: boolean): KvmUserspaceMemoryRegion2 | number {
  if (typeof arg !== 'object' || arg === null) return -Errno.EFAULT;
  const o = arg as Record<string, unknown>;
  const slot = user_struct_field(o, 'slot', 32);
  const flags = user_struct_field(o, 'flags', 32);
  const guest_phys_addr = user_struct_field(o, 'guest_phys_addr', 64);
  const memory_size = user_struct_field(o, 'memory_size', 64);
  const userspace_addr = user_struct_field(o, 'userspace_addr', 64);
  const guest_memfd_offset = v2 ? user_struct_field(o, 'guest_memfd_offset', 64) : 0n;
  const guest_memfd = v2 ? user_struct_field(o, 'guest_memfd', 32) : 0n;
  if (slot === undefined || flags === undefined || guest_phys_addr === undefined || memory_size === undefined ||
    userspace_addr === undefined || guest_memfd_offset === undefined || guest_memfd === undefined) {
    return -Errno.EFAULT;
  }
  return {
    slot: Number(slot), flags: Number(flags), guest_phys_addr, memory_size, userspace_addr,
    guest_memfd_offset, guest_memfd: Number(guest_memfd),
  };
}

/**
 * The KVM_SET_USER_MEMORY_REGION(2) case of kvm_vm_ioctl() and kvm_vm_ioctl_set_memory_region()
 * (virt/kvm/kvm_main.c): copy the struct in, refuse v1 flags beyond
 * KVM_SET_USER_MEMORY_REGION_V1_FLAGS, refuse (u16)slot beyond the user slots, then
 * kvm_set_memory_region() under slots_lock. `current` is the calling task, whose fd table
 * kvm_gmem_bind() looks guest_memfd up in.
 */
export function kvm_vm_ioctl_set_memory_region(kvm: Kvm, v2: boolean, arg: unknown, current?: FileOwner): number {
  const mem = copy_userspace_memory_region(arg, v2);
  if (typeof mem === 'number') return mem;
  if (!v2 && (mem.flags & ~KVM_SET_USER_MEMORY_REGION_V1_FLAGS) !== 0) return -Errno.EINVAL;
  if ((mem.slot & 0xffff) >= KVM_USER_MEM_SLOTS) return -Errno.EINVAL;
  const r = kvm_set_memory_region(kvm, mem, current);
  if (r === 0) {
    kvm.kernel.tracer.emit('cocosim_kvm_set_user_memory_region', {
      slot: mem.slot, flags: mem.flags, guest_phys_addr: mem.guest_phys_addr as Gpa, memory_size: mem.memory_size,
      userspace_addr: mem.userspace_addr as Hva,
      ...(v2 && { guest_memfd: mem.guest_memfd, guest_memfd_offset: mem.guest_memfd_offset }),
    });
  }
  return r;
}

/**
 * kvm_arch_has_readonly_mem() (x86): read-only memslots need MMIO emulation of the writes, which
 * a VM with protected state (SEV-ES, SNP, TDX) cannot do.
 */
function kvm_arch_has_readonly_mem(kvm: Kvm): boolean {
  return !kvm.arch.has_protected_state;
}

/**
 * check_memory_region_flags() (virt/kvm/kvm_main.c): LOG_DIRTY_PAGES, GUEST_MEMFD
 * (CONFIG_KVM_GUEST_MEMFD, any VM type), READONLY where the arch has read-only memory; a
 * guest_memfd slot can be neither dirty-logged nor read-only.
 */
export function check_memory_region_flags(kvm: Kvm, mem: KvmUserspaceMemoryRegion2): number {
  let valid_flags = KVM_MEM_LOG_DIRTY_PAGES;
  if (kvm_module(kvm).guest_memfd) valid_flags |= KVM_MEM_GUEST_MEMFD;
  // Dirty logging private memory is not currently supported.
  if (mem.flags & KVM_MEM_GUEST_MEMFD) valid_flags &= ~KVM_MEM_LOG_DIRTY_PAGES;
  // Writes to read-only memslots are emulated MMIO, which private memory cannot be.
  if (kvm_arch_has_readonly_mem(kvm) && !(mem.flags & KVM_MEM_GUEST_MEMFD)) valid_flags |= KVM_MEM_READONLY;
  if ((mem.flags & ~valid_flags) !== 0) return -Errno.EINVAL;
  return 0;
}

/**
 * access_ok() (arch/x86/include/asm/uaccess_64.h): [addr, addr + size) lies in user space, i.e.
 * ends at or below USER_PTR_MAX, which is TASK_SIZE_MAX without LAM.
 */
function access_ok(addr: bigint, size: bigint): boolean {
  // The kernel also refuses a sum that wraps; a bigint sum cannot.
  return addr + size <= TASK_SIZE_MAX;
}

/** kvm_arch_nr_memslot_as_ids() (x86): one address space without SMM, always one with protected state. */
export function kvm_arch_nr_memslot_as_ids(kvm: Kvm): number {
  return kvm.memslots.length;
}

/**
 * kvm_set_memory_region() (virt/kvm/kvm_main.c): validate the region in the kernel's order,
 * then create, delete, move or change the flags of the slot (a re-issue of an unchanged slot
 * is a successful no-op). A guest_memfd slot is bound before kvm_set_memslot() and unbound if
 * that fails.
 */
export function kvm_set_memory_region(kvm: Kvm, mem: KvmUserspaceMemoryRegion2, current?: FileOwner): number {
  let r = check_memory_region_flags(kvm, mem);
  if (r) return r;

  const as_id = mem.slot >>> 16;
  const id = mem.slot & 0xffff;

  // General sanity checks.
  if (mem.memory_size % PAGE !== 0n) return -Errno.EINVAL;
  if (mem.guest_phys_addr % PAGE !== 0n) return -Errno.EINVAL;
  // x86's untagged_addr() is the identity without LAM, so only alignment and access_ok() matter.
  if (mem.userspace_addr % PAGE !== 0n || !access_ok(mem.userspace_addr, mem.memory_size)) return -Errno.EINVAL;
  if (mem.flags & KVM_MEM_GUEST_MEMFD &&
    (mem.guest_memfd_offset % PAGE !== 0n || mem.guest_memfd_offset + mem.memory_size >= TWO64)) {
    return -Errno.EINVAL;
  }
  if (as_id >= kvm_arch_nr_memslot_as_ids(kvm) || id >= KVM_MEM_SLOTS_NUM) return -Errno.EINVAL;
  if (mem.guest_phys_addr + mem.memory_size >= TWO64) return -Errno.EINVAL;
  // User slots are bounded so that dirty-bitmap indexes fit an unsigned int.
  if (id < KVM_USER_MEM_SLOTS && mem.memory_size / PAGE > BigInt(KVM_MEM_MAX_NR_PAGES)) return -Errno.EINVAL;

  const slots = kvm_memslots(kvm, as_id);
  const old = id_to_memslot(slots, id);

  if (mem.memory_size === 0n) {
    if (old === undefined || old.npages === 0) return -Errno.EINVAL;
    if (kvm.kernel.warn.WARN_ON_ONCE(kvm.nr_memslot_pages < old.npages, 'kvm_set_memory_region:nr_memslot_pages')) {
      return -Errno.EIO;
    }
    return kvm_set_memslot(kvm, old, null, KVM_MR_DELETE);
  }

  // Both fit a double exactly: gpas are below 2^64, sizes below KVM_MEM_MAX_NR_PAGES pages.
  const base_gfn = Number(mem.guest_phys_addr / PAGE);
  const npages = Number(mem.memory_size / PAGE);
  let change: KvmMrChange;

  if (old === undefined || old.npages === 0) {
    // nr_memslot_pages + npages cannot overflow an unsigned long: at most 32764 slots of
    // KVM_MEM_MAX_NR_PAGES pages each.
    change = KVM_MR_CREATE;
  } else {
    // Private memslots are immutable, they can only be deleted.
    if (mem.flags & KVM_MEM_GUEST_MEMFD) return -Errno.EINVAL;
    // READONLY cannot toggle, nor can GUEST_MEMFD be dropped: 6.18.y has commit 9935df5333aa
    // ("KVM: Disallow toggling KVM_MEM_GUEST_MEMFD on an existing memslot"), which closed a
    // use-after-free of the slot the binding still pointed to.
    if (mem.userspace_addr !== old.userspace_addr || npages !== old.npages ||
      ((mem.flags ^ old.flags) & (KVM_MEM_READONLY | KVM_MEM_GUEST_MEMFD)) !== 0) {
      return -Errno.EINVAL;
    }
    if (base_gfn !== old.base_gfn) change = KVM_MR_MOVE;
    else if (mem.flags !== old.flags) change = KVM_MR_FLAGS_ONLY;
    else return 0; // Nothing to change.
  }

  if ((change === KVM_MR_CREATE || change === KVM_MR_MOVE) &&
    kvm_check_memslot_overlap(slots, id, base_gfn, base_gfn + npages)) {
    return -Errno.EEXIST;
  }

  const slot = new KvmMemorySlot(id, as_id, base_gfn, npages, mem.flags, mem.userspace_addr);
  if (mem.flags & KVM_MEM_GUEST_MEMFD) {
    r = kvm_gmem_bind(kvm, slot, mem.guest_memfd, mem.guest_memfd_offset, current);
    if (r) return r;
  }

  r = kvm_set_memslot(kvm, old ?? null, slot, change);
  if (r) {
    if (mem.flags & KVM_MEM_GUEST_MEMFD) kvm_gmem_unbind(slot);
    return r;
  }
  return 0;
}

/** kvm_check_memslot_overlap(): another slot of the address space covers a gfn of [start, end). */
function kvm_check_memslot_overlap(slots: KvmMemslots, id: number, start: number, end: number): boolean {
  let overlap = false;
  kvm_for_each_memslot_in_gfn_range(slots, start, end, (slot) => {
    if (slot.id === id) return true;
    overlap = true;
    return false;
  });
  return overlap;
}

/**
 * kvm_swap_active_memslots(): the updated set becomes the active one, after an SRCU grace period
 * (synchronize_srcu_expedited: cost kvm_memslots_swap). The generation moves on by the number of
 * address spaces (kvm_arch_nr_memslot_as_ids), so that generations stay unique across them.
 */
function kvm_swap_active_memslots(kvm: Kvm, as_id: number): void {
  kvm.kernel.cost.charge('kvm_memslots_swap');
  kvm_memslots(kvm, as_id).generation += kvm_arch_nr_memslot_as_ids(kvm);
}

/**
 * kvm_replace_memslot(): put `new_slot` where `old` was in the id hash and the gfn tree (either
 * may be null: add or remove).
 */
function kvm_replace_memslot(kvm: Kvm, old: KvmMemorySlot | null, new_slot: KvmMemorySlot | null): void {
  const slots = kvm_memslots(kvm, (old ?? new_slot)!.as_id);
  if (old !== null) {
    slots.id_hash.delete(old.id);
    slots.gfn_tree.mtree_erase_range(old.base_gfn, memslot_end_gfn(old) - 1);
  }
  if (new_slot !== null) {
    slots.id_hash.set(new_slot.id, new_slot);
    slots.gfn_tree.mtree_store_range(new_slot.base_gfn, memslot_end_gfn(new_slot) - 1, new_slot);
  }
}

/** kvm_activate_memslot(): swap the sets, with `new_slot` in place of `old`. */
function kvm_activate_memslot(kvm: Kvm, old: KvmMemorySlot | null, new_slot: KvmMemorySlot | null): void {
  kvm_replace_memslot(kvm, old, new_slot);
  kvm_swap_active_memslots(kvm, (old ?? new_slot)!.as_id);
}

/** kvm_copy_memslot(): the INVALID stand-in shares everything but the flags with the slot. */
function kvm_copy_memslot(src: KvmMemorySlot, flags: number): KvmMemorySlot {
  const dest = new KvmMemorySlot(src.id, src.as_id, src.base_gfn, src.npages, flags, src.userspace_addr);
  dest.gmem = src.gmem;
  dest.arch = src.arch;
  dest.dirty_bitmap = src.dirty_bitmap;
  return dest;
}

/**
 * kvm_invalidate_memslot(): make an INVALID copy of the slot active, so that no new mapping of
 * it is created, then let the arch drop every mapping and shadow page of `old`.
 */
function kvm_invalidate_memslot(kvm: Kvm, old: KvmMemorySlot): KvmMemorySlot {
  const invalid_slot = kvm_copy_memslot(old, old.flags | KVM_MEMSLOT_INVALID);
  kvm_activate_memslot(kvm, old, invalid_slot);
  kvm_arch_flush_shadow_memslot(kvm, old);
  return invalid_slot;
}

/**
 * kvm_prepare_memory_region(): the dirty bitmap (dropped without LOG_DIRTY_PAGES, kept when the
 * old slot logged too, else a new one unless the VM logs into dirty rings), then the arch's prepare.
 */
function kvm_prepare_memory_region(kvm: Kvm, old: KvmMemorySlot | null, new_slot: KvmMemorySlot | null, change: KvmMrChange): number {
  let allocated = false;
  if (change !== KVM_MR_DELETE) {
    const n = new_slot!;
    if (!(n.flags & KVM_MEM_LOG_DIRTY_PAGES)) n.dirty_bitmap = null;
    else if (old?.dirty_bitmap) n.dirty_bitmap = old.dirty_bitmap;
    else if (kvm_use_dirty_bitmap(kvm)) {
      kvm_alloc_dirty_bitmap(kvm, n);
      allocated = true;
    }
  }
  const r = kvm_arch_prepare_memory_region(kvm, old, new_slot, change);
  if (r && allocated) new_slot!.dirty_bitmap = null;
  return r;
}

/**
 * kvm_free_memslot(): a deleted slot lets go of its guest_memfd binding and its dirty bitmap
 * (the arch metadata goes with the object).
 */
function kvm_free_memslot(slot: KvmMemorySlot): void {
  if (slot.flags & KVM_MEM_GUEST_MEMFD) kvm_gmem_unbind(slot);
  slot.dirty_bitmap = null;
}

/**
 * kvm_commit_memory_region(): account the slot's pages (before the arch hook, which may read
 * the total), let the arch commit, and free what the old slot no longer needs.
 */
function kvm_commit_memory_region(kvm: Kvm, old: KvmMemorySlot | null, new_slot: KvmMemorySlot | null, change: KvmMrChange): void {
  if (change === KVM_MR_DELETE) kvm.nr_memslot_pages -= old!.npages;
  else if (change === KVM_MR_CREATE) kvm.nr_memslot_pages += new_slot!.npages;
  kvm_arch_commit_memory_region(kvm, old, new_slot, change);
  if (change === KVM_MR_DELETE) kvm_free_memslot(old!);
}

/**
 * kvm_set_memslot() (virt/kvm/kvm_main.c): DELETE and MOVE first activate an INVALID copy of
 * the old slot and flush it from the MMU; then the arch prepares (on failure the old slot comes
 * back: two generations later, its mappings gone, nothing else changed); then the change is
 * activated and committed.
 */
function kvm_set_memslot(kvm: Kvm, old: KvmMemorySlot | null, new_slot: KvmMemorySlot | null, change: KvmMrChange): number {
  let invalid_slot: KvmMemorySlot | null = null;
  if (change === KVM_MR_DELETE || change === KVM_MR_MOVE) invalid_slot = kvm_invalidate_memslot(kvm, old!);

  const r = kvm_prepare_memory_region(kvm, old, new_slot, change);
  if (r) {
    if (invalid_slot !== null) kvm_activate_memslot(kvm, invalid_slot, old);
    return r;
  }

  switch (change) {
    case KVM_MR_CREATE:
      kvm_activate_memslot(kvm, null, new_slot);
      break;
    case KVM_MR_DELETE:
      kvm_activate_memslot(kvm, invalid_slot, null);
      break;
    case KVM_MR_MOVE:
      kvm_activate_memslot(kvm, invalid_slot, new_slot);
      break;
    case KVM_MR_FLAGS_ONLY:
      kvm_activate_memslot(kvm, old, new_slot);
      break;
  }
  kvm_commit_memory_region(kvm, old, new_slot, change);
  return 0;
}

/**
 * kvm_free_memslots() for every address space, from kvm_destroy_vm(): each slot is freed
 * (kvm_free_memslot(): guest_memfd bindings undone) and the sets are emptied.
 */
export function kvm_free_memslots(kvm: Kvm): void {
  for (const slots of kvm.memslots) {
    for (const slot of slots.id_hash.values()) kvm_free_memslot(slot);
    slots.id_hash.clear();
    slots.gfn_tree.clear();
  }
}

/* ---- lookups (include/linux/kvm_host.h, virt/kvm/kvm_main.c) ---- */

/** id_to_memslot(): the slot with index `id` of the address space. */
export function id_to_memslot(slots: KvmMemslots, id: number): KvmMemorySlot | undefined {
  return slots.id_hash.get(id);
}

/** __gfn_to_memslot() / search_memslots(): the slot whose range holds `gfn`, INVALID ones included. */
export function __gfn_to_memslot(slots: KvmMemslots, gfn: number): KvmMemorySlot | undefined {
  return slots.gfn_tree.mtree_load(gfn);
}

/** gfn_to_memslot(): the slot of `gfn` in address space 0. */
export function gfn_to_memslot(kvm: Kvm, gfn: number): KvmMemorySlot | undefined {
  return __gfn_to_memslot(kvm_memslots(kvm, 0), gfn);
}

/** kvm_vcpu_gfn_to_memslot(): the slot of `gfn` in the vCPU's address space (0: no SMM here). */
export function kvm_vcpu_gfn_to_memslot(vcpu: KvmVcpu, gfn: number): KvmMemorySlot | undefined {
  return gfn_to_memslot(vcpu.kvm, gfn);
}

/** __gfn_to_hva_memslot(): the host address of `gfn` in the slot's user mapping. */
export function __gfn_to_hva_memslot(slot: KvmMemorySlot, gfn: number): bigint {
  return slot.userspace_addr + BigInt(gfn - slot.base_gfn) * PAGE;
}

/** kvm_is_error_hva(): one of the KVM_HVA_ERR_* values (an address in the kernel half). */
export function kvm_is_error_hva(hva: bigint): boolean {
  return hva >= PAGE_OFFSET;
}

/**
 * __gfn_to_hva_many(): the host address of `gfn`, KVM_HVA_ERR_BAD without a slot or for an
 * INVALID one, KVM_HVA_ERR_RO_BAD for a write to a read-only slot.
 */
export function __gfn_to_hva_many(slot: KvmMemorySlot | undefined, gfn: number, write: boolean): bigint {
  if (slot === undefined || slot.flags & KVM_MEMSLOT_INVALID) return KVM_HVA_ERR_BAD;
  if (slot.flags & KVM_MEM_READONLY && write) return KVM_HVA_ERR_RO_BAD;
  return __gfn_to_hva_memslot(slot, gfn);
}

/** gfn_to_hva_memslot(): the host address for a write (KVM_HVA_ERR_* as __gfn_to_hva_many). */
export function gfn_to_hva_memslot(slot: KvmMemorySlot | undefined, gfn: number): bigint {
  return __gfn_to_hva_many(slot, gfn, true);
}

/**
 * gfn_to_hva_memslot_prot(): the host address of `gfn` for a read and whether the slot lets the
 * guest write it; -EFAULT where the kernel returns an error hva (no slot, INVALID slot), which is
 * what its callers turn it into.
 */
export function gfn_to_hva_memslot_prot(slot: KvmMemorySlot | undefined, gfn: number): { hva: bigint; writable: boolean } | number {
  const hva = __gfn_to_hva_many(slot, gfn, false);
  if (kvm_is_error_hva(hva)) return -Errno.EFAULT;
  return { hva, writable: !(slot!.flags & KVM_MEM_READONLY) };
}

/**
 * kvm_for_each_memslot_in_gfn_range(): every slot of the address space that covers a gfn of
 * [start, end), by ascending gfn; `fn` returning false stops the walk.
 */
export function kvm_for_each_memslot_in_gfn_range(slots: KvmMemslots, start: number, end: number,
  fn: (slot: KvmMemorySlot) => void | boolean): void {
  if (start >= end) return;
  slots.gfn_tree.mt_for_each(start, end - 1, (slot) => fn(slot));
}
