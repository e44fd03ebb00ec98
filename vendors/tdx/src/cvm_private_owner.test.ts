/**
 * tdx_cvm.private_owner: the TDX module's S-EPT and PAMT against the page KVM maps at a private
 * gfn, on a TDX host with the upstream design: the guest's own page after a to-private conversion
 * it accepted, then what the module says once the page went shared, was never accepted, or is
 * asked about with another pfn or from another TD.
 */
import { afterEach, describe, expect, test } from 'vitest';
import { PAGE_SIZE } from '@cocosim/core';
import { Process } from '@cocosim/mm';
import { cvm_create, cvm_launch, cvm_run, cvm_spte, guestFill, guestLoad, upstream, upstream_vmm, type CvmVm } from '@cocosim/kvm';
import { tdx_cvm } from './cvm.js';
import { tdx_module_of } from './tdx_module.js';
import { tdx_td } from './tdx.js';
import { tdx_host, type TdxHost } from './tdx_util.js';

const PG = BigInt(PAGE_SIZE);
const hosts: TdxHost[] = [];

afterEach(async () => {
  for (const h of hosts.splice(0)) await h.container.dispose();
});

function host(): TdxHost {
  const h = tdx_host({ seed: 3, registrars: [upstream.registrar()] });
  hosts.push(h);
  return h;
}

/** A TD of 16 pages launched with one page of image at its base. */
function launched(h: TdxHost): CvmVm {
  const vm = cvm_create(new Process(h.kernel), tdx_cvm, upstream_vmm, { size: 16n * PG });
  if (typeof vm === 'number') throw new Error(`cvm_create: ${vm}`);
  expect(cvm_launch(vm, vm.base, new Uint8Array(PAGE_SIZE).fill(7))).toBe(0);
  return vm;
}

/** The pfn KVM maps at the private `gpa` (the mirror root). */
function private_pfn(vm: CvmVm, gpa: bigint): number {
  const s = cvm_spte(vm, gpa, true);
  expect(s).toBeDefined();
  return s!.pfn;
}

describe('tdx_cvm.private_owner', () => {
  test('the launched page and an accepted to-private page are the guest\'s; after to-shared the S-EPT is FREE', () => {
    const h = host();
    const vm = launched(h);
    expect(tdx_cvm.private_owner!(vm, vm.base, private_pfn(vm, vm.base))).toBe('guest');
    const X = vm.base + 4n * PG;
    expect(cvm_run(vm, function* () {
      yield* tdx_cvm.guest_convert(vm, X, 1n, true);
      yield* guestFill(X, 0x5a, PAGE_SIZE);
    }).conversions).toHaveLength(1);
    const pfn = private_pfn(vm, X);
    expect(tdx_cvm.private_owner!(vm, X, pfn)).toBe('guest');
    const td = tdx_td(vm.kvm)!;
    const e = tdx_module_of(h.kernel).pamt_get(pfn);
    expect(e.pt).toBe('PT_REG');
    expect(e.owner).toBe(td);
    // Another pfn at the same GPA: the S-EPT names the one it maps.
    expect(tdx_cvm.private_owner!(vm, X, pfn + 1)).toBe(`S-EPT maps this GPA to pfn 0x${pfn.toString(16)}`);

    expect(cvm_run(vm, function* () {
      yield* tdx_cvm.guest_convert(vm, X, 1n, false);
    }).conversions).toHaveLength(1);
    expect(cvm_spte(vm, X, true)).toBeUndefined();
    expect(tdx_cvm.private_owner!(vm, X, pfn)).toBe('S-EPT FREE at this GPA');
  });

  test('a page the VMM made private behind the guest\'s back is PENDING, not the guest\'s', () => {
    const vm = launched(host());
    const X = vm.base + 8n * PG;
    expect(vm.design.convert(vm, X, PG, true)).toBe(0);
    // The guest's load faults the page in (TDH.MEM.PAGE.AUG) and dies on it: SEPT_VE_DISABLE.
    cvm_run(vm, function* () {
      yield* guestLoad(X, 8);
    });
    expect(tdx_cvm.private_owner!(vm, X, private_pfn(vm, X))).toBe('S-EPT PENDING at this GPA');
  });

  test('a second TD asked about the first TD\'s page: it maps its own page at that GPA, or none', () => {
    const h = host();
    const a = launched(h);
    const b = launched(h);
    expect(a.base).toBe(b.base);
    const pa = private_pfn(a, a.base);
    const pb = private_pfn(b, b.base);
    expect(pa).not.toBe(pb);
    expect(tdx_cvm.private_owner!(b, b.base, pa)).toBe(`S-EPT maps this GPA to pfn 0x${pb.toString(16)}`);
    expect(tdx_cvm.private_owner!(b, b.base + PG, pa)).toBe('S-EPT FREE at this GPA');
    expect(tdx_cvm.private_owner!(b, b.base, pb)).toBe('guest');
  });
});
