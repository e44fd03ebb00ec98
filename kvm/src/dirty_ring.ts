/**
 * The dirty ring (virt/kvm/dirty_ring.c and its uAPI in virt/kvm/kvm_main.c, Linux 6.18): instead
 * of a bitmap per memslot, each vCPU has a ring of struct kvm_dirty_gfn { __u32 flags; __u32 slot;
 * __u64 offset; } that the VMM maps from the vCPU fd at page KVM_DIRTY_LOG_PAGE_OFFSET. A guest
 * write that KVM logs pushes (slot, offset) with KVM_DIRTY_GFN_F_DIRTY; the VMM marks what it
 * collected KVM_DIRTY_GFN_F_RESET and calls KVM_RESET_DIRTY_RINGS, which frees those entries and
 * write-protects their pages again. Once a ring holds soft_limit entries the vCPU does not enter
 * the guest: KVM_RUN returns with KVM_EXIT_DIRTY_RING_FULL until the ring is reset.
 *
 * The ring is enabled per VM (KVM_CAP_DIRTY_LOG_RING or _ACQ_REL, the ring's size in bytes), before
 * any vCPU exists; from then on no memslot gets a dirty bitmap (KVM_GET_DIRTY_LOG: -ENXIO). x86
 * has no KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP. The hosts modelled have no PML, so the reserved
 * entries are KVM_DIRTY_RING_RSVD_ENTRIES alone (kvm_cpu_dirty_log_size() 0).
 */
import { Errno, PAGE_SIZE, type Pfn } from '@cocosim/core';
import { GFP_KERNEL_ACCOUNT, __GFP_ZERO } from '@cocosim/mm';
import { KVM_USER_MEM_SLOTS, kvm_memslots, type Kvm, type KvmMemorySlot, type KvmVcpu } from './kvm_host.js';
import { id_to_memslot, kvm_arch_nr_memslot_as_ids } from './kvm_memslots.js';
import { kvm_arch_mmu_enable_log_dirty_pt_masked, kvm_flush_remote_tlbs } from './mmu/mmu.js';
import { KVM_DIRTY_GFN_F_DIRTY, KVM_DIRTY_GFN_F_RESET, KVM_DIRTY_LOG_PAGE_OFFSET, KVM_EXIT_DIRTY_RING_FULL } from './uapi.js';

/** KVM_DIRTY_RING_RSVD_ENTRIES (include/linux/kvm_dirty_ring.h). */
const KVM_DIRTY_RING_RSVD_ENTRIES = 64;
/** KVM_DIRTY_RING_MAX_ENTRIES (include/linux/kvm_host.h). */
const KVM_DIRTY_RING_MAX_ENTRIES = 65536;
/** sizeof(struct kvm_dirty_gfn). */
const KVM_DIRTY_GFN_SIZE = 16;
/** What KVM_CHECK_EXTENSION says for KVM_CAP_DIRTY_LOG_RING(_ACQ_REL): the largest ring, in bytes. */
export const KVM_DIRTY_RING_MAX_BYTES = KVM_DIRTY_RING_MAX_ENTRIES * KVM_DIRTY_GFN_SIZE;
const INT_MAX = 2 ** 31 - 1;

/** struct kvm_dirty_ring: the entries live in pages the VMM maps (vzalloc()). */
interface KvmDirtyRing {
  readonly pages: readonly Pfn[];
  /** Entries (a power of 2). */
  readonly size: number;
  readonly soft_limit: number;
  dirty_index: number;
  reset_index: number;
  /** KVM_REQ_DIRTY_RING_SOFT_FULL is pending on the vCPU. */
  soft_full_request: boolean;
}

const rings = new WeakMap<KvmVcpu, KvmDirtyRing>();

/** kvm_dirty_ring_get_rsvd_entries(). */
function kvm_dirty_ring_get_rsvd_entries(): number {
  return KVM_DIRTY_RING_RSVD_ENTRIES;
}

/** kvm_use_dirty_bitmap(): memslots log in bitmaps unless the VM uses dirty rings. */
export function kvm_use_dirty_bitmap(kvm: Kvm): boolean {
  return kvm.dirty_ring_size === 0;
}

/**
 * kvm_vm_ioctl_enable_dirty_log_ring() (the KVM_CAP_DIRTY_LOG_RING(_ACQ_REL) case of
 * kvm_vm_ioctl_enable_cap_generic()): `size` is a __u32 of bytes, a power of 2 that holds the
 * reserved entries and a page at least (-EINVAL), at most KVM_DIRTY_RING_MAX_BYTES (-E2BIG); once
 * per VM and before its first vCPU (-EINVAL).
 */
