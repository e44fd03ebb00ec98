/** fcntl(2) commands other than the seals (memfd.test.ts has those). */
import { describe, expect, test } from 'vitest';
import { createRootContainer, Errno } from '@cocosim/core';
import { Kernel, mmRegistrar } from './kernel.js';
import { Process } from './process.js';
import { MFD_ALLOW_SEALING } from './uapi/memfd.js';
import { F_ADD_SEALS, F_DUPFD, F_DUPFD_CLOEXEC, F_DUPFD_QUERY, F_GETFD, F_GETFL, F_GET_SEALS, F_SEAL_WRITE, F_SETFD, FD_CLOEXEC } from './uapi/fcntl.js';

function proc(): Process {
  return new Process(createRootContainer({}, mmRegistrar({ nr_pages: 4096 })).resolve(Kernel));
}

describe('fcntl', () => {
  test('F_GETFD/F_SETFD keep only FD_CLOEXEC; unknown commands -EINVAL; bad fd -EBADF', () => {
    const p = proc();
    const fd = p.memfd_create('t', 0);
    expect(p.fcntl(fd, F_GETFD)).toBe(0);
    expect(p.fcntl(fd, F_SETFD, FD_CLOEXEC)).toBe(0);
    expect(p.fcntl(fd, F_GETFD)).toBe(1);
    expect(p.fcntl(fd, F_SETFD, 0xff)).toBe(0);
    expect(p.fcntl(fd, F_GETFD)).toBe(1);
    expect(p.fcntl(fd, 9999)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.fcntl(77, F_GETFD)).toBe(-1);
    expect(p.errno).toBe(Errno.EBADF);
    expect(p.fcntl(fd, F_GETFL)).toBe(0o100002);
    /* stdio is /dev/null as open(O_RDWR) leaves it: O_LARGEFILE too (the kernel oracle's --guard
     * stdio, Linux 6.18.44: F_GETFL of fd 0 is 32770) */
    for (const stdio of [0, 1, 2]) expect(p.fcntl(stdio, F_GETFL)).toBe(0o100002);
    /* one open file description on all three, as the oracle's dup2()ed /dev/null (F_DUPFD_QUERY 1) */
    expect(p.fcntl(0, F_DUPFD_QUERY, 1)).toBe(1);
    expect(p.fcntl(2, F_DUPFD_QUERY, 0)).toBe(1);
    expect(p.fcntl(fd, F_DUPFD_QUERY, 0)).toBe(0);
  });

  test('F_DUPFD shares the open file (and seals); F_DUPFD_CLOEXEC sets the flag; limits', () => {
    const p = proc();
    const fd = p.memfd_create('t', MFD_ALLOW_SEALING);
    const d = p.fcntl(fd, F_DUPFD, 0);
    expect(d).toBe(fd + 1);
    expect(p.fcntl(d, F_GETFD)).toBe(0);
    expect(p.fcntl(p.fcntl(fd, F_DUPFD_CLOEXEC, 0), F_GETFD)).toBe(1);
    expect(p.fcntl(fd, F_DUPFD, 100)).toBe(100);
    expect(p.fcntl(fd, F_DUPFD, 100000)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.fcntl(fd, F_DUPFD, -1)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(p.fcntl(d, F_ADD_SEALS, F_SEAL_WRITE)).toBe(0);
    expect(p.fcntl(fd, F_GET_SEALS)).toBe(F_SEAL_WRITE);
    /* closing one fd leaves the file open through the other */
    expect(p.close(fd)).toBe(0);
    expect(p.fcntl(d, F_GET_SEALS)).toBe(F_SEAL_WRITE);
  });
});
