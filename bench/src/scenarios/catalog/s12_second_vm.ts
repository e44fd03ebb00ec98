/**
 * S12 (designs.md §2): a second VM tries to use the same backing as private memory: the VMM
 * creates another VM of the same type and binds the first VM's private file at the same offset
 * (KVM_SET_USER_MEMORY_REGION2 with its guest_memfd, as a VMM sharing memory between two VMs
 * would). The verdict is what the bind returns.
 */
import { errno_name } from '@cocosim/core';
import {
  KVM_CREATE_VM, KVM_MEM_GUEST_MEMFD, KVM_SET_USER_MEMORY_REGION2, type CvmVm,
} from '@cocosim/kvm';
import { sysOutcome, type ScenarioContext } from '../scenario.js';
import { cvmScenario, guestMakeSecret, type DesignExpectation } from '../cvm_scenario.js';

const GMEM_ROWS = new Set(['D8', 'D9', 'D10', 'D11']);

export const S12 = {
  refused: (e: string) => `refused: ${e}`,
  allowed: 'allowed: both VMs can map the same private page',
} as const;

const expected: Record<string, DesignExpectation> = {
  GM68: { outcome: S12.refused('EINVAL'), tag: '[S code] (kvm_gmem_bind: the file belongs to another VM)' },
  GMIP: { outcome: S12.refused('EINVAL'), tag: '[S code] (kvm_gmem_bind)' },
  HTLB: { outcome: S12.refused('EINVAL'), tag: '(inferred: kvm_gmem_bind)' },
};

export const s12SecondVm = cvmScenario({
  name: 's12-second-vm',
  ref: 'S12',
  description: 'a second VM tries to use the same backing page / file offset as private',
  expected,
  // The guest_memfd designs (D8-D11) bind with KVM_SET_USER_MEMORY_REGION2; the others' own tests cover their sharing rules.
  needs: (_vendor, design) => (design.vmm.private_fd === undefined || !design.rows.some((r) => GMEM_ROWS.has(r))
    ? `S12 binds a guest_memfd to a second VM; design ${design.name} backs private memory otherwise` : undefined),
  run(ctx: ScenarioContext, vm: CvmVm): void {
    const { p } = vm;
    const gpa = vm.base;
    if (!guestMakeSecret(ctx, vm, gpa, 0x5e)) {
      ctx.verdict('the guest cannot make the page private');
      return;
    }
    const pf = vm.design.private_fd!(vm, gpa)!;
    const vm2 = ctx.step(`ioctl(kvm, KVM_CREATE_VM, ${vm.vendor.vm_type})`, (o) => /^\d+$/.test(o), 'a second VM of the same type',
      () => { const fd = p.ioctl(vm.kvm_fd, KVM_CREATE_VM, vm.vendor.vm_type); return [sysOutcome(p, fd), fd]; });
    if (vm2 < 0) {
      ctx.verdict(`the second VM cannot be created: ${errno_name(p.errno)}`);
      return;
    }
    const r = ctx.step(`ioctl(vm2, KVM_SET_USER_MEMORY_REGION2, { KVM_MEM_GUEST_MEMFD, guest_memfd = ${pf.fd}, offset ${pf.offset} })`, undefined,
      'kvm_gmem_bind(): the guest_memfd must belong to this VM',
      () => {
        const x = p.ioctl(vm2, KVM_SET_USER_MEMORY_REGION2, {
          slot: 0, flags: KVM_MEM_GUEST_MEMFD, guest_phys_addr: gpa, memory_size: 4096n, userspace_addr: vm.design.hva(vm, gpa) ?? 0n,
          guest_memfd: pf.fd, guest_memfd_offset: pf.offset,
        });
        return [sysOutcome(p, x), x];
      });
    ctx.verdict(r < 0 ? S12.refused(errno_name(p.errno) ?? String(p.errno)) : S12.allowed);
  },
});
