import { describe, expect, test } from 'vitest';
import { Errno, createRootContainer } from '@cocosim/core';
import { Kernel, O_RDWR, Process, mmRegistrar } from '@cocosim/mm';
import {
  IOMMU_DESTROY,
  IOMMU_DESTROY_SIZE,
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_ALLOC_SIZE,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_DEVICE_ATTACH_PASID,
  VFIO_DEVICE_BIND_FLAG_TOKEN,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_DETACH_IOMMUFD_PT,
  VFIO_DEVICE_GET_INFO,
} from './uapi.js';
import { vfioRegistrar } from './vfio.js';
import { vfio_sim_device_add, type VfioDevice } from './vfio_main.js';

function setup(): { p: Process; dev: VfioDevice; ictx: number; ioas: number } {
  const p = new Process(createRootContainer({}, mmRegistrar({ nr_pages: 4096 }), vfioRegistrar()).resolve(Kernel));
  const dev = vfio_sim_device_add(p.kernel);
  const ictx = p.open('/dev/iommu', O_RDWR);
  const cmd = { size: IOMMU_IOAS_ALLOC_SIZE, flags: 0, out_ioas_id: 0 };
  expect(p.ioctl(ictx, IOMMU_IOAS_ALLOC, cmd)).toBe(0);
  return { p, dev, ictx, ioas: cmd.out_ioas_id };
}

function errno(p: Process, ret: number): number {
  expect(ret).toBe(-1);
  return p.errno;
}

describe('/dev/vfio/devices/vfioN', () => {
  test('before a bind every ioctl but VFIO_DEVICE_BIND_IOMMUFD is -EINVAL', () => {
    const { p, dev } = setup();
    expect(dev.cdev_path).toBe('/dev/vfio/devices/vfio0');
    const fd = p.open(dev.cdev_path, O_RDWR);
    expect(errno(p, p.ioctl(fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, { argsz: 12, pt_id: 1 }))).toBe(Errno.EINVAL);
    expect(errno(p, p.ioctl(fd, VFIO_DEVICE_GET_INFO, { argsz: 16 }))).toBe(Errno.EINVAL);
  });

  test('VFIO_DEVICE_BIND_IOMMUFD: validation order, then the device id in out_devid; -EINVAL for a second bind', () => {
    const { p, dev, ictx } = setup();
    const fd = p.open(dev.cdev_path, O_RDWR);
    const bind = (c: Record<string, unknown>): number => p.ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, { argsz: 16, flags: 0, iommufd: ictx, ...c });
    expect(errno(p, p.ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, 5))).toBe(Errno.EFAULT);
    expect(errno(p, bind({ argsz: 15 }))).toBe(Errno.EINVAL);
    expect(errno(p, bind({ argsz: 24, token_uuid_ptr: 0x1000 }))).toBe(Errno.E2BIG);
    expect(errno(p, bind({ iommufd: -1 }))).toBe(Errno.EINVAL);
    expect(errno(p, bind({ flags: 2 }))).toBe(Errno.EINVAL);
    expect(errno(p, bind({ flags: VFIO_DEVICE_BIND_FLAG_TOKEN }))).toBe(Errno.EINVAL);
    expect(errno(p, bind({ iommufd: 88 }))).toBe(Errno.EBADF);
    expect(errno(p, bind({ iommufd: p.memfd_create('x', 0) }))).toBe(Errno.EBADFD);
    const ok = { argsz: 24, flags: 0, iommufd: ictx, out_devid: 0, token_uuid_ptr: 0 };
    expect(p.ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, ok)).toBe(0);
    /* the IOAS took id 1 */
    expect(ok.out_devid).toBe(2);
    expect(errno(p, bind({}))).toBe(Errno.EINVAL);
    /* another file of the same device: the device is open already */
    const fd2 = p.open(dev.cdev_path, O_RDWR);
    expect(errno(p, p.ioctl(fd2, VFIO_DEVICE_BIND_IOMMUFD, { argsz: 16, iommufd: ictx }))).toBe(Errno.EINVAL);
    /* the device object is held by VFIO */
    expect(errno(p, p.ioctl(ictx, IOMMU_DESTROY, { size: IOMMU_DESTROY_SIZE, id: ok.out_devid }))).toBe(Errno.EBUSY);
  });

  test('ATTACH/DETACH: argsz and flags -EINVAL, PASID -EINVAL, no such object -ENOENT, a device id -EINVAL; detach twice is fine', () => {
    const { p, dev, ictx, ioas } = setup();
    const fd = p.open(dev.cdev_path, O_RDWR);
    const bind = { argsz: 16, flags: 0, iommufd: ictx, out_devid: 0 };
    expect(p.ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, bind)).toBe(0);
    const attach = (c: Record<string, unknown>): number => p.ioctl(fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, { argsz: 12, flags: 0, pt_id: ioas, ...c });
    expect(errno(p, attach({ argsz: 11 }))).toBe(Errno.EINVAL);
    expect(errno(p, attach({ flags: 2 }))).toBe(Errno.EINVAL);
    expect(errno(p, attach({ argsz: 16, flags: VFIO_DEVICE_ATTACH_PASID, pasid: 1 }))).toBe(Errno.EINVAL);
    expect(errno(p, attach({ pt_id: 50 }))).toBe(Errno.ENOENT);
    expect(errno(p, attach({ pt_id: bind.out_devid }))).toBe(Errno.EINVAL);
    const a = { argsz: 12, flags: 0, pt_id: ioas };
    expect(p.ioctl(fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, a)).toBe(0);
    expect(a.pt_id).toBe(3);
    expect(dev.dev.iommu_group.domain).not.toBe(null);
    const detach = (c: Record<string, unknown>): number => p.ioctl(fd, VFIO_DEVICE_DETACH_IOMMUFD_PT, { argsz: 8, flags: 0, ...c });
    expect(errno(p, detach({ argsz: 7 }))).toBe(Errno.EINVAL);
    expect(errno(p, detach({ flags: 2 }))).toBe(Errno.EINVAL);
    expect(detach({})).toBe(0);
    expect(dev.dev.iommu_group.domain).toBe(null);
    expect(detach({})).toBe(0);
  });

  test('closing a bound file unbinds (the device may bind again, the context may close)', () => {
    const { p, dev, ictx, ioas } = setup();
    const fd = p.open(dev.cdev_path, O_RDWR);
    expect(p.ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, { argsz: 16, flags: 0, iommufd: ictx })).toBe(0);
    expect(p.ioctl(fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, { argsz: 12, flags: 0, pt_id: ioas })).toBe(0);
    /* the iommufd stays open while the device holds it */
    const file = p.task.files.lookup(ictx)!;
    expect(p.close(ictx)).toBe(0);
    expect(file.f_count).toBe(1);
    expect(p.close(fd)).toBe(0);
    expect(file.f_count).toBe(0);
    expect(dev.dev.iommu_group.owner_cnt).toBe(0);
    const ictx2 = p.open('/dev/iommu', O_RDWR);
    const fd2 = p.open(dev.cdev_path, O_RDWR);
    expect(p.ioctl(fd2, VFIO_DEVICE_BIND_IOMMUFD, { argsz: 16, flags: 0, iommufd: ictx2 })).toBe(0);
  });
});
