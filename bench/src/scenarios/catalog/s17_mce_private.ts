/**
 * S17 (designs.md §2): an uncorrectable memory error hits a private page. memory_failure() runs
 * on the guest's private pfn as the machine-check handler would (MF_ACTION_REQUIRED off: the
 * error is found by a patrol scrub, not consumed by the VMM); the guest then reads the page.
 * The verdict is what the guest's read gives.
 */
import { memory_failure } from '@cocosim/mm';
import { guestLoad, type CvmVm } from '@cocosim/kvm';
import type { ScenarioContext } from '../scenario.js';
import { cvmScenario, fill8, guestMakeSecret, guestPfn, guestStep, hex, type DesignExpectation } from '../cvm_scenario.js';

export const S17 = {
  intact: 'the guest reads its data: the error went unnoticed',
  zeros: 'the guest reads zeros',
  stopped: (how: string) => `the guest's read stops: ${how}`,
} as const;

const SECRET = 0x5e;

/** designs.md's GM68 line reads x86's fault path (kvm_mmu_faultin_pfn_private); arm64 handles a poisoned gmem page its own way. */
const X86 = new Set(['sw_protected', 'tdx', 'sev']);

function expected(design: string, vendor: string): DesignExpectation | undefined {
  if (design !== 'upstream' || !X86.has(vendor)) return undefined;
  return { outcome: S17.stopped('KVM_RUN -1 EHWPOISON (KVM_EXIT_MEMORY_FAULT)'), tag: '[S code] (kvm_gmem_error_folio; kvm_gmem_get_pfn -EHWPOISON, with the memory-fault exit prepared)' };
}

export const s17McePrivate = cvmScenario({
  name: 's17-mce-private',
  ref: 'S17',
  description: 'uncorrectable memory error (#MC) hits a private page',
  expected,
  run(ctx: ScenarioContext, vm: CvmVm): void {
    const gpa = vm.base;
    if (!guestMakeSecret(ctx, vm, gpa, SECRET)) {
      ctx.verdict('the guest cannot make the page private');
      return;
    }
    const pfn = guestPfn(vm, gpa, true);
    if (pfn === undefined) {
      ctx.verdict('KVM maps no private page at the GPA');
      return;
    }
    ctx.step(`memory_failure(pfn 0x${pfn.toString(16)}, 0)`, undefined, 'mm/memory-failure.c: the folio\'s mapping decides (gmem: kvm_gmem_error_folio)',
      () => { const r = memory_failure(vm.p.mm.kernel, pfn, 0); return [String(r), r]; });
    const r = guestStep(ctx, vm, `load 8 bytes at 0x${gpa.toString(16)}`, undefined, 'the guest touches the poisoned page',
      () => guestLoad(gpa, 8), hex);
    if (!r.done) ctx.verdict(S17.stopped(ctx.steps[ctx.steps.length - 1]!.outcome));
    else ctx.verdict(hex(r.value) === hex(fill8(SECRET)) ? S17.intact : hex(r.value) === hex(fill8(0)) ? S17.zeros : `the guest reads ${hex(r.value)}`);
  },
});
