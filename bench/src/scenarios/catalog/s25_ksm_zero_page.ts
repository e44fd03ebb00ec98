/**
 * S25 (designs.md §2): KSM and the shared zero page. cocosim's mm has no ksmd (madvise
 * MADV_MERGEABLE only sets VM_MERGEABLE on a KSM-compatible VMA), so the KSM half is the
 * madvise() and whether the VMA could ever be merged. The zero-page half: the guest makes a page
 * private without touching it, the VMM reads that GPA through its mapping, and the verdict says
 * whether the shared zero page stands in for it.
 */
import { MADV_MERGEABLE, VM_MERGEABLE, find_vma, vm_flags_test } from '@cocosim/mm';
import type { CvmVm } from '@cocosim/kvm';
import type { ScenarioContext } from '../scenario.js';
import { cvmScenario, guestConvert, userAccessOutcome, vmmPfn, type DesignExpectation } from '../cvm_scenario.js';
import { sysOutcome } from '../scenario.js';

/** S25's verdicts. */
export const S25 = {
  noMapping: 'no VMM mapping of the GPA',
  zero: 'the shared zero page backs the private GPA',
  notZero: 'not the zero page: the read allocates a page',
  signal: (sig: string) => sig,
} as const;

const expected: Record<string, DesignExpectation> = {
  PE20: { outcome: 'SIGBUS BUS_ADRERR', tag: '[S] (the zero page is not used for protected VMAs; a host read of one is SIGBUS, S2)' },
  UPMfd: { outcome: S25.notZero, tag: '(inferred: not anonymous memory)' },
  GM68: { outcome: S25.notZero, tag: '(inferred: not anonymous memory, KSM never sees it)' },
};

export const s25KsmZeroPage = cvmScenario({
  name: 's25-ksm-zero-page',
  ref: 'S25',
  description: 'KSM / shared zero page on guest private memory',
  expected,
  run(ctx: ScenarioContext, vm: CvmVm): void {
    const gpa = vm.base;
    const { p } = vm;
    const hva = vm.design.hva(vm, gpa);
    if (!guestConvert(ctx, vm, gpa, 1n, true).ok) {
      ctx.verdict('the guest cannot make the page private');
      return;
    }
    if (hva === undefined) {
      ctx.verdict(S25.noMapping);
      return;
    }
    ctx.step(`madvise(0x${hva.toString(16)}, 4096, MADV_MERGEABLE)`, (o) => o.startsWith('0 '),
      'mm/ksm.c ksm_madvise(): VM_MERGEABLE only on a KSM-compatible VMA (anonymous, private), 0 either way',
      () => {
        const r = p.madvise(hva, 4096, MADV_MERGEABLE);
        const vma = find_vma(p.mm, Number(hva / 4096n));
        const merge = vma !== undefined && vm_flags_test(vma.vm_flags, VM_MERGEABLE);
        return [r < 0 ? sysOutcome(p, r) : `0 (${merge ? 'VM_MERGEABLE set' : 'VMA not KSM-compatible: flag not set'})`, merge];
      });
    const r = ctx.step(`VMM: load 8 bytes at 0x${hva.toString(16)}`, undefined, 'a read fault on a page nobody wrote',
      () => { const x = p.load(hva, 8); return [userAccessOutcome(x), x]; });
    if (!(r instanceof Uint8Array)) {
      ctx.verdict(S25.signal(`${r.signo} ${r.si_code}`));
      return;
    }
    const pfn = ctx.step('/proc/self/pagemap of the address', undefined, 'mm/memory.c do_anonymous_page() maps my_zero_pfn() for a read',
      () => { const x = vmmPfn(vm, hva); return [x === undefined ? 'not present' : x === p.mm.kernel.store.zero_pfn ? 'the zero page' : 'a page of its own', x]; });
    ctx.verdict(pfn === p.mm.kernel.store.zero_pfn ? S25.zero : S25.notZero);
  },
});
