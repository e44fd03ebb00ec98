import { describe, expect, test } from 'vitest';
import { Errno, U64_MAX, createRootContainer } from '@cocosim/core';
import {
  Kernel,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
  Process,
  folio_maybe_dma_pinned,
  mmRegistrar,
  page_folio,
  pagemap_pfn,
} from '@cocosim/mm';
import { dma_read, dma_write, isDmaError } from '../device_dma.js';
import { iommu_domain_nr_leaves } from '../iommu.js';
import {
  IOMMU_DESTROY,
  IOMMU_DESTROY_SIZE,
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_ALLOC_SIZE,
  IOMMU_IOAS_IOVA_RANGES,
  IOMMU_IOAS_IOVA_RANGES_SIZE,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_FILE,
  IOMMU_IOAS_MAP_FILE_SIZE,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_SIZE,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_IOAS_UNMAP,
  IOMMU_IOAS_UNMAP_SIZE,
  IOMMU_OPTION,
  IOMMU_OPTION_HUGE_PAGES,
  IOMMU_OPTION_OP_SET,
  IOMMU_OPTION_SIZE,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_DETACH_IOMMUFD_PT,
} from '../uapi.js';
import { vfioRegistrar } from '../vfio.js';
import { vfio_sim_device_add, type VfioDevice } from '../vfio_main.js';

const PG = 4096n;
const SZ_2M = 1n << 21n;
const FIXED = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;

interface Setup {
  p: Process;
  ictx: number;
  ioas_alloc(): number;
  map(ioas: number, iova: bigint, va: bigint, len: bigint): number;
  bind(): { fd: number; dev: VfioDevice; id: number };
  attach(fd: number, pt_id: number): number;
  destroy(id: number): number;
}

function setup(): Setup {
  const p = new Process(createRootContainer({}, mmRegistrar({ nr_pages: 16384 }), vfioRegistrar()).resolve(Kernel));
  const ictx = p.open('/dev/iommu', O_RDWR);
  return {
    p,
    ictx,
    ioas_alloc: () => {
      const cmd = { size: IOMMU_IOAS_ALLOC_SIZE, flags: 0, out_ioas_id: 0 };
      expect(p.ioctl(ictx, IOMMU_IOAS_ALLOC, cmd)).toBe(0);
      return cmd.out_ioas_id;
    },
    map: (ioas, iova, va, len) => p.ioctl(ictx, IOMMU_IOAS_MAP, { size: IOMMU_IOAS_MAP_SIZE, flags: FIXED, ioas_id: ioas, user_va: va, length: len, iova }),
    bind: () => {
      const dev = vfio_sim_device_add(p.kernel);
      const fd = p.open(dev.cdev_path, O_RDWR);
      const b = { argsz: 16, flags: 0, iommufd: ictx, out_devid: 0 };
      expect(p.ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, b)).toBe(0);
      return { fd, dev, id: b.out_devid };
    },
    attach: (fd, pt_id) => {
      const a = { argsz: 12, flags: 0, pt_id };
      return p.ioctl(fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, a) === 0 ? a.pt_id : -p.errno;
    },
    destroy: (id) => (p.ioctl(ictx, IOMMU_DESTROY, { size: IOMMU_DESTROY_SIZE, id }) === 0 ? 0 : -p.errno),
  };
}

function anon(p: Process, len: bigint): bigint {
  const va = p.mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  for (let off = 0n; off < len; off += PG) p.store(va + off, new Uint8Array([1]));
  return va;
}

