/**
 * S24 (designs.md §2): PUNCH_HOLE on a private range while the guest runs. The VMM punches the
 * private file under a page the guest made private and wrote; the guest reads it again. The
 * verdict is what the guest reads (a fresh page, its data, or an exit).
 */
import { errno_name } from '@cocosim/core';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE } from '@cocosim/mm';
import { guestLoad, type CvmVm } from '@cocosim/kvm';
import { sysOutcome, type ScenarioContext } from '../scenario.js';
import { cvmScenario, fill8, guestMakeSecret, guestStep, hex, type DesignExpectation } from '../cvm_scenario.js';

export const S24 = {
  refused: (e: string) => `punch refused: ${e}`,
  zeros: 'the guest reads a fresh zeroed page',
  kept: 'the guest still reads its data',
  stopped: (how: string) => `the guest's read stops: ${how}`,
} as const;

const SECRET = 0x5e;

const expected = (design: string, vendor: string): DesignExpectation | undefined => {
  if (vendor !== 'sw_protected') return undefined;
  if (design === 'upstream') return { outcome: S24.zeros, tag: '[S code] (invalidate, truncate; the next access allocates a zeroed page)' };
  if (design === 'gmem_inplace') return { outcome: S24.zeros, tag: '[S selftest] (truncation keeps the private status)' };
  return undefined;
};

export const s24PunchPrivate = cvmScenario({
  name: 's24-punch-private',
  ref: 'S24',
  description: 'PUNCH_HOLE / truncate on a private range while the guest runs',
  expected,
  needs: (_v, design) => (design.vmm.private_fd === undefined ? `design ${design.name}: private memory is no file the VMM holds` : undefined),
  run(ctx: ScenarioContext, vm: CvmVm): void {
    const { p } = vm;
    const gpa = vm.base;
    if (!guestMakeSecret(ctx, vm, gpa, SECRET)) {
      ctx.verdict('the guest cannot make the page private');
      return;
    }
    const pf = vm.design.private_fd!(vm, gpa);
    if (pf === undefined) {
      ctx.verdict('no private file at the GPA');
      return;
    }
    const r = ctx.step(`fallocate(${pf.fd}, PUNCH_HOLE | KEEP_SIZE, ${pf.offset}, 4096)`, undefined,
      'the private file\'s punch: KVM is told to zap first (invalidate_begin)',
      () => { const x = p.fallocate(pf.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, pf.offset, 4096n); return [sysOutcome(p, x), x]; });
    if (r < 0) {
      ctx.verdict(S24.refused(errno_name(p.errno) ?? String(p.errno)));
      return;
    }
    const g = guestStep(ctx, vm, `load 8 bytes at 0x${gpa.toString(16)}`, undefined, 'the guest touches the punched page',
      () => guestLoad(gpa, 8), hex);
    if (!g.done) ctx.verdict(S24.stopped(ctx.steps[ctx.steps.length - 1]!.outcome));
    else ctx.verdict(hex(g.value) === hex(fill8(SECRET)) ? S24.kept : hex(g.value) === hex(fill8(0)) ? S24.zeros : `the guest reads ${hex(g.value)}`);
  },
});
