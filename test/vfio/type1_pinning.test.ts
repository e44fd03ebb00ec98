/**
 * What VFIO type1 and iommufd do to the memory they map, end to end: FOLL_LONGTERM pins that
 * migrate pages out of ZONE_MOVABLE first (mm/gup.c check_and_migrate_movable_pages(), as
 * gup_longterm.c tests for io_uring), transparent huge pages mapped as 2 MiB IOPTEs (and as
 * 4 KiB ones with vfio_iommu_type1's disable_hugepages), and pins that outlive the process's own
 * mapping: after munmap() the device still reaches the old pages until VFIO_IOMMU_UNMAP_DMA.
 */
import { describe, expect, test } from 'vitest';
import { MADV_HUGEPAGE, O_RDWR, ZONE_MOVABLE, folio_maybe_dma_pinned, page_folio, page_zonenum, pagemap_pfn } from '@cocosim/mm';
import {
  IOMMU_IOAS_MAP, IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_SIZE, IOMMU_IOAS_MAP_WRITEABLE,
  VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA, dma_read, dma_write, iommu_domain_nr_leaves, isDmaError,
} from '@cocosim/vfio';
import { anon_map, device_attach, device_bind, ioas_alloc, type1_setup, vfioHost } from './vfio_util.js';

const PG = 4096n;
const SZ_2M = 1n << 21n;

describe('FOLL_LONGTERM: pages leave ZONE_MOVABLE before they are pinned', () => {
  test('type1: the mapping\'s pages move to a pinnable zone, contents and process mapping follow', async () => {
    const host = vfioHost({ movable: true });
    try {
      const p = host.process();
      const store = host.kernel.store;
      const s = type1_setup(host, p);
      const va = anon_map(p, 8n * PG);
      for (let i = 0n; i < 8n; i++) expect(p.store(va + i * PG, new Uint8Array([Number(i) + 1]))).toBe(0);
      const before = pagemap_pfn(p.mm, va)!;
      expect(page_zonenum(store, before)).toBe(ZONE_MOVABLE);
      expect(p.ioctl(s.container, VFIO_IOMMU_MAP_DMA, { argsz: 32, flags: 3, vaddr: va, iova: 0x100000n, size: 8n * PG })).toBe(0);
      const after = pagemap_pfn(p.mm, va)!;
      expect(after).not.toBe(before);
      expect(page_zonenum(store, after)).not.toBe(ZONE_MOVABLE);
      expect(folio_maybe_dma_pinned(store, page_folio(store, after))).toBe(true);
      for (let i = 0n; i < 8n; i++) expect(dma_read(s.device.dev, 0x100000n + i * PG, 1)).toEqual(new Uint8Array([Number(i) + 1]));
      expect(dma_write(s.device.dev, 0x100000n, new Uint8Array([0x77]))).toBe(0);
      expect(p.load(va, 1)).toEqual(new Uint8Array([0x77]));
    } finally {
      await host.container.dispose();
    }
  });

  test('iommufd: the same when a device attached to the IOAS fills it', async () => {
    const host = vfioHost({ movable: true });
    try {
      const p = host.process();
      const store = host.kernel.store;
      const fd = p.open('/dev/iommu', O_RDWR);
      const ioas = ioas_alloc(p, fd);
      const va = anon_map(p, 4n * PG);
      for (let i = 0n; i < 4n; i++) p.store(va + i * PG, new Uint8Array([9]));
      expect(page_zonenum(store, pagemap_pfn(p.mm, va)!)).toBe(ZONE_MOVABLE);
      const flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
      expect(p.ioctl(fd, IOMMU_IOAS_MAP, { size: IOMMU_IOAS_MAP_SIZE, flags, ioas_id: ioas, user_va: va, length: 4n * PG, iova: 0x100000n })).toBe(0);
      /* nothing pinned (or moved) until a device is attached */
      expect(page_zonenum(store, pagemap_pfn(p.mm, va)!)).toBe(ZONE_MOVABLE);
      const { devfd, device } = device_bind(host, p, fd);
      device_attach(p, devfd, ioas);
      expect(page_zonenum(store, pagemap_pfn(p.mm, va)!)).not.toBe(ZONE_MOVABLE);
      expect(dma_read(device.dev, 0x103000n, 1)).toEqual(new Uint8Array([9]));
    } finally {
      await host.container.dispose();
    }
  });
});

describe('IOMMU page sizes follow the memory', () => {
  test('a transparent huge page maps as one 2 MiB IOPTE; with disable_hugepages as 512 4 KiB ones', async () => {
    for (const disable_hugepages of [false, true]) {
      const host = vfioHost({ disable_hugepages });
      try {
        const p = host.process();
        const s = type1_setup(host, p);
        const raw = anon_map(p, 2n * SZ_2M);
        const thp = (raw + SZ_2M - 1n) & ~(SZ_2M - 1n);
        expect(p.madvise(thp, SZ_2M, MADV_HUGEPAGE)).toBe(0);
        expect(p.store(thp, new Uint8Array([1]))).toBe(0);
        expect(p.ioctl(s.container, VFIO_IOMMU_MAP_DMA, { argsz: 32, flags: 3, vaddr: thp, iova: SZ_2M, size: SZ_2M })).toBe(0);
        const domain = s.device.dev.iommu_group.domain!;
        expect(iommu_domain_nr_leaves(domain)).toEqual(disable_hugepages ? { '4k': 512, '2m': 0, '1g': 0 } : { '4k': 0, '2m': 1, '1g': 0 });
      } finally {
        await host.container.dispose();
      }
    }
  });
});

describe('pins outlive the process\'s mapping', () => {
  test('after munmap() the device still reaches the pinned pages; VFIO_IOMMU_UNMAP_DMA lets them go', async () => {
    const host = vfioHost();
    const p = host.process();
    const store = host.kernel.store;
    const s = type1_setup(host, p);
    const va = anon_map(p, PG);
    expect(p.store(va, new Uint8Array([0x3c]))).toBe(0);
    const folio = page_folio(store, pagemap_pfn(p.mm, va)!);
    expect(p.ioctl(s.container, VFIO_IOMMU_MAP_DMA, { argsz: 32, flags: 3, vaddr: va, iova: 0x200000n, size: PG })).toBe(0);
    expect(p.munmap(va, PG)).toBe(0);
    expect(dma_read(s.device.dev, 0x200000n, 1)).toEqual(new Uint8Array([0x3c]));
    expect(folio_maybe_dma_pinned(store, folio)).toBe(true);
    expect(p.mm.locked_vm).toBe(1);
    expect(p.ioctl(s.container, VFIO_IOMMU_UNMAP_DMA, { argsz: 24, flags: 0, iova: 0x200000n, size: PG })).toBe(0);
    expect(p.mm.locked_vm).toBe(0);
    expect(isDmaError(dma_read(s.device.dev, 0x200000n, 1))).toBe(true);
    await host.container.dispose();
  });
});
