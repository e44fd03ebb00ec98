/**
 * Anonymous transparent huge pages with the oracle's setting (transparent_hugepage=madvise), as
 * /proc/self/smaps (AnonHugePages) and /proc/self/pagemap show them on Linux 6.18
 * (test/mm/c/thp_anon.c and .out).
 */
import { describe } from 'vitest';
import { PAGE_SIZE } from '@cocosim/core';
import {
  MADV_DONTNEED,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MM_ANONPAGES,
  PROT_READ,
  PROT_WRITE,
  _PAGE_SPECIAL,
  folio_mapcount,
  folio_ref_count,
  folio_test_large,
  pte_present,
  vm_sysctl,
  type Process,
} from '@cocosim/mm';
import { test } from '../lib/fixtures.js';
import { TEST_ASSERT, TEST_ASSERT_EQ } from '../lib/test_util.js';
import { load_ok, mmap_ok, pagemap, store_ok } from './mm_util.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const PG = BigInt(PAGE_SIZE);
const H = 0x3000_0000_0000n;
const M2 = 2n << 20n;

/** smaps' AnonHugePages of [lo, hi) in kB: anon memory mapped by PMDs. */
function anon_huge_kb(p: Process, lo: bigint, hi: bigint): number {
  let kb = 0;
  for (const [pmd, e] of p.mm.pgd.pmds) {
    const a = BigInt(pmd) * M2;
    if (a >= lo && a < hi && pte_present(e.flags) && !(e.flags & _PAGE_SPECIAL)) kb += 2048;
  }
  return kb;
}

