/**
 * Page flags and page types (include/linux/page-flags.h, Linux 6.18).
 *
 * Bit numbers follow `enum pageflags` of 6.18 for an x86-64 configuration with CONFIG_MMU,
 * CONFIG_MEMORY_FAILURE, CONFIG_SWAP and CONFIG_TRANSPARENT_HUGEPAGE, without
 * CONFIG_PAGE_IDLE_FLAG (no PG_young/PG_idle) and without PG_arch_2/PG_arch_3. The numbers matter
 * only for printing (format_page_flags, dump_page); code tests flags through the helpers.
 *
 * The helpers are generated from one table, as the kernel generates them from PAGEFLAG(),
 * FOLIO_FLAG() and friends. Each row says where the bit lives for a compound page (the kernel's
 * PF_* policy); the export list below then names exactly the helpers the kernel's macros define
 * for that flag, so `folio_set_writeback` does not exist here either. All helpers take
 * `(store, pfn)`: a `folio` argument is the head pfn of a folio, a `page` argument any pfn.
 *
 * Misuse the kernel catches with VM_BUG_ON_PGFLAGS (a folio op on a tail page, setting a
 * PF_NO_TAIL flag through a tail page...) throws KernelBug here: it is a simulator bug.
 */
import { BUG } from '@cocosim/core';
import type { PageStore } from './page_store.js';

/* enum pageflags */
export const PG_locked = 0; /* Page is locked. Don't touch. */
export const PG_writeback = 1; /* Page is under writeback */
export const PG_referenced = 2;
export const PG_uptodate = 3;
export const PG_dirty = 4;
export const PG_lru = 5;
export const PG_head = 6; /* Must be in bit 6 */
export const PG_waiters = 7; /* Page has waiters, check its waitqueue */
export const PG_active = 8;
export const PG_workingset = 9;
export const PG_owner_priv_1 = 10; /* Owner use. If pagecache, fs may use */
export const PG_owner_2 = 11; /* Owner use. If pagecache, fs may use */
export const PG_arch_1 = 12;
export const PG_reserved = 13;
export const PG_private = 14; /* If pagecache, has fs-private data */
export const PG_private_2 = 15; /* If pagecache, has fs aux data */
export const PG_reclaim = 16; /* To be reclaimed asap */
export const PG_swapbacked = 17; /* Page is backed by RAM/swap */
export const PG_unevictable = 18; /* Page is "unevictable"  */
export const PG_dropbehind = 19; /* drop pages on IO completion */
export const PG_mlocked = 20; /* Page is vma mlocked */
export const PG_hwpoison = 21; /* hardware poisoned page. Don't touch */
export const __NR_PAGEFLAGS = 22;
export const NR_PAGEFLAGS = __NR_PAGEFLAGS;

/* Aliases: several users share one bit, as in the kernel enum. */
export const PG_readahead = PG_reclaim;
/* Anonymous memory (and shmem) */
export const PG_swapcache = PG_owner_priv_1; /* Swap page: swp_entry_t in private */
/* Some filesystems */
export const PG_checked = PG_owner_priv_1;
export const PG_anon_exclusive = PG_owner_2;
export const PG_mappedtodisk = PG_owner_2;
export const PG_fscache = PG_private_2; /* page backed by cache */
export const PG_pinned = PG_owner_priv_1; /* Xen */
export const PG_savepinned = PG_dirty; /* Xen */
export const PG_foreign = PG_owner_priv_1; /* Xen */
export const PG_xen_remapped = PG_owner_priv_1; /* Xen */
/* non-lru isolated movable page */
export const PG_isolated = PG_reclaim;
/* Only valid for buddy pages. Used to track pages that are reported */
export const PG_reported = PG_uptodate;
/* Flags only valid for compound pages, stored in the first tail page's flags word. */
export const PG_has_hwpoisoned = PG_active;
export const PG_large_rmappable = PG_workingset; /* anon or file-backed */
export const PG_partially_mapped = PG_reclaim; /* was identified to be partially mapped */

