/**
 * The host's memory map: one entry per page frame, as the kernel's `struct page` array (mem_map,
 * include/linux/mm_types.h), kept as a struct of typed arrays.
 *
 * Entry i describes pfn `base_pfn + i`; every accessor goes through idx(pfn). Pfns are plain
 * numbers and may exceed 2^31 (RAM can start at a high pfn, see `base_pfn`), so nothing here uses
 * 32-bit shifts on them.
 *
 * Layout (field, array, kernel counterpart):
 *
 *   flags             Uint32Array   page->flags: PG_* bits (page-flags.ts). The kernel also packs
 *                                   zone and node numbers into the top bits; they are `zone` and
 *                                   `node` below. On the first tail page of a large folio this word
 *                                   holds the folio->_flags_1 bits (PG_large_rmappable...).
 *   _refcount         Int32Array    page->_refcount. Meaningful on order-0 pages and compound heads;
 *                                   tail pages stay 0 as in the kernel (ask folio_ref_count()).
 *                                   Order-0 pins add GUP_PIN_COUNTING_BIAS (1024) here.
 *   _mapcount         Int32Array    page->_mapcount, -1 based as in the kernel: -1 = mapped by no
 *                                   page table, 0 = mapped once. It is also page->page_type (a
 *                                   union in the kernel): a typed page (free buddy head, hugetlb
 *                                   folio, page table...) stores PGTY_x << 24 here, read as u32;
 *                                   -1 (0xffffffff) means "no type".
 *   _large_mapcount   Int32Array    folio->_large_mapcount, -1 based: every mapping (PTE, PMD or
 *                                   PUD) of any page of a large folio. Head of a large folio only.
 *   _entire_mapcount  Int32Array    folio->_entire_mapcount, -1 based: PMD/PUD mappings of the whole
 *                                   folio. Head of a large folio only.
 *   _nr_pages_mapped  Int32Array    folio->_nr_pages_mapped (CONFIG_PAGE_MAPCOUNT), 0 based. Head
 *                                   of a large folio only.
 *   _pincount         Int32Array    folio->_pincount, 0 based: FOLL_PIN pins of a large folio
 *                                   (folio_has_pincount()). Head of a large folio only.
 *   order             Uint8Array    folio_order() at a compound head (the kernel keeps it in the low
 *                                   byte of folio->_flags_1) and buddy_order() at the first page of
 *                                   a free buddy block (the kernel keeps it in page->private); 0 on
 *                                   every other page.
 *   head_offset       Uint32Array   page->compound_head: a tail page's distance to its head page
 *                                   (the kernel stores the head address | 1); 0 = not a tail.
 *   mapping           Uint32Array   folio->mapping as an id, 0 = NULL. Ids are multiples of 4 handed
 *                                   out by the module that owns the address_space or anon_vma, so
 *                                   that the low two bits carry FOLIO_MAPPING_ANON and
 *                                   FOLIO_MAPPING_ANON_KSM exactly as the kernel tags the pointer.
 *   index             Float64Array  folio->index (pgoff_t), exact up to 2^53.
 *   node              Uint8Array    page_to_nid().
 *   zone              Uint8Array    page_zonenum(): ZONE_DMA, ZONE_DMA32, ZONE_NORMAL, ZONE_MOVABLE.
 *   owner             Uint32Array   simulator only: who the page belongs to; 0 = the host kernel
 *                                   (or nobody, when free), other ids are given out by the VM layer.
 *
 * That is 51 bytes per page: the default 8 GiB host (2^21 pages) takes about 107 MB of address
 * space, of which only the arrays written at boot (flags, _refcount, _mapcount, node, zone,
 * about 30 MB) are touched until pages are used. A 24 GiB host is about three times that. There
 * is no sparse mode: size the store to the simulated RAM.
 *
 * Construction is the kernel's memmap_init(): every page starts as a reserved page (PG_reserved,
 * _refcount 1, _mapcount -1). The page allocator (page_alloc.ts) then plays memblock_free_all()
 * and hands every page that is not in `reserved` (nor the zero page) to the buddy allocator.
 */
import { BUG, WarnSink, type Pfn } from '@cocosim/core';
import { PG_reserved } from './page-flags.js';

/* enum zone_type (include/linux/mmzone.h), x86-64 without CONFIG_HIGHMEM and CONFIG_ZONE_DEVICE */
export const ZONE_DMA = 0;
export const ZONE_DMA32 = 1;
export const ZONE_NORMAL = 2;
export const ZONE_MOVABLE = 3;
export const MAX_NR_ZONES = 4;
/** zone_names[] as /proc/zoneinfo prints them. */
export const ZONE_NAMES: readonly string[] = ['DMA', 'DMA32', 'Normal', 'Movable'];

