/**
 * S26 (designs.md §2): who is charged for guest private memory. The guest makes pages private
 * and writes them; the scenario reads the VMM's counters (/proc/pid/status: RssFile, RssAnon,
 * RssShmem, VmLck, VmPin, from mm->rss_stat, locked_vm and pinned_vm) and the LRU list the
 * private folio sits on (what /proc/meminfo and memcg's Unevictable/Active/Inactive count). The
 * verdict says whether the private page is in the VMM's RSS, whether mm's memlock counters
 * hold any page, and which LRU list holds it.
 */
import {
  LRU_NAMES, MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES, folio_lru_linked, page_folio,
} from '@cocosim/mm';
import { guestStore, type CvmVm } from '@cocosim/kvm';
import type { ScenarioContext } from '../scenario.js';
import { cvmScenario, fill8, guestConvert, guestPfn, guestStep, vmmPfn, type DesignExpectation } from '../cvm_scenario.js';

/** Private pages the guest writes. */
const NR = 8;

/** S26's verdict: where the private memory is counted. */
export const S26 = {
  counted: (rss: boolean, memlock: boolean, lru: string) => `VMM RSS: ${rss ? 'yes' : 'no'}; mm memlock counters: ${memlock ? 'yes' : 'no'}; LRU: ${lru}`,
} as const;

const expected: Record<string, DesignExpectation> = {
  GM68: { outcome: S26.counted(false, false, 'unevictable'), tag: '[S] (memcg file/unevictable, not the VMM RSS)' },
};

export const s26Accounting = cvmScenario({
  name: 's26-accounting',
  ref: 'S26',
  description: 'memory accounting / limits of guest private memory',
  expected,
  run(ctx: ScenarioContext, vm: CvmVm): void {
    const { p } = vm;
    const store = p.mm.kernel.store;
    if (vm.size < BigInt(NR * 4096)) {
      ctx.verdict(`needs ${NR} pages of guest memory`);
      return;
    }
    const status = (): string => `RssFile ${p.mm.get_mm_counter(MM_FILEPAGES)}, RssAnon ${p.mm.get_mm_counter(MM_ANONPAGES)}, `
      + `RssShmem ${p.mm.get_mm_counter(MM_SHMEMPAGES)}, VmLck ${p.mm.locked_vm}, VmPin ${p.mm.pinned_vm} (pages)`;
    ctx.step('VMM: /proc/self/status', undefined, 'fs/proc/task_mmu.c task_mem(): the counters with all guest memory shared', () => [status(), undefined]);
    if (!guestConvert(ctx, vm, vm.base, BigInt(NR), true).ok) {
      ctx.verdict('the guest cannot make the pages private');
      return;
    }
    const wrote = guestStep(ctx, vm, `store to ${NR} private pages`, 'done', 'the guest fills its private memory', function* () {
      for (let i = 0; i < NR; i++) yield* guestStore(vm.base + BigInt(i * 4096), fill8(0x5e));
    }, () => 'done');
    if (!wrote.done) {
      ctx.verdict('the guest cannot write its private pages');
      return;
    }
    ctx.step('VMM: /proc/self/status', undefined, 'fs/proc/task_mmu.c task_mem(): after the guest used its private pages', () => [status(), undefined]);
    const priv = guestPfn(vm, vm.base, true);
    if (priv === undefined) {
      ctx.verdict('KVM maps no private page at the GPA');
      return;
    }
    let inRss = false;
    for (let i = 0; i < NR && !inRss; i++) {
      const gpa = vm.base + BigInt(i * 4096);
      const hva = vm.design.hva(vm, gpa);
      const pfn = guestPfn(vm, gpa, true);
      inRss = hva !== undefined && pfn !== undefined && vmmPfn(vm, hva) === pfn;
    }
    const lru = ctx.step(`the LRU list of pfn 0x${priv.toString(16)}`, undefined, 'include/linux/mm_inline.h folio_lru_list(): what meminfo and memcg count it as',
      () => { const l = folio_lru_linked(store, page_folio(store, priv)); const name = l < 0 ? 'none' : LRU_NAMES[l]!; return [name, name]; });
    ctx.verdict(S26.counted(inRss, p.mm.locked_vm + p.mm.pinned_vm > 0, lru === 'unevictable' ? 'unevictable' : lru));
  },
});