export const PAGEFLAGS_MASK = 2 ** NR_PAGEFLAGS - 1;
export const __PG_HWPOISON = 1 << PG_hwpoison;
export const __PG_MLOCKED = 1 << PG_mlocked;

/**
 * Flags checked when a page is freed. Pages being freed should not have these flags set. If they
 * are, there is a problem. (LRU_GEN_MASK is not modelled.)
 */
export const PAGE_FLAGS_CHECK_AT_FREE =
  (1 << PG_lru) |
  (1 << PG_locked) |
  (1 << PG_private) |
  (1 << PG_private_2) |
  (1 << PG_writeback) |
  (1 << PG_reserved) |
  (1 << PG_active) |
  (1 << PG_unevictable) |
  __PG_MLOCKED;

/**
 * Flags checked when a page is prepped for return by the page allocator. __PG_HWPOISON is
 * exceptional because it needs to be kept beyond page's alloc-free cycle to prevent from reusing
 * the page.
 */
export const PAGE_FLAGS_CHECK_AT_PREP = PAGEFLAGS_MASK & ~__PG_HWPOISON;

/**
 * Flags stored in the second page of a compound page. The kernel also keeps the folio order in
 * the low byte there; the simulator keeps the order in PageStore.order, so only the PG bits remain.
 */
export const PAGE_FLAGS_SECOND = (1 << PG_has_hwpoisoned) | (1 << PG_large_rmappable) | (1 << PG_partially_mapped);

export const PAGE_FLAGS_PRIVATE = (1 << PG_private) | (1 << PG_private_2);

/* compound_head() and friends */

/** PageTail(): the page is a tail page of a compound page (the kernel's `compound_head & 1`). */
export function PageTail(store: PageStore, page: number): boolean {
  return store.head_offset[store.idx(page)] !== 0;
}

/**
 * compound_head() / page_folio(): the head pfn of the compound page containing `page`, or `page`
 * itself when it is not a tail page.
 */
export function compound_head(store: PageStore, page: number): number {
  return page - store.head_offset[store.idx(page)];
}

/** PageHead(): the page is the head of a compound page. */
export function PageHead(store: PageStore, page: number): boolean {
  return (store.flags[store.idx(page)] & (1 << PG_head)) !== 0;
}

/** PageCompound(): head or tail of a compound page. */
export function PageCompound(store: PageStore, page: number): boolean {
  const i = store.idx(page);
  return (store.flags[i] & (1 << PG_head)) !== 0 || store.head_offset[i] !== 0;
}

/**
 * The compound-page policy of a flag: which struct page holds the bit (include/linux/page-flags.h
 * "Page flags policies wrt compound pages").
 */
type Policy = 'PF_ANY' | 'PF_HEAD' | 'PF_NO_TAIL' | 'PF_NO_COMPOUND' | 'PF_SECOND';

/** The PF_* policy macro: the pfn whose flags word holds the bit for `page`. */
function policy_page(store: PageStore, page: number, policy: Policy, enforce: boolean): number {
  switch (policy) {
    case 'PF_ANY':
      store.idx(page);
      return page;
    case 'PF_HEAD':
      return compound_head(store, page);
    case 'PF_NO_TAIL':
      if (enforce && PageTail(store, page)) BUG(`VM_BUG_ON_PGFLAGS: PF_NO_TAIL flag modified on tail page ${hex(page)}`);
      return compound_head(store, page);
    case 'PF_NO_COMPOUND':
      if (enforce && PageCompound(store, page)) BUG(`VM_BUG_ON_PGFLAGS: PF_NO_COMPOUND flag on compound page ${hex(page)}`);
      return page;
    case 'PF_SECOND':
      if (!PageHead(store, page)) BUG(`VM_BUG_ON_PGFLAGS: PF_SECOND flag on non-head page ${hex(page)}`);
      return page + 1;
  }
}

/**
 * folio_flags(folio, n): the flags word of page n of the folio. A folio is never a tail page, and
 * n > 0 needs a large folio.
 */
