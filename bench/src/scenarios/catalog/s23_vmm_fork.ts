/**
 * S23 (designs.md §2): the VMM forks after the guest made a page private, and the child loads
 * the VMM's address of that GPA. fork() is kernel/fork.c copy_process() -> dup_mm() ->
 * dup_mmap() (mm/src/fork.ts): the child gets copies of the VMM's VMAs, and copy_page_range()
 * copies their entries where a fault could not rebuild them (anonymous memory: PROT_NONE PTEs,
 * hwpoison entries); shared file mappings are refaulted from the file. Its fds are the VMM's
 * files (dup_fd()): a guest_memfd or VM fd keeps the VM alive, but KVM refuses the child's
 * ioctls (kvm->mm).
 *
 * Verdicts: the signal of the child's load; "no mapping of private memory in the child" when
 * the design gives the VMM no mapping of the GPA or the child's load reads other memory than the
 * private page (the shared half); where the VMM's mapping is of the very file that holds the
 * private memory (an in-place guest_memfd), shared/private is the file's state, so the verdict
 * is whether the child sees what the VMM sees. Where the VMM maps the private page itself, the
 * child reads the guest's data (plaintext) or its encrypted bytes (ciphertext): through the same
 * page, or through fork's copy of it when the page is pinned (copy_present_page()).
 */
import type { CvmVm } from '@cocosim/kvm';
import { errno_name } from '@cocosim/core';
import { vma_lookup, type Process, type SigInfo } from '@cocosim/mm';
import type { ScenarioContext } from '../scenario.js';
import { cvmScenario, fill8, guestMakeSecret, guestPfn, hex, userAccessOutcome, vmmPfn, type DesignExpectation } from '../cvm_scenario.js';

/** S23's verdicts. */
export const S23 = {
  signal: (sig: string) => sig,
  noMapping: 'no mapping of private memory in the child',
  consistent: 'the child sees the same shared/private state',
  inconsistent: (child: string, parent: string) => `the child sees ${child} where the VMM sees ${parent}`,
  plaintext: 'the child reads the guest\'s private data',
  ciphertext: 'the child reads the private page\'s ciphertext',
} as const;

const SECRET = 0x5e;

const expected: Record<string, DesignExpectation> = {
  HWP: { outcome: 'SIGBUS BUS_MCEERR_AR', tag: '[S code] (hwpoison entries are copied to the child)' },
  PE20: { outcome: 'SIGBUS BUS_ADRERR', tag: '(inferred: the child inherits PROT_NONE)' },
  PG: { outcome: 'SIGBUS BUS_ADRERR', tag: '(inferred: the child inherits PROT_NONE)' },
  GM68: { outcome: S23.noMapping, tag: '[S code] (the child inherits the gmem fd and keeps the VM alive)' },
  GMIP: { outcome: S23.consistent, tag: '[S selftest]' },
};

/** A load of 8 bytes at `hva` by `p`, as a step. */
function loadStep(ctx: ScenarioContext, who: string, p: Process, hva: bigint, why: string): Uint8Array | SigInfo {
  return ctx.step(`${who}: load 8 bytes at 0x${hva.toString(16)}`, undefined, why, () => {
    const r = p.load(hva, 8);
    return [userAccessOutcome(r), r];
  });
}

export const s23VmmFork = cvmScenario({
  name: 's23-vmm-fork',
  ref: 'S23',
  description: 'VMM fork(): the child touches the address of a private page',
  expected,
  run(ctx: ScenarioContext, vm: CvmVm): void {
    const gpa = vm.base;
    if (!guestMakeSecret(ctx, vm, gpa, SECRET)) {
      ctx.verdict('the guest cannot make the page private');
      return;
    }
    /*
     * Before fork: its COW write-protection makes KVM drop the parent's SPTEs (mmu notifier), and
     * a pinned page is copied for the child, so afterwards neither pfn says what the VMM mapped.
     */
    const private_pfn = guestPfn(vm, gpa, true);
    const hva = vm.design.hva(vm, gpa);
    const vmm_maps_private = hva !== undefined && private_pfn !== undefined && vmmPfn(vm, hva) === private_pfn;
    const child = ctx.step('fork()', (o) => o.startsWith('child pid'), 'dup_mm(): the VMM\'s mappings copied, its fds shared', () => {
      const c = vm.p.fork();
      return [typeof c === 'number' ? `-1 ${errno_name(vm.p.errno) ?? vm.p.errno}` : `child pid ${c.task.pid}`, c];
    });
    if (typeof child === 'number') {
      ctx.verdict(`fork -1 ${errno_name(vm.p.errno) ?? vm.p.errno}`);
      return;
    }
    ctx.processes.push(child);
    if (hva === undefined) {
      ctx.verdict(S23.noMapping);
      return;
    }
    const parent = loadStep(ctx, 'VMM', vm.p, hva, 'what the VMM itself sees there');
    const r = loadStep(ctx, 'child', child, hva, 'the child\'s copy of the VMM\'s mapping');
    const seen = userAccessOutcome(r);
    /* in place: the mapping is of the file that holds the private memory, so its state is shared */
    const pf = vm.design.private_fd?.(vm, gpa);
    const vma = vma_lookup(child.mm, Number(hva / 4096n));
    if (pf !== undefined && vma !== undefined && vma.vm_file !== null && vma.vm_file === vm.p.task.files.lookup(pf.fd)) {
      const was = userAccessOutcome(parent);
      ctx.verdict(seen === was ? S23.consistent : S23.inconsistent(seen, was));
      return;
    }
    if (!(r instanceof Uint8Array)) {
      ctx.verdict(S23.signal(seen));
      return;
    }
    if (hex(r) === hex(fill8(SECRET))) {
      ctx.verdict(S23.plaintext);
      return;
    }
    /* the private page itself, or fork's copy of it (a pinned page): its encrypted bytes */
    ctx.verdict(vmm_maps_private ? S23.ciphertext : S23.noMapping);
  },
});
