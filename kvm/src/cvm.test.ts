/**
 * cvm.ts on the reference platform (SW_PROTECTED x upstream): the VMM loop answers the guest's
 * KVM_HC_MAP_GPA_RANGE with the design's conversion, private data is invisible through the
 * VMM's mapping, and QEMU's discard makes a page read back as zeroes after a round trip.
 */
import { describe, expect, test } from 'vitest';
import { createRootContainer } from '@cocosim/core';
import { Kernel, Process, mmRegistrar } from '@cocosim/mm';
import { kvmRegistrar, kvm_sw_protected_x86_ops } from './kvm.js';
import { cvm_create, cvm_run, sw_protected_cvm, type CvmVm } from './cvm.js';
import { upstream } from './designs/upstream/index.js';
import { upstream_vmm } from './designs/upstream/vmm.js';
import { guestLoad, guestStore } from './guest.js';
import { KVM_EXIT_HLT, KVM_X86_SW_PROTECTED_VM } from './uapi.js';

function vm(discard = true): CvmVm {
  const kernel = createRootContainer({}, mmRegistrar({ nr_pages: 8192 }), kvmRegistrar({ x86_ops: kvm_sw_protected_x86_ops }),
    upstream.registrar()).resolve(Kernel);
  const v = cvm_create(new Process(kernel), sw_protected_cvm, upstream_vmm, { size: 16n * 4096n, policy: { discard } });
  if (typeof v === 'number') throw new Error(`cvm_create: ${v}`);
  return v;
}

const secret = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);

describe('cvm on sw_protected x upstream', () => {
  test('a private page is a different page from the VMM mapping; the round trip discards it', () => {
    const v = vm();
    expect(v.kvm.arch.vm_type).toBe(KVM_X86_SW_PROTECTED_VM);
    const gpa = v.base + 4096n;
    const hva = upstream_vmm.hva(v, gpa)!;
    expect(v.p.store(hva, new Uint8Array(8).fill(0xee))).toBe(0);
    let before: Uint8Array | undefined;
    const r = cvm_run(v, function* () {
      before = yield* guestLoad(gpa, 8);
      const ret = yield* v.vendor.guest_convert(v, gpa, 1n, true);
      if (ret !== 0n) throw new Error('convert');
      yield* guestStore(gpa, secret);
    });
    expect(r.exit_reason).toBe(KVM_EXIT_HLT);
    expect(r.conversions).toEqual([{ gpa, npages: 1n, to_private: true, ret: 0, errno: 0 }]);
    expect([...before!]).toEqual(new Array(8).fill(0xee));
    // The VMM's mapping is the shared page, discarded on conversion: it refaults zeroed.
    expect(v.p.load(hva, 8)).toEqual(new Uint8Array(8));
    let after: Uint8Array | undefined;
    cvm_run(v, function* () {
      yield* v.vendor.guest_convert(v, gpa, 1n, false);
      after = yield* guestLoad(gpa, 8);
    });
    expect([...after!]).toEqual(new Array(8).fill(0));
  });

  test('without discard the shared copy survives the private period (S16 double allocation)', () => {
    const v = vm(false);
    const gpa = v.base;
    expect(v.p.store(upstream_vmm.hva(v, gpa)!, new Uint8Array(8).fill(0x5a))).toBe(0);
    let after: Uint8Array | undefined;
    cvm_run(v, function* () {
      yield* v.vendor.guest_convert(v, gpa, 1n, true);
      yield* guestStore(gpa, secret);
      yield* v.vendor.guest_convert(v, gpa, 1n, false);
      after = yield* guestLoad(gpa, 8);
    });
    expect([...after!]).toEqual(new Array(8).fill(0x5a));
  });
});
