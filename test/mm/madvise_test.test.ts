/**
 * madvise(2) as a C program sees it (errnos and behaviours checked on Linux 6.18; this kernel is
 * built without CONFIG_MEMORY_FAILURE, so MADV_HWPOISON and MADV_SOFT_OFFLINE are EINVAL).
 */
import { describe } from 'vitest';
import { Errno, PAGE_SIZE } from '@cocosim/core';
import {
  MADV_COLD,
  MADV_COLLAPSE,
  MADV_DONTDUMP,
  MADV_DONTFORK,
  MADV_DONTNEED,
  MADV_DONTNEED_LOCKED,
  MADV_FREE,
  MADV_GUARD_INSTALL,
  MADV_GUARD_REMOVE,
  MADV_HUGEPAGE,
  MADV_HWPOISON,
  MADV_MERGEABLE,
  MADV_NORMAL,
  MADV_PAGEOUT,
  MADV_POPULATE_READ,
  MADV_POPULATE_WRITE,
  MADV_REMOVE,
  MADV_SOFT_OFFLINE,
  MADV_WILLNEED,
  MADV_WIPEONFORK,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  MM_ANONPAGES,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  VM_DONTCOPY,
  VM_DONTDUMP,
  VM_HUGEPAGE,
  VM_MERGEABLE,
  folio_ref_count,
  vm_flags_test,
  vm_sysctl,
  type Process,
} from '@cocosim/mm';
import { test } from '../lib/fixtures.js';
import { TEST_ASSERT, TEST_ASSERT_EQ } from '../lib/test_util.js';
import { load_ok, maps_in, mm_snapshot, mmap_ok, pagemap, store_ok } from './mm_util.js';

const { EINVAL, ENOMEM, EACCES, EFAULT } = Errno;
const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const PG = BigInt(PAGE_SIZE);
const H = 0x3000_0000_0000n;
const MiB = 1n << 20n;

function fails(p: Process, addr: unknown, len: unknown, advice: unknown, errno: number): void {
  TEST_ASSERT_EQ(p.madvise(addr, len, advice), -1, `madvise(${String(addr)}, ${String(len)}, ${String(advice)})`);
  TEST_ASSERT_EQ(p.errno, errno);
}

