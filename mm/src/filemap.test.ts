import { describe, expect, test } from 'vitest';
import { createRootContainer, Errno, IS_ERR, RingSink, Tracer, type PgOff } from '@cocosim/core';
import { Kernel, mmRegistrar } from './kernel.js';
import { Inode, S_IFREG } from './fs.js';
import { GFP_KERNEL } from './gfp.js';
import {
  FGP_CREAT,
  FGP_LOCK,
  __filemap_get_folio,
  delete_from_page_cache_batch,
  filemap_add_folio,
  filemap_alloc_folio,
  filemap_get_folio,
  filemap_get_folios,
  filemap_remove_folio,
  find_get_entries,
  find_lock_entries,
  folio_address_space,
  lookupMapping,
  registerMapping,
  unregisterMapping,
} from './filemap.js';
import { folio_lock, folio_mapping, folio_put, folio_ref_count, folio_unlock, type Folio } from './folio.js';
import { folio_test_locked, folio_test_lru } from './page-flags.js';
import { FolioBatch, folio_batch_release } from './pagevec.js';

function setup(): { kernel: Kernel; inode: Inode; trace: RingSink } {
  const container = createRootContainer({}, mmRegistrar({ nr_pages: 8192 }));
  const kernel = container.resolve(Kernel);
  const trace = new RingSink();
  container.resolve(Tracer).addSink(trace);
  const inode = new Inode(kernel.get_next_ino(), S_IFREG | 0o644, {}, {}, kernel.next_mapping_id());
  registerMapping(kernel.store, inode.i_mapping);
  return { kernel, inode, trace };
}

function add(kernel: Kernel, inode: Inode, index: number, order = 0): Folio {
  const folio = filemap_alloc_folio(kernel, GFP_KERNEL, order)!;
  expect(filemap_add_folio(kernel, inode.i_mapping, folio, index, GFP_KERNEL)).toBe(0);
  folio_unlock(kernel.store, folio);
  return folio;
}

describe('page cache insertion and lookup', () => {
  test('filemap_add_folio: the cache holds one reference per page, folio->mapping and index are set', () => {
    const { kernel, inode, trace } = setup();
    const folio = add(kernel, inode, 7);
    const store = kernel.store;
    expect(folio_ref_count(store, folio)).toBe(2); /* the allocation's and the cache's */
    expect(folio_mapping(store, folio)).toBe(inode.i_mapping.id);
    expect(store.index[store.idx(folio)]).toBe(7);
    expect(inode.i_mapping.nrpages).toBe(1);
    expect(folio_test_lru(store, folio)).toBe(true);
    expect(folio_address_space(store, folio)).toBe(inode.i_mapping);
    expect(trace.find('mm_filemap_add_to_page_cache', { pfn: folio, index: 7 as PgOff, i_ino: inode.i_ino })).toHaveLength(1);
    folio_put(store, folio);
    expect(folio_ref_count(store, folio)).toBe(1);
  });

  test('a large folio is found at every index it covers; an occupied index is -EEXIST and changes nothing', () => {
    const { kernel, inode } = setup();
    const big = add(kernel, inode, 8, 2);
    for (let i = 8; i < 12; i++) expect(inode.i_mapping.i_pages.xa_load(i)).toBe(big);
    expect(folio_ref_count(kernel.store, big)).toBe(1 + 4);
    const other = filemap_alloc_folio(kernel, GFP_KERNEL, 0)!;
    expect(filemap_add_folio(kernel, inode.i_mapping, other, 10, GFP_KERNEL)).toBe(-Errno.EEXIST);
    expect(folio_ref_count(kernel.store, other)).toBe(1);
    expect(folio_test_locked(kernel.store, other)).toBe(false);
    expect(folio_mapping(kernel.store, other)).toBe(0);
    expect(inode.i_mapping.nrpages).toBe(4);
  });

  test('__filemap_get_folio: -ENOENT without FGP_CREAT, a new locked folio with it', () => {
    const { kernel, inode } = setup();
    const miss = filemap_get_folio(kernel, inode.i_mapping, 3);
    expect(IS_ERR(miss) && miss.errno).toBe(-Errno.ENOENT);
    const f = __filemap_get_folio(kernel, inode.i_mapping, 3, FGP_CREAT | FGP_LOCK, GFP_KERNEL);
    expect(IS_ERR(f)).toBe(false);
    expect(folio_test_locked(kernel.store, f as Folio)).toBe(true);
    folio_unlock(kernel.store, f as Folio);
    const again = filemap_get_folio(kernel, inode.i_mapping, 3);
    expect(again).toBe(f);
    expect(folio_ref_count(kernel.store, f as Folio)).toBe(3);
  });
});

