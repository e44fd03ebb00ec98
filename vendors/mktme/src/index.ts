/**
 * @cocosim/vendor-mktme: Intel MKTME (TME-MK) as a cocosim vendor. `mktmeVendorPlugin` gives the
 * composition root the KVM ops table (mktme_kvm.ts: no private VM type), the IOMMU's view of device
 * DMA (mktmeIommuOps), the cost entries (costs.ts) and a registrar that installs the host's MKTME
 * hardware (mktme.ts: KeyIDs, PCONFIG, per-page KeyID, cache-coherency across KeyIDs).
 *
 *   createRootContainer({}, mmRegistrar({...}), mktmeRegistrar(), kvmRegistrar({ x86_ops: mktme_x86_ops }))
 */
import type { CostEntry, HostRegistrar, Pfn } from '@cocosim/core';
import { Kernel } from '@cocosim/mm';
import { mktme_arch_register, type KvmX86Ops } from '@cocosim/kvm';
import type { Device, DmaAccessOutcome, IommuVendorOps } from '@cocosim/vfio';
import { MKTME_COST_ENTRIES, mktme_define_costs } from './costs.js';
import { mktme_platform_init, type MktmePlatformOptions } from './mktme.js';
import { mktme_x86_ops } from './mktme_kvm.js';
import { mktme_debug_register } from './mktme_debug.js';

export * from './pconfig.js';
export * from './costs.js';
export * from './mktme.js';
export * from './mktme_kvm.js';
export * from './mktme_util.js';
export * from './mktme_debug.js';

const OK: DmaAccessOutcome = { kind: 'ok' };

/**
 * The IOMMU of an MKTME host: VT-d translates the IOVA to an address whose top bits are a KeyID
 * and never checks it against the page's; the access always goes to memory (a device with KeyID 0
 * reads a KeyID-k page as ciphertext, its writes become garbage for the page's owner). No fault,
 * no poison (vendor-models.md §8, "DMA to private page: allowed, key by KeyID in address").
 */
export const mktmeIommuOps: IommuVendorOps = {
  name: 'vtd-mktme',
  dma_access(_dev: Device, _pfn: Pfn, _write: boolean): DmaAccessOutcome {
    return OK;
  },
};

/** The host's MKTME hardware and its cost entries; goes after mmRegistrar (it needs the Kernel). */
export function mktmeRegistrar(opts: MktmePlatformOptions = {}): HostRegistrar {
  return (root) => {
    const kernel = root.resolve(Kernel);
    mktme_define_costs(kernel.cost);
    // The arch half of the MKTME kernel RFC, which the mktme_encrypt design (D12) calls.
    mktme_arch_register(kernel, mktme_platform_init(kernel, opts));
    mktme_debug_register(root, kernel);
  };
}

/** What the composition root registers for the vendor "mktme". */
export interface MktmeVendorPlugin {
  readonly name: 'mktme';
  readonly x86_ops: KvmX86Ops;
  readonly iommu_ops: IommuVendorOps;
  readonly costs: readonly CostEntry[];
  readonly registrar: (opts?: MktmePlatformOptions) => HostRegistrar;
}

export const mktmeVendorPlugin: MktmeVendorPlugin = {
  name: 'mktme',
  x86_ops: mktme_x86_ops,
  iommu_ops: mktmeIommuOps,
  costs: MKTME_COST_ENTRIES,
  registrar: mktmeRegistrar,
};
