/**
 * User loads and stores through the page tables: the signals a C program gets (checked on Linux
 * 6.18 with sigsetjmp/siglongjmp handlers recording si_signo, si_code and si_addr), copy-on-write,
 * the shared zero page, fault-around, and the refcounts and mapcounts the faults leave.
 */
import { describe } from 'vitest';
import { PAGE_SIZE, type Pfn } from '@cocosim/core';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_GROWSDOWN,
  MAP_PRIVATE,
  MAP_SHARED,
  MADV_GUARD_INSTALL,
  MADV_GUARD_REMOVE,
  MM_ANONPAGES,
  MM_SHMEMPAGES,
  PROT_EXEC,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  PTE_MARKER_POISONED,
  SWP_HWPOISON,
  SWP_PTE_MARKER,
  folio_mapcount,
  folio_ref_count,
  folio_test_anon,
  pte_index,
  pte_offset_map,
  set_swp_pte_at,
  type Process,
} from '@cocosim/mm';
import { test } from '../lib/fixtures.js';
import { TEST_ASSERT, TEST_ASSERT_EQ } from '../lib/test_util.js';
import { expect_sig, load_ok, mmap_ok, pagemap, store_ok } from './mm_util.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const PG = BigInt(PAGE_SIZE);
const H = 0x3000_0000_0000n;

function memfd_with(p: Process, pages: number, fill: (i: number) => number): number {
  const fd = p.memfd_create('f', 0);
  TEST_ASSERT(p.ftruncate(fd, pages * PAGE_SIZE) === 0);
  for (let i = 0; i < pages; i++) TEST_ASSERT(p.pwrite(fd, Uint8Array.of(fill(i)), i * PAGE_SIZE) === 1);
  return fd;
}

