/**
 * FOLL_LONGTERM read-only pins of read-only PMD-mapped anon memory (mm/gup.c gup_must_unshare()
 * -> FAULT_FLAG_UNSHARE -> mm/memory.c wp_huge_pmd() -> mm/huge_memory.c do_huge_pmd_wp_page()):
 * the huge zero folio is replaced by a fresh THP (do_huge_zero_wp_pmd(), splitting to PTEs when
 * no THP is free), an exclusive THP made read-only by mprotect is pinned as it is. Every pin
 * terminates. Real-kernel behaviour: test/mm/c/thp_longterm_unshare.c (.out).
 */
import { describe } from 'vitest';
import { Errno, PAGE_SIZE } from '@cocosim/core';
import {
  FOLL_LONGTERM,
  FOLL_WRITE,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  PageAnonExclusive,
  folio_pincount,
  folio_test_anon,
  is_huge_zero_pfn,
  page_folio,
  pin_user_pages,
  pin_user_pages_fast,
  unpin_user_pages,
  type Process,
} from '@cocosim/mm';
import { test } from '../lib/fixtures.js';
import { TEST_ASSERT, TEST_ASSERT_EQ } from '../lib/test_util.js';
import { load_ok, mmap_ok, pagemap, store_ok } from './mm_util.js';

const PG = BigInt(PAGE_SIZE);
const H = 0x3000_0000_0000n;
const vpn = (addr: bigint): number => Number(addr / PG);