export function kvm_vm_ioctl_enable_dirty_log_ring(kvm: Kvm, size64: bigint): number {
  const size = Number(size64 & 0xffffffffn);
  if (size === 0 || (size & (size - 1)) !== 0) return -Errno.EINVAL;
  if (size < kvm_dirty_ring_get_rsvd_entries() * KVM_DIRTY_GFN_SIZE || size < PAGE_SIZE) return -Errno.EINVAL;
  if (size > KVM_DIRTY_RING_MAX_BYTES) return -Errno.E2BIG;
  if (kvm.dirty_ring_size) return -Errno.EINVAL;
  if (kvm.created_vcpus) return -Errno.EINVAL;
  kvm.dirty_ring_size = size;
  return 0;
}

/** kvm_dirty_ring_alloc() for a new vCPU of a VM with dirty rings: its zeroed pages; -ENOMEM. */
export function kvm_dirty_ring_alloc(vcpu: KvmVcpu): number {
  const kvm = vcpu.kvm;
  if (!kvm.dirty_ring_size) return 0;
  const page_alloc = kvm.kernel.page_alloc;
  const pages: Pfn[] = [];
  for (let k = 0; k < kvm.dirty_ring_size / PAGE_SIZE; k++) {
    const pfn = page_alloc.alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO);
    if (pfn < 0) {
      for (const p of pages) page_alloc.__free_page(p);
      return -Errno.ENOMEM;
    }
    pages.push(pfn as Pfn);
  }
  const size = kvm.dirty_ring_size / KVM_DIRTY_GFN_SIZE;
  rings.set(vcpu, { pages, size, soft_limit: size - kvm_dirty_ring_get_rsvd_entries(), dirty_index: 0, reset_index: 0, soft_full_request: false });
  return 0;
}

/** kvm_dirty_ring_free(). */
export function kvm_dirty_ring_free(vcpu: KvmVcpu): void {
  const ring = rings.get(vcpu);
  if (ring === undefined) return;
  for (const p of ring.pages) vcpu.kvm.kernel.page_alloc.__free_page(p);
  rings.delete(vcpu);
}

/** kvm_page_in_dirty_ring(): page `pgoff` of the vCPU mapping is one of the ring's. */
export function kvm_page_in_dirty_ring(kvm: Kvm, pgoff: number): boolean {
  return pgoff >= KVM_DIRTY_LOG_PAGE_OFFSET && pgoff < KVM_DIRTY_LOG_PAGE_OFFSET + kvm.dirty_ring_size / PAGE_SIZE;
}

/** kvm_dirty_ring_get_page(): the ring's page `offset` of the vCPU mapping's dirty-ring pages, or -1. */
export function kvm_dirty_ring_get_page(vcpu: KvmVcpu, offset: number): number {
  return rings.get(vcpu)?.pages[offset] ?? -1;
}

/** Where entry `i` of the ring lives: its page and the byte offset in it. */
function entry_at(ring: KvmDirtyRing, i: number): { pfn: Pfn; off: number } {
  const byte = (i & (ring.size - 1)) * KVM_DIRTY_GFN_SIZE;
  return { pfn: ring.pages[Math.floor(byte / PAGE_SIZE)]!, off: byte % PAGE_SIZE };
}

function kvm_dirty_ring_used(ring: KvmDirtyRing): number {
  return ring.dirty_index - ring.reset_index;
}

function kvm_dirty_ring_soft_full(ring: KvmDirtyRing): boolean {
  return kvm_dirty_ring_used(ring) >= ring.soft_limit;
}

/**
 * kvm_dirty_ring_push(): the next entry becomes (slot, offset) with KVM_DIRTY_GFN_F_DIRTY; at the
 * soft limit the vCPU is asked to exit (KVM_REQ_DIRTY_RING_SOFT_FULL). `slot` is as_id << 16 | id.
 */
export function kvm_dirty_ring_push(vcpu: KvmVcpu, slot: number, offset: number): void {
  const ring = rings.get(vcpu);
  if (ring === undefined) return;
  const kvm = vcpu.kvm;
  /* It should never get full */
  if (kvm.kernel.warn.WARN_ON_ONCE(kvm_dirty_ring_used(ring) >= ring.size, 'kvm_dirty_ring_push: full')) return;
  const { pfn, off } = entry_at(ring, ring.dirty_index);
  const e = new Uint8Array(KVM_DIRTY_GFN_SIZE);
  const v = new DataView(e.buffer);
  v.setUint32(0, KVM_DIRTY_GFN_F_DIRTY, true);
  v.setUint32(4, slot, true);
  v.setBigUint64(8, BigInt(offset), true);
  kvm.kernel.phys.write(pfn, off, e);
  ring.dirty_index++;
  if (kvm_dirty_ring_soft_full(ring)) ring.soft_full_request = true;
}

