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

/** kvm->coalesced_zones, which are also the devices of the VM's MMIO and PIO buses here. */
const zones = new WeakMap<Kvm, Zone[]>();

function zones_of(kvm: Kvm): Zone[] {
  let z = zones.get(kvm);
  if (z === undefined) zones.set(kvm, (z = []));
  return z;
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

/** coalesced_mmio_in_range(): [addr, addr + len) lies wholly inside the zone. */
function coalesced_mmio_in_range(zone: Zone, addr: bigint, len: number): boolean {
  if (addr + BigInt(len) >= 2n ** 64n) return false;
  if (addr < zone.addr) return false;
  return addr + BigInt(len) <= zone.addr + BigInt(zone.size);
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
  const z = zones_of(kvm);
  if (z.filter((d) => d.pio === zone.pio).length > NR_IOBUS_DEVS - 1) return -Errno.ENOSPC;
  z.push(zone);
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
  if (zone.size >= 2 ** 31) return 0;
  zones.set(kvm, z.filter((d) => !(d.pio === zone.pio && coalesced_mmio_in_range(d, zone.addr, zone.size))));
  return 0;
}

/**
 * kvm_io_bus_write() over the coalesced zones of the MMIO (`pio` false) or PIO bus:
 * coalesced_mmio_write() of a zone holding [addr, addr + len) appends {addr, len, pio, data} to
 * the ring unless it is full (insert + 1 == first, or a `last` user space broke). true when a zone
 * took the write.
 */
export function coalesced_io_write(kvm: Kvm, pio: boolean, addr: bigint, data: Uint8Array): boolean {
  const z = zones.get(kvm);
  if (z === undefined || kvm.coalesced_mmio_ring < 0) return false;
  const bus = pio ? 1 : 0;
  const zone = z.find((d) => d.pio === bus && coalesced_mmio_in_range(d, addr, data.length));
  if (zone === undefined) return false;
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
