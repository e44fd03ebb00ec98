/**
 * Reverse-map walks: try_to_unmap() and its flags, folio_referenced(), folio_mkclean(), as
 * reclaim, memory-failure and writeback use them (mm/rmap.c, Linux 6.18).
 */
import { describe } from 'vitest';
import { PAGE_SIZE, type Pfn } from '@cocosim/core';
import {
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  MM_ANONPAGES,
  MM_SHMEMPAGES,
  MM_SWAPENTS,
  PROT_READ,
  PROT_WRITE,
  SetPageHWPoison,
  TTU_BATCH_FLUSH,
  TTU_HWPOISON,
  TTU_IGNORE_MLOCK,
  TTU_RMAP_LOCKED,
  TTU_SPLIT_HUGE_PMD,
  TTU_SYNC,
  VM_LOCKED,
  VM_SHARED,
  folio_alloc_swap,
  folio_lock,
  folio_mapcount,
  folio_mapped,
  folio_mkclean,
  folio_ref_count,
  folio_referenced,
  folio_test_dirty,
  folio_test_mlocked,
  folio_unlock,
  hugetlb_pool,
  isSigInfo,
  MFD_HUGETLB,
  pte_dirty,
  pte_write,
  rmap_walk,
  set_max_huge_pages,
  swapon,
  try_to_unmap,
  try_to_unmap_flush,
  type Folio,
  type Process,
  type VmAreaStruct,
} from '@cocosim/mm';
import { test, type SimHost } from '../lib/fixtures.js';
import { TEST_ASSERT, TEST_ASSERT_EQ, expectWarning } from '../lib/test_util.js';
import { expect_sig, load_ok, mmap_ok, pagemap, store_ok } from './mm_util.js';

const PG = BigInt(PAGE_SIZE);
const RW = PROT_READ | PROT_WRITE;
const H = 0x3000_0000_0000n;

/** The PTE flags at `addr` (0 for none). */
function pte_at(p: Process, addr: bigint): number {
  const vpn = Number(addr / PG);
  return p.mm.pgd.ptes.get(Math.floor(vpn / 512))?.flags[vpn % 512] ?? 0;
}

/** A memfd page mapped at three places in two processes: p (twice, shared) and q (private, read). */
function three_mappings(host: SimHost): { p: Process; q: Process; fd: number; folio: Folio; addrs: [Process, bigint][] } {
  const p = host.process();
  const q = host.process();
  const fd = p.memfd_create('rmap', 0);
  TEST_ASSERT_EQ(p.ftruncate(fd, 4 * PAGE_SIZE), 0);
  const a1 = mmap_ok(p, H, 4n * PG, RW, MAP_SHARED | MAP_FIXED, fd, 0);
  store_ok(p, a1 + PG, [0x5a, 0xa5]);
  const a2 = mmap_ok(p, H + 64n * PG, 2n * PG, PROT_READ, MAP_SHARED | MAP_FIXED, fd, BigInt(PAGE_SIZE));
  load_ok(p, a2, 1);
  /* q maps the same file through a file description of its own */
  const file = p.task.files.lookup(fd)!;
  const qfd2 = q.task.files.install(file.get_file(), false);
  const a3 = mmap_ok(q, H + 128n * PG, 4n * PG, PROT_READ, MAP_PRIVATE | MAP_FIXED, qfd2, 0);
  load_ok(q, a3 + PG, 1);
  const folio = pagemap(p, a1 + PG)! as Folio;
  return { p, q, fd, folio, addrs: [[p, a1 + PG], [p, a2], [q, a3 + PG]] };
}

