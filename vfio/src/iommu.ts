/**
 * The IOMMU core (drivers/iommu/iommu.c, include/linux/iommu.h) and the page tables of a paging
 * domain (the io-pgtable of an x86 IOMMU driver), as VFIO type1 and iommufd drive them.
 *
 * - Iommu (struct iommu_device): the host's IOMMU with its driver's answers, the merged vendor
 *   table (iommu_vendor_ops.ts). One per host: every paging domain it allocates is compatible
 *   with every other, so VFIO type1 puts all groups of a container into one domain.
 * - Device (struct device) and IommuGroup (struct iommu_group): a device belongs to one group;
 *   the group's current domain translates its DMA. `domain === null` stands for the blocking
 *   domain (DMA owned by VFIO/iommufd but not attached) and for the default DMA-API domain of a
 *   device no driver uses for DMA: every DMA then faults.
 * - IommuDomain (struct iommu_domain): the IOVA -> physical page table. Leaves are 4 KiB, 2 MiB
 *   or 1 GiB IOPTEs (the sizes of the vendor's pgsize_bitmap); iommu_map() picks the largest
 *   size the alignment of iova and paddr and the length allow (iommu_pgsize()), so a pinned run
 *   that is contiguous and 2 MiB/1 GiB aligned in both spaces maps as huge IOPTEs. Unmapping a
 *   range that starts inside a large IOPTE takes out the whole IOPTE, as VT-d's
 *   intel_iommu_unmap() does ("cope with horrid API").
 *
 * Layout of a domain's table: `ptes` holds the 4 KiB level, one table per 2 MiB of IOVA keyed by
 * iova >> 21: `pfn` (Float64Array, -1 = no entry) and `prot` (Uint8Array, IOMMU_READ/WRITE/CACHE)
 * per slot; `pmds` and `puds` hold 2 MiB and 1 GiB leaves keyed by iova >> 21 and iova >> 30.
 * IOVAs are page numbers (JS numbers) inside; the API takes bigints (dma_addr_t, phys_addr_t).
 *
 * Costs: iommu_map_4k per IOPTE written and iommu_unmap_4k per IOPTE cleared, whatever its size
 * (one entry is one write); iotlb_flush per iommu_iotlb_sync() of a non-empty gather.
 * Tracepoints: map, unmap, io_page_fault (include/trace/events/iommu.h).
 */
import { BUG, BUG_ON, Errno, U64_MAX, type Pfn } from '@cocosim/core';
import type { Kernel } from '@cocosim/mm';
import type { MergedIommuVendorOps } from './iommu_vendor_ops.js';

/* include/linux/iommu.h: mapping protections */
export const IOMMU_READ = 1 << 0;
export const IOMMU_WRITE = 1 << 1;
/** DMA cache coherency. */
export const IOMMU_CACHE = 1 << 2;
export const IOMMU_NOEXEC = 1 << 3;
export const IOMMU_MMIO = 1 << 4;
export const IOMMU_PRIV = 1 << 5;

/* include/linux/iommu.h: iommu fault flags */
export const IOMMU_FAULT_READ = 0x0;
export const IOMMU_FAULT_WRITE = 0x1;

/** struct iommu_resv_region: [start, start + length) of IOVA the device cannot use. */
export interface IommuResvRegion {
  readonly start: bigint;
  readonly length: bigint;
  /** enum iommu_resv_type (IOMMU_RESV_MSI...). */
  readonly type: number;
}

/** PAGE_SHIFT-sized pages in a 2 MiB and a 1 GiB IOPTE. */
const PMD_PAGES = 512;
const PUD_PAGES = 262144;
/** Level of a leaf: 0 (4 KiB), 1 (2 MiB), 2 (1 GiB); its page order. */
const LEVEL_ORDER = [0, 9, 18] as const;

/**
 * struct iommu_device: the host's IOMMU, its driver's answers (the merged vendor table) and the
 * kernel it serves. iommu_group ids come from one ida per host, from 0.
 */
export class Iommu {
  private next_group_id = 0;
  /** The page orders of the driver's pgsize_bitmap, smallest first (0, 9 and/or 18). */
  readonly orders: readonly number[];