/** x86-64 MAX_DMA_PFN (16 MiB) and MAX_DMA32_PFN (4 GiB). */
export const MAX_DMA_PFN = 2 ** 12;
export const MAX_DMA32_PFN = 2 ** 20;

/** NUMA_NO_NODE: "any node", i.e. the local node (node 0: the simulator has no CPUs). */
export const NUMA_NO_NODE = -1;
/** The simulator's MAX_NUMNODES (the kernel's is 1 << CONFIG_NODES_SHIFT): node ids are Uint8. */
export const MAX_NUMNODES = 255;

/** The default simulated RAM: 8 GiB of 4 KiB pages. */
export const DEFAULT_NR_PAGES = 2 ** 21;

/** A run of page frames [start_pfn, start_pfn + nr_pages). */
export interface PfnRange {
  readonly start_pfn: number;
  readonly nr_pages: number;
}

export interface PageStoreOptions {
  /** First pfn of simulated RAM (default 0). May be beyond 2^31; base_pfn + nr_pages <= 2^52. */
  readonly base_pfn?: number;
  /** Number of NUMA nodes; RAM is split into this many contiguous, nearly equal spans (default 1). */
  readonly nodes?: number;
  /** Ranges that form ZONE_MOVABLE (what movablecore= or movable_node give); default none. */
  readonly movable?: readonly PfnRange[];
  /**
   * x86-64 low zones (default true): pfns below 16 MiB are ZONE_DMA and below 4 GiB ZONE_DMA32;
   * the rest is ZONE_NORMAL (or ZONE_MOVABLE). When false, all non-movable RAM is ZONE_NORMAL.
   */
  readonly dma_zones?: boolean;
  /** Ranges never given to the buddy allocator (memblock-reserved): PG_reserved, refcount 1. */
  readonly reserved?: readonly PfnRange[];
  /**
   * Reserve the first pfn as the shared zero page (empty_zero_page), as the kernel image holds it
   * (default true). is_zero_pfn() and is_zero_folio() test it.
   */
  readonly zero_page?: boolean;
  /** The host's warning sink (bad_page(), WARN_ON); a fresh one by default. */
  readonly warn?: WarnSink;
}

/** A contiguous run of pfns with one node and one zone (the simulator's memblock regions). */
export interface MemSegment {
  readonly start_pfn: number;
  readonly end_pfn: number;
  readonly nid: number;
  readonly zone_idx: number;
}

/** Where a zone of a node lies: zone_start_pfn, spanned_pages and present_pages of struct zone. */
export interface ZoneSpan {
  readonly nid: number;
  readonly zone_idx: number;
  readonly zone_start_pfn: number;
  readonly spanned_pages: number;
  readonly present_pages: number;
}

/**
 * The page allocator's free path, which folio_put() reaches when the last reference goes
 * (__folio_put() -> free_frozen_pages()). The allocator registers itself here.
 */
export interface FrozenPageFree {
  /** free_frozen_pages(): free a page (order-0 or compound head) whose refcount is already 0. */
  free_frozen_pages(pfn: number, order: number): void;
  /** free_unref_folios(): free the first `nr` of `folios`, each with refcount 0 already. */
  free_unref_folios(folios: ArrayLike<number>, nr: number): void;
}

export class PageStore {
  readonly base_pfn: number;
  readonly nr_pages: number;
  /** One past the last pfn. */
  readonly end_pfn: number;
  readonly nr_node_ids: number;
  readonly warn: WarnSink;
  /** The zero page's pfn, or -1 when the store has none. */
  readonly zero_pfn: number;
  /** Node/zone runs in pfn order. */
  readonly segments: readonly MemSegment[];
  /** Populated zones, ordered by node then zone index. */
  readonly zones: readonly ZoneSpan[];
  /** memblock-reserved ranges (including the zero page), sorted and clipped. */
  readonly reserved: readonly PfnRange[];

  readonly flags: Uint32Array;
  readonly _refcount: Int32Array;
  readonly _mapcount: Int32Array;
  readonly _large_mapcount: Int32Array;
  readonly _entire_mapcount: Int32Array;
  readonly _nr_pages_mapped: Int32Array;
  readonly _pincount: Int32Array;
  readonly order: Uint8Array;
  readonly head_offset: Uint32Array;
  readonly mapping: Uint32Array;
  readonly index: Float64Array;
  readonly node: Uint8Array;
  readonly zone: Uint8Array;
  readonly owner: Uint32Array;

