import { describe, expect, test } from 'vitest';
import { Errno, createRootContainer } from '@cocosim/core';
import {
  Kernel,
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
import { vfio_container_iommu } from './container.js';
import { dma_read, dma_write, isDmaError } from './device_dma.js';
import {
  VFIO_API_VERSION,
  VFIO_GET_API_VERSION,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_SET_IOMMU,
  VFIO_SPAPR_TCE_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  VFIO_UNMAP_ALL,
  __VFIO_RESERVED_TYPE1_NESTING_IOMMU,
} from './uapi.js';
import { vfioRegistrar } from './vfio.js';
import { vfio_sim_device_add } from './vfio_main.js';

const PG = 4096;
const IOVA = 0x1000_0000n;

function proc(): Process {
  return new Process(createRootContainer({}, mmRegistrar({ nr_pages: 8192 }), vfioRegistrar()).resolve(Kernel));
}

function fail(p: Process, ret: number): number {
  expect(ret).toBe(-1);
  return p.errno;
}

describe('/dev/vfio/vfio', () => {
  test('VFIO_GET_API_VERSION is 0; other ioctls before VFIO_SET_IOMMU are -EINVAL, after it -ENOTTY', () => {
    const p = proc();
    const c = p.open('/dev/vfio/vfio', O_RDWR);
    expect(p.ioctl(c, VFIO_GET_API_VERSION)).toBe(VFIO_API_VERSION);
    expect(fail(p, p.ioctl(c, 0x3b99, 0))).toBe(Errno.EINVAL);
    expect(fail(p, p.ioctl(c, VFIO_IOMMU_UNMAP_DMA, { argsz: 24 }))).toBe(Errno.EINVAL);
    const dev = vfio_sim_device_add(p.kernel);
    const g = p.open(dev.group_path, O_RDWR);
    expect(p.ioctl(g, VFIO_GROUP_SET_CONTAINER, c)).toBe(0);
    expect(p.ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)).toBe(0);
    expect(fail(p, p.ioctl(c, 0x3b99, 0))).toBe(Errno.ENOTTY);
  });

  test('VFIO_SET_IOMMU: -EINVAL without a group; an unsupported type -ENODEV; VFIO_UNMAP_ALL passes the extension check but not open (-EINVAL); twice -EINVAL', () => {
    const p = proc();
    const c = p.open('/dev/vfio/vfio', O_RDWR);
    expect(fail(p, p.ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))).toBe(Errno.EINVAL);
    const dev = vfio_sim_device_add(p.kernel);
    const g = p.open(dev.group_path, O_RDWR);
    expect(p.ioctl(g, VFIO_GROUP_SET_CONTAINER, c)).toBe(0);
    expect(fail(p, p.ioctl(c, VFIO_SET_IOMMU, VFIO_SPAPR_TCE_IOMMU))).toBe(Errno.ENODEV);
    expect(fail(p, p.ioctl(c, VFIO_SET_IOMMU, __VFIO_RESERVED_TYPE1_NESTING_IOMMU))).toBe(Errno.ENODEV);
    expect(fail(p, p.ioctl(c, VFIO_SET_IOMMU, VFIO_UNMAP_ALL))).toBe(Errno.EINVAL);
    expect(vfio_container_iommu(p.task.files.lookup(c)!)).toBe(null);
    expect(p.ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)).toBe(0);
    expect(fail(p, p.ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))).toBe(Errno.EINVAL);
    /* the group's DMA now goes through the container's domain */
    expect(dev.dev.iommu_group.domain).not.toBe(null);
  });

  test('groups hold the container: its mappings outlive the container fd and go (unpinned) with the last group', () => {
    const p = proc();
    const store = p.kernel.store;
    const c = p.open('/dev/vfio/vfio', O_RDWR);
    const dev = vfio_sim_device_add(p.kernel);
    const g = p.open(dev.group_path, O_RDWR);
    expect(p.ioctl(g, VFIO_GROUP_SET_CONTAINER, c)).toBe(0);
    expect(p.ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)).toBe(0);
    const buf = p.mmap(0, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(p.ioctl(c, VFIO_IOMMU_MAP_DMA, { argsz: 32, flags: 3, vaddr: buf, iova: IOVA, size: 4 * PG })).toBe(0);
    const folio = page_folio(store, pagemap_pfn(p.mm, buf)!);
    expect(p.close(c)).toBe(0);
    expect(dma_write(dev.dev, IOVA, new Uint8Array([42]))).toBe(0);
    expect(p.load(buf, 1)).toEqual(new Uint8Array([42]));
    expect(folio_maybe_dma_pinned(store, folio)).toBe(true);
    expect(p.close(g)).toBe(0);
    expect(folio_maybe_dma_pinned(store, folio)).toBe(false);
    expect(p.mm.locked_vm).toBe(0);
    expect(dev.dev.iommu_group.domain).toBe(null);
    expect(isDmaError(dma_read(dev.dev, IOVA, 1))).toBe(true);
  });

  test('a second group joins the container\'s domain: both devices see the same mappings', () => {
    const p = proc();
    const c = p.open('/dev/vfio/vfio', O_RDWR);
    const d1 = vfio_sim_device_add(p.kernel);
    const d2 = vfio_sim_device_add(p.kernel);
    expect(p.ioctl(p.open(d1.group_path, O_RDWR), VFIO_GROUP_SET_CONTAINER, c)).toBe(0);
    expect(p.ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)).toBe(0);
    const buf = p.mmap(0, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(p.ioctl(c, VFIO_IOMMU_MAP_DMA, { argsz: 32, flags: 3, vaddr: buf, iova: IOVA, size: PG })).toBe(0);
    expect(p.ioctl(p.open(d2.group_path, O_RDWR), VFIO_GROUP_SET_CONTAINER, c)).toBe(0);
    expect(d2.dev.iommu_group.domain).toBe(d1.dev.iommu_group.domain);
    expect(dma_write(d1.dev, IOVA, new Uint8Array([9]))).toBe(0);
    expect(dma_read(d2.dev, IOVA, 1)).toEqual(new Uint8Array([9]));
  });
});
