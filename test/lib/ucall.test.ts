import { describe, expect } from 'vitest';
import { KVM_EXIT_HLT, KVM_EXIT_IO, KVM_EXIT_SHUTDOWN, guestLoad, type GuestCode } from '@cocosim/kvm';
import { test } from './fixtures.js';
import { TestAssertionFailure } from './test_util.js';
import {
  TEST_ASSERT_KVM_EXIT_REASON, addr_gpa2hva, kvm_vm_free, vcpu_args_set, vcpu_regs_get, vcpu_run, vm_create_with_one_vcpu,
} from './kvm_util.js';
import {
  GUEST_ASSERT_EQ, GUEST_DONE, GUEST_SYNC, GUEST_SYNC_N, REPORT_GUEST_ASSERT, UCALL_ABORT, UCALL_DONE, UCALL_NONE, UCALL_POOL_GVA,
  UCALL_PIO_PORT, UCALL_SYNC, get_ucall, type Ucall,
} from './ucall.js';

function uc(): Ucall {
  return { cmd: 0n, args: [], buffer: '', hva: 0n };
}

describe('ucall (lib/ucall_common.c, lib/x86/ucall.c)', () => {
  test('GUEST_SYNC exits with `in` on UCALL_PIO_PORT; get_ucall reads the struct from guest memory and completes it', ({ host }) => {
    const { vm, vcpu } = vm_create_with_one_vcpu(host, function* (a: bigint, b: bigint): GuestCode {
      yield* GUEST_SYNC(7);
      yield* GUEST_SYNC_N(a, b, 3);
      yield* GUEST_DONE();
    });
    vcpu_args_set(vcpu, 0x11, 0x22);
    vcpu_run(vcpu);
    TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
    expect(vcpu.run.io.port).toBe(UCALL_PIO_PORT);
    // rdi is the host address of the struct ucall, in memslot 0 where ucall_init() put the pool.
    const rdi = vcpu_regs_get(vcpu).rdi;
    const pool = addr_gpa2hva(vm, UCALL_POOL_GVA);
    expect(rdi > pool && rdi < pool + 0x200000n).toBe(true);
    const u = uc();
    expect(get_ucall(vcpu, u)).toBe(BigInt(UCALL_SYNC));
    expect(u.args.slice(0, 2)).toEqual([0n, 7n]);
    vcpu_run(vcpu);
    expect(get_ucall(vcpu, u)).toBe(BigInt(UCALL_SYNC));
    expect(u.args.slice(0, 4)).toEqual([0x11n, 0x22n, 3n, 0n]);
    vcpu_run(vcpu);
    expect(get_ucall(vcpu, u)).toBe(BigInt(UCALL_DONE));
    // The guest holds the first struct (bit 0 of in_use) until it resumes and frees it.
    expect(vm.p.load(pool, 1)).toEqual(Uint8Array.of(1));
    vcpu_run(vcpu);
    expect(vm.p.load(pool, 128)).toEqual(new Uint8Array(128));
    TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_HLT);
    expect(get_ucall(vcpu, u)).toBe(BigInt(UCALL_NONE));
    expect(() => TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO)).toThrow('Wanted KVM exit reason: 2 (IO), got: 5 (HLT)');
    kvm_vm_free(vm);
  });

  test('a failed GUEST_ASSERT_EQ is an ABORT ucall whose message REPORT_GUEST_ASSERT fails the test with', ({ host }) => {
    const { vm, vcpu } = vm_create_with_one_vcpu(host, function* (): GuestCode {
      const v = (yield* guestLoad(0x1000, 1))[0]!;
      yield* GUEST_ASSERT_EQ(v, 0x5a, 'v == 0x5a');
    });
    vcpu_run(vcpu);
    const u = uc();
    expect(get_ucall(vcpu, u)).toBe(BigInt(UCALL_ABORT));
    expect(u.buffer).toMatch(/^v == 0x5a at ucall\.test\.ts:\d+ - 0x0 != 0x5a \(v != 0x5a\)$/);
    expect(() => REPORT_GUEST_ASSERT(u)).toThrow(TestAssertionFailure);
    kvm_vm_free(vm);
  });

  test('the guest page tables map memslot 0 and what virt_map() adds: beyond them a #PF (SHUTDOWN)', ({ host }) => {
    const { vm, vcpu } = vm_create_with_one_vcpu(host, function* (): GuestCode {
      yield* guestLoad(0x40000000, 1);
    });
    vcpu_run(vcpu);
    TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_SHUTDOWN);
    kvm_vm_free(vm);
  });
});
