/**
 * pkvm_cvm.private_owner: the hypervisor's page ownership against the page KVM maps at a
 * protected guest's private IPA, on a pKVM host with the upstream design: the guest's page after
 * its first touch (donation) and after MEM_UNSHARE, then what the hypervisor says once the guest
 * shared it, or when asked with another page or from another VM.
 */
import { afterEach, describe, expect, test } from 'vitest';
import { PAGE_SIZE, createRootContainer } from '@cocosim/core';
import { Kernel, Process, mmRegistrar } from '@cocosim/mm';
import { cvm_create, cvm_run, cvm_spte, guestStore, kvmRegistrar, upstream, upstream_vmm, type CvmVm } from '@cocosim/kvm';
import type { DependencyContainer } from 'tsyringe';
import { pkvmVendorPlugin, pkvm_cvm } from './index.js';

const PG = BigInt(PAGE_SIZE);
const containers: DependencyContainer[] = [];
afterEach(async () => {
  for (const c of containers.splice(0)) await c.dispose();
});

function host(): Kernel {
  const c = createRootContainer({ seed: 0 }, mmRegistrar({ nr_pages: 2 ** 16 }), kvmRegistrar({ x86_ops: pkvmVendorPlugin.x86_ops }),
    pkvmVendorPlugin.registrar, upstream.registrar());
  containers.push(c);
  return c.resolve(Kernel);
}

/** A protected VM of 16 pages whose guest has written its first page (donated at that touch). */
function touched(kernel: Kernel): CvmVm {
  const vm = cvm_create(new Process(kernel), pkvm_cvm, upstream_vmm, { size: 16n * PG });
  if (typeof vm === 'number') throw new Error(`cvm_create: ${vm}`);
  expect(cvm_run(vm, function* () {
    yield* guestStore(vm.base, new Uint8Array(8).fill(0x11));
  }).ret).toBe(0);
  return vm;
}

/** The pfn KVM maps at the private `ipa`. */
function private_pfn(vm: CvmVm, ipa: bigint): number {
  const s = cvm_spte(vm, ipa, true);
  expect(s).toBeDefined();
  return s!.pfn;
}

describe('pkvm_cvm.private_owner', () => {
  test('a donated page is the guest\'s; shared it is SHARED_OWNED/SHARED_BORROWED; unshared it is the guest\'s again', () => {
    const vm = touched(host());
    const X = vm.base;
    const pfn = private_pfn(vm, X);
    expect(pkvm_cvm.private_owner!(vm, X, pfn)).toBe('guest');
    expect(pkvm_cvm.private_owner!(vm, X, pfn + 1)).toBe(`guest stage-2 maps this IPA to pfn 0x${pfn.toString(16)}`);
    expect(pkvm_cvm.private_owner!(vm, X + PG, pfn)).toBe('not in the guest stage-2');

    let rc: bigint | undefined;
    cvm_run(vm, function* () {
      rc = yield* pkvm_cvm.guest_convert(vm, X, 1n, false);
    });
    expect(rc).toBe(0n);
    expect(pkvm_cvm.private_owner!(vm, X, pfn)).toBe('guest SHARED_OWNED, host SHARED_BORROWED');

    cvm_run(vm, function* () {
      rc = yield* pkvm_cvm.guest_convert(vm, X, 1n, true);
    });
    expect(rc).toBe(0n);
    expect(pkvm_cvm.private_owner!(vm, X, pfn)).toBe('guest');
  });

  test('a second VM asked about the first VM\'s page: its own stage-2 maps its own page there', () => {
    const kernel = host();
    const a = touched(kernel);
    const b = touched(kernel);
    const pa = private_pfn(a, a.base);
    const pb = private_pfn(b, b.base);
    expect(pa).not.toBe(pb);
    expect(pkvm_cvm.private_owner!(b, b.base, pa)).toBe(`guest stage-2 maps this IPA to pfn 0x${pb.toString(16)}`);
    expect(pkvm_cvm.private_owner!(b, b.base, pb)).toBe('guest');
  });
});
