/**
 * The migration step of contiguous allocations (mm/page_alloc.c __alloc_contig_migrate_range(),
 * mm/page_isolation.c has_unmovable_pages(), mm/compaction.c isolate_migratepages_range();
 * Linux 6.18): what lets alloc_contig_range(), and so gigantic hugetlb allocations, take a range
 * whose pages are in use but movable.
 *
 * 1. start_isolate_page_range(): the range must hold nothing unmovable: no reserved page and,
 *    outside ZONE_MOVABLE, only free pages and LRU folios (hugetlb folios count as unmovable:
 *    hugetlb migration is not modelled). Otherwise -EBUSY before anything moves.
 * 2. isolate_migratepages_range(): the LRU folios in the range come off the LRU, except anon
 *    folios with more references than mappings (a pin: migration would fail anyway).
 * 3. migrate_pages(MIGRATE_SYNC, MR_CONTIG_RANGE) up to 5 times while folios are left; then
 *    -EBUSY (or -ENOMEM from the allocator), the leftovers put back.
 * The destinations come from alloc_migration_target() on the range's node; a destination that
 * falls inside the range (the kernel keeps the range's pageblocks MIGRATE_ISOLATE so that it
 * cannot) is set aside and freed at the end. alloc_contig_range() then checks that the range is
 * free (test_pages_isolated()) and takes it.
 *
 * Kernel.ts installs __alloc_contig_migrate_range() as the page allocator's contig_migrate.
 */
import { Errno } from '@cocosim/core';
import { folio_mapcount, folio_mapping, folio_nr_pages, folio_put, folio_ref_count, page_folio, type Folio } from './folio.js';
import { __GFP_IO, __GFP_FS, __GFP_MOVABLE, __GFP_NOWARN, __GFP_RECLAIM, __GFP_RETRY_MAYFAIL, type gfp_t } from './gfp.js';
import type { Kernel } from './kernel.js';
import { MIGRATE_SYNC, MR_CONTIG_RANGE, alloc_migration_target, migrate_lru_ops, migrate_pages, putback_movable_pages } from './migrate.js';
import { PGTY_buddy, PG_reserved, folio_test_hugetlb, folio_test_lru } from './page-flags.js';
import { ZONE_MOVABLE, type PageStore } from './page_store.js';

/** Passes of migrate_pages() over the folios left, as __alloc_contig_migrate_range() counts them. */
const CONTIG_MIGRATE_TRIES = 5;

/** The folio containing `pfn` as the range scan sees it: [head, nr pages]. */
function folio_at(store: PageStore, pfn: number): [number, number] {
  const head = page_folio(store, pfn);
  return [head, folio_nr_pages(store, head)];
}

/**
 * has_unmovable_pages() over [start, end): the first page that cannot be moved away, or -1.
 * In ZONE_MOVABLE only reserved pages are; elsewhere anything in use that is not on the LRU.
 */
function has_unmovable_pages(store: PageStore, start: number, end: number): number {
  for (let pfn = start; pfn < end; ) {
    const i = store.idx(pfn);
    if (store.flags[i] & (1 << PG_reserved)) return pfn;
    if (store.zone[i] === ZONE_MOVABLE) {
      pfn++;
      continue;
    }
    if (store.head_offset[i] !== 0 || store._refcount[i] !== 0) {
      const [head, nr] = folio_at(store, pfn);
      if (folio_test_hugetlb(store, head) || !folio_test_lru(store, head)) return pfn;
      pfn = head + nr;
      continue;
    }
    /* A free page: skip its buddy block */
    pfn += store._mapcount[i] >>> 24 === PGTY_buddy ? 2 ** store.order[i] : 1;
  }
  return -1;
}

/**
 * isolate_migratepages_range(): isolate the LRU folios of [start, end) into `list`, skipping
 * those that could not migrate anyway (an anonymous folio with more references than mappings).
 */
function isolate_migratepages_range(store: PageStore, start: number, end: number, list: Folio[]): void {
  for (let pfn = start; pfn < end; ) {
    const i = store.idx(pfn);
    if (store.head_offset[i] === 0 && store._refcount[i] === 0) {
      pfn += store._mapcount[i] >>> 24 === PGTY_buddy ? 2 ** store.order[i] : 1;
      continue;
    }
    const [head, nr] = folio_at(store, pfn);
    pfn = head + nr;
    if (!folio_test_lru(store, head) || folio_test_hugetlb(store, head)) continue;
    /* Migration will fail if an anonymous page is pinned in memory: don't isolate it. */
    if (folio_mapping(store, head) === 0 && folio_ref_count(store, head) - 1 > folio_mapcount(store, head)) continue;
    if (migrate_lru_ops.folio_isolate_lru(store, head as Folio)) list.push(head as Folio);
  }
}

/**
 * __alloc_contig_migrate_range(): move every folio in use out of pfns [start, end). 0 when
 * nothing is left to move (alloc_contig_range() still checks that the range is free), -EBUSY,
 * -ENOMEM.
 */
export function __alloc_contig_migrate_range(kernel: Kernel, start: number, end: number, gfp: gfp_t): number {
  const store = kernel.store;
  if (has_unmovable_pages(store, start, end) >= 0) return -Errno.EBUSY;
  /* __alloc_contig_verify_gfp_mask(): the migration targets' gfp */
  const reclaim_mask = __GFP_IO | __GFP_FS | __GFP_RECLAIM;
  const mtc = {
    nid: store.node[store.idx(start)],
    gfp_mask: (gfp & (reclaim_mask | __GFP_RETRY_MAYFAIL | __GFP_NOWARN)) | __GFP_MOVABLE,
    reason: MR_CONTIG_RANGE,
  };
  const set_aside: Folio[] = [];
  const get_new_folio = (src: Folio): Folio | undefined => {
    for (;;) {
      const dst = alloc_migration_target(kernel, src, mtc);
      if (dst === undefined) return undefined;
      if (dst + folio_nr_pages(store, dst) <= start || dst >= end) return dst;
      set_aside.push(dst);
    }
  };
  const list: Folio[] = [];
  isolate_migratepages_range(store, start, end, list);
  let ret = 0;
  for (let tries = 0; list.length !== 0; ) {
    ret = migrate_pages(kernel, list, get_new_folio, undefined, MIGRATE_SYNC, MR_CONTIG_RANGE);
    /* On -ENOMEM, migrate_pages() bails out right away. It is pointless to retry again over this error. */
    if (ret === -Errno.ENOMEM) break;
    if (list.length !== 0 && ++tries === CONTIG_MIGRATE_TRIES) {
      ret = -Errno.EBUSY;
      break;
    }
  }
  for (const f of set_aside) folio_put(store, f);
  if (ret < 0) {
    putback_movable_pages(kernel, list);
    return ret;
  }
  return 0;
}
