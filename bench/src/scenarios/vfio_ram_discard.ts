/**
 * The VMM-side coordination the fd-based designs need for device assignment (designs.md §2 S7/S8:
 * "QEMU's RamDiscardManager unmaps on conversion to private [S Chenyi]"; "The VMM must unmap DMA
 * first, then convert"): the S8 situation, a shared page DMA-mapped for an assigned device, with
 * the VMM's listener removing the mapping before a to-private conversion and restoring it after a
 * to-shared one. The verdict says whether the conversion went through and where the device's
 * DMA lands in each state.
 */
import { errno_name } from '@cocosim/core';
import { guestLoad, type CvmVm } from '@cocosim/kvm';
import type { ScenarioContext } from './scenario.js';
import { cvmScenario, fill8, guestConvert, guestStep, hex, sharedGpa, type DesignExpectation } from './cvm_scenario.js';
import { device_write, vmm_vfio_map, vmm_vfio_open, vmm_vfio_ram_discard_listener } from './vfio_vmm.js';

export const RDM = {
  noMapping: 'no VMM mapping to DMA-map',
  coordinated: 'converts both ways; DMA faults while private, reaches the shared page after',
  refused: (e: string) => `to-private fails: ${e}`,
  other: (what: string) => `uncoordinated: ${what}`,
} as const;

const expected: Record<string, DesignExpectation> = {
  GM68: { outcome: RDM.coordinated, tag: '[S Chenyi] (QEMU RamDiscardManager: unmap DMA on to-private, map on to-shared)' },
  GMIP: { outcome: RDM.coordinated, tag: '[S Chenyi] (unmap DMA first, then convert: no pin left, no EAGAIN)' },
  HTLB: { outcome: RDM.coordinated, tag: '(inferred: as GMIP)' },
};

export const vfioRamDiscard = cvmScenario({
  name: 'vfio-ram-discard',
  ref: 'S8',
  description: 'the VMM unmaps DMA before a to-private conversion and maps it again after to-shared (RamDiscardManager)',
  expected,
  run(ctx: ScenarioContext, vm: CvmVm): void {
    const gpa = vm.base;
    const hva = vm.design.hva(vm, gpa);
    if (hva === undefined) {
      ctx.verdict(RDM.noMapping);
      return;
    }
    const v = ctx.setupStep('open /dev/vfio/vfio, the device\'s group, VFIO_SET_IOMMU(TYPE1v2)', 'ok', 'the VMM assigns a device',
      () => { const r = vmm_vfio_open(vm); return [typeof r === 'number' ? `-1 ${errno_name(vm.p.errno)}` : 'ok', r]; });
    if (typeof v === 'number') return;
    ctx.setupStep(`VFIO_IOMMU_MAP_DMA(iova 0x${gpa.toString(16)}, 4096)`, '0', 'the shared page is DMA-mapped',
      () => { const r = vmm_vfio_map(vm, v, gpa, hva, 4096n); return [r < 0 ? `-1 ${errno_name(vm.p.errno)}` : '0', r]; });
    vm.policy.listener = vmm_vfio_ram_discard_listener(v);
    const c = guestConvert(ctx, vm, gpa, 1n, true, null);
    if (!c.ok) {
      ctx.verdict(RDM.refused(c.errno === 0 ? 'refused by the guest\'s platform' : errno_name(c.errno) ?? String(c.errno)));
      return;
    }
    const whilePrivate = ctx.step(`device writes at iova 0x${gpa.toString(16)}`, undefined, 'the mapping was removed before the conversion',
      () => { const o = device_write(v, gpa, fill8(0xdd)); return [o, o]; });
    if (!guestConvert(ctx, vm, gpa, 1n, false, null).ok) {
      ctx.verdict(RDM.other('the guest cannot share the page again'));
      return;
    }
    const afterShared = ctx.step(`device writes at iova 0x${gpa.toString(16)}`, '0', 'the listener mapped the shared page again',
      () => { const o = device_write(v, gpa, fill8(0xde)); return [o, o]; });
    const alias = sharedGpa(vm, gpa);
    const r = guestStep(ctx, vm, `load 8 bytes at 0x${alias.toString(16)}`, undefined, 'the guest sees the device\'s data',
      () => guestLoad(alias, 8), hex);
    const ok = whilePrivate.startsWith('io_page_fault') && afterShared === '0' && r.done && hex(r.value) === hex(fill8(0xde));
    ctx.verdict(ok ? RDM.coordinated : RDM.other(`DMA while private: ${whilePrivate}; after: ${afterShared}`));
  },
});