function folio_flags_idx(store: PageStore, folio: number, n: number): number {
  const i = store.idx(folio);
  if (store.head_offset[i] !== 0) BUG(`VM_BUG_ON_PGFLAGS: folio ${hex(folio)} is a tail page`);
  if (n > 0 && (store.flags[i] & (1 << PG_head)) === 0) BUG(`VM_BUG_ON_PGFLAGS: folio ${hex(folio)} has no page ${n}`);
  return i + n;
}

function hex(pfn: number): string {
  return `0x${pfn.toString(16)}`;
}

/**
 * The flag table: [folio name, Page name (null: the kernel has only folio helpers), bit, policy].
 * FOLIO_FLAG(name, FOLIO_HEAD_PAGE) rows use PF_HEAD; FOLIO_SECOND_PAGE rows use PF_SECOND.
 */
const PAGEFLAG_TABLE = [
  ['locked', 'Locked', PG_locked, 'PF_NO_TAIL'],
  ['waiters', null, PG_waiters, 'PF_HEAD'],
  ['referenced', null, PG_referenced, 'PF_HEAD'],
  ['uptodate', 'Uptodate', PG_uptodate, 'PF_NO_TAIL'],
  ['dirty', 'Dirty', PG_dirty, 'PF_HEAD'],
  ['lru', 'LRU', PG_lru, 'PF_HEAD'],
  ['active', null, PG_active, 'PF_HEAD'],
  ['workingset', 'Workingset', PG_workingset, 'PF_HEAD'],
  ['checked', 'Checked', PG_checked, 'PF_NO_COMPOUND'],
  ['reserved', 'Reserved', PG_reserved, 'PF_NO_COMPOUND'],
  ['swapbacked', null, PG_swapbacked, 'PF_HEAD'],
  ['private', 'Private', PG_private, 'PF_ANY'],
  ['private_2', null, PG_private_2, 'PF_HEAD'],
  ['owner_2', null, PG_owner_2, 'PF_HEAD'],
  ['writeback', 'Writeback', PG_writeback, 'PF_NO_TAIL'],
  ['mappedtodisk', null, PG_mappedtodisk, 'PF_HEAD'],
  ['reclaim', 'Reclaim', PG_reclaim, 'PF_NO_TAIL'],
  ['readahead', null, PG_readahead, 'PF_HEAD'],
  ['dropbehind', null, PG_dropbehind, 'PF_HEAD'],
  ['swapcache', null, PG_swapcache, 'PF_HEAD'],
  ['unevictable', null, PG_unevictable, 'PF_HEAD'],
  ['mlocked', null, PG_mlocked, 'PF_HEAD'],
  ['hwpoison', 'HWPoison', PG_hwpoison, 'PF_ANY'],
  ['head', 'Head', PG_head, 'PF_ANY'],
  ['large_rmappable', null, PG_large_rmappable, 'PF_SECOND'],
  ['partially_mapped', null, PG_partially_mapped, 'PF_SECOND'],
  ['has_hwpoisoned', null, PG_has_hwpoisoned, 'PF_SECOND'],
] as const;

type Row = (typeof PAGEFLAG_TABLE)[number];
type LName = Row[0];
type UName = Exclude<Row[1], null>;
type FolioTest = (store: PageStore, folio: number) => boolean;
type FolioOp = (store: PageStore, folio: number) => void;
type PageTest = (store: PageStore, page: number) => boolean;
type PageOp = (store: PageStore, page: number) => void;

type GeneratedOps = { [K in LName as `folio_test_${K}`]: FolioTest } & {
  [K in LName as `folio_set_${K}` | `folio_clear_${K}` | `__folio_set_${K}` | `__folio_clear_${K}`]: FolioOp;
} & { [K in LName as `folio_test_set_${K}` | `folio_test_clear_${K}`]: FolioTest } & {
  [K in UName as `Page${K}` | `TestSetPage${K}` | `TestClearPage${K}`]: PageTest;
} & { [K in UName as `SetPage${K}` | `ClearPage${K}` | `__SetPage${K}` | `__ClearPage${K}`]: PageOp };

/**
 * Builds every helper of every row. The simulator is single-threaded, so the atomic
 * (set_bit) and non-atomic (__set_bit) variants behave the same; both exist because kernel code
 * names them.
 */
