/**
 * Dirty page logging through the memslots' bitmaps (virt/kvm/kvm_main.c, Linux 6.18): the
 * bitmap of a KVM_MEM_LOG_DIRTY_PAGES slot, KVM_GET_DIRTY_LOG, KVM_CLEAR_DIRTY_LOG and
 * KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2. Guest writes set bits through mark_page_dirty_in_slot() (the
 * MMU's faults); taking bits out of the bitmap re-arms logging for those pages through the arch
 * (kvm_arch_mmu_enable_log_dirty_pt_masked(): write protection).
 *
 * A VM that uses dirty rings (dirty_ring.ts) has no bitmaps: the ioctls here are -ENXIO for it.
 * Not modelled: PML (the hosts modelled log by write protection, as AMD hosts and Intel ones with
 * PML off do).
 */
import { Errno } from '@cocosim/core';
import { copy_from_user, copy_to_user } from '@cocosim/mm';
import { kvm_dirty_ring_push, kvm_use_dirty_bitmap } from './dirty_ring.js';
import { KVM_USER_MEM_SLOTS, kvm_memslots, type Kvm, type KvmMemorySlot, type KvmVcpu } from './kvm_host.js';
import { id_to_memslot, kvm_arch_nr_memslot_as_ids, user_struct_field } from './kvm_memslots.js';
import { kvm_arch_mmu_enable_log_dirty_pt_masked, kvm_flush_remote_tlbs_range } from './mmu/mmu.js';
import {
  KVM_DIRTY_LOG_INITIALLY_SET, KVM_DIRTY_LOG_MANUAL_CAPS, KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE, KVM_MEM_LOG_DIRTY_PAGES,
} from './uapi.js';

/** BITS_PER_LONG: the bitmap is handled a word of 64 pages at a time. */
const BITS_PER_LONG = 64;

/** kvm_dirty_bitmap_bytes(): the slot's pages rounded up to whole longs, in bytes. */
export function kvm_dirty_bitmap_bytes(slot: KvmMemorySlot): number {
  return Math.ceil(slot.npages / BITS_PER_LONG) * (BITS_PER_LONG / 8);
}

/** kvm_dirty_log_manual_protect_and_init_set(). */
export function kvm_dirty_log_manual_protect_and_init_set(kvm: Kvm): boolean {
  return (kvm.manual_dirty_log_protect & KVM_DIRTY_LOG_INITIALLY_SET) !== 0;
}

/**
 * kvm_alloc_dirty_bitmap() as kvm_prepare_memory_region() calls it for a slot that starts
 * logging: a zeroed bitmap, or one with every page of the slot set when the VM asked for
 * KVM_DIRTY_LOG_INITIALLY_SET (bitmap_set(new->dirty_bitmap, 0, new->npages)).
 */
export function kvm_alloc_dirty_bitmap(kvm: Kvm, slot: KvmMemorySlot): void {
  const bm = new Uint8Array(kvm_dirty_bitmap_bytes(slot));
  if (kvm_dirty_log_manual_protect_and_init_set(kvm)) {
    bm.fill(0xff, 0, Math.floor(slot.npages / 8));
    if (slot.npages % 8) bm[Math.floor(slot.npages / 8)] = (1 << (slot.npages % 8)) - 1;
  }
  slot.dirty_bitmap = bm;
}

/**
 * mark_page_dirty_in_slot(): a page of a slot that logs was dirtied by the running vCPU `vcpu`:
 * onto its dirty ring when the VM uses rings, else into the slot's bitmap.
 */
export function mark_page_dirty_in_slot(slot: KvmMemorySlot, gfn: number, vcpu: KvmVcpu): void {
  if (!(slot.flags & KVM_MEM_LOG_DIRTY_PAGES)) return;
  const rel = gfn - slot.base_gfn;
  if (vcpu.kvm.dirty_ring_size) {
    kvm_dirty_ring_push(vcpu, slot.as_id * 0x10000 + slot.id, rel);
    return;
  }
  const bm = slot.dirty_bitmap;
  if (bm !== null) bm[Math.floor(rel / 8)] |= 1 << (rel % 8);
}

