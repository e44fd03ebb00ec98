/** read(2), write(2), pread(2), pwrite(2), lseek(2), as Linux 6.18 answered on the oracle machine. */
import { describe, expect, test } from 'vitest';
import { createRootContainer, Errno } from '@cocosim/core';
import { Kernel, mmRegistrar } from './kernel.js';
import { Process } from './process.js';
import { O_RDONLY, O_WRONLY } from './fs.js';
import { proc_fd_reopen } from './open.js';

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

describe('read and write', () => {
  test('pread/pwrite: a negative position is -EINVAL before the fd, even for 0 bytes', () => {
    const p = proc();
    const fd = p.memfd_create('t', 0);
    const buf = new Uint8Array(10);
    expectErr(p, p.pread(fd, buf, -1), Errno.EINVAL);
    expectErr(p, p.pwrite(fd, buf, -1), Errno.EINVAL);
    expectErr(p, p.pread(fd, new Uint8Array(0), -1), Errno.EINVAL);
    expectErr(p, p.pread(1000, buf, -1), Errno.EINVAL);
    expectErr(p, p.read(1000, buf), Errno.EBADF);
    expect(p.read(fd, new Uint8Array(0))).toBe(0);
  });

  test('at the top of the offset range: reads return 0, writes below 2^63 work', () => {
    const p = proc();
    const fd = p.memfd_create('t', 0);
    const buf = new Uint8Array(10);
    expect(p.pread(fd, buf, 0x7ffffffffffffff0n)).toBe(0);
    expect(p.pwrite(fd, buf, 0x7ffffffffffffff0n)).toBe(10);
    expect(p.pwrite(fd, buf, 0x7ffffffffffffffan)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.pwrite(fd, new Uint8Array(0), 0x7ffffffffffffff0n)).toBe(0);
  });

  test('access mode: reading a write-only fd and writing a read-only one are -EBADF', () => {
    const p = proc();
    const fd = p.memfd_create('t', 0);
    const ro = reopen(p, fd, O_RDONLY);
    const wo = reopen(p, fd, O_WRONLY);
    const buf = new Uint8Array(1);
    expectErr(p, p.write(ro, buf), Errno.EBADF);
    expectErr(p, p.pwrite(ro, buf, 0), Errno.EBADF);
    expectErr(p, p.read(wo, buf), Errno.EBADF);
    expectErr(p, p.pread(wo, buf, 0), Errno.EBADF);
  });

  test('a buffer that is not a Uint8Array is -EFAULT after the access-mode checks', () => {
    const p = proc();
    const fd = p.memfd_create('t', 0);
    const ro = reopen(p, fd, O_RDONLY);
    for (const bad of [null, 'abc', [1, 2], 7]) {
      expectErr(p, p.write(fd, bad), Errno.EFAULT);
      expectErr(p, p.read(fd, bad), Errno.EFAULT);
    }
    expectErr(p, p.write(ro, null), Errno.EBADF);
  });

  test('/dev/zero reads zeros, /dev/null reads end of file', () => {
    const p = proc();
    const z = p.open('/dev/zero');
    const buf = new Uint8Array(8).fill(3);
    expect(p.read(z, buf)).toBe(8);
    expect(buf.every((b) => b === 0)).toBe(true);
    expect(p.read(p.open('/dev/null'), buf)).toBe(0);
  });
});

describe('lseek', () => {
  test('SEEK_SET/CUR/END, SEEK_DATA/SEEK_HOLE on a sparse memfd, bad whence', () => {
    const p = proc();
    const fd = p.memfd_create('t', 0);
    expect(p.ftruncate(fd, 5 * 4096)).toBe(0);
    expect(p.pwrite(fd, new Uint8Array(4096).fill(1), 2 * 4096)).toBe(4096);
    expect(p.lseek(fd, 0, 2)).toBe(20480n);
    expect(p.lseek(fd, 0, 3)).toBe(8192n); /* SEEK_DATA */
    expect(p.lseek(fd, 8192, 4)).toBe(12288n); /* SEEK_HOLE */
    expect(p.lseek(fd, 100, 4)).toBe(100n);
    expect(p.lseek(fd, 12288, 3)).toBe(-1n);
    expect(p.errno).toBe(Errno.ENXIO);
    expect(p.lseek(fd, 0, 5)).toBe(-1n);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.lseek(fd, -1, 0)).toBe(-1n);
    expect(p.errno).toBe(Errno.EINVAL);
  });
});
