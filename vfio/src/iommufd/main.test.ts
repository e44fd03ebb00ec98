import { describe, expect, test } from 'vitest';
import { Errno, createRootContainer } from '@cocosim/core';
import { Kernel, O_RDWR, Process, mmRegistrar } from '@cocosim/mm';
import {
  IOMMUFD_CMD_BASE,
  IOMMUFD_CMD_HWPT_ALLOC,
  IOMMUFD_TYPE,
  IOMMU_DESTROY,
  IOMMU_DESTROY_SIZE,
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_ALLOC_SIZE,
  IOMMU_IOAS_ALLOW_IOVAS,
  IOMMU_IOAS_ALLOW_IOVAS_SIZE,
  IOMMU_IOAS_COPY,
  IOMMU_IOAS_COPY_SIZE,
  IOMMU_IOAS_IOVA_RANGES,
  IOMMU_IOAS_IOVA_RANGES_SIZE,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_FILE,
  IOMMU_IOAS_MAP_FILE_SIZE,
  IOMMU_IOAS_MAP_SIZE,
  IOMMU_IOAS_UNMAP,
  IOMMU_IOAS_UNMAP_SIZE,
  IOMMU_OPTION,
  IOMMU_OPTION_HUGE_PAGES,
  IOMMU_OPTION_OP_GET,
  IOMMU_OPTION_OP_SET,
  IOMMU_OPTION_RLIMIT_MODE,
  IOMMU_OPTION_SIZE,
  VFIO_GET_API_VERSION,
} from '../uapi.js';
import { vfioRegistrar } from '../vfio.js';

function open(): { p: Process; fd: number } {
  const p = new Process(createRootContainer({}, mmRegistrar({ nr_pages: 4096 }), vfioRegistrar()).resolve(Kernel));
  const fd = p.open('/dev/iommu', O_RDWR);
  expect(fd).toBeGreaterThanOrEqual(0);
  return { p, fd };
}

function errno(p: Process, ret: number): number {
  expect(ret).toBe(-1);
  return p.errno;
}

function ioas_alloc(p: Process, fd: number): number {
  const cmd = { size: IOMMU_IOAS_ALLOC_SIZE, flags: 0, out_ioas_id: 0 };
  expect(p.ioctl(fd, IOMMU_IOAS_ALLOC, cmd)).toBe(0);
  return cmd.out_ioas_id;
}

describe('iommufd ioctl dispatch (selftest iommufd: cmd_fail, cmd_length, cmd_ex_fail)', () => {
  test('cmd_fail: an invalid object id -ENOENT, a bad pointer -EFAULT, an unknown ioctl -ENOTTY', () => {
    const { p, fd } = open();
    expect(errno(p, p.ioctl(fd, IOMMU_DESTROY, { size: IOMMU_DESTROY_SIZE, id: 0 }))).toBe(Errno.ENOENT);
    expect(errno(p, p.ioctl(fd, IOMMU_DESTROY, null))).toBe(Errno.EFAULT);
    expect(errno(p, p.ioctl(fd, (IOMMUFD_TYPE << 8) | (IOMMUFD_CMD_BASE - 1), { size: IOMMU_DESTROY_SIZE }))).toBe(Errno.ENOTTY);
    /* the VFIO compatibility ioctls of an iommufd are not modelled */
    expect(errno(p, p.ioctl(fd, VFIO_GET_API_VERSION))).toBe(Errno.ENOTTY);
    /* a command number with direction/size bits is not the command */
    expect(errno(p, p.ioctl(fd, IOMMU_DESTROY | 0x40000000, { size: IOMMU_DESTROY_SIZE, id: 0 }))).toBe(Errno.ENOTTY);
    /* commands outside IOAS management are not modelled */
    expect(errno(p, p.ioctl(fd, (IOMMUFD_TYPE << 8) | IOMMUFD_CMD_HWPT_ALLOC, { size: 40 }))).toBe(Errno.ENOTTY);
  });

  test('cmd_length: size below the struct -EINVAL, beyond it with non-zero trailing bytes -E2BIG, with zero ones as if exact', () => {
    const cases: [number, number][] = [
      [IOMMU_DESTROY, IOMMU_DESTROY_SIZE],
      [IOMMU_IOAS_ALLOC, IOMMU_IOAS_ALLOC_SIZE],
      [IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_IOVA_RANGES_SIZE],
      [IOMMU_IOAS_ALLOW_IOVAS, IOMMU_IOAS_ALLOW_IOVAS_SIZE],
      [IOMMU_IOAS_MAP, IOMMU_IOAS_MAP_SIZE],
      [IOMMU_IOAS_COPY, IOMMU_IOAS_COPY_SIZE],
      [IOMMU_IOAS_UNMAP, IOMMU_IOAS_UNMAP_SIZE],
      [IOMMU_OPTION, IOMMU_OPTION_SIZE],
      [IOMMU_IOAS_MAP_FILE, IOMMU_IOAS_MAP_FILE_SIZE],
    ];
    for (const [ioctl, size] of cases) {
      const { p, fd } = open();
      expect(errno(p, p.ioctl(fd, ioctl, { size: size - 1, extra: 0xff }))).toBe(Errno.EINVAL);
      expect(errno(p, p.ioctl(fd, ioctl, { size: size + 1, extra: 0xff }))).toBe(Errno.E2BIG);
      const rc = p.ioctl(fd, ioctl, { size });
      const old_errno = p.errno;
      const { p: p2, fd: fd2 } = open();
      const rc2 = p2.ioctl(fd2, ioctl, { size: size + 1, extra: 0 });
      expect([rc2, rc2 ? p2.errno : 0]).toEqual([rc, rc ? old_errno : 0]);
    }
  });

  test('cmd_ex_fail: a longer command with zero trailing bytes works, non-zero ones are -E2BIG, a short one -EINVAL', () => {
    const { p, fd } = open();
    expect(errno(p, p.ioctl(fd, IOMMU_DESTROY, { size: 16, id: 0 }))).toBe(Errno.ENOENT);
    expect(errno(p, p.ioctl(fd, IOMMU_DESTROY, { size: 16, id: 0, future: 1 }))).toBe(Errno.E2BIG);
    expect(errno(p, p.ioctl(fd, IOMMU_DESTROY, { size: 8, id: 0, future: 1 }))).toBe(Errno.ENOENT);
    expect(errno(p, p.ioctl(fd, IOMMU_DESTROY, { size: 7, id: 0 }))).toBe(Errno.EINVAL);
  });
});

