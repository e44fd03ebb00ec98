/**
 * S1 (designs.md §2): a malicious VMM stores to a GPA after the guest made it private, through
 * the mapping it had while the page was shared. The guest fills the page while it is shared,
 * converts it, writes a secret, and reads it back after the VMM's store; the verdict says where
 * the store went.
 */
import type { CvmVm } from '@cocosim/kvm';
import type { ScenarioContext } from '../scenario.js';
import { guestLoad } from '@cocosim/kvm';
import { cvmScenario, fill8, guestMakeSecret, guestStep, hex, userAccessOutcome, type DesignExpectation } from '../cvm_scenario.js';

/** S1's verdicts. */
export const S1 = {
  signal: (sig: string) => sig,
  noMapping: 'no VMM mapping of the GPA',
  missed: 'store lands outside the private page; guest data intact',
  plaintext: 'store reaches the private page: guest reads the VMM data',
  garbage: 'store corrupts the private page: guest reads garbage',
  killed: (how: string) => `guest stopped at its next read: ${how}`,
} as const;

const SECRET = 0x5e;
const EVIL = 0xee;

const expected: Record<string, DesignExpectation> = {
  PE20: { outcome: 'SIGBUS BUS_ADRERR', tag: '[S]' },
  HWP: { outcome: 'SIGBUS BUS_MCEERR_AR', tag: '[S] (poisoned at the guest\'s first private fault)' },
  PG: { outcome: 'SIGBUS BUS_ADRERR', tag: '[S]' },
  UPMfd: { outcome: S1.missed, tag: '[S design] / (inferred effect)' },
  GM68: { outcome: S1.missed, tag: '[S]' },
  D4: { outcome: S1.missed, tag: '(inferred: the VMM only maps the shared memslot)' },
  GMIP: { outcome: 'SIGBUS BUS_ADRERR', tag: '[S code] (to-private zapped the user PTEs)' },
  HTLB: { outcome: 'SIGBUS BUS_ADRERR', tag: '(inferred: as GMIP)' },
  MKTME: { outcome: S1.plaintext, tag: '(inferred: the VMM owns the key)' },
  SEV: { outcome: S1.garbage, tag: '(inferred: no integrity)' },
  SNPA: { outcome: 'SIGBUS BUS_ADRERR', tag: '[S] (RMP #PF)' },
};

export const s01VmmStorePrivate = cvmScenario({
  name: 's01-vmm-store-private',
  ref: 'S1',
  description: 'malicious VMM stores to a GPA after it became private, through its existing mapping',
  expected,
  run(ctx: ScenarioContext, vm: CvmVm): void {
    const gpa = vm.base;
    const hva = vm.design.hva(vm, gpa);
    if (!guestMakeSecret(ctx, vm, gpa, SECRET)) {
      ctx.verdict('the guest cannot make the page private');
      return;
    }
    if (hva === undefined) {
      ctx.verdict(S1.noMapping);
      return;
    }
    const store = ctx.step(`*(u64 *)0x${hva.toString(16)} = 0x${EVIL.toString(16).repeat(8)}`, undefined,
      'the VMM\'s mapping from before the conversion', () => {
        const r = vm.p.store(hva, fill8(EVIL));
        return [userAccessOutcome(r), r];
      });
    if (store !== 0) {
      ctx.verdict(S1.signal(`${store.signo} ${store.si_code}`));
      return;
    }
    const r = guestStep(ctx, vm, `load 8 bytes at 0x${gpa.toString(16)}`, undefined, 'the guest reads its secret back',
      () => guestLoad(gpa, 8), hex);
    const read = r.done ? hex(r.value) : undefined;
    if (read === undefined) ctx.verdict(S1.killed(ctx.steps[ctx.steps.length - 1]!.outcome));
    else if (read === hex(fill8(SECRET))) ctx.verdict(S1.missed);
    else if (read === hex(fill8(EVIL))) ctx.verdict(S1.plaintext);
    else ctx.verdict(S1.garbage);
  },
});
