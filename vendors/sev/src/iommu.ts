/**
 * The AMD IOMMU of an SEV-SNP host (drivers/iommu/amd with amd_iommu_snp_en, which
 * snp_rmptable_init() requires): DMA is checked against the RMP, so a device write to a page
 * assigned to a guest (or to the firmware) is an I/O page fault; a read returns what DRAM holds,
 * the ciphertext (inferred: shared/research/vendor-models.md §2.7).
 */
import type { Pfn } from '@cocosim/core';
import type { Device, DmaAccessOutcome, IommuVendorOps } from '@cocosim/vfio';
import { sev_host } from './host.js';

const OK: DmaAccessOutcome = { kind: 'ok' };

/** IommuVendorOps.dma_access of the SNP host's IOMMU. */
function snp_iommu_dma_access(dev: Device, pfn: Pfn, write: boolean): DmaAccessOutcome {
  if (write && sev_host(dev.iommu.kernel).rmp.host_write_faults(pfn)) {
    return { kind: 'fault', reason: 'RMP violation (AMD IOMMU: device write to a page assigned in the RMP)' };
  }
  return OK;
}

/** The IOMMU vendor table of an SEV-SNP host (AMD-Vi page sizes: the defaults). */
export const snp_iommu_vendor_ops: IommuVendorOps = {
  name: 'amd-vi-snp',
  dma_access: snp_iommu_dma_access,
};