  constructor(readonly kernel: Kernel, readonly ops: MergedIommuVendorOps) {
    const orders: number[] = [];
    for (const order of LEVEL_ORDER) if (ops.pgsize_bitmap & (1n << BigInt(12 + order))) orders.push(order);
    BUG_ON(orders[0] !== 0 || (ops.pgsize_bitmap & ~((1n << 12n) | (1n << 21n) | (1n << 30n))) !== 0n,
      `IOMMU vendor "${ops.name}": pgsize_bitmap must hold 4 KiB and only 4 KiB, 2 MiB and 1 GiB`);
    BUG_ON(!Number.isInteger(ops.address_width) || ops.address_width < 32 || ops.address_width > 64, `IOMMU vendor "${ops.name}": bad address_width`);
    this.orders = orders;
  }

  /** iommu_group_alloc(): a new group id (ida_alloc). */
  alloc_group_id(): number {
    return this.next_group_id++;
  }
}

/** struct device: a DMA-capable device behind the IOMMU. */
export class Device {
  /** dev->iommu_group, set by iommu_group_add_device(). */
  iommu_group!: IommuGroup;

  constructor(
    /** dev_name(): a PCI address such as "0000:01:00.0". */
    readonly name: string,
    readonly iommu: Iommu,
    /** The bound driver's name (dev->driver->name): "vfio-pci". */
    public driver: string,
  ) {}
}

/** struct iommu_group: the devices the IOMMU cannot tell apart, and who owns their DMA. */
export class IommuGroup {
  readonly devices: Device[] = [];
  /** group->owner: the DMA owner (a VFIO group, an iommufd context), null when none. */
  owner: unknown = null;
  /** group->owner_cnt. */
  owner_cnt = 0;
  /** group->domain: the domain translating the group's DMA; null: blocked (every DMA faults). */
  domain: IommuDomain | null = null;

  constructor(readonly id: number, readonly iommu: Iommu) {}
}

/** iommu_group_alloc() + iommu_group_add_device() for a new device of its own group. */
export function iommu_group_add_device(iommu: Iommu, dev: Device): IommuGroup {
  const group = new IommuGroup(iommu.alloc_group_id(), iommu);
  group.devices.push(dev);
  dev.iommu_group = group;
  return group;
}

/** iommu_group_id(). */
export function iommu_group_id(group: IommuGroup): number {
  return group.id;
}

/**
 * iommu_group_claim_dma_owner(): VFIO takes the DMA of a whole group (group->owner_cnt was 0);
 * the group moves to the blocking domain. -EPERM when another owner holds it.
 */
export function iommu_group_claim_dma_owner(group: IommuGroup, owner: unknown): number {
  if (group.owner_cnt) return -Errno.EPERM;
  group.owner = owner;
  group.owner_cnt = 1;
  group.domain = null;
  return 0;
}

/** iommu_group_release_dma_owner(): back to the default (DMA API) domain. */
export function iommu_group_release_dma_owner(group: IommuGroup): void {
  BUG_ON(group.owner_cnt === 0, `iommu group ${group.id}: release of a DMA owner it does not have`);
  group.owner = null;
  group.owner_cnt = 0;
  group.domain = null;
}

/**
 * iommu_device_claim_dma_owner(): iommufd takes the DMA of a device's group, shared with other
 * devices of the group bound by the same owner. -EPERM when another owner holds the group.
 */
export function iommu_device_claim_dma_owner(dev: Device, owner: unknown): number {
  const group = dev.iommu_group;
  if (group.owner_cnt) {
    if (group.owner !== owner) return -Errno.EPERM;
    group.owner_cnt++;
    return 0;
  }
  return iommu_group_claim_dma_owner(group, owner);
}

/** iommu_device_release_dma_owner(). */
export function iommu_device_release_dma_owner(dev: Device): void {
  const group = dev.iommu_group;
  if (group.owner_cnt > 1) group.owner_cnt--;
  else iommu_group_release_dma_owner(group);
}

/** iommu_group_dma_owner_claimed(). */
export function iommu_group_dma_owner_claimed(group: IommuGroup): boolean {
  return group.owner_cnt !== 0;
}

/** iommu_get_resv_regions(): the IOVA ranges `dev` may not use (the driver's list). */
export function iommu_get_resv_regions(dev: Device): readonly IommuResvRegion[] {
  return dev.iommu.ops.resv_regions;
}

/** iommu_group_has_isolated_msi(): interrupt remapping isolates MSIs on the simulated host. */
export function iommu_group_has_isolated_msi(_group: IommuGroup): boolean {
  return true;
}

