/**
 * Random sequences of address-space calls (deterministic), checking after each one what the
 * kernel keeps consistent: the VMA tree, map_count and total_vm, rss against the page tables,
 * every mapped folio's mapcount and refcount against the PTEs that map it, i_mmap against the
 * VMAs, and that no page table holds an entry outside a VMA.
 */
import { describe } from 'vitest';
import { PAGE_SIZE } from '@cocosim/core';
import {
  FOLIO_MAPPING_ANON,
  MADV_DONTNEED,
  MADV_HUGEPAGE,
  MADV_POPULATE_WRITE,
  MADV_REMOVE,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  MM_ANONPAGES,
  MM_FILEPAGES,
  MM_SHMEMPAGES,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  _PAGE_SPECIAL,
  folio_mapcount,
  folio_ref_count,
  folio_test_large,
  i_mmap_of,
  page_folio,
  pte_present,
  type Process,
} from '@cocosim/mm';
import { test } from '../lib/fixtures.js';
import { TEST_ASSERT, TEST_ASSERT_EQ } from '../lib/test_util.js';

const PG = BigInt(PAGE_SIZE);
const BASE = 0x3000_0000_0000n;
/** The arena: 4 MiB (two PMDs), so that THPs, splits and merges all happen. */
const ARENA_PAGES = 1024;

function check(p: Process, fds: number[], step: string): void {
  const mm = p.mm;
  const store = p.kernel.store;
  mm.mm_mt.mt_validate();
  let count = 0;
  let total = 0;
  for (const r of mm.mm_mt) {
    const v = r.entry;
    TEST_ASSERT_EQ([r.first, r.last], [v.start_vpn, v.end_vpn - 1], `${step}: tree range of a VMA`);
    count++;
    total += v.end_vpn - v.start_vpn;
    if (v.vm_file !== null) TEST_ASSERT(i_mmap_of(v.vm_file.f_mapping).has(v), `${step}: VMA missing from i_mmap`);
  }
  TEST_ASSERT_EQ([mm.map_count, mm.total_vm], [count, total], `${step}: map_count, total_vm`);
  for (const fd of fds) {
    for (const v of i_mmap_of(p.task.files.lookup(fd)!.f_mapping)) TEST_ASSERT(mm.mm_mt.mtree_load(v.start_vpn) === v, `${step}: stale i_mmap VMA`);
  }
  /* rss and mapcounts from the page tables */
  const rss = [0, 0, 0, 0];
  const maps = new Map<number, number>();
  const count_page = (pfn: number, nr: number, vpn: number): void => {
    TEST_ASSERT(mm.mm_mt.mtree_load(vpn) !== undefined, `${step}: a page-table entry at vpn ${vpn} outside any VMA`);
    const folio = page_folio(store, pfn);
    const anon = (store.mapping[store.idx(folio)] & FOLIO_MAPPING_ANON) !== 0;
    rss[anon ? MM_ANONPAGES : (store.flags[store.idx(folio)] & (1 << 17)) !== 0 ? MM_SHMEMPAGES : MM_FILEPAGES] += nr;
    maps.set(folio, (maps.get(folio) ?? 0) + 1);
  };
  for (const [pmd, t] of mm.pgd.ptes) {
    let nr = 0;
    for (let i = 0; i < 512; i++) {
      const f = t.flags[i];
      if (f !== 0) nr++;
      if (!pte_present(f) || f & _PAGE_SPECIAL || t.val[i] === store.zero_pfn) continue;
      count_page(t.val[i], 1, pmd * 512 + i);
    }
    TEST_ASSERT_EQ(t.nr, nr, `${step}: PTE table count`);
  }
  for (const [pmd, e] of mm.pgd.pmds) if (pte_present(e.flags) && !(e.flags & _PAGE_SPECIAL)) count_page(e.val, 512, pmd * 512);
  TEST_ASSERT_EQ([...mm.rss_stat], rss, `${step}: rss`);
  for (const [folio, n] of maps) {
    TEST_ASSERT_EQ(folio_mapcount(store, folio), n, `${step}: mapcount of 0x${folio.toString(16)}`);
    const cache = (store.mapping[store.idx(folio)] & FOLIO_MAPPING_ANON) === 0 ? (folio_test_large(store, folio) ? 512 : 1) : 0;
    TEST_ASSERT_EQ(folio_ref_count(store, folio), n + cache, `${step}: refcount of 0x${folio.toString(16)}`);
  }
}

describe('address-space invariants under random calls', () => {
  for (const seed of [1, 2, 3, 4]) {
    test(`seed ${seed}`, ({ host }) => {
      const p = host.process();
      let x = seed * 2654435761;
      const rnd = (n: number): number => {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        return Math.floor((x / 2 ** 32) * n);
      };
      const fds = [0, 1].map(() => {
        const fd = p.memfd_create('r', 0);
        TEST_ASSERT(p.ftruncate(fd, ARENA_PAGES * PAGE_SIZE) === 0);
        return fd;
      });
      const prots = [PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE];
      for (let step = 0; step < 400; step++) {
        const start = rnd(ARENA_PAGES);
        const len = 1 + rnd(Math.min(ARENA_PAGES - start, 600));
        const addr = BASE + BigInt(start) * PG;
        const bytes = BigInt(len) * PG;
        const op = rnd(9);
        let what: string;
        switch (op) {
          case 0:
          case 1: {
            const file = rnd(2) === 0;
            const fd = fds[rnd(2)];
            const flags = (rnd(2) === 0 ? MAP_PRIVATE : MAP_SHARED) | MAP_FIXED | (file ? 0 : MAP_ANONYMOUS);
            what = `mmap ${start}+${len} ${file ? 'file' : 'anon'} flags ${flags}`;
            p.mmap(addr, bytes, prots[rnd(3)], flags, file ? fd : -1, file ? BigInt(rnd(ARENA_PAGES - len + 1)) * PG : 0);
            break;
          }
          case 2:
            what = `munmap ${start}+${len}`;
            p.munmap(addr, bytes);
            break;
          case 3:
            what = `mprotect ${start}+${len}`;
            p.mprotect(addr, bytes, prots[rnd(3)]);
            break;
          case 4:
            what = `DONTNEED ${start}+${len}`;
            p.madvise(addr, bytes, MADV_DONTNEED);
            break;
          case 5:
            what = `POPULATE_WRITE ${start}+${len}`;
            p.madvise(addr, bytes, MADV_POPULATE_WRITE);
            break;
          case 6: {
            /* a THP-eligible anonymous mapping, touched */
            const at = BASE + BigInt(rnd(2) * 512) * PG;
            what = `THP mmap at ${at - BASE}`;
            p.mmap(at, 512n * PG, prots[1 + rnd(2)], MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
            p.madvise(at, 512n * PG, MADV_HUGEPAGE);
            p.load(at + BigInt(rnd(512)) * PG, 1);
            p.store(at + BigInt(rnd(512)) * PG, Uint8Array.of(1));
            break;
          }
          case 7:
            what = `REMOVE ${start}+${len}`;
            p.madvise(addr, bytes, MADV_REMOVE);
            break;
          default:
            what = `store/load at ${start}`;
            p.store(addr, Uint8Array.of(step & 0xff));
            p.load(addr + bytes - 1n, 1);
        }
        check(p, fds, `step ${step} (${what})`);
      }
      TEST_ASSERT_EQ(p.munmap(BASE, BigInt(ARENA_PAGES) * PG), 0);
      check(p, fds, 'final munmap');
      TEST_ASSERT_EQ(p.mm.get_mm_rss(), 0);
    });
  }
});
