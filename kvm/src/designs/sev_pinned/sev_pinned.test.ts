/*
 * D13's vendor-independent part: where it runs and the VMM's shared-regions list. The behaviour
 * on SEV hardware (pinning, launch, ciphertext, corruption, GUP) is
 * vendors/sev/src/sev_pinned.test.ts: kvm cannot import the vendor package.
 */
import { describe, expect, test } from 'vitest';
import { Errno, createRootContainer } from '@cocosim/core';
import { Kernel, Process, mmRegistrar } from '@cocosim/mm';
import { kvmRegistrar, kvm_sw_protected_x86_ops } from '../../kvm.js';
import { cvm_create, sw_protected_cvm, type CvmVm } from '../../cvm.js';
import { sev_legacy_cvm, sev_pinned, sev_pinned_state, sev_pinned_vmm } from './index.js';

describe('D13 sev_pinned without SEV hardware', () => {
  test('legacy SEV on vendor sev only; a host without SEV refuses the VM type', () => {
    expect(sev_pinned_vmm.vendor_cvm!('sev', undefined)).toBe(sev_legacy_cvm);
    expect(sev_pinned_vmm.vendor_cvm!('tdx', undefined)).toBeUndefined();
    expect(sev_pinned_vmm.applies(sw_protected_cvm)).toBe('D13 runs on SEV only (legacy SEV/SEV-ES guests, KVM_X86_SEV_VM), not on sw_protected');
    const kernel = createRootContainer({}, mmRegistrar({ nr_pages: 2048 }), kvmRegistrar({ x86_ops: kvm_sw_protected_x86_ops }),
      sev_pinned.registrar()).resolve(Kernel);
    const p = new Process(kernel);
    expect(cvm_create(p, sev_legacy_cvm, sev_pinned_vmm, { size: 1n << 16n })).toBe(-Errno.EINVAL);
  });

  test('a conversion only moves the range in or out of the VMM\'s shared-regions list, merged and split by gfn', () => {
    const vm = { state: new Map<string, unknown>([['sev_pinned', { hva: 0n, shared: [] }]]) } as unknown as CvmVm;
    const s = sev_pinned_state(vm);
    const P = 4096n;
    expect(sev_pinned_vmm.convert(vm, 0x10000n, 2n * P, false)).toBe(0);
    expect(sev_pinned_vmm.convert(vm, 0x12000n, P, false)).toBe(0);
    expect(s.shared).toEqual([[0x10n, 0x13n]]);
    expect(sev_pinned_vmm.convert(vm, 0x11000n, P, true)).toBe(0);
    expect(s.shared).toEqual([[0x10n, 0x11n], [0x12n, 0x13n]]);
    expect(sev_pinned_vmm.convert(vm, 0x0n, 0x20n * P, true)).toBe(0);
    expect(s.shared).toEqual([]);
  });
});
