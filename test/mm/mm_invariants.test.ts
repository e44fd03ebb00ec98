/**
 * Random sequences of address-space calls (deterministic), checking after each one what the
 * kernel keeps consistent: the VMA tree, map_count and total_vm, rss against the page tables,
 * every mapped folio's mapcount and refcount against the PTEs that map it and the GUP pins and
 * references the test holds, i_mmap against the VMAs, and that no page table holds an entry
 * outside a VMA. The calls include pinning (pin_user_pages*, get_user_pages*), migrating and
 * try_to_unmap() of what is mapped, and reclaim into a swap area (reclaim(), MADV_PAGEOUT,
 * MADV_COLD, MADV_FREE), with the LRU lists and swap checked too (DEBUG_VM, mm/src/debug_vm.ts); at the
 * end every pin is released, no page is leaked and no swap slot is left in use.
 */
import { describe, test } from 'vitest';
import { PAGE_SIZE } from '@cocosim/core';
import {
  FOLIO_MAPPING_ANON,
  FOLL_LONGTERM,
  FOLL_WRITE,
  GFP_HIGHUSER_MOVABLE,
  GUP_PIN_COUNTING_BIAS,
  MIGRATE_SYNC,
  MR_SYSCALL,
  NUMA_NO_NODE,
  alloc_migration_target,
  folio_lock,
  folio_mapped,
  folio_pincount,
  folio_unlock,
  get_user_pages_fast,
  isolate_folio_to_list,
  migrate_pages,
  pin_user_pages,
  pin_user_pages_fast,
  put_page,
  putback_movable_pages,
  try_to_unmap,
  unpin_user_pages,
  MADV_DONTNEED,
  MADV_HUGEPAGE,
  MADV_POPULATE_WRITE,
  MADV_REMOVE,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  _PAGE_SPECIAL,
  folio_mapcount,
  folio_ref_count,
  folio_test_large,
  page_folio,
  pte_present,
  type Folio,
  type Kernel,
  type Process,
} from '@cocosim/mm';
import { createSimHost } from '../lib/fixtures.js';
import { kvmRegistrar } from '@cocosim/kvm';
import { mmRegistrar } from '@cocosim/mm';
import { TEST_ASSERT, TEST_ASSERT_EQ } from '../lib/test_util.js';
import { MADV_COLD, MADV_FREE, MADV_PAGEOUT, check_vm, folio_test_swapcache, is_huge_zero_pfn, proc_swaps, reclaim, swapon } from '@cocosim/mm';

const PG = BigInt(PAGE_SIZE);
const BASE = 0x3000_0000_0000n;
/** The arena: 4 MiB (two PMDs), so that THPs, splits and merges all happen. */
const ARENA_PAGES = 1024;

/** What the test holds on each folio: FOLL_PIN pins and FOLL_GET references, one list entry per page. */
class Held {
  readonly pins: number[] = [];
  readonly gets: number[] = [];

  /** The references the held pins and gets add to each folio, and its pins. */
  by_folio(k: Kernel): Map<number, { refs: number; pins: number }> {
    const store = k.store;
    const m = new Map<number, { refs: number; pins: number }>();
    const add = (pg: number, pin: boolean): void => {
      const folio = page_folio(store, pg);
      let e = m.get(folio);
      if (e === undefined) m.set(folio, (e = { refs: 0, pins: 0 }));
      if (!pin) e.refs++;
      else {
        e.pins++;
        e.refs += folio_test_large(store, folio) ? 1 : GUP_PIN_COUNTING_BIAS;
      }
    };
    for (const pg of this.pins) add(pg, true);
    for (const pg of this.gets) add(pg, false);
    return m;
  }

  release(k: Kernel): void {
    unpin_user_pages(k.store, this.pins, this.pins.length);
    for (const pg of this.gets) put_page(k.store, pg);
    this.pins.length = 0;
    this.gets.length = 0;
  }
}