/**
 * The KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 case of kvm_vm_ioctl_enable_cap_generic(): args[0] may
 * hold KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE, and with it KVM_DIRTY_LOG_INITIALLY_SET; flags must
 * be 0 (-EINVAL). 0 turns manual protection off again.
 */
export function kvm_vm_enable_manual_dirty_log_protect(kvm: Kvm, flags: bigint, args0: bigint): number {
  let allowed = BigInt(KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE);
  if (args0 & BigInt(KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE)) allowed = BigInt(KVM_DIRTY_LOG_MANUAL_CAPS);
  if (flags !== 0n || (args0 & ~allowed) !== 0n) return -Errno.EINVAL;
  kvm.manual_dirty_log_protect = Number(args0);
  return 0;
}

/** A dirty-log ioctl's `slot`: as_id in the high 16 bits, the slot index in the low 16; both in range. */
function dirty_log_slot_valid(kvm: Kvm, slot: number): boolean {
  return Math.floor(slot / 0x10000) < kvm_arch_nr_memslot_as_ids(kvm) && slot % 0x10000 < KVM_USER_MEM_SLOTS;
}

/** The slot a valid dirty-log `slot` names, or -ENOENT without a slot there or without a bitmap. */
function dirty_log_memslot(kvm: Kvm, slot: number): KvmMemorySlot | number {
  const memslot = id_to_memslot(kvm_memslots(kvm, Math.floor(slot / 0x10000)), slot % 0x10000);
  if (memslot === undefined || memslot.dirty_bitmap === null) return -Errno.ENOENT;
  return memslot;
}

/** The 64-bit little-endian word `i` of a bitmap. */
function bitmap_word(bm: Uint8Array, i: number): bigint {
  return new DataView(bm.buffer, bm.byteOffset + i * 8, 8).getBigUint64(0, true);
}

function bitmap_set_word(bm: Uint8Array, i: number, v: bigint): void {
  new DataView(bm.buffer, bm.byteOffset + i * 8, 8).setBigUint64(0, v, true);
}

/** kvm_flush_remote_tlbs_memslot(). */
function kvm_flush_remote_tlbs_memslot(kvm: Kvm, slot: KvmMemorySlot): void {
  kvm_flush_remote_tlbs_range(kvm, slot.base_gfn, slot.npages);
}

/**
 * The KVM_GET_DIRTY_LOG case of kvm_vm_ioctl() and kvm_get_dirty_log_protect(): copy struct
 * kvm_dirty_log in (-EFAULT), -ENXIO with dirty rings, find the slot (-EINVAL, -ENOENT), then copy the slot's bitmap out
 * to log->dirty_bitmap, kvm_dirty_bitmap_bytes() of it. Without manual protection the bits are
 * taken out first and their pages write-protected, and that stays done when the copy out then
 * fails (-EFAULT): those pages are no longer reported dirty. With KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE
 * the bitmap is copied as it is, and KVM_CLEAR_DIRTY_LOG clears it.
 */
export function kvm_vm_ioctl_get_dirty_log(kvm: Kvm, arg: unknown): number {
  if (typeof arg !== 'object' || arg === null) return -Errno.EFAULT;
  /* Dirty ring tracking may be exclusive to dirty log tracking */
  if (!kvm_use_dirty_bitmap(kvm)) return -Errno.ENXIO;
  const o = arg as Record<string, unknown>;
  const slot_id = user_struct_field(o, 'slot', 32);
  const uaddr = user_struct_field(o, 'dirty_bitmap', 64);
  if (slot_id === undefined || uaddr === undefined) return -Errno.EFAULT;
  if (!dirty_log_slot_valid(kvm, Number(slot_id))) return -Errno.EINVAL;
  const memslot = dirty_log_memslot(kvm, Number(slot_id));
  if (typeof memslot === 'number') return memslot;
  const dirty_bitmap = memslot.dirty_bitmap!;
  const n = kvm_dirty_bitmap_bytes(memslot);
  let buffer = dirty_bitmap;
  let flush = false;
  if (!kvm.manual_dirty_log_protect) {
    buffer = new Uint8Array(n);
    for (let i = 0; i < n / 8; i++) {
      const mask = bitmap_word(dirty_bitmap, i);
      if (mask === 0n) continue;
      flush = true;
      bitmap_set_word(dirty_bitmap, i, 0n);
      bitmap_set_word(buffer, i, mask);
      kvm_arch_mmu_enable_log_dirty_pt_masked(kvm, memslot, i * BITS_PER_LONG, mask);
    }
  }
  if (flush) kvm_flush_remote_tlbs_memslot(kvm, memslot);
  return copy_to_user(kvm.mm, uaddr, buffer.slice(0, n));
}

