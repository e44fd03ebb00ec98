/**
 * Page migration (mm/migrate.c) and the migration of alloc_contig_range() (compaction.ts):
 * contents, page cache and mappings move; pinned folios are refused; a fault on a migration entry
 * waits for the migration and retries.
 */
import { describe } from 'vitest';
import { Errno, PAGE_SIZE, WarnSink, type HostRegistrar } from '@cocosim/core';
import {
  ACR_FLAGS_NONE,
  FOLL_WRITE,
  GFP_HIGHUSER,
  GFP_HIGHUSER_MOVABLE,
  GFP_KERNEL,
  Kernel,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  MIGRATE_ASYNC,
  MIGRATE_SYNC,
  MR_SYSCALL,
  NR_MAX_MIGRATE_PAGES_RETRY,
  NUMA_NO_NODE,
  PROT_READ,
  PROT_WRITE,
  PageAllocator,
  PageStore,
  __GFP_COMP,
  __GFP_NOWARN,
  alloc_migration_target,
  folio_mapcount,
  folio_order,
  folio_pincount,
  folio_ref_count,
  folio_test_lru,
  isolate_folio_to_list,
  migrate_pages,
  mmu_notifier_register,
  pin_user_pages,
  putback_movable_pages,
  unpin_user_pages,
  type Folio,
  type MmuNotifier,
  type Process,
} from '@cocosim/mm';
import { createSimHost, test, type SimHost } from '../lib/fixtures.js';
import { TEST_ASSERT, TEST_ASSERT_EQ } from '../lib/test_util.js';
import { load_ok, mmap_ok, pagemap, store_ok } from './mm_util.js';

const PG = BigInt(PAGE_SIZE);
const RW = PROT_READ | PROT_WRITE;
const H = 0x3000_0000_0000n;

/** Migrate the folio mapped at `addr` (MR_SYSCALL, anywhere): migrate_pages()' result and the list after it. */
function migrate_at(host: SimHost, p: Process, addr: bigint, mode = MIGRATE_SYNC): { ret: number; left: Folio[]; old: Folio } {
  const store = host.kernel.store;
  const old = pagemap(p, addr)! as Folio;
  const folio = (old - store.head_offset[store.idx(old)]) as Folio;
  const list: Folio[] = [];
  TEST_ASSERT(isolate_folio_to_list(host.kernel, folio, list), 'isolated');
  const mtc = { nid: NUMA_NO_NODE, gfp_mask: GFP_HIGHUSER_MOVABLE, reason: MR_SYSCALL };
  const ret = migrate_pages(host.kernel, list, (src) => alloc_migration_target(host.kernel, src, mtc), undefined, mode, MR_SYSCALL);
  const left = [...list];
  putback_movable_pages(host.kernel, list);
  return { ret, left, old: folio };
}