const store_of = (p: Process): Process['kernel']['store'] => p.kernel.store;

/** The folio mapped by a present, non-special PTE at page `vpn`, if any. */
function mapped_folio(p: Process, vpn: number): Folio | undefined {
  const store = p.kernel.store;
  const t = p.mm.pgd.ptes.get(Math.floor(vpn / 512));
  if (t === undefined) return undefined;
  const f = t.flags[vpn % 512];
  if (!pte_present(f) || f & _PAGE_SPECIAL || t.val[vpn % 512] === store.zero_pfn) return undefined;
  return page_folio(store, t.val[vpn % 512]);
}

/**
 * After each step: every DEBUG_VM rule (mm/src/debug_vm.ts: VMA tree and counters, i_mmap, rss,
 * mapcounts against the page tables, rmap, page cache, LRU, swap), then what only the test knows:
 * each mapped or held folio's refcount is exactly its mappings, its page-cache or swap-cache
 * references and the pins and references the test holds.
 */
function check(p: Process, step: string, held: Held): void {
  const store = p.kernel.store;
  const v = check_vm(p.kernel);
  TEST_ASSERT(v.length === 0, `${step}: ${v.map((x) => `[${x.rule}] ${x.message}`).join('\n')}`);
  const held_refs = held.by_folio(p.kernel);
  const folios = new Set<number>();
  for (const t of p.mm.pgd.ptes.values()) {
    for (let i = 0; i < 512; i++) {
      if (pte_present(t.flags[i]) && !(t.flags[i] & _PAGE_SPECIAL) && t.val[i] !== store.zero_pfn) folios.add(page_folio(store, t.val[i]));
    }
  }
  for (const e of p.mm.pgd.pmds.values()) if (pte_present(e.flags) && !(e.flags & _PAGE_SPECIAL)) folios.add(e.val);
  for (const folio of folios) {
    if (is_huge_zero_pfn(p.kernel, folio)) continue;
    const n = folio_mapcount(store, folio);
    const nr = folio_test_large(store, folio) ? 512 : 1;
    /* the page cache's references, or the swap cache's */
    const cache = (store.mapping[store.idx(folio)] & FOLIO_MAPPING_ANON) === 0 || folio_test_swapcache(store, folio) ? nr : 0;
    const h = held_refs.get(folio) ?? { refs: 0, pins: 0 };
    TEST_ASSERT_EQ(folio_ref_count(store, folio), n + cache + h.refs, `${step}: refcount of 0x${folio.toString(16)}`);
    if (folio_test_large(store, folio)) TEST_ASSERT_EQ(folio_pincount(store, folio), h.pins, `${step}: pincount of 0x${folio.toString(16)}`);
  }
}