/** A MADV_HUGEPAGE anonymous private 2 MiB region at H, read-faulted: the huge zero folio. */
function huge_zero(p: Process, prot = PROT_READ | PROT_WRITE): bigint {
  const a = mmap_ok(p, H, 512n * PG, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
  TEST_ASSERT_EQ(p.madvise(a, 512n * PG, MADV_HUGEPAGE), 0);
  TEST_ASSERT_EQ(load_ok(p, a + 5n * PG, 1), Uint8Array.of(0));
  TEST_ASSERT(p.mm.pgd.pmds.has(vpn(a) / 512) && is_huge_zero_pfn(p.kernel, pagemap(p, a)!), 'the read fault mapped the huge zero folio');
  return a;
}

describe('FOLL_LONGTERM pins of the huge zero folio', () => {
  for (const [name, flags] of [
    ['read-only', 0],
    ['FOLL_WRITE', FOLL_WRITE],
  ] as const) {
    test(`${name}: the pin unshares into a fresh PMD-mapped THP`, ({ host }) => {
      const p = host.process();
      const store = host.kernel.store;
      const a = huge_zero(p);
      const pins: number[] = [];
      TEST_ASSERT_EQ(pin_user_pages(p.mm, vpn(a) + 3, 2, FOLL_LONGTERM | flags, pins), 2);
      const folio = page_folio(store, pins[0]);
      TEST_ASSERT(!is_huge_zero_pfn(host.kernel, pins[0]) && folio_test_anon(store, folio) && PageAnonExclusive(store, folio));
      TEST_ASSERT_EQ(pins, [folio + 3, folio + 4]);
      TEST_ASSERT(p.mm.pgd.pmds.has(vpn(a) / 512), 'still PMD-mapped');
      TEST_ASSERT_EQ(pagemap(p, a), folio);
      TEST_ASSERT_EQ(folio_pincount(store, folio), 2);
      TEST_ASSERT_EQ(load_ok(p, a + 3n * PG, 2), Uint8Array.of(0, 0));
      store_ok(p, a + 3n * PG, [7]);
      TEST_ASSERT_EQ(pagemap(p, a + 3n * PG), pins[0], 'the pin sees what the process writes');
      unpin_user_pages(store, pins, 2);
    });
  }

  test('GUP-fast falls back to the slow path, which unshares', ({ host }) => {
    const p = host.process();
    const store = host.kernel.store;
    const a = huge_zero(p);
    const pins: number[] = [];
    TEST_ASSERT_EQ(pin_user_pages_fast(p.mm, vpn(a), 1, FOLL_LONGTERM, pins), 1);
    TEST_ASSERT(!is_huge_zero_pfn(host.kernel, pins[0]) && folio_test_anon(store, pins[0]));
    unpin_user_pages(store, pins, 1);
  });

  test('no THP free: the PMD is split and the page unshared by PTEs', ({ host }) => {
    const p = host.process();
    const store = host.kernel.store;
    const a = huge_zero(p);
    /* take every free order-9 block */
    const held: number[] = [];
    for (;;) {
      const pfn = host.kernel.page_alloc.alloc_pages(0, 9);
      if (pfn < 0) break;
      held.push(pfn);
    }
    const pins: number[] = [];
    TEST_ASSERT_EQ(pin_user_pages(p.mm, vpn(a) + 9, 1, FOLL_LONGTERM, pins), 1);
    TEST_ASSERT(!p.mm.pgd.pmds.has(vpn(a) / 512), 'split to PTEs');
    TEST_ASSERT(folio_test_anon(store, pins[0]) && pagemap(p, a + 9n * PG) === pins[0]);
    TEST_ASSERT(pagemap(p, a) === store.zero_pfn, 'the other PTEs map the small zero page');
    unpin_user_pages(store, pins, 1);
    for (const pfn of held) host.kernel.page_alloc.__free_pages(pfn, 9);
  });

  test('PROT_READ mapping: a read-only long-term pin unshares too, FOLL_WRITE is -EFAULT', ({ host }) => {
    const p = host.process();
    const store = host.kernel.store;
    const a = huge_zero(p, PROT_READ);
    TEST_ASSERT_EQ(pin_user_pages(p.mm, vpn(a), 1, FOLL_LONGTERM | FOLL_WRITE, []), -Errno.EFAULT);
    const pins: number[] = [];
    TEST_ASSERT_EQ(pin_user_pages(p.mm, vpn(a), 1, FOLL_LONGTERM, pins), 1);
    TEST_ASSERT(!is_huge_zero_pfn(host.kernel, pins[0]) && folio_test_anon(store, pins[0]));
    TEST_ASSERT_EQ(pagemap(p, a), pins[0]);
    unpin_user_pages(store, pins, 1);
  });

  test('after mprotect round trips the huge zero folio still unshares', ({ host }) => {
    const p = host.process();
    const store = host.kernel.store;
    const a = huge_zero(p);
    for (const prot of [PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE]) TEST_ASSERT_EQ(p.mprotect(a, 512n * PG, prot), 0);
    TEST_ASSERT(is_huge_zero_pfn(host.kernel, pagemap(p, a)!));
    const pins: number[] = [];
    TEST_ASSERT_EQ(pin_user_pages(p.mm, vpn(a) + 1, 1, FOLL_LONGTERM, pins), 1);
    TEST_ASSERT(!is_huge_zero_pfn(host.kernel, pins[0]) && folio_test_anon(store, page_folio(store, pins[0])));
    unpin_user_pages(store, pins, 1);
  });

  test('process_vm_readv (a short-term pin) reads the huge zero folio as it is', ({ host }) => {
    const p = host.process();
    const a = huge_zero(p);
    const zero = pagemap(p, a);
    const buf = new Uint8Array(3 * PAGE_SIZE).fill(0xaa);
    TEST_ASSERT_EQ(p.process_vm_readv(p, [buf], 1, [{ iov_base: a + 100n, iov_len: buf.length }], 1, 0), buf.length);
    TEST_ASSERT(buf.every((b) => b === 0));
    TEST_ASSERT_EQ(pagemap(p, a), zero, 'not unshared');
  });
});

describe('FOLL_LONGTERM pins of a THP made read-only', () => {
  test('write-faulted THP, mprotect(PROT_READ): the exclusive THP is pinned in place', ({ host }) => {
    const p = host.process();
    const store = host.kernel.store;
    const a = mmap_ok(p, H, 512n * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
    TEST_ASSERT_EQ(p.madvise(a, 512n * PG, MADV_HUGEPAGE), 0);
    store_ok(p, a + 2n * PG, [5]);
    const folio = pagemap(p, a)!;
    TEST_ASSERT(p.mm.pgd.pmds.has(vpn(a) / 512) && folio_test_anon(store, folio));
    TEST_ASSERT_EQ(p.mprotect(a, 512n * PG, PROT_READ), 0);
    TEST_ASSERT_EQ(pin_user_pages(p.mm, vpn(a) + 2, 1, FOLL_LONGTERM | FOLL_WRITE, []), -Errno.EFAULT);
    const pins: number[] = [];
    TEST_ASSERT_EQ(pin_user_pages(p.mm, vpn(a) + 2, 1, FOLL_LONGTERM, pins), 1);
    TEST_ASSERT_EQ(pins, [folio + 2]);
    const fast: number[] = [];
    TEST_ASSERT_EQ(pin_user_pages_fast(p.mm, vpn(a) + 3, 1, FOLL_LONGTERM, fast), 1);
    TEST_ASSERT_EQ(fast, [folio + 3]);
    const buf = new Uint8Array(1);
    TEST_ASSERT_EQ(p.process_vm_readv(p, [buf], 1, [{ iov_base: a + 2n * PG, iov_len: 1 }], 1, 0), 1);
    TEST_ASSERT_EQ(buf, Uint8Array.of(5));
    unpin_user_pages(store, pins, 1);
    unpin_user_pages(store, fast, 1);
  });
});
