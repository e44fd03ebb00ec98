/**
 * Reclaim and swap (mm/vmscan.c, mm/swapfile.c, mm/swap_state.c, mm/shmem.c) as a process sees
 * it: MADV_PAGEOUT and MADV_COLD, the root cgroup's memory.reclaim (reclaim()), and what comes
 * back from swap. The C probes test/mm/c/reclaim_noswap.c and reclaim_swap.c recorded the
 * kernel's answers on the oracle machine; the lines quoted here are theirs.
 */
import { describe } from 'vitest';
import { PAGE_SIZE } from '@cocosim/core';
import {
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  FOLL_WRITE,
  LRU_ACTIVE_ANON,
  LRU_INACTIVE_ANON,
  LRU_UNEVICTABLE,
  MADV_COLD,
  MADV_FREE,
  MADV_PAGEOUT,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  MM_ANONPAGES,
  MM_SHMEMPAGES,
  MM_SWAPENTS,
  PROT_READ,
  PROT_WRITE,
  SEEK_DATA,
  SHMEM_I,
  folio_lru_linked,
  folio_test_active,
  folio_test_swapcache,
  pin_user_pages,
  proc_swaps,
  pte_present,
  pte_swp_type,
  reclaim,
  swap_check_consistency,
  swapon,
  try_to_free_pages,
  unpin_user_page,
  is_swap_pte,
  type Process,
} from '@cocosim/mm';
import { test, type SimHost } from '../lib/fixtures.js';
import { TEST_ASSERT, TEST_ASSERT_EQ } from '../lib/test_util.js';
import { mmap_ok, pagemap, store_ok } from './mm_util.js';

const PG = BigInt(PAGE_SIZE);
const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const EINVAL = 22;
const EAGAIN = 11;

/** /proc/self/pagemap's view of one page: present, or swapped with the slot, or neither. */
function pm(p: Process, addr: bigint): string {
  const vpn = Number(addr / PG);
  const t = p.mm.pgd.ptes.get(Math.floor(vpn / 512));
  const f = t === undefined ? 0 : t.flags[vpn % 512];
  if (pte_present(f)) return 'present';
  if (is_swap_pte(f) && pte_swp_type(f) < 24) return `swapped ${pte_swp_type(f)}:${t!.val[vpn % 512]}`;
  return 'none';
}

/** The bytes of a page (first `n`). */
function bytes(p: Process, addr: bigint, n = 4): number[] {
  const r = p.load(addr, n);
  TEST_ASSERT(r instanceof Uint8Array, `load at 0x${addr.toString(16)} faulted`);
  return Array.from(r as Uint8Array);
}

/** /proc/swaps' Used column of the first area, in KiB. */
function swap_used(host: SimHost): number {
  const line = proc_swaps(host.kernel).split('\n')[1];
  return Number(line.split(/\s+/)[3]);
}

function st_blocks(p: Process, fd: number): bigint {
  const st: { st_blocks?: bigint } = {};
  TEST_ASSERT_EQ(p.fstat(fd, st), 0);
  return BigInt(st.st_blocks!);
}

function memfd_map(p: Process, pages: number): [number, bigint] {
  const fd = p.memfd_create('reclaim', 0);
  TEST_ASSERT_EQ(p.ftruncate(fd, pages * PAGE_SIZE), 0);
  return [fd, mmap_ok(p, 0, BigInt(pages) * PG, RW, MAP_SHARED, fd, 0)];
}

function check_swap(host: SimHost): void {
  TEST_ASSERT_EQ(swap_check_consistency(host.kernel), []);
}

