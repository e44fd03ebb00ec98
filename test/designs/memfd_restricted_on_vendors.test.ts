/**
 * memfd_restricted (designs.md D7: restrictedmem, KVM_MEM_PRIVATE with restricted_fd, per-VM
 * KVM_SET_MEMORY_ATTRIBUTES) on an SNP and a TDX host, as the SNP host series RFC v8 ran on it
 * (20230220183847.59159-1-michael.roth@amd.com): the private fault prepares the restrictedmem page
 * (kvm_arch_gmem_prepare(): SNP's RMPUPDATE to assigned), and kvm_restrictedmem_invalidate_begin()
 * and the memslot's unbinding give pages back (kvm_arch_invalidate_restricted_mem(), 03/56), so
 * the SNP guest's conversion to private no longer fails with -EFAULT.
 */
import { afterEach, describe, expect, test } from 'vitest';
import { cvm_guest_convert, cvm_run, guestFill, guestLoad, memfd_restricted_design } from '@cocosim/kvm';
import { round_trip, teardown_returns_pages } from './fd_store_cases.js';
import { filled, private_pfn, rmp_entry, vendorHost, vendorVm, vendor_owns, type VendorHost, type VendorName } from './vendor_hosts.js';

const hosts: VendorHost[] = [];
afterEach(async () => {
  for (const h of hosts.splice(0)) await h.container.dispose();
});

function host(vendor: VendorName): VendorHost {
  const h = vendorHost(vendor, memfd_restricted_design);
  hosts.push(h);
  return h;
}

const vmm = memfd_restricted_design.vmm;

describe.each(['sev', 'tdx'] as const)('memfd_restricted on %s', (vendor) => {
  test('shared -> private -> shared -> private: attributes convert, the discard punches the side left; the vendor holds the page only while private', () => {
    round_trip(host(vendor), vmm);
  });

  test('a private page left in the restricted fd goes back to the host when the VM goes (restrictedmem unbind)', () => {
    teardown_returns_pages(host(vendor), vmm);
  });

  test('a VMM that never discards (S16): after to-shared the private copy stays the vendor\'s, and the next to-private finds it prepared', () => {
    const h = host(vendor);
    const vm = vendorVm(h, vmm, 16, { discard: false });
    const X = vm.base + 3n * 4096n;
    const S = h.cvm.shared_gpa(vm, X);
    const rec: Record<string, Uint8Array | bigint> = {};
    const r1 = cvm_run(vm, function* () {
      rec.rc1 = yield* cvm_guest_convert(vm, X, 1n, true);
      yield* guestFill(X, 0x5a, 4096);
      rec.rc2 = yield* cvm_guest_convert(vm, X, 1n, false);
      rec.shared = yield* guestLoad(S, 4096);
    });
    expect(r1.conversions.map((c) => c.ret)).toEqual([0, 0]);
    expect([rec.rc1, rec.rc2]).toEqual([0n, 0n]);
    // Two copies: the guest reads the shared memfd's zeros, the private page lives on.
    expect(filled(rec.shared, 0)).toBe(true);
    const pfn = private_pfn(vm, X)!;
    expect(pfn).toBeDefined();
    // SNP: the guest rescinded its validation, the page is still assigned; TDX: KVM zapped the
    // S-EPT mapping of the shared gfn, removing the page from the TD.
    if (vendor === 'sev') expect(rmp_entry(h.kernel, pfn)).toMatchObject({ assigned: true, validated: false });
    else expect(vendor_owns(h, pfn)).toBe(false);

    const r2 = cvm_run(vm, function* () {
      rec.rc3 = yield* cvm_guest_convert(vm, X, 1n, true);
      rec.priv = yield* guestLoad(X, 16);
    });
    expect(r2.conversions.map((c) => c.ret)).toEqual([0]);
    expect(rec.rc3).toBe(0n);
    expect(private_pfn(vm, X)).toBe(pfn);
    expect(vendor_owns(h, pfn)).toBe(true);
  });
});