/**
 * The KVM_CLEAR_DIRTY_LOG case of kvm_vm_ioctl() and kvm_clear_dirty_log_protect(): copy struct
 * kvm_clear_dirty_log in (-EFAULT); -ENXIO with dirty rings; -EINVAL for the slot id, a first_page not a multiple of 64,
 * -ENOENT without a slot or bitmap, -EINVAL for a range past the slot or a num_pages not a
 * multiple of 64 that does not run to the slot's end; then read ALIGN(num_pages, 64) / 8 bytes
 * at log->dirty_bitmap (-EFAULT, nothing cleared) and clear each set bit that the slot's bitmap
 * has, write-protecting those pages again. Works with or without manual protection.
 */
export function kvm_vm_ioctl_clear_dirty_log(kvm: Kvm, arg: unknown): number {
  if (typeof arg !== 'object' || arg === null) return -Errno.EFAULT;
  if (!kvm_use_dirty_bitmap(kvm)) return -Errno.ENXIO;
  const o = arg as Record<string, unknown>;
  const slot_id = user_struct_field(o, 'slot', 32);
  const num_pages_b = user_struct_field(o, 'num_pages', 32);
  const first_page_b = user_struct_field(o, 'first_page', 64);
  const uaddr = user_struct_field(o, 'dirty_bitmap', 64);
  if (slot_id === undefined || num_pages_b === undefined || first_page_b === undefined || uaddr === undefined) return -Errno.EFAULT;
  if (!dirty_log_slot_valid(kvm, Number(slot_id))) return -Errno.EINVAL;
  if (first_page_b % 64n !== 0n) return -Errno.EINVAL;
  const memslot = dirty_log_memslot(kvm, Number(slot_id));
  if (typeof memslot === 'number') return memslot;
  const npages = BigInt(memslot.npages);
  if (first_page_b > npages || num_pages_b > npages - first_page_b ||
    (num_pages_b < npages - first_page_b && num_pages_b % 64n !== 0n)) {
    return -Errno.EINVAL;
  }
  const first_page = Number(first_page_b);
  const words = Math.ceil(Number(num_pages_b) / BITS_PER_LONG);
  /* copy_from_user() of nothing succeeds whatever the address */
  const buffer = words === 0 ? new Uint8Array(0) : copy_from_user(kvm.mm, uaddr, words * 8);
  if (buffer === undefined) return -Errno.EFAULT;
  const dirty_bitmap = memslot.dirty_bitmap!;
  let flush = false;
  for (let w = 0, i = first_page / BITS_PER_LONG, offset = first_page; w < words; w++, i++, offset += BITS_PER_LONG) {
    let mask = bitmap_word(buffer, w);
    if (mask === 0n) continue;
    /* atomic_long_fetch_andnot(): only the bits the slot had are cleared and re-armed */
    const had = bitmap_word(dirty_bitmap, i);
    bitmap_set_word(dirty_bitmap, i, had & ~mask);
    mask &= had;
    if (mask !== 0n) {
      flush = true;
      kvm_arch_mmu_enable_log_dirty_pt_masked(kvm, memslot, offset, mask);
    }
  }
  if (flush) kvm_flush_remote_tlbs_memslot(kvm, memslot);
  return 0;
}
