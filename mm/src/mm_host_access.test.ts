/*
 * The host_access hook (mm_hooks.ts) at each base site that touches a page's bytes for the host:
 * user loads and stores, process_vm_readv/writev, shmem read/write, folio_zero_range. The provider
 * is a test double of a vendor that refuses (or answers otherwise for) the pages in a set.
 */
import { describe, expect, test } from 'vitest';
import { Errno, PAGE_SIZE, createRootContainer } from '@cocosim/core';
import { Kernel, mmRegistrar } from './kernel.js';
import { Process } from './process.js';
import { MAP_ANONYMOUS, MAP_FAILED, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from './mman.js';
import { KernelOops, isSigInfo } from './fault.js';
import { pagemap_pfn } from './task_mmu.js';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE } from './uapi/falloc.js';
import { MM_HOST_ACCESS_FAULT, MM_HOST_ACCESS_MCE, MM_HOST_ACCESS_ZERO, register_mm_hooks, type HostAccessActor } from './mm_hooks.js';

const PG = BigInt(PAGE_SIZE);
const RW = PROT_READ | PROT_WRITE;

interface Seen { pfn: number; write: boolean; actor: HostAccessActor; offset: number; len: number }

/** A host whose provider answers `answer` for the pfns in `owned` and records every question about them. */
function setup(answer: number): { p: Process; owned: Set<number>; seen: Seen[] } {
  const k = createRootContainer({}, mmRegistrar({ nr_pages: 8192 })).resolve(Kernel);
  const owned = new Set<number>();
  const seen: Seen[] = [];
  register_mm_hooks(k, {
    name: 'vendor double',
    host_access: (_k, pfn, write, actor, offset, len) => {
      if (!owned.has(pfn)) return 0;
      seen.push({ pfn, write, actor, offset, len });
      return answer;
    },
  });
  return { p: new Process(k), owned, seen };
}