describe('try_to_unmap()', () => {
  test('a file folio mapped in 3 VMAs of 2 processes: every PTE goes, the next access refaults the same data', ({ host }) => {
    const { p, q, folio, addrs } = three_mappings(host);
    const store = host.kernel.store;
    TEST_ASSERT_EQ(folio_mapcount(store, folio), 3);
    TEST_ASSERT_EQ(folio_ref_count(store, folio), 1 + 3);
    const rss = [p.mm.get_mm_counter(MM_SHMEMPAGES), q.mm.get_mm_counter(MM_SHMEMPAGES)];
    const flushes = host.trace.find('tlb_flush').length;
    folio_lock(store, folio);
    const { cost } = host.cost.measure('try_to_unmap', () => try_to_unmap(host.kernel, folio, 0));
    folio_unlock(store, folio);
    TEST_ASSERT(!folio_mapped(store, folio));
    TEST_ASSERT_EQ(store._mapcount[store.idx(folio)], -1);
    TEST_ASSERT_EQ(folio_ref_count(store, folio), 1, 'the page cache reference is left');
    for (const [proc, a] of addrs) TEST_ASSERT_EQ(pte_at(proc, a), 0);
    TEST_ASSERT_EQ([p.mm.get_mm_counter(MM_SHMEMPAGES), q.mm.get_mm_counter(MM_SHMEMPAGES)], [rss[0] - 2, rss[1] - 1]);
    const count = (name: string): number => cost.items.find((i) => i.name === name)?.count ?? 0;
    TEST_ASSERT_EQ([count('rmap_walk_per_mapping'), count('pte_zap'), count('tlb_flush_local')], [3, 3, 3]);
    TEST_ASSERT_EQ(host.trace.find('tlb_flush').length, flushes + 3);
    /* refault: the same page-cache page, the same contents */
    TEST_ASSERT_EQ(load_ok(p, addrs[0][1], 2), Uint8Array.of(0x5a, 0xa5));
    TEST_ASSERT_EQ(load_ok(q, addrs[2][1], 2), Uint8Array.of(0x5a, 0xa5));
    TEST_ASSERT_EQ([pagemap(p, addrs[0][1]), pagemap(q, addrs[2][1])], [folio, folio]);
  });

  test('a VM_LOCKED VMA keeps its mapping and stops the walk, unless TTU_IGNORE_MLOCK', ({ host }) => {
    const { p, folio, addrs } = three_mappings(host);
    const store = host.kernel.store;
    TEST_ASSERT_EQ(p.mlock(addrs[0][1], PG), 0);
    TEST_ASSERT(folio_test_mlocked(store, folio));
    folio_lock(store, folio);
    try_to_unmap(host.kernel, folio, 0);
    TEST_ASSERT(folio_mapped(store, folio), 'the mlocked mapping stays');
    TEST_ASSERT(pte_at(p, addrs[0][1]) !== 0);
    try_to_unmap(host.kernel, folio, TTU_IGNORE_MLOCK);
    folio_unlock(store, folio);
    TEST_ASSERT(!folio_mapped(store, folio));
    TEST_ASSERT(!folio_test_mlocked(store, folio), 'munlocked with its last locked mapping');
    TEST_ASSERT_EQ(load_ok(p, addrs[0][1], 1), Uint8Array.of(0x5a));
    TEST_ASSERT(folio_test_mlocked(store, folio), 'mlocked again by the refault in the locked VMA');
  });

  test('TTU_HWPOISON leaves hwpoison entries: SIGBUS BUS_MCEERR_AR on access, munmap clears them', ({ host }) => {
    const { p, q, folio, addrs } = three_mappings(host);
    const store = host.kernel.store;
    folio_lock(store, folio);
    SetPageHWPoison(store, folio);
    try_to_unmap(host.kernel, folio, TTU_HWPOISON | TTU_IGNORE_MLOCK);
    folio_unlock(store, folio);
    TEST_ASSERT(!folio_mapped(store, folio));
    expect_sig(p.load(addrs[0][1], 1), 'SIGBUS', 'BUS_MCEERR_AR', addrs[0][1]);
    expect_sig(q.load(addrs[2][1], 1), 'SIGBUS', 'BUS_MCEERR_AR', addrs[2][1]);
    TEST_ASSERT_EQ(p.munmap(H, 4n * PG), 0);
    TEST_ASSERT_EQ(pte_at(p, addrs[0][1]), 0);
  });

  test('a poisoned hugetlb page: TTU_HWPOISON | TTU_RMAP_LOCKED leaves a huge hwpoison entry (SIGBUS, lsb 21)', ({ host }) => {
    const p = host.process();
    const store = host.kernel.store;
    TEST_ASSERT_EQ(set_max_huge_pages(host.kernel, hugetlb_pool(host.kernel).default_hstate, 2), 2);
    const fd = p.memfd_create('h', MFD_HUGETLB);
    TEST_ASSERT_EQ(p.ftruncate(fd, 2 << 20), 0);
    const a = mmap_ok(p, H, 2n << 20n, RW, MAP_SHARED | MAP_FIXED, fd, 0);
    store_ok(p, a + 4096n, [0x11]);
    const folio = pagemap(p, a)! as Folio;
    folio_lock(store, folio);
    SetPageHWPoison(store, folio);
    try_to_unmap(host.kernel, folio, TTU_HWPOISON | TTU_IGNORE_MLOCK | TTU_SYNC | TTU_RMAP_LOCKED);
    folio_unlock(store, folio);
    TEST_ASSERT(!folio_mapped(store, folio));
    TEST_ASSERT_EQ(folio_ref_count(store, folio), 512, 'the page cache references are left');
    const r = p.load(a + 8192n, 1);
    TEST_ASSERT(isSigInfo(r) && r.signo === 'SIGBUS' && r.si_code === 'BUS_MCEERR_AR' && r.si_addr_lsb === 21, JSON.stringify(r, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString(16) : v)));
    TEST_ASSERT_EQ(p.munmap(a, 2n << 20n), 0);
    TEST_ASSERT_EQ(p.mm.pgd.pmds.size, 0);
  });

  test('an anon folio outside the swap cache cannot be unmapped (WARN_ON_ONCE), one in it becomes a swap entry', ({ host }) => {
    const p = host.process();
    const store = host.kernel.store;
    const a = mmap_ok(p, H, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
    store_ok(p, a, [0x33]);
    const folio = pagemap(p, a)! as Folio;
    folio_lock(store, folio);
    expectWarning('try_to_unmap_one() of an anon folio that is not in the swap cache');
    try_to_unmap(host.kernel, folio, 0);
    TEST_ASSERT_EQ(pagemap(p, a), folio, 'the mapping is restored');
    TEST_ASSERT(swapon(host.kernel, 64) >= 0);
    TEST_ASSERT_EQ(folio_alloc_swap(host.kernel, folio), 0);
    try_to_unmap(host.kernel, folio, 0);
    folio_unlock(store, folio);
    TEST_ASSERT(!folio_mapped(store, folio));
    TEST_ASSERT_EQ([p.mm.get_mm_counter(MM_ANONPAGES), p.mm.get_mm_counter(MM_SWAPENTS)], [0, 1]);
    TEST_ASSERT_EQ(load_ok(p, a, 1), Uint8Array.of(0x33));
  });

  test('TTU_SPLIT_HUGE_PMD splits a PMD-mapped THP first, then unmaps by PTEs', ({ host }) => {
    const p = host.process();
    const store = host.kernel.store;
    const a = mmap_ok(p, H, 512n * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
    TEST_ASSERT_EQ(p.madvise(a, 512n * PG, MADV_HUGEPAGE), 0);
    store_ok(p, a, [1]);
    const folio = pagemap(p, a)! as Folio;
    TEST_ASSERT(p.mm.pgd.pmds.has(Number(a / PG) / 512));
    folio_lock(store, folio);
    /* the PTEs of an anon THP outside the swap cache cannot become swap entries: the walk stops at the first */
    expectWarning('try_to_unmap_one() of an anon folio that is not in the swap cache');
    try_to_unmap(host.kernel, folio, TTU_SPLIT_HUGE_PMD);
    folio_unlock(store, folio);
    TEST_ASSERT(!p.mm.pgd.pmds.has(Number(a / PG) / 512), 'split');
    TEST_ASSERT_EQ(p.mm.pgd.ptes.get(Number(a / PG) / 512)!.nr, 512);
    TEST_ASSERT_EQ([folio_mapcount(store, folio), folio_ref_count(store, folio)], [512, 512]);
    TEST_ASSERT_EQ(pagemap(p, a + 5n * PG), folio + 5);
  });

  test('TTU_BATCH_FLUSH defers the TLB flush to try_to_unmap_flush(): one per mm', ({ host }) => {
    const { folio } = three_mappings(host);
    const store = host.kernel.store;
    const before = host.trace.find('tlb_flush').length;
    folio_lock(store, folio);
    try_to_unmap(host.kernel, folio, TTU_BATCH_FLUSH);
    folio_unlock(store, folio);
    TEST_ASSERT(!folio_mapped(store, folio));
    TEST_ASSERT_EQ(host.trace.find('tlb_flush').length, before);
    try_to_unmap_flush(host.kernel);
    TEST_ASSERT_EQ(host.trace.find('tlb_flush').length, before + 2);
    try_to_unmap_flush(host.kernel);
    TEST_ASSERT_EQ(host.trace.find('tlb_flush').length, before + 2);
  });
});

describe('rmap_walk(), folio_referenced(), folio_mkclean()', () => {
  test('the walk visits only the VMAs whose range covers the folio', ({ host }) => {
    const { p, fd, folio } = three_mappings(host);
    const store = host.kernel.store;
    /* a fourth mapping of pages 2-3 only */
    mmap_ok(p, H + 256n * PG, 2n * PG, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 2n * PG);
    const seen: [VmAreaStruct, number][] = [];
    folio_lock(store, folio);
    rmap_walk(host.kernel, folio, { arg: 0, rmap_one: (_f, vma, vpn) => (seen.push([vma, vpn]), true) });
    folio_unlock(store, folio);
    TEST_ASSERT_EQ(seen.length, 3);
    TEST_ASSERT_EQ(seen.map(([, vpn]) => BigInt(vpn) * PG).sort(), [H + PG, H + 64n * PG, H + 129n * PG].sort());
  });

  test('folio_referenced() counts the VMAs that used the page since the last call', ({ host }) => {
    const { p, folio, addrs } = three_mappings(host);
    const out = { vm_flags: 0 };
    TEST_ASSERT_EQ(folio_referenced(host.kernel, folio, false, out), 3);
    TEST_ASSERT((out.vm_flags & VM_SHARED) !== 0);
    TEST_ASSERT_EQ(folio_referenced(host.kernel, folio, false, out), 0);
    load_ok(p, addrs[1][1], 1);
    TEST_ASSERT_EQ(folio_referenced(host.kernel, folio, false, out), 1);
    TEST_ASSERT_EQ(p.mlock(addrs[0][1], PG), 0);
    TEST_ASSERT_EQ(folio_referenced(host.kernel, folio, false, out), 0);
    TEST_ASSERT((out.vm_flags & VM_LOCKED) !== 0, 'a VM_LOCKED mapping is reported');
  });

  test('folio_mkclean() write-protects and cleans the shared mappings; the next write redirties', ({ host }) => {
    const { p, folio, addrs } = three_mappings(host);
    const store = host.kernel.store;
    const a = addrs[0][1];
    TEST_ASSERT(pte_write(pte_at(p, a)) && pte_dirty(pte_at(p, a)));
    folio_lock(store, folio);
    TEST_ASSERT_EQ(folio_mkclean(host.kernel, folio), 1, 'only the writable shared mapping changes');
    folio_unlock(store, folio);
    TEST_ASSERT(!pte_write(pte_at(p, a)) && !pte_dirty(pte_at(p, a)));
    store_ok(p, a, [1]);
    TEST_ASSERT(pte_write(pte_at(p, a)) && pte_dirty(pte_at(p, a)));
    TEST_ASSERT(folio_test_dirty(store, folio));
    TEST_ASSERT_EQ(pagemap(p, a), folio as Pfn);
  });
});