describe('signals', () => {
  test('SIGSEGV: MAPERR for no VMA, ACCERR for the wrong access, with si_addr exact', ({ host }) => {
    const p = host.process();
    const ro = mmap_ok(p, 0, PG, PROT_READ, ANON);
    const none = mmap_ok(p, 0, PG, PROT_NONE, ANON);
    const wo = mmap_ok(p, 0, PG, PROT_WRITE, ANON);
    const xo = mmap_ok(p, 0, PG, PROT_EXEC, ANON);
    /* load PROT_EXEC only: ok; load PROT_WRITE only: ok (x86 cannot do write- or exec-only) */
    TEST_ASSERT_EQ(load_ok(p, xo + 5n, 1), Uint8Array.of(0));
    TEST_ASSERT_EQ(load_ok(p, wo, 1), Uint8Array.of(0));
    /* load/store PROT_NONE: sig=11 code=2; store RO: sig=11 code=2; load RO ok */
    expect_sig(p.load(none + 7n, 1), 'SIGSEGV', 'SEGV_ACCERR', none + 7n);
    expect_sig(p.store(none, Uint8Array.of(1)), 'SIGSEGV', 'SEGV_ACCERR', none);
    expect_sig(p.store(ro + 100n, Uint8Array.of(1)), 'SIGSEGV', 'SEGV_ACCERR', ro + 100n);
    load_ok(p, ro, 1);
    /* load/store unmapped: sig=11 code=1 */
    expect_sig(p.load(0x2000_0000_0000n, 1), 'SIGSEGV', 'SEGV_MAPERR', 0x2000_0000_0000n);
    expect_sig(p.store(0x2000_0000_0000n, Uint8Array.of(1)), 'SIGSEGV', 'SEGV_MAPERR', 0x2000_0000_0000n);
    /* the store after a read fault of the zero page is a COW fault, still ACCERR when RO */
    expect_sig(p.store(ro, Uint8Array.of(1)), 'SIGSEGV', 'SEGV_ACCERR', ro);
    /* non-canonical: #GP, SI_KERNEL with si_addr 0; kernel half: MAPERR */
    expect_sig(p.load(0x8000_0000_0000n, 1), 'SIGSEGV', 'SI_KERNEL', 0n);
    expect_sig(p.load(0xffff_8000_0000_0000n, 1), 'SIGSEGV', 'SEGV_MAPERR', 0xffff_8000_0000_0000n);
  });

  test('SIGBUS BUS_ADRERR past the end of a shared memfd; si_addr of a crossing access', ({ host }) => {
    const p = host.process();
    const fd = memfd_with(p, 2, () => 0);
    const f = mmap_ok(p, 0, 4n * PG, RW, MAP_SHARED, fd);
    store_ok(p, f, [1]);
    /* memfd load page 2 (beyond EOF) sig=7 code=2; store page 3 sig=7 code=2 */
    expect_sig(p.load(f + 2n * PG, 1), 'SIGBUS', 'BUS_ADRERR', f + 2n * PG);
    expect_sig(p.store(f + 3n * PG + 5n, Uint8Array.of(1)), 'SIGBUS', 'BUS_ADRERR', f + 3n * PG + 5n);
    /* An access crossing into the bad page faults at that page's first byte; a store has written
     * the bytes before it (rep movsb). */
    expect_sig(p.store(f + 2n * PG - 2n, Uint8Array.of(7, 8, 9, 10)), 'SIGBUS', 'BUS_ADRERR', f + 2n * PG);
    TEST_ASSERT_EQ(load_ok(p, f + 2n * PG - 2n, 2), Uint8Array.of(7, 8));
    expect_sig(p.load(f + 2n * PG - 2n, 4), 'SIGBUS', 'BUS_ADRERR', f + 2n * PG);
  });

  test('hwpoison entries and poisoned markers: SIGBUS BUS_MCEERR_AR with si_addr_lsb 12', ({ host }) => {
    const p = host.process();
    const a = mmap_ok(p, H, 2n * PG, RW, ANON | MAP_FIXED);
    store_ok(p, a, [1]);
    store_ok(p, a + PG, [1]);
    /* what try_to_unmap() leaves after memory_failure(): a hwpoison entry instead of the PTE */
    const vpn = Number(a / PG);
    const t = pte_offset_map(p.mm.pgd, vpn)!;
    const pfn = pagemap(p, a)!;
    set_swp_pte_at(t, pte_index(vpn), SWP_HWPOISON, pfn);
    set_swp_pte_at(t, pte_index(vpn + 1), SWP_PTE_MARKER, PTE_MARKER_POISONED);
    const r = p.load(a + 9n, 1);
    expect_sig(r, 'SIGBUS', 'BUS_MCEERR_AR', a + 9n);
    TEST_ASSERT_EQ((r as { si_addr_lsb?: number }).si_addr_lsb, 12);
    expect_sig(p.store(a + PG, Uint8Array.of(1)), 'SIGBUS', 'BUS_MCEERR_AR', a + PG);
  });

  test('a load consuming poisoned memory without CONFIG_MEMORY_FAILURE: machine check, kill_me_now() SIGBUS', ({ host }) => {
    /*
     * The oracle's kernel has no memory-failure handling: kill_me_maybe() gets -ENXIO from the
     * memory_failure() stub and sends a plain SIGBUS (SI_KERNEL, no address); the page stays.
     * With it, see test/mm/memory_failure_test.
     */
    const p = host.process();
    const a = mmap_ok(p, 0, PG, RW, ANON);
    store_ok(p, a, [1]);
    host.phys.poison(pagemap(p, a)!, 3);
    load_ok(p, a, 64);
    expect_sig(p.load(a + 3n * 64n + 1n, 1), 'SIGBUS', 'SI_KERNEL', 0n);
    store_ok(p, a + 3n * 64n, [5]);
  });

  test('guard regions: SIGSEGV SEGV_MAPERR; MADV_GUARD_REMOVE restores access', ({ host }) => {
    const p = host.process();
    const a = mmap_ok(p, 0, 3n * PG, RW, ANON);
    store_ok(p, a + PG, [3]);
    TEST_ASSERT_EQ(p.madvise(a + PG, PG, MADV_GUARD_INSTALL), 0);
    expect_sig(p.load(a + PG, 1), 'SIGSEGV', 'SEGV_MAPERR', a + PG);
    TEST_ASSERT_EQ(p.mm.get_mm_counter(MM_ANONPAGES), 0, 'the page behind the guard was zapped');
    TEST_ASSERT_EQ(p.madvise(a + PG, PG, MADV_GUARD_REMOVE), 0);
    TEST_ASSERT_EQ(load_ok(p, a + PG, 1), Uint8Array.of(0));
  });

  test('a MAP_GROWSDOWN mapping grows on a fault below it, not within the guard gap of another', ({ host }) => {
    const p = host.process();
    const s = mmap_ok(p, H, PG, RW, ANON | MAP_GROWSDOWN | MAP_FIXED);
    store_ok(p, s - 3n * PG, [1]);
    TEST_ASSERT_EQ(p.mm.mm_mt.mtree_load(Number(s / PG) - 3)?.vm_start, s - 3n * PG);
    mmap_ok(p, H - 8n * PG, PG, RW, ANON | MAP_FIXED);
    expect_sig(p.store(s - 5n * PG, Uint8Array.of(1)), 'SIGSEGV', 'SEGV_MAPERR', s - 5n * PG);
  });
});

