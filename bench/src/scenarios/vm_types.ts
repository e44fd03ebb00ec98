/**
 * Which VM types a host offers: the first question a VMM asks before it can create a
 * confidential VM. KVM_CHECK_EXTENSION(KVM_CAP_VM_TYPES) reports kvm_caps.supported_vm_types, and
 * KVM_CREATE_VM(type) succeeds exactly for those types: kvm_arch_init_vm() refuses the others with
 * -EINVAL (arch/x86/kvm/x86.c, kvm_is_vm_type_supported()). The verdict is the list of types
 * created; the expectation per vendor comes from the kernel code, or from this machine's kernel
 * (the oracle's recordings) for vendor "none".
 */
import { PAGE_SIZE } from '@cocosim/core';
import {
  KVM_CAP_VM_TYPES, KVM_CHECK_EXTENSION, KVM_CREATE_VM, KVM_X86_DEFAULT_VM, KVM_X86_SEV_ES_VM, KVM_X86_SEV_VM,
  KVM_X86_SNP_VM, KVM_X86_SW_PROTECTED_VM, KVM_X86_TDX_VM,
} from '@cocosim/kvm';
import { O_RDWR } from '@cocosim/mm';
import { sysOutcome, type Expectation, type Scenario, type ScenarioContext, type ScenarioOptions } from './scenario.js';

const VM_TYPES: readonly (readonly [string, number])[] = [
  ['DEFAULT', KVM_X86_DEFAULT_VM],
  ['SW_PROTECTED', KVM_X86_SW_PROTECTED_VM],
  ['SEV', KVM_X86_SEV_VM],
  ['SEV_ES', KVM_X86_SEV_ES_VM],
  ['SNP', KVM_X86_SNP_VM],
  ['TDX', KVM_X86_TDX_VM],
];

/** The VM types each vendor's host has, and where that is stated. A vendor added later adds its line. */
const EXPECTED: ReadonlyMap<string, { readonly types: readonly string[]; readonly source: string }> = new Map([
  ['none', {
    types: ['DEFAULT'],
    source: "this machine's Linux 6.18 (PVM): KVM_CAP_VM_TYPES = 1, recorded by the kernel oracle (test/traces)",
  }],
  ['sw_protected', {
    types: ['DEFAULT', 'SW_PROTECTED'],
    source: 'arch/x86/kvm/x86.c: CONFIG_KVM_SW_PROTECTED_VM with the TDP MMU adds KVM_X86_SW_PROTECTED_VM to kvm_caps.supported_vm_types',
  }],
]);

function typeMask(types: readonly string[]): number {
  return VM_TYPES.filter(([n]) => types.includes(n)).reduce((m, [, t]) => m | (1 << t), 0);
}

export const vmTypes: Scenario = {
  name: 'vm-types',
  description: 'the VM types the host offers: KVM_CAP_VM_TYPES, then KVM_CREATE_VM of each type',
  default_size: 2 * PAGE_SIZE,
  nr_pages: () => 4096,
  applies: (opts) => (opts.page_size === PAGE_SIZE ? undefined : 'VM types do not depend on the page size: runs at 4K only'),
  expect(opts: ScenarioOptions): Expectation | undefined {
    const e = EXPECTED.get(opts.vendor);
    return e === undefined ? undefined : { outcome: e.types.join(', '), source: e.source };
  },
  run(ctx: ScenarioContext, opts: ScenarioOptions): void {
    const { p } = ctx;
    const stated = EXPECTED.get(opts.vendor);
    const isFd = (o: string) => /^\d+$/.test(o);
    const kvm = ctx.setupStep('open("/dev/kvm", O_RDWR)', isFd, 'the KVM device',
      () => { const fd = p.open('/dev/kvm', O_RDWR); return [sysOutcome(p, fd), fd]; });
    ctx.step('ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES)', stated && String(typeMask(stated.types)),
      'kvm_vm_ioctl_check_extension: kvm_caps.supported_vm_types',
      () => [sysOutcome(p, p.ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES)), undefined]);
    const created: string[] = [];
    for (const [name, type] of VM_TYPES) {
      const expected = stated === undefined ? undefined : stated.types.includes(name) ? isFd : '-1 EINVAL';
      ctx.step(`ioctl(kvm, KVM_CREATE_VM, KVM_X86_${name}_VM)`, expected, 'kvm_arch_init_vm: kvm_is_vm_type_supported(type)',
        () => {
          const fd = p.ioctl(kvm, KVM_CREATE_VM, type);
          if (fd >= 0) {
            created.push(name);
            p.close(fd);
          }
          return [sysOutcome(p, fd), undefined];
        });
    }
    ctx.setupStep('close(kvm)', '0', 'the VMs are gone with their fds', () => [sysOutcome(p, p.close(kvm)), undefined]);
    ctx.verdict(created.join(', '));
  },
};
