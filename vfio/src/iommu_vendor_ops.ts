/**
 * The IOMMU vendor seam, shaped like KVM's kvm_x86_ops (kvm/src/kvm_x86_ops.ts): a vendor
 * (Intel VT-d, AMD-Vi, Arm SMMU, and the confidential-computing platforms built on them) fills a
 * partial table; iommu_vendor_ops_merge() fills what it leaves out with the defaults below, and
 * the IOMMU core always calls through the merged table, so it never asks which vendor is active.
 *
 * The first three entries are what the IOMMU driver tells the core (struct iommu_ops and the
 * domain it allocates: pgsize_bitmap, geometry, get_resv_regions); dma_access is cocosim's: the
 * place where the platform decides what a device's DMA to a page does, e.g. SEV-SNP's IOMMU
 * checking the RMP and faulting a DMA to a page a VM owns privately. The default is a plain
 * x86 IOMMU without confidential-computing hardware.
 */
import type { Pfn } from '@cocosim/core';
import type { Device, IommuResvRegion } from './iommu.js';

/** What a device's DMA to a page does (cocosim: the platform's answer). */
export type DmaAccessOutcome =
  /** The access goes to memory (with the device's key: a private page reads as its ciphertext). */
  | { readonly kind: 'ok' }
  /** The IOMMU refuses it: an I/O page fault reported to the IOMMU driver (SEV-SNP RMP check). */
  | { readonly kind: 'fault'; readonly reason: string }
  /**
   * The memory controller answers a read with zeros and the access is no fault (TDX: a TD-owned
   * cache line read with a non-TD KeyID, the TD-owner bit); for a write, as 'ok'.
   */
  | { readonly kind: 'zeros' };

export interface IommuVendorOps {
  /** The vendor's name ("vtd", "amd-vi", "snp"...). */
  readonly name?: string;
  /**
   * domain->pgsize_bitmap of the paging domains the driver allocates: the IOPTE sizes of its page
   * tables. VT-d and AMD-Vi second-level tables with superpages: 4 KiB | 2 MiB | 1 GiB.
   */
  readonly pgsize_bitmap?: bigint;
  /**
   * The input address width of those domains: domain->geometry is [0, 2^bits - 1]
   * (VT-d __DOMAIN_MAX_ADDR(gaw) with a 48-bit, 4-level table).
   */
  readonly address_width?: number;
  /**
   * iommu_get_resv_regions() of every device: on x86 the interrupt (MSI) window
   * 0xfee00000-0xfeefffff as IOMMU_RESV_MSI (intel_iommu_get_resv_regions(), IOAPIC_RANGE_*).
   */
  readonly resv_regions?: readonly IommuResvRegion[];
  /**
   * cocosim: a DMA by `dev` that the IOMMU translated to `pfn` (a read, or a write when `write`)
   * of `len` bytes at `offset` in the page. A platform may act on the page as its memory controller
   * does (TDX: a write clears the lines' TD-owner bit, a partial-line write poisons on parts with
   * the erratum) and answer 'ok'. The default lets every access through.
   */
  dma_access?(dev: Device, pfn: Pfn, write: boolean, offset?: number, len?: number): DmaAccessOutcome;
}

/** The merged table: every entry present. */
export type MergedIommuVendorOps = Required<IommuVendorOps>;

/* include/linux/iommu.h: enum iommu_resv_type */
export const IOMMU_RESV_DIRECT = 0;
export const IOMMU_RESV_DIRECT_RELAXABLE = 1;
export const IOMMU_RESV_RESERVED = 2;
export const IOMMU_RESV_MSI = 3;
export const IOMMU_RESV_SW_MSI = 4;

/** arch/x86/include/asm/irq_remapping.h / drivers/iommu/intel/iommu.h: IOAPIC_RANGE_START/END. */
export const X86_MSI_RANGE_START = 0xfee00000n;
export const X86_MSI_RANGE_END = 0xfeefffffn;

const SZ_4K = 1n << 12n;
const SZ_2M = 1n << 21n;
const SZ_1G = 1n << 30n;

const OK: DmaAccessOutcome = { kind: 'ok' };

/** The defaults: an x86 IOMMU with 48-bit, three-page-size tables and no memory protection. */
export const iommu_default_vendor_ops: MergedIommuVendorOps = {
  name: 'iommu',
  pgsize_bitmap: SZ_4K | SZ_2M | SZ_1G,
  address_width: 48,
  resv_regions: [{ start: X86_MSI_RANGE_START, length: X86_MSI_RANGE_END - X86_MSI_RANGE_START + 1n, type: IOMMU_RESV_MSI }],
  dma_access: () => OK,
};

/** Fills the entries `ops` leaves out with the defaults. */
export function iommu_vendor_ops_merge(ops: IommuVendorOps = {}): MergedIommuVendorOps {
  const merged: Record<string, unknown> = { ...iommu_default_vendor_ops };
  for (const [k, v] of Object.entries(ops)) if (v !== undefined) merged[k] = v;
  return merged as MergedIommuVendorOps;
}