  /**
   * Whether setOwner() ever gave a page a non-zero owner. Until then every `owner` entry is 0,
   * and the free paths do not write it: a host that runs no VM never touches that array, whose
   * untouched pages cost the simulator's host a page fault each on first write.
   */
  owners_set = false;

  /** Set by the page allocator; folio_put() frees through it. */
  page_alloc: FrozenPageFree | undefined;
  /**
   * free_huge_folio() (mm/hugetlb.c): where a hugetlb folio goes when its last reference is
   * dropped. Set by the hugetlb pool; putting a hugetlb folio to zero without it is a simulator bug.
   */
  free_huge_folio: ((folio: Pfn) => void) | undefined;
  /**
   * mapping->a_ops->dirty_folio for folio_mark_dirty() on a folio with a mapping: set by the page
   * cache. Without it (or for folios without a mapping) folio_mark_dirty() is noop_dirty_folio().
   */
  dirty_folio: ((mapping: number, folio: Pfn) => boolean) | undefined;

  constructor(nr_pages: number = DEFAULT_NR_PAGES, options: PageStoreOptions = {}) {
    const base = options.base_pfn ?? 0;
    const nodes = options.nodes ?? 1;
    if (!Number.isSafeInteger(nr_pages) || nr_pages <= 0) throw new RangeError(`PageStore: bad nr_pages ${nr_pages}`);
    if (!Number.isSafeInteger(base) || base < 0 || base + nr_pages > 2 ** 52) {
      throw new RangeError(`PageStore: bad base_pfn ${base}`);
    }
    if (!Number.isInteger(nodes) || nodes < 1 || nodes > MAX_NUMNODES || nodes > nr_pages) {
      throw new RangeError(`PageStore: bad node count ${nodes}`);
    }
    this.base_pfn = base;
    this.nr_pages = nr_pages;
    this.end_pfn = base + nr_pages;
    this.nr_node_ids = nodes;
    this.warn = options.warn ?? new WarnSink();
    this.page_alloc = undefined;
    this.free_huge_folio = undefined;
    this.dirty_folio = undefined;

    this.flags = new Uint32Array(nr_pages);
    this._refcount = new Int32Array(nr_pages);
    this._mapcount = new Int32Array(nr_pages);
    this._large_mapcount = new Int32Array(nr_pages);
    this._entire_mapcount = new Int32Array(nr_pages);
    this._nr_pages_mapped = new Int32Array(nr_pages);
    this._pincount = new Int32Array(nr_pages);
    this.order = new Uint8Array(nr_pages);
    this.head_offset = new Uint32Array(nr_pages);
    this.mapping = new Uint32Array(nr_pages);
    this.index = new Float64Array(nr_pages);
    this.node = new Uint8Array(nr_pages);
    this.zone = new Uint8Array(nr_pages);
    this.owner = new Uint32Array(nr_pages);

    /* memmap_init(): __init_single_page() plus the reserve that memblock_free_all() undoes. */
    this.flags.fill(1 << PG_reserved);
    this._refcount.fill(1);
    this._mapcount.fill(-1);

    const movable = (options.movable ?? []).map((r) => this.clip(r, 'movable'));
    this.segments = this.layout(nodes, movable, options.dma_zones ?? true);
    for (const s of this.segments) {
      this.node.fill(s.nid, s.start_pfn - base, s.end_pfn - base);
      this.zone.fill(s.zone_idx, s.start_pfn - base, s.end_pfn - base);
    }
    this.zones = PageStore.zone_spans(this.segments);

    this.zero_pfn = (options.zero_page ?? true) ? base : -1;
    const reserved = (options.reserved ?? []).map((r) => this.clip(r, 'reserved'));
    if (this.zero_pfn >= 0) reserved.push({ start_pfn: this.zero_pfn, nr_pages: 1 });
    this.reserved = reserved.filter((r) => r.nr_pages > 0).sort((a, b) => a.start_pfn - b.start_pfn);
  }

  /** pfn_valid(): the pfn has a struct page here. */
  pfn_valid(pfn: number): boolean {
    const i = pfn - this.base_pfn;
    return i >= 0 && i < this.nr_pages && Number.isInteger(i);
  }

  /** The array index of `pfn`. A pfn outside the store is a simulator bug (pfn_to_page of garbage). */
  idx(pfn: number): number {
    const i = pfn - this.base_pfn;
    if (!(i >= 0 && i < this.nr_pages && Number.isInteger(i))) {
      BUG(`pfn ${pfn} outside the memory map [${this.base_pfn}, ${this.end_pfn})`);
    }
    return i;
  }

  /** Simulator plumbing: the owner id of a page (0 = host kernel or free). */
  getOwner(pfn: number): number {
    return this.owner[this.idx(pfn)];
  }

