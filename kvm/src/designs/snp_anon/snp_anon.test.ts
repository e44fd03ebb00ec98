/*
 * D14's vendor-independent part: where it runs, the vendor half it builds, and that its memslot
 * hook leaves every VM but an SNP one to the base. The behaviour on SEV-SNP hardware (RMP
 * assignment of the VMM's pages, RMP #PF -> SIGBUS, PSMASH and the host PMD split) is
 * vendors/sev/src/snp_anon.test.ts: kvm cannot import the vendor package.
 */
import { describe, expect, test } from 'vitest';
import { createRootContainer } from '@cocosim/core';
import { Kernel, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, Process, mmRegistrar } from '@cocosim/mm';
import { kvmRegistrar, kvm_sw_protected_x86_ops } from '../../kvm.js';
import { sw_protected_cvm } from '../../cvm.js';
import { gfn_to_memslot } from '../../kvm_memslots.js';
import { KVM_CREATE_VM, KVM_SET_USER_MEMORY_REGION, KVM_X86_SW_PROTECTED_VM } from '../../uapi.js';
import type { Kvm } from '../../kvm_host.js';
import { snp_anon, snp_anon_cvm, snp_anon_slot, snp_anon_vendor_cvm, snp_anon_vmm } from './index.js';

describe('D14 snp_anon without SNP hardware', () => {
  test('SNP only; the vendor\'s own SNP half is reused without its guest_memfd launch_update', () => {
    expect(snp_anon_vmm.vendor_cvm!('sev', undefined)).toBe(snp_anon_cvm);
    expect(snp_anon_vmm.vendor_cvm!('cca', undefined)).toBeUndefined();
    expect(snp_anon_vmm.applies(sw_protected_cvm)).toBe('D14 runs on SEV-SNP only (KVM_X86_SNP_VM), not on sw_protected');
    const vendor = { ...snp_anon_cvm, name: 'snp', launch_update: () => 0 };
    const w = snp_anon_vendor_cvm(vendor);
    expect(w.launch_update).toBeUndefined();
    expect(w.vm_type).toBe(vendor.vm_type);
    expect(snp_anon_vendor_cvm(vendor)).toBe(w);
    expect(snp_anon_vmm.vendor_cvm!('sev', vendor)).toBe(w);
  });

  test('KVM_SET_USER_MEMORY_REGION of a VM that is not SNP is the base\'s: an ordinary slot', () => {
    const kernel = createRootContainer({}, mmRegistrar({ nr_pages: 2048 }), kvmRegistrar({ x86_ops: kvm_sw_protected_x86_ops }),
      snp_anon.registrar()).resolve(Kernel);
    const p = new Process(kernel);
    const vm_fd = p.ioctl(p.open('/dev/kvm'), KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
    const hva = p.mmap(0, 1n << 16n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(p.ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, { slot: 0, flags: 0, guest_phys_addr: 1n << 32n, memory_size: 1n << 16n, userspace_addr: hva })).toBe(0);
    const kvm = p.task.files.lookup(vm_fd)!.private_data as Kvm;
    const slot = gfn_to_memslot(kvm, 1 << 20)!;
    expect(slot.gmem.file).toBeNull();
    expect(snp_anon_slot(slot)).toBe(false);
  });
});