describe('madvise errnos', () => {
  test('unknown advice first, then alignment and length, then holes', ({ host }) => {
    const p = host.process();
    const m = mmap_ok(p, H, 3n * PG, RW, ANON | MAP_FIXED);
    TEST_ASSERT_EQ(p.munmap(m + PG, PG), 0);
    const before = mm_snapshot(p);
    /* madvise unknown 999 EINVAL (also unaligned); -1 EINVAL; unused numbers 5 6 7 26 104 EINVAL */
    for (const advice of [999, -1, 5, 6, 7, 26, 104]) fails(p, m, PG, advice, EINVAL);
    fails(p, m + 1n, PG, 999, EINVAL);
    /* unaligned DONTNEED EINVAL; len -1 EINVAL; len 0 unmapped 0 */
    fails(p, m + 1n, PG, MADV_DONTNEED, EINVAL);
    fails(p, m, -1, MADV_DONTNEED, EINVAL);
    TEST_ASSERT_EQ(p.madvise(0x2000_0000_0000n, 0, MADV_DONTNEED), 0);
    /* unmapped, across a hole, starting in a hole, hole only: ENOMEM */
    fails(p, 0x2000_0000_0000n, PG, MADV_DONTNEED, ENOMEM);
    fails(p, m, 3n * PG, MADV_DONTNEED, ENOMEM);
    fails(p, m + PG, 2n * PG, MADV_DONTNEED, ENOMEM);
    fails(p, m + PG, PG, MADV_DONTNEED, ENOMEM);
    fails(p, 0x2000_0000_0000n, PG, MADV_NORMAL, ENOMEM);
    fails(p, 0x2000_0000_0000n, PG, MADV_WILLNEED, ENOMEM);
    /* MADV_HWPOISON, MADV_SOFT_OFFLINE: EINVAL (no CONFIG_MEMORY_FAILURE) */
    fails(p, m, PG, MADV_HWPOISON, EINVAL);
    fails(p, m, PG, MADV_SOFT_OFFLINE, EINVAL);
    TEST_ASSERT_EQ(vm_sysctl(host.kernel).memory_failure, false);
    TEST_ASSERT_EQ(mm_snapshot(p), before);
  });

  test('MADV_POPULATE_(READ|WRITE): EINVAL for the wrong permission, ENOMEM for holes, EFAULT past EOF', ({ host }) => {
    const p = host.process();
    const ro = mmap_ok(p, 0, PG, PROT_READ, ANON);
    const none = mmap_ok(p, 0, PG, PROT_NONE, ANON);
    const wo = mmap_ok(p, 0, PG, PROT_WRITE, ANON);
    /* POPULATE_WRITE on RO EINVAL; POPULATE_READ on RO 0; on PROT_NONE EINVAL; on WRONLY EINVAL */
    fails(p, ro, PG, MADV_POPULATE_WRITE, EINVAL);
    TEST_ASSERT_EQ(p.madvise(ro, PG, MADV_POPULATE_READ), 0);
    TEST_ASSERT_EQ(pagemap(p, ro), host.kernel.store.zero_pfn, 'populate-read uses the zero page');
    fails(p, none, PG, MADV_POPULATE_READ, EINVAL);
    fails(p, wo, PG, MADV_POPULATE_READ, EINVAL);
    /* unmapped ENOMEM; across a hole ENOMEM */
    fails(p, 0x2000_0000_0000n, PG, MADV_POPULATE_WRITE, ENOMEM);
    const m = mmap_ok(p, H, 3n * PG, RW, ANON | MAP_FIXED);
    TEST_ASSERT_EQ(p.munmap(m + PG, PG), 0);
    fails(p, m, 3n * PG, MADV_POPULATE_WRITE, ENOMEM);
    TEST_ASSERT(pagemap(p, m) !== undefined, 'the page before the hole was populated');
    /* RW, RO, RW: EINVAL at the RO VMA, page0 present=1 page2 present=0 */
    const r = mmap_ok(p, H + MiB, 3n * PG, RW, ANON | MAP_FIXED);
    TEST_ASSERT_EQ(p.mprotect(r + PG, PG, PROT_READ), 0);
    fails(p, r, 3n * PG, MADV_POPULATE_WRITE, EINVAL);
    TEST_ASSERT(pagemap(p, r) !== undefined && pagemap(p, r + 2n * PG) === undefined);
    /* POPULATE_WRITE / READ of a memfd beyond EOF: EFAULT */
    const fd = p.memfd_create('m', 0);
    p.ftruncate(fd, 2 * PAGE_SIZE);
    const f = mmap_ok(p, 0, 4n * PG, RW, MAP_SHARED, fd);
    fails(p, f, 4n * PG, MADV_POPULATE_WRITE, EFAULT);
    fails(p, f + 2n * PG, PG, MADV_POPULATE_READ, EFAULT);
    TEST_ASSERT(pagemap(p, f + PG) !== undefined, 'the pages within EOF were populated');
  });

  test('the per-advice EINVAL and EACCES cases', ({ host }) => {
    const p = host.process();
    const anon = mmap_ok(p, 0, PG, RW, ANON);
    const fd = p.memfd_create('m', 0);
    p.ftruncate(fd, PAGE_SIZE);
    const sh = mmap_ok(p, 0, PG, RW, MAP_SHARED, fd);
    const pv = mmap_ok(p, 0, PG, RW, MAP_PRIVATE, fd);
    /* MADV_REMOVE private EACCES; anon EINVAL; WIPEONFORK shared EINVAL; FREE shared EINVAL */
    fails(p, pv, PG, MADV_REMOVE, EACCES);
    fails(p, anon, PG, MADV_REMOVE, EINVAL);
    fails(p, sh, PG, MADV_WIPEONFORK, EINVAL);
    fails(p, sh, PG, MADV_FREE, EINVAL);
    /* on an mlocked VMA: DONTNEED, FREE, COLD, PAGEOUT, GUARD_INSTALL, REMOVE EINVAL;
     * DONTNEED_LOCKED, HUGEPAGE, DONTFORK, DONTDUMP, MERGEABLE, GUARD_REMOVE 0 */
    TEST_ASSERT_EQ(p.mlock(anon, PG), 0);
    for (const advice of [MADV_DONTNEED, MADV_FREE, MADV_COLD, MADV_PAGEOUT, MADV_GUARD_INSTALL, MADV_COLLAPSE]) {
      fails(p, anon, PG, advice, EINVAL);
    }
    for (const advice of [MADV_DONTNEED_LOCKED, MADV_HUGEPAGE, MADV_DONTFORK, MADV_DONTDUMP, MADV_MERGEABLE, MADV_GUARD_REMOVE]) {
      TEST_ASSERT_EQ(p.madvise(anon, PG, advice), 0, `advice ${advice}`);
    }
    const v = p.mm.mm_mt.mtree_load(Number(anon / PG))!;
    for (const f of [VM_HUGEPAGE, VM_DONTCOPY, VM_DONTDUMP, VM_MERGEABLE]) TEST_ASSERT(vm_flags_test(v.vm_flags, f));
  });
});

