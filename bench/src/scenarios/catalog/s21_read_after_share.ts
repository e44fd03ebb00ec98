/**
 * S21 (designs.md §2): what each side reads right after private->shared. The VMM fills the page
 * while it is shared, the guest makes it private and writes a secret, then converts it back
 * (with the VMM's usual discard); the verdict is what the guest reads, the VMM's read a step.
 */
import { guestLoad, type CvmVm } from '@cocosim/kvm';
import type { ScenarioContext } from '../scenario.js';
import { cvmScenario, fill8, guestConvert, guestMakeSecret, guestStep, hex, userAccessOutcome, type DesignExpectation } from '../cvm_scenario.js';

export const S21 = {
  private: 'the private data',
  zeros: 'zeros',
  oldShared: 'the old shared data',
  garbage: 'garbage',
} as const;

const SECRET = 0x5e;
const SHARED = 0x11;

function expected(design: string, vendor: string): DesignExpectation | undefined {
  switch (design) {
    case 'hwpoison': return vendor === 'tdx' ? { outcome: S21.garbage, tag: '(inferred: TD ciphertext read with the shared key)' }
      : { outcome: S21.private, tag: '(inferred: the same page, old contents)' };
    case 'page_guest': return { outcome: S21.zeros, tag: '[S QEMU patch] (a fresh anonymous page)' };
    case 'memfd_seal': case 'mfd_inaccessible': case 'memfd_restricted': case 'upstream':
      return { outcome: S21.zeros, tag: '(inferred: the shared backing was discarded on to-private)' };
    case 'gmem_inplace': case 'gmem_hugetlb':
      return vendor === 'tdx' ? { outcome: S21.zeros, tag: '[S RFC patch text] (TDX firmware zeroes on private->shared)' } : undefined;
    case 'sev_pinned': return { outcome: S21.garbage, tag: '(inferred: ciphertext of the previous data through C=0)' };
    default: return undefined;
  }
}

export const s21ReadAfterShare = cvmScenario({
  name: 's21-read-after-share',
  ref: 'S21',
  description: 'what each side reads right after private->shared',
  expected,
  run(ctx: ScenarioContext, vm: CvmVm): void {
    const gpa = vm.base;
    const hva = vm.design.hva(vm, gpa);
    if (hva !== undefined) {
      ctx.setupStep(`*(u64 *)0x${hva.toString(16)} = 0x${SHARED.toString(16).repeat(8)}`, '0', 'the VMM fills the page while it is shared',
        () => [userAccessOutcome(vm.p.store(hva, fill8(SHARED))), undefined]);
    }
    if (!guestMakeSecret(ctx, vm, gpa, SECRET) || !guestConvert(ctx, vm, gpa, 1n, false).ok) {
      ctx.verdict('the guest cannot convert the page');
      return;
    }
    const r = guestStep(ctx, vm, `load 8 bytes at 0x${gpa.toString(16)}`, undefined, 'the guest reads the page it shared',
      () => guestLoad(vm.vendor.shared_gpa(vm, gpa), 8), hex);
    if (hva !== undefined) {
      ctx.step(`VMM: load 8 bytes at 0x${hva.toString(16)}`, undefined, 'the VMM reads the page the guest shared',
        () => [userAccessOutcome(vm.p.load(hva, 8)), undefined]);
    }
    if (!r.done) {
      ctx.verdict(`the guest's read fails: ${ctx.steps[ctx.steps.length - 1]!.outcome}`);
      return;
    }
    const got = hex(r.value);
    ctx.verdict(got === hex(fill8(SECRET)) ? S21.private : got === hex(fill8(0)) ? S21.zeros : got === hex(fill8(SHARED)) ? S21.oldShared : S21.garbage);
  },
});
