/**
 * GUP selftests in the style of tools/testing/selftests/mm/gup_test.c and gup_longterm.c: what
 * pin_user_pages*() and get_user_pages*() take and give back (refcounts, pincounts), the
 * partial-count results, the flag checks of is_valid_gup_args(), FOLL_FORCE's COW (what
 * /proc/pid/mem does, checked on Linux 6.18 in test/mm/c/foll_force.c), -EHWPOISON, and
 * FOLL_LONGTERM migrating pages out of ZONE_MOVABLE.
 */
import { describe } from 'vitest';
import { Errno, PAGE_SIZE, WarnSink, type HostRegistrar } from '@cocosim/core';
import {
  FOLL_FORCE,
  FOLL_GET,
  FOLL_HWPOISON,
  FOLL_LONGTERM,
  FOLL_PIN,
  FOLL_TOUCH,
  FOLL_WRITE,
  GUP_PIN_COUNTING_BIAS,
  Kernel,
  MFD_HUGETLB,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  PageAllocator,
  PageStore,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  SetPageHWPoison,
  TTU_HWPOISON,
  VM_PFNMAP,
  ZONE_MOVABLE,
  _PAGE_RW as PTE_RW,
  folio_lock,
  folio_maybe_dma_pinned,
  folio_pincount,
  folio_ref_count,
  folio_test_anon,
  folio_unlock,
  get_user_pages,
  get_user_pages_fast,
  get_user_pages_fast_only,
  get_user_pages_remote,
  hugetlb_pool,
  page_folio,
  page_zonenum,
  pin_user_pages,
  pin_user_pages_fast,
  pin_user_pages_remote,
  put_page,
  set_max_huge_pages,
  try_to_unmap,
  unpin_user_pages,
  unpin_user_pages_dirty_lock,
  vma_lookup,
  type Process,
} from '@cocosim/mm';
import { createSimHost, test } from '../lib/fixtures.js';
import { TEST_ASSERT, TEST_ASSERT_EQ, expectWarning } from '../lib/test_util.js';
import { load_ok, mmap_ok, pagemap, store_ok } from './mm_util.js';

const PG = BigInt(PAGE_SIZE);
const RW = PROT_READ | PROT_WRITE;
const H = 0x3000_0000_0000n;

const vpn = (addr: bigint): number => Number(addr / PG);