function generate(): GeneratedOps {
  const ops: Record<string, FolioTest | FolioOp> = {};
  for (const [lname, uname, bit, policy] of PAGEFLAG_TABLE) {
    const mask = 1 << bit;
    const n = policy === 'PF_SECOND' ? 1 : 0;
    const test: FolioTest = (s, f) => (s.flags[folio_flags_idx(s, f, n)] & mask) !== 0;
    const set: FolioOp = (s, f) => {
      s.flags[folio_flags_idx(s, f, n)] |= mask;
    };
    const clear: FolioOp = (s, f) => {
      s.flags[folio_flags_idx(s, f, n)] &= ~mask;
    };
    const test_set: FolioTest = (s, f) => {
      const i = folio_flags_idx(s, f, n);
      const old = (s.flags[i] & mask) !== 0;
      s.flags[i] |= mask;
      return old;
    };
    const test_clear: FolioTest = (s, f) => {
      const i = folio_flags_idx(s, f, n);
      const old = (s.flags[i] & mask) !== 0;
      s.flags[i] &= ~mask;
      return old;
    };
    ops[`folio_test_${lname}`] = test;
    ops[`folio_set_${lname}`] = set;
    ops[`folio_clear_${lname}`] = clear;
    ops[`__folio_set_${lname}`] = set;
    ops[`__folio_clear_${lname}`] = clear;
    ops[`folio_test_set_${lname}`] = test_set;
    ops[`folio_test_clear_${lname}`] = test_clear;
    if (uname === null) continue;
    const pTest: PageTest = (s, p) => (s.flags[s.idx(policy_page(s, p, policy, false))] & mask) !== 0;
    const pSet: PageOp = (s, p) => {
      s.flags[s.idx(policy_page(s, p, policy, true))] |= mask;
    };
    const pClear: PageOp = (s, p) => {
      s.flags[s.idx(policy_page(s, p, policy, true))] &= ~mask;
    };
    const pTestSet: PageTest = (s, p) => {
      const i = s.idx(policy_page(s, p, policy, true));
      const old = (s.flags[i] & mask) !== 0;
      s.flags[i] |= mask;
      return old;
    };
    const pTestClear: PageTest = (s, p) => {
      const i = s.idx(policy_page(s, p, policy, true));
      const old = (s.flags[i] & mask) !== 0;
      s.flags[i] &= ~mask;
      return old;
    };
    ops[`Page${uname}`] = pTest;
    ops[`SetPage${uname}`] = pSet;
    ops[`ClearPage${uname}`] = pClear;
    ops[`__SetPage${uname}`] = pSet;
    ops[`__ClearPage${uname}`] = pClear;
    ops[`TestSetPage${uname}`] = pTestSet;
    ops[`TestClearPage${uname}`] = pTestClear;
  }
  return ops as unknown as GeneratedOps;
}

const G = generate();

/*
 * The helpers the 6.18 macros define, flag by flag (PAGEFLAG = Page/SetPage/ClearPage and
 * folio_test/set/clear, TESTSCFLAG = the TestSet/TestClear pairs, __PAGEFLAG = the non-atomic
 * set/clear, FOLIO_FLAG = folio_test/set/clear only).
 */
