/*
 * private_owner on design D14 (snp_anon): the vendor-less half snp_anon_cvm answers from D14's
 * record of its RMPUPDATEs, the SEV plugin's half (snp_anon_vendor_cvm(snp_cvm)) from the RMP
 * itself; both call the VMM's page the guest's once the guest converted and validated it, and
 * the hypervisor's once it went shared again.
 */
import { describe, expect, test } from 'vitest';
import { PAGE_SIZE, createRootContainer } from '@cocosim/core';
import { Kernel, Process, mmRegistrar, pagemap_pfn } from '@cocosim/mm';
import {
  KVM_EXIT_HLT, cvm_create, cvm_guest_convert, cvm_run, cvm_spte, guestStore, kvmRegistrar, snp_anon, snp_anon_cvm, snp_anon_vendor_cvm,
  snp_anon_vmm, type CvmVendor, type CvmVm, type GuestProgram,
} from '@cocosim/kvm';
import { sevVendorPlugin, snp_cvm, to_kvm_sev_info } from './index.js';

const PG = BigInt(PAGE_SIZE);

function host(): Kernel {
  return createRootContainer({}, mmRegistrar({ nr_pages: 1 << 15 }), kvmRegistrar({ x86_ops: sevVendorPlugin.x86_ops }),
    sevVendorPlugin.registrar(), snp_anon.registrar()).resolve(Kernel);
}

function vm(kernel: Kernel, vendor: CvmVendor): CvmVm {
  const v = cvm_create(new Process(kernel), vendor, snp_anon_vmm, { size: 8n * PG });
  if (typeof v === 'number') throw new Error(`cvm_create: ${v}`);
  return v;
}

function guest(v: CvmVm, body: GuestProgram): void {
  const r = cvm_run(v, body);
  expect(r.ret).toBe(0);
  expect(r.exit_reason).toBe(KVM_EXIT_HLT);
}

describe('D14 snp_anon: private_owner', () => {
  test('the SEV plugin\'s D14 half keeps the plugin\'s RMP reading', () => {
    expect(snp_anon_vendor_cvm(snp_cvm).private_owner).toBe(snp_cvm.private_owner);
  });

  for (const [name, vendor] of [['snp_anon_cvm', snp_anon_cvm], ['snp_anon_vendor_cvm(snp_cvm)', snp_anon_vendor_cvm(snp_cvm)]] as const) {
    test(`${name}: the VMM's page is the guest's after to-private, the hypervisor's after to-shared`, () => {
      const v = vm(host(), vendor);
      const gpa = v.base + PG;
      guest(v, function* () {
        expect(yield* cvm_guest_convert(v, gpa, 1n, true)).toBe(0n);
        yield* guestStore(gpa, new Uint8Array(16).fill(0x5e));
      });
      const pfn = pagemap_pfn(v.p.mm, snp_anon_vmm.hva(v, gpa)!)!;
      expect(cvm_spte(v, gpa, true)?.pfn).toBe(pfn);
      expect(vendor.private_owner!(v, gpa, pfn)).toBe('guest');
      // The RMP agrees with D14's record.
      expect(snp_cvm.private_owner!(v, gpa, pfn)).toBe('guest');
      // Asked at another GPA: bound to `gpa`.
      expect(vendor.private_owner!(v, gpa + PG, pfn)).toMatch(new RegExp(`at another GPA \\(0x${gpa.toString(16)}\\)$`));

      guest(v, function* () {
        expect(yield* cvm_guest_convert(v, gpa, 1n, false)).toBe(0n);
      });
      expect(vendor.private_owner!(v, gpa, pfn)).toMatch(/^hypervisor-owned/);
      expect(snp_cvm.private_owner!(v, gpa, pfn)).toBe('hypervisor-owned (RMP not assigned)');
    });
  }

  test('snp_anon_cvm asked from another VM about the first VM\'s page: assigned to another VM', () => {
    const kernel = host();
    const a = vm(kernel, snp_anon_cvm);
    const b = vm(kernel, snp_anon_cvm);
    const gpa = a.base + PG;
    guest(a, function* () {
      expect(yield* cvm_guest_convert(a, gpa, 1n, true)).toBe(0n);
    });
    const pfn = pagemap_pfn(a.p.mm, snp_anon_vmm.hva(a, gpa)!)!;
    expect(snp_anon_cvm.private_owner!(b, gpa, pfn)).toBe('RMP assigned to another VM');
    expect(snp_cvm.private_owner!(b, gpa, pfn)).toBe(`RMP assigned to ASID ${to_kvm_sev_info(a.kvm).asid} at gpa 0x${gpa.toString(16)}`);
  });
});
