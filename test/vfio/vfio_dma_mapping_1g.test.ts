/**
 * The 1 GiB hugetlb variants of vfio_dma_mapping_test (vfio_dma_mapping.test.ts has the others
 * and the description); apart because pinning 262144 pages takes the simulator a second. Type1
 * v1 is left out: its map and unmap of a whole mapping are v2's.
 *
 * Port of tools/testing/selftests/vfio/vfio_dma_mapping_test.c (Linux 6.18): map a buffer of
 * anonymous memory, of 2 MiB hugetlb and of 1 GiB hugetlb for DMA, check that the IOMMU maps it
 * with IOPTEs of the buffer's page size (the selftest reads VT-d's
 * domain_translation_struct: PTE for 4 KiB, PMD for 2 MiB, PUD for 1 GiB), then unmap it and
 * check that nothing translates any more. Run in every IOMMU mode the selftest has that cocosim
 * models: vfio_type1_iommu, vfio_type1v2_iommu (the container) and iommufd (the device cdev);
 * iommufd_compat_type1 (/dev/iommu as a container) is not modelled. The IOVA is the buffer's
 * address, as the 6.18 selftest uses.
 */
import { describe, expect } from 'vitest';
import {
  MAP_ANONYMOUS, MAP_FAILED, MAP_HUGETLB, MAP_HUGE_1GB, MAP_HUGE_2MB, MAP_PRIVATE, O_RDWR, PROT_READ, PROT_WRITE,
  hugetlb_pool, set_max_huge_pages,
} from '@cocosim/mm';
import {
  IOMMU_IOAS_MAP, IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_SIZE, IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_IOAS_UNMAP, IOMMU_IOAS_UNMAP_SIZE, VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_WRITE, VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA, VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU, dma_read, dma_write, iommu_domain_leaf, isDmaError,
  type IommuDomain, type VfioDevice,
} from '@cocosim/vfio';
import { test } from 'vitest';
import { TEST_ASSERT_EQ } from '../lib/test_util.js';
import { device_attach, device_bind, ioas_alloc, type1_setup, vfioHost } from './vfio_util.js';

const SZ_4K = 4096n;
const SZ_2M = 1n << 21n;
const SZ_1G = 1n << 30n;

interface Variant {
  readonly name: string;
  readonly size: bigint;
  readonly mmap_flags: number;
}

const VARIANTS: readonly Variant[] = [
  { name: 'anonymous', size: SZ_4K, mmap_flags: 0 },
  { name: 'anonymous_hugetlb_2mb', size: SZ_2M, mmap_flags: MAP_HUGETLB | MAP_HUGE_2MB },
  { name: 'anonymous_hugetlb_1gb', size: SZ_1G, mmap_flags: MAP_HUGETLB | MAP_HUGE_1GB },
];

type Mode = 'vfio_type1_iommu' | 'vfio_type1v2_iommu' | 'iommufd';

/** The IOMMU as the test sees it: map/unmap one region, and the device whose DMA it translates. */
interface IommuHandle {
  readonly device: VfioDevice;
  map(vaddr: bigint, iova: bigint, size: bigint): number;
  unmap(iova: bigint, size: bigint): { rc: number; unmapped: bigint };
}

function iommu_init(mode: Mode, host: ReturnType<typeof vfioHost>, p: ReturnType<ReturnType<typeof vfioHost>['process']>): IommuHandle {
  if (mode !== 'iommufd') {
    const s = type1_setup(host, p, mode === 'vfio_type1_iommu' ? VFIO_TYPE1_IOMMU : VFIO_TYPE1v2_IOMMU);
    return {
      device: s.device,
      map: (vaddr, iova, size) => p.ioctl(s.container, VFIO_IOMMU_MAP_DMA, { argsz: 32, flags: VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE, vaddr, iova, size }),
      unmap: (iova, size) => {
        const u = { argsz: 24, flags: 0, iova, size };
        const rc = p.ioctl(s.container, VFIO_IOMMU_UNMAP_DMA, u);
        return { rc, unmapped: BigInt(u.size) };
      },
    };
  }
  const fd = p.open('/dev/iommu', O_RDWR);
  const ioas = ioas_alloc(p, fd);
  const { devfd, device } = device_bind(host, p, fd);
  device_attach(p, devfd, ioas);
  const flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
  return {
    device,
    map: (vaddr, iova, size) => p.ioctl(fd, IOMMU_IOAS_MAP, { size: IOMMU_IOAS_MAP_SIZE, flags, ioas_id: ioas, user_va: vaddr, length: size, iova }),
    unmap: (iova, size) => {
      const u = { size: IOMMU_IOAS_UNMAP_SIZE, ioas_id: ioas, iova, length: size };
      const rc = p.ioctl(fd, IOMMU_IOAS_UNMAP, u);
      return { rc, unmapped: BigInt(u.length) };
    },
  };
}

/** The IOPTE level translating `iova`: the selftest's PTE/PMD/PUD. */
function mapping_size(domain: IommuDomain, iova: bigint): bigint | undefined {
  const leaf = iommu_domain_leaf(domain, iova);
  return leaf === undefined ? undefined : SZ_4K << BigInt(leaf.order);
}

describe('vfio_dma_mapping_test: dma_map_unmap, 1 GiB hugetlb', () => {
  for (const mode of ['vfio_type1v2_iommu', 'iommufd'] as const) {
    for (const variant of VARIANTS.filter((v) => v.size === SZ_1G)) {
      test(`${mode}_${variant.name}`, async () => {
        const host = vfioHost({ nr_pages: 2 ** 19 });
        try {
          const p = host.process();
          if (variant.mmap_flags & MAP_HUGETLB) {
            const pool = hugetlb_pool(host.kernel);
            const h = variant.size === SZ_1G ? pool.hstates.find((x) => x.order === 18)! : pool.default_hstate;
            TEST_ASSERT_EQ(set_max_huge_pages(host.kernel, h, 1), 1, 'hugetlb pool');
          }
          const iommu = iommu_init(mode, host, p);
          const vaddr = p.mmap(0, variant.size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE | variant.mmap_flags, -1, 0);
          expect(vaddr).not.toBe(MAP_FAILED);
          expect(p.store(vaddr, new Uint8Array([0xc5]))).toBe(0);
          const iova = vaddr;
          expect(iommu.map(vaddr, iova, variant.size)).toBe(0);
          const domain = iommu.device.dev.iommu_group.domain!;
          /* to_iova(): the device reaches the buffer at the IOVA */
          expect(dma_read(iommu.device.dev, iova, 1)).toEqual(new Uint8Array([0xc5]));
          expect(mapping_size(domain, iova)).toBe(variant.size);
          const { rc, unmapped } = iommu.unmap(iova, variant.size);
          expect(rc).toBe(0);
          expect(unmapped).toBe(variant.size);
          expect(mapping_size(domain, iova)).toBe(undefined);
          expect(isDmaError(dma_write(iommu.device.dev, iova, new Uint8Array([1])))).toBe(true);
          expect(p.munmap(vaddr, variant.size)).toBe(0);
        } finally {
          await host.container.dispose();
        }
      });
    }
  }
});

