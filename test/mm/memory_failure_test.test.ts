/**
 * Memory failure (mm/memory-failure.c) as a process sees it, on a host configured with
 * CONFIG_MEMORY_FAILURE (vm_sysctl().memory_failure; the oracle machine has it off, where
 * MADV_HWPOISON is EINVAL and a consumed poison is a plain SIGBUS: test/mm/c/mce_kill_prctl.out,
 * fault_test): MADV_HWPOISON on anonymous and memfd pages, a free page poisoned by pfn, the
 * machine-check path, SIGBUS BUS_MCEERR_AR / BUS_MCEERR_AO with si_addr_lsb, -EIO from the
 * page cache, unpoisoning, soft offlining, and the memory_failure_event records.
 */
import { describe } from 'vitest';
import { PAGE_SIZE, type Pfn } from '@cocosim/core';
import {
  AS_EIO,
  MADV_HWPOISON,
  MADV_PAGEOUT,
  MADV_SOFT_OFFLINE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  MM_ANONPAGES,
  PR_MCE_KILL,
  PR_MCE_KILL_EARLY,
  PR_MCE_KILL_GET,
  PR_MCE_KILL_LATE,
  PR_MCE_KILL_SET,
  PROT_READ,
  PROT_WRITE,
  PageHWPoison,
  SWP_HWPOISON,
  SetPageHWPoison,
  folio_lock,
  folio_ref_count,
  folio_test_lru,
  folio_unlock,
  hw_memory_error,
  hwpoison_inject,
  hwpoison_unpoison,
  memory_failure_stats,
  num_poisoned_pages,
  page_folio,
  pin_user_pages,
  pte_swp_type,
  swapon,
  unmap_poisoned_folio,
  unpin_user_page,
  FOLL_WRITE,
  is_swap_pte,
  vm_sysctl,
  type Process,
  type SigInfo,
} from '@cocosim/mm';
import { test, type SimHost } from '../lib/fixtures.js';
import { TEST_ASSERT, TEST_ASSERT_EQ } from '../lib/test_util.js';
import { expect_sig, mmap_ok, pagemap, store_ok } from './mm_util.js';

const PG = BigInt(PAGE_SIZE);
const RW = PROT_READ | PROT_WRITE;
const EINVAL = 22;
const EIO = 5;
const EBUSY = 16;
const EOPNOTSUPP = 95;

/** A host whose kernel has CONFIG_MEMORY_FAILURE. */
function mf_host(host: SimHost): void {
  vm_sysctl(host.kernel).memory_failure = true;
}

/** The page-table entry at `addr`: its flags word and value (pfn or swap offset). */
function pte_at(p: Process, addr: bigint): { flags: number; val: number } {
  const vpn = Number(addr / PG);
  const t = p.mm.pgd.ptes.get(Math.floor(vpn / 512));
  TEST_ASSERT(t !== undefined, 'no PTE table');
  return { flags: t!.flags[vpn % 512], val: t!.val[vpn % 512] };
}

/** The pending SIGBUS of a process (dequeue_signal()). */
function take_signal(p: Process): SigInfo | undefined {
  return p.dequeue_signal();
}

/** The memory_failure_event records, as [pfn, type, result]. */
function mf_events(host: SimHost): [number, string, string][] {
  return host.trace.events('memory_failure_event').map((r) => [r.args.pfn as number, r.args.type as string, r.args.result as string]);
}

/** The console lines. */
function console_lines(host: SimHost): string[] {
  return host.trace.events('console').map((r) => r.args.msg as string);
}

/** A memfd of `pages` pages mapped shared: [fd, address]. */
function memfd_map(p: Process, pages: number): [number, bigint] {
  const fd = p.memfd_create('mf', 0);
  TEST_ASSERT_EQ(p.ftruncate(fd, pages * PAGE_SIZE), 0);
  return [fd, mmap_ok(p, 0, BigInt(pages) * PG, RW, MAP_SHARED, fd, 0)];
}

