import { describe, expect, test } from 'vitest';
import { Errno, createRootContainer } from '@cocosim/core';
import { Kernel, MAP_ANONYMOUS, MAP_PRIVATE, O_RDWR, PROT_READ, PROT_WRITE, Process, mmRegistrar } from '@cocosim/mm';
import { vfio_container_iommu } from './container.js';
import {
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_GROUP_FLAGS_CONTAINER_SET,
  VFIO_GROUP_FLAGS_VIABLE,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_GROUP_UNSET_CONTAINER,
  VFIO_IOMMU_MAP_DMA,
  VFIO_SET_IOMMU,
  VFIO_TYPE1v2_IOMMU,
} from './uapi.js';
import { vfioRegistrar } from './vfio.js';
import { vfio_sim_device_add } from './vfio_main.js';

function proc(): Process {
  return new Process(createRootContainer({}, mmRegistrar({ nr_pages: 4096 }), vfioRegistrar()).resolve(Kernel));
}

function fail(p: Process, ret: number): number {
  expect(ret).toBe(-1);
  return p.errno;
}

describe('/dev/vfio/<group>', () => {
  test('one open file per group: a second open is -EBUSY until the first is closed; unknown ioctls -ENOTTY', () => {
    const p = proc();
    const dev = vfio_sim_device_add(p.kernel);
    expect(dev.group_path).toBe('/dev/vfio/0');
    const g = p.open(dev.group_path, O_RDWR);
    expect(g).toBeGreaterThanOrEqual(0);
    expect(fail(p, p.open(dev.group_path, O_RDWR))).toBe(Errno.EBUSY);
    expect(fail(p, p.ioctl(g, VFIO_GROUP_GET_DEVICE_FD, dev.dev.name))).toBe(Errno.ENOTTY);
    expect(p.close(g)).toBe(0);
    expect(p.open(dev.group_path, O_RDWR)).toBeGreaterThanOrEqual(0);
    expect(fail(p, p.open('/dev/vfio/7', O_RDWR))).toBe(Errno.ENOENT);
  });

  test('VFIO_GROUP_GET_STATUS: -EFAULT, argsz < 8 -EINVAL; VIABLE, then VIABLE | CONTAINER_SET', () => {
    const p = proc();
    const dev = vfio_sim_device_add(p.kernel);
    const g = p.open(dev.group_path, O_RDWR);
    expect(fail(p, p.ioctl(g, VFIO_GROUP_GET_STATUS, null))).toBe(Errno.EFAULT);
    expect(fail(p, p.ioctl(g, VFIO_GROUP_GET_STATUS, { argsz: 7 }))).toBe(Errno.EINVAL);
    const st = { argsz: 8, flags: 0 };
    expect(p.ioctl(g, VFIO_GROUP_GET_STATUS, st)).toBe(0);
    expect(st.flags).toBe(VFIO_GROUP_FLAGS_VIABLE);
    const c = p.open('/dev/vfio/vfio', O_RDWR);
    expect(p.ioctl(g, VFIO_GROUP_SET_CONTAINER, c)).toBe(0);
    expect(p.ioctl(g, VFIO_GROUP_GET_STATUS, st)).toBe(0);
    expect(st.flags).toBe(VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET);
  });

  test('VFIO_GROUP_SET_CONTAINER: -EFAULT, -EBADF, twice -EINVAL, a fd that is no container -EBADFD', () => {
    const p = proc();
    const dev = vfio_sim_device_add(p.kernel);
    const g = p.open(dev.group_path, O_RDWR);
    const memfd = p.memfd_create('x', 0);
    const c = p.open('/dev/vfio/vfio', O_RDWR);
    expect(fail(p, p.ioctl(g, VFIO_GROUP_SET_CONTAINER, { fd: c }))).toBe(Errno.EFAULT);
    expect(fail(p, p.ioctl(g, VFIO_GROUP_SET_CONTAINER, 99))).toBe(Errno.EBADF);
    expect(fail(p, p.ioctl(g, VFIO_GROUP_SET_CONTAINER, memfd))).toBe(Errno.EBADFD);
    expect(fail(p, p.ioctl(g, VFIO_GROUP_SET_CONTAINER, p.open('/dev/iommu', O_RDWR)))).toBe(Errno.EBADFD);
    expect(p.ioctl(g, VFIO_GROUP_SET_CONTAINER, c)).toBe(0);
    expect(fail(p, p.ioctl(g, VFIO_GROUP_SET_CONTAINER, c))).toBe(Errno.EINVAL);
  });

  test('VFIO_GROUP_UNSET_CONTAINER: -EINVAL when in none; the last group leaving takes the IOMMU driver and its mappings', () => {
    const p = proc();
    const dev = vfio_sim_device_add(p.kernel);
    const g = p.open(dev.group_path, O_RDWR);
    expect(fail(p, p.ioctl(g, VFIO_GROUP_UNSET_CONTAINER))).toBe(Errno.EINVAL);
    const c = p.open('/dev/vfio/vfio', O_RDWR);
    expect(p.ioctl(g, VFIO_GROUP_SET_CONTAINER, c)).toBe(0);
    expect(p.ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)).toBe(0);
    const buf = p.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(p.ioctl(c, VFIO_IOMMU_MAP_DMA, { argsz: 32, flags: 3, vaddr: buf, iova: 0x100000, size: 4096 })).toBe(0);
    expect(p.mm.locked_vm).toBe(1);
    expect(p.ioctl(g, VFIO_GROUP_UNSET_CONTAINER)).toBe(0);
    expect(vfio_container_iommu(p.task.files.lookup(c)!)).toBe(null);
    expect(p.mm.locked_vm).toBe(0);
    expect(fail(p, p.ioctl(c, VFIO_IOMMU_MAP_DMA, { argsz: 32, flags: 3, vaddr: buf, iova: 0x100000, size: 4096 }))).toBe(Errno.EINVAL);
    /* the group can join again and the container be set up anew */
    expect(p.ioctl(g, VFIO_GROUP_SET_CONTAINER, c)).toBe(0);
    expect(p.ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)).toBe(0);
  });

  test('the group file and the device cdev exclude each other: -EBUSY both ways', () => {
    const p = proc();
    const dev = vfio_sim_device_add(p.kernel);
    const g = p.open(dev.group_path, O_RDWR);
    const ictx = p.open('/dev/iommu', O_RDWR);
    const cdev = p.open(dev.cdev_path, O_RDWR);
    expect(fail(p, p.ioctl(cdev, VFIO_DEVICE_BIND_IOMMUFD, { argsz: 16, flags: 0, iommufd: ictx }))).toBe(Errno.EBUSY);
    expect(p.close(g)).toBe(0);
    expect(p.ioctl(cdev, VFIO_DEVICE_BIND_IOMMUFD, { argsz: 16, flags: 0, iommufd: ictx })).toBe(0);
    expect(fail(p, p.open(dev.group_path, O_RDWR))).toBe(Errno.EBUSY);
    expect(p.close(cdev)).toBe(0);
    expect(p.open(dev.group_path, O_RDWR)).toBeGreaterThanOrEqual(0);
  });
});