/**
 * kvm_dirty_ring_check_request(), at the top of vcpu_enter_guest(): a vCPU whose ring is still
 * soft-full does not enter the guest; KVM_RUN returns 0 with KVM_EXIT_DIRTY_RING_FULL, and the
 * request stays for the next KVM_RUN. true when the vCPU must exit.
 */
export function kvm_dirty_ring_check_request(vcpu: KvmVcpu): boolean {
  const ring = rings.get(vcpu);
  if (ring === undefined || !ring.soft_full_request) return false;
  ring.soft_full_request = false;
  if (!kvm_dirty_ring_soft_full(ring)) return false;
  ring.soft_full_request = true;
  vcpu.run.exit_reason = KVM_EXIT_DIRTY_RING_FULL;
  return true;
}

/**
 * kvm_reset_dirty_gfn(): write-protect again the pages of `mask` from `offset` of the slot an
 * entry named (as_id << 16 | id); an entry naming no slot, or pages past its end, is ignored.
 */
function kvm_reset_dirty_gfn(kvm: Kvm, slot: number, offset: number, mask: bigint): void {
  const as_id = Math.floor(slot / 0x10000);
  const id = slot % 0x10000;
  if (as_id >= kvm_arch_nr_memslot_as_ids(kvm) || id >= KVM_USER_MEM_SLOTS) return;
  const memslot: KvmMemorySlot | undefined = id_to_memslot(kvm_memslots(kvm, as_id), id);
  if (memslot === undefined || offset + (mask.toString(2).length - 1) >= memslot.npages) return;
  kvm_arch_mmu_enable_log_dirty_pt_masked(kvm, memslot, offset, mask);
}

/**
 * kvm_dirty_ring_reset(): from reset_index, every entry the VMM marked KVM_DIRTY_GFN_F_RESET is
 * cleared (flags 0) and its page re-armed, runs of one slot within 64 pages of each other in one
 * call; stops at the first entry not marked. Counts the entries into `count.n`.
 */
function kvm_dirty_ring_reset(kvm: Kvm, ring: KvmDirtyRing, count: { n: number }): void {
  const phys = kvm.kernel.phys;
  let cur_slot = 0;
  let cur_offset = 0n;
  let mask = 0n;
  while (count.n < INT_MAX) {
    const { pfn, off } = entry_at(ring, ring.reset_index);
    const raw = phys.read(pfn, off, KVM_DIRTY_GFN_SIZE);
    if (!(raw instanceof Uint8Array)) break;
    const v = new DataView(raw.buffer, raw.byteOffset, KVM_DIRTY_GFN_SIZE);
    if (!(v.getUint32(0, true) & KVM_DIRTY_GFN_F_RESET)) break;
    const next_slot = v.getUint32(4, true);
    const next_offset = v.getBigUint64(8, true);
    /* kvm_dirty_gfn_set_invalid() */
    phys.write(pfn, off, new Uint8Array(4));
    ring.reset_index++;
    count.n++;
    if (mask !== 0n) {
      if (next_slot === cur_slot) {
        const delta = BigInt.asIntN(64, next_offset - cur_offset);
        if (delta >= 0n && delta < 64n) {
          mask |= 1n << delta;
          continue;
        }
        /* Backwards visit, careful about overflows! */
        if (delta > -64n && delta < 0n && BigInt.asUintN(64, mask << -delta) >> -delta === mask) {
          cur_offset = next_offset;
          mask = BigInt.asUintN(64, mask << -delta) | 1n;
          continue;
        }
      }
      reset_gfn(kvm, cur_slot, cur_offset, mask);
    }
    cur_slot = next_slot;
    cur_offset = next_offset;
    mask = 1n;
  }
  if (mask !== 0n) reset_gfn(kvm, cur_slot, cur_offset, mask);
}

/** kvm_reset_dirty_gfn() of an entry's u64 offset: one past any slot's pages is no slot's. */
function reset_gfn(kvm: Kvm, slot: number, offset: bigint, mask: bigint): void {
  if (offset >= 2n ** 52n) return;
  kvm_reset_dirty_gfn(kvm, slot, Number(offset), mask);
}

/**
 * KVM_RESET_DIRTY_RINGS (kvm_vm_ioctl_reset_dirty_pages()): -EINVAL without dirty rings; reset
 * every vCPU's ring, in creation order, then one remote TLB flush if anything was reset. Returns
 * the number of entries reset.
 */
export function kvm_vm_ioctl_reset_dirty_pages(kvm: Kvm): number {
  if (!kvm.dirty_ring_size) return -Errno.EINVAL;
  const count = { n: 0 };
  for (const vcpu of kvm.vcpus.values()) {
    const ring = rings.get(vcpu);
    if (ring !== undefined) kvm_dirty_ring_reset(kvm, ring, count);
  }
  if (count.n) kvm_flush_remote_tlbs(kvm);
  return count.n;
}
