/**
 * S14 (designs.md §2): conversion ping-pong: one 4 KiB page toggled shared<->private N times,
 * the guest writing it in between. Each toggle is a step, so the table shows what one costs on
 * each design (zaps, TLB flushes, allocations, firmware calls); the verdict is how far it got.
 */
import { guestStore, type CvmVm } from '@cocosim/kvm';
import type { ScenarioContext, ScenarioOptions } from '../scenario.js';
import { cvmScenario, fill8, guestConvert, guestStep, sharedGpa, type DesignExpectation } from '../cvm_scenario.js';

/** Round trips when the size does not say: size / 4 KiB, capped. */
const ROUND_TRIPS = 8;

export const S14 = {
  all: (n: number) => `${n} round trips`,
  stops: (i: number, dir: string) => `round trip ${i}: to-${dir} refused`,
} as const;

const all: DesignExpectation = { outcome: S14.all(ROUND_TRIPS), tag: '(inferred: every toggle is legal)' };
const expected: Record<string, DesignExpectation> = {
  GM68: all,
  GMIP: { outcome: S14.all(ROUND_TRIPS), tag: '[S code] (no allocation per toggle)' },
  UPMfd: { outcome: S14.all(ROUND_TRIPS), tag: '[S] (allocate/free of the fd page each time)' },
  // The first to-private is KVM_HC_ENABLE_MEM_PROTECTED, which works; a page once shared stays shared.
  HWP: { outcome: S14.stops(2, 'private'), tag: '[S code] (only private->shared exists; shared ranges only grow)' },
};

export const s14PingPong = cvmScenario({
  name: 's14-ping-pong',
  ref: 'S14',
  description: 'conversion ping-pong: one 4 KiB page toggled shared<->private N times',
  expected,
  run(ctx: ScenarioContext, vm: CvmVm, _opts: ScenarioOptions): void {
    const gpa = vm.base;
    for (let i = 1; i <= ROUND_TRIPS; i++) {
      for (const to_private of [true, false]) {
        if (!guestConvert(ctx, vm, gpa, 1n, to_private, null).ok) {
          ctx.verdict(S14.stops(i, to_private ? 'private' : 'shared'));
          return;
        }
        const at = to_private ? gpa : sharedGpa(vm, gpa);
        guestStep(ctx, vm, `store at 0x${at.toString(16)}`, 'done', 'the guest uses the page between toggles',
          () => guestStore(at, fill8(i)), () => 'done');
      }
    }
    ctx.verdict(S14.all(ROUND_TRIPS));
  },
});
