/**
 * S11 (designs.md §2): compaction, CMA or ZONE_MOVABLE wants the pfn a private page sits on.
 * alloc_contig_range() of that one pfn (what a CMA or gigantic-page allocation does) runs
 * __alloc_contig_migrate_range(); the verdict says whether the page moved (the guest still reads
 * its data, now at another pfn) or could not be moved, with the errno.
 */
import { errno_name } from '@cocosim/core';
import { GFP_KERNEL, __alloc_contig_migrate_range, page_ref_count } from '@cocosim/mm';
import { guestLoad, type CvmVm } from '@cocosim/kvm';
import type { ScenarioContext } from '../scenario.js';
import { cvmScenario, fill8, guestMakeSecret, guestPfn, guestStep, hex, type DesignExpectation } from '../cvm_scenario.js';

/** S11's verdicts. */
export const S11 = {
  moved: 'moved: the guest reads its data at a new pfn',
  stuck: (e: string) => `cannot move: ${e}`,
  lost: 'moved: the guest\'s data is lost',
  stale: 'moved, but the guest still maps the old (freed) pfn',
  killed: (how: string) => `guest stopped at its next read: ${how}`,
} as const;

const SECRET = 0x5e;

const unmovable: DesignExpectation = { outcome: S11.stuck('EBUSY'), tag: '(inferred: GFP_HIGHUSER + AS_UNMOVABLE/inaccessible [S code])' };
const expected: Record<string, DesignExpectation> = {
  GM68: unmovable,
  GMIP: unmovable,
  HTLB: unmovable,
  UPMfd: { outcome: S11.stuck('EBUSY'), tag: '[S] (David: shmem pages "silently turn unmovable")' },
  SEV: { outcome: S11.stuck('EBUSY'), tag: '(inferred: a pinned page cannot move; FOLL_LONGTERM moved it out of CMA/ZONE_MOVABLE at pin time [S])' },
  HWP: { outcome: S11.stuck('EBUSY'), tag: '(inferred: poisoned pages become unmovable)' },
  // PG: §1 says swap/migration is "unaddressed" by D3; KVM reaches its pages through the hva and
  // its MMU notifier, so a move is followed: nothing states a refusal.
};

export const s11CompactionPrivate = cvmScenario({
  name: 's11-compaction-private',
  ref: 'S11',
  description: 'compaction / CMA / ZONE_MOVABLE wants to move a private page',
  expected,
  run(ctx: ScenarioContext, vm: CvmVm): void {
    const gpa = vm.base;
    const kernel = vm.p.mm.kernel;
    if (!guestMakeSecret(ctx, vm, gpa, SECRET)) {
      ctx.verdict('the guest cannot make the page private');
      return;
    }
    const priv = guestPfn(vm, gpa, true);
    if (priv === undefined) {
      ctx.verdict('KVM maps no private page at the GPA');
      return;
    }
    const r = ctx.step(`__alloc_contig_migrate_range(0x${priv.toString(16)}, 0x${(priv + 1).toString(16)}, GFP_KERNEL)`, undefined,
      'mm/page_alloc.c: has_unmovable_pages(), isolate_migratepages_range(), migrate_pages(MR_CONTIG_RANGE)',
      () => { const e = __alloc_contig_migrate_range(kernel, priv, priv + 1, GFP_KERNEL); return [e < 0 ? `-${errno_name(-e) ?? -e}` : '0', e]; });
    if (r < 0) {
      ctx.verdict(S11.stuck(errno_name(-r) ?? String(-r)));
      return;
    }
    const busy = ctx.step(`test_pages_isolated(0x${priv.toString(16)}, 0x${(priv + 1).toString(16)})`, undefined,
      'mm/page_alloc.c alloc_contig_range(): the range must now be free, else -EBUSY',
      () => { const inUse = page_ref_count(kernel.store, priv) > 0; return [inUse ? '-EBUSY' : '0', inUse]; });
    if (busy) {
      ctx.verdict(S11.stuck('EBUSY'));
      return;
    }
    const read = guestStep(ctx, vm, `load 8 bytes at 0x${gpa.toString(16)}`, undefined, 'the guest reads its secret after the range was emptied',
      () => guestLoad(gpa, 8), hex);
    if (!read.done) {
      ctx.verdict(S11.killed(ctx.steps[ctx.steps.length - 1]!.outcome));
      return;
    }
    const now = guestPfn(vm, gpa, true);
    if (hex(read.value) !== hex(fill8(SECRET))) ctx.verdict(S11.lost);
    else ctx.verdict(now !== priv ? S11.moved : S11.stale);
  },
});
