/**
 * S13 (designs.md §2): can the same PFN be mapped private in the guest and shared (in the VMM,
 * or at the guest's shared alias) at once? Sean's rule: never. The guest makes a page private
 * and writes a secret; the VMM reads its mapping of the GPA and the guest reads the page's
 * shared alias; either showing the secret means one PFN is mapped both ways.
 */
import type { CvmVm } from '@cocosim/kvm';
import { guestLoad } from '@cocosim/kvm';
import type { ScenarioContext } from '../scenario.js';
import { cvmScenario, fill8, guestMakeSecret, guestPfn, guestStep, hex, userAccessOutcome, vmmPfn, type DesignExpectation } from '../cvm_scenario.js';

export const S13 = {
  never: 'never both',
  host: 'the private PFN is also mapped by the VMM',
  alias: 'the private PFN is also mapped at the shared alias',
} as const;

const SECRET = 0x5e;

const expected: Record<string, DesignExpectation> = {
  GM68: { outcome: S13.never, tag: '(inferred: S and P are different pages)' },
  UPMfd: { outcome: S13.never, tag: '(inferred: S and P are different pages)' },
  GMIP: { outcome: S13.never, tag: '[S code] (user PTEs and stage-2 are zapped before the flip)' },
  HTLB: { outcome: S13.never, tag: '(inferred: as GMIP)' },
};

export const s13PfnBoth = cvmScenario({
  name: 's13-pfn-both',
  ref: 'S13',
  description: 'the same PFN mapped both private (in the guest) and shared (host or guest shared alias)',
  expected,
  run(ctx: ScenarioContext, vm: CvmVm): void {
    const gpa = vm.base;
    const hva = vm.design.hva(vm, gpa);
    if (!guestMakeSecret(ctx, vm, gpa, SECRET)) {
      ctx.verdict('the guest cannot make the page private');
      return;
    }
    const priv = guestPfn(vm, gpa, true);
    if (hva !== undefined) {
      const r = ctx.step(`VMM: load 8 bytes at 0x${hva.toString(16)}`, undefined, 'a host mapping of the private PFN would show the secret',
        () => { const x = vm.p.load(hva, 8); return [userAccessOutcome(x), x]; });
      if ((r instanceof Uint8Array && hex(r) === hex(fill8(SECRET))) || (priv !== undefined && vmmPfn(vm, hva) === priv && r instanceof Uint8Array)) {
        ctx.verdict(S13.host);
        return;
      }
    }
    const alias = vm.vendor.shared_gpa(vm, gpa);
    if (alias === gpa) {
      // SNP and SW_PROTECTED have no shared alias GPA: KVM's attributes decide what the GPA maps.
      ctx.verdict(S13.never);
      return;
    }
    const a = guestStep(ctx, vm, `load 8 bytes at the shared alias 0x${alias.toString(16)}`, undefined,
      'the guest\'s shared view of the GPA', () => guestLoad(alias, 8), hex);
    ctx.verdict(a.done && hex(a.value) === hex(fill8(SECRET)) ? S13.alias : S13.never);
  },
});
