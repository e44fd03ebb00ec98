import { describe, expect, test } from 'vitest';
import { createRootContainer } from '@cocosim/core';
import { Kernel, mmRegistrar } from './kernel.js';
import { Process } from './process.js';
import { MAP_FAILED, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from './mman.js';

function proc(): Process {
  return new Process(createRootContainer({}, mmRegistrar({ nr_pages: 8192 })).resolve(Kernel));
}

describe('/dev/null and /dev/zero (drivers/char/mem.c)', () => {
  test('lseek always lands at 0 (null_lseek), as the real kernel answers', () => {
    const p = proc();
    for (const path of ['/dev/null', '/dev/zero']) {
      const fd = p.open(path);
      expect(p.lseek(fd, 4096, 0)).toBe(0n);
      expect(p.lseek(fd, 100, 1)).toBe(0n);
    }
  });

  test('a private mapping of /dev/zero is anonymous memory; a shared one is shared anonymous memory', () => {
    const p = proc();
    const fd = p.open('/dev/zero');
    const priv = p.mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    const shared = p.mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    expect(priv).not.toBe(MAP_FAILED);
    expect(shared).not.toBe(MAP_FAILED);
    expect(p.load(priv + 4096n, 4)).toEqual(new Uint8Array(4));
    expect(p.store(priv, new Uint8Array([1, 2, 3]))).toBe(0);
    expect(p.store(shared + 4096n, new Uint8Array([9]))).toBe(0);
    expect(p.load(priv, 3)).toEqual(new Uint8Array([1, 2, 3]));
    expect(p.load(shared + 4096n, 1)).toEqual(new Uint8Array([9]));
    // The shared mapping holds its own shmem file, not /dev/zero: closing the fd changes nothing.
    expect(p.close(fd)).toBe(0);
    expect(p.load(shared + 4096n, 1)).toEqual(new Uint8Array([9]));
    expect(p.munmap(priv, 8192)).toBe(0);
    expect(p.munmap(shared, 8192)).toBe(0);
  });
});
