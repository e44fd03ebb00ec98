/**
 * shmem through the system calls, checked against Linux 6.18 (the values in the comments are what
 * C programs printed on the oracle machine).
 */
import { describe, expect, test } from 'vitest';
import { createRootContainer, Errno, RingSink, Tracer, type Pfn, type PgOff } from '@cocosim/core';
import { Kernel, mmRegistrar } from './kernel.js';
import { Process } from './process.js';
import { MFD_ALLOW_SEALING } from './uapi/memfd.js';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE } from './uapi/falloc.js';
import { F_ADD_SEALS, F_SEAL_FUTURE_WRITE, F_SEAL_GROW, F_SEAL_SHRINK, F_SEAL_WRITE } from './uapi/fcntl.js';
import type { Stat } from './stat.js';
import { SHMEM_I, SGP_CACHE, SGP_NOALLOC, SGP_READ, shmem_get_folio, type FolioRef } from './shmem.js';
import { folio_ref_count, folio_unlock, folio_put } from './folio.js';
import { folio_test_dirty, folio_test_lru, folio_test_swapbacked, folio_test_uptodate } from './page-flags.js';

const PS = 4096;

function proc(nr_pages = 16384): Process {
  return new Process(createRootContainer({}, mmRegistrar({ nr_pages })).resolve(Kernel));
}

function fstat(p: Process, fd: number): Stat {
  const st = {} as Stat;
  expect(p.fstat(fd, st)).toBe(0);
  return st;
}

function bytes(n: number, v: number): Uint8Array {
  return new Uint8Array(n).fill(v);
}

describe('shmem: i_blocks accounting (Linux 6.18: 8 blocks per page allocated)', () => {
  test('fallocate, KEEP_SIZE beyond EOF, punch, pwrite, truncate', () => {
    const p = proc();
    const fd = p.memfd_create('t', MFD_ALLOW_SEALING);
    expect(fstat(p, fd)).toMatchObject({ st_size: 0n, st_blocks: 0n, st_blksize: 4096, st_mode: 0o100777, st_nlink: 0 });
    expect(p.fallocate(fd, 0, 0, 3 * PS + 1)).toBe(0);
    expect(fstat(p, fd)).toMatchObject({ st_size: 12289n, st_blocks: 32n });
    expect(p.fallocate(fd, FALLOC_FL_KEEP_SIZE, 8 * PS, PS)).toBe(0);
    expect(fstat(p, fd)).toMatchObject({ st_size: 12289n, st_blocks: 40n });
    expect(p.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, PS, PS)).toBe(0);
    expect(fstat(p, fd)).toMatchObject({ st_size: 12289n, st_blocks: 32n });
    expect(p.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100, 200)).toBe(0);
    expect(fstat(p, fd)).toMatchObject({ st_blocks: 32n });
    expect(p.pwrite(fd, new TextEncoder().encode('hello'), 20000)).toBe(5);
    expect(fstat(p, fd)).toMatchObject({ st_size: 20005n, st_blocks: 40n });
    expect(p.ftruncate(fd, 100)).toBe(0);
    expect(fstat(p, fd)).toMatchObject({ st_size: 100n, st_blocks: 8n });
    expect(p.ftruncate(fd, 1 << 20)).toBe(0);
    expect(fstat(p, fd)).toMatchObject({ st_size: 1048576n, st_blocks: 8n });
  });

  test('reading a hole returns zeros and allocates nothing', () => {
    const p = proc();
    const fd = p.memfd_create('t', 0);
    expect(p.ftruncate(fd, 1 << 20)).toBe(0);
    const buf = bytes(8192, 0x55);
    const free = p.kernel.page_alloc.nr_free_pages();
    expect(p.pread(fd, buf, PS)).toBe(8192);
    expect(buf.every((b) => b === 0)).toBe(true);
    expect(fstat(p, fd).st_blocks).toBe(0n);
    expect(p.kernel.page_alloc.nr_free_pages()).toBe(free);
    expect(p.pread(fd, buf, (1 << 20) - 4)).toBe(4);
    expect(p.pread(fd, buf, 1 << 20)).toBe(0);
  });

  test('fallocated pages read as zeros although their memory was never cleared', () => {
    const p = proc();
    const fd = p.memfd_create('t', 0);
    expect(p.fallocate(fd, 0, 0, PS)).toBe(0);
    const inode = p.task.files.lookup(fd)!.f_inode;
    const folio = inode.i_mapping.i_pages.xa_load(0)!;
    const store = p.kernel.store;
    expect(folio_test_uptodate(store, folio)).toBe(false);
    expect(p.kernel.phys.state(folio as Pfn)).toBe('never_written');
    const buf = bytes(16, 0x55);
    expect(p.pread(fd, buf, 0)).toBe(16);
    expect(buf.every((b) => b === 0)).toBe(true);
    expect(folio_test_swapbacked(store, folio) && folio_test_dirty(store, folio) && folio_test_lru(store, folio)).toBe(true);
    expect(folio_ref_count(store, folio)).toBe(1);
    /* a second fallocate clears the folio and makes it uptodate (SGP_FALLOC on a fallocated folio) */
    expect(p.fallocate(fd, 0, 0, PS)).toBe(0);
    expect(folio_test_uptodate(store, folio)).toBe(true);
    expect(p.kernel.phys.state(folio as Pfn)).toBe('zero');
  });

  test('a partial write into a new page zeroes the rest of the page', () => {
    const p = proc();
    const fd = p.memfd_create('t', 0);
    expect(p.pwrite(fd, bytes(10, 7), 100)).toBe(10);
    expect(fstat(p, fd).st_size).toBe(110n);
    expect(p.ftruncate(fd, PS)).toBe(0);
    const buf = bytes(PS, 0x55);
    expect(p.pread(fd, buf, 0)).toBe(PS);
    expect(buf.subarray(0, 100).every((b) => b === 0)).toBe(true);
    expect(buf.subarray(100, 110).every((b) => b === 7)).toBe(true);
    expect(buf.subarray(110).every((b) => b === 0)).toBe(true);
  });

  test('truncating into a page zeroes its tail, so growing again reads zeros there', () => {
    const p = proc();
    const fd = p.memfd_create('t', 0);
    expect(p.write(fd, bytes(PS, 9))).toBe(PS);
    expect(p.ftruncate(fd, 10)).toBe(0);
    expect(p.ftruncate(fd, PS)).toBe(0);
    const buf = new Uint8Array(PS);
    expect(p.pread(fd, buf, 0)).toBe(PS);
    expect(buf.subarray(0, 10).every((b) => b === 9)).toBe(true);
    expect(buf.subarray(10).every((b) => b === 0)).toBe(true);
  });

  test('punching part of a page zeroes only that part; punching whole pages frees them', () => {
    const p = proc();
    const fd = p.memfd_create('t', 0);
    expect(p.write(fd, bytes(3 * PS, 1))).toBe(3 * PS);
    const free = p.kernel.page_alloc.nr_free_pages();
    expect(p.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100, 2 * PS)).toBe(0);
    /* page 1 is wholly inside [100, 8292): freed; pages 0 and 2 are zeroed in part */
    expect(p.kernel.page_alloc.nr_free_pages()).toBe(free + 1);
    const buf = new Uint8Array(3 * PS);
    expect(p.pread(fd, buf, 0)).toBe(3 * PS);
    expect(buf.subarray(0, 100).every((b) => b === 1)).toBe(true);
    expect(buf.subarray(100, 2 * PS + 100).every((b) => b === 0)).toBe(true);
    expect(buf.subarray(2 * PS + 100).every((b) => b === 1)).toBe(true);
  });

  test('write advances the file position; read after lseek sees the data; O_APPEND is honoured by pwrite', () => {
    const p = proc();
    const fd = p.memfd_create('s', 0);
    expect(p.write(fd, new TextEncoder().encode('abc'))).toBe(3);
    expect(p.lseek(fd, 0, 1)).toBe(3n);
    const buf = new Uint8Array(10);
    expect(p.read(fd, buf)).toBe(0);
    expect(p.lseek(fd, 0, 0)).toBe(0n);
    expect(p.read(fd, buf)).toBe(3);
    expect(new TextDecoder().decode(buf.subarray(0, 3))).toBe('abc');
  });
});

