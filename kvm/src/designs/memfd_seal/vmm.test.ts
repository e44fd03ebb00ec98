/**
 * memfd_seal's VMM (vmm.ts) on vendor sw_protected through cvm_create/cvm_run: the two halves
 * (shared memfd mapping, F_SEAL_INACCESSIBLE private memfd) bound by one KVM_MEM_PRIVATE slot,
 * the guest's KVM_HC_MAP_GPA_RANGE answered by QEMU's ram_block_convert_range() (fallocate the
 * private fd = private, punch it = shared), contents checked from guest and VMM, and S1: the VMM's
 * store through its mapping lands in the shared memfd, not in the private page.
 */
import { describe, expect, test } from 'vitest';
import { Errno, createRootContainer } from '@cocosim/core';
import { F_GET_SEALS, F_SEAL_SEAL, Kernel, MAP_FAILED, MAP_SHARED, PROT_READ, Process, mmRegistrar } from '@cocosim/mm';
import { kvmRegistrar, kvm_sw_protected_x86_ops } from '../../kvm.js';
import { cvm_create, cvm_run, sw_protected_cvm, type CvmRunResult, type CvmVm } from '../../cvm.js';
import { guestLoad, guestStore, type GuestCode } from '../../guest.js';
import { KVM_EXIT_HLT, KVM_X86_SW_PROTECTED_VM } from '../../uapi.js';
import { memfd_seal } from './index.js';
import { F_SEAL_INACCESSIBLE } from './uapi.js';
import { memfd_seal_vmm, private_fd_vmm_state } from './vmm.js';

function vm(discard = true): CvmVm {
  const kernel = createRootContainer({}, mmRegistrar({ nr_pages: 8192 }), kvmRegistrar({ x86_ops: kvm_sw_protected_x86_ops }),
    memfd_seal.registrar()).resolve(Kernel);
  const v = cvm_create(new Process(kernel), sw_protected_cvm, memfd_seal_vmm, { size: 16n * 4096n, policy: { discard } });
  if (typeof v === 'number') throw new Error(`cvm_create: ${v}`);
  return v;
}

const fill = (b: number): Uint8Array => new Uint8Array(8).fill(b);

/** The guest converts [gpa, +1 page) and runs `then`; the hypercall's result must be 0. */
function guestConvertThen(v: CvmVm, gpa: bigint, to_private: boolean, then: () => GuestCode): CvmRunResult {
  return cvm_run(v, function* () {
    const ret = yield* v.vendor.guest_convert(v, gpa, 1n, to_private);
    if (ret !== 0n) throw new Error(`conversion refused: ${ret}`);
    yield* then();
  });
}

