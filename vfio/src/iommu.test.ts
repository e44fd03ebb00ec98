import { describe, expect, test } from 'vitest';
import { CostModel, Errno, RingSink, Tracer, createRootContainer } from '@cocosim/core';
import { Kernel, mmRegistrar } from '@cocosim/mm';
import {
  Device,
  IOMMU_READ,
  IOMMU_WRITE,
  Iommu,
  IommuIotlbGather,
  iommu_attach_group,
  iommu_detach_group,
  iommu_device_claim_dma_owner,
  iommu_device_release_dma_owner,
  iommu_domain_free,
  iommu_domain_leaf,
  iommu_domain_nr_leaves,
  iommu_group_add_device,
  iommu_group_claim_dma_owner,
  iommu_group_release_dma_owner,
  iommu_iotlb_sync,
  iommu_iova_to_phys,
  iommu_map,
  iommu_paging_domain_alloc,
  iommu_phys_contig_len,
  iommu_unmap,
  iommu_unmap_fast,
} from './iommu.js';
import { iommu_vendor_ops_merge } from './iommu_vendor_ops.js';

const SZ_4K = 1n << 12n;
const SZ_2M = 1n << 21n;
const SZ_1G = 1n << 30n;

/** The cost entries `fn` charges, by count. */
function counts(cost: CostModel, fn: () => unknown): Record<string, number> {
  const { cost: b } = cost.measure('t', fn);
  return Object.fromEntries(b.items.map((i) => [i.name, i.count]));
}

function setup(ops = {}): { kernel: Kernel; iommu: Iommu; dev: Device; ring: RingSink; cost: CostModel } {
  const root = createRootContainer({}, mmRegistrar({ nr_pages: 8192 }));
  const kernel = root.resolve(Kernel);
  const ring = new RingSink();
  root.resolve(Tracer).addSink(ring);
  const iommu = new Iommu(kernel, iommu_vendor_ops_merge(ops));
  const dev = new Device('0000:00:01.0', iommu, 'vfio-pci');
  iommu_group_add_device(iommu, dev);
  return { kernel, iommu, dev, ring, cost: root.resolve(CostModel) };
}

describe('iommu_map(): IOPTE sizes (iommu_pgsize())', () => {
  test('a run aligned to 2 MiB in both spaces maps as 2 MiB IOPTEs, the ragged ends as 4 KiB', () => {
    const { dev } = setup();
    const d = iommu_paging_domain_alloc(dev);
    /* 4 KiB before a 2 MiB boundary, two 2 MiB pages, 8 KiB after */
    expect(iommu_map(d, SZ_2M - SZ_4K, 0x40000000n - SZ_4K, SZ_4K + 2n * SZ_2M + 2n * SZ_4K, IOMMU_READ | IOMMU_WRITE)).toBe(0);
    expect(iommu_domain_nr_leaves(d)).toEqual({ '4k': 3, '2m': 2, '1g': 0 });
    expect(iommu_domain_leaf(d, SZ_2M)).toEqual({ pfn: 0x40000, prot: IOMMU_READ | IOMMU_WRITE, order: 9 });
    expect(iommu_iova_to_phys(d, SZ_2M + 0x1234n)).toBe(0x40000000n + 0x1234n);
    expect(iommu_iova_to_phys(d, 5n * SZ_2M)).toBe(0n);
  });

  test('iova and paddr offset differently within 2 MiB: only 4 KiB IOPTEs', () => {
    const { dev } = setup();
    const d = iommu_paging_domain_alloc(dev);
    expect(iommu_map(d, 0n, SZ_4K, SZ_2M * 2n, IOMMU_READ)).toBe(0);
    expect(iommu_domain_nr_leaves(d)).toEqual({ '4k': 1024, '2m': 0, '1g': 0 });
  });

  test('a 1 GiB aligned run is one 1 GiB IOPTE; without 1 GiB in pgsize_bitmap it is 512 2 MiB ones', () => {
    const a = setup();
    const d = iommu_paging_domain_alloc(a.dev);
    expect(iommu_map(d, SZ_1G, 2n * SZ_1G, SZ_1G, IOMMU_READ)).toBe(0);
    expect(iommu_domain_nr_leaves(d)).toEqual({ '4k': 0, '2m': 0, '1g': 1 });
    const b = setup({ pgsize_bitmap: SZ_4K | SZ_2M });
    const d2 = iommu_paging_domain_alloc(b.dev);
    expect(iommu_map(d2, SZ_1G, 2n * SZ_1G, SZ_1G, IOMMU_READ)).toBe(0);
    expect(iommu_domain_nr_leaves(d2)).toEqual({ '4k': 0, '2m': 512, '1g': 0 });
  });

  test('iova, paddr or size not a multiple of 4 KiB, or no READ/WRITE: -EINVAL, nothing mapped', () => {
    const { dev } = setup();
    const d = iommu_paging_domain_alloc(dev);
    expect(iommu_map(d, 0x1001n, 0n, SZ_4K, IOMMU_READ)).toBe(-Errno.EINVAL);
    expect(iommu_map(d, 0n, 0x800n, SZ_4K, IOMMU_READ)).toBe(-Errno.EINVAL);
    expect(iommu_map(d, 0n, 0n, 0x1800n, IOMMU_READ)).toBe(-Errno.EINVAL);
    expect(iommu_map(d, 0n, 0n, SZ_4K, 0)).toBe(-Errno.EINVAL);
    expect(iommu_domain_nr_leaves(d)).toEqual({ '4k': 0, '2m': 0, '1g': 0 });
  });

  test('costs: iommu_map_4k per IOPTE written whatever its size, iommu_unmap_4k per IOPTE cleared, one iotlb_flush per sync', () => {
    const { dev, cost } = setup();
    const d = iommu_paging_domain_alloc(dev);
    expect(counts(cost, () => iommu_map(d, 0n, 0n, SZ_2M + SZ_4K, IOMMU_READ))).toEqual({ iommu_map_4k: 2 });
    expect(counts(cost, () => iommu_unmap(d, 0n, SZ_2M + SZ_4K))).toEqual({ iommu_unmap_4k: 2, iotlb_flush: 1 });
  });

  test('map and unmap tracepoints carry the call\'s iova, paddr, size and the bytes unmapped', () => {
    const { dev, ring } = setup();
    const d = iommu_paging_domain_alloc(dev);
    iommu_map(d, SZ_2M, 0x200000n, SZ_2M, IOMMU_WRITE);
    iommu_unmap(d, SZ_2M, SZ_4K);
    expect(ring.find('map', {})).toEqual([expect.objectContaining({ args: { iova: SZ_2M, paddr: 0x200000n, size: SZ_2M } })]);
    /* VT-d unmaps the whole large page an unmap starts in */
    expect(ring.find('unmap', {})).toEqual([expect.objectContaining({ args: { iova: SZ_2M, size: SZ_4K, unmapped_size: SZ_2M } })]);
    expect(iommu_domain_nr_leaves(d)).toEqual({ '4k': 0, '2m': 0, '1g': 0 });
  });
});

