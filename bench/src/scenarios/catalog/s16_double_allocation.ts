/**
 * S16 (designs.md §2): double allocation. The guest converts a page private->shared and the VMM
 * never discards the copy it no longer uses (policy.discard false). The verdict counts the
 * copies: is the page the guest used privately still allocated next to the shared one?
 */
import { page_ref_count } from '@cocosim/mm';
import { guestStore, type CvmVm } from '@cocosim/kvm';
import type { ScenarioContext } from '../scenario.js';
import { cvmScenario, fill8, guestConvert, guestMakeSecret, guestPfn, guestStep, sharedGpa, type DesignExpectation } from '../cvm_scenario.js';

export const S16 = {
  one: 'one copy',
  two: 'two copies: the private page stays allocated',
} as const;

const expected: Record<string, DesignExpectation> = {
  // designs.md's UPMfd line holds where attributes decide (D7, and D6 v7 with REG_REGION). In
  // v3-v6 (memfd_seal, mfd_inaccessible as modelled) the to-shared conversion *is* the private
  // fd's PUNCH_HOLE (Chao Peng's ram_block_convert_range, 2022-01-04), so the private page is
  // freed by the conversion itself and one copy is left.
  memfd_seal: { outcome: S16.one, tag: '(simulator: v3-v6 convert to shared by punching the private fd)' },
  mfd_inaccessible: { outcome: S16.one, tag: '(simulator: v5/v6 convert to shared by punching the private fd)' },
  UPMfd: { outcome: S16.two, tag: '[S] (F_SEAL_AUTO_ALLOCATE was meant for the shared side)' },
  GM68: { outcome: S16.two, tag: '[S cloud-hypervisor PR] (until the VMM punches the gmem hole)' },
  GMIP: { outcome: S16.one, tag: '[S]' },
  HTLB: { outcome: S16.one, tag: '(inferred: as GMIP)' },
  PG: { outcome: S16.two, tag: '(inferred: shmem PageGuest + anon shared page)' },
  SEV: { outcome: S16.one, tag: '(inferred)' },
};

export const s16DoubleAllocation = cvmScenario({
  name: 's16-double-allocation',
  ref: 'S16',
  description: 'double allocation: guest converts private->shared, VMM never discards the private copy',
  expected,
  discard: false,
  run(ctx: ScenarioContext, vm: CvmVm): void {
    const gpa = vm.base;
    if (!guestMakeSecret(ctx, vm, gpa, 0x5e)) {
      ctx.verdict('the guest cannot make the page private');
      return;
    }
    const priv = guestPfn(vm, gpa, true);
    if (!guestConvert(ctx, vm, gpa, 1n, false).ok) {
      ctx.verdict('the guest cannot make the page shared');
      return;
    }
    const alias = sharedGpa(vm, gpa);
    guestStep(ctx, vm, `store at 0x${alias.toString(16)}`, 'done', 'the guest uses the shared page',
      () => guestStore(alias, fill8(0x11)), () => 'done');
    const shared = guestPfn(vm, alias, false);
    const kept = priv !== undefined && priv !== shared && page_ref_count(vm.p.mm.kernel.store, priv) > 0;
    ctx.verdict(kept ? S16.two : S16.one);
  },
});