describe('anonymous memory', () => {
  test('read faults map the shared zero page; the first write gets a zeroed page of its own', ({ host }) => {
    const p = host.process();
    const store = host.kernel.store;
    const a = mmap_ok(p, 0, 4n * PG, RW, ANON);
    /* zero-page pfns equal=1 */
    load_ok(p, a, 1);
    load_ok(p, a + PG, 1);
    TEST_ASSERT_EQ(pagemap(p, a), store.zero_pfn);
    TEST_ASSERT_EQ(pagemap(p, a + PG), store.zero_pfn);
    TEST_ASSERT_EQ(p.mm.get_mm_rss(), 0, 'the zero page is not rss');
    TEST_ASSERT_EQ(folio_ref_count(store, store.zero_pfn), 1, 'nor referenced by its mappings');
    /* after write pfn differs=1 */
    store_ok(p, a + 10n, [5]);
    const pfn = pagemap(p, a)!;
    TEST_ASSERT(pfn !== store.zero_pfn);
    TEST_ASSERT_EQ(load_ok(p, a, 16), Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0));
    TEST_ASSERT_EQ([folio_ref_count(store, pfn), folio_mapcount(store, pfn), folio_test_anon(store, pfn)], [1, 1, true]);
    TEST_ASSERT_EQ(p.mm.get_mm_counter(MM_ANONPAGES), 1);
    /* a second write to the same page does not fault again */
    const c = host.cost.measure('store', () => store_ok(p, a + 11n, [6]));
    TEST_ASSERT_EQ(c.cost.items.length, 0);
    TEST_ASSERT_EQ(folio_ref_count(store, store.zero_pfn), 1);
  });

  test('a write to an exclusive anon page after mprotect(RO)->(RW) reuses it', ({ host }) => {
    const p = host.process();
    const a = mmap_ok(p, 0, PG, RW, ANON);
    store_ok(p, a, [1]);
    const pfn = pagemap(p, a);
    TEST_ASSERT_EQ(p.mprotect(a, PG, PROT_READ), 0);
    expect_sig(p.store(a, Uint8Array.of(2)), 'SIGSEGV', 'SEGV_ACCERR', a);
    TEST_ASSERT_EQ(p.mprotect(a, PG, RW), 0);
    const c = host.cost.measure('store', () => store_ok(p, a, [2]));
    TEST_ASSERT_EQ(c.cost.items.length, 0, 'the PTE was made writable by mprotect: no fault');
    TEST_ASSERT_EQ(pagemap(p, a), pfn);
    TEST_ASSERT_EQ(load_ok(p, a, 1), Uint8Array.of(2));
  });
});

