/**
 * S20 (designs.md §2): KVM must emulate an instruction whose operand (or page-table walk) is in
 * guest private memory. KVM's emulator reads guest memory with kvm_vcpu_read_guest(), which goes
 * through the memslot's userspace_addr; the VMM filled the page while it was shared. The verdict
 * says what KVM's read of the GPA gives once it is private.
 */
import { errno_name } from '@cocosim/core';
import { kvm_vcpu_read_guest, type CvmVm } from '@cocosim/kvm';
import type { ScenarioContext } from '../scenario.js';
import { cvmScenario, fill8, guestMakeSecret, hex, userAccessOutcome, type DesignExpectation } from '../cvm_scenario.js';

/** S20's verdicts. */
export const S20 = {
  fails: (e: string) => `fails: -${e}`,
  shared: 'reads the shared backing, not the private data',
  plaintext: 'reads the private data',
  ciphertext: 'reads ciphertext',
} as const;

const SECRET = 0x5e;
const SHARED = 0x11;

/*
 * designs.md gives D4's "naturally fail" for D4 through GM. From UPM on, a private GPA still has
 * the shared slot's userspace_addr, which __kvm_read_guest_page() copies from: the kernel code
 * decides those rows.
 */
const readsShared: DesignExpectation = {
  outcome: S20.shared,
  tag: '[S code] (virt/kvm/kvm_main.c __kvm_read_guest_page(): __copy_from_user() at the slot\'s userspace_addr, the shared memory)',
};
const expected: Record<string, DesignExpectation> = {
  D4: { outcome: S20.fails('EFAULT'), tag: '[S] (host accesses use the shared memslots: private accesses "naturally fail")' },
  UPMfd: readsShared,
  GM68: readsShared,
};

export const s20KvmReadsPrivate = cvmScenario({
  name: 's20-kvm-reads-private',
  ref: 'S20',
  description: 'KVM emulation reads guest private memory (kvm_vcpu_read_guest)',
  expected,
  discard: false,
  run(ctx: ScenarioContext, vm: CvmVm): void {
    const gpa = vm.base;
    const hva = vm.design.hva(vm, gpa);
    if (hva !== undefined) {
      ctx.setupStep(`*(u64 *)0x${hva.toString(16)} = 0x${SHARED.toString(16).repeat(8)}`, '0', 'the VMM fills the page while it is shared',
        () => [userAccessOutcome(vm.p.store(hva, fill8(SHARED))), undefined]);
    }
    if (!guestMakeSecret(ctx, vm, gpa, SECRET)) {
      ctx.verdict('the guest cannot make the page private');
      return;
    }
    const r = ctx.step(`kvm_vcpu_read_guest(vcpu, 0x${gpa.toString(16)}, 8)`, undefined,
      'virt/kvm/kvm_main.c kvm_vcpu_read_guest(): __copy_from_user() at the memslot\'s userspace_addr',
      () => {
        const x = kvm_vcpu_read_guest(vm.vcpu!, gpa, 8);
        return [typeof x === 'number' ? `-${errno_name(-x) ?? -x}` : hex(x), x];
      });
    if (typeof r === 'number') ctx.verdict(S20.fails(errno_name(-r) ?? String(-r)));
    else if (hex(r) === hex(fill8(SECRET))) ctx.verdict(S20.plaintext);
    else if (hex(r) === hex(fill8(SHARED)) || hex(r) === hex(fill8(0))) ctx.verdict(S20.shared);
    else ctx.verdict(S20.ciphertext);
  },
});
