/**
 * S7 (designs.md §2): an assigned device DMAs into a GPA the guest has converted to private. The
 * VMM mapped all guest memory for DMA at start (VFIO_IOMMU_MAP_DMA of its mapping, IOVA = GPA),
 * as QEMU does for a VM with an assigned device; the guest then converts a page and writes a
 * secret; the device writes the page and the guest reads it back.
 */
import { errno_name } from '@cocosim/core';
import { guestLoad, guestStore, type CvmVm } from '@cocosim/kvm';
import type { ScenarioContext } from '../scenario.js';
import { cvmScenario, fill8, guestConvert, guestStep, hex, refusalExpected, vmmOnlyRefusal, type DesignExpectation } from '../cvm_scenario.js';
import { device_write, vmm_vfio_map, vmm_vfio_open } from '../vfio_vmm.js';

export const S7 = {
  noMapping: 'no VMM mapping to DMA-map',
  mapFails: (e: string) => `DMA map fails: ${e}`,
  convertFails: (e: string) => `to-private fails: ${e}`,
  fault: 'DMA faults (IOMMU)',
  stale: 'DMA lands in the stale shared page; guest data intact',
  reaches: 'DMA reaches the private page: guest reads the device data',
  garbage: 'DMA corrupts the private page: guest reads garbage',
  killed: (how: string) => `guest stopped at its next read: ${how}`,
} as const;

const SECRET = 0x5e;
const DEVICE = 0xdd;

const expected: Record<string, DesignExpectation> = {
  PE20: { outcome: S7.reaches, tag: '(inferred: mapped before protection, a stale IOMMU mapping remains)' },
  PG: { outcome: S7.reaches, tag: '(inferred: mapped before protection, a stale IOMMU mapping remains)' },
  HWP: { outcome: S7.reaches, tag: '(inferred hazard: VFIO pinned everything before poisoning)' },
  UPMfd: { outcome: S7.stale, tag: '[S Yu Zhang] (private GPAs have no HVA; the old shared PFN stays DMA-mapped)' },
  GM68: { outcome: S7.stale, tag: '[S Chenyi] (without RamDiscardManager the device writes the stale shared page)' },
  D4: { outcome: S7.stale, tag: '[S Yu Zhang]' },
  GMIP: { outcome: S7.convertFails('EAGAIN'), tag: '[S doc] (the conversion fails while the IOMMU pin exists)' },
  HTLB: { outcome: S7.convertFails('EAGAIN'), tag: '(inferred: as GMIP)' },
  MKTME: { outcome: S7.reaches, tag: '[S title] (VT-d MKTME: DMA works with KeyIDs)' },
  SEV: { outcome: S7.garbage, tag: '(inferred: the device writes through the host key)' },
  SNPA: { outcome: S7.fault, tag: '(inferred: the IOMMU\'s RMP check blocks DMA writes to assigned pages)' },
};

export const s07DmaPrivate = cvmScenario({
  name: 's07-dma-private',
  ref: 'S7',
  description: 'assigned device (VFIO) DMAs into a GPA the guest has converted to private',
  expected: refusalExpected(expected, S7.convertFails),
  run(ctx: ScenarioContext, vm: CvmVm): void {
    const gpa = vm.base;
    const hva = vm.design.hva(vm, gpa);
    if (hva === undefined) {
      ctx.verdict(S7.noMapping);
      return;
    }
    const v = ctx.setupStep('open /dev/vfio/vfio, the device\'s group, VFIO_SET_IOMMU(TYPE1v2)', 'ok', 'the VMM assigns a device',
      () => { const r = vmm_vfio_open(vm); return [typeof r === 'number' ? `-1 ${errno_name(vm.p.errno)}` : 'ok', r]; });
    if (typeof v === 'number') return;
    const m = ctx.step(`VFIO_IOMMU_MAP_DMA(iova 0x${gpa.toString(16)}, vaddr 0x${hva.toString(16)}, ${vm.size})`, undefined,
      'vfio_listener_region_add: all guest RAM, pinned FOLL_LONGTERM',
      () => { const r = vmm_vfio_map(vm, v, gpa, hva, vm.size); return [r < 0 ? `-1 ${errno_name(vm.p.errno)}` : '0', r]; });
    if (m < 0) {
      ctx.verdict(S7.mapFails(errno_name(vm.p.errno) ?? String(vm.p.errno)));
      return;
    }
    const c = guestConvert(ctx, vm, gpa, 1n, true, null);
    if (!c.ok) {
      ctx.verdict(S7.convertFails(c.errno === 0 ? 'refused by the guest\'s platform' : errno_name(c.errno) ?? String(c.errno)));
      return;
    }
    const stored = guestStep(ctx, vm, `store 0x${SECRET.toString(16).repeat(8)} at 0x${gpa.toString(16)}`, c.last_errno === 0 ? 'done' : undefined,
      'the guest writes its private page', () => guestStore(gpa, fill8(SECRET)), () => 'done').done;
    if (c.last_errno !== 0) {
      ctx.verdict(vmmOnlyRefusal(c.last_errno));
      return;
    }
    if (!stored) return;
    const w = ctx.step(`device writes 8 bytes at iova 0x${gpa.toString(16)}`, undefined, 'the IOMMU translates with the mapping made at start',
      () => { const o = device_write(v, gpa, fill8(DEVICE)); return [o, o]; });
    if (w !== '0') {
      ctx.verdict(S7.fault);
      return;
    }
    const r = guestStep(ctx, vm, `load 8 bytes at 0x${gpa.toString(16)}`, undefined, 'the guest reads its private page',
      () => guestLoad(gpa, 8), hex);
    if (!r.done) ctx.verdict(S7.killed(ctx.steps[ctx.steps.length - 1]!.outcome));
    else if (hex(r.value) === hex(fill8(SECRET))) ctx.verdict(S7.stale);
    else if (hex(r.value) === hex(fill8(DEVICE))) ctx.verdict(S7.reaches);
    else ctx.verdict(S7.garbage);
  },
});
