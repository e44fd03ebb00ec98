/**
 * Coalesced MMIO and PIO (virt/kvm/coalesced_mmio.c, the KVM_REGISTER_COALESCED_MMIO cases of
 * virt/kvm/kvm_main.c, Linux 6.18): user space registers zones of guest physical (or port)
 * addresses whose writes need no exit. A guest write that falls wholly inside a zone of its bus
 * is appended to the VM's ring, the page at KVM_COALESCED_MMIO_PAGE_OFFSET of every vCPU mapping
 * (struct kvm_coalesced_mmio_ring { __u32 first, last; struct kvm_coalesced_mmio entries[]; }),
 * and the guest goes on; user space drains the ring at its next exit by moving `first`. A full
 * ring, or a write that leaves every zone, exits as usual (KVM_EXIT_MMIO / KVM_EXIT_IO). Reads are
 * never coalesced.
 */
import { Errno, PAGE_SIZE, type Pfn } from '@cocosim/core';
import type { Kvm } from './kvm_host.js';
import { user_struct_field } from './kvm_memslots.js';

/** NR_IOBUS_DEVS: devices a bus holds (register beyond it: -ENOSPC). */
const NR_IOBUS_DEVS = 1000;
/** sizeof(struct kvm_coalesced_mmio): phys_addr, len, pio, data[8]. */
const SIZEOF_ENTRY = 24;
/** The ring's header: first and last (__u32 each). */
const RING_HEADER = 8;
/** KVM_COALESCED_MMIO_MAX: the entries one page holds. */
const KVM_COALESCED_MMIO_MAX = Math.floor((PAGE_SIZE - RING_HEADER) / SIZEOF_ENTRY);

/** struct kvm_coalesced_mmio_zone { __u64 addr; __u32 size; union { __u32 pad; __u32 pio; }; }. */
interface Zone {
  readonly addr: bigint;
  readonly size: number;
  readonly pio: number;
}

/** kvm->coalesced_zones, in registration order (list_add_tail()). */
const zones = new WeakMap<Kvm, Zone[]>();

function zones_of(kvm: Kvm): Zone[] {
  let z = zones.get(kvm);
  if (z === undefined) zones.set(kvm, (z = []));
  return z;
}

/**
 * struct kvm_io_range of a bus (include/linux/kvm_host.h): { gpa_t addr; int len; dev }. A
 * zone's __u32 size becomes the int len of kvm_io_bus_register_dev(), so a size of 2^31 or more
 * is negative here.
 */
interface KvmIoRange {
  readonly addr: bigint;
  readonly len: number;
  readonly zone: Zone;
}

/** kvm->buses[KVM_MMIO_BUS] and [KVM_PIO_BUS]: their ranges, sorted as kvm_io_bus_register_dev() inserts them. */
const buses = new WeakMap<Kvm, [KvmIoRange[], KvmIoRange[]]>();

function bus_of(kvm: Kvm, pio: number): KvmIoRange[] {
  let b = buses.get(kvm);
  if (b === undefined) buses.set(kvm, (b = [[], []]));
  return b[pio];
}

const u64 = (v: bigint): bigint => BigInt.asUintN(64, v);

/**
 * kvm_io_bus_cmp() (virt/kvm/kvm_main.c): r1 below r2, above it, or 0 when they overlap (r2 of
 * len 0: the same address). The ends are gpa_t sums with the int lengths, so they wrap.
 */
function kvm_io_bus_cmp(r1: { addr: bigint; len: number }, r2: { addr: bigint; len: number }): number {
  let addr1 = r1.addr;
  let addr2 = r2.addr;
  if (addr1 < addr2) return -1;
  if (r2.len) {
    addr1 = u64(addr1 + BigInt(r1.len));
    addr2 = u64(addr2 + BigInt(r2.len));
  }
  if (addr1 > addr2) return 1;
  return 0;
}

/**
 * kvm_io_bus_get_first_dev(): the kernel's bsearch() (lib/bsearch.c) of the sorted ranges with
 * kvm_io_bus_cmp(), then back to the first range that still compares equal; -1 (-ENOENT) when
 * the search finds none. With negative lengths the order is no order, and the search misses
 * ranges as the kernel's does.
 */
function kvm_io_bus_get_first_dev(bus: readonly KvmIoRange[], key: { addr: bigint; len: number }): number {
  let base = 0;
  let num = bus.length;
  let found = -1;
  while (num > 0) {
    const pivot = base + (num >> 1);
    const result = kvm_io_bus_cmp(key, bus[pivot]);
    if (result === 0) {
      found = pivot;
      break;
    }
    if (result > 0) {
      base = pivot + 1;
      num--;
    }
    num >>= 1;
  }
  if (found < 0) return -1;
  let off = found;
  while (off > 0 && kvm_io_bus_cmp(key, bus[off - 1]) === 0) off--;
  return off;
}

/** copy_from_user() of struct kvm_coalesced_mmio_zone: the zone, or -EFAULT. */
function copy_zone(arg: unknown): Zone | number {
  if (typeof arg !== 'object' || arg === null) return -Errno.EFAULT;
  const o = arg as Record<string, unknown>;
  const addr = user_struct_field(o, 'addr', 64);
  const size = user_struct_field(o, 'size', 32);
  /* the union's two names; pio is what the kernel reads */
  const pio = user_struct_field(o, o.pio !== undefined ? 'pio' : 'pad', 32);
  if (addr === undefined || size === undefined || pio === undefined) return -Errno.EFAULT;
  return { addr, size: Number(size), pio: Number(pio) };
}

