/**
 * The VMM side of D4 (Sean Christopherson's fd-based RFC, 20210824005248.200037-1-seanjc@google.com,
 * "Punching Holes"; the QEMU half of Chao Peng's RFC v1 backs RAM the same way): guest RAM is a
 * memfd mapped MAP_SHARED (the shared memslots of address space 0) plus a memfd sealed
 * F_SEAL_GUEST (the store) that private memslots of address space 2 point into at the gpa's
 * offset. A conversion of [gpa, gpa + len) is memslot surgery, as the RFC says ("conversion =
 * unmap the private GFN range, then map shared"):
 *   - the slots of the side the range leaves are deleted and their remainders recreated on
 *     each side of the hole (the RFC's hole punch: "A new KVM ioctl() will likely be needed to
 *     allow userspace to punch a hole in a memslot"; with the RFC's ioctls it is delete and
 *     recreate);
 *   - the range joins the other side, merged with the slots it touches (one slot per run);
 *   - QEMU's discard frees the side left behind (a punch of the shared memfd, or of the store,
 *     whose pages KVM unmaps first through the store's callback).
 * Every step is a KVM_SET_USER_MEMORY_REGION (an SRCU grace period each); a guest that scatters
 * its shared pages needs one slot per run, up to KVM_USER_MEM_SLOTS (then -EINVAL): "A
 * misbehaving guest that triggers a large number of shared memory mappings will consume a large
 * number of memslots". The store has no mapping, so hva() is the shared memfd's mapping: a
 * private gpa has no host address at all, which is why VFIO cannot map it (Yu Zhang).
 */
import { Errno } from '@cocosim/core';
import {
  F_ADD_SEALS, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, MAP_FAILED, MAP_SHARED, MFD_ALLOW_SEALING, MFD_CLOEXEC, PROT_READ, PROT_WRITE,
} from '@cocosim/mm';
import type { CvmDesign, CvmVendor, CvmVm } from '../../cvm.js';
import { F_SEAL_GUEST, KVM_DEFAULT_ADDRESS_SPACE, KVM_PRIVATE_ADDRESS_SPACE, KVM_SET_USER_MEMORY_REGION_RFC } from './uapi.js';

/** One memslot as the VMM created it: [gpa, gpa + size) in address space `as_id`. */
interface VmmSlot {
  readonly id: number;
  readonly gpa: bigint;
  readonly size: bigint;
}

/** What the D4 VMM keeps per VM. */
export interface FdRfcVmmState {
  /** The shared memfd and its mapping (the shared slots' userspace_addr). */
  readonly memfd: number;
  readonly hva: bigint;
  /** The F_SEAL_GUEST store backing the private slots (offset = gpa - base). */
  readonly store_fd: number;
  /** The VMM's slots of each address space, by gpa. */
  readonly slots: Map<number, VmmSlot[]>;
  /** KVM_SET_USER_MEMORY_REGION calls made by conversions (the memslot churn). */
  nr_slot_updates: number;
}

const KEY = 'fd_rfc';

/** The D4 VMM's state of `vm` (after add_memory). */
export function fd_rfc_vmm_state(vm: CvmVm): FdRfcVmmState {
  return vm.state.get(KEY) as FdRfcVmmState;
}

/** KVM_SET_USER_MEMORY_REGION (the RFC's struct) of one slot; size 0 deletes it. */
function set_region(vm: CvmVm, s: FdRfcVmmState, as_id: number, id: number, gpa: bigint, size: bigint): number {
  const priv = as_id === KVM_PRIVATE_ADDRESS_SPACE;
  return vm.p.ioctl(vm.vm_fd, KVM_SET_USER_MEMORY_REGION_RFC, {
    slot: (as_id << 16) | id, flags: 0, guest_phys_addr: gpa, memory_size: size,
    userspace_addr: priv ? gpa - vm.base : s.hva + (gpa - vm.base), fd: priv ? s.store_fd : 0,
  }) < 0 ? -1 : 0;
}

/** The lowest slot id of the address space the VMM does not use. */
function free_id(list: readonly VmmSlot[]): number {
  const used = new Set(list.map((x) => x.id));
  let id = 0;
  while (used.has(id)) id++;
  return id;
}

/** Create [gpa, gpa + size) in `as_id` with a fresh id. */
function add_slot(vm: CvmVm, s: FdRfcVmmState, as_id: number, gpa: bigint, size: bigint): number {
  const list = s.slots.get(as_id)!;
  const id = free_id(list);
  if (set_region(vm, s, as_id, id, gpa, size) < 0) return -1;
  s.nr_slot_updates++;
  list.push({ id, gpa, size });
  list.sort((a, b) => (a.gpa < b.gpa ? -1 : 1));
  return 0;
}