describe('page cache range lookups', () => {
  test('find_lock_entries skips large folios straddling the range and moves *start past what it took', () => {
    const { kernel, inode } = setup();
    add(kernel, inode, 0);
    const big = add(kernel, inode, 4, 2); /* 4..7 */
    add(kernel, inode, 9);
    const fb = new FolioBatch();
    const start = { index: 1 };
    expect(find_lock_entries(kernel, inode.i_mapping, start, 5, fb)).toBe(0);
    start.index = 0;
    expect(find_lock_entries(kernel, inode.i_mapping, start, 9, fb)).toBe(3);
    expect(fb.folios.slice(0, 3)).toContain(big);
    expect(start.index).toBe(10);
    for (let k = 0; k < fb.nr; k++) folio_unlock(kernel.store, fb.folios[k]);
    folio_batch_release(kernel.store, fb);
  });

  test('find_get_entries and filemap_get_folios report a large folio once', () => {
    const { kernel, inode } = setup();
    const big = add(kernel, inode, 4, 2);
    const fb = new FolioBatch();
    const start = { index: 5 };
    expect(find_get_entries(kernel, inode.i_mapping, start, 100, fb)).toBe(1);
    expect(fb.folios[0]).toBe(big);
    expect(start.index).toBe(8);
    folio_batch_release(kernel.store, fb);
    start.index = 0;
    expect(filemap_get_folios(kernel, inode.i_mapping, start, 100, fb)).toBe(1);
    expect(start.index).toBe(101);
    folio_batch_release(kernel.store, fb);
  });

  test('a batch holds at most PAGEVEC_SIZE folios', () => {
    const { kernel, inode } = setup();
    for (let i = 0; i < 40; i++) add(kernel, inode, i);
    const fb = new FolioBatch();
    const start = { index: 0 };
    expect(find_get_entries(kernel, inode.i_mapping, start, 1000, fb)).toBe(31);
    expect(start.index).toBe(31);
    folio_batch_release(kernel.store, fb);
  });
});

describe('page cache removal', () => {
  test('filemap_remove_folio drops the cache references and frees at refcount 0, with a trace record', () => {
    const { kernel, inode, trace } = setup();
    const folio = add(kernel, inode, 2); /* the caller's reference and the cache's */
    const free_before = kernel.page_alloc.nr_free_pages();
    folio_lock(kernel.store, folio);
    filemap_remove_folio(kernel, folio);
    expect(inode.i_mapping.nrpages).toBe(0);
    expect(inode.i_mapping.i_pages.xa_empty()).toBe(true);
    expect(folio_ref_count(kernel.store, folio)).toBe(1);
    folio_unlock(kernel.store, folio);
    folio_put(kernel.store, folio);
    expect(kernel.page_alloc.nr_free_pages()).toBe(free_before + 1);
    expect(trace.find('mm_filemap_delete_from_page_cache', { pfn: folio, index: 2 as PgOff })).toHaveLength(1);
  });

  test('delete_from_page_cache_batch keeps the batch references; the folio is freed when the batch is released', () => {
    const { kernel, inode } = setup();
    const a = add(kernel, inode, 0);
    const b = add(kernel, inode, 1);
    folio_put(kernel.store, a);
    folio_put(kernel.store, b);
    const fb = new FolioBatch();
    const start = { index: 0 };
    find_lock_entries(kernel, inode.i_mapping, start, 1, fb);
    delete_from_page_cache_batch(kernel, inode.i_mapping, fb);
    expect(folio_ref_count(kernel.store, a)).toBe(1);
    for (let k = 0; k < fb.nr; k++) folio_unlock(kernel.store, fb.folios[k]);
    const before = kernel.page_alloc.nr_free_pages();
    folio_batch_release(kernel.store, fb);
    expect(kernel.page_alloc.nr_free_pages()).toBe(before + 2);
  });

  test('removing a folio some page table still maps is a kernel bug', () => {
    const { kernel, inode } = setup();
    const folio = add(kernel, inode, 0);
    kernel.store._mapcount[kernel.store.idx(folio)] = 0;
    kernel.store.flags[kernel.store.idx(folio)] |= 1;
    expect(() => filemap_remove_folio(kernel, folio)).toThrow(/still mapped/);
  });

  test('mappings are found by id until unregistered; unregistering a non-empty cache is a bug', () => {
    const { kernel, inode } = setup();
    expect(lookupMapping(kernel.store, inode.i_mapping.id)).toBe(inode.i_mapping);
    add(kernel, inode, 0);
    expect(() => unregisterMapping(kernel.store, inode.i_mapping)).toThrow(/pages cached/);
  });
});
