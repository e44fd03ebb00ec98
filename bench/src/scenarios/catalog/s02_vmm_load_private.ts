/**
 * S2 (designs.md §2): the VMM loads from a private GPA through the mapping it had while the page
 * was shared. The verdict says what the load returns.
 */
import type { CvmVm } from '@cocosim/kvm';
import type { ScenarioContext } from '../scenario.js';
import { cvmScenario, fill8, guestMakeSecret, hex, userAccessOutcome, type DesignExpectation } from '../cvm_scenario.js';

/** S2's verdicts (a signal is reported as `SIGBUS BUS_ADRERR`). */
export const S2 = {
  noMapping: 'no VMM mapping of the GPA',
  shared: 'no mapping of private memory: reads the shared page',
  plaintext: 'reads the private data in plaintext',
  ciphertext: 'reads ciphertext',
} as const;

const SECRET = 0x5e;
const SHARED = 0x11;

const expected: Record<string, DesignExpectation> = {
  PE20: { outcome: 'SIGBUS BUS_ADRERR', tag: '[S]' },
  HWP: { outcome: 'SIGBUS BUS_MCEERR_AR', tag: '[S]' },
  PG: { outcome: 'SIGBUS BUS_ADRERR', tag: '[S]' },
  UPMfd: { outcome: S2.shared, tag: '[S] (impossible: no mapping of private memory)' },
  GM68: { outcome: S2.shared, tag: '[S] (impossible: no mapping of private memory)' },
  D4: { outcome: S2.shared, tag: '(inferred: private memslots have no HVA)' },
  GMIP: { outcome: 'SIGBUS BUS_ADRERR', tag: '[S]' },
  HTLB: { outcome: 'SIGBUS BUS_ADRERR', tag: '(inferred: as GMIP)' },
  MKTME: { outcome: S2.plaintext, tag: '(inferred)' },
  SEV: { outcome: S2.ciphertext, tag: '(inferred)' },
  SNPA: { outcome: S2.ciphertext, tag: '(inferred: the RMP checks writes only)' },
};

export const s02VmmLoadPrivate = cvmScenario({
  name: 's02-vmm-load-private',
  ref: 'S2',
  description: 'VMM loads from a private GPA',
  expected,
  discard: false,
  run(ctx: ScenarioContext, vm: CvmVm): void {
    const gpa = vm.base;
    const hva = vm.design.hva(vm, gpa);
    if (hva !== undefined) {
      ctx.setupStep(`*(u64 *)0x${hva.toString(16)} = 0x${SHARED.toString(16).repeat(8)}`, '0', 'the VMM fills the page while it is shared',
        () => [userAccessOutcome(vm.p.store(hva, fill8(SHARED))), undefined]);
    }
    if (!guestMakeSecret(ctx, vm, gpa, SECRET)) {
      ctx.verdict('the guest cannot make the page private');
      return;
    }
    if (hva === undefined) {
      ctx.verdict(S2.noMapping);
      return;
    }
    const r = ctx.step(`load 8 bytes at 0x${hva.toString(16)}`, undefined, 'the VMM\'s mapping from before the conversion',
      () => { const x = vm.p.load(hva, 8); return [userAccessOutcome(x), x]; });
    if (!(r instanceof Uint8Array)) ctx.verdict(`${r.signo} ${r.si_code}`);
    else if (hex(r) === hex(fill8(SECRET))) ctx.verdict(S2.plaintext);
    else if (hex(r) === hex(fill8(SHARED)) || hex(r) === hex(fill8(0))) ctx.verdict(S2.shared);
    else ctx.verdict(S2.ciphertext);
  },
});