describe('memfd_seal VMM on sw_protected', () => {
  test('set-up: a sealed private memfd and a mapped shared memfd behind one KVM_MEM_PRIVATE slot', () => {
    const v = vm();
    expect(v.kvm.arch.vm_type).toBe(KVM_X86_SW_PROTECTED_VM);
    expect(memfd_seal.vmm).toBe(memfd_seal_vmm);
    const s = private_fd_vmm_state(v, 'memfd_seal');
    expect(memfd_seal_vmm.hva(v, v.base + 4096n)).toBe(s.hva + 4096n);
    expect(v.p.fcntl(s.private_fd, F_GET_SEALS)).toBe(F_SEAL_SEAL | F_SEAL_INACCESSIBLE);
    // The private half has no user access at all.
    expect(v.p.mmap(0, 4096, PROT_READ, MAP_SHARED, s.private_fd, 0)).toBe(MAP_FAILED);
    expect(v.p.errno).toBe(Errno.EPERM);
  });

  test('to private: a new zeroed page from the private fd; the VMM\'s store (S1) lands in the shared memfd; to shared: the private data is gone', () => {
    const v = vm();
    const gpa = v.base + 4096n;
    const hva = memfd_seal_vmm.hva(v, gpa)!;
    expect(v.p.store(hva, fill(0x11))).toBe(0);
    let shared: Uint8Array | undefined;
    let ret: bigint | undefined;
    let priv: Uint8Array | undefined;
    const r = cvm_run(v, function* () {
      shared = yield* guestLoad(gpa, 8);
      ret = yield* v.vendor.guest_convert(v, gpa, 1n, true);
      priv = yield* guestLoad(gpa, 8);
      yield* guestStore(gpa, fill(0x5e));
    });
    expect(r.exit_reason).toBe(KVM_EXIT_HLT);
    expect(r.conversions).toEqual([{ gpa, npages: 1n, to_private: true, ret: 0, errno: 0 }]);
    expect(ret).toBe(0n);
    expect(shared).toEqual(fill(0x11));
    // The private page is another page, fallocated zeroed: the shared bytes do not carry over.
    expect(priv).toEqual(fill(0));
    // QEMU discarded the shared page: the VMM's mapping refaults a zeroed one.
    expect(v.p.load(hva, 8)).toEqual(fill(0));
    const s = private_fd_vmm_state(v, 'memfd_seal');
    expect(v.p.pread(s.private_fd, new Uint8Array(8), 4096)).toBe(-1);
    expect(v.p.errno).toBe(Errno.EPERM);

    // S1: the store succeeds on the shared page; the guest still reads its secret.
    expect(v.p.store(hva, fill(0xee))).toBe(0);
    let after: Uint8Array | undefined;
    cvm_run(v, function* () {
      after = yield* guestLoad(gpa, 8);
    });
    expect(after).toEqual(fill(0x5e));

    // To shared: the private page is punched; the guest sees the shared page the VMM wrote.
    let back: Uint8Array | undefined;
    const r2 = guestConvertThen(v, gpa, false, function* () {
      back = yield* guestLoad(gpa, 8);
    });
    expect(r2.conversions).toEqual([{ gpa, npages: 1n, to_private: false, ret: 0, errno: 0 }]);
    expect(back).toEqual(fill(0xee));
    // Private again: a fresh page, the secret did not survive the punch.
    let again: Uint8Array | undefined;
    guestConvertThen(v, gpa, true, function* () {
      again = yield* guestLoad(gpa, 8);
    });
    expect(again).toEqual(fill(0));
  });

  test('without discard the shared copy survives the private period (S16); the private punch is the conversion and stays', () => {
    const v = vm(false);
    const gpa = v.base;
    const hva = memfd_seal_vmm.hva(v, gpa)!;
    expect(v.p.store(hva, fill(0x5a))).toBe(0);
    guestConvertThen(v, gpa, true, function* () {
      yield* guestStore(gpa, fill(0x5e));
    });
    expect(v.p.load(hva, 8)).toEqual(fill(0x5a));
    let back: Uint8Array | undefined;
    guestConvertThen(v, gpa, false, function* () {
      back = yield* guestLoad(gpa, 8);
    });
    expect(back).toEqual(fill(0x5a));
    let again: Uint8Array | undefined;
    guestConvertThen(v, gpa, true, function* () {
      again = yield* guestLoad(gpa, 8);
    });
    expect(again).toEqual(fill(0));
  });

  test('a request below guest memory: the first fallocate fails (EINVAL), the guest\'s hypercall gets an error, nothing converts', () => {
    const v = vm();
    const gpa = v.base - 4096n;
    let ret: bigint | undefined;
    const r = cvm_run(v, function* () {
      ret = yield* v.vendor.guest_convert(v, gpa, 1n, true);
    });
    expect(r.conversions).toEqual([{ gpa, npages: 1n, to_private: true, ret: -1, errno: Errno.EINVAL }]);
    expect(ret).not.toBe(0n);
    const hva = memfd_seal_vmm.hva(v, v.base)!;
    expect(v.p.store(hva, fill(0x33))).toBe(0);
    let seen: Uint8Array | undefined;
    cvm_run(v, function* () {
      seen = yield* guestLoad(v.base, 8);
    });
    expect(seen).toEqual(fill(0x33));
  });
});
