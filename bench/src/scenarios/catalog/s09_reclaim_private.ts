/**
 * S9 (designs.md §2): host memory pressure against guest private memory. The guest makes a page
 * private and writes a secret; the host turns swap on and reclaims as hard as it can (a write
 * of the whole host's RAM to memory.reclaim, then direct reclaim); the verdict says whether the
 * private page stayed where it was, went to swap and came back, or lost the guest's data.
 */
import { errno_name } from '@cocosim/core';
import { page_ref_count, reclaim, swapon, try_to_free_pages, GFP_HIGHUSER_MOVABLE } from '@cocosim/mm';
import { guestLoad, type CvmVm } from '@cocosim/kvm';
import type { ScenarioContext } from '../scenario.js';
import { cvmScenario, fill8, guestMakeSecret, guestPfn, guestStep, hex, type DesignExpectation } from '../cvm_scenario.js';

/** S9's verdicts. */
export const S9 = {
  resident: 'never reclaimed: the private page stays resident',
  swapped: 'reclaimed: the guest reads its data back from a new page',
  lost: 'reclaimed: the guest\'s data is lost',
  killed: (how: string) => `guest stopped at its next read: ${how}`,
} as const;

const SECRET = 0x5e;

const never: DesignExpectation = { outcome: S9.resident, tag: '[S Andy] ("OOM-kill of the VM is the only relief" for all CoCo designs)' };
const expected: Record<string, DesignExpectation> = {
  // PE20 and PG: "not designed" (designs.md §2 S9, §1 "unaddressed"): nothing is stated for them.
  HWP: { outcome: S9.resident, tag: '(inferred: poisoned pages are effectively unreclaimable)' },
  UPMfd: { outcome: S9.resident, tag: '[S] (shmem_writepage() redirties: never swapped)' },
  D4: never,
  GM68: { outcome: S9.resident, tag: '[S] (unevictable: "KVM will never support swap")' },
  GMIP: { outcome: S9.resident, tag: '[S] (as GM68)' },
  HTLB: { outcome: S9.resident, tag: '[S] (HugeTLB: no swap)' },
  MKTME: { outcome: S9.swapped, tag: '(inferred: swap intended, Dave\'s argument for anonymous memory)' },
  SEV: { outcome: S9.resident, tag: '[S doc] (pinned, never swapped)' },
  SNPA: { outcome: S9.resident, tag: '[S doc] (pinned, never swapped)' },
};

export const s09ReclaimPrivate = cvmScenario({
  name: 's09-reclaim-private',
  ref: 'S9',
  description: 'host memory pressure: reclaim/swap guest private memory',
  expected,
  run(ctx: ScenarioContext, vm: CvmVm): void {
    const gpa = vm.base;
    const kernel = vm.p.mm.kernel;
    if (!guestMakeSecret(ctx, vm, gpa, SECRET)) {
      ctx.verdict('the guest cannot make the page private');
      return;
    }
    const priv = guestPfn(vm, gpa, true);
    const nr = kernel.store.nr_pages;
    ctx.setupStep(`swapon("/dev/cocosim-swap0", ${nr} pages)`, '0', 'mm/swapfile.c sys_swapon(): swap as large as RAM',
      () => { const t = swapon(kernel, nr); return [t < 0 ? `-1 ${errno_name(-t) ?? -t}` : String(t), t]; });
    ctx.step(`echo ${nr * 4096} > memory.reclaim`, undefined, 'mm/memcontrol.c memory_reclaim() -> user_proactive_reclaim(): every evictable page may go',
      () => { const r = reclaim(kernel, nr); return [r < 0 ? `-1 ${errno_name(-r) ?? -r}` : '0', r]; });
    ctx.step(`try_to_free_pages(${nr}, GFP_HIGHUSER_MOVABLE)`, undefined, 'mm/vmscan.c try_to_free_pages(): direct reclaim of an allocation that cannot be satisfied',
      () => { const n = try_to_free_pages(kernel, nr, GFP_HIGHUSER_MOVABLE); return [`${n} reclaimed`, n]; });
    // The page was not freed (KVM's SPTE may have been zapped: the guest's next fault maps it again).
    const stayed = priv !== undefined && page_ref_count(kernel.store, priv) > 0;
    const r = guestStep(ctx, vm, `load 8 bytes at 0x${gpa.toString(16)}`, undefined, 'the guest reads its secret after the pressure',
      () => guestLoad(gpa, 8), hex);
    if (!r.done) {
      ctx.verdict(S9.killed(ctx.steps[ctx.steps.length - 1]!.outcome));
      return;
    }
    const now = guestPfn(vm, gpa, true);
    if (hex(r.value) !== hex(fill8(SECRET))) ctx.verdict(S9.lost);
    else ctx.verdict(stayed && now === priv ? S9.resident : S9.swapped);
  },
});