/** One page of anonymous memory holding 0x5a, its pfn marked owned. */
function ownedPage(p: Process, owned: Set<number>): bigint {
  const a = p.mmap(0n, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  expect(a).not.toBe(MAP_FAILED);
  expect(p.store(a, new Uint8Array(PAGE_SIZE).fill(0x5a))).toBe(0);
  owned.add(pagemap_pfn(p.mm, a)!);
  return a;
}

describe('user loads and stores', () => {
  test('a refused load or store is SIGBUS BUS_ADRERR at the faulting byte; the page keeps its bytes', () => {
    const { p, owned, seen } = setup(MM_HOST_ACCESS_FAULT);
    const a = ownedPage(p, owned);
    const r = p.load(a + 16n, 8);
    expect(isSigInfo(r) && [r.signo, r.si_code, r.si_addr]).toEqual(['SIGBUS', 'BUS_ADRERR', a + 16n]);
    const w = p.store(a + 32n, new Uint8Array([1, 2]));
    expect(isSigInfo(w) && [w.signo, w.si_code, w.si_addr]).toEqual(['SIGBUS', 'BUS_ADRERR', a + 32n]);
    expect(seen).toEqual([
      { pfn: [...owned][0], write: false, actor: 'user', offset: 16, len: 8 },
      { pfn: [...owned][0], write: true, actor: 'user', offset: 32, len: 2 },
    ]);
    owned.clear();
    expect(p.load(a + 32n, 2)).toEqual(new Uint8Array([0x5a, 0x5a]));
  });

  test('a store across two pages writes the first and signals at the refused one', () => {
    const { p, owned } = setup(MM_HOST_ACCESS_FAULT);
    const a = p.mmap(0n, 2n * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(p.store(a, new Uint8Array(2 * PAGE_SIZE))).toBe(0);
    owned.add(pagemap_pfn(p.mm, a + PG)!);
    const w = p.store(a + PG - 2n, new Uint8Array([7, 7, 7, 7]));
    expect(isSigInfo(w) && w.si_addr).toBe(a + PG);
    expect(p.load(a + PG - 2n, 2)).toEqual(new Uint8Array([7, 7]));
  });

  test('a machine check is SIGBUS BUS_MCEERR_AR with the page as lsb; zeros read as zeros', () => {
    const mce = setup(MM_HOST_ACCESS_MCE);
    const a = ownedPage(mce.p, mce.owned);
    const r = mce.p.load(a, 1);
    expect(isSigInfo(r) && [r.signo, r.si_code, r.si_addr_lsb]).toEqual(['SIGBUS', 'BUS_MCEERR_AR', 12]);
    const zero = setup(MM_HOST_ACCESS_ZERO);
    const b = ownedPage(zero.p, zero.owned);
    expect(zero.p.load(b, 4)).toEqual(new Uint8Array(4));
    expect(zero.p.store(b, new Uint8Array([9]))).toBe(0);
  });
});

describe('kernel copies', () => {
  test('process_vm_readv and process_vm_writev of a refused page are EFAULT (uaccess fixup)', () => {
    const { p, owned, seen } = setup(MM_HOST_ACCESS_FAULT);
    const a = ownedPage(p, owned);
    const buf = new Uint8Array(8);
    expect(p.process_vm_readv(p, [buf], 1, [{ iov_base: a, iov_len: 8 }], 1)).toBe(-1);
    expect(p.errno).toBe(Errno.EFAULT);
    expect(buf).toEqual(new Uint8Array(8));
    expect(p.process_vm_writev(p, [new Uint8Array(8).fill(1)], 1, [{ iov_base: a, iov_len: 8 }], 1)).toBe(-1);
    expect(p.errno).toBe(Errno.EFAULT);
    expect(seen.map((s) => [s.actor, s.write])).toEqual([['kernel', false], ['kernel', true]]);
    owned.clear();
    expect(p.load(a, 8)).toEqual(new Uint8Array(8).fill(0x5a));
  });

  test('a machine check in a kernel copy oopses; zeros are copied as zeros', () => {
    const mce = setup(MM_HOST_ACCESS_MCE);
    const a = ownedPage(mce.p, mce.owned);
    expect(() => mce.p.process_vm_readv(mce.p, [new Uint8Array(4)], 1, [{ iov_base: a, iov_len: 4 }], 1)).toThrow(KernelOops);
    const zero = setup(MM_HOST_ACCESS_ZERO);
    const b = ownedPage(zero.p, zero.owned);
    const buf = new Uint8Array(4).fill(1);
    expect(zero.p.process_vm_readv(zero.p, [buf], 1, [{ iov_base: b, iov_len: 4 }], 1)).toBe(4);
    expect(buf).toEqual(new Uint8Array(4));
  });

  test('read and write of a refused shmem page are EFAULT; a partial hole punch (memset) oopses', () => {
    const { p, owned } = setup(MM_HOST_ACCESS_FAULT);
    const fd = p.memfd_create('guest');
    expect(p.write(fd, new Uint8Array(PAGE_SIZE).fill(3))).toBe(PAGE_SIZE);
    const a = p.mmap(0n, PG, RW, MAP_SHARED, fd, 0);
    expect(p.load(a, 1)).toEqual(new Uint8Array([3]));
    owned.add(pagemap_pfn(p.mm, a)!);
    expect(p.pread(fd, new Uint8Array(4), 0)).toBe(-1);
    expect(p.errno).toBe(Errno.EFAULT);
    expect(p.pwrite(fd, new Uint8Array(4), 0)).toBe(-1);
    expect(p.errno).toBe(Errno.EFAULT);
    expect(() => p.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100, 100)).toThrow(KernelOops);
  });

  test('without a provider answer, every site behaves as before', () => {
    const { p, owned, seen } = setup(0);
    const a = ownedPage(p, owned);
    const buf = new Uint8Array(2);
    expect(p.process_vm_readv(p, [buf], 1, [{ iov_base: a, iov_len: 2 }], 1)).toBe(2);
    expect(buf).toEqual(new Uint8Array([0x5a, 0x5a]));
    expect(seen.length).toBeGreaterThan(0);
  });
});
