import { describe, expect, test } from 'vitest';
import { Errno, createRootContainer } from '@cocosim/core';
import { Kernel, MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE, Process, mmRegistrar } from '@cocosim/mm';
import { kvmRegistrar } from './kvm.js';
import type { KvmVcpu } from './kvm_host.js';
import { guestStore, pioOut } from './guest.js';
import {
  KVM_CAP_COALESCED_PIO, KVM_CHECK_EXTENSION, KVM_CREATE_VCPU, KVM_CREATE_VM, KVM_EXIT_HLT, KVM_EXIT_IO, KVM_EXIT_MMIO,
  KVM_REGISTER_COALESCED_MMIO, KVM_RUN, KVM_SET_USER_MEMORY_REGION, KVM_UNREGISTER_COALESCED_MMIO,
} from './uapi.js';
import { kvm_vcpu_set_guest_program } from './x86.js';

function setup(): { p: Process; vm: number; fd: number; vcpu: KvmVcpu; ring: bigint } {
  const p = new Process(createRootContainer({}, mmRegistrar({ nr_pages: 4096 }), kvmRegistrar()).resolve(Kernel));
  const vm = p.ioctl(p.open('/dev/kvm'), KVM_CREATE_VM, 0);
  /* the shadow MMU needs a memslot before the first KVM_RUN (kvm_mmu_reload()) */
  const mem = p.mmap(0, 16 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  expect(p.ioctl(vm, KVM_SET_USER_MEMORY_REGION, { slot: 0, guest_phys_addr: 0, memory_size: 16 * 4096, userspace_addr: mem })).toBe(0);
  const fd = p.ioctl(vm, KVM_CREATE_VCPU, 0);
  const vcpu = p.task.files.lookup(fd)!.private_data as KvmVcpu;
  const run = p.mmap(0, 3 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  return { p, vm, fd, vcpu, ring: run + 2n * 4096n };
}

/** The ring's first, last and entries [phys_addr, len, pio, data]. */
function ring(p: Process, at: bigint, n: number): { first: number; last: number; entries: [bigint, number, number, string][] } {
  const b = p.load(at, 8 + 24 * n) as Uint8Array;
  const v = new DataView(b.buffer, b.byteOffset);
  const entries = Array.from({ length: n }, (_, k): [bigint, number, number, string] => {
    const e = 8 + 24 * k;
    const len = v.getUint32(e + 8, true);
    return [v.getBigUint64(e, true), len, v.getUint32(e + 12, true), Buffer.from(b.subarray(e + 16, e + 16 + len)).toString('hex')];
  });
  return { first: v.getUint32(0, true), last: v.getUint32(4, true), entries };
}

describe('coalesced MMIO and PIO (virt/kvm/coalesced_mmio.c; kvm-coalesced-mmio.kernel.jsonl)', () => {
  test('writes inside a zone go to the ring without an exit; the rest exits', () => {
    const s = setup();
    expect(s.p.ioctl(s.vm, KVM_REGISTER_COALESCED_MMIO, { addr: 0x10000000, size: 4096, pio: 2 })).toBe(-1);
    expect(s.p.errno).toBe(Errno.EINVAL);
    expect(s.p.ioctl(s.vm, KVM_REGISTER_COALESCED_MMIO, { addr: 0x10000000, size: 4096, pio: 0 })).toBe(0);
    kvm_vcpu_set_guest_program(s.vcpu, function* () {
      yield* guestStore(0x10000100, Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]));
      yield* guestStore(0x10000ffe, Uint8Array.from([0xaa, 0xbb, 0xcc, 0xdd]));
    });
    expect(s.p.ioctl(s.fd, KVM_RUN, 0)).toBe(0);
    // one 8-byte mov is one entry; the 4-byte one runs past the zone and the page: its first page's
    // half is coalesced, the rest exits
    expect(s.vcpu.run.exit_reason).toBe(KVM_EXIT_MMIO);
    expect(s.vcpu.run.mmio.phys_addr).toBe(0x10001000n);
    expect(ring(s.p, s.ring, 2)).toEqual({
      first: 0, last: 2, entries: [[0x10000100n, 8, 0, '0102030405060708'], [0x10000ffen, 2, 0, 'aabb']],
    });
  });

  test('an OUT to a coalesced PIO zone completes in the kernel; unregistering takes only zones inside the range', () => {
    const s = setup();
    expect(s.p.ioctl(s.vm, KVM_CHECK_EXTENSION, KVM_CAP_COALESCED_PIO)).toBe(1);
    expect(s.p.ioctl(s.vm, KVM_REGISTER_COALESCED_MMIO, { addr: 0x80, size: 4, pio: 1 })).toBe(0);
    kvm_vcpu_set_guest_program(s.vcpu, function* () {
      yield* pioOut(0x80, 0xbeef, 2);
      yield* pioOut(0x80, 0xcafe, 2);
    });
    expect(s.p.ioctl(s.fd, KVM_RUN, 0)).toBe(0);
    expect(s.vcpu.run.exit_reason).toBe(KVM_EXIT_HLT);
    expect(ring(s.p, s.ring, 2).entries).toEqual([[0x80n, 2, 1, 'efbe'], [0x80n, 2, 1, 'feca']]);
    // a range that does not hold the zone leaves it; one that does takes it
    expect(s.p.ioctl(s.vm, KVM_UNREGISTER_COALESCED_MMIO, { addr: 0x81, size: 4, pio: 1 })).toBe(0);
    expect(s.p.ioctl(s.vm, KVM_UNREGISTER_COALESCED_MMIO, { addr: 0x80, size: 4, pio: 1 })).toBe(0);
    kvm_vcpu_set_guest_program(s.vcpu, function* () {
      yield* pioOut(0x80, 1, 1);
    });
    expect(s.p.ioctl(s.fd, KVM_RUN, 0)).toBe(0);
    expect(s.vcpu.run.exit_reason).toBe(KVM_EXIT_IO);
  });

  test('a zone is a bus range of int length: size 0xffffffff is found by no write, size 0x80000000 by every one above it', () => {
    const s = setup();
    expect(s.p.ioctl(s.vm, KVM_REGISTER_COALESCED_MMIO, { addr: 0x100000, size: 0xffffffff, pio: 0 })).toBe(0);
    kvm_vcpu_set_guest_program(s.vcpu, function* () {
      yield* guestStore(0x100000, Uint8Array.of(1));
    });
    expect(s.p.ioctl(s.fd, KVM_RUN, 0)).toBe(0);
    expect(s.vcpu.run.exit_reason).toBe(KVM_EXIT_MMIO);
    expect(ring(s.p, s.ring, 0)).toEqual({ first: 0, last: 0, entries: [] });
    /* the same address under a zone of size 2^31: len -2^31 overlaps every access at or above it */
    expect(s.p.ioctl(s.vm, KVM_UNREGISTER_COALESCED_MMIO, { addr: 0, size: 0x7fffffff, pio: 0 })).toBe(0);
    expect(s.p.ioctl(s.vm, KVM_REGISTER_COALESCED_MMIO, { addr: 0x100000, size: 0x80000000, pio: 0 })).toBe(0);
    kvm_vcpu_set_guest_program(s.vcpu, function* () {
      yield* guestStore(0x100000, Uint8Array.of(2));
      yield* guestStore(0x10000000, Uint8Array.of(3));
      yield* guestStore(0x80100000, Uint8Array.of(4));
    });
    expect(s.p.ioctl(s.fd, KVM_RUN, 0)).toBe(0);
    /* the last write is found on the bus but lies past the zone's u32 size: it exits */
    expect(s.vcpu.run.mmio.phys_addr).toBe(0x80100000n);
    expect(ring(s.p, s.ring, 2)).toEqual({ first: 0, last: 2, entries: [[0x100000n, 1, 0, '02'], [0x10000000n, 1, 0, '03']] });
  });
});