export const {
  /* __PAGEFLAG(Locked, locked, PF_NO_TAIL); folio_lock() and friends are in folio.ts */
  folio_test_locked, __folio_set_locked, __folio_clear_locked, PageLocked, __SetPageLocked, __ClearPageLocked,
  /* FOLIO_FLAG(waiters, FOLIO_HEAD_PAGE) */
  folio_test_waiters, folio_set_waiters, folio_clear_waiters,
  /* FOLIO_FLAG(referenced) FOLIO_TEST_CLEAR_FLAG(referenced) __FOLIO_SET_FLAG(referenced) */
  folio_test_referenced, folio_set_referenced, folio_clear_referenced, folio_test_clear_referenced,
  __folio_set_referenced,
  /* PAGEFLAG(Dirty, dirty, PF_HEAD) TESTSCFLAG(Dirty) __CLEARPAGEFLAG(Dirty) */
  folio_test_dirty, folio_set_dirty, folio_clear_dirty, folio_test_set_dirty, folio_test_clear_dirty,
  __folio_clear_dirty, PageDirty, SetPageDirty, ClearPageDirty, TestSetPageDirty, TestClearPageDirty,
  __ClearPageDirty,
  /* PAGEFLAG(LRU, lru, PF_HEAD) __CLEARPAGEFLAG(LRU) TESTCLEARFLAG(LRU) */
  folio_test_lru, folio_set_lru, folio_clear_lru, __folio_clear_lru, folio_test_clear_lru, PageLRU, SetPageLRU,
  ClearPageLRU, __ClearPageLRU, TestClearPageLRU,
  /* FOLIO_FLAG(active) __FOLIO_CLEAR_FLAG(active) FOLIO_TEST_CLEAR_FLAG(active) */
  folio_test_active, folio_set_active, folio_clear_active, __folio_clear_active, folio_test_clear_active,
  /* PAGEFLAG(Workingset, workingset, PF_HEAD) TESTCLEARFLAG(Workingset) */
  folio_test_workingset, folio_set_workingset, folio_clear_workingset, folio_test_clear_workingset,
  PageWorkingset, SetPageWorkingset, ClearPageWorkingset, TestClearPageWorkingset,
  /* PAGEFLAG(Checked, checked, PF_NO_COMPOUND) */
  folio_test_checked, folio_set_checked, folio_clear_checked, PageChecked, SetPageChecked, ClearPageChecked,
  /* PAGEFLAG(Reserved, reserved, PF_NO_COMPOUND) __CLEARPAGEFLAG __SETPAGEFLAG */
  folio_test_reserved, folio_set_reserved, folio_clear_reserved, __folio_clear_reserved, __folio_set_reserved,
  PageReserved, SetPageReserved, ClearPageReserved, __ClearPageReserved, __SetPageReserved,
  /* FOLIO_FLAG(swapbacked) __FOLIO_CLEAR_FLAG __FOLIO_SET_FLAG */
  folio_test_swapbacked, folio_set_swapbacked, folio_clear_swapbacked, __folio_clear_swapbacked,
  __folio_set_swapbacked,
  /* PAGEFLAG(Private, private, PF_ANY) */
  folio_test_private, folio_set_private, folio_clear_private, PagePrivate, SetPagePrivate, ClearPagePrivate,
  /* FOLIO_FLAG(private_2), FOLIO_FLAG(owner_2), FOLIO_FLAG(mappedtodisk) */
  folio_test_private_2, folio_set_private_2, folio_clear_private_2,
  folio_test_owner_2, folio_set_owner_2, folio_clear_owner_2,
  folio_test_mappedtodisk, folio_set_mappedtodisk, folio_clear_mappedtodisk,
  /* TESTPAGEFLAG(Writeback, writeback, PF_NO_TAIL) TESTSCFLAG(Writeback): no plain set/clear,
   * they would bypass writeback accounting */
  folio_test_writeback, folio_test_set_writeback, folio_test_clear_writeback, PageWriteback,
  TestSetPageWriteback, TestClearPageWriteback,
  /* PAGEFLAG(Reclaim, reclaim, PF_NO_TAIL) TESTCLEARFLAG(Reclaim) */
  folio_test_reclaim, folio_set_reclaim, folio_clear_reclaim, folio_test_clear_reclaim, PageReclaim,
  SetPageReclaim, ClearPageReclaim, TestClearPageReclaim,
  /* FOLIO_FLAG(readahead) FOLIO_TEST_CLEAR_FLAG(readahead) */
  folio_test_readahead, folio_set_readahead, folio_clear_readahead, folio_test_clear_readahead,
  /* FOLIO_FLAG(dropbehind) FOLIO_TEST_CLEAR_FLAG(dropbehind) __FOLIO_SET_FLAG(dropbehind) */
  folio_test_dropbehind, folio_set_dropbehind, folio_clear_dropbehind, folio_test_clear_dropbehind,
  __folio_set_dropbehind,
  /* FOLIO_SET_FLAG(swapcache) FOLIO_CLEAR_FLAG(swapcache); the test is folio_test_swapcache() below */
  folio_set_swapcache, folio_clear_swapcache,
  /* FOLIO_FLAG(unevictable) __FOLIO_CLEAR_FLAG FOLIO_TEST_CLEAR_FLAG */
  folio_test_unevictable, folio_set_unevictable, folio_clear_unevictable, __folio_clear_unevictable,
  folio_test_clear_unevictable,
  /* FOLIO_FLAG(mlocked) __FOLIO_CLEAR_FLAG FOLIO_TEST_CLEAR_FLAG FOLIO_TEST_SET_FLAG */
  folio_test_mlocked, folio_set_mlocked, folio_clear_mlocked, __folio_clear_mlocked, folio_test_clear_mlocked,
  folio_test_set_mlocked,
  /* PAGEFLAG(HWPoison, hwpoison, PF_ANY) TESTSCFLAG(HWPoison) */
  folio_test_hwpoison, folio_set_hwpoison, folio_clear_hwpoison, folio_test_set_hwpoison,
  folio_test_clear_hwpoison, PageHWPoison, SetPageHWPoison, ClearPageHWPoison, TestSetPageHWPoison,
  TestClearPageHWPoison,
  /* folio_test_head(); __SETPAGEFLAG(Head) __CLEARPAGEFLAG(Head) CLEARPAGEFLAG(Head), all PF_ANY */
  folio_test_head, __folio_set_head, __folio_clear_head, folio_clear_head, __SetPageHead, __ClearPageHead,
  ClearPageHead,
  /* FOLIO_FLAG(large_rmappable / partially_mapped / has_hwpoisoned, FOLIO_SECOND_PAGE) */
  folio_test_large_rmappable, folio_set_large_rmappable, folio_clear_large_rmappable,
  folio_test_partially_mapped, folio_set_partially_mapped, folio_clear_partially_mapped,
  folio_test_has_hwpoisoned, folio_set_has_hwpoisoned, folio_clear_has_hwpoisoned,
  /* CLEARPAGEFLAG(Uptodate, uptodate, PF_NO_TAIL); the set side is folio_mark_uptodate() */
  folio_test_uptodate, folio_clear_uptodate, ClearPageUptodate,
} = G;

