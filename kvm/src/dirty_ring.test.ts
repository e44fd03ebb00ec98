import { describe, expect, test } from 'vitest';
import { Errno, createRootContainer } from '@cocosim/core';
import { Kernel, MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE, Process, mmRegistrar } from '@cocosim/mm';
import { kvmRegistrar } from './kvm.js';
import {
  KVM_CAP_DIRTY_LOG_RING, KVM_CAP_DIRTY_LOG_RING_ACQ_REL, KVM_CHECK_EXTENSION, KVM_CREATE_VCPU, KVM_CREATE_VM,
  KVM_DIRTY_LOG_PAGE_OFFSET, KVM_ENABLE_CAP, KVM_GET_DIRTY_LOG, KVM_MEM_LOG_DIRTY_PAGES,
  KVM_RESET_DIRTY_RINGS, KVM_SET_USER_MEMORY_REGION,
} from './uapi.js';

const PAGE = 4096;

function vm(ringBytes: number): { p: Process; vm: number; vcpu: number; mem: bigint; ring: bigint } {
  const p = new Process(createRootContainer({}, mmRegistrar({ nr_pages: 8192 }), kvmRegistrar()).resolve(Kernel));
  const vm = p.ioctl(p.open('/dev/kvm'), KVM_CREATE_VM, 0);
  expect(p.ioctl(vm, KVM_ENABLE_CAP, { cap: KVM_CAP_DIRTY_LOG_RING, args: [ringBytes] })).toBe(0);
  const vcpu = p.ioctl(vm, KVM_CREATE_VCPU, 0);
  const mem = p.mmap(0, 256 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  expect(p.ioctl(vm, KVM_SET_USER_MEMORY_REGION, { slot: 3, flags: KVM_MEM_LOG_DIRTY_PAGES, memory_size: 256 * PAGE, userspace_addr: mem })).toBe(0);
  const ring = p.mmap(0, ringBytes, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, KVM_DIRTY_LOG_PAGE_OFFSET * PAGE);
  return { p, vm, vcpu, mem, ring };
}

/** The ring's entries as [flags, slot, offset]. */
function entries(p: Process, ring: bigint, n: number): [number, number, number][] {
  const b = p.load(ring, 16 * n) as Uint8Array;
  const v = new DataView(b.buffer, b.byteOffset);
  return Array.from({ length: n }, (_, k) => [v.getUint32(16 * k, true), v.getUint32(16 * k + 4, true), Number(v.getBigUint64(16 * k + 8, true))]);
}

describe('dirty rings (virt/kvm/dirty_ring.c)', () => {
  test('KVM_CHECK_EXTENSION says the largest ring; enabling validates the size, once, before vCPUs', () => {
    const p = new Process(createRootContainer({}, mmRegistrar({ nr_pages: 1024 }), kvmRegistrar()).resolve(Kernel));
    const kvm = p.open('/dev/kvm');
    for (const cap of [KVM_CAP_DIRTY_LOG_RING, KVM_CAP_DIRTY_LOG_RING_ACQ_REL]) expect(p.ioctl(kvm, KVM_CHECK_EXTENSION, cap)).toBe(1 << 20);
    const v = p.ioctl(kvm, KVM_CREATE_VM, 0);
    const enable = (size: number | bigint, flags = 0): number => (p.ioctl(v, KVM_ENABLE_CAP, { cap: KVM_CAP_DIRTY_LOG_RING, flags, args: [size] }) === 0 ? 0 : p.errno);
    for (const size of [0, 1024, 2048, 4095, 3 * PAGE]) expect(enable(size), `size ${size}`).toBe(Errno.EINVAL);
    expect(enable(2 << 20)).toBe(Errno.E2BIG);
    // a __u32: 2^32 + 4096 is 4096; the flags are not read
    expect(enable(2n ** 32n + 4096n, 5)).toBe(0);
    expect(enable(8192)).toBe(Errno.EINVAL);
    const v2 = p.ioctl(kvm, KVM_CREATE_VM, 0);
    expect(p.ioctl(v2, KVM_CREATE_VCPU, 0)).toBeGreaterThan(0);
    expect(p.ioctl(v2, KVM_ENABLE_CAP, { cap: KVM_CAP_DIRTY_LOG_RING_ACQ_REL, args: [PAGE] })).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.ioctl(v2, KVM_RESET_DIRTY_RINGS, 0)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
  });

  test('guest writes push (slot, offset); KVM_RESET_DIRTY_RINGS frees the harvested entries and re-arms their pages', () => {
    const t = vm(PAGE);
    expect(t.p.ioctl(t.vm, KVM_GET_DIRTY_LOG, { slot: 3, dirty_bitmap: t.mem })).toBe(-1);
    expect(t.p.errno).toBe(Errno.ENXIO);
    for (const gfn of [3, 5, 3]) expect(t.p.guest_store(t.vcpu, gfn * PAGE, Uint8Array.of(1))).toBe(0);
    expect(entries(t.p, t.ring, 3)).toEqual([[1, 3, 3], [1, 3, 5], [0, 0, 0]]);
    expect(t.p.ioctl(t.vm, KVM_RESET_DIRTY_RINGS, 0)).toBe(0);
    expect(t.p.store(t.ring, Uint8Array.of(2))).toBe(0);
    expect(t.p.ioctl(t.vm, KVM_RESET_DIRTY_RINGS, 0)).toBe(1);
    expect(entries(t.p, t.ring, 2)).toEqual([[0, 3, 3], [1, 3, 5]]);
    // page 3 logs again, page 5 (not reset) does not
    expect(t.p.guest_store(t.vcpu, 3 * PAGE, Uint8Array.of(2))).toBe(0);
    expect(t.p.guest_store(t.vcpu, 5 * PAGE, Uint8Array.of(2))).toBe(0);
    expect(entries(t.p, t.ring, 3)[2]).toEqual([1, 3, 3]);
  });

  test('at the soft limit the vCPU exits with KVM_EXIT_DIRTY_RING_FULL until the ring is reset', () => {
    const t = vm(PAGE);
    const r = t.p.guest_store(t.vcpu, 0, new Uint8Array(200 * PAGE).fill(0x5a));
    expect(r).toEqual({ reason: 'KVM_EXIT_DIRTY_RING_FULL' });
    expect(t.p.load(t.mem + 190n * BigInt(PAGE), 1)).toEqual(Uint8Array.of(0x5a));
    expect(t.p.load(t.mem + 191n * BigInt(PAGE), 1)).toEqual(Uint8Array.of(0));
    expect(t.p.guest_load(t.vcpu, 0, 1)).toEqual({ reason: 'KVM_EXIT_DIRTY_RING_FULL' });
    const harvest = new Uint8Array(16);
    harvest[0] = 2;
    expect(t.p.store(t.ring, harvest)).toBe(0);
    expect(t.p.ioctl(t.vm, KVM_RESET_DIRTY_RINGS, 0)).toBe(1);
    expect(t.p.guest_load(t.vcpu, 0, 1)).toEqual(Uint8Array.of(0x5a));
  });
});
