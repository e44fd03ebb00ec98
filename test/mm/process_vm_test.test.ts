/**
 * process_vm_readv(2) / process_vm_writev(2) against what Linux 6.18 answered to
 * test/mm/c/process_vm_access.c (the quoted lines are its output): partial copies at holes,
 * PROT_NONE and read-only pages, beyond EOF, in the local buffers, and the argument checks.
 */
import { describe } from 'vitest';
import { PAGE_SIZE, errno_name } from '@cocosim/core';
import { MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_NONE, PROT_READ, PROT_WRITE, type Process } from '@cocosim/mm';
import { test } from '../lib/fixtures.js';
import { TEST_ASSERT_EQ } from '../lib/test_util.js';
import { load_ok, mmap_ok, store_ok } from './mm_util.js';

const PG = PAGE_SIZE;
const PGN = BigInt(PAGE_SIZE);
const RW = PROT_READ | PROT_WRITE;
const H = 0x3000_0000_0000n;

type Iov = { iov_base: unknown; iov_len: unknown };

/** What the C program's show() prints: the count, or "-1 ENAME". */
function res(p: Process, ret: number): string | number {
  return ret >= 0 ? ret : `-1 ${errno_name(p.errno)}`;
}

/** The remote layout of the C program: pages 0, 2 mapped, 1 a hole, 3 PROT_NONE, 4 read-only, 5 RW; all 'A'. */
function layout(p: Process): bigint {
  const a = mmap_ok(p, H, 6n * PGN, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
  store_ok(p, a, new Uint8Array(6 * PG).fill(0x41));
  TEST_ASSERT_EQ(p.munmap(a + PGN, PGN), 0);
  TEST_ASSERT_EQ(p.mprotect(a + 3n * PGN, PGN, PROT_NONE), 0);
  TEST_ASSERT_EQ(p.mprotect(a + 4n * PGN, PGN, PROT_READ), 0);
  return a;
}

describe('process_vm_readv / process_vm_writev partial copies (process_vm_access.out)', () => {
  test('holes, PROT_NONE and read-only pages in the target', ({ host }) => {
    const p = host.process();
    const me = p.task.pid;
    const a = layout(p);
    const buf = new Uint8Array(64 * PG);
    const rd = (l: unknown, r: bigint, rl: number): string | number => res(p, p.process_vm_readv(me, [l], 1, [{ iov_base: r, iov_len: rl }], 1, 0));
    const wr = (l: unknown, r: bigint, rl: number): string | number => res(p, p.process_vm_writev(me, [l], 1, [{ iov_base: r, iov_len: rl }], 1, 0));
    const loc = (n: number): Iov => ({ iov_base: buf, iov_len: n });
    const P = (k: number): bigint => a + BigInt(k) * PGN;
    TEST_ASSERT_EQ(rd(loc(2 * PG), a, 2 * PG), 4096, 'readv 2 pages [0,1=hole]');
    TEST_ASSERT_EQ(rd(loc(3 * PG), a, 3 * PG), 4096, 'readv 3 pages from 0 (hole at 1)');
    TEST_ASSERT_EQ(rd(loc(2 * PG), a + 100n, 2 * PG), 3996, 'readv unaligned +100 len 8192 (hole at 1)');
    TEST_ASSERT_EQ(rd(loc(PG), P(1), PG), '-1 EFAULT', 'readv starting in hole');
    TEST_ASSERT_EQ(rd(loc(2 * PG), P(2), 2 * PG), 4096, 'readv page 2 then PROT_NONE page 3');
    TEST_ASSERT_EQ(rd(loc(PG), P(3), PG), '-1 EFAULT', 'readv PROT_NONE page alone');
    TEST_ASSERT_EQ(rd(loc(2 * PG), P(4), 2 * PG), 8192, 'readv RO page 4 and RW page 5');
    TEST_ASSERT_EQ(wr(loc(PG), P(5), PG), 4096, 'writev RW page 5 ok');
    TEST_ASSERT_EQ(wr(loc(PG), P(4), PG), '-1 EFAULT', 'writev RO page 4 (no FOLL_FORCE)');
    TEST_ASSERT_EQ(wr(loc(2 * PG), P(2), 2 * PG), 4096, 'writev page 2 then PROT_NONE');
    TEST_ASSERT_EQ(rd(loc(100), P(4), 2 * PG), 100, 'readv local 100 bytes, remote 8192 (page 4,5)');
    TEST_ASSERT_EQ(rd(loc(PG), P(1), 0), 0, 'readv len 0 remote in hole');
    TEST_ASSERT_EQ(rd(loc(0), a, PG), 0, 'readv local len 0');
  });

  test('local buffers that end before their iovec does (a hole after them)', ({ host }) => {
    const p = host.process();
    const me = p.task.pid;
    const a = layout(p);
    const P = (k: number): bigint => a + BigInt(k) * PGN;
    const last100 = new Uint8Array(100);
    const r = (ret: number): string | number => res(p, ret);
    TEST_ASSERT_EQ(r(p.process_vm_readv(me, [{ iov_base: last100, iov_len: 2 * PG }], 1, [{ iov_base: P(4), iov_len: 2 * PG }], 1)), 100,
      'readv local buf (last 100 bytes before hole) len 8192');
    TEST_ASSERT_EQ(last100[0], 0x41);
    TEST_ASSERT_EQ(r(p.process_vm_readv(me, [{ iov_base: new Uint8Array(0), iov_len: PG }], 1, [{ iov_base: P(4), iov_len: PG }], 1)), '-1 EFAULT',
      'readv local buf entirely in hole');
    TEST_ASSERT_EQ(r(p.process_vm_writev(me, [{ iov_base: new Uint8Array(100).fill(0x57), iov_len: 2 * PG }], 1, [{ iov_base: P(5), iov_len: PG }], 1)), 100,
      'writev local src 100 bytes before hole len 8192');
    TEST_ASSERT_EQ(load_ok(p, P(5) + 99n, 2), Uint8Array.of(0x57, 0x41));
  });

  test('several remote and local iovecs', ({ host }) => {
    const p = host.process();
    const me = p.task.pid;
    const a = layout(p);
    const P = (k: number): bigint => a + BigInt(k) * PGN;
    const buf = new Uint8Array(4 * PG);
    const lv = [{ iov_base: buf, iov_len: 4 * PG }];
    const rv = (...v: [bigint, number][]): Iov[] => v.map(([b, l]) => ({ iov_base: b, iov_len: l }));
    TEST_ASSERT_EQ(res(p, p.process_vm_readv(me, lv, 1, rv([a, 100], [P(1), PG], [P(2), PG]), 3)), 100, 'readv riov [ok 100][hole][ok]');
    TEST_ASSERT_EQ(res(p, p.process_vm_readv(me, lv, 1, rv([P(1), PG], [a, 100]), 2)), '-1 EFAULT', 'readv riov [hole][ok 100]');
    TEST_ASSERT_EQ(res(p, p.process_vm_readv(me, lv, 1, rv([a, 100], [P(1), 0], [P(2), 50]), 3)), 150, 'readv riov [ok 100][hole len 0][ok 50]');
    const lv3 = [{ iov_base: buf.subarray(0, 10), iov_len: 10 }, { iov_base: buf.subarray(100, 100), iov_len: 0 }, { iov_base: buf.subarray(200, 5200), iov_len: 5000 }];
    TEST_ASSERT_EQ(res(p, p.process_vm_readv(me, lv3, 3, rv([a, 2 * PG]), 1)), 4096, 'readv liov [10][0][5000] riov 8192 (hole at 1)');
  });

  test('a memfd mapping beyond EOF, and writes to private file mappings', ({ host }) => {
    const p = host.process();
    const me = p.task.pid;
    const fd = p.memfd_create('pvm', 0);
    TEST_ASSERT_EQ(p.ftruncate(fd, PG + 100), 0);
    const f = mmap_ok(p, H + 32n * PGN, 3n * PGN, RW, MAP_SHARED | MAP_FIXED, fd, 0);
    store_ok(p, f, new Uint8Array(10).fill(0x46));
    const buf = new Uint8Array(3 * PG);
    const one = (l: number, r: bigint, rl: number): Iov[][] => [[{ iov_base: buf, iov_len: l }], [{ iov_base: r, iov_len: rl }]];
    const rd = (l: number, r: bigint, rl: number): string | number => res(p, p.process_vm_readv(me, one(l, r, rl)[0], 1, one(l, r, rl)[1], 1));
    const wr = (l: number, r: bigint, rl: number): string | number => res(p, p.process_vm_writev(me, one(l, r, rl)[0], 1, one(l, r, rl)[1], 1));
    TEST_ASSERT_EQ(rd(3 * PG, f, 3 * PG), 8192, 'readv memfd 3 pages, i_size 4196');
    TEST_ASSERT_EQ(rd(PG, f + 2n * PGN, PG), '-1 EFAULT', 'readv memfd page 2 only (beyond EOF)');
    TEST_ASSERT_EQ(wr(3 * PG, f, 3 * PG), 8192, 'writev memfd 3 pages, i_size 4196');
    const pr = mmap_ok(p, H + 40n * PGN, 3n * PGN, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0);
    TEST_ASSERT_EQ(wr(PG, pr, PG), '-1 EFAULT', 'writev memfd MAP_PRIVATE PROT_READ');
    buf.fill(0x57, 0, PG);
    const pw = mmap_ok(p, H + 44n * PGN, PGN, RW, MAP_PRIVATE | MAP_FIXED, fd, 0);
    TEST_ASSERT_EQ(wr(PG, pw, PG), 4096, 'writev memfd MAP_PRIVATE RW (COW)');
    /* "after COW: mapping[0]=W file[0]=F": the private copy took the write, the file kept its 'F' */
    TEST_ASSERT_EQ(load_ok(p, pw, 1), Uint8Array.of(0x57));
    TEST_ASSERT_EQ(load_ok(p, f, 1), Uint8Array.of(0x46));
  });

  test('argument checks, in the kernel\'s order', ({ host }) => {
    const p = host.process();
    const me = p.task.pid;
    const a = layout(p);
    const buf = new Uint8Array(64 * PG);
    const lv = [{ iov_base: buf, iov_len: PG }];
    const rv = [{ iov_base: a, iov_len: PG }];
    const big = Array.from({ length: 1100 }, () => ({ iov_base: buf, iov_len: 1 }));
    const bigr = Array.from({ length: 1100 }, () => ({ iov_base: a, iov_len: 1 }));
    const rd = (pid: unknown, l: unknown, lc: unknown, r: unknown, rc: unknown, fl: unknown = 0): string | number => res(p, p.process_vm_readv(pid, l, lc, r, rc, fl));
    TEST_ASSERT_EQ(rd(me, lv, 1, rv, 1, 1), '-1 EINVAL', 'flags=1');
    TEST_ASSERT_EQ(rd(me, null, 1, rv, 1, 1), '-1 EINVAL', 'flags=1, lvec NULL');
    TEST_ASSERT_EQ(rd(me, null, 1, rv, 1), '-1 EFAULT', 'lvec NULL liovcnt 1');
    TEST_ASSERT_EQ(rd(me, lv, 1, null, 1), '-1 EFAULT', 'rvec NULL riovcnt 1');
    TEST_ASSERT_EQ(rd(me, lv, 0, null, 5000), 0, 'liovcnt 0, rvec NULL riovcnt 5000');
    TEST_ASSERT_EQ(rd(me, lv, 1, rv, 0), 0, 'riovcnt 0');
    TEST_ASSERT_EQ(rd(me, big, 1025, rv, 1), '-1 EINVAL', 'liovcnt 1025');
    TEST_ASSERT_EQ(rd(me, big, 1024, rv, 1), 1024, 'liovcnt 1024');
    TEST_ASSERT_EQ(rd(me, lv, 1, bigr, 1025), '-1 EINVAL', 'riovcnt 1025');
    TEST_ASSERT_EQ(rd(me, lv, 2 ** 32 + 1, rv, 1), 4096, 'liovcnt 2^32+1 (truncated to 1)');
    TEST_ASSERT_EQ(rd(me, lv, 1, [{ iov_base: a, iov_len: 2n ** 64n - 1n }], 1), '-1 EINVAL', 'remote iov_len -1');
    TEST_ASSERT_EQ(rd(me, [{ iov_base: buf, iov_len: -1 }], 1, rv, 1), '-1 EINVAL', 'local iov_len -1 (1 seg)');
    TEST_ASSERT_EQ(rd(me, [{ iov_base: buf, iov_len: 10 }, { iov_base: buf, iov_len: -1 }], 2, rv, 1), '-1 EINVAL', 'local iov_len -1 (2 segs)');
    TEST_ASSERT_EQ(rd(me, [{ iov_base: buf, iov_len: 10 }, { iov_base: buf, iov_len: 2n ** 62n }], 2, rv, 1), '-1 EFAULT', 'local iov_len 2^62 (2 segs)');
    TEST_ASSERT_EQ(rd(me, lv, 1, [{ iov_base: a, iov_len: 2n ** 62n }], 1), 4096, 'remote iov_len 2^62 (a, mapped first)');
    TEST_ASSERT_EQ(rd(me, lv, 1, [{ iov_base: 0xffff800000000000n, iov_len: PG }], 1), '-1 EFAULT', 'remote kernel address');
    TEST_ASSERT_EQ(rd(me, lv, 1, [{ iov_base: 0xfffffffffffff000n, iov_len: 0x2000 }], 1), '-1 EFAULT', 'remote wrapping range');
    TEST_ASSERT_EQ(rd(999999, lv, 1, rv, 1), '-1 ESRCH', 'pid 999999');
    TEST_ASSERT_EQ(rd(999999, lv, 1, rv, 1, 1), '-1 EINVAL', 'pid 999999 flags 1');
    TEST_ASSERT_EQ(rd(999999, lv, 1, bigr, 1025), '-1 EINVAL', 'pid 999999 riovcnt 1025');
    TEST_ASSERT_EQ(rd(999999, lv, 1, [{ iov_base: a + PGN, iov_len: 0 }], 1), 0, 'pid 999999 remote len 0');
    /* values no C program can pass */
    TEST_ASSERT_EQ(rd(me, lv, 1, rv, 1, 0.5), '-1 EINVAL');
    TEST_ASSERT_EQ(rd(me, lv, 1, [{ iov_base: 'x', iov_len: PG }], 1), '-1 EFAULT');
    TEST_ASSERT_EQ(rd(me, [{ iov_base: 'x', iov_len: PG }], 1, rv, 1), '-1 EFAULT');
  });

  test('contents, and another process\'s memory', ({ host }) => {
    const p = host.process();
    const q = host.process();
    const a = layout(p);
    store_ok(p, a + 5n * PGN + 7n, [0x78]);
    const buf = new Uint8Array(16);
    /* "contents: r=16 buf[7]=x buf[0]=A" */
    TEST_ASSERT_EQ(p.process_vm_readv(p.task.pid, [buf], 1, [{ iov_base: a + 5n * PGN, iov_len: 16 }], 1), 16);
    TEST_ASSERT_EQ([buf[7], buf[0]], [0x78, 0x41]);
    /* q reads and writes p's memory (as root: PTRACE_MODE_ATTACH passes) */
    const qbuf = new Uint8Array(8);
    TEST_ASSERT_EQ(q.process_vm_readv(p, [qbuf], 1, [{ iov_base: a, iov_len: 8 }], 1), 8);
    TEST_ASSERT_EQ(qbuf, new Uint8Array(8).fill(0x41));
    TEST_ASSERT_EQ(q.process_vm_writev(p.task.pid, [Uint8Array.of(1, 2, 3)], 1, [{ iov_base: a + 2n * PGN, iov_len: 3 }], 1), 3);
    TEST_ASSERT_EQ(load_ok(p, a + 2n * PGN, 4), Uint8Array.of(1, 2, 3, 0x41));
    /* nothing stays pinned */
    const pfn = p.mm.pgd.ptes.get(Math.floor(Number(a / PGN) / 512))!.val[Number(a / PGN) % 512];
    TEST_ASSERT_EQ(host.kernel.store._refcount[pfn - host.kernel.store.base_pfn], 1);
  });
});
