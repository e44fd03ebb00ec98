/**
 * S23 (designs.md §2): the VMM forks and the child touches the address of a private page. The
 * scenario needs fork() (kernel/fork.c copy_process() -> dup_mm() -> dup_mmap(), copying each
 * VMA's page tables with copy_page_range()); cocosim's mm has none, so it is a skipped cell on
 * every platform until mm grows one. designs.md's expectations are kept here for that day.
 */
import type { CvmVm } from '@cocosim/kvm';
import type { ScenarioContext } from '../scenario.js';
import { cvmScenario, type DesignExpectation } from '../cvm_scenario.js';

/** S23's verdicts. */
export const S23 = {
  signal: (sig: string) => sig,
  noMapping: 'no mapping of private memory in the child',
  consistent: 'the child sees the same shared/private state',
} as const;

const expected: Record<string, DesignExpectation> = {
  HWP: { outcome: 'SIGBUS BUS_MCEERR_AR', tag: '[S code] (hwpoison entries are copied to the child)' },
  PE20: { outcome: 'SIGBUS BUS_ADRERR', tag: '(inferred: the child inherits PROT_NONE)' },
  PG: { outcome: 'SIGBUS BUS_ADRERR', tag: '(inferred: the child inherits PROT_NONE)' },
  GM68: { outcome: S23.noMapping, tag: '[S code] (the child inherits the gmem fd and keeps the VM alive)' },
  GMIP: { outcome: S23.consistent, tag: '[S selftest]' },
};

export const s23VmmFork = cvmScenario({
  name: 's23-vmm-fork',
  ref: 'S23',
  description: 'VMM fork(): the child touches the address of a private page',
  expected,
  needs: () => 'cocosim\'s mm has no fork()',
  run(ctx: ScenarioContext, _vm: CvmVm): void {
    ctx.verdict('cocosim\'s mm has no fork()');
  },
});
