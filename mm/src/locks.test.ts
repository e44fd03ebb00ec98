/** fs/locks.c through fcntl (locks.ts): owners, conflicts, merging and splitting, release. */
import { describe, expect, test } from 'vitest';
import { createRootContainer, Errno } from '@cocosim/core';
import { Kernel, mmRegistrar } from './kernel.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from './mman.js';
import { Process } from './process.js';
import { F_GETLK, F_OFD_GETLK, F_OFD_SETLK, F_RDLCK, F_SETLK, F_SETLKW, F_UNLCK, F_WRLCK } from './uapi/fcntl.js';

function proc(): Process {
  return new Process(createRootContainer({}, mmRegistrar({ nr_pages: 4096 })).resolve(Kernel));
}

/** struct flock at `buf` (x86-64 layout). */
function flock(p: Process, buf: bigint, type: number, start: number, len: number, whence = 0): void {
  const b = new Uint8Array(32);
  const v = new DataView(b.buffer);
  v.setInt16(0, type, true);
  v.setInt16(2, whence, true);
  v.setBigInt64(8, BigInt(start), true);
  v.setBigInt64(16, BigInt(len), true);
  expect(p.store(buf, b)).toBe(0);
}

/** What F_GETLK wrote back: [type, start, len, pid]. */
function readback(p: Process, buf: bigint): [number, number, number, number] {
  const b = p.load(buf, 32) as Uint8Array;
  const v = new DataView(b.buffer, b.byteOffset);
  return [v.getInt16(0, true), Number(v.getBigInt64(8, true)), Number(v.getBigInt64(16, true)), v.getInt32(24, true)];
}

function setup(): { p: Process; fd: number; buf: bigint } {
  const p = proc();
  const fd = p.memfd_create('l', 0);
  expect(p.ftruncate(fd, 4096)).toBe(0);
  const buf = p.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return { p, fd, buf };
}

