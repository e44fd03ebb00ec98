/** ftruncate(2), fallocate(2) and fchmod(2) validation, as Linux 6.18 answered on the oracle machine. */
import { describe, expect, test } from 'vitest';
import { createRootContainer, Errno } from '@cocosim/core';
import { Kernel, mmRegistrar } from './kernel.js';
import { Process } from './process.js';
import { O_RDONLY, O_RDWR, O_TRUNC } from './fs.js';
import { MFD_ALLOW_SEALING } from './uapi/memfd.js';
import { MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_READ, PROT_WRITE } from './mman.js';
import {
  FALLOC_FL_COLLAPSE_RANGE,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_NO_HIDE_STALE,
  FALLOC_FL_PUNCH_HOLE,
  FALLOC_FL_UNSHARE_RANGE,
  FALLOC_FL_WRITE_ZEROES,
  FALLOC_FL_ZERO_RANGE,
} from './uapi/falloc.js';
import { F_ADD_SEALS, F_GETFL, F_SEAL_SHRINK } from './uapi/fcntl.js';
import { proc_fd_reopen } from './open.js';
import type { Stat } from './stat.js';

function proc(): Process {
  return new Process(createRootContainer({}, mmRegistrar({ nr_pages: 8192 })).resolve(Kernel));
}

function expectErr(p: Process, ret: number, errno: number): void {
  expect(ret).toBe(-1);
  expect(p.errno).toBe(errno);
}

function reopen(p: Process, fd: number, flags: number): number {
  const f = proc_fd_reopen(p.task, fd, flags);
  return typeof f === 'number' ? f : p.task.files.install(f, false);
}

function size(p: Process, fd: number): bigint {
  const st = {} as Stat;
  expect(p.fstat(fd, st)).toBe(0);
  return st.st_size;
}

describe('ftruncate', () => {
  test('a negative length is -EINVAL even on a bad fd; a bad fd -EBADF', () => {
    const p = proc();
    const fd = p.memfd_create('t', 0);
    expectErr(p, p.ftruncate(fd, -1), Errno.EINVAL);
    expectErr(p, p.ftruncate(1000, -1), Errno.EINVAL);
    expectErr(p, p.ftruncate(1000, 5), Errno.EBADF);
    for (const bad of [1.5, Number.NaN, '5', 2n ** 64n, 2n ** 63n]) expectErr(p, p.ftruncate(fd, bad), Errno.EINVAL);
    expect(size(p, fd)).toBe(0n);
  });

  test('an fd not open for writing is -EINVAL, not -EBADF; a character device -EINVAL', () => {
    const p = proc();
    const fd = p.memfd_create('t', 0);
    const ro = reopen(p, fd, O_RDONLY);
    expectErr(p, p.ftruncate(ro, 4096), Errno.EINVAL);
    const dn = p.open('/dev/null', O_RDWR);
    expectErr(p, p.ftruncate(dn, 0), Errno.EINVAL);
  });

  test('a write-only reopen may truncate; a bigint length up to 2^63 - 1 is accepted', () => {
    const p = proc();
    const fd = p.memfd_create('t', 0);
    const wo = reopen(p, fd, 1);
    expect(p.fcntl(wo, F_GETFL)).toBe(0o100001);
    expect(p.ftruncate(wo, 2n ** 63n - 1n)).toBe(0);
    expect(size(p, fd)).toBe(2n ** 63n - 1n);
  });

  test('open(O_TRUNC) of /proc/self/fd/N truncates, and F_SEAL_SHRINK makes the open fail', () => {
    const p = proc();
    const fd = p.memfd_create('t', MFD_ALLOW_SEALING);
    expect(p.ftruncate(fd, 8192)).toBe(0);
    const t = reopen(p, fd, O_RDWR | O_TRUNC);
    expect(t).toBeGreaterThan(fd);
    expect(size(p, fd)).toBe(0n);
    expect(p.ftruncate(fd, 8192)).toBe(0);
    expect(p.fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK)).toBe(0);
    expect(proc_fd_reopen(p.task, fd, O_RDWR | O_TRUNC)).toBe(-Errno.EPERM);
    expect(size(p, fd)).toBe(8192n);
  });
});

