/**
 * S6 (designs.md §2): the guest converts 4 KiB inside a 2 MiB huge mapping (private->shared).
 * Guest memory is backed with 2 MiB pages where the design can; the guest makes a 2 MiB run
 * private and touches it, then shares its first 4 KiB and touches the run again. The verdict is
 * the level of KVM's private mapping of a neighbour page before and after.
 */
import { guestStore, type CvmVm } from '@cocosim/kvm';
import type { ScenarioContext } from '../scenario.js';
import { cvmScenario, fill8, guestConvert, guestStep, type DesignExpectation } from '../cvm_scenario.js';
import { cvm_spte } from '@cocosim/kvm';

const LEVEL = ['none', '4K', '2M', '1G'];
const RUN = 512n;

export const S6 = {
  levels: (before: number, after: number) => `private mapping ${LEVEL[before] ?? before} -> ${LEVEL[after] ?? after}`,
  fails: 'the 4 KiB conversion fails',
} as const;

const expected: Record<string, DesignExpectation> = {
  GM68: { outcome: S6.levels(1, 1), tag: '[S] (gmem is order-0: only 4K guest mappings)' },
  GMIP: { outcome: S6.levels(1, 1), tag: '[S] (order-0 folios in v8)' },
};

function level(vm: CvmVm, gpa: bigint): number {
  return cvm_spte(vm, gpa, true)?.level ?? 0;
}

export const s06SplitHuge = cvmScenario({
  name: 's06-split-huge',
  ref: 'S6',
  description: 'guest converts 4 KiB inside a 2 MiB huge mapping (private->shared)',
  default_size: 4 * 1024 * 1024,
  page_sizes: [4096, 2 * 1024 * 1024],
  expected,
  run(ctx: ScenarioContext, vm: CvmVm): void {
    const gpa = vm.base;
    const neighbour = gpa + 4096n * 7n;
    if (!guestConvert(ctx, vm, gpa, RUN, true).ok) {
      ctx.verdict('the guest cannot make the 2 MiB run private');
      return;
    }
    guestStep(ctx, vm, `store at 0x${neighbour.toString(16)}`, 'done', 'KVM maps the private run', () => guestStore(neighbour, fill8(1)), () => 'done');
    const before = level(vm, neighbour);
    if (!guestConvert(ctx, vm, gpa, 1n, false, null).ok) {
      ctx.verdict(S6.fails);
      return;
    }
    guestStep(ctx, vm, `store at 0x${neighbour.toString(16)}`, 'done', 'KVM maps the neighbour again', () => guestStore(neighbour, fill8(2)), () => 'done');
    ctx.verdict(S6.levels(before, level(vm, neighbour)));
  },
});