describe('what the advice does', () => {
  test('MADV_DONTNEED: anon memory reads zero again, shared file data stays, private copies go', ({ host }) => {
    const p = host.process();
    const store = host.kernel.store;
    const a = mmap_ok(p, 0, 2n * PG, RW, ANON);
    store_ok(p, a, [5]);
    const pfn = pagemap(p, a)!;
    TEST_ASSERT_EQ(p.madvise(a, 2n * PG, MADV_DONTNEED), 0);
    /* after DONTNEED m[0]=0 present=0 */
    TEST_ASSERT_EQ(pagemap(p, a), undefined);
    TEST_ASSERT_EQ(folio_ref_count(store, pfn), 0, 'the page was freed');
    TEST_ASSERT_EQ(load_ok(p, a, 1), Uint8Array.of(0));
    TEST_ASSERT_EQ(p.mm.get_mm_counter(MM_ANONPAGES), 0);
    const fd = p.memfd_create('m', 0);
    p.ftruncate(fd, PAGE_SIZE);
    const s = mmap_ok(p, 0, PG, RW, MAP_SHARED, fd);
    const pv = mmap_ok(p, 0, PG, RW, MAP_PRIVATE, fd);
    store_ok(p, s, [0x41]);
    store_ok(p, pv, [0x58]);
    /* private after DONTNEED: A; shared after DONTNEED: A */
    TEST_ASSERT_EQ(p.madvise(pv, PG, MADV_DONTNEED), 0);
    TEST_ASSERT_EQ(load_ok(p, pv, 1), Uint8Array.of(0x41));
    TEST_ASSERT_EQ(p.madvise(s, PG, MADV_DONTNEED), 0);
    TEST_ASSERT_EQ(load_ok(p, s, 1), Uint8Array.of(0x41));
  });

  test('MADV_REMOVE punches a hole in the shared file: every mapping reads zero', ({ host }) => {
    const p = host.process();
    const fd = p.memfd_create('m', 0);
    p.ftruncate(fd, 2 * PAGE_SIZE);
    const s = mmap_ok(p, 0, 2n * PG, RW, MAP_SHARED, fd);
    const pv = mmap_ok(p, 0, 2n * PG, PROT_READ, MAP_PRIVATE, fd);
    store_ok(p, s, [0x41]);
    TEST_ASSERT_EQ(load_ok(p, pv, 1), Uint8Array.of(0x41));
    /* MADV_REMOVE shared 0; shared after REMOVE: 0, private: 0 */
    TEST_ASSERT_EQ(p.madvise(s, PG, MADV_REMOVE), 0);
    TEST_ASSERT_EQ(load_ok(p, s, 1), Uint8Array.of(0));
    TEST_ASSERT_EQ(load_ok(p, pv, 1), Uint8Array.of(0));
    const buf = new Uint8Array(1);
    TEST_ASSERT_EQ(p.pread(fd, buf, 0), 1);
    TEST_ASSERT_EQ(buf[0], 0);
    /* MAP_SHARED|MAP_ANONYMOUS memory is shmem too: REMOVE works */
    const sa = mmap_ok(p, 0, PG, RW, MAP_SHARED | MAP_ANONYMOUS);
    store_ok(p, sa, [9]);
    TEST_ASSERT_EQ(p.madvise(sa, PG, MADV_REMOVE), 0);
    TEST_ASSERT_EQ(load_ok(p, sa, 1), Uint8Array.of(0));
  });

  test('flag advice splits the VMA and merges it back', ({ host }) => {
    const p = host.process();
    const a = mmap_ok(p, H, 3n * PG, RW, ANON | MAP_FIXED);
    TEST_ASSERT_EQ(p.madvise(a + PG, PG, MADV_DONTFORK), 0);
    TEST_ASSERT_EQ(p.mm.map_count, 3);
    TEST_ASSERT_EQ(maps_in(p, H, H + MiB).length, 3);
    TEST_ASSERT_EQ(p.madvise(a + PG, PG, 11 /* MADV_DOFORK */), 0);
    TEST_ASSERT_EQ(p.mm.map_count, 1);
  });

  test('MADV_FREE keeps the data (no reclaim here) and marks the pages lazily freeable', ({ host }) => {
    const p = host.process();
    const a = mmap_ok(p, 0, PG, RW, ANON);
    store_ok(p, a, [3]);
    TEST_ASSERT_EQ(p.madvise(a, PG, MADV_FREE), 0);
    TEST_ASSERT_EQ(load_ok(p, a, 1), Uint8Array.of(3));
  });
});
