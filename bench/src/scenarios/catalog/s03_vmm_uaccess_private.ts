/**
 * S3 (designs.md §2): the VMM passes a pointer into private memory to a syscall, so the kernel
 * copies from it (write(diskfd, guest_ptr, len), copy_from_user) and to it (read(diskfd,
 * guest_ptr, len), copy_to_user). The verdict is what the copy out of guest memory does.
 *
 * cocosim's read()/write() take the caller's buffer, not a user address, so the kernel's copy
 * from and to a user pointer is exercised with process_vm_readv/writev on the VMM itself: the
 * kernel reaches the same page (GUP + kmap rather than a page-table walk under uaccess), and
 * every design that hides a page from one hides it from the other (designs.md §1 "GUP on P" and
 * "Kernel access to P" agree for every design).
 */
import type { CvmVm } from '@cocosim/kvm';
import { sysOutcome, type ScenarioContext } from '../scenario.js';
import { cvmScenario, fill8, guestMakeSecret, hex, type DesignExpectation } from '../cvm_scenario.js';

export const S3 = {
  noMapping: 'no VMM mapping of the GPA',
  efault: 'write() -1 EFAULT',
  shared: 'write() copies the shared page, not the private data',
  plaintext: 'write() copies the private data in plaintext',
  ciphertext: 'write() copies ciphertext',
} as const;

const SECRET = 0x5e;

const expected: Record<string, DesignExpectation> = {
  PE20: { outcome: S3.efault, tag: '[S]' },
  HWP: { outcome: S3.efault, tag: '(inferred)' },
  PG: { outcome: S3.efault, tag: '(inferred)' },
  UPMfd: { outcome: S3.shared, tag: '(inferred: a guest_ptr can only point into shared memory)' },
  GM68: { outcome: S3.shared, tag: '(inferred: a guest_ptr can only point into shared memory)' },
  D4: { outcome: S3.shared, tag: '(inferred)' },
  GMIP: { outcome: S3.efault, tag: '(inferred: a stale VA)' },
  HTLB: { outcome: S3.efault, tag: '(inferred: as GMIP)' },
  MKTME: { outcome: S3.plaintext, tag: '(inferred)' },
  SEV: { outcome: S3.ciphertext, tag: '(inferred)' },
  SNPA: { outcome: S3.ciphertext, tag: '(inferred: the kernel reads)' },
};

export const s03VmmUaccessPrivate = cvmScenario({
  name: 's03-vmm-uaccess-private',
  ref: 'S3',
  description: 'VMM does write(diskfd, guest_ptr, len) / read(diskfd, guest_ptr, len) on a private page',
  expected,
  run(ctx: ScenarioContext, vm: CvmVm): void {
    const { p } = vm;
    const gpa = vm.base;
    const hva = vm.design.hva(vm, gpa);
    if (!guestMakeSecret(ctx, vm, gpa, SECRET)) {
      ctx.verdict('the guest cannot make the page private');
      return;
    }
    if (hva === undefined) {
      ctx.verdict(S3.noMapping);
      return;
    }
    const got = new Uint8Array(8);
    const remote = [{ iov_base: hva, iov_len: 8 }];
    const w = ctx.step(`write(disk, 0x${hva.toString(16)}, 8): process_vm_readv(self, buf, 0x${hva.toString(16)}, 8)`, undefined,
      'the kernel copies from the VMM\'s pointer into guest memory',
      () => { const r = p.process_vm_readv(p, [got], 1, remote, 1); return [sysOutcome(p, r), r]; });
    ctx.step(`read(disk, 0x${hva.toString(16)}, 8): process_vm_writev(self, buf, 0x${hva.toString(16)}, 8)`, undefined,
      'the kernel copies into guest memory',
      () => [sysOutcome(p, p.process_vm_writev(p, [fill8(0xd1)], 1, remote, 1)), undefined]);
    if (w !== 8) {
      ctx.verdict(w < 0 ? `write() ${sysOutcome(p, w)}` : `write() ${w}`);
      return;
    }
    if (hex(got) === hex(fill8(SECRET))) ctx.verdict(S3.plaintext);
    else if (hex(got) === hex(fill8(0))) ctx.verdict(S3.shared);
    else ctx.verdict(S3.ciphertext);
  },
});
