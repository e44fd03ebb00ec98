/**
 * mlock(2) and munlock(2) as a C program sees them, running as root (errnos checked on Linux
 * 6.18).
 */
import { describe } from 'vitest';
import { Errno, PAGE_SIZE } from '@cocosim/core';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_LOCKED,
  MAP_PRIVATE,
  MAP_SHARED,
  PG_mlocked,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  VM_LOCKED,
} from '@cocosim/mm';
import { test } from '../lib/fixtures.js';
import { TEST_ASSERT, TEST_ASSERT_EQ } from '../lib/test_util.js';
import { maps_in, mmap_ok, pagemap, store_ok } from './mm_util.js';

const { ENOMEM } = Errno;
const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const PG = BigInt(PAGE_SIZE);
const H = 0x3000_0000_0000n;
const MiB = 1n << 20n;

describe('mlock', () => {
  test('errnos: holes and PROT_NONE are ENOMEM, lengths that round to 0 succeed', ({ host }) => {
    const p = host.process();
    const m = mmap_ok(p, H, 3n * PG, RW, ANON | MAP_FIXED);
    TEST_ASSERT_EQ(p.munmap(m + PG, PG), 0);
    const pn = mmap_ok(p, 0, PG, PROT_NONE, ANON);
    const ro = mmap_ok(p, 0, PG, PROT_READ, ANON);
    const fails = (r: number): void => {
      TEST_ASSERT_EQ(r, -1);
      TEST_ASSERT_EQ(p.errno, ENOMEM);
    };
    /* mlock PROT_NONE ENOMEM; unmapped ENOMEM; across hole ENOMEM; starting in hole ENOMEM */
    fails(p.mlock(pn, PG));
    fails(p.mlock(0x2000_0000_0000n, PG));
    fails(p.mlock(m, 3n * PG));
    fails(p.mlock(m + PG, 2n * PG));
    /* munlock unmapped ENOMEM, across hole ENOMEM */
    fails(p.munlock(0x2000_0000_0000n, PG));
    fails(p.munlock(m, 3n * PG));
    /* mlock unaligned ok; len 0 0; len -1 0 (rounds to 0); -8192 from 0x1000 ENOMEM; munlock -1 0 */
    TEST_ASSERT_EQ(p.mlock(ro + 5n, 10), 0);
    TEST_ASSERT_EQ(p.mlock(0x2000_0000_0000n, 0), 0);
    TEST_ASSERT_EQ(p.mlock(m, -1), 0);
    fails(p.mlock(0x1000, -8192));
    TEST_ASSERT_EQ(p.munlock(m, -1), 0);
    /* mlock RW,NONE: ENOMEM with page0 present; NONE,R: ENOMEM with page1 absent */
    const rn = mmap_ok(p, H + MiB, 2n * PG, RW, ANON | MAP_FIXED);
    TEST_ASSERT_EQ(p.mprotect(rn + PG, PG, PROT_NONE), 0);
    fails(p.mlock(rn, 2n * PG));
    TEST_ASSERT(pagemap(p, rn) !== undefined);
    const nr = mmap_ok(p, H + 2n * MiB, 2n * PG, PROT_NONE, ANON | MAP_FIXED);
    TEST_ASSERT_EQ(p.mprotect(nr + PG, PG, PROT_READ), 0);
    fails(p.mlock(nr, 2n * PG));
    TEST_ASSERT_EQ(pagemap(p, nr + PG), undefined);
    /* mlock of a memfd mapping past EOF: ENOMEM (SIGBUS -> EFAULT -> ENOMEM) */
    const fd = p.memfd_create('m', 0);
    p.ftruncate(fd, 2 * PAGE_SIZE);
    const f = mmap_ok(p, 0, 4n * PG, RW, MAP_SHARED, fd);
    fails(p.mlock(f, 4n * PG));
  });

  test('locks and populates; locked_vm, VM_LOCKED, PG_mlocked; munlock undoes it', ({ host }) => {
    const p = host.process();
    const store = host.kernel.store;
    const a = mmap_ok(p, H, 4n * PG, RW, ANON | MAP_FIXED);
    TEST_ASSERT_EQ(p.mlock(a + PG, 2n * PG), 0);
    TEST_ASSERT_EQ(maps_in(p, H, H + MiB), ['0-1000 rw-p', '1000-3000 rw-p', '3000-4000 rw-p']);
    TEST_ASSERT_EQ(p.mm.locked_vm, 2);
    const pfn = pagemap(p, a + PG)!;
    TEST_ASSERT(pfn !== undefined && pfn !== store.zero_pfn, 'populated by a write fault (private writable)');
    TEST_ASSERT((store.flags[store.idx(pfn)] & (1 << PG_mlocked)) !== 0);
    TEST_ASSERT_EQ(pagemap(p, a), undefined);
    TEST_ASSERT_EQ(p.munlock(a, 4n * PG), 0);
    TEST_ASSERT_EQ(maps_in(p, H, H + MiB), ['0-4000 rw-p']);
    TEST_ASSERT_EQ(p.mm.locked_vm, 0);
    TEST_ASSERT_EQ(store.flags[store.idx(pfn)] & (1 << PG_mlocked), 0);
    /* MAP_LOCKED maps locked and populated */
    const l = mmap_ok(p, 0, 2n * PG, RW, ANON | MAP_LOCKED);
    TEST_ASSERT((p.mm.mm_mt.mtree_load(Number(l / PG))!.vm_flags & VM_LOCKED) !== 0);
    TEST_ASSERT_EQ(p.mm.locked_vm, 2);
    TEST_ASSERT(pagemap(p, l + PG) !== undefined);
    store_ok(p, l, [1]);
    TEST_ASSERT_EQ(p.munmap(l, 2n * PG), 0);
    TEST_ASSERT_EQ(p.mm.locked_vm, 0);
  });
});