/** One level-0 table: the 512 4 KiB IOPTEs of 2 MiB of IOVA. */
interface PteTable {
  readonly pfn: Float64Array;
  readonly prot: Uint8Array;
  /** Entries present. */
  nr: number;
}

/** A 2 MiB or 1 GiB leaf. */
interface HugeLeaf {
  readonly pfn: number;
  readonly prot: number;
}

/** A present translation: the page's frame, the leaf's protections and size (page order). */
export interface IommuLeaf {
  readonly pfn: Pfn;
  readonly prot: number;
  readonly order: number;
}

/** struct iommu_domain (IOMMU_DOMAIN_PAGING) with its io-pgtable. */
export class IommuDomain {
  /** domain->pgsize_bitmap. */
  readonly pgsize_bitmap: bigint;
  /** domain->geometry.aperture_start / aperture_end (inclusive). */
  readonly aperture_start = 0n;
  readonly aperture_end: bigint;
  /** Set by iommu_enforce_cache_coherency() (VT-d snoop control). */
  enforce_cache_coherency = false;
  /** Groups attached (iommu_attach_group()). */
  readonly groups = new Set<IommuGroup>();
  /** The page table, see the file comment. */
  readonly ptes = new Map<number, PteTable>();
  readonly pmds = new Map<number, HugeLeaf>();
  readonly puds = new Map<number, HugeLeaf>();
  /** Leaves present per level (4 KiB, 2 MiB, 1 GiB). */
  readonly nr_leaves = [0, 0, 0];
  freed = false;

  constructor(readonly iommu: Iommu) {
    this.pgsize_bitmap = iommu.ops.pgsize_bitmap;
    this.aperture_end = iommu.ops.address_width === 64 ? U64_MAX : (1n << BigInt(iommu.ops.address_width)) - 1n;
  }

  /** The leaf translating IOVA page `ipfn`, if any. */
  lookup(ipfn: number): IommuLeaf | undefined {
    const pmd = Math.floor(ipfn / PMD_PAGES);
    const t = this.ptes.get(pmd);
    if (t !== undefined) {
      const slot = ipfn - pmd * PMD_PAGES;
      const pfn = t.pfn[slot];
      return pfn < 0 ? undefined : { pfn: pfn as Pfn, prot: t.prot[slot], order: 0 };
    }
    const m = this.pmds.get(pmd);
    if (m !== undefined) return { pfn: (m.pfn + (ipfn - pmd * PMD_PAGES)) as Pfn, prot: m.prot, order: 9 };
    const pud = Math.floor(ipfn / PUD_PAGES);
    const u = this.puds.get(pud);
    if (u !== undefined) return { pfn: (u.pfn + (ipfn - pud * PUD_PAGES)) as Pfn, prot: u.prot, order: 18 };
    return undefined;
  }
}

/** iommu_paging_domain_alloc(): a new, empty paging domain of the device's IOMMU. */
export function iommu_paging_domain_alloc(dev: Device): IommuDomain {
  return new IommuDomain(dev.iommu);
}

/** iommu_domain_free(): the domain's page tables go with it; nothing may still be attached. */
export function iommu_domain_free(domain: IommuDomain): void {
  BUG_ON(domain.groups.size !== 0, 'iommu_domain_free() of a domain with attached groups');
  BUG_ON(domain.freed, 'iommu_domain_free() twice');
  domain.ptes.clear();
  domain.pmds.clear();
  domain.puds.clear();
  domain.nr_leaves.fill(0);
  domain.freed = true;
}

/** iommu_enforce_cache_coherency(): VT-d and AMD-Vi can force snooping; always true here. */
export function iommu_enforce_cache_coherency(domain: IommuDomain): boolean {
  domain.enforce_cache_coherency = true;
  return true;
}

/**
 * iommu_attach_group(): the group's DMA goes through `domain` from now on. -EBUSY when the group
 * is attached to another domain already (it must be in its blocking domain).
 */
export function iommu_attach_group(domain: IommuDomain, group: IommuGroup): number {
  if (group.domain !== null && group.domain !== domain) return -Errno.EBUSY;
  group.domain = domain;
  domain.groups.add(group);
  return 0;
}

/** iommu_detach_group(): back to the blocking domain. */
export function iommu_detach_group(domain: IommuDomain, group: IommuGroup): void {
  BUG_ON(group.domain !== domain, `iommu_detach_group(): group ${group.id} is not attached to this domain`);
  domain.groups.delete(group);
  group.domain = null;
}

