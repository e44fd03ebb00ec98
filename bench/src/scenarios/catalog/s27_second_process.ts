/**
 * S27 (designs.md §2): a second process (a vhost-user backend, a debugger) needs the guest's
 * shared memory. The VMM passes the file behind it (SCM_RIGHTS: the same struct file installed
 * in the other process), which maps it MAP_SHARED; the guest writes a shared page and then makes
 * another page private; the verdict is what the second process sees of each.
 */
import { MAP_FAILED, MAP_SHARED, PROT_READ, PROT_WRITE, Process } from '@cocosim/mm';
import { guestStore, type CvmVm } from '@cocosim/kvm';
import type { ScenarioContext } from '../scenario.js';
import { cvmScenario, fill8, guestMakeSecret, guestStep, hex, sharedGpa, userAccessOutcome, type DesignExpectation } from '../cvm_scenario.js';

export const S27 = {
  consistent: 'shares the shared page; the private page is hidden',
  sharedOnly: 'shares the shared page; the private page is another page',
  exposed: 'sees the private data',
  noShare: 'cannot map the shared memory',
} as const;

const SHARED = 0x11;
const SECRET = 0x5e;

const expected: Record<string, DesignExpectation> = {
  GM68: { outcome: S27.sharedOnly, tag: '(inferred: the shared half is ordinary memfd memory)' },
  GMIP: { outcome: S27.consistent, tag: '[S] (attributes are per inode, so consistent across processes)' },
  HTLB: { outcome: S27.consistent, tag: '(inferred: as GMIP)' },
};

export const s27SecondProcess = cvmScenario({
  name: 's27-second-process',
  ref: 'S27',
  description: 'a second process (vhost-user backend, debugger) needs the guest\'s shared memory',
  expected,
  needs: (_v, design) => (design.vmm.shared_fd === undefined ? `design ${design.name}: the shared memory is no file to pass` : undefined),
  run(ctx: ScenarioContext, vm: CvmVm): void {
    const shared = vm.base;
    const priv = vm.base + 4096n;
    const sf = vm.design.shared_fd!(vm, vm.base);
    if (sf === undefined) {
      ctx.verdict(S27.noShare);
      return;
    }
    const other = new Process(vm.p.mm.kernel);
    ctx.processes.push(other);
    const file = vm.p.task.files.lookup(sf.fd)!;
    const addr = ctx.step(`other: mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, ${sf.offset})`, undefined,
      'the fd passed with SCM_RIGHTS (the same struct file)',
      () => {
        const fd = other.task.files.install(file.get_file(), true);
        const a = other.mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, sf.offset);
        return [a === MAP_FAILED ? `-1 ${other.errno}` : `0x${a.toString(16)}`, a];
      });
    if (addr === MAP_FAILED) {
      ctx.verdict(S27.noShare);
      return;
    }
    const alias = sharedGpa(vm, shared);
    guestStep(ctx, vm, `store 0x${SHARED.toString(16).repeat(8)} at 0x${alias.toString(16)}`, 'done', 'the guest writes a shared page',
      () => guestStore(alias, fill8(SHARED)), () => 'done');
    const s = ctx.step('other: load 8 bytes of the shared page', hex(fill8(SHARED)), 'the same page in both processes',
      () => { const x = other.load(addr, 8); return [userAccessOutcome(x), x]; });
    if (!guestMakeSecret(ctx, vm, priv, SECRET)) {
      ctx.verdict('the guest cannot make the page private');
      return;
    }
    const q = ctx.step('other: load 8 bytes of the private page', undefined, 'the private page in the other process',
      () => { const x = other.load(addr + 4096n, 8); return [userAccessOutcome(x), x]; });
    if (!(s instanceof Uint8Array) || hex(s) !== hex(fill8(SHARED))) ctx.verdict(S27.noShare);
    else if (q instanceof Uint8Array && hex(q) === hex(fill8(SECRET))) ctx.verdict(S27.exposed);
    else ctx.verdict(q instanceof Uint8Array ? S27.sharedOnly : S27.consistent);
  },
});
