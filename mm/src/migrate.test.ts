import { describe, expect, test } from 'vitest';
import { KernelBug, PAGE_SIZE, createRootContainer, type Pfn } from '@cocosim/core';
import { folio_get, folio_lock, folio_put, folio_ref_count, folio_unlock, type Folio } from './folio.js';
import { GFP_HIGHUSER_MOVABLE } from './gfp.js';
import { Kernel, mmRegistrar } from './kernel.js';
import { MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_READ, PROT_WRITE } from './mman.js';
import {
  MIGRATE_SYNC,
  MR_COMPACTION,
  alloc_migration_target,
  isolate_folio_to_list,
  migrate_pages,
  putback_movable_pages,
  remove_migration_ptes,
} from './migrate.js';
import { NUMA_NO_NODE } from './page_store.js';
import { Process } from './process.js';
import { pagemap_pfn } from './task_mmu.js';
import { try_to_migrate } from './rmap.js';

const PG = BigInt(PAGE_SIZE);
const H = 0x3000_0000_0000n;

function proc(): Process {
  return new Process(createRootContainer({}, mmRegistrar({ nr_pages: 2 ** 16 })).resolve(Kernel));
}

function pfn_at(p: Process, addr: bigint): Pfn | undefined {
  return pagemap_pfn(p.mm, addr);
}

describe('migration', () => {
  test('a poisoned source cannot be copied (-EHWPOISON): the migration is undone', () => {
    const p = proc();
    const k = p.kernel;
    const a = p.mmap(H, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    expect(p.store(a, Uint8Array.of(1))).toBe(0);
    const folio = pfn_at(p, a)! as Folio;
    k.phys.poison(folio as Pfn, 5);
    const list: Folio[] = [];
    expect(isolate_folio_to_list(k, folio, list)).toBe(true);
    const mtc = { nid: NUMA_NO_NODE, gfp_mask: GFP_HIGHUSER_MOVABLE, reason: MR_COMPACTION };
    expect(migrate_pages(k, list, (src) => alloc_migration_target(k, src, mtc), undefined, MIGRATE_SYNC, MR_COMPACTION)).toBe(1);
    expect(list).toEqual([folio]);
    putback_movable_pages(k, list);
    expect(pfn_at(p, a)).toBe(folio);
    expect(folio_ref_count(k.store, folio)).toBe(1);
  });

  test('a fault on migration entries of a folio nobody is migrating would wait forever', () => {
    const p = proc();
    const store = p.kernel.store;
    const a = p.mmap(H, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    expect(p.store(a, Uint8Array.of(2))).toBe(0);
    const folio = pfn_at(p, a)! as Folio;
    /* the caller of try_to_migrate() holds a reference (migration's isolation) */
    folio_get(store, folio);
    folio_lock(store, folio);
    try_to_migrate(p.kernel, folio, 0);
    expect(() => p.load(a, 1)).toThrow(KernelBug);
    /* the entries go back to the folio (migrate_folio_undo_src()) */
    remove_migration_ptes(p.kernel, folio, folio, 0);
    folio_unlock(store, folio);
    folio_put(store, folio);
    expect(p.load(a, 1)).toEqual(Uint8Array.of(2));
    expect(folio_ref_count(store, folio)).toBe(1);
  });
});