/** struct iommu_iotlb_gather: the IOVA range whose IOTLB entries an unmap left to flush. */
export class IommuIotlbGather {
  start = U64_MAX;
  end = 0n;
}

/** iommu_iotlb_gather_add_range(). */
function iommu_iotlb_gather_add_range(gather: IommuIotlbGather, iova: bigint, size: bigint): void {
  const end = iova + size - 1n;
  if (iova < gather.start) gather.start = iova;
  if (end > gather.end) gather.end = end;
}

/**
 * iommu_iotlb_sync(): flush the gathered range from the IOTLB and wait for completion (one
 * queued-invalidation descriptor plus a wait descriptor on VT-d), then start a new gather.
 */
export function iommu_iotlb_sync(domain: IommuDomain, gather: IommuIotlbGather): void {
  if (gather.start > gather.end) return;
  domain.iommu.kernel.cost.charge('iotlb_flush');
  gather.start = U64_MAX;
  gather.end = 0n;
}

/** 2^order. */
function pages_of(order: number): number {
  return 2 ** order;
}

/**
 * iommu_pgsize(): the IOPTE size (page order) for the next piece of a map or unmap of `npages`
 * pages at IOVA page `ipfn` and physical page `ppfn`, and how many such IOPTEs to do before a
 * larger size could start.
 */
function iommu_pgsize(domain: IommuDomain, ipfn: number, ppfn: number, npages: number): { order: number; count: number } {
  const orders = domain.iommu.orders;
  let idx = 0;
  for (let i = orders.length - 1; i >= 0; i--) {
    const n = pages_of(orders[i]);
    if (n <= npages && ipfn % n === 0 && ppfn % n === 0) {
      idx = i;
      break;
    }
  }
  const order = orders[idx];
  let size = npages;
  const next = orders[idx + 1];
  /* There's no point trying a bigger page size unless the virtual and physical addresses are similarly offset within the larger page. */
  if (next !== undefined && (ipfn - ppfn) % pages_of(next) === 0) {
    /* Calculate the offset to the next page size alignment boundary */
    const offset = pages_of(next) - (ipfn % pages_of(next));
    /* If size is big enough to accommodate the larger page, reduce the number of smaller pages. */
    if (offset + pages_of(next) <= npages) size = offset;
  }
  return { order, count: Math.floor(size / pages_of(order)) };
}

/**
 * The driver's map_pages(): write `count` leaves of page order `order` from IOVA page `ipfn` to
 * physical page `ppfn`. An entry already there is a caller bug the driver reports and overwrites
 * (VT-d's "DMA PTE for vPFN already set" WARN).
 */
function map_pages(domain: IommuDomain, ipfn: number, ppfn: number, order: number, count: number, prot: number): void {
  const warn = domain.iommu.kernel.warn;
  const n = pages_of(order);
  for (let k = 0; k < count; k++, ipfn += n, ppfn += n) {
    const pmd = Math.floor(ipfn / PMD_PAGES);
    if (order === 0) {
      if (domain.pmds.has(pmd) || domain.puds.has(Math.floor(ipfn / PUD_PAGES))) warn.WARN_ON(true, `IOMMU: DMA PTE for vPFN 0x${ipfn.toString(16)} already set`);
      let t = domain.ptes.get(pmd);
      if (t === undefined) {
        t = { pfn: new Float64Array(PMD_PAGES).fill(-1), prot: new Uint8Array(PMD_PAGES), nr: 0 };
        domain.ptes.set(pmd, t);
      }
      const slot = ipfn - pmd * PMD_PAGES;
      if (t.pfn[slot] >= 0) {
        warn.WARN_ON(true, `IOMMU: DMA PTE for vPFN 0x${ipfn.toString(16)} already set`);
      } else {
        t.nr++;
        domain.nr_leaves[0]++;
      }
      t.pfn[slot] = ppfn;
      t.prot[slot] = prot;
    } else if (order === 9) {
      const t = domain.ptes.get(pmd);
      if ((t !== undefined && t.nr !== 0) || domain.pmds.has(pmd) || domain.puds.has(Math.floor(ipfn / PUD_PAGES))) warn.WARN_ON(true, `IOMMU: DMA PTE for vPFN 0x${ipfn.toString(16)} already set`);
      if (t !== undefined) {
        domain.nr_leaves[0] -= t.nr;
        domain.ptes.delete(pmd);
      }
      if (!domain.pmds.has(pmd)) domain.nr_leaves[1]++;
      domain.pmds.set(pmd, { pfn: ppfn, prot });
    } else {
      const pud = Math.floor(ipfn / PUD_PAGES);
      let busy = domain.puds.has(pud);
      for (let p = pud * 512; p < (pud + 1) * 512 && !busy; p++) busy = domain.pmds.has(p) || (domain.ptes.get(p)?.nr ?? 0) !== 0;
      if (busy) warn.WARN_ON(true, `IOMMU: DMA PTE for vPFN 0x${ipfn.toString(16)} already set`);
      if (busy) clear_range(domain, ipfn, ipfn + PUD_PAGES);
      domain.puds.set(pud, { pfn: ppfn, prot });
      domain.nr_leaves[2]++;
    }
  }
  domain.iommu.kernel.cost.charge('iommu_map_4k', count);
}

