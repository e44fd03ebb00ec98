/**
 * S22 (designs.md §2): a kernel read of a private page through the direct map, as /proc/kcore,
 * hibernation or a speculative gadget would do it. The guest makes a page private and writes a
 * secret; the host kernel reads 8 bytes of that pfn. fs/proc/kcore.c read_kcore_iter() skips
 * PageHWPoison pages (zeros) and reads the rest with copy_from_kernel_nofault(), which turns a
 * #PF into zeros too; the platform (mm_host_access(): the vendor's RMP / GPT / owner check)
 * decides what the access itself does. The verdict is what the kernel got.
 */
import { isMemPoison, type Pfn } from '@cocosim/core';
import {
  MM_HOST_ACCESS_ABORT, MM_HOST_ACCESS_FAULT, MM_HOST_ACCESS_MCE, MM_HOST_ACCESS_ZERO, PageHWPoison, mm_host_access,
} from '@cocosim/mm';
import type { CvmVm } from '@cocosim/kvm';
import type { ScenarioContext } from '../scenario.js';
import { cvmScenario, fill8, guestMakeSecret, guestPfn, hex, type DesignExpectation } from '../cvm_scenario.js';

/** S22's verdicts. */
export const S22 = {
  plaintext: 'plaintext',
  ciphertext: 'ciphertext',
  zeros: 'zeros',
  fault: 'fault (copy_from_kernel_nofault: kcore returns zeros)',
  skipped: 'skipped: PageHWPoison (kcore returns zeros)',
  mce: 'machine check: the host panics',
  poisoned: 'poisoned line: machine check',
} as const;

const SECRET = 0x5e;

/** What designs.md states; the vendor decides where the design leaves the page in the direct map. */
function expected(design: string, vendor: string): DesignExpectation | undefined {
  switch (design) {
    case 'kvm_protected': return { outcome: S22.fault, tag: '[S] (anonymous pages removed from the direct map)' };
    case 'mktme_encrypt': return { outcome: S22.ciphertext, tag: '[S] (the KeyID-0 direct map yields ciphertext)' };
    case 'upstream': case 'memfd_seal': case 'mfd_inaccessible': case 'memfd_restricted': case 'fd_rfc':
      return vendor === 'sw_protected'
        ? { outcome: S22.plaintext, tag: '[S] (still in the direct map; no hardware protection under SW_PROTECTED)' }
        : undefined;
    default: return undefined;
  }
}

export const s22KernelDirectMap = cvmScenario({
  name: 's22-kernel-direct-map',
  ref: 'S22',
  description: 'kernel direct-map access to a private page (/proc/kcore, hibernation, speculation)',
  expected,
  run(ctx: ScenarioContext, vm: CvmVm): void {
    const gpa = vm.base;
    const kernel = vm.p.mm.kernel;
    if (!guestMakeSecret(ctx, vm, gpa, SECRET)) {
      ctx.verdict('the guest cannot make the page private');
      return;
    }
    const pfn = guestPfn(vm, gpa, true);
    if (pfn === undefined) {
      ctx.verdict('KVM maps no private page at the GPA');
      return;
    }
    if (PageHWPoison(kernel.store, pfn)) {
      ctx.step(`read_kcore_iter(pfn 0x${pfn.toString(16)})`, undefined, 'fs/proc/kcore.c read_kcore_iter(): is_page_hwpoison() pages read as zeros',
        () => [hex(fill8(0)), undefined]);
      ctx.verdict(S22.skipped);
      return;
    }
    const ha = ctx.step(`copy_from_kernel_nofault(buf, __va(0x${(BigInt(pfn) * 4096n).toString(16)}), 8)`, undefined,
      'mm/maccess.c copy_from_kernel_nofault(): the hardware answers the direct-map access (mm_host_access)',
      () => {
        const r = mm_host_access(kernel, pfn, false, 'kernel', 0, 8);
        const name = r === 0 ? 'access proceeds' : r === MM_HOST_ACCESS_ZERO ? 'reads zeros' : r === MM_HOST_ACCESS_MCE ? 'machine check'
          : r === MM_HOST_ACCESS_FAULT ? '-EFAULT (#PF fixed up)' : r === MM_HOST_ACCESS_ABORT ? '-EFAULT (abort fixed up)' : `answer ${r}`;
        return [name, r];
      });
    if (ha === MM_HOST_ACCESS_FAULT || ha === MM_HOST_ACCESS_ABORT) {
      ctx.verdict(S22.fault);
      return;
    }
    if (ha === MM_HOST_ACCESS_MCE) {
      ctx.verdict(S22.mce);
      return;
    }
    if (ha === MM_HOST_ACCESS_ZERO) {
      ctx.verdict(S22.zeros);
      return;
    }
    const bytes = ctx.step(`read 8 bytes of pfn 0x${pfn.toString(16)} with KeyID 0`, undefined, 'the direct map uses the host\'s key',
      () => { const b = kernel.phys.read(pfn as Pfn, 0, 8, 0); return [isMemPoison(b) ? 'poisoned' : hex(b), b]; });
    if (isMemPoison(bytes)) ctx.verdict(S22.poisoned);
    else if (hex(bytes) === hex(fill8(SECRET))) ctx.verdict(S22.plaintext);
    else if (hex(bytes) === hex(fill8(0))) ctx.verdict(S22.zeros);
    else ctx.verdict(S22.ciphertext);
  },
});