/** An anonymous private mapping of `pages` pages at H, each page written with its index. */
function anon(p: Process, pages: number, at = H): bigint {
  const a = mmap_ok(p, at, BigInt(pages) * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
  for (let k = 0; k < pages; k++) store_ok(p, a + BigInt(k) * PG, [k + 1]);
  return a;
}

describe('pin and get counts (gup_test PIN_BASIC_TEST / GUP_BASIC_TEST)', () => {
  test('order-0 folios: a pin adds GUP_PIN_COUNTING_BIAS, a get 1, and both come back', ({ host }) => {
    const p = host.process();
    const a = anon(p, 4);
    const store = host.kernel.store;
    const pins: number[] = [];
    TEST_ASSERT_EQ(pin_user_pages_fast(p.mm, vpn(a), 4, FOLL_WRITE, pins), 4);
    for (let k = 0; k < 4; k++) {
      TEST_ASSERT_EQ(pins[k], pagemap(p, a + BigInt(k) * PG));
      TEST_ASSERT_EQ(folio_ref_count(store, pins[k]), 1 + GUP_PIN_COUNTING_BIAS);
      TEST_ASSERT(folio_maybe_dma_pinned(store, pins[k]));
    }
    const gets: number[] = [];
    TEST_ASSERT_EQ(get_user_pages_fast(p.mm, vpn(a), 4, 0, gets), 4);
    TEST_ASSERT_EQ(folio_ref_count(store, gets[0]), 2 + GUP_PIN_COUNTING_BIAS);
    for (const pg of gets) put_page(store, pg);
    unpin_user_pages(store, pins, 4);
    for (let k = 0; k < 4; k++) {
      TEST_ASSERT_EQ(folio_ref_count(store, pins[k]), 1);
      TEST_ASSERT(!folio_maybe_dma_pinned(store, pins[k]));
    }
  });
});

describe('THP folios (gup_test with a PMD-mapped THP)', () => {
  test('pins of a THP count one reference and one _pincount per page', ({ host }) => {
    const p = host.process();
    const store = host.kernel.store;
    const a = mmap_ok(p, H, 512n * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
    TEST_ASSERT_EQ(p.madvise(a, 512n * PG, MADV_HUGEPAGE), 0);
    store_ok(p, a, [1]);
    TEST_ASSERT(p.mm.pgd.pmds.has(vpn(a) / 512), 'the write made a THP');
    const folio = page_folio(store, pagemap(p, a)!);
    const pins: number[] = [];
    TEST_ASSERT_EQ(pin_user_pages(p.mm, vpn(a), 512, FOLL_WRITE, pins), 512);
    TEST_ASSERT_EQ([folio_ref_count(store, folio), folio_pincount(store, folio)], [1 + 512, 512]);
    TEST_ASSERT_EQ(pins[7], folio + 7);
    const fast: number[] = [];
    TEST_ASSERT_EQ(pin_user_pages_fast(p.mm, vpn(a) + 100, 10, 0, fast), 10);
    TEST_ASSERT_EQ([folio_ref_count(store, folio), folio_pincount(store, folio)], [1 + 522, 522]);
    const gets: number[] = [];
    TEST_ASSERT_EQ(get_user_pages(p.mm, vpn(a), 3, 0, gets), 3);
    TEST_ASSERT_EQ([folio_ref_count(store, folio), folio_pincount(store, folio)], [1 + 525, 522]);
    for (const pg of gets) put_page(store, pg);
    unpin_user_pages(store, fast, 10);
    unpin_user_pages_dirty_lock(host.kernel, pins, 512, false);
    TEST_ASSERT_EQ([folio_ref_count(store, folio), folio_pincount(store, folio)], [1, 0]);
  });
});

describe('partial counts and errors', () => {
  test('the pages before a hole, -EFAULT from it, VM_PFNMAP and PROT_NONE refused', ({ host }) => {
    const p = host.process();
    const store = host.kernel.store;
    const a = anon(p, 3);
    const pages: number[] = [];
    /* 3 pages mapped, then nothing: the count done so far */
    TEST_ASSERT_EQ(pin_user_pages(p.mm, vpn(a), 5, 0, pages), 3);
    unpin_user_pages(store, pages, 3);
    TEST_ASSERT_EQ(get_user_pages(p.mm, vpn(a) + 3, 2, 0, []), -Errno.EFAULT);
    TEST_ASSERT_EQ(pin_user_pages_remote(p.mm, vpn(a) + 3, 2, 0, [], null), -Errno.EFAULT);
    TEST_ASSERT_EQ(get_user_pages_fast(p.mm, vpn(a) + 3, 2, 0, []), -Errno.EFAULT);
    /* without a pages array nothing is taken: the pages are only faulted in */
    TEST_ASSERT_EQ(get_user_pages(p.mm, vpn(a), 3, 0, null), 3);
    TEST_ASSERT_EQ(folio_ref_count(store, pagemap(p, a)!), 1);
    const vma = vma_lookup(p.mm, vpn(a))!;
    vma.vm_flags |= VM_PFNMAP;
    TEST_ASSERT_EQ(get_user_pages(p.mm, vpn(a), 1, 0, []), -Errno.EFAULT);
    vma.vm_flags &= ~VM_PFNMAP;
    TEST_ASSERT_EQ(p.mprotect(a, PG, PROT_NONE), 0);
    TEST_ASSERT_EQ(get_user_pages(p.mm, vpn(a), 1, 0, []), -Errno.EFAULT);
    /* the partial count includes the pages before the PROT_NONE one, faulted in */
    TEST_ASSERT_EQ(p.mprotect(a, PG, RW), 0);
    TEST_ASSERT_EQ(p.mprotect(a + PG, PG, PROT_NONE), 0);
    const two: number[] = [];
    TEST_ASSERT_EQ(get_user_pages_remote(p.mm, vpn(a), 3, FOLL_WRITE, two), 1);
    put_page(store, two[0]);
  });

  test('GUP-fast: only present entries that allow the access, then the slow path', ({ host }) => {
    const p = host.process();
    const store = host.kernel.store;
    const a = mmap_ok(p, H, 4n * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
    store_ok(p, a, [1]);
    load_ok(p, a + PG, 1);
    const pages: number[] = [];
    /* page 0 is mapped writable, page 1 is the (special) zero page: fast-only stops there */
    TEST_ASSERT_EQ(get_user_pages_fast_only(p.mm, vpn(a), 4, 0, pages), 1);
    put_page(store, pages[0]);
    /* with the slow path, a write faults the rest in */
    const all: number[] = [];
    TEST_ASSERT_EQ(pin_user_pages_fast(p.mm, vpn(a), 4, FOLL_WRITE, all), 4);
    TEST_ASSERT(all[1] !== store.zero_pfn, 'the write pin broke the zero page');
    unpin_user_pages(store, all, 4);
    /* a range ending above TASK_SIZE_MAX, or wrapping */
    const top = 2 ** 35 - 1;
    TEST_ASSERT_EQ(get_user_pages_fast(p.mm, top, 2, 0, []), -Errno.EFAULT);
    TEST_ASSERT_EQ(get_user_pages_fast(p.mm, 2 ** 52 - 1, 2, 0, []), -Errno.EOVERFLOW);
  });

  test('is_valid_gup_args(): a WARN and -EINVAL (0 for pin_user_pages*) for impossible arguments', ({ host }) => {
    const p = host.process();
    const a = anon(p, 1);
    const store = host.kernel.store;
    const v = vpn(a);
    expectWarning('is_valid_gup_args: internal GUP flags');
    TEST_ASSERT_EQ(get_user_pages(p.mm, v, 1, FOLL_TOUCH, []), -Errno.EINVAL);
    TEST_ASSERT_EQ(pin_user_pages_fast(p.mm, v, 1, FOLL_PIN, []), -Errno.EINVAL);
    expectWarning('is_valid_gup_args: FOLL_PIN with FOLL_GET');
    TEST_ASSERT_EQ(pin_user_pages(p.mm, v, 1, FOLL_GET, []), 0);
    expectWarning('is_valid_gup_args: FOLL_LONGTERM without FOLL_PIN');
    TEST_ASSERT_EQ(get_user_pages_fast(p.mm, v, 1, FOLL_LONGTERM, []), -Errno.EINVAL);
    expectWarning('is_valid_gup_args: no pages array for FOLL_GET/FOLL_PIN');
    TEST_ASSERT_EQ(pin_user_pages_remote(p.mm, v, 1, 0, null), 0);
    expectWarning('is_valid_gup_args: *locked != 1');
    TEST_ASSERT_EQ(get_user_pages_remote(p.mm, v, 1, 0, [], { locked: 0 }), -Errno.EINVAL);
    /* GUP-fast takes only its own flags */
    expectWarning('gup_fast_fallback_flags');
    TEST_ASSERT_EQ(pin_user_pages_fast(p.mm, v, 1, FOLL_HWPOISON, []), -Errno.EINVAL);
    /* nothing was taken by any of them */
    TEST_ASSERT_EQ(folio_ref_count(store, pagemap(p, a)!), 1);
  });
});

describe('FOLL_FORCE (ptrace, /proc/pid/mem; test/mm/c/foll_force.out)', () => {
  /** What access_remote_vm() does for one byte: GUP with FOLL_FORCE, then a write through the page. */
  function poke(p: Process, addr: bigint, byte: number, write: boolean): number | Uint8Array {
    const pages: number[] = [];
    const ret = get_user_pages_remote(p.mm, vpn(addr), 1, FOLL_FORCE | (write ? FOLL_WRITE : 0), pages, null);
    if (ret !== 1) return ret;
    const pfn = pages[0];
    if (write) p.kernel.phys.write(pfn as never, Number(addr % PG), Uint8Array.of(byte));
    const data = pfn === p.kernel.store.zero_pfn ? new Uint8Array(1) : (p.kernel.phys.read(pfn as never, Number(addr % PG), 1) as Uint8Array);
    put_page(p.kernel.store, pfn);
    return data;
  }

  test('writes COW read-only private mappings; shared ones and holes are refused', ({ host }) => {
    const p = host.process();
    const store = host.kernel.store;
    const fd = p.memfd_create('ff', 0);
    TEST_ASSERT_EQ(p.ftruncate(fd, 4 * PAGE_SIZE), 0);
    TEST_ASSERT_EQ(p.pwrite(fd, new TextEncoder().encode('FFFF'), 0), 4);
    /* "write PROT_READ MAP_PRIVATE memfd (untouched) -> 1; mapping[0]=X file[0]=F anon=1" */
    const pr = mmap_ok(p, H, PG, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0);
    TEST_ASSERT(typeof poke(p, pr, 0x58, true) !== 'number');
    TEST_ASSERT_EQ(load_ok(p, pr, 1), Uint8Array.of(0x58));
    const f0 = new Uint8Array(1);
    TEST_ASSERT_EQ(p.pread(fd, f0, 0), 1);
    TEST_ASSERT_EQ(f0, Uint8Array.of(0x46));
    TEST_ASSERT(folio_test_anon(store, page_folio(store, pagemap(p, pr)!)), 'the poked page is an anonymous COW copy');
    /* "write PROT_READ MAP_SHARED memfd -> -1 EIO" (GUP: -EFAULT) */
    const ps = mmap_ok(p, H + 2n * PG, PG, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0);
    TEST_ASSERT_EQ(poke(p, ps, 0x59, true), -Errno.EFAULT);
    /* "write PROT_READ private anon (untouched) -> 1; anon[0]=Z", and over the zero page */
    const an = mmap_ok(p, H + 4n * PG, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
    TEST_ASSERT(typeof poke(p, an, 0x5a, true) !== 'number');
    TEST_ASSERT_EQ(load_ok(p, an, 1), Uint8Array.of(0x5a));
    const an2 = mmap_ok(p, H + 6n * PG, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
    load_ok(p, an2, 1);
    TEST_ASSERT(typeof poke(p, an2, 0x51, true) !== 'number');
    TEST_ASSERT_EQ(load_ok(p, an2, 1), Uint8Array.of(0x51));
    /* "write PROT_NONE private anon -> 1", "read PROT_NONE private anon -> 1 'N'" */
    const pn = mmap_ok(p, H + 8n * PG, PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
    TEST_ASSERT(typeof poke(p, pn, 0x4e, true) !== 'number');
    TEST_ASSERT_EQ(poke(p, pn, 0, false), Uint8Array.of(0x4e));
    /* "read PROT_NONE MAP_SHARED memfd -> 1 'F'", "write ... -> -1 EIO" */
    const pns = mmap_ok(p, H + 10n * PG, PG, PROT_NONE, MAP_SHARED | MAP_FIXED, fd, 0);
    TEST_ASSERT_EQ(poke(p, pns, 0, false), Uint8Array.of(0x46));
    TEST_ASSERT_EQ(poke(p, pns, 0x53, true), -Errno.EFAULT);
    /* "read hole -> -1 EIO" */
    TEST_ASSERT_EQ(poke(p, H + 12n * PG, 0, false), -Errno.EFAULT);
    /* "write RW->RO private anon (exclusive anon page) -> 1" */
    const rw = mmap_ok(p, H + 14n * PG, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
    store_ok(p, rw, [1]);
    const before = pagemap(p, rw);
    TEST_ASSERT_EQ(p.mprotect(rw, PG, PROT_READ), 0);
    TEST_ASSERT(typeof poke(p, rw, 0x45, true) !== 'number');
    TEST_ASSERT_EQ(pagemap(p, rw), before, 'the exclusive page is written in place');
    TEST_ASSERT_EQ(load_ok(p, rw, 1), Uint8Array.of(0x45));
  });
});

describe('hwpoison', () => {
  test('GUP on a hwpoison entry: -EHWPOISON with FOLL_HWPOISON, else -EFAULT', ({ host }) => {
    const p = host.process();
    const store = host.kernel.store;
    const a = anon(p, 2);
    const held: number[] = [];
    TEST_ASSERT_EQ(get_user_pages(p.mm, vpn(a), 1, 0, held), 1);
    const folio = page_folio(store, held[0]);
    /* what memory-failure does: mark the page, unmap it leaving a hwpoison entry */
    folio_lock(store, folio);
    SetPageHWPoison(store, folio);
    try_to_unmap(host.kernel, folio, TTU_HWPOISON);
    folio_unlock(store, folio);
    TEST_ASSERT_EQ(pagemap(p, a), undefined);
    TEST_ASSERT_EQ(get_user_pages(p.mm, vpn(a), 1, FOLL_HWPOISON, []), -Errno.EHWPOISON);
    TEST_ASSERT_EQ(pin_user_pages(p.mm, vpn(a), 1, 0, []), -Errno.EFAULT);
    /* the pages before it still count */
    TEST_ASSERT_EQ(get_user_pages(p.mm, vpn(a) - 1, 2, FOLL_HWPOISON, null), -Errno.EFAULT);
    put_page(store, held[0]);
  });
});

describe('FOLL_LONGTERM R/O pins of file pages in a COW mapping', () => {
  test('unshare: a long-term read-only pin gets an anonymous copy, a short-term one the page-cache page', ({ host }) => {
    const p = host.process();
    const store = host.kernel.store;
    const fd = p.memfd_create('cow', 0);
    TEST_ASSERT_EQ(p.ftruncate(fd, PAGE_SIZE), 0);
    TEST_ASSERT_EQ(p.pwrite(fd, Uint8Array.of(9), 0), 1);
    const a = mmap_ok(p, H, PG, RW, MAP_PRIVATE | MAP_FIXED, fd, 0);
    load_ok(p, a, 1);
    const cache = pagemap(p, a)!;
    TEST_ASSERT(!folio_test_anon(store, cache));
    const short: number[] = [];
    TEST_ASSERT_EQ(pin_user_pages(p.mm, vpn(a), 1, 0, short), 1);
    TEST_ASSERT_EQ(short[0], cache);
    unpin_user_pages(store, short, 1);
    const longterm: number[] = [];
    TEST_ASSERT_EQ(pin_user_pages(p.mm, vpn(a), 1, FOLL_LONGTERM, longterm), 1);
    TEST_ASSERT(longterm[0] !== cache && folio_test_anon(store, longterm[0]), 'the long-term pin unshared the page');
    TEST_ASSERT_EQ(pagemap(p, a), longterm[0]);
    TEST_ASSERT_EQ(load_ok(p, a, 1), Uint8Array.of(9));
    unpin_user_pages(store, longterm, 1);
  });
});

describe('FOLL_LONGTERM R/O pins of hugetlb pages in a COW mapping', () => {
  test('unshare: the pin gets the private copy of the huge page, mapped read-only', ({ host }) => {
    const p = host.process();
    const store = host.kernel.store;
    TEST_ASSERT_EQ(set_max_huge_pages(host.kernel, hugetlb_pool(host.kernel).default_hstate, 2), 2);
    const fd = p.memfd_create('h', MFD_HUGETLB);
    TEST_ASSERT_EQ(p.ftruncate(fd, 2 << 20), 0);
    /* a page in the page cache (a private read fault of a hole would get an anon page) */
    TEST_ASSERT_EQ(p.fallocate(fd, 0, 0, 2 << 20), 0);
    const a = mmap_ok(p, H, 2n << 20n, RW, MAP_PRIVATE | MAP_FIXED, fd, 0);
    load_ok(p, a, 1);
    const cache = pagemap(p, a)!;
    TEST_ASSERT(!folio_test_anon(store, cache));
    const pins: number[] = [];
    TEST_ASSERT_EQ(pin_user_pages(p.mm, vpn(a) + 3, 1, FOLL_LONGTERM, pins), 1);
    const copy = page_folio(store, pins[0]);
    TEST_ASSERT(copy !== cache && folio_test_anon(store, copy), 'the pin got an anonymous copy');
    TEST_ASSERT_EQ([pagemap(p, a), pins[0]], [copy, copy + 3]);
    TEST_ASSERT((p.mm.pgd.pmds.get(vpn(a) / 512)!.flags & PTE_RW) === 0, 'still read-only');
    TEST_ASSERT_EQ(folio_pincount(store, copy), 1);
    unpin_user_pages(store, pins, 1);
  });
});

/** A host whose upper half of RAM is ZONE_MOVABLE (movablecore=). */
function movable_host(): ReturnType<typeof createSimHost> {
  const nr_pages = 2 ** 18;
  const registrar: HostRegistrar = (root) => {
    const warn = root.resolve(WarnSink);
    const store = new PageStore(nr_pages, { warn, movable: [{ start_pfn: nr_pages / 2, nr_pages: nr_pages / 2 }] });
    root.registerInstance(PageStore, store);
    root.registerInstance(PageAllocator, new PageAllocator(store));
    root.registerInstance(Kernel, root.resolve(Kernel));
  };
  return createSimHost({ seed: 0 }, [registrar]);
}

describe('FOLL_LONGTERM and ZONE_MOVABLE (gup_test PIN_LONGTERM_BENCHMARK, gup_longterm.c)', () => {
  test('a long-term pin migrates a movable page: new pfn, same contents, the mapping follows', async () => {
    const host = movable_host();
    try {
      const p = host.process();
      const store = host.kernel.store;
      const a = anon(p, 2);
      const old = pagemap(p, a)!;
      TEST_ASSERT_EQ(page_zonenum(store, old), ZONE_MOVABLE);
      const pins: number[] = [];
      TEST_ASSERT_EQ(pin_user_pages(p.mm, vpn(a), 2, FOLL_LONGTERM | FOLL_WRITE, pins), 2);
      for (let k = 0; k < 2; k++) {
        TEST_ASSERT(page_zonenum(store, pins[k]) !== ZONE_MOVABLE, 'pinned outside ZONE_MOVABLE');
        TEST_ASSERT_EQ(pagemap(p, a + BigInt(k) * PG), pins[k]);
        TEST_ASSERT_EQ(folio_ref_count(store, pins[k]), 1 + GUP_PIN_COUNTING_BIAS);
        TEST_ASSERT_EQ(load_ok(p, a + BigInt(k) * PG, 1), Uint8Array.of(k + 1));
      }
      TEST_ASSERT(pins[0] !== old);
      TEST_ASSERT_EQ(folio_ref_count(store, old), 0, 'the old page was freed');
      const mig = host.trace.find('mm_migrate_pages');
      TEST_ASSERT_EQ([mig.length, mig[0].args.succeeded, mig[0].args.reason], [1, 2, 'longterm_pin']);
      unpin_user_pages(store, pins, 2);
      /* pages a long-term pin faults in come from outside ZONE_MOVABLE (memalloc_pin_save()) */
      const b = mmap_ok(p, H + 64n * PG, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
      const fresh: number[] = [];
      TEST_ASSERT_EQ(pin_user_pages_fast(p.mm, vpn(b), 1, FOLL_LONGTERM | FOLL_WRITE, fresh), 1);
      TEST_ASSERT(page_zonenum(store, fresh[0]) !== ZONE_MOVABLE);
      TEST_ASSERT_EQ(host.trace.find('mm_migrate_pages').length, 1, 'nothing to migrate');
      unpin_user_pages(store, fresh, 1);
      TEST_ASSERT_EQ(host.kernel.page_alloc.checkConsistency(), []);
    } finally {
      await host.container.dispose();
    }
  });

  test('a pinned movable page cannot migrate: the long-term pin fails with -ENOMEM', async () => {
    const host = movable_host();
    try {
      const p = host.process();
      const store = host.kernel.store;
      const a = anon(p, 1);
      const old = pagemap(p, a)!;
      const short: number[] = [];
      TEST_ASSERT_EQ(pin_user_pages(p.mm, vpn(a), 1, FOLL_WRITE, short), 1);
      const pins: number[] = [];
      TEST_ASSERT_EQ(pin_user_pages(p.mm, vpn(a), 1, FOLL_LONGTERM | FOLL_WRITE, pins), -Errno.ENOMEM);
      TEST_ASSERT_EQ(pagemap(p, a), old, 'the mapping is restored');
      TEST_ASSERT_EQ(folio_ref_count(store, old), 1 + GUP_PIN_COUNTING_BIAS, 'only the short-term pin is left');
      TEST_ASSERT_EQ(load_ok(p, a, 1), Uint8Array.of(1));
      unpin_user_pages(store, short, 1);
      TEST_ASSERT_EQ(pin_user_pages_fast(p.mm, vpn(a), 1, FOLL_LONGTERM | FOLL_WRITE, pins), 1);
      TEST_ASSERT(pins[0] !== old);
      unpin_user_pages(store, pins, 1);
    } finally {
      await host.container.dispose();
    }
  });

  test('memfd pages migrate too: the page cache and every mapping follow', async () => {
    const host = movable_host();
    try {
      const p = host.process();
      const store = host.kernel.store;
      const fd = p.memfd_create('lt', 0);
      TEST_ASSERT_EQ(p.ftruncate(fd, PAGE_SIZE), 0);
      const a = mmap_ok(p, H, PG, RW, MAP_SHARED | MAP_FIXED, fd, 0);
      store_ok(p, a, [0x77]);
      const old = pagemap(p, a)!;
      TEST_ASSERT_EQ(page_zonenum(store, old), ZONE_MOVABLE);
      const b = mmap_ok(p, H + 16n * PG, PG, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0);
      load_ok(p, b, 1);
      const pins: number[] = [];
      TEST_ASSERT_EQ(pin_user_pages(p.mm, vpn(a), 1, FOLL_LONGTERM | FOLL_WRITE, pins), 1);
      TEST_ASSERT(pins[0] !== old && page_zonenum(store, pins[0]) !== ZONE_MOVABLE);
      TEST_ASSERT_EQ([pagemap(p, a), pagemap(p, b)], [pins[0], pins[0]]);
      const inode = p.task.files.lookup(fd)!.f_mapping;
      TEST_ASSERT_EQ(inode.i_pages.xa_load(0), pins[0]);
      const buf = new Uint8Array(1);
      TEST_ASSERT_EQ(p.pread(fd, buf, 0), 1);
      TEST_ASSERT_EQ(buf, Uint8Array.of(0x77));
      /* page cache (1) + two mappings + the pin */
      TEST_ASSERT_EQ(folio_ref_count(store, pins[0]), 3 + GUP_PIN_COUNTING_BIAS);
      unpin_user_pages(store, pins, 1);
    } finally {
      await host.container.dispose();
    }
  });
});