describe('without CONFIG_MEMORY_FAILURE (the oracle machine)', () => {
  test('MADV_HWPOISON and MADV_SOFT_OFFLINE are unknown advice: EINVAL (mce_kill_prctl.out)', ({ host }) => {
    const p = host.process();
    const a = mmap_ok(p, 0, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS);
    store_ok(p, a, [1]);
    TEST_ASSERT_EQ([p.madvise(a, PG, MADV_HWPOISON), p.errno], [-1, EINVAL]);
    TEST_ASSERT_EQ([p.madvise(a, PG, MADV_SOFT_OFFLINE), p.errno], [-1, EINVAL]);
    TEST_ASSERT_EQ(num_poisoned_pages(host.kernel), 0);
  });

  test('prctl(PR_MCE_KILL): the policy calls, and a bad SET that still sets PF_MCE_PROCESS (mce_kill_prctl.out)', ({ host }) => {
    const p = host.process();
    TEST_ASSERT_EQ(p.prctl(PR_MCE_KILL_GET, 0, 0, 0, 0), 2);
    TEST_ASSERT_EQ(p.prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_EARLY, 0, 0), 0);
    TEST_ASSERT_EQ(p.prctl(PR_MCE_KILL_GET, 0, 0, 0, 0), 1);
    TEST_ASSERT_EQ(p.prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_LATE, 0, 0), 0);
    TEST_ASSERT_EQ(p.prctl(PR_MCE_KILL_GET, 0, 0, 0, 0), 0);
    TEST_ASSERT_EQ(p.prctl(PR_MCE_KILL, PR_MCE_KILL_SET, 2, 0, 0), 0);
    TEST_ASSERT_EQ(p.prctl(PR_MCE_KILL_GET, 0, 0, 0, 0), 2);
    TEST_ASSERT_EQ([p.prctl(PR_MCE_KILL, PR_MCE_KILL_SET, 5, 0, 0), p.errno], [-1, EINVAL]);
    TEST_ASSERT_EQ(p.prctl(PR_MCE_KILL_GET, 0, 0, 0, 0), 0);
    TEST_ASSERT_EQ(p.prctl(PR_MCE_KILL, 0, 0, 0, 0), 0);
    TEST_ASSERT_EQ([p.prctl(PR_MCE_KILL, 0, 1, 0, 0), p.errno], [-1, EINVAL]);
    TEST_ASSERT_EQ([p.prctl(PR_MCE_KILL, 7, 0, 0, 0), p.errno], [-1, EINVAL]);
    TEST_ASSERT_EQ([p.prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_EARLY, 1, 0), p.errno], [-1, EINVAL]);
    TEST_ASSERT_EQ(p.prctl(PR_MCE_KILL_GET, 0, 0, 0, 0), 2);
    TEST_ASSERT_EQ([p.prctl(PR_MCE_KILL_GET, 1, 0, 0, 0), p.errno], [-1, EINVAL]);
    TEST_ASSERT_EQ([p.prctl(PR_MCE_KILL_GET, 0n, -1, 0, 0), p.errno], [-1, EINVAL]);
    TEST_ASSERT_EQ([p.prctl(1.5, 0, 0, 0, 0), p.errno], [-1, EINVAL]);
  });
});