describe('shmem seals (Linux 6.18)', () => {
  test('F_SEAL_GROW: a write crossing EOF is short; past EOF -EPERM; fallocate and ftruncate past EOF -EPERM', () => {
    const p = proc();
    const fd = p.memfd_create('t', MFD_ALLOW_SEALING);
    expect(p.ftruncate(fd, PS)).toBe(0);
    expect(p.fcntl(fd, F_ADD_SEALS, F_SEAL_GROW)).toBe(0);
    expect(p.pwrite(fd, bytes(8192, 1), 0)).toBe(4096);
    expect(p.pwrite(fd, bytes(5000, 1), 0)).toBe(4096);
    expect(p.pwrite(fd, bytes(100, 1), 4090)).toBe(6);
    expect(p.pwrite(fd, bytes(100, 1), 4096)).toBe(-1);
    expect(p.errno).toBe(Errno.EPERM);
    expect(p.pwrite(fd, bytes(100, 1), 8000)).toBe(-1);
    expect(p.pwrite(fd, new Uint8Array(0), 8000)).toBe(0);
    expect(p.fallocate(fd, 0, 0, 4096)).toBe(0);
    expect(p.fallocate(fd, 0, 0, 4097)).toBe(-1);
    expect(p.errno).toBe(Errno.EPERM);
    expect(p.fallocate(fd, FALLOC_FL_KEEP_SIZE, 4096, 4096)).toBe(-1);
    expect(p.ftruncate(fd, 4097)).toBe(-1);
    expect(p.ftruncate(fd, 4096)).toBe(0);
    expect(p.ftruncate(fd, 100)).toBe(0);
    expect(fstat(p, fd)).toMatchObject({ st_size: 100n, st_blocks: 8n });
  });

  test('F_SEAL_SHRINK: ftruncate smaller -EPERM, same or larger fine', () => {
    const p = proc();
    const fd = p.memfd_create('t', MFD_ALLOW_SEALING);
    expect(p.ftruncate(fd, 100)).toBe(0);
    expect(p.fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK)).toBe(0);
    expect(p.ftruncate(fd, 50)).toBe(-1);
    expect(p.errno).toBe(Errno.EPERM);
    expect(p.ftruncate(fd, 100)).toBe(0);
    expect(p.ftruncate(fd, 200)).toBe(0);
  });

  test('F_SEAL_WRITE / F_SEAL_FUTURE_WRITE: write and punch -EPERM; write of 0 bytes, allocation and resize allowed', () => {
    for (const seal of [F_SEAL_WRITE, F_SEAL_FUTURE_WRITE]) {
      const p = proc();
      const fd = p.memfd_create('w', MFD_ALLOW_SEALING);
      expect(p.ftruncate(fd, 8192)).toBe(0);
      expect(p.fcntl(fd, F_ADD_SEALS, seal)).toBe(0);
      expect(p.pwrite(fd, bytes(10, 1), 0)).toBe(-1);
      expect(p.errno).toBe(Errno.EPERM);
      expect(p.pwrite(fd, new Uint8Array(0), 0)).toBe(0);
      expect(p.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096)).toBe(-1);
      expect(p.errno).toBe(Errno.EPERM);
      expect(p.fallocate(fd, 0, 0, 16384)).toBe(0);
      expect(p.ftruncate(fd, 4096)).toBe(0);
    }
  });
});

