import { describe, expect, test } from 'vitest';
import { PhysMem, RingSink, Tracer, createRootContainer, type Pfn } from '@cocosim/core';
import { Kernel, mmRegistrar } from '@cocosim/mm';
import { dma_read, dma_write, isDmaError } from './device_dma.js';
import { Device, IOMMU_FAULT_READ, IOMMU_FAULT_WRITE, IOMMU_READ, IOMMU_WRITE, Iommu, iommu_attach_group, iommu_group_add_device, iommu_map, iommu_paging_domain_alloc } from './iommu.js';
import { iommu_vendor_ops_merge, type IommuVendorOps } from './iommu_vendor_ops.js';

/** A device attached to a fresh domain; frames 100.. are what the tests map. */
function setup(ops: IommuVendorOps = {}): { dev: Device; phys: PhysMem; ring: RingSink; map: (iova: bigint, pfn: number, pages: number, prot: number) => void } {
  const root = createRootContainer({}, mmRegistrar({ nr_pages: 4096 }));
  const kernel = root.resolve(Kernel);
  const ring = new RingSink();
  root.resolve(Tracer).addSink(ring);
  const iommu = new Iommu(kernel, iommu_vendor_ops_merge(ops));
  const dev = new Device('0000:00:05.0', iommu, 'vfio-pci');
  iommu_group_add_device(iommu, dev);
  const domain = iommu_paging_domain_alloc(dev);
  const map = (iova: bigint, pfn: number, pages: number, prot: number): void => {
    expect(iommu_map(domain, iova, BigInt(pfn) << 12n, BigInt(pages) << 12n, prot)).toBe(0);
  };
  return {
    dev,
    phys: root.resolve(PhysMem),
    ring,
    map: (iova, pfn, pages, prot) => {
      if (dev.iommu_group.domain === null) expect(iommu_attach_group(domain, dev.iommu_group)).toBe(0);
      map(iova, pfn, pages, prot);
    },
  };
}

describe('device DMA through the IOMMU', () => {
  test('a device in the blocking domain faults: io_page_fault with its name, driver, IOVA and direction', () => {
    const { dev, ring } = setup();
    const r = dma_read(dev, 0x1000n, 8);
    expect(r).toEqual({ error: 'io_page_fault', iova: 0x1000n, write: false, reason: 'blocked' });
    expect(dma_write(dev, 0x2000n, new Uint8Array(1))).toEqual({ error: 'io_page_fault', iova: 0x2000n, write: true, reason: 'blocked' });
    expect(ring.find('io_page_fault', {}).map((e) => e.args)).toEqual([
      { device: '0000:00:05.0', driver: 'vfio-pci', iova: 0x1000n, flags: IOMMU_FAULT_READ },
      { device: '0000:00:05.0', driver: 'vfio-pci', iova: 0x2000n, flags: IOMMU_FAULT_WRITE },
    ]);
  });

  test('reads and writes go to the frames the IOPTEs name, across pages', () => {
    const { dev, phys, map } = setup();
    map(0x10000n, 100, 1, IOMMU_READ | IOMMU_WRITE);
    map(0x11000n, 300, 1, IOMMU_READ | IOMMU_WRITE);
    const data = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
    expect(dma_write(dev, 0x10ff8n, data)).toBe(0);
    expect(phys.read(100 as Pfn, 4088, 8)).toEqual(data.subarray(0, 8));
    expect(phys.read(300 as Pfn, 0, 8)).toEqual(data.subarray(8));
    expect(dma_read(dev, 0x10ff8n, 16)).toEqual(data);
  });

  test('a write stops at the first unmapped page, the pages before it written; permissions are per IOPTE', () => {
    const { dev, phys, map } = setup();
    map(0x20000n, 100, 1, IOMMU_READ | IOMMU_WRITE);
    map(0x30000n, 101, 1, IOMMU_READ);
    map(0x40000n, 102, 1, IOMMU_WRITE);
    const r = dma_write(dev, 0x20ffcn, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
    expect(isDmaError(r) && r.iova).toBe(0x21000n);
    expect(isDmaError(r) && r.reason).toBe('unmapped');
    expect(phys.read(100 as Pfn, 4092, 4)).toEqual(new Uint8Array([1, 2, 3, 4]));
    const ro = dma_write(dev, 0x30000n, new Uint8Array([1]));
    expect(isDmaError(ro) && ro.reason).toBe('read-only');
    const wo = dma_read(dev, 0x40000n, 1);
    expect(isDmaError(wo) && wo.reason).toBe('write-only');
    expect(dma_write(dev, 0x40000n, new Uint8Array([9]))).toBe(0);
  });

  test('the vendor\'s dma_access decides per frame: a refused frame is an IOMMU fault with its reason', () => {
    const seen: [number, boolean][] = [];
    const { dev, ring, map } = setup({
      name: 'rmp',
      dma_access: (_dev, pfn, write) => {
        seen.push([pfn, write]);
        return pfn === 101 ? { kind: 'fault', reason: 'RMP: page is guest-owned' } : { kind: 'ok' };
      },
    });
    map(0x50000n, 100, 2, IOMMU_READ | IOMMU_WRITE);
    expect(isDmaError(dma_read(dev, 0x50000n, 4))).toBe(false);
    expect(dma_write(dev, 0x51000n, new Uint8Array([1]))).toEqual({ error: 'io_page_fault', iova: 0x51000n, write: true, reason: 'RMP: page is guest-owned' });
    expect(seen).toEqual([[100, false], [101, true]]);
    expect(ring.find('io_page_fault', { iova: 0x51000n })).toHaveLength(1);
  });

  test('a read of poisoned memory returns a poisoned completion, not an IOMMU fault', () => {
    const { dev, phys, ring, map } = setup();
    map(0x60000n, 100, 1, IOMMU_READ);
    phys.poison(100 as Pfn, 3);
    expect(isDmaError(dma_read(dev, 0x60000n, 64))).toBe(false);
    expect(dma_read(dev, 0x600c0n, 8)).toEqual({ error: 'poison', iova: 0x600c0n, write: false, reason: 'poisoned memory' });
    expect(ring.find('io_page_fault', {})).toHaveLength(0);
  });

  test('an IOVA beyond the aperture faults', () => {
    const { dev, map } = setup();
    map(0x0n, 100, 1, IOMMU_READ);
    const r = dma_read(dev, 1n << 48n, 1);
    expect(isDmaError(r) && r.reason).toBe('unmapped');
  });
});
