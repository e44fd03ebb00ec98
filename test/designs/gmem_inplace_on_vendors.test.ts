/**
 * gmem_inplace (designs.md D10: "guest_memfd: In-place conversion support" v8) on an SNP and a TDX
 * host: one guest_memfd page serves both states. Its preparation follows the series' base ("Only
 * prepare folios for private pages", preparation tracked by the vendor): a page the VMM faulted in
 * while shared, or one converted back from shared (kvm_gmem_invalidate(): SNP's RMPUPDATE to
 * shared), is prepared again on the guest's next private fault. Before, the SNP guest's
 * conversion to private failed with -EFAULT (its PVALIDATE found no assigned RMP entry).
 */
import { afterEach, describe, expect, test } from 'vitest';
import { cvm_guest_convert, cvm_run, gmem_inplace, guestFill, guestLoad, type CvmRunResult } from '@cocosim/kvm';
import { filled, private_pfn, rmp_entry, snp_asid, vendorHost, vendorVm, vendor_owns, type VendorHost, type VendorName } from './vendor_hosts.js';

const PG = 4096n;
const hosts: VendorHost[] = [];
afterEach(async () => {
  for (const h of hosts.splice(0)) await h.container.dispose();
});

function host(vendor: VendorName): VendorHost {
  const h = vendorHost(vendor, gmem_inplace);
  hosts.push(h);
  return h;
}

function converted(r: CvmRunResult, gpa: bigint, to_private: boolean): void {
  expect(r.errno).toBe(0);
  expect(r.conversions).toEqual([{ gpa, npages: 1n, to_private, ret: 0, errno: 0 }]);
}

describe.each(['sev', 'tdx'] as const)('gmem_inplace on %s', (vendor) => {
  test('shared (VMM-written) -> private -> shared -> private in place: the vendor takes the same page each time the guest makes it private', () => {
    const h = host(vendor);
    const vm = vendorVm(h, gmem_inplace.vmm);
    const X = vm.base + 5n * PG;
    const S = h.cvm.shared_gpa(vm, X);
    const hva = vm.design.hva(vm, X)!;
    const rec: Record<string, Uint8Array | bigint> = {};
    // The VMM's store faults the guest_memfd page in (zeroed, uptodate, never prepared).
    expect(vm.p.store(hva, new Uint8Array(4096).fill(0xaa))).toBe(0);
    const pfn = private_pfn(vm, X)!;
    expect(pfn).toBeDefined();
    expect(vendor_owns(h, pfn)).toBe(false);

    const r1 = cvm_run(vm, function* () {
      rec.shared0 = yield* guestLoad(S, 4096);
      rec.rc1 = yield* cvm_guest_convert(vm, X, 1n, true);
      yield* guestFill(X, 0x5a, 4096);
      rec.priv = yield* guestLoad(X, 4096);
    });
    converted(r1, X, true);
    expect(filled(rec.shared0, 0xaa)).toBe(true);
    expect(rec.rc1).toBe(0n);
    expect(filled(rec.priv, 0x5a)).toBe(true);
    expect(private_pfn(vm, X)).toBe(pfn);
    expect(vendor_owns(h, pfn)).toBe(true);
    if (vendor === 'sev') expect(rmp_entry(h.kernel, pfn)).toMatchObject({ assigned: true, validated: true, gpa: X, asid: snp_asid(vm) });
    // The VMM's mapping of a private page: SIGBUS, no bytes.
    expect(vm.p.load(hva, 8)).not.toBeInstanceOf(Uint8Array);

    const r2 = cvm_run(vm, function* () {
      rec.rc2 = yield* cvm_guest_convert(vm, X, 1n, false);
    });
    converted(r2, X, false);
    expect(rec.rc2).toBe(0n);
    // In place: the page stays in the file, given back to the host (kvm_arch_gmem_invalidate()).
    expect(private_pfn(vm, X)).toBe(pfn);
    expect(vendor_owns(h, pfn)).toBe(false);
    if (vendor === 'sev') expect(rmp_entry(h.kernel, pfn).assigned).toBe(false);
    const seen = vm.p.load(hva, 4096);
    expect(seen).toBeInstanceOf(Uint8Array);
    expect(filled(seen, 0x5a)).toBe(false);

    expect(vm.p.store(hva, new Uint8Array(8).fill(0xbb))).toBe(0);
    const r3 = cvm_run(vm, function* () {
      rec.shared1 = yield* guestLoad(S, 8);
      rec.rc3 = yield* cvm_guest_convert(vm, X, 1n, true);
      yield* guestFill(X, 0x77, 4096);
      rec.priv2 = yield* guestLoad(X, 4096);
    });
    converted(r3, X, true);
    expect(rec.shared1).toEqual(new Uint8Array(8).fill(0xbb));
    expect(rec.rc3).toBe(0n);
    expect(filled(rec.priv2, 0x77)).toBe(true);
    expect(private_pfn(vm, X)).toBe(pfn);
    expect(vendor_owns(h, pfn)).toBe(true);
  });

  test('a shared page the guest only reads is never prepared: the vendor does not take it', () => {
    const h = host(vendor);
    const vm = vendorVm(h, gmem_inplace.vmm);
    const X = vm.base + 6n * PG;
    const rec: Record<string, Uint8Array> = {};
    const r = cvm_run(vm, function* () {
      rec.shared = yield* guestLoad(h.cvm.shared_gpa(vm, X), 16);
    });
    expect(r.errno).toBe(0);
    expect(filled(rec.shared, 0, 16)).toBe(true);
    const pfn = private_pfn(vm, X)!;
    expect(pfn).toBeDefined();
    expect(vendor_owns(h, pfn)).toBe(false);
  });
});
