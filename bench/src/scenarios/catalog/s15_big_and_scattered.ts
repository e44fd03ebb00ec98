/**
 * S15 (designs.md §2): a guest that starts all private converts one big run to shared at boot
 * (the swiotlb bounce buffer: 256 pages here) and then many scattered single pages (32, each
 * with a private neighbour on both sides). The verdict says which host structures grew with the
 * conversions: KVM's memslots, the VMM's VMAs, or KVM's memory-attribute ranges.
 */
import type { CvmVm } from '@cocosim/kvm';
import type { ScenarioContext } from '../scenario.js';
import { cvmScenario, guestConvert, type DesignExpectation } from '../cvm_scenario.js';

const RUN = 256;
const SCATTERED = 32;
/** The guest's memory in pages: the run, then 2 pages per scattered page, then a private tail. */
const GUEST_PAGES = RUN + 2 * SCATTERED + 8;

/** What a host structure counts; `attr` is the ranges of kvm->mem_attr_array. */
interface Counts { readonly memslots: number; readonly vmas: number; readonly attr: number }

/** S15's verdicts: the structures that grew, in this order. */
export const S15 = {
  refused: (i: number) => `the guest cannot share scattered page ${i}`,
  grows: (what: readonly string[]) => (what.length === 0 ? 'nothing KVM or the VMM keeps grows' : `grows: ${what.join(', ')}`),
} as const;

const expected: Record<string, DesignExpectation> = {
  HWP: { outcome: S15.refused(SCATTERED - 1), tag: '[S] (at most 32 merged shared ranges; WARN when full)' },
  PG: { outcome: S15.grows(['VMAs']), tag: '(inferred: one VMA per converted run)' },
  D4: { outcome: S15.grows(['memslots']), tag: '[S] (one memslot per run; David: "Just cap it")' },
  UPMfd: { outcome: S15.grows(['attribute ranges']), tag: '[S] (a single memslot; xarray range stores)' },
  memfd_seal: { outcome: S15.grows([]), tag: '(inferred: D5 keeps no attributes: a page is private iff allocated in the fd)' },
  // D6 as modelled is v5/v6, private iff allocated in the fd like D5; v7's per-VM xarray
  // (REG_REGION), which designs.md's UPMfd line describes, is not modelled.
  mfd_inaccessible: { outcome: S15.grows([]), tag: '(simulator: v5/v6, a page is private iff allocated in the fd)' },
  GM68: { outcome: S15.grows(['attribute ranges']), tag: '[S] (a single memslot; xarray range stores)' },
};

function counts(vm: CvmVm): Counts {
  let memslots = 0;
  for (const slots of vm.kvm.memslots) memslots += slots.id_hash.size;
  return { memslots, vmas: vm.p.mm.map_count, attr: vm.kvm.mem_attr_array.size };
}

function show(c: Counts): string {
  return `${c.memslots} memslots, ${c.vmas} VMAs, ${c.attr} attribute ranges`;
}

export const s15BigAndScattered = cvmScenario({
  name: 's15-big-and-scattered',
  ref: 'S15',
  description: 'guest converts a big range at boot (swiotlb) and many scattered pages to shared',
  default_size: GUEST_PAGES * 4096,
  expected,
  run(ctx: ScenarioContext, vm: CvmVm): void {
    const pages = vm.size / 4096n;
    if (pages < BigInt(GUEST_PAGES)) {
      ctx.verdict(`needs ${GUEST_PAGES} pages of guest memory`);
      return;
    }
    if (!guestConvert(ctx, vm, vm.base, pages, true).ok) {
      ctx.verdict('the guest cannot make its memory private');
      return;
    }
    const before = ctx.step('count memslots, VMAs (/proc/self/maps), attribute ranges', undefined,
      'the host\'s structures while all of guest memory is private', () => { const c = counts(vm); return [show(c), c]; });
    if (!guestConvert(ctx, vm, vm.base, BigInt(RUN), false).ok) {
      ctx.verdict('the guest cannot share the big run');
      return;
    }
    for (let i = 0; i < SCATTERED; i++) {
      const gpa = vm.base + BigInt((RUN + 1 + 2 * i) * 4096);
      // A refusal is the verdict (D2's 32 shared ranges), not a wrong step.
      if (!guestConvert(ctx, vm, gpa, 1n, false, null).ok) {
        ctx.verdict(S15.refused(i));
        return;
      }
    }
    const after = ctx.step('count memslots, VMAs (/proc/self/maps), attribute ranges', undefined,
      `after 1 run of ${RUN} pages and ${SCATTERED} scattered pages went shared`, () => { const c = counts(vm); return [show(c), c]; });
    const grew: string[] = [];
    if (after.memslots > before.memslots) grew.push('memslots');
    if (after.vmas > before.vmas) grew.push('VMAs');
    if (after.attr > before.attr) grew.push('attribute ranges');
    ctx.verdict(S15.grows(grew));
  },
});
