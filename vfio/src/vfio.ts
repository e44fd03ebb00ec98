/**
 * VFIO's contribution to a simulated host (vfio_init(), vfio_iommu_type1_init(),
 * iommufd_init()): the IOMMU with its vendor table, /dev/vfio/vfio (the type1 container) and
 * /dev/iommu (iommufd). Devices are plugged in afterwards with vfio_sim_device_add().
 */
import type { HostRegistrar } from '@cocosim/core';
import { Kernel } from '@cocosim/mm';
import { vfio_fops_open } from './container.js';
import { Iommu } from './iommu.js';
import { iommu_vendor_ops_merge, type IommuVendorOps } from './iommu_vendor_ops.js';
import { iommufd_fops_open } from './iommufd/main.js';
import type { VfioType1Params } from './vfio_iommu_type1.js';
import { VfioModule, vfio_module_register } from './vfio_main.js';
import { vfio_debug_register } from './vfio_debug.js';

/** U16_MAX: vfio_iommu_type1's default dma_entry_limit. */
export const VFIO_DEFAULT_DMA_ENTRY_LIMIT = 65535;

export interface VfioHostOptions {
  /** The IOMMU vendor table (default: an x86 IOMMU with no memory protection). */
  readonly iommu_ops?: IommuVendorOps;
  /** vfio_iommu_type1 module parameters. */
  readonly dma_entry_limit?: number;
  readonly disable_hugepages?: boolean;
  readonly allow_unsafe_interrupts?: boolean;
}

/** Registers the IOMMU, /dev/vfio/vfio and /dev/iommu on the host's Kernel; goes after mmRegistrar. */
export function vfioRegistrar(opts: VfioHostOptions = {}): HostRegistrar {
  return (root) => {
    const kernel = root.resolve(Kernel);
    const params: VfioType1Params = {
      dma_entry_limit: opts.dma_entry_limit ?? VFIO_DEFAULT_DMA_ENTRY_LIMIT,
      disable_hugepages: opts.disable_hugepages ?? false,
      allow_unsafe_interrupts: opts.allow_unsafe_interrupts ?? false,
    };
    const module = new VfioModule(kernel, new Iommu(kernel, iommu_vendor_ops_merge(opts.iommu_ops)), params);
    vfio_module_register(module);
    root.registerInstance(VfioModule, module);
    vfio_debug_register(module);
    kernel.register_device('/dev/vfio/vfio', (_k, flags) => vfio_fops_open(module, flags));
    kernel.register_device('/dev/iommu', (k, flags) => iommufd_fops_open(k, flags));
  };
}