describe('MADV_HWPOISON', () => {
  test('a dirty anonymous page: unmapped to a hwpoison entry, SIGBUS BUS_MCEERR_AR now and on access', ({ host }) => {
    mf_host(host);
    const p = host.process();
    const a = mmap_ok(p, 0, 2n * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS);
    store_ok(p, a + PG + 5n, [7]);
    const pfn = pagemap(p, a + PG)!;
    TEST_ASSERT_EQ(p.madvise(a + PG, PG, MADV_HWPOISON), 0);
    /* kill_proc(): the caller (current, MF_ACTION_REQUIRED) gets BUS_MCEERR_AR at the page */
    const s = take_signal(p);
    expect_sig(s, 'SIGBUS', 'BUS_MCEERR_AR', a + PG);
    TEST_ASSERT_EQ(s!.si_addr_lsb, 12);
    TEST_ASSERT(take_signal(p) === undefined, 'one signal');
    /* the PTE is a hwpoison entry holding the pfn; the page is held, poisoned, off the LRU */
    const e = pte_at(p, a + PG);
    TEST_ASSERT(is_swap_pte(e.flags) && pte_swp_type(e.flags) === SWP_HWPOISON && e.val === pfn, 'hwpoison entry');
    const store = host.kernel.store;
    TEST_ASSERT(PageHWPoison(store, pfn), 'PG_hwpoison');
    TEST_ASSERT_EQ([folio_ref_count(store, pfn), folio_test_lru(store, pfn)], [1, false]);
    TEST_ASSERT_EQ(p.mm.get_mm_counter(MM_ANONPAGES), 0);
    TEST_ASSERT_EQ(num_poisoned_pages(host.kernel), 1);
    TEST_ASSERT_EQ(mf_events(host), [[pfn, 'dirty LRU page', 'Recovered']]);
    const lines = console_lines(host);
    TEST_ASSERT(lines.includes(`Memory failure: 0x${pfn.toString(16)}: Sending SIGBUS to cocosim:${p.task.pid} due to hardware memory corruption`), lines.join('\n'));
    TEST_ASSERT_EQ(lines[lines.length - 1], `Memory failure: 0x${pfn.toString(16)}: recovery action for dirty LRU page: Recovered`);
    TEST_ASSERT_EQ(memory_failure_stats(host.kernel, 0), { total: 1, ignored: 0, failed: 0, delayed: 0, recovered: 1 });
    /* a later access faults on the entry: SIGBUS BUS_MCEERR_AR at the byte, lsb 12 */
    const r = p.load(a + PG + 9n, 1);
    expect_sig(r, 'SIGBUS', 'BUS_MCEERR_AR', a + PG + 9n);
    TEST_ASSERT_EQ((r as SigInfo).si_addr_lsb, 12);
    /* the other page is untouched */
    TEST_ASSERT(p.load(a, 1) instanceof Uint8Array, 'the neighbour reads');
  });

  test('a clean memfd page: no signal (nothing was lost), then SIGBUS on access and -EIO from read()', ({ host }) => {
    mf_host(host);
    const p = host.process();
    const [fd, a] = memfd_map(p, 2);
    TEST_ASSERT(p.load(a, 1) instanceof Uint8Array, 'read fault');
    const pfn = pagemap(p, a)!;
    TEST_ASSERT_EQ(p.madvise(a, PG, MADV_HWPOISON), 0);
    TEST_ASSERT(take_signal(p) === undefined, 'a clean page kills nobody');
    TEST_ASSERT_EQ(mf_events(host), [[pfn, 'clean LRU page', 'Recovered']]);
    /* shmem keeps the folio in its page cache (shmem_error_remove_folio()) */
    expect_sig(p.load(a + 3n, 1), 'SIGBUS', 'BUS_MCEERR_AR', a + 3n);
    const buf = new Uint8Array(8);
    TEST_ASSERT_EQ([p.pread(fd, buf, 0), p.errno], [-1, EIO]);
    TEST_ASSERT_EQ([p.pwrite(fd, Uint8Array.of(1), 10), p.errno], [-1, EIO]);
    /* the rest of the file is fine */
    TEST_ASSERT_EQ(p.pread(fd, buf, PAGE_SIZE), 8);
    /* unpoison: the page cache still holds it (-EBUSY); once truncated, it goes back */
    TEST_ASSERT_EQ(hwpoison_unpoison(host.kernel, pfn), -EBUSY);
    TEST_ASSERT_EQ(p.ftruncate(fd, 0), 0);
    TEST_ASSERT_EQ(folio_ref_count(host.kernel.store, pfn), 1);
    TEST_ASSERT_EQ(hwpoison_unpoison(host.kernel, pfn), 0);
    TEST_ASSERT(!PageHWPoison(host.kernel.store, pfn), 'unpoisoned');
    TEST_ASSERT_EQ(num_poisoned_pages(host.kernel), 0);
    TEST_ASSERT(console_lines(host).includes(`Unpoison: 0x${pfn.toString(16)}: software-unpoisoned page`), 'unpoison line');
    TEST_ASSERT_EQ(hwpoison_unpoison(host.kernel, pfn), -EBUSY);
  });

  test('a dirty memfd page: SIGBUS BUS_MCEERR_AR to the caller, AS_EIO on the mapping, Recovered', ({ host }) => {
    mf_host(host);
    const p = host.process();
    const [fd, a] = memfd_map(p, 1);
    store_ok(p, a, [1, 2, 3]);
    const pfn = pagemap(p, a)!;
    TEST_ASSERT_EQ(p.madvise(a, PG, MADV_HWPOISON), 0);
    expect_sig(take_signal(p), 'SIGBUS', 'BUS_MCEERR_AR', a);
    TEST_ASSERT_EQ(mf_events(host), [[pfn, 'dirty LRU page', 'Recovered']]);
    const mapping = p.task.files.lookup(fd)!.f_mapping;
    TEST_ASSERT((mapping.flags & (1 << AS_EIO)) !== 0, 'mapping_set_error(-EIO)');
    /* the page cache and memory-failure hold it */
    TEST_ASSERT_EQ(folio_ref_count(host.kernel.store, pfn), 2);
  });

  test('a dirty memfd page someone pinned: still referenced, Failed, and madvise() says EBUSY', ({ host }) => {
    mf_host(host);
    const p = host.process();
    const [, a] = memfd_map(p, 1);
    store_ok(p, a, [1]);
    const pages: number[] = [];
    TEST_ASSERT_EQ(pin_user_pages(p.mm, Number(a / PG), 1, FOLL_WRITE, pages), 1);
    const pfn = pages[0];
    TEST_ASSERT_EQ([p.madvise(a, PG, MADV_HWPOISON), p.errno], [-1, EBUSY]);
    TEST_ASSERT_EQ(mf_events(host), [[pfn, 'dirty LRU page', 'Failed']]);
    TEST_ASSERT(console_lines(host).some((l) => l.includes('dirty LRU page still referenced by 1024 users')), console_lines(host).join('\n'));
    unpin_user_page(host.kernel.store, pfn);
  });

  test('a page already poisoned: the next MADV_HWPOISON cannot fault it in (EFAULT); by pfn: already poisoned page', ({ host }) => {
    mf_host(host);
    const p = host.process();
    const a = mmap_ok(p, 0, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS);
    store_ok(p, a, [1]);
    const pfn = pagemap(p, a)!;
    TEST_ASSERT_EQ(p.madvise(a, PG, MADV_HWPOISON), 0);
    take_signal(p);
    TEST_ASSERT_EQ([p.madvise(a, PG, MADV_HWPOISON), p.errno], [-1, 14]);
    TEST_ASSERT_EQ(hwpoison_inject(host.kernel, pfn), -133);
    TEST_ASSERT_EQ(mf_events(host)[1], [pfn, 'already poisoned page', 'Failed']);
    /* an already poisoned page is not counted again */
    TEST_ASSERT_EQ(num_poisoned_pages(host.kernel), 1);
  });
});