describe('record locks', () => {
  test('a process\'s POSIX locks merge and split; its own never conflict; another process\'s do', () => {
    const { p, fd, buf } = setup();
    flock(p, buf, F_WRLCK, 0, 10);
    expect(p.fcntl(fd, F_SETLK, buf)).toBe(0);
    flock(p, buf, F_WRLCK, 10, 10);
    expect(p.fcntl(fd, F_SETLK, buf)).toBe(0);
    expect(p.task.files.lookup(fd)!.f_inode.i_flctx!.map((l) => [l.start, l.end])).toEqual([[0n, 19n]]);
    flock(p, buf, F_UNLCK, 5, 5);
    expect(p.fcntl(fd, F_SETLK, buf)).toBe(0);
    expect(p.task.files.lookup(fd)!.f_inode.i_flctx!.map((l) => [l.start, l.end])).toEqual([[0n, 4n], [10n, 19n]]);
    flock(p, buf, F_RDLCK, 0, 0);
    expect(p.fcntl(fd, F_GETLK, buf)).toBe(0);
    expect(readback(p, buf)[0]).toBe(F_UNLCK);
    const c = p.fork() as Process;
    flock(c, buf, F_RDLCK, 12, 1);
    expect(c.fcntl(fd, F_GETLK, buf)).toBe(0);
    expect(readback(c, buf)).toEqual([F_WRLCK, 10, 10, p.task.pid]);
    flock(c, buf, F_RDLCK, 12, 1);
    expect(c.fcntl(fd, F_SETLK, buf)).toBe(-1);
    expect(c.errno).toBe(Errno.EAGAIN);
    /* waiting could never end here: the simulator says EDEADLK */
    expect(c.fcntl(fd, F_SETLKW, buf)).toBe(-1);
    expect(c.errno).toBe(Errno.EDEADLK);
    flock(c, buf, F_RDLCK, 5, 5);
    expect(c.fcntl(fd, F_SETLK, buf)).toBe(0);
    /* the parent closing any fd of the inode drops its POSIX locks, not the child's */
    expect(p.close(fd)).toBe(0);
    expect(c.task.files.lookup(fd)!.f_inode.i_flctx!.map((l) => [l.start, l.end, l.pid])).toEqual([[5n, 9n, c.task.pid]]);
  });

  test('an OFD lock belongs to the open file: it conflicts with the process\'s POSIX locks and goes with the file', () => {
    const { p, fd, buf } = setup();
    flock(p, buf, F_WRLCK, 0, 100);
    expect(p.fcntl(fd, F_OFD_SETLK, buf)).toBe(0);
    flock(p, buf, F_RDLCK, 50, 1);
    expect(p.fcntl(fd, F_SETLK, buf)).toBe(-1);
    expect(p.errno).toBe(Errno.EAGAIN);
    expect(p.fcntl(fd, F_GETLK, buf)).toBe(0);
    expect(readback(p, buf)).toEqual([F_WRLCK, 0, 100, -1]);
    flock(p, buf, F_RDLCK, 50, 1);
    expect(p.fcntl(fd, F_OFD_GETLK, buf)).toBe(0);
    expect(readback(p, buf)[0]).toBe(F_UNLCK);
    const dup = p.fcntl(fd, 0, 10);
    expect(p.close(fd)).toBe(0);
    expect(p.task.files.lookup(dup)!.f_inode.i_flctx).not.toBeNull();
    const inode = p.task.files.lookup(dup)!.f_inode;
    expect(p.close(dup)).toBe(0);
    expect(inode.i_flctx).toBeNull();
  });

  test('F_OFD_GETLK with F_UNLCK reports the open file\'s own lock over the range (Linux 6.8+); F_GETLK with F_UNLCK is EINVAL', () => {
    const { p, fd, buf } = setup();
    flock(p, buf, F_WRLCK, 0, 100);
    expect(p.fcntl(fd, F_OFD_SETLK, buf)).toBe(0);
    flock(p, buf, F_UNLCK, 50, 10);
    expect(p.fcntl(fd, F_OFD_GETLK, buf)).toBe(0);
    expect(readback(p, buf)).toEqual([F_WRLCK, 0, 100, -1]);
    flock(p, buf, F_UNLCK, 200, 100);
    expect(p.fcntl(fd, F_OFD_GETLK, buf)).toBe(0);
    expect(readback(p, buf)[0]).toBe(F_UNLCK);
    /* the process's POSIX lock is not the open file's */
    flock(p, buf, F_RDLCK, 1000, 10);
    expect(p.fcntl(fd, F_SETLK, buf)).toBe(0);
    flock(p, buf, F_UNLCK, 1000, 10);
    expect(p.fcntl(fd, F_OFD_GETLK, buf)).toBe(0);
    expect(readback(p, buf)[0]).toBe(F_UNLCK);
    flock(p, buf, F_UNLCK, 50, 10);
    expect(p.fcntl(fd, F_GETLK, buf)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    expect(readback(p, buf)[0]).toBe(F_UNLCK);
  });

  test('bad requests change nothing: EINVAL, EOVERFLOW, EBADF', () => {
    const { p, fd, buf } = setup();
    flock(p, buf, F_WRLCK, 0, 0, 3);
    expect(p.fcntl(fd, F_SETLK, buf)).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    flock(p, buf, F_WRLCK, 10, 2 ** 62);
    expect(p.fcntl(fd, F_SETLK, buf)).toBe(0);
    flock(p, buf, F_WRLCK, 2 ** 62 + 2 ** 61, 2 ** 62);
    expect(p.fcntl(fd, F_SETLK, buf)).toBe(-1);
    expect(p.errno).toBe(Errno.EOVERFLOW);
    const ro = p.open('/dev/null', 0);
    flock(p, buf, F_WRLCK, 0, 0);
    expect(p.fcntl(ro, F_SETLK, buf)).toBe(-1);
    expect(p.errno).toBe(Errno.EBADF);
    expect(p.task.files.lookup(ro)!.f_inode.i_flctx).toBeNull();
  });
});
