/**
 * S18 (designs.md §2): VM teardown / VMM crash. The VMM's files are all closed (exit_files) and
 * its mappings unmapped (exit_mmap) after the guest used private and shared memory; the verdict
 * says whether the pages the guest used went back to the allocator.
 */
import { page_ref_count } from '@cocosim/mm';
import { guestStore, type CvmVm } from '@cocosim/kvm';
import type { ScenarioContext } from '../scenario.js';
import { cvmScenario, fill8, guestMakeSecret, guestPfn, guestStep, sharedGpa, type DesignExpectation } from '../cvm_scenario.js';

export const S18 = {
  freed: 'the guest\'s pages are freed',
  leaked: (what: string) => `still allocated after teardown: ${what}`,
} as const;

const expected: Record<string, DesignExpectation> = {
  GM68: { outcome: S18.freed, tag: '[S code] (memory lives with the inode; freed at its last close)' },
  GMIP: { outcome: S18.freed, tag: '(inferred: as GM68)' },
  SEV: { outcome: S18.freed, tag: '(inferred: unregister -> unpin)' },
};

/** The top of the user address space (x86-64 4-level paging, TASK_SIZE_MAX). */
const TASK_SIZE = 0x7ffffffff000n;

export const s18Teardown = cvmScenario({
  name: 's18-teardown',
  ref: 'S18',
  description: 'VM teardown / VMM crash: reuse of private pages',
  expected,
  run(ctx: ScenarioContext, vm: CvmVm): void {
    const { p } = vm;
    const priv = vm.base;
    const shared = vm.base + 4096n;
    if (!guestMakeSecret(ctx, vm, priv, 0x5e)) {
      ctx.verdict('the guest cannot make the page private');
      return;
    }
    const alias = sharedGpa(vm, shared);
    guestStep(ctx, vm, `store at 0x${alias.toString(16)}`, 'done', 'the guest uses a shared page too', () => guestStore(alias, fill8(1)), () => 'done');
    const pfns = [['private', guestPfn(vm, priv, true)], ['shared', guestPfn(vm, alias, false)]] as const;
    ctx.step('exit_files(): close every fd', undefined, 'the VMM dies: its files are released',
      () => { p.task.files.close_all(); return ['0', undefined]; });
    ctx.step(`exit_mmap(): munmap(0, 0x${TASK_SIZE.toString(16)})`, undefined, 'and its address space',
      () => [String(p.munmap(0n, TASK_SIZE)), undefined]);
    const store = p.mm.kernel.store;
    const left = pfns.filter(([, pfn]) => pfn !== undefined && page_ref_count(store, pfn) > 0).map(([what, pfn]) => `${what} pfn 0x${pfn!.toString(16)}`);
    ctx.verdict(left.length === 0 ? S18.freed : S18.leaked(left.join(', ')));
  },
});
