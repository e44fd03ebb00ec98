/**
 * memfd_create(MFD_HUGETLB) files and the hugetlb pool, with what Linux 6.18 did on the oracle
 * machine (with nr_hugepages 0, then 4).
 */
import { describe, expect, test } from 'vitest';
import { createRootContainer, Errno, type Pfn } from '@cocosim/core';
import { Kernel, mmRegistrar } from './kernel.js';
import { Process } from './process.js';
import { MFD_ALLOW_SEALING, MFD_HUGETLB, MFD_HUGE_1GB } from './uapi/memfd.js';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE } from './uapi/falloc.js';
import { F_ADD_SEALS, F_GET_SEALS, F_SEAL_GROW, F_SEAL_WRITE } from './uapi/fcntl.js';
import type { Stat } from './stat.js';
import { hugetlb_pool, set_max_huge_pages } from './hugetlb.js';
import { folio_ref_count } from './folio.js';
import { folio_test_hugetlb } from './page-flags.js';
import { F_SEAL_EXEC } from './uapi/fcntl.js';
import { MFD_EXEC, MFD_NOEXEC_SEAL } from './uapi/memfd.js';
import { sys_mmap, sys_munmap } from './mmap.js';
import { MAP_NORESERVE, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from './mman.js';
import { task_mm } from './mm_types.js';
import { faultin_page_range } from './gup.js';
import { pmd_entry, pmd_index_of } from './pgtable.js';

const M = 1 << 20;

function proc(nr_pages = 2 ** 19): Process {
  return new Process(createRootContainer({}, mmRegistrar({ nr_pages })).resolve(Kernel));
}

function st(p: Process, fd: number): Stat {
  const s = {} as Stat;
  expect(p.fstat(fd, s)).toBe(0);
  return s;
}

function expectErr(p: Process, ret: number, errno: number): void {
  expect(ret).toBe(-1);
  expect(p.errno).toBe(errno);
}

describe('hugetlbfs memfd with an empty pool (nr_hugepages 0)', () => {
  test('sizes must be huge-page multiples; fallocate -ENOSPC; punch succeeds; read zeros; write -EINVAL', () => {
    const p = proc();
    const h = p.memfd_create('h', MFD_HUGETLB | MFD_ALLOW_SEALING);
    expect(st(p, h)).toMatchObject({ st_size: 0n, st_blocks: 0n, st_blksize: 2 * M, st_mode: 0o100777, st_nlink: 0 });
    expect(p.fcntl(h, F_GET_SEALS)).toBe(0);
    expectErr(p, p.ftruncate(h, 4096), Errno.EINVAL);
    expect(p.ftruncate(h, 2 * M)).toBe(0);
    expect(st(p, h)).toMatchObject({ st_size: BigInt(2 * M), st_blocks: 0n });
    expectErr(p, p.fallocate(h, 0, 0, 4096), Errno.ENOSPC);
    expectErr(p, p.fallocate(h, FALLOC_FL_KEEP_SIZE, 0, 2 * M), Errno.ENOSPC);
    expect(p.fallocate(h, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 2 * M)).toBe(0);
    expect(p.fallocate(h, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 4096)).toBe(0);
    expectErr(p, p.fallocate(h, FALLOC_FL_ZERO_RANGE, 0, 4096), Errno.EOPNOTSUPP);
    expectErr(p, p.fallocate(h, 0x100, 0, 4096), Errno.EOPNOTSUPP);
    expectErr(p, p.write(h, new Uint8Array(1)), Errno.EINVAL);
    expectErr(p, p.pwrite(h, new Uint8Array(1), 0), Errno.EINVAL);
    const buf = new Uint8Array(10).fill(9);
    expect(p.pread(h, buf, 0)).toBe(10);
    expect(buf.every((b) => b === 0)).toBe(true);
    expect(p.read(h, buf)).toBe(10);
    expect(p.lseek(h, 0, 1)).toBe(10n);
    expect(p.pread(h, new Uint8Array(8192), 2 * M - 4096)).toBe(4096);
    expect(p.fcntl(h, F_ADD_SEALS, F_SEAL_GROW)).toBe(0);
    expectErr(p, p.ftruncate(h, 4 * M), Errno.EPERM);
    expect(p.fcntl(h, F_ADD_SEALS, F_SEAL_WRITE)).toBe(0);
    expect(p.fcntl(h, F_GET_SEALS)).toBe(12);
  });

  test('MFD_HUGE_1GB: st_blksize 1 GiB, a 4 KiB size -EINVAL, fallocate -ENOSPC', () => {
    const p = proc();
    const g = p.memfd_create('g', MFD_HUGETLB | MFD_HUGE_1GB);
    expect(st(p, g).st_blksize).toBe(1024 * M);
    expectErr(p, p.ftruncate(g, 4096), Errno.EINVAL);
    expectErr(p, p.fallocate(g, 0, 0, 4096), Errno.ENOSPC);
  });
});

describe('hugetlbfs memfd with a pool of 4 huge pages', () => {
  test('fallocate rounds out to huge pages, sets i_size unrounded, counts 4096 blocks per page', () => {
    const p = proc();
    const h0 = hugetlb_pool(p.kernel).default_hstate;
    expect(set_max_huge_pages(p.kernel, h0, 4)).toBe(4);
    const h = p.memfd_create('h', MFD_HUGETLB);
    expect(p.fallocate(h, 0, 4096, 4096)).toBe(0);
    expect(st(p, h)).toMatchObject({ st_size: 8192n, st_blocks: 4096n });
    expect(h0.free_huge_pages).toBe(3);
    expect(p.fallocate(h, FALLOC_FL_KEEP_SIZE, 3 * M, 1)).toBe(0);
    expect(st(p, h)).toMatchObject({ st_size: 8192n, st_blocks: 8192n });
    expect(h0.free_huge_pages).toBe(2);
    /* the huge pages are zeroed and readable */
    const buf = new Uint8Array(10).fill(9);
    expect(p.pread(h, buf, 0)).toBe(10);
    expect(buf.every((b) => b === 0)).toBe(true);
    /* the cache holds one reference per base page */
    const folio = p.task.files.lookup(h)!.f_mapping.i_pages.xa_load(0)!;
    expect(folio_test_hugetlb(p.kernel.store, folio)).toBe(true);
    expect(folio_ref_count(p.kernel.store, folio)).toBe(512);
    expect(p.kernel.phys.state(folio as Pfn)).toBe('zero');
  });

  test('punching part of a huge page zeroes it; a whole one goes back to the pool', () => {
    const p = proc();
    const h0 = hugetlb_pool(p.kernel).default_hstate;
    set_max_huge_pages(p.kernel, h0, 4);
    const h = p.memfd_create('h', MFD_HUGETLB);
    expect(p.ftruncate(h, 4 * M)).toBe(0);
    expect(p.fallocate(h, 0, 0, 4 * M)).toBe(0);
    const folio = p.task.files.lookup(h)!.f_mapping.i_pages.xa_load(0)!;
    p.kernel.phys.fill(folio as Pfn, 7);
    p.kernel.phys.fill((folio + 1) as Pfn, 7);
    expect(p.fallocate(h, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 4096)).toBe(0);
    expect(st(p, h).st_blocks).toBe(8192n);
    const buf = new Uint8Array(8192);
    expect(p.pread(h, buf, 0)).toBe(8192);
    expect(buf[5]).toBe(7);
    expect(buf[4096]).toBe(0);
    expect(p.fallocate(h, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 2 * M)).toBe(0);
    expect(st(p, h).st_blocks).toBe(4096n);
    expect(h0.free_huge_pages).toBe(3);
    expect(p.ftruncate(h, 0)).toBe(0);
    expect(st(p, h)).toMatchObject({ st_size: 0n, st_blocks: 0n });
    expect(h0.free_huge_pages).toBe(4);
  });

  test('a fallocate larger than the pool fails with -ENOSPC but keeps the pages it got', () => {
    const p = proc();
    const h0 = hugetlb_pool(p.kernel).default_hstate;
    set_max_huge_pages(p.kernel, h0, 4);
    const h = p.memfd_create('h', MFD_HUGETLB);
    expect(p.ftruncate(h, 4 * M)).toBe(0);
    expectErr(p, p.fallocate(h, 0, 0, 100 * M), Errno.ENOSPC);
    expect(st(p, h)).toMatchObject({ st_size: BigInt(4 * M), st_blocks: 16384n });
    expect(h0.free_huge_pages).toBe(0);
    expect(p.fallocate(h, 0, 0, 4 * M)).toBe(0);
    expect(p.close(h)).toBe(0);
    expect(h0.free_huge_pages).toBe(4);
  });

  test('the pool comes from the buddy allocator at order 9 and goes back when shrunk', () => {
    const p = proc();
    const h0 = hugetlb_pool(p.kernel).default_hstate;
    const free = p.kernel.page_alloc.nr_free_pages();
    expect(set_max_huge_pages(p.kernel, h0, 3)).toBe(3);
    expect(p.kernel.page_alloc.nr_free_pages()).toBe(free - 3 * 512);
    expect(set_max_huge_pages(p.kernel, h0, 0)).toBe(0);
    expect(p.kernel.page_alloc.nr_free_pages()).toBe(free);
  });

  test('1 GiB pages come from folio_alloc_gigantic()', () => {
    const p = proc(2 ** 20);
    const g1 = hugetlb_pool(p.kernel).hstates[1];
    expect(set_max_huge_pages(p.kernel, g1, 1)).toBe(1);
    const g = p.memfd_create('g', MFD_HUGETLB | MFD_HUGE_1GB);
    expect(p.fallocate(g, 0, 0, 4096)).toBe(0);
    expect(st(p, g)).toMatchObject({ st_size: 4096n, st_blocks: 2097152n });
    expect(p.close(g)).toBe(0);
    expect(g1.free_huge_pages).toBe(1);
  });
});

describe('hugetlbfs quirks (Linux 6.18)', () => {
  test('F_SEAL_EXEC does not stop chmod on hugetlbfs (hugetlbfs_setattr() has no such check)', () => {
    const p = proc();
    const h = p.memfd_create('h', MFD_HUGETLB | MFD_ALLOW_SEALING | MFD_EXEC);
    expect(p.fcntl(h, F_ADD_SEALS, F_SEAL_EXEC)).toBe(0);
    expect(p.fcntl(h, F_GET_SEALS)).toBe(62);
    expect(p.fchmod(h, 0o644)).toBe(0);
    const n = p.memfd_create('n', MFD_HUGETLB | MFD_NOEXEC_SEAL);
    expect(st(p, n).st_mode).toBe(0o100666);
    expect(p.fchmod(n, 0o777)).toBe(0);
    expect(st(p, n).st_mode).toBe(0o100777);
  });
});

describe('hugetlbfs mappings', () => {
  function mmap(p: Process, len: number, prot: number, flags: number, fd: number, off = 0): bigint | number {
    return sys_mmap(p.task, task_mm(p.task), 0, len, prot, flags, fd, off);
  }

  test('a shared mapping reserves its pages: -ENOMEM with an empty pool unless MAP_NORESERVE; misaligned offset -EINVAL', () => {
    const p = proc();
    const h = p.memfd_create('h', MFD_HUGETLB);
    expect(p.ftruncate(h, 4 * M)).toBe(0);
    expect(mmap(p, 4 * M, PROT_READ | PROT_WRITE, MAP_SHARED, h)).toBe(-Errno.ENOMEM);
    expect(typeof mmap(p, 4 * M, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, h)).toBe('bigint');
    expect(mmap(p, 2 * M, PROT_READ | PROT_WRITE, MAP_SHARED, h, 4096)).toBe(-Errno.EINVAL);
  });

  test('reservations are consumed by fallocate and faults (HugePages_Rsvd), and a mapping past EOF grows i_size', () => {
    const p = proc();
    const h0 = hugetlb_pool(p.kernel).default_hstate;
    set_max_huge_pages(p.kernel, h0, 2);
    const h = p.memfd_create('h', MFD_HUGETLB);
    const addr = mmap(p, 4 * M, PROT_READ | PROT_WRITE, MAP_SHARED, h) as bigint;
    expect(typeof addr).toBe('bigint');
    expect(st(p, h).st_size).toBe(BigInt(4 * M));
    expect([h0.free_huge_pages, h0.resv_huge_pages]).toEqual([2, 2]);
    expect(p.fallocate(h, 0, 0, 2 * M)).toBe(0);
    expect([h0.free_huge_pages, h0.resv_huge_pages]).toEqual([1, 1]);
    const mm = task_mm(p.task);
    const vpn = Number(addr / 4096n) + 512;
    expect(faultin_page_range(mm, vpn, vpn + 1, true)).toBe(1);
    expect([h0.free_huge_pages, h0.resv_huge_pages]).toEqual([0, 0]);
    const e = pmd_entry(mm.pgd, pmd_index_of(vpn))!;
    const folio = p.task.files.lookup(h)!.f_mapping.i_pages.xa_load(512)!;
    expect(e.val).toBe(folio);
    expect(folio_ref_count(p.kernel.store, folio)).toBe(513);
    expect(sys_munmap(mm, addr, 4 * M)).toBe(0);
    expect(folio_ref_count(p.kernel.store, folio)).toBe(512);
    expect(p.close(h)).toBe(0);
    expect([h0.free_huge_pages, h0.resv_huge_pages]).toEqual([2, 0]);
  });

  test('a fault past EOF fails (SIGBUS); a private write copies the page', () => {
    const p = proc();
    const h0 = hugetlb_pool(p.kernel).default_hstate;
    set_max_huge_pages(p.kernel, h0, 4);
    const h = p.memfd_create('h', MFD_HUGETLB);
    expect(p.ftruncate(h, 2 * M)).toBe(0);
    expect(p.fallocate(h, 0, 0, 2 * M)).toBe(0);
    const cached = p.task.files.lookup(h)!.f_mapping.i_pages.xa_load(0)!;
    p.kernel.phys.fill(cached as Pfn, 5);
    const mm = task_mm(p.task);
    const shared = mmap(p, 4 * M, PROT_READ, MAP_SHARED | MAP_NORESERVE, h) as bigint;
    const svpn = Number(shared / 4096n);
    expect(faultin_page_range(mm, svpn + 512, svpn + 513, false)).toBeLessThan(0);
    expect(faultin_page_range(mm, svpn, svpn + 1, false)).toBe(1);
    const priv = mmap(p, 2 * M, PROT_READ | PROT_WRITE, MAP_PRIVATE, h) as bigint;
    const pvpn = Number(priv / 4096n);
    expect(faultin_page_range(mm, pvpn, pvpn + 1, true)).toBe(1);
    const copy = pmd_entry(mm.pgd, pmd_index_of(pvpn))!.val;
    expect(copy).not.toBe(cached);
    expect(p.kernel.phys.read(copy as Pfn, 0, 1)).toEqual(new Uint8Array([5]));
    expect(pmd_entry(mm.pgd, pmd_index_of(svpn))!.val).toBe(cached);
    expect(h0.free_huge_pages).toBe(2);
    expect(sys_munmap(mm, priv, 2 * M)).toBe(0);
    expect(h0.free_huge_pages).toBe(3);
  });
});