/** Clear every leaf in IOVA pages [s, e): how many leaves went. */
function clear_range(domain: IommuDomain, s: number, e: number): number {
  let cleared = 0;
  let ipfn = s;
  while (ipfn < e) {
    const pud = Math.floor(ipfn / PUD_PAGES);
    if (domain.puds.delete(pud)) {
      domain.nr_leaves[2]--;
      cleared++;
      ipfn = (pud + 1) * PUD_PAGES;
      continue;
    }
    const pmd = Math.floor(ipfn / PMD_PAGES);
    const pmd_end = (pmd + 1) * PMD_PAGES;
    if (domain.pmds.delete(pmd)) {
      domain.nr_leaves[1]--;
      cleared++;
      ipfn = pmd_end;
      continue;
    }
    const t = domain.ptes.get(pmd);
    if (t !== undefined) {
      const stop = Math.min(e, pmd_end);
      for (let slot = ipfn - pmd * PMD_PAGES, end = stop - pmd * PMD_PAGES; slot < end && t.nr; slot++) {
        if (t.pfn[slot] < 0) continue;
        t.pfn[slot] = -1;
        t.prot[slot] = 0;
        t.nr--;
        cleared++;
        domain.nr_leaves[0]--;
      }
      if (t.nr === 0) domain.ptes.delete(pmd);
    }
    ipfn = pmd_end;
  }
  return cleared;
}

/**
 * The driver's unmap_pages() as VT-d's intel_iommu_unmap(): when the range starts inside a
 * larger leaf, the whole leaf goes ("cope with horrid API which requires us to unmap more than
 * the size argument if it happens to be a large-page mapping"). Returns the pages unmapped (the
 * size asked, or the leaf's).
 */
function unmap_pages(domain: IommuDomain, ipfn: number, npages: number, gather: IommuIotlbGather): number {
  const leaf = domain.lookup(ipfn);
  if (leaf !== undefined && npages < pages_of(leaf.order)) {
    npages = pages_of(leaf.order);
    ipfn -= ipfn % npages;
  }
  const cleared = clear_range(domain, ipfn, ipfn + npages);
  if (cleared) domain.iommu.kernel.cost.charge('iommu_unmap_4k', cleared);
  iommu_iotlb_gather_add_range(gather, BigInt(ipfn) << 12n, BigInt(npages) << 12n);
  return npages;
}

/**
 * iommu_map(): map [iova, iova + size) to physical [paddr, paddr + size) with `prot`, in the
 * largest IOPTEs alignment allows; on failure what was mapped is unmapped. -EINVAL when iova,
 * paddr or size is not a multiple of the smallest page size.
 */
export function iommu_map(domain: IommuDomain, iova: bigint, paddr: bigint, size: bigint, prot: number): number {
  BUG_ON(domain.freed, 'iommu_map() on a freed domain');
  /* both the virtual address and the physical one, as well as the size of the mapping, must be aligned (at least) to the size of the smallest page supported by the hardware */
  if (((iova | paddr | size) & 0xfffn) !== 0n) return -Errno.EINVAL;
  if (!(prot & (IOMMU_READ | IOMMU_WRITE))) return -Errno.EINVAL;
  let ipfn = Number(iova >> 12n);
  let ppfn = Number(paddr >> 12n);
  let npages = Number(size >> 12n);
  while (npages) {
    const { order, count } = iommu_pgsize(domain, ipfn, ppfn, npages);
    map_pages(domain, ipfn, ppfn, order, count, prot);
    const mapped = count * pages_of(order);
    ipfn += mapped;
    ppfn += mapped;
    npages -= mapped;
  }
  const tracer = domain.iommu.kernel.tracer;
  if (tracer.enabled('map')) tracer.emit('map', { iova, paddr, size });
  return 0;
}