describe('address-space invariants under random calls', () => {
  for (const seed of [1, 2, 3, 4, 6, 7, 9, 39, 45, 54, 56]) {
    // 256 MiB: check_vm() after every step walks the memory map, so the host is kept small; each seed
    // is thousands of checked calls, hence the longer timeout.
    test(`seed ${seed}`, async () => {
      const host = createSimHost({ seed: 0 }, [mmRegistrar({ nr_pages: 2 ** 16 }), kvmRegistrar()]);
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
      const held = new Held();
      const kernel = host.kernel;
      TEST_ASSERT_EQ(swapon(kernel, 4096), 0);
      const free0 = kernel.page_alloc.nr_free_pages();
      for (let step = 0; step < 400; step++) {
        const start = rnd(ARENA_PAGES);
        const len = 1 + rnd(Math.min(ARENA_PAGES - start, 600));
        const addr = BASE + BigInt(start) * PG;
        const bytes = BigInt(len) * PG;
        const op = rnd(13);
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
          case 9: {
            /* pin or get a few pages, as a driver would, and keep them */
            const n = 1 + rnd(4);
            const kind = rnd(4);
            const pages: number[] = [];
            const vpn = Number(addr / PG);
            what = `GUP kind ${kind} ${start}+${n}`;
            let got: number;
            if (kind === 0) got = pin_user_pages(p.mm, vpn, n, rnd(2) ? FOLL_WRITE : 0, pages);
            else if (kind === 1) got = pin_user_pages_fast(p.mm, vpn, n, FOLL_WRITE, pages);
            else if (kind === 2) got = pin_user_pages(p.mm, vpn, n, FOLL_LONGTERM, pages);
            else got = get_user_pages_fast(p.mm, vpn, n, 0, pages);
            if (got > 0) (kind === 3 ? held.gets : held.pins).push(...pages.slice(0, got));
            break;
          }
          case 10:
            what = 'release the pins and references held';
            held.release(kernel);
            break;
          case 11: {
            /* migrate what is mapped there (pinned folios stay) */
            const folio = mapped_folio(p, Number(addr / PG));
            what = `migrate at ${start}`;
            const list: Folio[] = [];
            if (folio === undefined || !isolate_folio_to_list(kernel, folio, list)) break;
            const mtc = { nid: NUMA_NO_NODE, gfp_mask: GFP_HIGHUSER_MOVABLE, reason: MR_SYSCALL };
            migrate_pages(kernel, list, (src) => alloc_migration_target(kernel, src, mtc), undefined, MIGRATE_SYNC, MR_SYSCALL);
            putback_movable_pages(kernel, list);
            break;
          }
          case 12: {
            /* reclaim-style unmap of a page-cache folio (anon ones need swap) */
            const folio = mapped_folio(p, Number(addr / PG));
            what = `try_to_unmap at ${start}`;
            if (folio === undefined || store_of(p).mapping[store_of(p).idx(folio)] & FOLIO_MAPPING_ANON) break;
            folio_lock(store_of(p), folio);
            try_to_unmap(kernel, folio, 0);
            folio_unlock(store_of(p), folio);
            TEST_ASSERT(!folio_mapped(store_of(p), folio), `${what}: still mapped`);
            break;
          }
          default:
            what = `store/load at ${start}`;
            p.store(addr, Uint8Array.of(step & 0xff));
            p.load(addr + bytes - 1n, 1);
        }
        check(p, `step ${step} (${what})`, held);
        /* reclaim, interleaved with the calls above (one generator: every seed's sequence mixes both) */
        const r = rnd(8);
        if (r < 4) {
          const rs = rnd(ARENA_PAGES);
          const rl = 1 + rnd(Math.min(ARENA_PAGES - rs, 300));
          const ra = BASE + BigInt(rs) * PG;
          const advice = [MADV_PAGEOUT, MADV_COLD, MADV_FREE][r % 3];
          if (r === 3) reclaim(kernel, rl);
          else p.madvise(ra, BigInt(rl) * PG, advice);
          check(p, `step ${step} (${r === 3 ? `reclaim ${rl}` : `madvise ${advice} ${rs}+${rl}`})`, held);
        }
      }
      TEST_ASSERT_EQ(p.munmap(BASE, BigInt(ARENA_PAGES) * PG), 0);
      check(p, 'final munmap', held);
      TEST_ASSERT_EQ(p.mm.get_mm_rss(), 0);
      held.release(kernel);
      for (const fd of fds) TEST_ASSERT_EQ(p.close(fd), 0);
      TEST_ASSERT_EQ(kernel.page_alloc.checkConsistency(), []);
      TEST_ASSERT_EQ(proc_swaps(kernel).split('\n')[1].split(/\s+/)[3], '0', 'swap slots left in use');
      /* every page came back but the huge zero folio, once a THP read fault allocated it */
      TEST_ASSERT([free0, free0 - 512].includes(kernel.page_alloc.nr_free_pages()), `leaked ${free0 - kernel.page_alloc.nr_free_pages()} pages`);
      await host.container.dispose();
    }, 30_000);
  }
});