describe('iommu_unmap_fast() and the IOTLB gather', () => {
  test('no flush until iommu_iotlb_sync(); an empty gather flushes nothing', () => {
    const { dev, cost } = setup();
    const d = iommu_paging_domain_alloc(dev);
    iommu_map(d, 0n, 0n, 4n * SZ_4K, IOMMU_READ);
    const gather = new IommuIotlbGather();
    expect(counts(cost, () => {
      expect(iommu_unmap_fast(d, 0n, 2n * SZ_4K, gather)).toBe(2n * SZ_4K);
      expect(iommu_unmap_fast(d, 2n * SZ_4K, 2n * SZ_4K, gather)).toBe(2n * SZ_4K);
    })).toEqual({ iommu_unmap_4k: 4 });
    expect(counts(cost, () => {
      iommu_iotlb_sync(d, gather);
      iommu_iotlb_sync(d, gather);
    })).toEqual({ iotlb_flush: 1 });
  });
});

describe('iommu_phys_contig_len()', () => {
  test('follows physically contiguous leaves of any size and stops at a gap or at the end', () => {
    const { dev } = setup();
    const d = iommu_paging_domain_alloc(dev);
    iommu_map(d, 0n, SZ_2M, 2n * SZ_2M, IOMMU_READ);
    iommu_map(d, 2n * SZ_2M, 3n * SZ_2M, SZ_4K, IOMMU_READ);
    iommu_map(d, 2n * SZ_2M + SZ_4K, 0n, SZ_4K, IOMMU_READ);
    expect(iommu_phys_contig_len(d, 0n, 4n * SZ_2M)).toBe(2n * SZ_2M + SZ_4K);
    expect(iommu_phys_contig_len(d, SZ_4K, SZ_2M)).toBe(SZ_2M - SZ_4K);
  });
});

describe('groups, DMA ownership and domains', () => {
  test('a group owned by one owner is -EPERM for another; the device claim nests for the same owner', () => {
    const { dev } = setup();
    const group = dev.iommu_group;
    const a = {};
    expect(iommu_device_claim_dma_owner(dev, a)).toBe(0);
    expect(iommu_device_claim_dma_owner(dev, a)).toBe(0);
    expect(iommu_group_claim_dma_owner(group, {})).toBe(-Errno.EPERM);
    expect(iommu_device_claim_dma_owner(dev, {})).toBe(-Errno.EPERM);
    iommu_device_release_dma_owner(dev);
    expect(group.owner_cnt).toBe(1);
    iommu_device_release_dma_owner(dev);
    expect(iommu_group_claim_dma_owner(group, {})).toBe(0);
    iommu_group_release_dma_owner(group);
  });

  test('a group attached to one domain is -EBUSY for another until detached; a domain with groups cannot be freed', () => {
    const { dev } = setup();
    const group = dev.iommu_group;
    const d1 = iommu_paging_domain_alloc(dev);
    const d2 = iommu_paging_domain_alloc(dev);
    expect(iommu_attach_group(d1, group)).toBe(0);
    expect(iommu_attach_group(d2, group)).toBe(-Errno.EBUSY);
    expect(() => iommu_domain_free(d1)).toThrow(/attached groups/);
    iommu_detach_group(d1, group);
    expect(group.domain).toBe(null);
    expect(iommu_attach_group(d2, group)).toBe(0);
  });
});