describe('IOMMU_OPTION (selftest iommufd: global_options)', () => {
  test('RLIMIT_MODE get/set (0 or 1, else -EINVAL); HUGE_PAGES of object 0 -ENOENT; -EOPNOTSUPP for the rest', () => {
    const { p, fd } = open();
    const cmd = { size: IOMMU_OPTION_SIZE, option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_GET, object_id: 0, val64: 1n };
    expect(p.ioctl(fd, IOMMU_OPTION, cmd)).toBe(0);
    expect(cmd.val64).toBe(0n);
    cmd.op = IOMMU_OPTION_OP_SET;
    cmd.val64 = 1n;
    expect(p.ioctl(fd, IOMMU_OPTION, cmd)).toBe(0);
    cmd.val64 = 2n;
    expect(errno(p, p.ioctl(fd, IOMMU_OPTION, cmd))).toBe(Errno.EINVAL);
    cmd.op = IOMMU_OPTION_OP_GET;
    expect(p.ioctl(fd, IOMMU_OPTION, cmd)).toBe(0);
    expect(cmd.val64).toBe(1n);
    cmd.op = IOMMU_OPTION_OP_SET;
    cmd.val64 = 0n;
    expect(p.ioctl(fd, IOMMU_OPTION, cmd)).toBe(0);
    cmd.op = IOMMU_OPTION_OP_GET;
    cmd.option_id = IOMMU_OPTION_HUGE_PAGES;
    expect(errno(p, p.ioctl(fd, IOMMU_OPTION, cmd))).toBe(Errno.ENOENT);
    cmd.op = IOMMU_OPTION_OP_SET;
    expect(errno(p, p.ioctl(fd, IOMMU_OPTION, cmd))).toBe(Errno.ENOENT);
    expect(errno(p, p.ioctl(fd, IOMMU_OPTION, { ...cmd, option_id: 7 }))).toBe(Errno.EOPNOTSUPP);
    expect(errno(p, p.ioctl(fd, IOMMU_OPTION, { ...cmd, __reserved: 1 }))).toBe(Errno.EOPNOTSUPP);
    expect(errno(p, p.ioctl(fd, IOMMU_OPTION, { ...cmd, option_id: IOMMU_OPTION_RLIMIT_MODE, object_id: 1 }))).toBe(Errno.EOPNOTSUPP);
    expect(errno(p, p.ioctl(fd, IOMMU_OPTION, { ...cmd, option_id: IOMMU_OPTION_RLIMIT_MODE, op: 2 }))).toBe(Errno.EOPNOTSUPP);
    /* with objects the accounting mode is fixed */
    const ioas = ioas_alloc(p, fd);
    expect(errno(p, p.ioctl(fd, IOMMU_OPTION, { size: IOMMU_OPTION_SIZE, option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_SET, val64: 1n }))).toBe(Errno.EBUSY);
    const hp = { size: IOMMU_OPTION_SIZE, option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_GET, object_id: ioas, val64: 0n };
    expect(p.ioctl(fd, IOMMU_OPTION, hp)).toBe(0);
    expect(hp.val64).toBe(1n);
  });
});

describe('objects', () => {
  test('ids are the lowest free from 1; IOMMU_DESTROY frees one for reuse; a second destroy -ENOENT', () => {
    const { p, fd } = open();
    expect([ioas_alloc(p, fd), ioas_alloc(p, fd), ioas_alloc(p, fd)]).toEqual([1, 2, 3]);
    expect(p.ioctl(fd, IOMMU_DESTROY, { size: IOMMU_DESTROY_SIZE, id: 2 })).toBe(0);
    expect(errno(p, p.ioctl(fd, IOMMU_DESTROY, { size: IOMMU_DESTROY_SIZE, id: 2 }))).toBe(Errno.ENOENT);
    expect(ioas_alloc(p, fd)).toBe(2);
    expect(errno(p, p.ioctl(fd, IOMMU_IOAS_ALLOC, { size: IOMMU_IOAS_ALLOC_SIZE, flags: 1 }))).toBe(Errno.EOPNOTSUPP);
    expect(p.close(fd)).toBe(0);
  });
});
