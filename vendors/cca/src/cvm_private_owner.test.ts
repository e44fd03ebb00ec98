/**
 * cca_cvm.private_owner: the RMM's RTT entry and granule state against the page KVM maps at a
 * protected IPA, on a CCA host with the upstream design: the realm's own DATA granule after a
 * to-private conversion, then what the RMM says once the IPA went shared, or when asked with
 * another granule or from another realm.
 */
import { afterEach, describe, expect, test } from 'vitest';
import { PAGE_SIZE, createRootContainer } from '@cocosim/core';
import { Kernel, Process, mmRegistrar } from '@cocosim/mm';
import { cvm_create, cvm_launch, cvm_run, cvm_spte, guestLoad, guestStore, kvmRegistrar, upstream, upstream_vmm, type CvmVm } from '@cocosim/kvm';
import type { DependencyContainer } from 'tsyringe';
import { GRANULE_STATE_DATA, ccaVendorPlugin, cca_cvm, rmm_of } from './index.js';

const PG = BigInt(PAGE_SIZE);
const containers: DependencyContainer[] = [];
afterEach(async () => {
  for (const c of containers.splice(0)) await c.dispose();
});

function host(): Kernel {
  const c = createRootContainer({ seed: 0 }, mmRegistrar({ nr_pages: 2 ** 16 }), kvmRegistrar({ x86_ops: ccaVendorPlugin.x86_ops }),
    ccaVendorPlugin.registrar, upstream.registrar());
  containers.push(c);
  return c.resolve(Kernel);
}

/** A realm of 16 pages with one page of image at its base, activated, which it has read (so KVM maps it). */
function launched(kernel: Kernel): CvmVm {
  const vm = cvm_create(new Process(kernel), cca_cvm, upstream_vmm, { size: 16n * PG });
  if (typeof vm === 'number') throw new Error(`cvm_create: ${vm}`);
  expect(cvm_launch(vm, vm.base, new Uint8Array(PAGE_SIZE).fill(7))).toBe(0);
  expect(cvm_run(vm, function* () {
    yield* guestLoad(vm.base, 8);
  }).ret).toBe(0);
  return vm;
}

/** The pfn KVM maps at the protected `ipa`. */
function private_pfn(vm: CvmVm, ipa: bigint): number {
  const s = cvm_spte(vm, ipa, true);
  expect(s).toBeDefined();
  return s!.pfn;
}

describe('cca_cvm.private_owner', () => {
  test('the populated granule and a to-private one are the realm\'s DATA; after to-shared the RTT entry is unassigned', () => {
    const kernel = host();
    const vm = launched(kernel);
    expect(cca_cvm.private_owner!(vm, vm.base, private_pfn(vm, vm.base))).toBe('guest');
    const X = vm.base + 4n * PG;
    expect(cvm_run(vm, function* () {
      yield* cca_cvm.guest_convert(vm, X, 1n, true);
      yield* guestStore(X, new Uint8Array(8).fill(0x5e));
    }).conversions).toHaveLength(1);
    const pfn = private_pfn(vm, X);
    expect(rmm_of(kernel).granule_state(pfn)).toBe(GRANULE_STATE_DATA);
    expect(cca_cvm.private_owner!(vm, X, pfn)).toBe('guest');
    expect(cca_cvm.private_owner!(vm, X, pfn + 1)).toBe(`RTT maps this IPA to granule 0x${pfn.toString(16)}`);

    expect(cvm_run(vm, function* () {
      yield* cca_cvm.guest_convert(vm, X, 1n, false);
    }).conversions).toHaveLength(1);
    expect(cvm_spte(vm, X, true)).toBeUndefined();
    expect(cca_cvm.private_owner!(vm, X, pfn)).toBe('RTT UNASSIGNED RIPAS EMPTY at this IPA');
    // The granule went back to the host: undelegated, or delegated and waiting for reuse.
    expect(rmm_of(kernel).granule_state(pfn)).not.toBe(GRANULE_STATE_DATA);
  });

  test('a second realm asked about the first realm\'s granule: its RTT maps its own granule there', () => {
    const kernel = host();
    const a = launched(kernel);
    const b = launched(kernel);
    const pa = private_pfn(a, a.base);
    const pb = private_pfn(b, b.base);
    expect(pa).not.toBe(pb);
    expect(cca_cvm.private_owner!(b, b.base, pa)).toBe(`RTT maps this IPA to granule 0x${pb.toString(16)}`);
    expect(cca_cvm.private_owner!(b, b.base + 8n * PG, pa)).toBe('RTT UNASSIGNED RIPAS EMPTY at this IPA');
  });
});