  /** Simulator plumbing: give nr_pages pages starting at pfn to `owner`. */
  setOwner(pfn: number, nr_pages: number, owner: number): void {
    const i = this.idx(pfn);
    if (nr_pages > 1) this.idx(pfn + nr_pages - 1);
    if (owner !== 0) this.owners_set = true;
    this.owner.fill(owner, i, i + nr_pages);
  }

  private clip(r: PfnRange, what: string): PfnRange {
    if (!Number.isSafeInteger(r.start_pfn) || !Number.isSafeInteger(r.nr_pages) || r.nr_pages < 0) {
      throw new RangeError(`PageStore: bad ${what} range ${r.start_pfn}+${r.nr_pages}`);
    }
    const start = Math.max(r.start_pfn, this.base_pfn);
    const end = Math.min(r.start_pfn + r.nr_pages, this.end_pfn);
    return { start_pfn: start, nr_pages: Math.max(0, end - start) };
  }

  /** Cuts RAM at node, DMA and movable boundaries into runs of one node and one zone. */
  private layout(nodes: number, movable: readonly PfnRange[], dma: boolean): MemSegment[] {
    const base = this.base_pfn;
    const end = this.end_pfn;
    const node_start = (nid: number): number => base + Math.floor((nid * this.nr_pages) / nodes);
    const cuts = new Set<number>([base, end]);
    for (let nid = 1; nid < nodes; nid++) cuts.add(node_start(nid));
    if (dma) for (const limit of [MAX_DMA_PFN, MAX_DMA32_PFN]) if (limit > base && limit < end) cuts.add(limit);
    for (const r of movable) {
      if (r.nr_pages === 0) continue;
      cuts.add(r.start_pfn);
      cuts.add(r.start_pfn + r.nr_pages);
    }
    const points = [...cuts].sort((a, b) => a - b);
    const segments: MemSegment[] = [];
    let nid = 0;
    for (let k = 0; k + 1 < points.length; k++) {
      const a = points[k];
      while (nid + 1 < nodes && node_start(nid + 1) <= a) nid++;
      let zone_idx: number;
      if (movable.some((r) => a >= r.start_pfn && a < r.start_pfn + r.nr_pages)) zone_idx = ZONE_MOVABLE;
      else if (dma && a < MAX_DMA_PFN) zone_idx = ZONE_DMA;
      else if (dma && a < MAX_DMA32_PFN) zone_idx = ZONE_DMA32;
      else zone_idx = ZONE_NORMAL;
      const last = segments[segments.length - 1];
      if (last !== undefined && last.nid === nid && last.zone_idx === zone_idx && last.end_pfn === a) {
        segments[segments.length - 1] = { ...last, end_pfn: points[k + 1] };
      } else {
        segments.push({ start_pfn: a, end_pfn: points[k + 1], nid, zone_idx });
      }
    }
    return segments;
  }

  private static zone_spans(segments: readonly MemSegment[]): ZoneSpan[] {
    const spans = new Map<number, { nid: number; zone_idx: number; start: number; end: number; present: number }>();
    for (const s of segments) {
      const key = s.nid * MAX_NR_ZONES + s.zone_idx;
      const z = spans.get(key);
      if (z === undefined) {
        spans.set(key, { nid: s.nid, zone_idx: s.zone_idx, start: s.start_pfn, end: s.end_pfn, present: s.end_pfn - s.start_pfn });
      } else {
        z.start = Math.min(z.start, s.start_pfn);
        z.end = Math.max(z.end, s.end_pfn);
        z.present += s.end_pfn - s.start_pfn;
      }
    }
    return [...spans.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([, z]) => ({
        nid: z.nid,
        zone_idx: z.zone_idx,
        zone_start_pfn: z.start,
        spanned_pages: z.end - z.start,
        present_pages: z.present,
      }));
  }
}

/** page_to_nid(). */
export function page_to_nid(store: PageStore, page: number): number {
  return store.node[store.idx(page)];
}

/** page_zonenum(). */
export function page_zonenum(store: PageStore, page: number): number {
  return store.zone[store.idx(page)];
}

/** is_zone_movable_page(). */
export function is_zone_movable_page(store: PageStore, page: number): boolean {
  return page_zonenum(store, page) === ZONE_MOVABLE;
}

/** is_zero_pfn(): the shared zero page (mm/memory.c zero_pfn). */
export function is_zero_pfn(store: PageStore, pfn: number): boolean {
  return pfn === store.zero_pfn;
}

/** my_zero_pfn(): the zero page for an address (one zero page on x86-64). */
export function my_zero_pfn(store: PageStore): number {
  return store.zero_pfn;
}
