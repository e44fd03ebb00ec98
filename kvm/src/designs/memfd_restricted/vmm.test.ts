/**
 * memfd_restricted's VMM (vmm.ts) on vendor sw_protected through cvm_create/cvm_run: the private
 * half is memfd_restricted(0) bound with restricted_fd, a conversion is v10's per-VM
 * KVM_SET_MEMORY_ATTRIBUTES followed by QEMU's discard of the side left, contents checked from
 * guest and VMM, S1's store missing the private page, and S16's second copy without discard.
 */
import { describe, expect, test } from 'vitest';
import { Errno, createRootContainer } from '@cocosim/core';
import { Kernel, Process, mmRegistrar } from '@cocosim/mm';
import { kvmRegistrar, kvm_sw_protected_x86_ops } from '../../kvm.js';
import { cvm_create, cvm_run, sw_protected_cvm, type CvmVm } from '../../cvm.js';
import { guestLoad, guestStore } from '../../guest.js';
import { KVM_EXIT_HLT } from '../../uapi.js';
import { private_fd_vmm_state } from '../memfd_seal/vmm.js';
import { memfd_restricted_design, restrictedmem } from './index.js';
import { memfd_restricted_vmm } from './vmm.js';

function vm(discard = true): CvmVm {
  const kernel = createRootContainer({}, mmRegistrar({ nr_pages: 8192 }), kvmRegistrar({ x86_ops: kvm_sw_protected_x86_ops }),
    memfd_restricted_design.registrar()).resolve(Kernel);
  const v = cvm_create(new Process(kernel), sw_protected_cvm, memfd_restricted_vmm, { size: 16n * 4096n, policy: { discard } });
  if (typeof v === 'number') throw new Error(`cvm_create: ${v}`);
  return v;
}

const fill = (b: number): Uint8Array => new Uint8Array(8).fill(b);

/** Pages allocated in the restricted fd's shmem file. */
function private_pages(v: CvmVm): number {
  const file = v.p.task.files.lookup(private_fd_vmm_state(v, 'memfd_restricted').private_fd)!;
  return restrictedmem(file)!.memfd.f_mapping.nrpages;
}

describe('memfd_restricted VMM on sw_protected', () => {
  test('set-up: a restricted fd bound by the slot; without the design the VMM fails at memfd_restricted (ENOSYS)', () => {
    const v = vm();
    expect(memfd_restricted_design.vmm).toBe(memfd_restricted_vmm);
    const file = v.p.task.files.lookup(private_fd_vmm_state(v, 'memfd_restricted').private_fd)!;
    expect(restrictedmem(file)!.bindings.mtree_load(15)).toBeDefined();
    const base = createRootContainer({}, mmRegistrar({ nr_pages: 4096 }), kvmRegistrar({ x86_ops: kvm_sw_protected_x86_ops })).resolve(Kernel);
    expect(cvm_create(new Process(base), sw_protected_cvm, memfd_restricted_vmm, { size: 4096n })).toBe(-Errno.ENOSYS);
  });

  test('a conversion each way: the attributes switch pages, the VMM\'s store (S1) misses the private one, each discard frees the side left', () => {
    const v = vm();
    const gpa = v.base + 4096n;
    const hva = memfd_restricted_vmm.hva(v, gpa)!;
    expect(v.p.store(hva, fill(0x11))).toBe(0);
    let shared: Uint8Array | undefined;
    let ret: bigint | undefined;
    const r = cvm_run(v, function* () {
      shared = yield* guestLoad(gpa, 8);
      ret = yield* v.vendor.guest_convert(v, gpa, 1n, true);
      yield* guestStore(gpa, fill(0x5e));
    });
    expect(r.exit_reason).toBe(KVM_EXIT_HLT);
    expect(r.conversions).toEqual([{ gpa, npages: 1n, to_private: true, ret: 0, errno: 0 }]);
    expect(ret).toBe(0n);
    expect(shared).toEqual(fill(0x11));
    expect(private_pages(v)).toBe(1);
    // The shared page was discarded: the VMM's mapping refaults zeroed, and its store stays there.
    expect(v.p.load(hva, 8)).toEqual(fill(0));
    expect(v.p.store(hva, fill(0xee))).toBe(0);
    let secret: Uint8Array | undefined;
    let back: Uint8Array | undefined;
    const r2 = cvm_run(v, function* () {
      secret = yield* guestLoad(gpa, 8);
      yield* v.vendor.guest_convert(v, gpa, 1n, false);
      back = yield* guestLoad(gpa, 8);
    });
    expect(r2.conversions).toEqual([{ gpa, npages: 1n, to_private: false, ret: 0, errno: 0 }]);
    expect(secret).toEqual(fill(0x5e));
    expect(back).toEqual(fill(0xee));
    // restrictedmem_punch_hole() freed the private page.
    expect(private_pages(v)).toBe(0);
  });

  test('without discard both copies live: the private page and its secret survive a round trip (S16)', () => {
    const v = vm(false);
    const gpa = v.base;
    expect(v.p.store(memfd_restricted_vmm.hva(v, gpa)!, fill(0x5a))).toBe(0);
    let shared: Uint8Array | undefined;
    let again: Uint8Array | undefined;
    cvm_run(v, function* () {
      yield* v.vendor.guest_convert(v, gpa, 1n, true);
      yield* guestStore(gpa, fill(0x5e));
      yield* v.vendor.guest_convert(v, gpa, 1n, false);
      shared = yield* guestLoad(gpa, 8);
      yield* v.vendor.guest_convert(v, gpa, 1n, true);
      again = yield* guestLoad(gpa, 8);
    });
    expect(shared).toEqual(fill(0x5a));
    expect(again).toEqual(fill(0x5e));
    expect(private_pages(v)).toBe(1);
  });
});
