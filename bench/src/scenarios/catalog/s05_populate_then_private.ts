/**
 * S5 (designs.md §2): populate the initial image, then make it private (the Arm/CCA-style flow).
 * The VMM writes the image through its mapping while the memory is shared, then launches:
 * cvm_launch() converts the range with the design's uAPI and, on vendors with a launch flow,
 * gives the vendor a source buffer to copy and measure (KVM_TDX_INIT_MEM_REGION,
 * SNP_LAUNCH_UPDATE, the realm's DATA_CREATE). The verdict is what the guest finds.
 */
import { guestScan, type CvmVm } from '@cocosim/kvm';
import { errno_name } from '@cocosim/core';
import type { ScenarioContext, ScenarioOptions } from '../scenario.js';
import { cvmScenario, guestStep, userAccessOutcome, type DesignExpectation } from '../cvm_scenario.js';
import { cvm_launch } from '@cocosim/kvm';

export const S5 = {
  intact: 'image intact',
  zeroed: 'image zeroed',
  garbled: 'image garbled',
  fails: (e: string) => `launch fails: ${e}`,
} as const;

const IMAGE = 0x42;

function expected(design: string, vendor: string): DesignExpectation | undefined {
  const launches = vendor === 'tdx' || vendor === 'sev' || vendor === 'cca';
  switch (design) {
    case 'upstream':
      return launches ? { outcome: S5.intact, tag: '[S code] (kvm_gmem_populate copies the source page through the firmware)' } : undefined;
    case 'page_guest': return { outcome: S5.intact, tag: '(inferred from code: PageGuest keeps the contents)' };
    case 'sev_pinned': return { outcome: S5.intact, tag: '(inferred: LAUNCH_UPDATE_DATA encrypts in place)' };
    // The VMM follows Dave Hansen's order (mmap(PROT_NONE), encrypt_mprotect, then populate), so
    // the image is written through the key; populating first would not re-encrypt (inferred).
    case 'mktme_encrypt': return { outcome: S5.intact, tag: '[S Dave] (encrypt_mprotect before populating)' };
    default: return undefined;
  }
}

export const s05PopulateThenPrivate = cvmScenario({
  name: 's05-populate-then-private',
  ref: 'S5',
  description: 'populate the initial image, then seal/convert it to private (Arm/CCA style)',
  default_size: 64 * 1024,
  launch: false,
  expected,
  run(ctx: ScenarioContext, vm: CvmVm, opts: ScenarioOptions): void {
    const len = Math.min(opts.size, 16 * 4096);
    const image = new Uint8Array(len).fill(IMAGE);
    const gpa = vm.base;
    const hva = vm.design.hva(vm, gpa);
    if (hva !== undefined) {
      ctx.step(`memset(0x${hva.toString(16)}, 0x${IMAGE.toString(16)}, ${len})`, undefined, 'the VMM writes the image while the memory is shared',
        () => [userAccessOutcome(vm.p.store(hva, image)), undefined]);
    }
    const r = ctx.step(`launch: convert ${len} bytes to private${vm.vendor.launch_update ? ', the vendor\'s populate and finish' : ''}`, undefined,
      'the design\'s conversion, then the vendor\'s launch ioctls with a source buffer',
      () => { const x = cvm_launch(vm, gpa, image); return [x < 0 ? `-1 ${errno_name(vm.p.errno) ?? vm.p.errno}` : '0', x]; });
    if (r < 0) {
      ctx.verdict(S5.fails(errno_name(vm.p.errno) ?? String(vm.p.errno)));
      return;
    }
    const g = guestStep(ctx, vm, `repe scasb over ${len} bytes for 0x${IMAGE.toString(16)}`, undefined, 'the guest checks its image',
      () => guestScan(gpa, IMAGE, len), (i) => (i < 0 ? 'all match' : `differs at ${i}`));
    if (!g.done) {
      ctx.verdict(`the guest cannot read its image: ${ctx.steps[ctx.steps.length - 1]!.outcome}`);
      return;
    }
    if (g.value < 0) {
      ctx.verdict(S5.intact);
      return;
    }
    const z = guestStep(ctx, vm, `repe scasb over ${len} bytes for 0`, undefined, 'zeroes?', () => guestScan(gpa, 0, len),
      (i) => (i < 0 ? 'all zero' : `non-zero at ${i}`));
    ctx.verdict(z.done && z.value < 0 ? S5.zeroed : S5.garbled);
  },
});
