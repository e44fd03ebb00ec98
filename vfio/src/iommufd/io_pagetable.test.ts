import { describe, expect, test } from 'vitest';
import { Errno, createRootContainer } from '@cocosim/core';
import { Kernel, MAP_ANONYMOUS, MAP_PRIVATE, O_RDWR, PROT_READ, PROT_WRITE, Process, mmRegistrar } from '@cocosim/mm';
import {
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_ALLOC_SIZE,
  IOMMU_IOAS_ALLOW_IOVAS,
  IOMMU_IOAS_ALLOW_IOVAS_SIZE,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_SIZE,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_DEVICE_BIND_IOMMUFD,
} from '../uapi.js';
import { vfioRegistrar } from '../vfio.js';
import { vfio_sim_device_add } from '../vfio_main.js';

const PG = 4096n;
const MSI_START = 0xfee00000n;
const MSI_LAST = 0xfeefffffn;

function setup(): { p: Process; ictx: number; ioas: number; va: bigint; attach: () => number; allow: (r: { start: bigint; last: bigint }[]) => number; map: (len: bigint, va?: bigint) => bigint | number } {
  const p = new Process(createRootContainer({}, mmRegistrar({ nr_pages: 8192 }), vfioRegistrar()).resolve(Kernel));
  const ictx = p.open('/dev/iommu', O_RDWR);
  const a = { size: IOMMU_IOAS_ALLOC_SIZE, flags: 0, out_ioas_id: 0 };
  expect(p.ioctl(ictx, IOMMU_IOAS_ALLOC, a)).toBe(0);
  const va = p.mmap(0, 64n * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  for (let i = 0n; i < 64n; i++) p.store(va + i * PG, new Uint8Array([1]));
  return {
    p,
    ictx,
    ioas: a.out_ioas_id,
    va,
    attach: () => {
      const dev = vfio_sim_device_add(p.kernel);
      const fd = p.open(dev.cdev_path, O_RDWR);
      expect(p.ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, { argsz: 16, iommufd: ictx })).toBe(0);
      return p.ioctl(fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, { argsz: 12, pt_id: a.out_ioas_id }) === 0 ? 0 : -p.errno;
    },
    allow: (r) => (p.ioctl(ictx, IOMMU_IOAS_ALLOW_IOVAS, { size: IOMMU_IOAS_ALLOW_IOVAS_SIZE, ioas_id: a.out_ioas_id, num_iovas: r.length, allowed_iovas: r }) === 0 ? 0 : -p.errno),
    map: (len, at = va) => {
      const cmd = { size: IOMMU_IOAS_MAP_SIZE, flags: IOMMU_IOAS_MAP_READABLE, ioas_id: a.out_ioas_id, user_va: at, length: len, iova: 0n };
      return p.ioctl(ictx, IOMMU_IOAS_MAP, cmd) === 0 ? cmd.iova : -p.errno;
    },
  };
}

describe('iopt_alloc_iova()', () => {
  test('holes between reserved ranges and areas, first fit from the bottom of the allowed range', () => {
    const s = setup();
    expect(s.attach()).toBe(0);
    /* allowed: 4 pages below the MSI window and everything from its end on */
    expect(s.allow([{ start: MSI_START - 4n * PG, last: MSI_START - 1n }, { start: MSI_LAST + 1n, last: MSI_LAST + (1n << 24n) }])).toBe(0);
    expect(s.map(2n * PG)).toBe(MSI_START - 4n * PG);
    expect(s.map(2n * PG)).toBe(MSI_START - 2n * PG);
    /* no room left below: the next one lands after the window, aligned to its length */
    expect(s.map(4n * PG)).toBe(MSI_LAST + 1n);
    expect(s.map(PG)).toBe(MSI_LAST + 1n + 4n * PG);
    /* nothing fits */
    expect(s.map(1n << 25n, 1n << 40n)).toBe(-Errno.ENOSPC);
  });

  test('an allowed range on a reserved one is -EADDRINUSE, and so is a device whose reserved region falls in an allowed range', () => {
    const s = setup();
    expect(s.allow([{ start: MSI_START, last: MSI_START + PG }])).toBe(0);
    expect(s.attach()).toBe(-Errno.EADDRINUSE);
    expect(s.allow([])).toBe(0);
    expect(s.attach()).toBe(0);
    expect(s.allow([{ start: MSI_START - PG, last: MSI_START + PG }])).toBe(-Errno.EADDRINUSE);
  });

  test('with a domain the alignment is 4 KiB: a user address inside a page is -EINVAL', () => {
    const s = setup();
    expect(s.attach()).toBe(0);
    expect(s.map(PG, s.va + 8n)).toBe(-Errno.EINVAL);
    expect(s.map(100n)).toBe(-Errno.EINVAL);
  });
});
