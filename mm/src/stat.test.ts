import { describe, expect, test } from 'vitest';
import { createRootContainer, Errno } from '@cocosim/core';
import { Kernel, mmRegistrar } from './kernel.js';
import { Process } from './process.js';
import type { Stat } from './stat.js';

function proc(): Process {
  return new Process(createRootContainer({}, mmRegistrar({ nr_pages: 4096 })).resolve(Kernel));
}

describe('fstat', () => {
  test('a memfd: S_IFREG|0777, nlink 0, blksize 4096 (Linux 6.18); a new memfd has a new inode number', () => {
    const p = proc();
    const a = {} as Stat;
    const b = {} as Stat;
    expect(p.fstat(p.memfd_create('a', 0), a)).toBe(0);
    expect(p.fstat(p.memfd_create('b', 0), b)).toBe(0);
    expect(a).toMatchObject({ st_mode: 0o100777, st_nlink: 0, st_size: 0n, st_blocks: 0n, st_blksize: 4096 });
    expect(b.st_ino).not.toBe(a.st_ino);
  });

  test('a character device: S_IFCHR|0666 with generic attributes', () => {
    const p = proc();
    const st = {} as Stat;
    expect(p.fstat(0, st)).toBe(0);
    expect(st).toMatchObject({ st_mode: 0o20666, st_nlink: 1, st_size: 0n, st_blocks: 0n, st_blksize: 4096 });
  });

  test('-EBADF for a bad fd, -EFAULT for a buffer that is not an object', () => {
    const p = proc();
    expect(p.fstat(42, {})).toBe(-1);
    expect(p.errno).toBe(Errno.EBADF);
    expect(p.fstat(0, null)).toBe(-1);
    expect(p.errno).toBe(Errno.EFAULT);
  });
});