/** Delete one slot of `as_id`. */
function del_slot(vm: CvmVm, s: FdRfcVmmState, as_id: number, slot: VmmSlot): number {
  if (set_region(vm, s, as_id, slot.id, slot.gpa, 0n) < 0) return -1;
  s.nr_slot_updates++;
  const list = s.slots.get(as_id)!;
  list.splice(list.indexOf(slot), 1);
  return 0;
}

/** Punch [start, end) out of the slots of `as_id`: delete each slot it overlaps, recreate the rest. */
function punch_slots(vm: CvmVm, s: FdRfcVmmState, as_id: number, start: bigint, end: bigint): number {
  for (const slot of s.slots.get(as_id)!.filter((x) => x.gpa < end && x.gpa + x.size > start)) {
    if (del_slot(vm, s, as_id, slot) < 0) return -1;
    if (slot.gpa < start && add_slot(vm, s, as_id, slot.gpa, start - slot.gpa) < 0) return -1;
    const slot_end = slot.gpa + slot.size;
    if (slot_end > end && add_slot(vm, s, as_id, end, slot_end - end) < 0) return -1;
  }
  return 0;
}

/** Map [start, end) in `as_id`, merged with the slots it overlaps or touches. */
function fill_slots(vm: CvmVm, s: FdRfcVmmState, as_id: number, start: bigint, end: bigint): number {
  let lo = start;
  let hi = end;
  for (const slot of s.slots.get(as_id)!.filter((x) => x.gpa <= end && x.gpa + x.size >= start)) {
    if (slot.gpa < lo) lo = slot.gpa;
    if (slot.gpa + slot.size > hi) hi = slot.gpa + slot.size;
    if (del_slot(vm, s, as_id, slot) < 0) return -1;
  }
  return add_slot(vm, s, as_id, lo, hi - lo);
}

/** The shared memfd and its mapping, the store, one shared slot over all of guest memory. */
function add_memory(vm: CvmVm): number {
  const { p } = vm;
  const memfd = p.memfd_create('guest-ram', MFD_CLOEXEC);
  if (memfd < 0 || p.ftruncate(memfd, vm.size) < 0) return -1;
  const hva = p.mmap(0, vm.size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
  if (hva === MAP_FAILED) return -1;
  // F_SEAL_GUEST goes on while the file is empty (-EBUSY otherwise), then the size.
  const store_fd = p.memfd_create('guest-private', MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (store_fd < 0 || p.fcntl(store_fd, F_ADD_SEALS, F_SEAL_GUEST) < 0 || p.ftruncate(store_fd, vm.size) < 0) return -1;
  const s: FdRfcVmmState = {
    memfd, hva, store_fd, nr_slot_updates: 0,
    slots: new Map([[KVM_DEFAULT_ADDRESS_SPACE, []], [KVM_PRIVATE_ADDRESS_SPACE, []]]),
  };
  if (add_slot(vm, s, KVM_DEFAULT_ADDRESS_SPACE, vm.base, vm.size) < 0) return -1;
  s.nr_slot_updates = 0;
  vm.state.set(KEY, s);
  return 0;
}

/** The RFC's conversion: hole in the side left, slot on the side joined, discard of the side left. */
function convert(vm: CvmVm, gpa: bigint, len: bigint, to_private: boolean): number {
  const { p } = vm;
  const s = fd_rfc_vmm_state(vm);
  const end = gpa + len;
  if (len <= 0n || gpa % 4096n !== 0n || len % 4096n !== 0n || gpa < vm.base || end > vm.base + vm.size) {
    p.errno = Errno.EINVAL;
    return -1;
  }
  const from = to_private ? KVM_DEFAULT_ADDRESS_SPACE : KVM_PRIVATE_ADDRESS_SPACE;
  const to = to_private ? KVM_PRIVATE_ADDRESS_SPACE : KVM_DEFAULT_ADDRESS_SPACE;
  if (punch_slots(vm, s, from, gpa, end) < 0 || fill_slots(vm, s, to, gpa, end) < 0) return -1;
  if (!vm.policy.discard) return 0;
  return p.fallocate(to_private ? s.memfd : s.store_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, gpa - vm.base, len) < 0 ? -1 : 0;
}

export const fd_rfc_vmm: CvmDesign = {
  name: 'fd_rfc',
  applies(vendor: CvmVendor): string | undefined {
    // The RFC targeted TDX, but defined no way to populate and measure a private memslot
    // (KVM_TDX_INIT_MEM_REGION and SNP_LAUNCH_UPDATE came with guest_memfd's populate).
    if (vendor.launch_update !== undefined) return 'the fd-based RFC defines no launch flow (populate/measure) for private memslots';
    return undefined;
  },
  add_memory,
  convert,
  hva: (vm, gpa) => fd_rfc_vmm_state(vm).hva + (gpa - vm.base),
};
