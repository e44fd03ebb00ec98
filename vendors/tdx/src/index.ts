/**
 * @cocosim/vendor-tdx: Intel TDX as a cocosim vendor. `tdxVendorPlugin` gives the composition
 * root the KVM ops table (tdx.ts), the IOMMU's view of device DMA (tdxIommuOps), the cost entries
 * (costs.ts) and a registrar that configures the host's TDX module (tdx_module.ts); without the
 * registrar a host gets a module with the default platform on first use.
 *
 *   createRootContainer({}, mmRegistrar({...}), tdxRegistrar(), kvmRegistrar({ x86_ops: tdx_x86_ops }))
 */
import { type CostEntry, type HostRegistrar, type Pfn } from '@cocosim/core';
import { Kernel } from '@cocosim/mm';
import type { CvmVendor, KvmX86Ops } from '@cocosim/kvm';
import type { Device, DmaAccessOutcome, IommuVendorOps } from '@cocosim/vfio';
import { TDX_COST_ENTRIES, tdx_define_costs } from './costs.js';
import { tdx_x86_ops } from './tdx.js';
import { tdx_module_init, tdx_module_of, type TdxPlatformOptions } from './tdx_module.js';
import { tdx_cvm } from './cvm.js';
import { tdx_debug_register } from './tdx_debug.js';

export * from './uapi.js';
export * from './tdx_errno.js';
export * from './costs.js';
export * from './tdx_module.js';
export * from './tdx.js';
export * from './tdx_guest.js';
export * from './tdx_util.js';
export * from './cvm.js';
export * from './tdx_debug.js';

/**
 * The IOMMU of a TDX host (VT-d without TDX Connect): it does not know which pages are TD-private
 * and lets every DMA through; the memory controller answers a read of TD-owned lines with zeros,
 * and a write clears their TD-owner bit (or poisons a partial line on X86_BUG_TDX_PW_MCE parts),
 * so the TD machine-checks when it next reads them.
 */
export const tdxIommuOps: IommuVendorOps = {
  name: 'vtd-tdx',
  dma_access(dev: Device, pfn: Pfn, write: boolean, offset = 0, len = 4096): DmaAccessOutcome {
    const module = tdx_module_of(dev.iommu.kernel);
    if (module.td_of_page(pfn) === undefined) return { kind: 'ok' };
    // A poisoned line is no IOMMU fault: the device gets a poisoned completion (device_dma.ts).
    return module.non_td_access(pfn, write, offset, len) === 'zeros' ? { kind: 'zeros' } : { kind: 'ok' };
  },
};

/**
 * The host's TDX platform (KeyID partition, packages, integrity mode, the partial-write erratum)
 * and the TDX cost entries; goes after mmRegistrar (it needs the Kernel), before the VMs.
 */
export function tdxRegistrar(opts: TdxPlatformOptions = {}): HostRegistrar {
  return (root) => {
    const kernel = root.resolve(Kernel);
    tdx_define_costs(kernel.cost);
    tdx_module_init(kernel, opts);
    tdx_debug_register(root, kernel);
  };
}

/** What the composition root registers for the vendor "tdx". */
export interface TdxVendorPlugin {
  readonly name: 'tdx';
  readonly x86_ops: KvmX86Ops;
  readonly iommu_ops: IommuVendorOps;
  readonly costs: readonly CostEntry[];
  readonly registrar: (opts?: TdxPlatformOptions) => HostRegistrar;
  /** How user space builds, launches and converts a TD (kvm/src/cvm.ts). */
  readonly cvm: CvmVendor;
}

export const tdxVendorPlugin: TdxVendorPlugin = {
  name: 'tdx',
  x86_ops: tdx_x86_ops,
  iommu_ops: tdxIommuOps,
  costs: TDX_COST_ENTRIES,
  registrar: tdxRegistrar,
  cvm: tdx_cvm,
};