describe('migrate_pages()', () => {
  test('an anon page moves: new pfn, same contents, the PTE follows, the old page is freed', ({ host }) => {
    const p = host.process();
    const store = host.kernel.store;
    const a = mmap_ok(p, H, 2n * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
    store_ok(p, a, [1, 2, 3]);
    store_ok(p, a + PG, [4]);
    const { ret, left, old } = migrate_at(host, p, a);
    TEST_ASSERT_EQ([ret, left.length], [0, 0]);
    const nw = pagemap(p, a)!;
    TEST_ASSERT(nw !== old);
    TEST_ASSERT_EQ(load_ok(p, a, 3), Uint8Array.of(1, 2, 3));
    TEST_ASSERT_EQ([folio_ref_count(store, nw), folio_mapcount(store, nw), folio_ref_count(store, old)], [1, 1, 0]);
    TEST_ASSERT(folio_test_lru(store, nw));
    /* it is still the process's exclusive page: a write reuses it */
    store_ok(p, a, [9]);
    TEST_ASSERT_EQ(pagemap(p, a), nw);
    TEST_ASSERT_EQ(p.mm.rss_stat[1], 2);
    const ev = host.trace.find('mm_migrate_pages');
    TEST_ASSERT_EQ([ev.length, ev[0].args.succeeded, ev[0].args.failed, ev[0].args.mode, ev[0].args.reason], [1, 1, 0, 'MIGRATE_SYNC', 'syscall_or_cpuset']);
    TEST_ASSERT_EQ(host.trace.find('set_migration_pte').length, 1);
    TEST_ASSERT_EQ(host.trace.find('remove_migration_pte').length, 1);
    TEST_ASSERT_EQ(host.kernel.page_alloc.checkConsistency(), []);
  });

  test('a memfd page moves with its page-cache slot and all its mappings', ({ host }) => {
    const p = host.process();
    const store = host.kernel.store;
    const fd = p.memfd_create('m', 0);
    TEST_ASSERT_EQ(p.ftruncate(fd, 2 * PAGE_SIZE), 0);
    const a = mmap_ok(p, H, 2n * PG, RW, MAP_SHARED | MAP_FIXED, fd, 0);
    const b = mmap_ok(p, H + 16n * PG, 2n * PG, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0);
    const c = mmap_ok(p, H + 32n * PG, 2n * PG, RW, MAP_PRIVATE | MAP_FIXED, fd, 0);
    store_ok(p, a + PG, [0x42]);
    load_ok(p, b + PG, 1);
    load_ok(p, c + PG, 1);
    const { ret, old } = migrate_at(host, p, a + PG, MIGRATE_ASYNC);
    TEST_ASSERT_EQ(ret, 0);
    const nw = pagemap(p, a + PG)!;
    TEST_ASSERT(nw !== old);
    TEST_ASSERT_EQ([pagemap(p, b + PG), pagemap(p, c + PG)], [nw, nw]);
    TEST_ASSERT_EQ(p.task.files.lookup(fd)!.f_mapping.i_pages.xa_load(1), nw);
    TEST_ASSERT_EQ([folio_ref_count(store, nw), folio_mapcount(store, nw)], [1 + 3, 3]);
    const buf = new Uint8Array(1);
    TEST_ASSERT_EQ(p.pread(fd, buf, PAGE_SIZE), 1);
    TEST_ASSERT_EQ(buf, Uint8Array.of(0x42));
    /* the writable shared mapping is writable again, the private one still COWs */
    store_ok(p, a + PG, [0x43]);
    store_ok(p, c + PG, [0x44]);
    TEST_ASSERT_EQ([pagemap(p, a + PG), load_ok(p, b + PG, 1)[0]], [nw, 0x43]);
    TEST_ASSERT(pagemap(p, c + PG) !== nw);
  });

  test('a PMD-mapped THP moves as one PMD migration entry', ({ host }) => {
    const p = host.process();
    const store = host.kernel.store;
    const a = mmap_ok(p, H, 512n * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
    TEST_ASSERT_EQ(p.madvise(a, 512n * PG, MADV_HUGEPAGE), 0);
    store_ok(p, a + 300n * PG, [0x66]);
    const { ret, old } = migrate_at(host, p, a);
    TEST_ASSERT_EQ(ret, 0);
    const nw = pagemap(p, a)!;
    TEST_ASSERT(nw !== old && folio_order(store, nw) === 9);
    TEST_ASSERT(p.mm.pgd.pmds.has(Number(a / PG) / 512), 'still PMD-mapped');
    TEST_ASSERT_EQ(load_ok(p, a + 300n * PG, 1), Uint8Array.of(0x66));
    TEST_ASSERT_EQ(host.trace.find('mm_migrate_pages')[0].args.thp_succeeded, 1);
  });

  test('a pinned anon page is refused: not migrated after the retries, mapping and pin intact', ({ host }) => {
    const p = host.process();
    const store = host.kernel.store;
    const a = mmap_ok(p, H, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
    store_ok(p, a, [7]);
    const pins: number[] = [];
    TEST_ASSERT_EQ(pin_user_pages(p.mm, Number(a / PG), 1, FOLL_WRITE, pins), 1);
    const { ret, left, old } = migrate_at(host, p, a);
    TEST_ASSERT_EQ([ret, left], [1, [old]]);
    TEST_ASSERT_EQ(pagemap(p, a), old);
    TEST_ASSERT_EQ(load_ok(p, a, 1), Uint8Array.of(7));
    /* every pass tried to replace the PTE and put it back */
    TEST_ASSERT_EQ(host.trace.find('set_migration_pte').length, 0);
    TEST_ASSERT_EQ(host.trace.find('mm_migrate_pages')[0].args.failed, 1);
    unpin_user_pages(store, pins, 1);
    TEST_ASSERT_EQ(folio_ref_count(store, old), 1);
  });

  test('a pinned page-cache page is refused: its migration entries are turned back into its mappings', ({ host }) => {
    const p = host.process();
    const store = host.kernel.store;
    const fd = p.memfd_create('m', 0);
    TEST_ASSERT_EQ(p.ftruncate(fd, PAGE_SIZE), 0);
    const a = mmap_ok(p, H, PG, RW, MAP_SHARED | MAP_FIXED, fd, 0);
    store_ok(p, a, [5]);
    const pins: number[] = [];
    TEST_ASSERT_EQ(pin_user_pages(p.mm, Number(a / PG), 1, 0, pins), 1);
    const { ret, old } = migrate_at(host, p, a);
    TEST_ASSERT_EQ(ret, 1);
    TEST_ASSERT_EQ(pagemap(p, a), old);
    TEST_ASSERT_EQ(p.task.files.lookup(fd)!.f_mapping.i_pages.xa_load(0), old);
    /*
     * Unmapped once per batch (the MIGRATE_ASYNC one, then the synchronous one), the move tried
     * on each pass of both (NR_MAX_MIGRATE_PAGES_RETRY in all), then mapped back.
     */
    TEST_ASSERT_EQ(host.trace.find('set_migration_pte').length, 2);
    TEST_ASSERT_EQ(host.trace.find('remove_migration_pte').length, 2);
    TEST_ASSERT_EQ(NR_MAX_MIGRATE_PAGES_RETRY, 3 + 7);
    TEST_ASSERT_EQ(folio_ref_count(store, old), 1 + 1 + 1024);
    unpin_user_pages(store, pins, 1);
    TEST_ASSERT_EQ(migrate_at(host, p, a).ret, 0);
  });

  test('a fault on a migration entry waits for the migration and sees the moved page', ({ host }) => {
    const p = host.process();
    const a = mmap_ok(p, H, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
    store_ok(p, a, [0x99]);
    const vpn = Number(a / PG);
    let armed = true;
    let seen: Uint8Array | undefined;
    let entry_flags = 0;
    const sub: MmuNotifier = {
      /* a secondary MMU that re-reads the page as soon as try_to_migrate() has replaced the PTE */
      invalidate_range_end: (mm, start, end) => {
        if (!armed || vpn < start || vpn >= end) return;
        armed = false;
        entry_flags = mm.pgd.ptes.get(Math.floor(vpn / 512))!.flags[vpn % 512];
        seen = load_ok(p, a, 1);
      },
    };
    TEST_ASSERT_EQ(mmu_notifier_register(sub, p.mm), 0);
    const { ret, old } = migrate_at(host, p, a);
    TEST_ASSERT_EQ(ret, 0);
    TEST_ASSERT((entry_flags & (1 << 15)) !== 0, 'the fault found a swap (migration) entry');
    TEST_ASSERT_EQ(seen, Uint8Array.of(0x99));
    TEST_ASSERT(pagemap(p, a) !== old);
    TEST_ASSERT_EQ(host.trace.find('mm_migrate_pages')[0].args.succeeded, 1);
  });
});

describe('alloc_contig_range() migrates movable pages out of its range', () => {
  test('a range of movable user pages is taken after they move; a pinned page makes it -EBUSY', ({ host }) => {
    const p = host.process();
    const store = host.kernel.store;
    const pa = host.kernel.page_alloc;
    const a = mmap_ok(p, H, 64n * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
    for (let k = 0; k < 64; k++) store_ok(p, a + BigInt(k) * PG, [k]);
    const pfns = Array.from({ length: 64 }, (_, k) => pagemap(p, a + BigInt(k) * PG)!);
    const start = Math.ceil(Math.min(...pfns) / 16) * 16 + 16;
    TEST_ASSERT(pfns.includes(start as never), 'the range holds user pages');
    TEST_ASSERT_EQ(pa.alloc_contig_range(start, start + 16, ACR_FLAGS_NONE, GFP_KERNEL), 0);
    for (let k = 0; k < 64; k++) {
      const pfn = pagemap(p, a + BigInt(k) * PG)!;
      TEST_ASSERT(pfn < start || pfn >= start + 16, 'nothing of the process is left in the range');
      TEST_ASSERT_EQ(load_ok(p, a + BigInt(k) * PG, 1), Uint8Array.of(k));
    }
    for (let k = 0; k < 16; k++) TEST_ASSERT_EQ(folio_ref_count(store, start + k), 1);
    pa.free_contig_range(start, 16);
    /* a pinned anon page cannot move */
    const victim = pagemap(p, a + 40n * PG)!;
    const vstart = victim - (victim % 16);
    const pins: number[] = [];
    TEST_ASSERT_EQ(pin_user_pages(p.mm, Number((a + 40n * PG) / PG), 1, 0, pins), 1);
    TEST_ASSERT_EQ(pa.alloc_contig_range(vstart, vstart + 16, ACR_FLAGS_NONE, GFP_KERNEL), -Errno.EBUSY);
    TEST_ASSERT_EQ(pagemap(p, a + 40n * PG), victim);
    unpin_user_pages(store, pins, 1);
    TEST_ASSERT_EQ(pa.checkConsistency(), []);
  });

  test('a gigantic (1 GiB) allocation succeeds when its range holds only movable, unpinned pages', async () => {
    const nr_pages = 2 ** 19;
    const registrar: HostRegistrar = (root) => {
      const warn = root.resolve(WarnSink);
      const store = new PageStore(nr_pages, { warn, dma_zones: false });
      root.registerInstance(PageStore, store);
      root.registerInstance(PageAllocator, new PageAllocator(store));
      root.registerInstance(Kernel, root.resolve(Kernel));
    };
    const host = createSimHost({ seed: 0 }, [registrar]);
    try {
      const p = host.process();
      const store = host.kernel.store;
      const pa = host.kernel.page_alloc;
      /* the kernel takes all of the first GiB, so user pages land in the second */
      const kernel_blocks: number[] = [];
      for (const order of [10, 0]) {
        for (;;) {
          const pfn = pa.alloc_pages(GFP_KERNEL | __GFP_NOWARN, order);
          if (pfn < 0 || pfn >= 2 ** 18) {
            if (pfn >= 0) pa.__free_pages(pfn, order);
            break;
          }
          if (order === 10) kernel_blocks.push(pfn);
        }
      }
      const a = mmap_ok(p, H, 8n * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
      for (let k = 0; k < 8; k++) store_ok(p, a + BigInt(k) * PG, [k + 10]);
      TEST_ASSERT(pagemap(p, a)! >= 2 ** 18);
      /* room for the migration targets */
      pa.__free_pages(kernel_blocks.pop()!, 10);
      const pins: number[] = [];
      TEST_ASSERT_EQ(pin_user_pages(p.mm, Number(a / PG), 1, 0, pins), 1);
      const gfp = GFP_HIGHUSER | __GFP_COMP | __GFP_NOWARN;
      TEST_ASSERT(pa.folio_alloc_gigantic(18, gfp) < 0, 'a pinned page keeps the range busy');
      unpin_user_pages(store, pins, 1);
      const folio = pa.folio_alloc_gigantic(18, gfp);
      TEST_ASSERT_EQ(folio, 2 ** 18);
      for (let k = 0; k < 8; k++) {
        TEST_ASSERT(pagemap(p, a + BigInt(k) * PG)! < 2 ** 18);
        TEST_ASSERT_EQ(load_ok(p, a + BigInt(k) * PG, 1), Uint8Array.of(k + 10));
      }
      TEST_ASSERT_EQ(folio_pincount(store, folio), 0);
    } finally {
      await host.container.dispose();
    }
  });
});
