/**
 * mprotect(2) as a C program sees it (errnos and behaviours checked on Linux 6.18).
 */
import { describe } from 'vitest';
import { Errno, PAGE_SIZE } from '@cocosim/core';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  MM_ANONPAGES,
  O_RDONLY,
  PROT_EXEC,
  PROT_GROWSDOWN,
  PROT_GROWSUP,
  PROT_NONE,
  PROT_READ,
  PROT_SEM,
  PROT_WRITE,
  proc_fd_reopen,
} from '@cocosim/mm';
import { test } from '../lib/fixtures.js';
import { TEST_ASSERT, TEST_ASSERT_EQ } from '../lib/test_util.js';
import { expect_sig, load_ok, maps_in, mm_snapshot, mmap_ok, pagemap, store_ok } from './mm_util.js';

const { EINVAL, ENOMEM, EACCES } = Errno;
const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const PG = BigInt(PAGE_SIZE);
const H = 0x3000_0000_0000n;
const MiB = 1n << 20n;

describe('mprotect errnos', () => {
  test('in the kernel order, and a failed call before any VMA changed leaves everything alone', ({ host }) => {
    const p = host.process();
    const a = mmap_ok(p, H, PG, RW, ANON | MAP_FIXED);
    store_ok(p, a, [1]);
    const before = mm_snapshot(p);
    const fails = (addr: unknown, len: unknown, prot: unknown, errno: number): void => {
      TEST_ASSERT_EQ(p.mprotect(addr, len, prot), -1, `mprotect(${String(addr)}, ${String(len)}, ${String(prot)})`);
      TEST_ASSERT_EQ(p.errno, errno);
    };
    /* mprotect unaligned EINVAL; len 0 unmapped 0; unmapped ENOMEM */
    fails(a + 1n, PG, PROT_READ, EINVAL);
    TEST_ASSERT_EQ(p.mprotect(0x2000_0000_0000n, 0, PROT_READ), 0);
    fails(0x2000_0000_0000n, PG, PROT_READ, ENOMEM);
    /* bad prot 0x10 EINVAL (unmapped too); GROWSDOWN|GROWSUP EINVAL; GROWSDOWN on a
     * non-growsdown VMA EINVAL; len -1 ENOMEM; len wrapping ENOMEM; len 0 unaligned EINVAL */
    fails(0x2000_0000_0000n, PG, 0x10, EINVAL);
    fails(a, PG, 0x10, EINVAL);
    fails(a, PG, PROT_READ | PROT_GROWSDOWN | PROT_GROWSUP, EINVAL);
    fails(a, PG, PROT_READ | PROT_GROWSDOWN, EINVAL);
    fails(a, PG, PROT_READ | PROT_GROWSUP, EINVAL);
    fails(a, -1, PROT_READ, ENOMEM);
    fails(a, -2n * PG, PROT_READ, ENOMEM);
    fails(a + 1n, 0, PROT_READ, EINVAL);
    fails(a, 'x', PROT_READ, EINVAL);
    TEST_ASSERT_EQ(mm_snapshot(p), before);
    /* PROT_SEM is accepted */
    TEST_ASSERT_EQ(p.mprotect(a, PG, PROT_READ | PROT_SEM), 0);
  });

  test('not atomic: the VMAs before a hole keep their new protection (ENOMEM)', ({ host }) => {
    const p = host.process();
    const m = mmap_ok(p, H, 3n * PG, PROT_READ, ANON | MAP_FIXED);
    TEST_ASSERT_EQ(p.munmap(m + PG, PG), 0);
    /* mprotect across hole ret=-1 ENOMEM; store first page ok; store third page SEGV_ACCERR */
    TEST_ASSERT_EQ(p.mprotect(m, 3n * PG, RW), -1);
    TEST_ASSERT_EQ(p.errno, ENOMEM);
    store_ok(p, m, [1]);
    expect_sig(p.store(m + 2n * PG, Uint8Array.of(1)), 'SIGSEGV', 'SEGV_ACCERR', m + 2n * PG);
    /* starting in the hole: ENOMEM, nothing changes */
    TEST_ASSERT_EQ(p.mprotect(m + PG, 2n * PG, RW), -1);
    TEST_ASSERT_EQ(p.errno, ENOMEM);
    expect_sig(p.store(m + 2n * PG, Uint8Array.of(1)), 'SIGSEGV', 'SEGV_ACCERR', m + 2n * PG);
  });

  test('adding PROT_WRITE to a shared mapping of a read-only fd: EACCES; PROT_EXEC is fine', ({ host }) => {
    const p = host.process();
    const fd = p.memfd_create('r', 0);
    p.ftruncate(fd, PAGE_SIZE);
    const f = proc_fd_reopen(p.task, fd, O_RDONLY);
    TEST_ASSERT(typeof f !== 'number');
    const rfd = p.task.files.install(f, false);
    const a = mmap_ok(p, 0, PG, PROT_READ, MAP_SHARED, rfd);
    TEST_ASSERT_EQ(p.mprotect(a, PG, RW), -1);
    TEST_ASSERT_EQ(p.errno, EACCES);
    TEST_ASSERT_EQ(p.mprotect(a, PG, PROT_READ | PROT_EXEC), 0);
  });
});