describe('fallocate: vfs_fallocate() order', () => {
  test('-EBADF first, then offset/len -EINVAL, then mode -EOPNOTSUPP, then not writable -EBADF', () => {
    const p = proc();
    const fd = p.memfd_create('t', 0);
    expectErr(p, p.fallocate(1000, 0x100, -1, 0), Errno.EBADF);
    expectErr(p, p.fallocate(fd, 0, -1, 4096), Errno.EINVAL);
    expectErr(p, p.fallocate(fd, 0, 0, 0), Errno.EINVAL);
    expectErr(p, p.fallocate(fd, 0x100, 0, 0), Errno.EINVAL);
    expectErr(p, p.fallocate(fd, 0x100, 0, 4096), Errno.EOPNOTSUPP);
    const ro = reopen(p, fd, O_RDONLY);
    expectErr(p, p.fallocate(ro, 0, 0, 4096), Errno.EBADF);
    expectErr(p, p.fallocate(ro, 0x100, 0, 4096), Errno.EOPNOTSUPP);
  });

  test('modes: PUNCH_HOLE needs KEEP_SIZE; shmem supports only KEEP_SIZE and PUNCH_HOLE', () => {
    const p = proc();
    const fd = p.memfd_create('t', 0);
    for (const mode of [
      FALLOC_FL_PUNCH_HOLE,
      FALLOC_FL_ZERO_RANGE,
      FALLOC_FL_COLLAPSE_RANGE,
      FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_KEEP_SIZE,
      FALLOC_FL_NO_HIDE_STALE,
      FALLOC_FL_WRITE_ZEROES,
      FALLOC_FL_UNSHARE_RANGE,
      FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
      1.5,
    ]) {
      expectErr(p, p.fallocate(fd, mode, 0, 4096), Errno.EOPNOTSUPP);
    }
  });

  test('offset + len past 2^63 - 1 is -EFBIG; up to it is fine', () => {
    const p = proc();
    const fd = p.memfd_create('t', 0);
    expectErr(p, p.fallocate(fd, 0, 0x7fffffffffffffffn, 4096), Errno.EFBIG);
    expectErr(p, p.fallocate(fd, 0, 0x7fffffffffff0000n, 0x10000), Errno.EFBIG);
    expectErr(p, p.fallocate(fd, 0, 0x7ffffffffffff000n, 0x1000), Errno.EFBIG);
    expect(p.fallocate(fd, 0, 0x7fffffffffffe000n, 0x1000)).toBe(0);
    expect(size(p, fd)).toBe(9223372036854771712n);
    expect(p.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0x7fffffffffffe000n, 0x1000)).toBe(0);
  });

  test('a character device is -ENODEV', () => {
    const p = proc();
    expectErr(p, p.fallocate(p.open('/dev/null', O_RDWR), 0, 0, 4096), Errno.ENODEV);
  });
});

describe('fchmod', () => {
  test('changes the permission bits only; -EBADF for a bad fd', () => {
    const p = proc();
    const fd = p.memfd_create('t', 0);
    expect(p.fchmod(fd, 0o10644)).toBe(0);
    const st = {} as Stat;
    p.fstat(fd, st);
    expect(st.st_mode).toBe(0o100644);
    expectErr(p, p.fchmod(99, 0o644), Errno.EBADF);
  });
});

describe('open(2) of a NULL path (getname(): strncpy_from_user() at address 0)', () => {
  test('EFAULT with nothing at 0; else the string there: ENOENT when empty, ENAMETOOLONG without a NUL in PATH_MAX', () => {
    const p = proc();
    expectErr(p, p.open(null, O_RDWR), Errno.EFAULT);
    expect(p.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0)).toBe(0n);
    expectErr(p, p.open(null, O_RDWR), Errno.ENOENT);
    expect(p.store(0, new TextEncoder().encode('/dev/null\0'))).toBe(0);
    expect(p.open(null, O_RDWR)).toBe(3);
    expect(p.store(0, new Uint8Array(4096).fill(0x61))).toBe(0);
    expectErr(p, p.open(null, O_RDWR), Errno.ENAMETOOLONG);
  });
});