describe('attaching a device to an IOAS (automatic HWPT)', () => {
  test('pins and maps the IOAS\'s areas, holds the IOAS (IOMMU_DESTROY -EBUSY); the last detach unpins and destroys the HWPT', () => {
    const s = setup();
    const ioas = s.ioas_alloc();
    const va = anon(s.p, 4n * PG);
    expect(s.map(ioas, 0x100000n, va, 4n * PG)).toBe(0);
    expect(s.p.mm.pinned_vm).toBe(0);
    const d = s.bind();
    const hwpt = s.attach(d.fd, ioas);
    expect(hwpt).toBeGreaterThan(0);
    expect(s.p.mm.pinned_vm).toBe(4);
    const folio = page_folio(s.p.kernel.store, pagemap_pfn(s.p.mm, va)!);
    expect(folio_maybe_dma_pinned(s.p.kernel.store, folio)).toBe(true);
    expect(dma_write(d.dev.dev, 0x100000n, new Uint8Array([0x5a]))).toBe(0);
    expect(s.p.load(va, 1)).toEqual(new Uint8Array([0x5a]));
    expect(s.destroy(ioas)).toBe(-Errno.EBUSY);
    expect(s.destroy(hwpt)).toBe(-Errno.EBUSY);
    /* a second device reuses the HWPT */
    const d2 = s.bind();
    expect(s.attach(d2.fd, ioas)).toBe(hwpt);
    expect(d2.dev.dev.iommu_group.domain).toBe(d.dev.dev.iommu_group.domain);
    expect(s.p.ioctl(d.fd, VFIO_DEVICE_DETACH_IOMMUFD_PT, { argsz: 8 })).toBe(0);
    expect(s.p.mm.pinned_vm).toBe(4);
    expect(s.p.ioctl(d2.fd, VFIO_DEVICE_DETACH_IOMMUFD_PT, { argsz: 8 })).toBe(0);
    expect(s.p.mm.pinned_vm).toBe(0);
    expect(folio_maybe_dma_pinned(s.p.kernel.store, folio)).toBe(false);
    expect(s.destroy(hwpt)).toBe(-Errno.ENOENT);
    expect(s.destroy(ioas)).toBe(0);
  });

  test('an area in the device\'s MSI window: -EADDRINUSE, nothing pinned, the device still blocked', () => {
    const s = setup();
    const ioas = s.ioas_alloc();
    const va = anon(s.p, PG);
    expect(s.map(ioas, 0xfee00000n, va, PG)).toBe(0);
    const d = s.bind();
    expect(s.attach(d.fd, ioas)).toBe(-Errno.EADDRINUSE);
    expect(s.p.mm.pinned_vm).toBe(0);
    expect(d.dev.dev.iommu_group.domain).toBe(null);
    expect(s.destroy(ioas)).toBe(0);
  });

  test('an area over memory that is not mapped: the attach fails with -EFAULT and leaves nothing pinned', () => {
    const s = setup();
    const ioas = s.ioas_alloc();
    const va = anon(s.p, 2n * PG);
    expect(s.map(ioas, 0x100000n, va, 2n * PG)).toBe(0);
    expect(s.map(ioas, 0x200000n, 1n << 40n, PG)).toBe(0);
    const d = s.bind();
    expect(s.attach(d.fd, ioas)).toBe(-Errno.EFAULT);
    expect(s.p.mm.pinned_vm).toBe(0);
    expect(folio_maybe_dma_pinned(s.p.kernel.store, page_folio(s.p.kernel.store, pagemap_pfn(s.p.mm, va)!))).toBe(false);
    expect(d.dev.dev.iommu_group.domain).toBe(null);
  });

  test('with a device attached: maps pin at once (-EFAULT for unmapped memory), the MSI window is reserved, IOVAs align to 4 KiB', () => {
    const s = setup();
    const ioas = s.ioas_alloc();
    const d = s.bind();
    expect(s.attach(d.fd, ioas)).toBeGreaterThan(0);
    const va = anon(s.p, 2n * PG);
    expect(s.map(ioas, 0x100000n, va, 2n * PG)).toBe(0);
    expect(s.p.mm.pinned_vm).toBe(2);
    expect(s.map(ioas, 0x200000n, 1n << 40n, PG)).toBe(-1);
    expect(s.p.errno).toBe(Errno.EFAULT);
    expect(s.map(ioas, 0xfee00000n, va, PG)).toBe(-1);
    expect(s.p.errno).toBe(Errno.EINVAL);
    expect(s.map(ioas, 0x300000n, va + 1n, 10n)).toBe(-1);
    expect(s.p.errno).toBe(Errno.EINVAL);
    const ranges: unknown[] = [];
    const r = { size: IOMMU_IOAS_IOVA_RANGES_SIZE, ioas_id: ioas, num_iovas: 8, allowed_iovas: ranges, out_iova_alignment: 0n };
    expect(s.p.ioctl(s.ictx, IOMMU_IOAS_IOVA_RANGES, r)).toBe(0);
    expect(r.out_iova_alignment).toBe(PG);
    expect(ranges).toEqual([{ start: 0n, last: 0xfedfffffn }, { start: 0xfef00000n, last: (1n << 48n) - 1n }]);
    const un = { size: IOMMU_IOAS_UNMAP_SIZE, ioas_id: ioas, iova: 0n, length: U64_MAX };
    expect(s.p.ioctl(s.ictx, IOMMU_IOAS_UNMAP, un)).toBe(0);
    expect(un.length).toBe(2n * PG);
    expect(s.p.mm.pinned_vm).toBe(0);
    expect(isDmaError(dma_read(d.dev.dev, 0x100000n, 1))).toBe(true);
  });

  test('re-attaching to another IOAS replaces: the device translates through it, the old automatic HWPT goes', () => {
    const s = setup();
    const a = s.ioas_alloc();
    const b = s.ioas_alloc();
    const va = anon(s.p, 2n * PG);
    expect(s.map(a, 0x100000n, va, PG)).toBe(0);
    expect(s.map(b, 0x100000n, va + PG, PG)).toBe(0);
    s.p.store(va, new Uint8Array([0xa]));
    s.p.store(va + PG, new Uint8Array([0xb]));
    const d = s.bind();
    const ha = s.attach(d.fd, a);
    expect(dma_read(d.dev.dev, 0x100000n, 1)).toEqual(new Uint8Array([0xa]));
    const hb = s.attach(d.fd, b);
    expect(hb).not.toBe(ha);
    expect(dma_read(d.dev.dev, 0x100000n, 1)).toEqual(new Uint8Array([0xb]));
    expect(s.destroy(ha)).toBe(-Errno.ENOENT);
    expect(s.destroy(a)).toBe(0);
    expect(s.p.mm.pinned_vm).toBe(1);
    /* the same IOAS again: nothing to do */
    expect(s.attach(d.fd, b)).toBe(hb);
  });
});

