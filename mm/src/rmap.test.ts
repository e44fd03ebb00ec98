import { describe, expect, test } from 'vitest';
import { PAGE_SIZE, createRootContainer , type Pfn } from '@cocosim/core';
import { folio_get, folio_lock, folio_put, folio_unlock, type Folio } from './folio.js';
import { Kernel, mmRegistrar } from './kernel.js';
import { MADV_HUGEPAGE, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from './mman.js';
import { Process } from './process.js';
import { pagemap_pfn } from './task_mmu.js';
import {
  PVMW_MIGRATION,
  PageVmaMappedWalk,
  TTU_BATCH_FLUSH,
  page_address_in_vma,
  page_vma_mapped_walk,
  try_to_migrate,
  try_to_unmap,
  try_to_unmap_flush,
  vma_address,
} from './rmap.js';
import { MM_SHMEMPAGES } from './mm_types.js';
import { PG_dirty } from './page-flags.js';
import { vma_lookup } from './vma.js';

const PG = BigInt(PAGE_SIZE);
const H = 0x3000_0000_0000n;

function proc(): Process {
  return new Process(createRootContainer({}, mmRegistrar({ nr_pages: 2 ** 16 })).resolve(Kernel));
}

function pfn_at(p: Process, addr: bigint): Pfn | undefined {
  return pagemap_pfn(p.mm, addr);
}

describe('vma_address()', () => {
  test('the page of a file offset in a VMA, the VMA start for an object that begins before it, -1 outside', () => {
    const p = proc();
    const fd = p.memfd_create('v', 0);
    expect(p.ftruncate(fd, 16 * PAGE_SIZE)).toBe(0);
    const a = p.mmap(H, 4n * PG, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 4n * PG);
    const vma = vma_lookup(p.mm, Number(a / PG))!;
    const v = Number(a / PG);
    expect(vma_address(vma, 5, 1)).toBe(v + 1);
    expect(vma_address(vma, 8, 1)).toBe(-1);
    expect(vma_address(vma, 3, 1)).toBe(-1);
    /* a 4-page object at offset 2 overlaps the VMA's first pages */
    expect(vma_address(vma, 2, 4)).toBe(v);
    expect(vma_address(vma, 0, 4)).toBe(-1);
  });
});

describe('page_vma_mapped_walk()', () => {
  test('finds each PTE of a file page in a VMA, and the THP by its PMD', () => {
    const p = proc();
    const store = p.kernel.store;
    const fd = p.memfd_create('w', 0);
    expect(p.ftruncate(fd, 4 * PAGE_SIZE)).toBe(0);
    const a = p.mmap(H, 4n * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
    expect(p.store(a + 2n * PG, Uint8Array.of(1))).toBe(0);
    const folio = pfn_at(p, a + 2n * PG)! as Folio;
    const vma = vma_lookup(p.mm, Number(a / PG))!;
    expect(page_address_in_vma(p.kernel, folio, folio, vma)).toBe(Number(a / PG) + 2);
    const w = PageVmaMappedWalk.of(store, folio, vma, vma_address(vma, 2, 1), 0);
    expect(page_vma_mapped_walk(w)).toBe(true);
    expect([w.address, w.pte?.val[w.pte_idx]]).toEqual([Number(a / PG) + 2, folio]);
    expect(page_vma_mapped_walk(w)).toBe(false);
    /* a THP: one PMD hit */
    const t = p.mmap(H + 1024n * PG, 512n * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    expect(p.madvise(t, 512n * PG, MADV_HUGEPAGE)).toBe(0);
    expect(p.store(t, Uint8Array.of(1))).toBe(0);
    const thp = pfn_at(p, t)! as Folio;
    const tv = vma_lookup(p.mm, Number(t / PG))!;
    const wt = PageVmaMappedWalk.of(store, thp, tv, vma_address(tv, store.index[store.idx(thp)], 512), 0);
    expect(page_vma_mapped_walk(wt)).toBe(true);
    expect([wt.pmd, wt.pte]).toEqual([Number(t / PG) / 512, undefined]);
    expect(page_vma_mapped_walk(wt)).toBe(false);
  });

  test('PVMW_MIGRATION finds the migration entries try_to_migrate() left, and only those', () => {
    const p = proc();
    const store = p.kernel.store;
    const a = p.mmap(H, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    expect(p.store(a, Uint8Array.of(3))).toBe(0);
    const folio = pfn_at(p, a)! as Folio;
    const vma = vma_lookup(p.mm, Number(a / PG))!;
    const vpn = Number(a / PG);
    expect(page_vma_mapped_walk(PageVmaMappedWalk.of(store, folio, vma, vpn, PVMW_MIGRATION))).toBe(false);
    /* the caller of try_to_migrate() holds a reference (migration's isolation) */
    folio_get(store, folio);
    folio_lock(store, folio);
    try_to_migrate(p.kernel, folio, 0);
    expect(pfn_at(p, a)).toBeUndefined();
    expect(page_vma_mapped_walk(PageVmaMappedWalk.of(store, folio, vma, vpn, 0))).toBe(false);
    const w = PageVmaMappedWalk.of(store, folio, vma, vpn, PVMW_MIGRATION);
    expect(page_vma_mapped_walk(w)).toBe(true);
    expect(w.address).toBe(vpn);
    folio_unlock(store, folio);
    folio_put(store, folio);
  });
});

describe('try_to_unmap() of a page-cache folio mapped by one PTE', () => {
  /*
   * Such a folio takes a short path when its file has a single VMA. The same folio, mapped the
   * same way, in a file that has a second VMA (mapping other pages) takes the general rmap walk:
   * both must end in the same state, with the same costs and TLB flushes.
   */
  function unmap_one(vmas: number, flags: number) {
    const p = proc();
    const store = p.kernel.store;
    const fd = p.memfd_create('t', 0);
    expect(p.ftruncate(fd, 8 * PAGE_SIZE)).toBe(0);
    const a = p.mmap(H, 4n * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
    if (vmas === 2) expect(p.mmap(H + 64n * PG, 4n * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 4 * PAGE_SIZE)).toBe(H + 64n * PG);
    expect(p.store(a + PG, Uint8Array.of(7))).toBe(0);
    const folio = pfn_at(p, a + PG)! as Folio;
    /* a dirty PTE over a folio written back since: the unmap must dirty the folio again */
    store.flags[store.idx(folio)] &= ~(1 << PG_dirty);
    const rss = p.mm.get_mm_counter(MM_SHMEMPAGES);
    const flushes: number[] = [];
    p.kernel.tracer.on('tlb_flush', (f) => void flushes.push(f.pages));
    folio_lock(store, folio);
    const { cost } = p.kernel.cost.measure('ttu', () => try_to_unmap(p.kernel, folio, flags));
    folio_unlock(store, folio);
    const deferred = flushes.length;
    try_to_unmap_flush(p.kernel);
    const i = store.idx(folio);
    return {
      pte: pfn_at(p, a + PG),
      dirty: (store.flags[i] & (1 << PG_dirty)) !== 0,
      mapcount: store._mapcount[i],
      refcount: store._refcount[i],
      rss: p.mm.get_mm_counter(MM_SHMEMPAGES) - rss,
      cost: cost.items.map((it) => [it.name, it.count]),
      deferred,
      flushes,
      data: p.load(a + PG, 1),
    };
  }

  test('the short path ends as the general walk does, with and without TTU_BATCH_FLUSH', () => {
    for (const flags of [0, TTU_BATCH_FLUSH]) {
      const one = unmap_one(1, flags);
      expect(one).toEqual(unmap_one(2, flags));
      expect(one.pte).toBeUndefined();
      expect([one.dirty, one.mapcount, one.refcount, one.rss]).toEqual([true, -1, 1, -1]);
      expect(one.cost).toEqual([
        ['pte_zap', 1],
        ['rmap_walk_per_mapping', 1],
        ...(flags ? [] : [['tlb_flush_local', 1]]),
      ]);
      expect([one.deferred, one.flushes.length]).toEqual([flags ? 0 : 1, 1]);
      expect(one.data).toEqual(Uint8Array.of(7));
    }
  });
});