describe('without swap (the oracle machine has none)', () => {
  test('no swap area: /proc/swaps has only its header, reclaim() of anon memory fails with EAGAIN', ({ host }) => {
    TEST_ASSERT_EQ(proc_swaps(host.kernel), 'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n');
    const p = host.process();
    const a = mmap_ok(p, 0, 8n * PG, RW, ANON);
    for (let k = 0; k < 8; k++) store_ok(p, a + BigInt(k) * PG, [k]);
    TEST_ASSERT_EQ(reclaim(host.kernel, 8), -EAGAIN);
    for (let k = 0; k < 8; k++) TEST_ASSERT_EQ(pm(p, a + BigInt(k) * PG), 'present');
    TEST_ASSERT_EQ(reclaim(host.kernel, 0), 0);
    TEST_ASSERT_EQ(reclaim(host.kernel, -1), -EINVAL);
  });

  test('MADV_PAGEOUT of anon memory: stays mapped and is activated ("anon after PAGEOUT present=1 ... active=1")', ({ host }) => {
    const p = host.process();
    const a = mmap_ok(p, 0, PG, RW, ANON);
    store_ok(p, a, [0x5a]);
    const pfn = pagemap(p, a)!;
    TEST_ASSERT_EQ(folio_lru_linked(host.kernel.store, pfn), LRU_INACTIVE_ANON);
    TEST_ASSERT_EQ(p.madvise(a, PG, MADV_PAGEOUT), 0);
    TEST_ASSERT_EQ(pm(p, a), 'present');
    TEST_ASSERT(folio_test_active(host.kernel.store, pfn), 'activated');
    TEST_ASSERT_EQ(folio_lru_linked(host.kernel.store, pfn), LRU_ACTIVE_ANON);
    TEST_ASSERT_EQ(bytes(p, a, 1), [0x5a]);
    /* MADV_COLD puts it back on the inactive list */
    TEST_ASSERT_EQ(p.madvise(a, PG, MADV_COLD), 0);
    TEST_ASSERT_EQ(folio_lru_linked(host.kernel.store, pfn), LRU_INACTIVE_ANON);
  });

  test('MADV_PAGEOUT of memfd pages: unmapped but kept; the never-written page is dropped ("memfd mincore after PAGEOUT: written=1 clean=0 st_blocks=8")', ({ host }) => {
    const p = host.process();
    const [fd, m] = memfd_map(p, 4);
    store_ok(p, m, [0x33]);
    bytes(p, m + PG, 1);
    TEST_ASSERT_EQ(st_blocks(p, fd), 16n);
    TEST_ASSERT_EQ(p.madvise(m, 2n * PG, MADV_PAGEOUT), 0);
    TEST_ASSERT_EQ([pm(p, m), pm(p, m + PG)], ['none', 'none']);
    TEST_ASSERT_EQ(st_blocks(p, fd), 8n);
    TEST_ASSERT_EQ(p.mm.get_mm_counter(MM_SHMEMPAGES), 0);
    TEST_ASSERT_EQ(bytes(p, m, 1), [0x33]);
    const buf = new Uint8Array(1).fill(0x7f);
    TEST_ASSERT_EQ(p.pread(fd, buf, PAGE_SIZE), 1);
    TEST_ASSERT_EQ(buf[0], 0);
  });

  test('MADV_PAGEOUT and MADV_COLD of an mlocked range: EINVAL', ({ host }) => {
    const p = host.process();
    const a = mmap_ok(p, 0, PG, RW, ANON);
    TEST_ASSERT_EQ(p.mlock(a, PG), 0);
    TEST_ASSERT_EQ(folio_lru_linked(host.kernel.store, pagemap(p, a)!), LRU_UNEVICTABLE);
    TEST_ASSERT_EQ([p.madvise(a, PG, MADV_PAGEOUT), p.errno], [-1, EINVAL]);
    TEST_ASSERT_EQ([p.madvise(a, PG, MADV_COLD), p.errno], [-1, EINVAL]);
  });
});