describe('IOMMU_IOAS_MAP_FILE with a device attached', () => {
  test('a memfd is pinned page by page (allocating what the file lacks); past EOF or another file type -EINVAL', () => {
    const s = setup();
    const ioas = s.ioas_alloc();
    const d = s.bind();
    expect(s.attach(d.fd, ioas)).toBeGreaterThan(0);
    const memfd = s.p.memfd_create('guest', 0);
    expect(s.p.ftruncate(memfd, 8n * PG)).toBe(0);
    expect(s.p.pwrite(memfd, new Uint8Array([1, 2, 3]), 4096)).toBe(3);
    const mapf = (fd: number, start: bigint, len: bigint, iova: bigint): number =>
      s.p.ioctl(s.ictx, IOMMU_IOAS_MAP_FILE, { size: IOMMU_IOAS_MAP_FILE_SIZE, flags: FIXED, ioas_id: ioas, fd, start, length: len, iova });
    expect(mapf(memfd, PG, 4n * PG, 0x100000n)).toBe(0);
    expect(s.p.mm.pinned_vm).toBe(4);
    expect(dma_read(d.dev.dev, 0x100000n, 3)).toEqual(new Uint8Array([1, 2, 3]));
    expect(dma_write(d.dev.dev, 0x101000n, new Uint8Array([9]))).toBe(0);
    const back = new Uint8Array(1);
    expect(s.p.pread(memfd, back, 8192)).toBe(1);
    expect(back).toEqual(new Uint8Array([9]));
    expect(mapf(memfd, 6n * PG, 4n * PG, 0x200000n)).toBe(-1);
    expect(s.p.errno).toBe(Errno.EINVAL);
    const zero = s.p.open('/dev/zero', O_RDWR);
    expect(mapf(zero, 0n, PG, 0x300000n)).toBe(-1);
    expect(s.p.errno).toBe(Errno.EINVAL);
    expect(s.p.mm.pinned_vm).toBe(4);
  });
});

describe('IOMMU_OPTION_HUGE_PAGES', () => {
  test('a THP maps as one 2 MiB IOPTE, or as 512 4 KiB ones with huge pages off; off is -EINVAL once a domain has mappings', () => {
    const s = setup();
    const va = s.p.mmap(0, 2n * SZ_2M, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    const thp = (va + SZ_2M - 1n) & ~(SZ_2M - 1n);
    expect(s.p.madvise(thp, SZ_2M, MADV_HUGEPAGE)).toBe(0);
    s.p.store(thp, new Uint8Array([1]));
    const big = s.ioas_alloc();
    const small = s.ioas_alloc();
    const off = (ioas: number): number => s.p.ioctl(s.ictx, IOMMU_OPTION, { size: IOMMU_OPTION_SIZE, option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_SET, object_id: ioas, val64: 0 });
    expect(off(small)).toBe(0);
    const d1 = s.bind();
    const d2 = s.bind();
    s.attach(d1.fd, big);
    s.attach(d2.fd, small);
    expect(s.map(big, SZ_2M, thp, SZ_2M)).toBe(0);
    expect(s.map(small, SZ_2M, thp, SZ_2M)).toBe(0);
    expect(iommu_domain_nr_leaves(d1.dev.dev.iommu_group.domain!)).toEqual({ '4k': 0, '2m': 1, '1g': 0 });
    expect(iommu_domain_nr_leaves(d2.dev.dev.iommu_group.domain!)).toEqual({ '4k': 512, '2m': 0, '1g': 0 });
    expect(off(big)).toBe(-1);
    expect(s.p.errno).toBe(Errno.EINVAL);
    /* one pin per page, whatever the number of domains */
    expect(s.p.mm.pinned_vm).toBe(1024);
  });
});