/**
 * coalesced_mmio_in_range(): [addr, addr + len) lies wholly inside the zone, in u64 arithmetic
 * (a negative len, a range that wraps, or a zone whose end wraps holds nothing of it).
 */
function coalesced_mmio_in_range(zone: Zone, addr: bigint, len: number): boolean {
  if (len < 0) return false;
  if (addr + BigInt(len) >= 2n ** 64n) return false;
  if (addr < zone.addr) return false;
  return addr + BigInt(len) <= u64(zone.addr + BigInt(zone.size));
}

/**
 * KVM_REGISTER_COALESCED_MMIO (kvm_vm_ioctl_register_coalesced_mmio()): copy the zone in
 * (-EFAULT); pio must be 0 or 1 (-EINVAL); kvm_io_bus_register_dev() on the zone's bus (-ENOSPC
 * once the bus holds NR_IOBUS_DEVS devices).
 */
export function kvm_vm_ioctl_register_coalesced_mmio(kvm: Kvm, arg: unknown): number {
  const zone = copy_zone(arg);
  if (typeof zone === 'number') return zone;
  if (zone.pio !== 1 && zone.pio !== 0) return -Errno.EINVAL;
  const bus = bus_of(kvm, zone.pio);
  if (bus.length > NR_IOBUS_DEVS - 1) return -Errno.ENOSPC;
  /* kvm_io_bus_register_dev(): the new range goes before the first that compares above it */
  const range: KvmIoRange = { addr: zone.addr, len: zone.size | 0, zone };
  let i = 0;
  while (i < bus.length && kvm_io_bus_cmp(bus[i], range) <= 0) i++;
  bus.splice(i, 0, range);
  zones_of(kvm).push(zone);
  return 0;
}

/**
 * KVM_UNREGISTER_COALESCED_MMIO (kvm_vm_ioctl_unregister_coalesced_mmio()): copy in (-EFAULT),
 * pio 0 or 1 (-EINVAL), then every zone of that bus lying inside the given range goes; 0 whether
 * or not any did.
 */
export function kvm_vm_ioctl_unregister_coalesced_mmio(kvm: Kvm, arg: unknown): number {
  const zone = copy_zone(arg);
  if (typeof zone === 'number') return zone;
  if (zone.pio !== 1 && zone.pio !== 0) return -Errno.EINVAL;
  const z = zones_of(kvm);
  /* coalesced_mmio_in_range(dev, zone->addr, zone->size), whose len is an int: a size past 2^31 is negative, no zone's */
  const gone = new Set(z.filter((d) => d.pio === zone.pio && coalesced_mmio_in_range(d, zone.addr, zone.size | 0)));
  zones.set(kvm, z.filter((d) => !gone.has(d)));
  /* kvm_io_bus_unregister_dev() of each */
  const bus = bus_of(kvm, zone.pio);
  for (let i = bus.length - 1; i >= 0; i--) if (gone.has(bus[i].zone)) bus.splice(i, 1);
  return 0;
}

/**
 * kvm_io_bus_write() -> __kvm_io_bus_write() on the MMIO (`pio` false) or PIO bus: from the first
 * range kvm_io_bus_get_first_dev() finds, each that overlaps the access is offered it until one
 * takes it; coalesced_mmio_write() takes it when its zone holds [addr, addr + len) and the ring is
 * not full (insert + 1 == first, or a `last` user space broke), appending {addr, len, pio, data}.
 * true when a zone took the write.
 */
export function coalesced_io_write(kvm: Kvm, pio: boolean, addr: bigint, data: Uint8Array): boolean {
  const b = buses.get(kvm);
  if (b === undefined || kvm.coalesced_mmio_ring < 0) return false;
  const bus = b[pio ? 1 : 0];
  const key = { addr, len: data.length };
  let idx = kvm_io_bus_get_first_dev(bus, key);
  if (idx < 0) return false;
  for (; idx < bus.length && kvm_io_bus_cmp(key, bus[idx]) === 0; idx++) {
    if (coalesced_mmio_write(kvm, bus[idx].zone, addr, data)) return true;
  }
  return false;
}

/** coalesced_mmio_write(): false (-EOPNOTSUPP) outside the zone or with the ring full. */
function coalesced_mmio_write(kvm: Kvm, zone: Zone, addr: bigint, data: Uint8Array): boolean {
  if (!coalesced_mmio_in_range(zone, addr, data.length)) return false;
  const phys = kvm.kernel.phys;
  const ring = kvm.coalesced_mmio_ring as Pfn;
  const head = phys.read(ring, 0, RING_HEADER);
  if (!(head instanceof Uint8Array)) return false;
  const hv = new DataView(head.buffer, head.byteOffset);
  const first = hv.getUint32(0, true);
  const insert = hv.getUint32(4, true);
  if (insert >= KVM_COALESCED_MMIO_MAX || (insert + 1) % KVM_COALESCED_MMIO_MAX === first) return false;
  const e = new Uint8Array(SIZEOF_ENTRY);
  const ev = new DataView(e.buffer);
  ev.setBigUint64(0, addr, true);
  ev.setUint32(8, data.length, true);
  ev.setUint32(12, zone.pio, true);
  e.set(data.subarray(0, 8), 16);
  phys.write(ring, RING_HEADER + insert * SIZEOF_ENTRY, e);
  const last = new Uint8Array(4);
  new DataView(last.buffer).setUint32(0, (insert + 1) % KVM_COALESCED_MMIO_MAX, true);
  phys.write(ring, 4, last);
  return true;
}