/** folio_mark_uptodate(): every byte of the folio is valid. */
export const folio_mark_uptodate: FolioOp = G.folio_set_uptodate;
/** __folio_mark_uptodate(): the non-atomic variant, for folios nobody else can see yet. */
export const __folio_mark_uptodate: FolioOp = G.__folio_set_uptodate;

/** PageUptodate(): folio_test_uptodate(page_folio(page)). */
export function PageUptodate(store: PageStore, page: number): boolean {
  return folio_test_uptodate(store, compound_head(store, page));
}
/** SetPageUptodate() and __SetPageUptodate() mark the page's folio uptodate; page must not be a tail. */
export const SetPageUptodate: PageOp = G.SetPageUptodate;
export const __SetPageUptodate: PageOp = G.__SetPageUptodate;

/**
 * folio_test_swapcache(): PG_swapcache shares its bit with PG_owner_priv_1, so it only means
 * "in the swap cache" on a swap-backed folio.
 */
export function folio_test_swapcache(store: PageStore, folio: number): boolean {
  return folio_test_swapbacked(store, folio) && (store.flags[store.idx(folio)] & (1 << PG_swapcache)) !== 0;
}

/** folio_test_large(): the folio has more than one page. */
export function folio_test_large(store: PageStore, folio: number): boolean {
  return folio_test_head(store, folio);
}

/** folio_has_private(): PG_private or PG_private_2 is set. */
export function folio_has_private(store: PageStore, folio: number): boolean {
  return (store.flags[store.idx(folio)] & PAGE_FLAGS_PRIVATE) !== 0;
}

/* Page types (enum pagetype), kept in the top byte of page->page_type, which overlays _mapcount. */