describe('mprotect splits and merges', () => {
  test('the middle page RO splits in three; back to RW merges them again', ({ host }) => {
    const p = host.process();
    const a = mmap_ok(p, H, 3n * PG, RW, ANON | MAP_FIXED);
    for (let i = 0n; i < 3n; i++) store_ok(p, a + i * PG, [1]);
    TEST_ASSERT_EQ(p.mprotect(a + PG, PG, PROT_READ), 0);
    TEST_ASSERT_EQ(maps_in(p, H, H + MiB), ['0-1000 rw-p', '1000-2000 r--p', '2000-3000 rw-p']);
    TEST_ASSERT_EQ(p.mm.map_count, 3);
    expect_sig(p.store(a + PG, Uint8Array.of(2)), 'SIGSEGV', 'SEGV_ACCERR', a + PG);
    store_ok(p, a + 2n * PG, [2]);
    TEST_ASSERT_EQ(p.mprotect(a + PG, PG, RW), 0);
    TEST_ASSERT_EQ(maps_in(p, H, H + MiB), ['0-3000 rw-p']);
    TEST_ASSERT_EQ(p.mm.map_count, 1);
    store_ok(p, a + PG, [3]);
    TEST_ASSERT_EQ(p.mm.get_mm_counter(MM_ANONPAGES), 3);
  });

  test('PROT_NONE keeps the pages mapped and their contents for later', ({ host }) => {
    const p = host.process();
    const a = mmap_ok(p, 0, 2n * PG, RW, ANON);
    store_ok(p, a, [0x5a]);
    const pfn = pagemap(p, a);
    const tlb = host.cost.measure('mprotect', () => TEST_ASSERT_EQ(p.mprotect(a, 2n * PG, PROT_NONE), 0));
    TEST_ASSERT(tlb.cost.items.some((i) => i.name === 'tlb_flush_local'), 'removing access flushes the TLB');
    expect_sig(p.load(a, 1), 'SIGSEGV', 'SEGV_ACCERR', a);
    TEST_ASSERT_EQ(pagemap(p, a), pfn, 'still mapped (a PROT_NONE PTE)');
    TEST_ASSERT_EQ(p.mprotect(a, 2n * PG, PROT_READ), 0);
    TEST_ASSERT_EQ(load_ok(p, a, 1), Uint8Array.of(0x5a));
    expect_sig(p.store(a, Uint8Array.of(1)), 'SIGSEGV', 'SEGV_ACCERR', a);
  });

  test('mprotect over a range with mixed protections and several VMAs', ({ host }) => {
    const p = host.process();
    const a = mmap_ok(p, H, 4n * PG, PROT_READ, ANON | MAP_FIXED);
    TEST_ASSERT_EQ(p.mprotect(a + PG, PG, RW), 0);
    TEST_ASSERT_EQ(p.mprotect(a + 3n * PG, PG, PROT_NONE), 0);
    TEST_ASSERT_EQ(maps_in(p, H, H + MiB), ['0-1000 r--p', '1000-2000 rw-p', '2000-3000 r--p', '3000-4000 ---p']);
    TEST_ASSERT_EQ(p.mprotect(a, 4n * PG, RW), 0);
    TEST_ASSERT_EQ(maps_in(p, H, H + MiB), ['0-4000 rw-p']);
    for (let i = 0n; i < 4n; i++) store_ok(p, a + i * PG, [1]);
  });
});
