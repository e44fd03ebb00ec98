/**
 * S10 (designs.md §2): NUMA placement of guest private memory. cocosim's mm has no mempolicy
 * (no mbind(), set_mempolicy(), move_pages() or NUMA-balancing hint faults) and its hosts have
 * one node, so the scenario shows the two things those calls rest on: whether any VMA of the
 * VMM maps the private page (mbind() and move_pages() act through one), and whether the page
 * can be migrated at all: the isolate + migrate_pages(MIGRATE_ASYNC, MR_NUMA_MISPLACED) of
 * mm/migrate.c migrate_misplaced_folio(), to a new page of the page's node.
 */
import {
  MIGRATE_ASYNC, MR_NUMA_MISPLACED, NUMA_NO_NODE, GFP_HIGHUSER_MOVABLE, alloc_migration_target, isolate_folio_to_list,
  migrate_pages, page_folio, putback_movable_pages, type Folio,
} from '@cocosim/mm';
import { guestLoad, type CvmVm } from '@cocosim/kvm';
import type { ScenarioContext } from '../scenario.js';
import { cvmScenario, fill8, guestMakeSecret, guestPfn, guestStep, hex, vmmPfn, type DesignExpectation } from '../cvm_scenario.js';

/** S10's verdicts. */
export const S10 = {
  moved: 'migrated: the guest reads its data at a new pfn',
  notIsolated: 'cannot migrate: the page is on no LRU list',
  refused: 'cannot migrate: migrate_pages() leaves it in place',
  lost: 'migrated: the guest\'s data is lost',
  stale: 'migrated, but the guest still maps the old (freed) pfn',
  killed: (how: string) => `guest stopped at its next read: ${how}`,
} as const;

const SECRET = 0x5e;

const expected: Record<string, DesignExpectation> = {
  UPMfd: { outcome: S10.refused, tag: '[S] (migrate -> -EBUSY)' },
  D4: { outcome: S10.refused, tag: '[S] (migrate -> -EBUSY)' },
  GM68: { outcome: S10.refused, tag: '[S code] (inaccessible/AS_UNMOVABLE mapping)' },
  GMIP: { outcome: S10.refused, tag: '[S] (still no migration)' },
  HTLB: { outcome: S10.refused, tag: '[S] (still no migration)' },
  MKTME: { outcome: S10.moved, tag: '(inferred: normal NUMA)' },
  SEV: { outcome: S10.refused, tag: '(inferred: placement fixed at pin time)' },
};

export const s10NumaPrivate = cvmScenario({
  name: 's10-numa-private',
  ref: 'S10',
  description: 'NUMA: bind guest private memory to a node / migrate it',
  expected,
  run(ctx: ScenarioContext, vm: CvmVm): void {
    const gpa = vm.base;
    const kernel = vm.p.mm.kernel;
    const store = kernel.store;
    if (!guestMakeSecret(ctx, vm, gpa, SECRET)) {
      ctx.verdict('the guest cannot make the page private');
      return;
    }
    const priv = guestPfn(vm, gpa, true);
    if (priv === undefined) {
      ctx.verdict('KVM maps no private page at the GPA');
      return;
    }
    const hva = vm.design.hva(vm, gpa);
    ctx.step(`VMM: which page does 0x${hva?.toString(16) ?? '(none)'} map (/proc/self/pagemap)`, undefined,
      'mm/mempolicy.c do_mbind() and move_pages() reach memory only through the VMAs of the caller',
      () => {
        if (hva === undefined) return ['no VMM mapping of the GPA', undefined];
        const pfn = vmmPfn(vm, hva);
        return [pfn === undefined ? 'nothing mapped' : pfn === priv ? 'the private page' : 'another page', undefined];
      });
    const folio = page_folio(store, priv) as Folio;
    const list: Folio[] = [];
    const isolated = ctx.step(`folio_isolate_lru(pfn 0x${priv.toString(16)})`, undefined,
      'mm/migrate.c migrate_misplaced_folio_prepare(): only an LRU folio can be taken for migration',
      () => { const ok = isolate_folio_to_list(kernel, folio, list); return [ok ? 'isolated' : 'not on an LRU', ok]; });
    if (!isolated) {
      ctx.verdict(S10.notIsolated);
      return;
    }
    const left = ctx.step('migrate_pages(MIGRATE_ASYNC, MR_NUMA_MISPLACED)', undefined,
      'mm/migrate.c migrate_misplaced_folio(): the mapping\'s migrate_folio decides (an inaccessible mapping: -EOPNOTSUPP)',
      () => {
        const mtc = { nid: NUMA_NO_NODE, gfp_mask: GFP_HIGHUSER_MOVABLE, reason: MR_NUMA_MISPLACED };
        const n = migrate_pages(kernel, list, (src) => alloc_migration_target(kernel, src, mtc), undefined, MIGRATE_ASYNC, MR_NUMA_MISPLACED);
        putback_movable_pages(kernel, list);
        return [n < 0 ? String(n) : `${n} not migrated`, n];
      });
    if (left !== 0) {
      ctx.verdict(S10.refused);
      return;
    }
    const r = guestStep(ctx, vm, `load 8 bytes at 0x${gpa.toString(16)}`, undefined, 'the guest reads its secret after the migration',
      () => guestLoad(gpa, 8), hex);
    if (!r.done) ctx.verdict(S10.killed(ctx.steps[ctx.steps.length - 1]!.outcome));
    else if (hex(r.value) !== hex(fill8(SECRET))) ctx.verdict(S10.lost);
    else ctx.verdict(guestPfn(vm, gpa, true) === priv ? S10.stale : S10.moved);
  },
});