describe('anonymous THPs', () => {
  test('only with MADV_HUGEPAGE; a read maps the huge zero folio, a write a zeroed THP', ({ host }) => {
    const p = host.process();
    const store = host.kernel.store;
    TEST_ASSERT_EQ(vm_sysctl(host.kernel).transparent_hugepage, 'madvise');
    /* no madvise: write -> AnonHugePages 0 kB */
    const a = mmap_ok(p, H, 2n * M2, RW, ANON | MAP_FIXED);
    store_ok(p, a, [1]);
    TEST_ASSERT_EQ(anon_huge_kb(p, a, a + 2n * M2), 0);
    TEST_ASSERT_EQ(p.munmap(a, 2n * M2), 0);
    /* MADV_HUGEPAGE read: AnonHugePages 0 kB; pfn(a+4096)-pfn(a)=1; present */
    const b = mmap_ok(p, H, 2n * M2, RW, ANON | MAP_FIXED);
    TEST_ASSERT_EQ(p.madvise(b, 2n * M2, MADV_HUGEPAGE), 0);
    TEST_ASSERT_EQ(load_ok(p, b + 100n, 1), Uint8Array.of(0));
    TEST_ASSERT_EQ(anon_huge_kb(p, b, b + 2n * M2), 0);
    TEST_ASSERT_EQ(pagemap(p, b + PG)! - pagemap(p, b)!, 1);
    TEST_ASSERT_EQ(p.mm.get_mm_rss(), 0);
    /* then write: AnonHugePages 2048 kB, pfns contiguous and aligned, page 100 present */
    store_ok(p, b + 1n, [2]);
    TEST_ASSERT_EQ(anon_huge_kb(p, b, b + 2n * M2), 2048);
    const head = pagemap(p, b)!;
    TEST_ASSERT_EQ([head % 512, pagemap(p, b + 5n * PG)! - head], [0, 5]);
    TEST_ASSERT(folio_test_large(store, head));
    TEST_ASSERT_EQ([folio_ref_count(store, head), folio_mapcount(store, head)], [1, 1]);
    TEST_ASSERT_EQ(p.mm.get_mm_counter(MM_ANONPAGES), 512);
    TEST_ASSERT_EQ(load_ok(p, b, 3), Uint8Array.of(0, 2, 0));
    /* write second 2M: AnonHugePages 4096 kB */
    store_ok(p, b + M2 + 7n, [3]);
    TEST_ASSERT_EQ(anon_huge_kb(p, b, b + 2n * M2), 4096);
  });

  test('a partial munmap, MADV_DONTNEED or mprotect splits the PMD into PTEs', ({ host }) => {
    const p = host.process();
    const store = host.kernel.store;
    const a = mmap_ok(p, H, 2n * M2, RW, ANON | MAP_FIXED);
    TEST_ASSERT_EQ(p.madvise(a, 2n * M2, MADV_HUGEPAGE), 0);
    store_ok(p, a + 1n, [2]);
    store_ok(p, a + M2, [3]);
    const head = pagemap(p, a)!;
    /* munmap 4K inside: AnonHugePages 0 kB, page0=2, page2 present */
    TEST_ASSERT_EQ(p.munmap(a + PG, PG), 0);
    TEST_ASSERT_EQ(anon_huge_kb(p, a, a + M2), 0);
    TEST_ASSERT_EQ(load_ok(p, a + 1n, 1), Uint8Array.of(2));
    TEST_ASSERT_EQ(pagemap(p, a + 2n * PG), head + 2);
    TEST_ASSERT_EQ([folio_ref_count(store, head), folio_mapcount(store, head)], [511, 511]);
    TEST_ASSERT_EQ(p.mm.get_mm_counter(MM_ANONPAGES), 511 + 512);
    /* DONTNEED 4K of second: AnonHugePages 0 kB, page1 of second present */
    TEST_ASSERT_EQ(p.madvise(a + M2, PG, MADV_DONTNEED), 0);
    TEST_ASSERT_EQ(anon_huge_kb(p, a + M2, a + 2n * M2), 0);
    TEST_ASSERT(pagemap(p, a + M2 + PG) !== undefined);
    TEST_ASSERT_EQ(load_ok(p, a + M2 + 7n, 1), Uint8Array.of(0));
    TEST_ASSERT_EQ(p.munmap(a, 2n * M2), 0);
    TEST_ASSERT_EQ(folio_ref_count(store, head), 0, 'the split THP is freed when its last PTE goes');
    TEST_ASSERT_EQ(p.mm.get_mm_rss(), 0);
  });

  test('mprotect of a whole THP keeps it huge; back to RW and a write reuses it in place', ({ host }) => {
    const p = host.process();
    const a = mmap_ok(p, H, 2n * M2, RW, ANON | MAP_FIXED);
    TEST_ASSERT_EQ(p.madvise(a, 2n * M2, MADV_HUGEPAGE), 0);
    store_ok(p, a, [1]);
    store_ok(p, a + M2, [1]);
    /* mprotect 4K: AnonHugePages 0; whole 2M RO stays 2048; RW again + write 2048 -> 2048 */
    TEST_ASSERT_EQ(p.mprotect(a, PG, PROT_READ), 0);
    TEST_ASSERT_EQ(anon_huge_kb(p, a, a + M2), 0);
    TEST_ASSERT_EQ(p.mprotect(a + M2, M2, PROT_READ), 0);
    TEST_ASSERT_EQ(anon_huge_kb(p, a + M2, a + 2n * M2), 2048);
    const head = pagemap(p, a + M2);
    TEST_ASSERT_EQ(p.mprotect(a + M2, M2, RW), 0);
    store_ok(p, a + M2 + 1n, [5]);
    TEST_ASSERT_EQ(anon_huge_kb(p, a + M2, a + 2n * M2), 2048);
    TEST_ASSERT_EQ(pagemap(p, a + M2), head);
  });

  test('a VMA that cannot hold an aligned 2 MiB range gets small pages', ({ host }) => {
    const p = host.process();
    const u = mmap_ok(p, H + 4n * M2 + PG, M2, RW, ANON | MAP_FIXED);
    TEST_ASSERT_EQ(p.madvise(u, M2, MADV_HUGEPAGE), 0);
    store_ok(p, u, [1]);
    TEST_ASSERT_EQ(anon_huge_kb(p, H, H + 8n * M2), 0);
    TEST_ASSERT_EQ(p.mm.get_mm_counter(MM_ANONPAGES), 1);
  });
});
