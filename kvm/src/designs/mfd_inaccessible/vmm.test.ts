/**
 * mfd_inaccessible's VMM (vmm.ts) on vendor sw_protected through cvm_create/cvm_run: the private
 * half is memfd_create(MFD_INACCESSIBLE) (never sealable, no user access), conversions are
 * v5/v6's "private iff allocated in the private fd" (fallocate / punch), contents checked from
 * guest and VMM, and S1: the VMM's store through its mapping misses the private page.
 */
import { describe, expect, test } from 'vitest';
import { Errno, createRootContainer } from '@cocosim/core';
import { F_ADD_SEALS, F_GET_SEALS, F_SEAL_SEAL, F_SEAL_WRITE, Kernel, Process, mmRegistrar } from '@cocosim/mm';
import { kvmRegistrar, kvm_sw_protected_x86_ops } from '../../kvm.js';
import { cvm_create, cvm_run, sw_protected_cvm, type CvmVm } from '../../cvm.js';
import { guestLoad, guestStore } from '../../guest.js';
import { KVM_EXIT_HLT } from '../../uapi.js';
import { private_fd_vmm_state } from '../memfd_seal/vmm.js';
import { mfd_inaccessible } from './index.js';
import { mfd_inaccessible_vmm } from './vmm.js';

function vm(): CvmVm {
  const kernel = createRootContainer({}, mmRegistrar({ nr_pages: 8192 }), kvmRegistrar({ x86_ops: kvm_sw_protected_x86_ops }),
    mfd_inaccessible.registrar()).resolve(Kernel);
  const v = cvm_create(new Process(kernel), sw_protected_cvm, mfd_inaccessible_vmm, { size: 16n * 4096n });
  if (typeof v === 'number') throw new Error(`cvm_create: ${v}`);
  return v;
}

const fill = (b: number): Uint8Array => new Uint8Array(8).fill(b);

describe('mfd_inaccessible VMM on sw_protected', () => {
  test('the private fd is MFD_INACCESSIBLE: sealed for good, no read', () => {
    const v = vm();
    expect(mfd_inaccessible.vmm).toBe(mfd_inaccessible_vmm);
    const s = private_fd_vmm_state(v, 'mfd_inaccessible');
    expect(v.p.fcntl(s.private_fd, F_GET_SEALS)).toBe(F_SEAL_SEAL);
    expect(v.p.fcntl(s.private_fd, F_ADD_SEALS, F_SEAL_WRITE)).toBe(-1);
    expect(v.p.errno).toBe(Errno.EPERM);
    expect(v.p.pread(s.private_fd, new Uint8Array(8), 0)).toBe(-1);
    expect(v.p.errno).toBe(Errno.EPERM);
  });

  test('a conversion each way: zeroed private page, the VMM\'s store (S1) misses it, the punch on to-shared drops it', () => {
    const v = vm();
    const gpa = v.base + 2n * 4096n;
    const hva = mfd_inaccessible_vmm.hva(v, gpa)!;
    expect(v.p.store(hva, fill(0x11))).toBe(0);
    let priv: Uint8Array | undefined;
    let ret: bigint | undefined;
    const r = cvm_run(v, function* () {
      ret = yield* v.vendor.guest_convert(v, gpa, 1n, true);
      priv = yield* guestLoad(gpa, 8);
      yield* guestStore(gpa, fill(0x5e));
    });
    expect(r.exit_reason).toBe(KVM_EXIT_HLT);
    expect(r.conversions).toEqual([{ gpa, npages: 1n, to_private: true, ret: 0, errno: 0 }]);
    expect(ret).toBe(0n);
    expect(priv).toEqual(fill(0));
    expect(v.p.load(hva, 8)).toEqual(fill(0));
    expect(v.p.store(hva, fill(0xee))).toBe(0);
    let secret: Uint8Array | undefined;
    let back: Uint8Array | undefined;
    let again: Uint8Array | undefined;
    const r2 = cvm_run(v, function* () {
      secret = yield* guestLoad(gpa, 8);
      yield* v.vendor.guest_convert(v, gpa, 1n, false);
      back = yield* guestLoad(gpa, 8);
      yield* v.vendor.guest_convert(v, gpa, 1n, true);
      again = yield* guestLoad(gpa, 8);
    });
    expect(r2.conversions.map((c) => [c.to_private, c.ret])).toEqual([[false, 0], [true, 0]]);
    expect(secret).toEqual(fill(0x5e));
    expect(back).toEqual(fill(0xee));
    expect(again).toEqual(fill(0));
  });
});