export const PGTY_buddy = 0xf0;
export const PGTY_offline = 0xf1;
export const PGTY_table = 0xf2;
export const PGTY_guard = 0xf3;
export const PGTY_hugetlb = 0xf4;
export const PGTY_slab = 0xf5;
export const PGTY_zsmalloc = 0xf6;
export const PGTY_unaccepted = 0xf7;
export const PGTY_large_kmalloc = 0xf8;
export const PGTY_mapcount_underflow = 0xff;

/** page->page_type as the u32 the kernel reads (0xffffffff when the page has no type). */
export function page_type(store: PageStore, page: number): number {
  return store._mapcount[store.idx(page)] >>> 0;
}

/**
 * page_type_has_type(): the value is a type, not a (-1 based) mapcount. The kernel compares as a
 * signed int: types are below 0xff000000 (very negative), mapcounts and their underflow are not.
 */
export function page_type_has_type(type: number): boolean {
  return (type | 0) < PAGE_TYPE_LIMIT;
}

/** PGTY_mapcount_underflow << 24 as the kernel's int: -16777216. */
const PAGE_TYPE_LIMIT = (PGTY_mapcount_underflow * 2 ** 24) | 0;

/** page_mapcount_is_type(): takes a mapcount that is one more than page->_mapcount. */
export function page_mapcount_is_type(mapcount: number): boolean {
  return page_type_has_type(mapcount - 1);
}

/** page_has_type(). */
export function page_has_type(store: PageStore, page: number): boolean {
  return page_type_has_type(page_type(store, page));
}

/** [type value, folio name, Page name or null] for FOLIO_TYPE_OPS / PAGE_TYPE_OPS. */
const PAGE_TYPE_TABLE = [
  [PGTY_buddy, 'buddy', 'Buddy'],
  [PGTY_offline, 'offline', 'Offline'],
  [PGTY_table, 'pgtable', 'Table'],
  [PGTY_guard, 'guard', 'Guard'],
  [PGTY_hugetlb, 'hugetlb', null],
  [PGTY_slab, 'slab', null],
  [PGTY_zsmalloc, 'zsmalloc', 'Zsmalloc'],
  [PGTY_unaccepted, 'unaccepted', 'Unaccepted'],
  [PGTY_large_kmalloc, 'large_kmalloc', null],
] as const;

type TypeRow = (typeof PAGE_TYPE_TABLE)[number];
type TypeOps = { [K in TypeRow[1] as `folio_test_${K}`]: FolioTest } & {
  [K in TypeRow[1] as `__folio_set_${K}` | `__folio_clear_${K}`]: FolioOp;
} & { [K in Exclude<TypeRow[2], null> as `Page${K}`]: PageTest } & {
  [K in Exclude<TypeRow[2], null> as `__SetPage${K}` | `__ClearPage${K}`]: PageOp;
};

function generate_types(): TypeOps {
  const ops: Record<string, FolioTest | FolioOp> = {};
  for (const [type, fname, uname] of PAGE_TYPE_TABLE) {
    const test = (s: PageStore, p: number): boolean => s._mapcount[s.idx(p)] >>> 24 === type;
    const set = (s: PageStore, p: number): void => {
      const i = s.idx(p);
      if (s._mapcount[i] >>> 24 === type) return;
      if (s._mapcount[i] !== -1) BUG(`VM_BUG_ON_PAGE: page ${hex(p)} page_type ${(s._mapcount[i] >>> 0).toString(16)} != UINT_MAX`);
      s._mapcount[i] = type * 2 ** 24;
    };
    const clear = (s: PageStore, p: number): void => {
      const i = s.idx(p);
      if (s._mapcount[i] === -1) return;
      if (s._mapcount[i] >>> 24 !== type) BUG(`VM_BUG_ON_PAGE: page ${hex(p)} is not of page type ${type.toString(16)}`);
      s._mapcount[i] = -1;
    };
    ops[`folio_test_${fname}`] = test;
    ops[`__folio_set_${fname}`] = set;
    ops[`__folio_clear_${fname}`] = clear;
    if (uname === null) continue;
    ops[`Page${uname}`] = test;
    ops[`__SetPage${uname}`] = set;
    ops[`__ClearPage${uname}`] = clear;
  }
  return ops as unknown as TypeOps;
}