/** __iommu_unmap(): the unmap loop shared by iommu_unmap() and iommu_unmap_fast(). */
function __iommu_unmap(domain: IommuDomain, iova: bigint, size: bigint, gather: IommuIotlbGather): bigint {
  BUG_ON(domain.freed, 'iommu_unmap() on a freed domain');
  if (((iova | size) & 0xfffn) !== 0n) return 0n;
  let ipfn = Number(iova >> 12n);
  const npages = Number(size >> 12n);
  let unmapped = 0;
  while (unmapped < npages) {
    const { order, count } = iommu_pgsize(domain, ipfn, ipfn, npages - unmapped);
    const done = unmap_pages(domain, ipfn, count * pages_of(order), gather);
    ipfn += done;
    unmapped += done;
  }
  const bytes = BigInt(unmapped) << 12n;
  const tracer = domain.iommu.kernel.tracer;
  if (tracer.enabled('unmap')) tracer.emit('unmap', { iova, size, unmapped_size: bytes });
  return bytes;
}

/** iommu_unmap(): unmap [iova, iova + size) and flush the IOTLB; the bytes unmapped. */
export function iommu_unmap(domain: IommuDomain, iova: bigint, size: bigint): bigint {
  const gather = new IommuIotlbGather();
  const unmapped = __iommu_unmap(domain, iova, size, gather);
  iommu_iotlb_sync(domain, gather);
  return unmapped;
}

/** iommu_unmap_fast(): unmap without the IOTLB flush, which the caller does with iommu_iotlb_sync(). */
export function iommu_unmap_fast(domain: IommuDomain, iova: bigint, size: bigint, gather: IommuIotlbGather): bigint {
  return __iommu_unmap(domain, iova, size, gather);
}

/** iommu_iova_to_phys(): the physical address `iova` translates to, 0 when it is not mapped. */
export function iommu_iova_to_phys(domain: IommuDomain, iova: bigint): bigint {
  const leaf = domain.lookup(Number(iova >> 12n));
  return leaf === undefined ? 0n : (BigInt(leaf.pfn) << 12n) | (iova & 0xfffn);
}

/**
 * cocosim helper: the length (bytes) of the run from `iova` (page aligned, mapped) to at most
 * `end` whose physical addresses are contiguous: what VFIO's loop of iommu_iova_to_phys() calls
 * page by page computes, leaf by leaf.
 */
export function iommu_phys_contig_len(domain: IommuDomain, iova: bigint, end: bigint): bigint {
  let ipfn = Number(iova >> 12n);
  const last = Number((end + 0xfffn) >> 12n);
  const first = domain.lookup(ipfn);
  if (first === undefined) BUG('iommu_phys_contig_len() of an unmapped IOVA');
  const base = first.pfn - ipfn;
  while (ipfn < last) {
    const leaf = domain.lookup(ipfn);
    if (leaf === undefined || leaf.pfn - ipfn !== base) break;
    const n = pages_of(leaf.order);
    ipfn += n - (ipfn % n);
  }
  return BigInt(Math.min(ipfn, last) - Number(iova >> 12n)) << 12n;
}

/**
 * report_iommu_fault(): a DMA the IOMMU refused; traced as io_page_fault. No fault handler is
 * installed on VFIO/iommufd paging domains, so the result is -ENOSYS.
 */
export function report_iommu_fault(_domain: IommuDomain | null, dev: Device, iova: bigint, flags: number): number {
  const tracer = dev.iommu.kernel.tracer;
  if (tracer.enabled('io_page_fault')) tracer.emit('io_page_fault', { device: dev.name, driver: dev.driver, iova, flags });
  return -Errno.ENOSYS;
}

/** cocosim inspection: how many leaves of each size (4 KiB, 2 MiB, 1 GiB) the domain holds. */
export function iommu_domain_nr_leaves(domain: IommuDomain): { readonly '4k': number; readonly '2m': number; readonly '1g': number } {
  return { '4k': domain.nr_leaves[0], '2m': domain.nr_leaves[1], '1g': domain.nr_leaves[2] };
}

/** cocosim inspection: the leaf translating `iova` (its frame for this page, protections, size). */
export function iommu_domain_leaf(domain: IommuDomain, iova: bigint): IommuLeaf | undefined {
  return domain.lookup(Number(iova >> 12n));
}