describe('shmem tracepoints', () => {
  test('insertion is silent (shmem_add_to_page_cache()), removal emits mm_filemap_delete_from_page_cache per folio', () => {
    const container = createRootContainer({}, mmRegistrar({ nr_pages: 4096 }));
    const trace = new RingSink();
    container.resolve(Tracer).addSink(trace);
    const p = new Process(container.resolve(Kernel));
    const fd = p.memfd_create('t', 0);
    expect(p.fallocate(fd, 0, 0, 3 * PS)).toBe(0);
    expect(p.pwrite(fd, bytes(1, 1), 5 * PS)).toBe(1);
    expect(trace.find('mm_filemap_add_to_page_cache')).toEqual([]);
    const inode = p.task.files.lookup(fd)!.f_inode;
    const folio = inode.i_mapping.i_pages.xa_load(1)!;
    expect(p.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, PS, PS)).toBe(0);
    expect(trace.find('mm_filemap_delete_from_page_cache', { pfn: folio, index: 1 as PgOff, i_ino: inode.i_ino, order: 0 })).toHaveLength(1);
  });
});

describe('shmem_get_folio() sgp modes', () => {
  test('SGP_READ on a hole: no folio; SGP_NOALLOC: -ENOENT; SGP_CACHE: a cleared folio; past EOF -EINVAL', () => {
    const p = proc();
    const fd = p.memfd_create('g', 0);
    expect(p.ftruncate(fd, 2 * PS)).toBe(0);
    const inode = p.task.files.lookup(fd)!.f_inode;
    const ref: FolioRef = { folio: null };
    expect(shmem_get_folio(inode, 0, 0n, ref, SGP_READ)).toBe(0);
    expect(ref.folio).toBe(null);
    expect(shmem_get_folio(inode, 0, 0n, ref, SGP_NOALLOC)).toBe(-Errno.ENOENT);
    expect(shmem_get_folio(inode, 2, 0n, ref, SGP_CACHE)).toBe(-Errno.EINVAL);
    expect(shmem_get_folio(inode, 1, 0n, ref, SGP_CACHE)).toBe(0);
    const folio = ref.folio!;
    const store = p.kernel.store;
    expect(folio_test_uptodate(store, folio)).toBe(true);
    expect(p.kernel.phys.state(folio as Pfn)).toBe('zero');
    expect(SHMEM_I(inode).alloced).toBe(1);
    expect(inode.i_blocks).toBe(8n);
    folio_unlock(store, folio);
    folio_put(store, folio);
  });
});

describe('shmem: eviction', () => {
  test('closing the last fd frees every page', () => {
    const p = proc();
    const free = p.kernel.page_alloc.nr_free_pages();
    const fd = p.memfd_create('e', 0);
    expect(p.fallocate(fd, 0, 0, 64 * PS)).toBe(0);
    expect(p.kernel.page_alloc.nr_free_pages()).toBe(free - 64);
    expect(p.close(fd)).toBe(0);
    expect(p.kernel.page_alloc.nr_free_pages()).toBe(free);
  });

  test('fallocate past the end of memory fails with ENOMEM and leaves no page behind', () => {
    const p = proc(4096);
    const fd = p.memfd_create('big', 0);
    const free = p.kernel.page_alloc.nr_free_pages();
    expect(p.fallocate(fd, 0, 0, (free + 10) * PS)).toBe(-1);
    expect(p.errno).toBe(Errno.ENOMEM);
    expect(p.kernel.page_alloc.nr_free_pages()).toBe(free);
    expect(fstat(p, fd)).toMatchObject({ st_size: 0n, st_blocks: 0n });
  });
});
