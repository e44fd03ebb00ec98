/**
 * snp_cvm.private_owner: the RMP against the page KVM maps at a private gfn, on an SNP host with
 * the upstream design: the guest's own page after a to-private conversion it validated, then what
 * the RMP says once the page went shared, was never validated, is asked about at another GPA, or
 * from another VM.
 */
import { describe, expect, test } from 'vitest';
import { PAGE_SIZE } from '@cocosim/core';
import { cvm_create, cvm_launch, cvm_run, cvm_spte, guestFill, guestLoad, upstream, upstream_vmm, type CvmVm } from '@cocosim/kvm';
import { sevHost, type SimHost } from './snp_env.test-util.js';
import { snp_cvm } from './cvm.js';
import { to_kvm_sev_info } from './sev.js';

const PG = BigInt(PAGE_SIZE);

function host(): SimHost {
  return sevHost({}, 0, 1 << 15, [upstream.registrar()]);
}

/** An SNP VM of 16 pages launched with one page of image at its base, which the guest has read (so KVM maps it). */
function launched(h: SimHost): CvmVm {
  const vm = cvm_create(h.process(), snp_cvm, upstream_vmm, { size: 16n * PG });
  if (typeof vm === 'number') throw new Error(`cvm_create: ${vm}`);
  expect(cvm_launch(vm, vm.base, new Uint8Array(PAGE_SIZE).fill(7))).toBe(0);
  expect(cvm_run(vm, function* () {
    yield* guestLoad(vm.base, 8);
  }).ret).toBe(0);
  return vm;
}

/** The pfn KVM maps at the private `gpa`. */
function private_pfn(vm: CvmVm, gpa: bigint): number {
  const s = cvm_spte(vm, gpa, true);
  expect(s).toBeDefined();
  return s!.pfn;
}

const hex = (n: bigint | number): string => `0x${n.toString(16)}`;

describe('snp_cvm.private_owner', () => {
  test('the launched page and a validated to-private page are the guest\'s; after to-shared the RMP gives it back', () => {
    const vm = launched(host());
    expect(snp_cvm.private_owner!(vm, vm.base, private_pfn(vm, vm.base))).toBe('guest');
    const X = vm.base + 4n * PG;
    expect(cvm_run(vm, function* () {
      yield* snp_cvm.guest_convert(vm, X, 1n, true);
      yield* guestFill(X, 0x5a, PAGE_SIZE);
    }).conversions).toHaveLength(1);
    const pfn = private_pfn(vm, X);
    expect(snp_cvm.private_owner!(vm, X, pfn)).toBe('guest');
    // The same page asked about at another GPA of the same VM: the RMP binds it to X.
    expect(snp_cvm.private_owner!(vm, X + PG, pfn)).toBe(`RMP assigned to ASID ${to_kvm_sev_info(vm.kvm).asid} at another GPA (${hex(X)})`);

    expect(cvm_run(vm, function* () {
      yield* snp_cvm.guest_convert(vm, X, 1n, false);
    }).conversions).toHaveLength(1);
    expect(cvm_spte(vm, X, true)).toBeUndefined();
    expect(snp_cvm.private_owner!(vm, X, pfn)).toBe('hypervisor-owned (RMP not assigned)');
  });

  test('a page the VMM made private behind the guest\'s back is assigned but not validated', () => {
    const vm = launched(host());
    const X = vm.base + 8n * PG;
    expect(vm.design.convert(vm, X, PG, true)).toBe(0);
    // The guest's load faults the page in (assigned, Guest-Invalid) and takes #VC.
    cvm_run(vm, function* () {
      yield* guestLoad(X, 8);
    });
    expect(snp_cvm.private_owner!(vm, X, private_pfn(vm, X))).toBe('RMP assigned, not validated');
  });

  test('a second VM asked about the first VM\'s page: the RMP names the first VM\'s ASID', () => {
    const h = host();
    const a = launched(h);
    const b = launched(h);
    const asid = to_kvm_sev_info(a.kvm).asid;
    expect(to_kvm_sev_info(b.kvm).asid).not.toBe(asid);
    expect(snp_cvm.private_owner!(b, b.base, private_pfn(a, a.base))).toBe(`RMP assigned to ASID ${asid} at gpa ${hex(a.base)}`);
    expect(snp_cvm.private_owner!(b, b.base, private_pfn(b, b.base))).toBe('guest');
  });
});
