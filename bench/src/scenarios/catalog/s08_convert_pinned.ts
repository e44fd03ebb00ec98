/**
 * S8 (designs.md §2): the guest converts a shared page back to private while VFIO holds a pin on
 * it (the VMM DMA-mapped the page while it was shared). The verdict is what the conversion does
 * and what the IOMMU maps afterwards.
 */
import { errno_name } from '@cocosim/core';
import { guestStore, type CvmVm } from '@cocosim/kvm';
import type { ScenarioContext } from '../scenario.js';
import { cvmScenario, guestConvert, guestPfn, guestStep, refusalExpected, vmmOnlyRefusal, type DesignExpectation } from '../cvm_scenario.js';
import { iommu_pfn, vmm_vfio_map, vmm_vfio_open } from '../vfio_vmm.js';

export const S8 = {
  noMapping: 'no VMM mapping to DMA-map',
  mapFails: (e: string) => `DMA map fails: ${e}`,
  refused: (e: string) => `to-private fails: ${e}`,
  stale: 'converted; the pinned shared page stays allocated and DMA-mapped',
  exposed: 'converted; the IOMMU maps the private page',
} as const;

const expected: Record<string, DesignExpectation> = {
  GMIP: { outcome: S8.refused('EAGAIN'), tag: '[S] (-EAGAIN with error_offset)' },
  HTLB: { outcome: S8.refused('EAGAIN'), tag: '(inferred: as GMIP)' },
  GM68: { outcome: S8.stale, tag: '(inferred: private uses a different PFN; the pinned one stays until the VMM unmaps DMA)' },
  UPMfd: { outcome: S8.stale, tag: '(inferred: as GM68)' },
  HWP: { outcome: S8.exposed, tag: '(inferred hazard: poisoning ignores pins)' },
  PG: { outcome: S8.exposed, tag: '(inferred hazard: PageGuest ignores pins)' },
  SEV: { outcome: S8.exposed, tag: '(inferred: no host action; the pinned page is the guest\'s)' },
};

export const s08ConvertPinned = cvmScenario({
  name: 's08-convert-pinned',
  ref: 'S8',
  description: 'guest converts a shared page back to private while VFIO holds a pin on it',
  expected: refusalExpected(expected, S8.refused),
  run(ctx: ScenarioContext, vm: CvmVm): void {
    const gpa = vm.base;
    const hva = vm.design.hva(vm, gpa);
    if (hva === undefined) {
      ctx.verdict(S8.noMapping);
      return;
    }
    const v = ctx.setupStep('open /dev/vfio/vfio, the device\'s group, VFIO_SET_IOMMU(TYPE1v2)', 'ok', 'the VMM assigns a device',
      () => { const r = vmm_vfio_open(vm); return [typeof r === 'number' ? `-1 ${errno_name(vm.p.errno)}` : 'ok', r]; });
    if (typeof v === 'number') return;
    const m = ctx.step(`VFIO_IOMMU_MAP_DMA(iova 0x${gpa.toString(16)}, vaddr 0x${hva.toString(16)}, 4096)`, undefined,
      'the shared page is DMA-mapped and pinned (FOLL_LONGTERM)',
      () => { const r = vmm_vfio_map(vm, v, gpa, hva, 4096n); return [r < 0 ? `-1 ${errno_name(vm.p.errno)}` : '0', r]; });
    if (m < 0) {
      ctx.verdict(S8.mapFails(errno_name(vm.p.errno) ?? String(vm.p.errno)));
      return;
    }
    const pinned = iommu_pfn(v, gpa);
    const c = guestConvert(ctx, vm, gpa, 1n, true, null);
    if (!c.ok) {
      ctx.verdict(S8.refused(c.errno === 0 ? 'refused by the guest\'s platform' : errno_name(c.errno) ?? String(c.errno)));
      return;
    }
    // Where the guest's private accesses now go: touch the page so KVM maps it.
    guestStep(ctx, vm, `store 1 byte at 0x${gpa.toString(16)}`, undefined, 'KVM maps the private page',
      () => guestStore(gpa, new Uint8Array(1)), () => 'done');
    if (c.last_errno !== 0) {
      ctx.verdict(vmmOnlyRefusal(c.last_errno));
      return;
    }
    const priv = guestPfn(vm, gpa, true);
    ctx.verdict(priv !== undefined && priv === pinned ? S8.exposed : S8.stale);
  },
});
