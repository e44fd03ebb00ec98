/**
 * S4 (designs.md §2): a long-term GUP pin of a private page through the VMM's mapping (what
 * O_DIRECT, io_uring fixed buffers, vmsplice and RDMA do): pin_user_pages(FOLL_WRITE |
 * FOLL_LONGTERM) on the GPA's user address. The verdict says whether the pin works and which
 * page it holds.
 */
import { FOLL_LONGTERM, FOLL_WRITE, pin_user_pages, unpin_user_pages } from '@cocosim/mm';
import type { CvmVm } from '@cocosim/kvm';
import { errno_name } from '@cocosim/core';
import type { ScenarioContext } from '../scenario.js';
import { cvmScenario, guestMakeSecret, guestPfn, type DesignExpectation } from '../cvm_scenario.js';

export const S4 = {
  noMapping: 'no VMM mapping of the GPA',
  efault: 'pin fails: -EFAULT',
  shared: 'pins the shared page, not the private one',
  private: 'pins the private page',
} as const;

const expected: Record<string, DesignExpectation> = {
  PE20: { outcome: S4.efault, tag: '[S] (without FOLL_KVM)' },
  HWP: { outcome: S4.efault, tag: '[S]' },
  PG: { outcome: S4.efault, tag: '[S] (without FOLL_GUEST)' },
  UPMfd: { outcome: S4.shared, tag: '[S] (no VA for private memory)' },
  GM68: { outcome: S4.shared, tag: '[S] (no VA for private memory)' },
  D4: { outcome: S4.shared, tag: '[S] (no VA for private memory)' },
  GMIP: { outcome: S4.efault, tag: '(inferred: a private page faults, GUP fails)' },
  HTLB: { outcome: S4.efault, tag: '(inferred: as GMIP)' },
  MKTME: { outcome: S4.private, tag: '[S Andy: "fully functional and can be GUP-ed"]' },
  SEV: { outcome: S4.private, tag: '(inferred)' },
  SNPA: { outcome: S4.private, tag: '(inferred)' },
};

export const s04GupPrivate = cvmScenario({
  name: 's04-gup-private',
  ref: 'S4',
  description: 'GUP pin of a private page (O_DIRECT, io_uring fixed buffers, vmsplice, RDMA)',
  expected,
  run(ctx: ScenarioContext, vm: CvmVm): void {
    const gpa = vm.base;
    const hva = vm.design.hva(vm, gpa);
    if (!guestMakeSecret(ctx, vm, gpa, 0x5e)) {
      ctx.verdict('the guest cannot make the page private');
      return;
    }
    if (hva === undefined) {
      ctx.verdict(S4.noMapping);
      return;
    }
    const priv = guestPfn(vm, gpa, true);
    const pages: number[] = [];
    const r = ctx.step(`pin_user_pages(0x${hva.toString(16)}, 1, FOLL_WRITE | FOLL_LONGTERM)`, undefined,
      'mm/gup.c: the design decides whether a private page can be pinned',
      () => { const n = pin_user_pages(vm.p.mm, Number(hva / 4096n), 1, FOLL_WRITE | FOLL_LONGTERM, pages); return [n < 0 ? `-${errno_name(-n) ?? -n}` : String(n), n]; });
    if (r !== 1) {
      ctx.verdict(r < 0 ? `pin fails: -${errno_name(-r) ?? -r}` : `pin fails: ${r}`);
      return;
    }
    ctx.verdict(pages[0] === priv ? S4.private : S4.shared);
    unpin_user_pages(vm.p.mm.kernel.store, pages, 1);
  },
});