describe('file mappings', () => {
  test('MAP_PRIVATE of a memfd: reads share the page cache, writes copy (COW)', ({ host }) => {
    const p = host.process();
    const store = host.kernel.store;
    const fd = memfd_with(p, 4, (i) => 0x41 + i);
    const s = mmap_ok(p, 0, 4n * PG, RW, MAP_SHARED, fd);
    const pv = mmap_ok(p, 0, 4n * PG, RW, MAP_PRIVATE, fd);
    /* private sees shared write: A */
    TEST_ASSERT_EQ(load_ok(p, pv, 1), Uint8Array.of(0x41));
    const cache = pagemap(p, pv)!;
    TEST_ASSERT_EQ(folio_test_anon(store, cache), false);
    store_ok(p, s, [0x61]);
    TEST_ASSERT_EQ(load_ok(p, pv, 1), Uint8Array.of(0x61), 'a shared write shows through an uncopied private page');
    TEST_ASSERT_EQ(pagemap(p, s), cache, 'the same page-cache page');
    /* private after own write: X, shared: A */
    store_ok(p, pv, [0x58]);
    const copy = pagemap(p, pv)!;
    TEST_ASSERT(copy !== cache && folio_test_anon(store, copy));
    TEST_ASSERT_EQ(load_ok(p, pv, 2), Uint8Array.of(0x58, 0), 'the copy holds the page as it was');
    TEST_ASSERT_EQ(load_ok(p, s, 1), Uint8Array.of(0x61));
    TEST_ASSERT_EQ(folio_mapcount(store, cache), 1, 'only the shared mapping maps the cache page now');
    TEST_ASSERT_EQ(folio_ref_count(store, cache), 2, 'page cache + shared PTE');
    /* a write fault on an unmapped private page copies directly (do_cow_fault) */
    store_ok(p, pv + 2n * PG, [0x7a]);
    TEST_ASSERT_EQ(load_ok(p, s + 2n * PG, 1), Uint8Array.of(0x43));
    TEST_ASSERT_EQ(p.mm.get_mm_counter(MM_ANONPAGES), 2);
  });

  test('a read fault maps the 16 pages around it that are in the page cache (fault-around)', ({ host }) => {
    const p = host.process();
    const fd = memfd_with(p, 64, () => 0x7a);
    const s = mmap_ok(p, H, 64n * PG, RW, MAP_SHARED | MAP_FIXED, fd);
    load_ok(p, s + 5n * PG, 1);
    /* fault-around shared read of page 5: present 1111111111111111000000... */
    const present = Array.from({ length: 40 }, (_, i) => (pagemap(p, s + BigInt(i) * PG) === undefined ? 0 : 1)).join('');
    TEST_ASSERT_EQ(present, '1111111111111111000000000000000000000000');
    TEST_ASSERT_EQ(p.mm.get_mm_counter(MM_SHMEMPAGES), 16);
    TEST_ASSERT_EQ(p.munmap(s, 64n * PG), 0);
    /* private read at vma start (pgoff 7, addr idx 3): present 000111111111111111100000 */
    const v = mmap_ok(p, H + 3n * PG, 20n * PG, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 7n * PG);
    load_ok(p, v, 1);
    const present2 = Array.from({ length: 24 }, (_, i) => (pagemap(p, H + BigInt(i) * PG) === undefined ? 0 : 1)).join('');
    TEST_ASSERT_EQ(present2, '000111111111111111100000');
    /* shared write of page 21: only that page */
    TEST_ASSERT_EQ(p.munmap(v, 20n * PG), 0);
    const w = mmap_ok(p, H, 64n * PG, RW, MAP_SHARED | MAP_FIXED, fd);
    store_ok(p, w + 21n * PG, [1]);
    const present3 = Array.from({ length: 40 }, (_, i) => (pagemap(p, w + BigInt(i) * PG) === undefined ? 0 : 1)).join('');
    TEST_ASSERT_EQ(present3, '0000000000000000000001000000000000000000');
  });

  test('each PTE mapping a page-cache page holds one reference and one mapcount', ({ host }) => {
    const p = host.process();
    const store = host.kernel.store;
    const fd = memfd_with(p, 1, () => 1);
    const a = mmap_ok(p, 0, PG, RW, MAP_SHARED, fd);
    const b = mmap_ok(p, 0, PG, PROT_READ, MAP_SHARED, fd);
    load_ok(p, a, 1);
    load_ok(p, b, 1);
    const pfn = pagemap(p, a) as Pfn;
    TEST_ASSERT_EQ(pagemap(p, b), pfn);
    TEST_ASSERT_EQ([folio_ref_count(store, pfn), folio_mapcount(store, pfn)], [3, 2]);
    /* a shared writable mapping of shmem maps writable at read faults: the store does not fault */
    const c = host.cost.measure('store', () => store_ok(p, a, [2]));
    TEST_ASSERT_EQ(c.cost.items.length, 0);
    TEST_ASSERT_EQ(p.munmap(a, PG), 0);
    TEST_ASSERT_EQ(p.munmap(b, PG), 0);
    TEST_ASSERT_EQ([folio_ref_count(store, pfn), folio_mapcount(store, pfn)], [1, 0]);
  });
});