describe('with a swap area', () => {
  test('swapon: /proc/swaps, priorities -2, -3... and a bad size', ({ host }) => {
    TEST_ASSERT_EQ(swapon(host.kernel, 4096), 0);
    TEST_ASSERT_EQ(swapon(host.kernel, 1), -EINVAL);
    TEST_ASSERT_EQ(swapon(host.kernel, 64), 1);
    const lines = proc_swaps(host.kernel).split('\n');
    TEST_ASSERT_EQ(lines[1].split(/\s+/).slice(1), ['partition', '16380', '0', '-2']);
    TEST_ASSERT_EQ(lines[2].split(/\s+/).slice(1), ['partition', '252', '0', '-3']);
  });

  test('anon pages go to swap in slot order (a zero-filled one too) and come back intact ("swp_offset=1", "swp_offset=2", "swp_offset=4")', ({ host }) => {
    swapon(host.kernel, 4096);
    const p = host.process();
    const a = mmap_ok(p, 0, 6n * PG, RW, ANON);
    for (let k = 0; k < 6; k++) store_ok(p, a + BigInt(k) * PG, [0x40 + k, 1, 2, 3]);
    store_ok(p, a + 3n * PG, [0, 0, 0, 0]);
    TEST_ASSERT_EQ(p.madvise(a, 6n * PG, MADV_PAGEOUT), 0);
    TEST_ASSERT_EQ([0, 1, 3, 5].map((k) => pm(p, a + BigInt(k) * PG)), ['swapped 0:1', 'swapped 0:2', 'swapped 0:4', 'swapped 0:6']);
    TEST_ASSERT_EQ(swap_used(host), 24);
    TEST_ASSERT_EQ([p.mm.get_mm_counter(MM_ANONPAGES), p.mm.get_mm_counter(MM_SWAPENTS)], [0, 6]);
    check_swap(host);
    /* read back: the data, and the folio stays in the swap cache ("anon page 0 after read ... swapcache=1") */
    TEST_ASSERT_EQ(bytes(p, a), [0x40, 1, 2, 3]);
    TEST_ASSERT_EQ(bytes(p, a + PG), [0x41, 1, 2, 3]);
    TEST_ASSERT_EQ(bytes(p, a + 3n * PG), [0, 0, 0, 0]);
    TEST_ASSERT(folio_test_swapcache(host.kernel.store, pagemap(p, a)!), 'in the swap cache');
    TEST_ASSERT_EQ(swap_used(host), 24);
    /* a write fault on a swap entry: the data, plus the write */
    store_ok(p, a + 4n * PG + 1n, [9]);
    TEST_ASSERT_EQ(bytes(p, a + 4n * PG), [0x44, 9, 2, 3]);
    /* MADV_FREE of a swapped-out page drops it: zeros on the next read ("page 5 reads 0") */
    TEST_ASSERT_EQ(p.madvise(a + 5n * PG, PG, MADV_FREE), 0);
    TEST_ASSERT_EQ(pm(p, a + 5n * PG), 'none');
    TEST_ASSERT_EQ(bytes(p, a + 5n * PG), [0, 0, 0, 0]);
    /* pages 0, 1, 3 read, 4 written; 2 still out; 5 reads the zero page */
    TEST_ASSERT_EQ([p.mm.get_mm_counter(MM_ANONPAGES), p.mm.get_mm_counter(MM_SWAPENTS)], [4, 1]);
    check_swap(host);
    /* munmap frees the slots left */
    TEST_ASSERT_EQ(p.munmap(a, 6n * PG), 0);
    TEST_ASSERT_EQ(swap_used(host), 0);
    check_swap(host);
  });

  test('memfd pages: swap entries in the page cache, blocks kept, read back through read() and the mapping', ({ host }) => {
    swapon(host.kernel, 4096);
    const p = host.process();
    const [fd, m] = memfd_map(p, 4);
    store_ok(p, m, [0x33]);
    store_ok(p, m + PG, [0x44]);
    bytes(p, m + 2n * PG, 1);
    TEST_ASSERT_EQ(st_blocks(p, fd), 24n);
    TEST_ASSERT_EQ(p.madvise(m, 3n * PG, MADV_PAGEOUT), 0);
    /* the dirty pages went to swap, the clean one was dropped ("st_blocks=16") */
    TEST_ASSERT_EQ(st_blocks(p, fd), 16n);
    TEST_ASSERT_EQ(swap_used(host), 8);
    const inode = p.task.files.lookup(fd)!.f_inode;
    TEST_ASSERT_EQ(SHMEM_I(inode).swapped, 2);
    TEST_ASSERT_EQ(inode.i_mapping.nrpages, 0);
    const buf = new Uint8Array(1);
    TEST_ASSERT_EQ(p.pread(fd, buf, PAGE_SIZE), 1);
    TEST_ASSERT_EQ(buf[0], 0x44);
    TEST_ASSERT_EQ(swap_used(host), 4);
    TEST_ASSERT_EQ(bytes(p, m, 1), [0x33]);
    TEST_ASSERT_EQ(swap_used(host), 0);
    TEST_ASSERT_EQ(SHMEM_I(inode).swapped, 0);
    TEST_ASSERT_EQ(st_blocks(p, fd), 16n);
    check_swap(host);
  });

  test('swapped-out memfd pages: SEEK_DATA finds them, fallocate() keeps them, truncation and hole punching free their slots', ({ host }) => {
    swapon(host.kernel, 4096);
    const p = host.process();
    const [fd, m] = memfd_map(p, 8);
    for (let k = 0; k < 8; k++) store_ok(p, m + BigInt(k) * PG, [k + 1]);
    TEST_ASSERT_EQ(p.madvise(m, 8n * PG, MADV_PAGEOUT), 0);
    TEST_ASSERT_EQ(swap_used(host), 32);
    TEST_ASSERT_EQ(p.lseek(fd, 0, SEEK_DATA), 0n);
    /* fallocate over swapped pages reads them back (shmem_get_folio(SGP_FALLOC)) */
    TEST_ASSERT_EQ(p.fallocate(fd, 0, 0, 2 * PAGE_SIZE), 0);
    TEST_ASSERT_EQ(swap_used(host), 24);
    TEST_ASSERT_EQ(bytes(p, m + PG, 1), [2]);
    /* punching pages 2-3 frees their slots */
    TEST_ASSERT_EQ(p.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 2 * PAGE_SIZE, 2 * PAGE_SIZE), 0);
    TEST_ASSERT_EQ(swap_used(host), 16);
    TEST_ASSERT_EQ(bytes(p, m + 2n * PG, 1), [0]);
    /* a partial punch over a swapped page reads it back, then zeroes the range */
    TEST_ASSERT_EQ(p.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4 * PAGE_SIZE + 1, 100), 0);
    TEST_ASSERT_EQ(swap_used(host), 12);
    TEST_ASSERT_EQ(bytes(p, m + 4n * PG, 1), [5]);
    TEST_ASSERT_EQ(p.ftruncate(fd, 0), 0);
    TEST_ASSERT_EQ(swap_used(host), 0);
    TEST_ASSERT_EQ(st_blocks(p, fd), 0n);
    check_swap(host);
  });

  test('closing the last reference to a memfd with swapped-out pages frees their slots', ({ host }) => {
    swapon(host.kernel, 4096);
    const p = host.process();
    const [fd, m] = memfd_map(p, 4);
    for (let k = 0; k < 4; k++) store_ok(p, m + BigInt(k) * PG, [k + 1]);
    TEST_ASSERT_EQ(p.madvise(m, 4n * PG, MADV_PAGEOUT), 0);
    TEST_ASSERT_EQ(swap_used(host), 16);
    TEST_ASSERT_EQ(p.munmap(m, 4n * PG), 0);
    TEST_ASSERT_EQ(p.close(fd), 0);
    TEST_ASSERT_EQ(swap_used(host), 0);
    check_swap(host);
  });

  test('pinned pages are not swapped: an anon one stays mapped, a memfd one is unmapped but stays', ({ host }) => {
    swapon(host.kernel, 4096);
    const p = host.process();
    const a = mmap_ok(p, 0, PG, RW, ANON);
    store_ok(p, a, [1]);
    const [, m] = memfd_map(p, 1);
    store_ok(p, m, [2]);
    const pa: number[] = [];
    const pmf: number[] = [];
    TEST_ASSERT_EQ(pin_user_pages(p.mm, Number(a / PG), 1, FOLL_WRITE, pa), 1);
    TEST_ASSERT_EQ(pin_user_pages(p.mm, Number(m / PG), 1, FOLL_WRITE, pmf), 1);
    const pages = [pa[0], pmf[0]];
    TEST_ASSERT_EQ(p.madvise(a, PG, MADV_PAGEOUT), 0);
    TEST_ASSERT_EQ(p.madvise(m, PG, MADV_PAGEOUT), 0);
    TEST_ASSERT_EQ([pm(p, a), pm(p, m), swap_used(host)], ['present', 'none', 0]);
    TEST_ASSERT_EQ(pagemap(p, a), pages[0]);
    TEST_ASSERT_EQ(bytes(p, m, 1), [2]);
    TEST_ASSERT_EQ(pagemap(p, m), pages[1]);
    for (const pg of pages) unpin_user_page(host.kernel.store, pg);
    TEST_ASSERT_EQ(p.madvise(a, PG, MADV_PAGEOUT), 0);
    TEST_ASSERT_EQ(pm(p, a), 'swapped 0:1');
    check_swap(host);
  });

  test('reclaim(): cold anon and memfd pages go to swap, mlocked ones stay, the data survives', ({ host }) => {
    swapon(host.kernel, 4096);
    const p = host.process();
    const N = 64;
    const a = mmap_ok(p, 0, BigInt(N) * PG, RW, ANON);
    const [, m] = memfd_map(p, N);
    const l = mmap_ok(p, 0, 4n * PG, RW, ANON);
    TEST_ASSERT_EQ(p.mlock(l, 4n * PG), 0);
    for (let k = 0; k < N; k++) {
      store_ok(p, a + BigInt(k) * PG, [k, 0xa]);
      store_ok(p, m + BigInt(k) * PG, [k, 0xb]);
    }
    for (let k = 0; k < 4; k++) store_ok(p, l + BigInt(k) * PG, [k, 0xc]);
    TEST_ASSERT_EQ(reclaim(host.kernel, 2 * N), 0);
    let swapped = 0;
    for (let k = 0; k < N; k++) {
      if (pm(p, a + BigInt(k) * PG).startsWith('swapped')) swapped++;
    }
    TEST_ASSERT(swapped > 0 && swap_used(host) >= 4 * 2 * N - 4 * 8, `swapped ${swapped}, used ${swap_used(host)}`);
    for (let k = 0; k < 4; k++) TEST_ASSERT_EQ(pm(p, l + BigInt(k) * PG), 'present');
    check_swap(host);
    for (let k = 0; k < N; k++) {
      TEST_ASSERT_EQ(bytes(p, a + BigInt(k) * PG, 2), [k, 0xa]);
      TEST_ASSERT_EQ(bytes(p, m + BigInt(k) * PG, 2), [k, 0xb]);
    }
    TEST_ASSERT(host.trace.find('mm_vmscan_lru_shrink_inactive').length > 0, 'mm_vmscan_lru_shrink_inactive');
    TEST_ASSERT(host.trace.find('mm_vmscan_write_folio').length > 0, 'mm_vmscan_write_folio');
  });

  test('try_to_free_pages(): direct reclaim, bracketed by mm_vmscan_direct_reclaim_begin/end', ({ host }) => {
    swapon(host.kernel, 4096);
    const p = host.process();
    const a = mmap_ok(p, 0, 128n * PG, RW, ANON);
    for (let k = 0; k < 128; k++) store_ok(p, a + BigInt(k) * PG, [k]);
    const n = try_to_free_pages(host.kernel, 32);
    TEST_ASSERT(n >= 32, `reclaimed ${n}`);
    const end = host.trace.find('mm_vmscan_direct_reclaim_end');
    TEST_ASSERT_EQ(end.map((r) => r.args.nr_reclaimed), [n]);
    for (let k = 0; k < 128; k++) TEST_ASSERT_EQ(bytes(p, a + BigInt(k) * PG, 1), [k]);
  });

  test('a full swap area: the pages that get no slot are activated and stay', ({ host }) => {
    swapon(host.kernel, 3);
    const p = host.process();
    const a = mmap_ok(p, 0, 4n * PG, RW, ANON);
    for (let k = 0; k < 4; k++) store_ok(p, a + BigInt(k) * PG, [k + 1]);
    TEST_ASSERT_EQ(p.madvise(a, 4n * PG, MADV_PAGEOUT), 0);
    TEST_ASSERT_EQ([0, 1, 2, 3].map((k) => pm(p, a + BigInt(k) * PG)), ['swapped 0:1', 'swapped 0:2', 'present', 'present']);
    TEST_ASSERT(folio_test_active(host.kernel.store, pagemap(p, a + 2n * PG)!), 'activated');
    for (let k = 0; k < 4; k++) TEST_ASSERT_EQ(bytes(p, a + BigInt(k) * PG, 1), [k + 1]);
    check_swap(host);
  });
});
