import { describe, expect, test } from 'vitest';
import { Errno, createRootContainer } from '@cocosim/core';
import { Kernel, mmRegistrar } from './kernel.js';
import { Process } from './process.js';
import { O_CLOEXEC, O_RDWR } from './fs.js';

function kernel(): Kernel {
  return createRootContainer({}, mmRegistrar({ nr_pages: 4096 })).resolve(Kernel);
}

describe('process: fds as a C program sees them', () => {
  test('stdio is open, so the first file is fd 3, and fds are reused lowest first', () => {
    const p = new Process(kernel());
    expect(p.open('/dev/zero')).toBe(3);
    expect(p.open('/dev/null', O_RDWR | O_CLOEXEC)).toBe(4);
    expect(p.task.files.get_close_on_exec(4)).toBe(true);
    expect(p.close(3)).toBe(0);
    expect(p.open('/dev/zero')).toBe(3);
  });

  test('bad fds give EBADF and change nothing', () => {
    const p = new Process(kernel());
    for (const fd of [-1, 3, 1.5, Number.NaN, 2 ** 31, '0', null]) {
      p.errno = 0;
      expect(p.close(fd)).toBe(-1);
      expect(p.errno).toBe(Errno.EBADF);
    }
    expect(p.task.files.open_fds()).toEqual([0, 1, 2]);
  });

  test('a path that is not a device node is ENOENT', () => {
    const p = new Process(kernel());
    expect(p.open('/dev/nonexistent')).toBe(-1);
    expect(p.errno).toBe(Errno.ENOENT);
  });

  test('RLIMIT_NOFILE: EMFILE past 1024 fds', () => {
    const p = new Process(kernel());
    for (let i = 3; i < 1024; i++) expect(p.open('/dev/null')).toBe(i);
    expect(p.open('/dev/null')).toBe(-1);
    expect(p.errno).toBe(Errno.EMFILE);
  });

  test('each process has its own pid and fd table', () => {
    const k = kernel();
    const a = new Process(k);
    const b = new Process(k);
    expect(a.task.pid).not.toBe(b.task.pid);
    a.open('/dev/zero');
    expect(b.task.files.open_fds()).toEqual([0, 1, 2]);
  });
});

describe('ioctl(2): the generic part', () => {
  test('EBADF for a bad fd, ENOTTY for a file without ioctls, FIOCLEX/FIONCLEX on any file', () => {
    const p = new Process(kernel());
    expect(p.ioctl(99, 0x5451)).toBe(-1);
    expect(p.errno).toBe(Errno.EBADF);
    const fd = p.open('/dev/null');
    expect(p.ioctl(fd, 0xae00)).toBe(-1);
    expect(p.errno).toBe(Errno.ENOTTY);
    for (const cmd of [-1, 2 ** 32, 0.5, Number.NaN, 'KVM_CREATE_VM']) {
      expect(p.ioctl(fd, cmd)).toBe(-1);
      expect(p.errno).toBe(Errno.ENOTTY);
    }
    // cmd is an unsigned int: the kernel sees the low 32 bits of a wider value.
    expect(p.ioctl(fd, 2 ** 32 + 0x5451)).toBe(0);
    expect(p.task.files.get_close_on_exec(fd)).toBe(true);
    expect(p.ioctl(fd, 0x5451)).toBe(0);
    expect(p.task.files.get_close_on_exec(fd)).toBe(true);
    expect(p.ioctl(fd, 0x5450)).toBe(0);
    expect(p.task.files.get_close_on_exec(fd)).toBe(false);
  });
});
