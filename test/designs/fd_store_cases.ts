/**
 * The cases the fd-based designs (D5 memfd_seal, D6 mfd_inaccessible, D7 memfd_restricted) share on
 * an SNP and a TDX host: the guest's conversion each way through its vendor's request (SNP's PSC +
 * PVALIDATE, TDX's MapGPA + TDG.MEM.PAGE.ACCEPT) answered by the design's VMM, with the vendor's
 * hold on the private page (SNP: the RMP entry kvm_arch_gmem_prepare() assigns on the private
 * fault and kvm_arch_gmem_invalidate() returns before the store frees it; TDX: the S-EPT page the
 * mirror root's external SPTE gives the TD) and the contents each side reads.
 */
import { expect } from 'vitest';
import { cvm_guest_convert, cvm_run, guestFill, guestLoad, type CvmDesign, type CvmRunResult } from '@cocosim/kvm';
import { filled, private_pfn, rmp_entry, snp_asid, vendor_owns, vendorVm, type VendorHost } from './vendor_hosts.js';

const PG = 4096n;

/** What one guest run recorded. */
type Rec = Record<string, Uint8Array | bigint>;

/** A conversion the VMM answered with success. */
function converted(r: CvmRunResult, gpa: bigint, to_private: boolean): void {
  expect(r.errno).toBe(0);
  expect(r.conversions).toEqual([{ gpa, npages: 1n, to_private, ret: 0, errno: 0 }]);
}

/**
 * shared -> private -> shared -> private of one page: every request succeeds; the private page is
 * held by the vendor while private and given back when the conversion to shared frees it; each
 * side reads what it should.
 */
export function round_trip(h: VendorHost, vmm: CvmDesign): void {
  const vm = vendorVm(h, vmm);
  const X = vm.base + 4n * PG;
  const S = h.cvm.shared_gpa(vm, X);
  const hva = vmm.hva(vm, X)!;
  const rec: Rec = {};
  expect(vm.p.store(hva, new Uint8Array(4096).fill(0xaa))).toBe(0);

  const r1 = cvm_run(vm, function* () {
    rec.shared0 = yield* guestLoad(S, 4096);
    rec.rc1 = yield* cvm_guest_convert(vm, X, 1n, true);
    yield* guestFill(X, 0x5a, 4096);
    rec.priv = yield* guestLoad(X, 4096);
  });
  converted(r1, X, true);
  expect(rec.rc1).toBe(0n);
  expect(filled(rec.shared0, 0xaa)).toBe(true);
  expect(filled(rec.priv, 0x5a)).toBe(true);
  const pfn = private_pfn(vm, X)!;
  expect(pfn).toBeDefined();
  expect(vendor_owns(h, pfn)).toBe(true);
  if (h.vendor === 'sev') expect(rmp_entry(h.kernel, pfn)).toMatchObject({ assigned: true, validated: true, gpa: X, asid: snp_asid(vm) });
  // The VMM's mapping is the shared memfd: never the guest's private data.
  expect(filled(vm.p.load(hva, 4096) as Uint8Array, 0x5a)).toBe(false);

  const r2 = cvm_run(vm, function* () {
    rec.rc2 = yield* cvm_guest_convert(vm, X, 1n, false);
  });
  converted(r2, X, false);
  expect(rec.rc2).toBe(0n);
  // The private copy was punched, and went back to the host before the punch freed it.
  expect(private_pfn(vm, X)).toBeUndefined();
  expect(vendor_owns(h, pfn)).toBe(false);
  if (h.vendor === 'sev') expect(rmp_entry(h.kernel, pfn).assigned).toBe(false);

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
  expect(vendor_owns(h, private_pfn(vm, X)!)).toBe(true);
}

/**
 * A private page the VMM never punched (it exits with its files open): closing every fd destroys
 * the VM, whose memslot unbinds, and the page goes back to the host before the store frees it.
 */
export function teardown_returns_pages(h: VendorHost, vmm: CvmDesign): void {
  const vm = vendorVm(h, vmm);
  const X = vm.base + 2n * PG;
  const r = cvm_run(vm, function* () {
    yield* cvm_guest_convert(vm, X, 1n, true);
    yield* guestFill(X, 0x3c, 64);
  });
  converted(r, X, true);
  const pfn = private_pfn(vm, X)!;
  expect(vendor_owns(h, pfn)).toBe(true);
  vm.p.task.files.close_all();
  expect(vm.kvm.vm_dead).toBe(true);
  expect(vendor_owns(h, pfn)).toBe(false);
  expect(h.kernel.warn.warnings).toEqual([]);
}