describe('by pfn (hwpoison-inject) and hardware errors', () => {
  test('a free page: taken off the buddy lists, never handed out, put back by unpoison', ({ host }) => {
    mf_host(host);
    const k = host.kernel;
    const pfn = k.page_alloc.alloc_page(0) as number;
    k.page_alloc.__free_page(pfn);
    TEST_ASSERT(k.page_alloc.is_free_buddy_page(pfn), 'free');
    TEST_ASSERT_EQ(hwpoison_inject(k, pfn), 0);
    TEST_ASSERT_EQ(mf_events(host), [[pfn, 'free buddy page', 'Recovered']]);
    TEST_ASSERT(!k.page_alloc.is_free_buddy_page(pfn) && PageHWPoison(k.store, pfn), 'taken off');
    TEST_ASSERT_EQ(k.store._refcount[k.store.idx(pfn)], 1);
    const free = k.page_alloc.nr_free_pages();
    TEST_ASSERT_EQ(hwpoison_unpoison(k, pfn), 0);
    TEST_ASSERT_EQ(k.page_alloc.nr_free_pages(), free + 1);
    TEST_ASSERT(k.page_alloc.is_free_buddy_page(pfn) && !PageHWPoison(k.store, pfn), 'back in the buddy allocator');
    TEST_ASSERT_EQ(hwpoison_inject(k, k.store.end_pfn), -6);
  });

  test('a kernel page (reserved): Ignored, memory_failure() says EBUSY', ({ host }) => {
    mf_host(host);
    const k = host.kernel;
    TEST_ASSERT_EQ(hwpoison_inject(k, k.store.zero_pfn), -EBUSY);
    TEST_ASSERT_EQ(mf_events(host), [[k.store.zero_pfn, 'get hwpoison page', 'Ignored']]);
  });

  test('a load consuming poison: kill_me_maybe() -> memory_failure() -> SIGBUS BUS_MCEERR_AR at the page', ({ host }) => {
    mf_host(host);
    const p = host.process();
    const a = mmap_ok(p, 0, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS);
    store_ok(p, a, [1]);
    const pfn = pagemap(p, a)!;
    host.phys.poison(pfn, 3);
    const r = p.load(a + 3n * 64n + 1n, 1);
    expect_sig(r, 'SIGBUS', 'BUS_MCEERR_AR', a);
    TEST_ASSERT_EQ((r as SigInfo).si_addr_lsb, 12);
    TEST_ASSERT(take_signal(p) === undefined, 'delivered by the access');
    TEST_ASSERT_EQ(mf_events(host), [[pfn, 'dirty LRU page', 'Recovered']]);
    /* the page is gone from the address space: the next access faults on the hwpoison entry */
    expect_sig(p.load(a, 1), 'SIGBUS', 'BUS_MCEERR_AR', a);
    /* a hardware failure disables unpoisoning */
    TEST_ASSERT_EQ(hwpoison_unpoison(host.kernel, pfn), -EOPNOTSUPP);
  });

  test('early kill: another process mapping the page gets BUS_MCEERR_AO, the caller BUS_MCEERR_AR', ({ host }) => {
    mf_host(host);
    const p = host.process();
    const q = host.process();
    const [fd, a] = memfd_map(p, 1);
    store_ok(p, a, [1]);
    const qfd = q.open('/dev/null');
    TEST_ASSERT(qfd >= 0, 'open');
    /* q maps the same file (fd passed over a socket, as it were) */
    const file = p.task.files.lookup(fd)!;
    const qfd2 = q.task.files.install(file.get_file(), false);
    const b = mmap_ok(q, 0, PG, RW, MAP_SHARED, qfd2, 0);
    TEST_ASSERT(q.load(b, 1) instanceof Uint8Array, 'q maps it');
    TEST_ASSERT_EQ(q.prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_EARLY, 0, 0), 0);
    TEST_ASSERT_EQ(p.madvise(a, PG, MADV_HWPOISON), 0);
    expect_sig(take_signal(p), 'SIGBUS', 'BUS_MCEERR_AR', a);
    const s = take_signal(q);
    expect_sig(s, 'SIGBUS', 'BUS_MCEERR_AO', b);
    TEST_ASSERT_EQ(s!.si_addr_lsb, 12);
    /* both mappings now fault */
    expect_sig(q.load(b, 1), 'SIGBUS', 'BUS_MCEERR_AR', b);
  });

  test('a real error and a design\'s private hwpoison (D2) leave the same PTE', ({ host }) => {
    mf_host(host);
    const p = host.process();
    const a = mmap_ok(p, 0, 2n * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS);
    store_ok(p, a, [1]);
    store_ok(p, a + PG, [2]);
    const real = pagemap(p, a)!;
    const priv = pagemap(p, a + PG)! as Pfn;
    TEST_ASSERT_EQ(hw_memory_error(host.kernel, real), 0);
    /* the design: SetPageHWPoison() the page, then unmap_poisoned_folio() */
    const store = host.kernel.store;
    SetPageHWPoison(store, priv);
    const folio = page_folio(store, priv);
    folio_lock(store, folio);
    TEST_ASSERT_EQ(unmap_poisoned_folio(host.kernel, folio, priv, false), 0);
    folio_unlock(store, folio);
    const e1 = pte_at(p, a);
    const e2 = pte_at(p, a + PG);
    TEST_ASSERT_EQ([e1.flags, e1.val], [e2.flags, real]);
    TEST_ASSERT_EQ(e2.val, priv);
    expect_sig(p.load(a, 1), 'SIGBUS', 'BUS_MCEERR_AR', a);
    expect_sig(p.load(a + PG, 1), 'SIGBUS', 'BUS_MCEERR_AR', a + PG);
  });

  test('a clean swap-cache page: dropped from the swap cache; the next fault reads the good copy from swap', ({ host }) => {
    mf_host(host);
    swapon(host.kernel, 64);
    const p = host.process();
    const a = mmap_ok(p, 0, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS);
    store_ok(p, a, [9, 8, 7]);
    TEST_ASSERT_EQ(p.madvise(a, PG, MADV_PAGEOUT), 0);
    TEST_ASSERT_EQ(Array.from(p.load(a, 3) as Uint8Array), [9, 8, 7]);
    const pfn = pagemap(p, a)!;
    TEST_ASSERT_EQ(p.madvise(a, PG, MADV_HWPOISON), 0);
    TEST_ASSERT_EQ(mf_events(host), [[pfn, 'clean swapcache page', 'Recovered']]);
    TEST_ASSERT(console_lines(host).includes(`Memory failure: 0x${pfn.toString(16)}: keeping poisoned page in swap cache`), 'line');
    /* the PTE went back to a swap entry, not a hwpoison one */
    TEST_ASSERT_EQ(pte_swp_type(pte_at(p, a).flags), 0);
    TEST_ASSERT(take_signal(p) === undefined, 'clean: no signal');
    TEST_ASSERT_EQ(Array.from(p.load(a, 3) as Uint8Array), [9, 8, 7]);
    TEST_ASSERT(pagemap(p, a) !== pfn, 'a new page');
  });
});

describe('soft offline', () => {
  test('MADV_SOFT_OFFLINE migrates the page away and poisons the old one; the data stays', ({ host }) => {
    mf_host(host);
    const p = host.process();
    const a = mmap_ok(p, 0, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS);
    store_ok(p, a, [4, 5, 6]);
    const old = pagemap(p, a)!;
    TEST_ASSERT_EQ(p.madvise(a, PG, MADV_SOFT_OFFLINE), 0);
    const now = pagemap(p, a)!;
    TEST_ASSERT(now !== undefined && now !== old, 'migrated');
    TEST_ASSERT_EQ(Array.from(p.load(a, 3) as Uint8Array), [4, 5, 6]);
    TEST_ASSERT(PageHWPoison(host.kernel.store, old), 'old page poisoned');
    TEST_ASSERT_EQ(num_poisoned_pages(host.kernel), 1);
    TEST_ASSERT(take_signal(p) === undefined, 'nobody is killed');
    /* already poisoned: nothing to do */
    TEST_ASSERT_EQ(mf_events(host), []);
  });
});