export const {
  /* PAGE_TYPE_OPS(Buddy, buddy, buddy): free and in the buddy allocator */
  PageBuddy, __SetPageBuddy, __ClearPageBuddy, folio_test_buddy, __folio_set_buddy, __folio_clear_buddy,
  /* PAGE_TYPE_OPS(Offline, offline, offline) */
  PageOffline, __SetPageOffline, __ClearPageOffline, folio_test_offline, __folio_set_offline, __folio_clear_offline,
  /* PAGE_TYPE_OPS(Table, table, pgtable) */
  PageTable, __SetPageTable, __ClearPageTable, folio_test_pgtable, __folio_set_pgtable, __folio_clear_pgtable,
  /* PAGE_TYPE_OPS(Guard, guard, guard) */
  PageGuard, __SetPageGuard, __ClearPageGuard, folio_test_guard, __folio_set_guard, __folio_clear_guard,
  /* FOLIO_TYPE_OPS(hugetlb, hugetlb), FOLIO_TYPE_OPS(slab, slab), FOLIO_TYPE_OPS(large_kmalloc, ...) */
  folio_test_hugetlb, __folio_set_hugetlb, __folio_clear_hugetlb,
  folio_test_slab, __folio_set_slab, __folio_clear_slab,
  folio_test_large_kmalloc, __folio_set_large_kmalloc, __folio_clear_large_kmalloc,
  /* PAGE_TYPE_OPS(Zsmalloc, ...), PAGE_TYPE_OPS(Unaccepted, ...) */
  PageZsmalloc, __SetPageZsmalloc, __ClearPageZsmalloc, folio_test_zsmalloc, __folio_set_zsmalloc,
  __folio_clear_zsmalloc,
  PageUnaccepted, __SetPageUnaccepted, __ClearPageUnaccepted, folio_test_unaccepted, __folio_set_unaccepted,
  __folio_clear_unaccepted,
} = generate_types();

/** PageHuge(): the page belongs to a hugetlbfs folio. */
export function PageHuge(store: PageStore, page: number): boolean {
  return folio_test_hugetlb(store, compound_head(store, page));
}

/** PageSlab(). */
export function PageSlab(store: PageStore, page: number): boolean {
  return folio_test_slab(store, compound_head(store, page));
}

/** folio_has_mapcount(): typed folios (other than hugetlb) reuse _mapcount for their type. */
export function folio_has_mapcount(store: PageStore, folio: number): boolean {
  return !page_has_type(store, folio) || folio_test_hugetlb(store, folio);
}

/**
 * is_page_hwpoison(): the page is poisoned, or it belongs to a hugetlb folio whose head is
 * (hugetlb keeps the poison on the head page).
 */
export function is_page_hwpoison(store: PageStore, page: number): boolean {
  if (PageHWPoison(store, page)) return true;
  const folio = compound_head(store, page);
  return folio_test_hugetlb(store, folio) && PageHWPoison(store, folio);
}

/** folio_contain_hwpoisoned_page(). */
export function folio_contain_hwpoisoned_page(store: PageStore, folio: number): boolean {
  return folio_test_hwpoison(store, folio) || (folio_test_large(store, folio) && folio_test_has_hwpoisoned(store, folio));
}

/** Flag names for printing, in bit order (include/trace/events/mmflags.h __def_pageflag_names). */
const PAGEFLAG_NAMES: readonly string[] = [
  'locked', 'writeback', 'referenced', 'uptodate', 'dirty', 'lru', 'head', 'waiters', 'active', 'workingset',
  'owner_priv_1', 'owner_2', 'arch_1', 'reserved', 'private', 'private_2', 'reclaim', 'swapbacked',
  'unevictable', 'dropbehind', 'mlocked', 'hwpoison',
];

/** The flags word as `%pGp` prints it: `0x2c(uptodate|dirty|head)`. */
export function format_page_flags(flags: number): string {
  const names: string[] = [];
  for (let bit = 0; bit < NR_PAGEFLAGS; bit++) if (flags & (1 << bit)) names.push(PAGEFLAG_NAMES[bit]);
  return `0x${(flags >>> 0).toString(16)}(${names.join('|')})`;
}
