import { describe, expect, test } from 'vitest';
import {
  LRU_ACTIVE_ANON,
  LRU_INACTIVE_ANON,
  LRU_INACTIVE_FILE,
  LRU_UNEVICTABLE,
  folio_lru_linked,
  folio_lru_list,
  folio_lru_refile,
  lru_activate,
  lru_add,
  lru_list_folios,
  lru_release_idx,
  lruvec_add_folio_tail,
  lruvec_del_folio,
  lruvec_lru_size,
} from './mm_inline.js';
import { PG_active, PG_lru, PG_mlocked, PG_swapbacked, PG_unevictable } from './page-flags.js';
import { PageStore } from './page_store.js';
import { prep_compound_page } from './page_alloc.js';
import { KernelBug } from '@cocosim/core';

function store(): PageStore {
  return new PageStore(64, { zero_page: false, dma_zones: false, nodes: 2 });
}

describe('LRU lists', () => {
  test('lru_add() links at the head of the list the flags name, on the folio\'s node', () => {
    const s = store();
    s.flags[1] |= 1 << PG_swapbacked;
    s.flags[2] |= 1 << PG_swapbacked;
    lru_add(s, 1, true);
    lru_add(s, 2, true);
    lru_add(s, 3, true);
    lru_add(s, 40, true);
    expect(lru_list_folios(s, 0, LRU_INACTIVE_ANON)).toEqual([2, 1]);
    expect(lru_list_folios(s, 0, LRU_INACTIVE_FILE)).toEqual([3]);
    expect(lru_list_folios(s, 1, LRU_INACTIVE_FILE)).toEqual([40]);
    expect(s.flags[1] & (1 << PG_lru)).not.toBe(0);
    expect([lruvec_lru_size(s, 0, LRU_INACTIVE_ANON), lruvec_lru_size(s, 1, LRU_INACTIVE_FILE)]).toEqual([2, 1]);
    /* the tail is the oldest end */
    lruvec_add_folio_tail(s, 4);
    expect(lru_list_folios(s, 0, LRU_INACTIVE_FILE)).toEqual([3, 4]);
  });

  test('an unevictable folio goes to LRU_UNEVICTABLE and loses PG_active', () => {
    const s = store();
    s.flags[5] |= (1 << PG_active) | (1 << PG_swapbacked);
    lru_add(s, 5, false);
    expect(folio_lru_linked(s, 5)).toBe(LRU_UNEVICTABLE);
    expect(s.flags[5] & (1 << PG_active)).toBe(0);
    expect(s.flags[5] & (1 << PG_unevictable)).not.toBe(0);
    /* evictable again: the stale PG_unevictable goes */
    lruvec_del_folio(s, 5);
    lru_add(s, 5, true);
    expect(folio_lru_linked(s, 5)).toBe(LRU_INACTIVE_ANON);
  });

  test('activation, refiling after a flag change, and release on the last put', () => {
    const s = store();
    s.flags[6] |= 1 << PG_swapbacked;
    lru_add(s, 6, true);
    expect(lru_activate(s, 6)).toBe(true);
    expect(lru_activate(s, 6)).toBe(false);
    expect(folio_lru_linked(s, 6)).toBe(LRU_ACTIVE_ANON);
    s.flags[6] |= (1 << PG_mlocked) | (1 << PG_unevictable);
    folio_lru_refile(s, 6);
    expect(folio_lru_linked(s, 6)).toBe(LRU_UNEVICTABLE);
    expect(s.flags[6] & (1 << PG_active)).toBe(0);
    lru_release_idx(s, s.idx(6));
    expect(folio_lru_linked(s, 6)).toBe(-1);
    expect(s.flags[6] & ((1 << PG_lru) | (1 << PG_unevictable))).toBe(0);
    expect(lruvec_lru_size(s, 0, LRU_UNEVICTABLE)).toBe(0);
    /* a folio off the LRU is not refiled */
    folio_lru_refile(s, 6);
    expect(folio_lru_linked(s, 6)).toBe(-1);
  });

  test('a large folio counts its pages; active and unevictable together is a bug', () => {
    const s = store();
    prep_compound_page(s, 8, 3);
    lru_add(s, 8, true);
    expect(lruvec_lru_size(s, 0, LRU_INACTIVE_FILE)).toBe(8);
    s.flags[10] |= (1 << PG_active) | (1 << PG_unevictable);
    expect(() => folio_lru_list(s, 10)).toThrow(KernelBug);
  });

  test('a freed folio still linked (its PG_lru cleared elsewhere) is unlinked when added again', () => {
    const s = store();
    lru_add(s, 12, true);
    s.flags[12] &= ~(1 << PG_lru);
    lru_add(s, 12, true);
    expect(lru_list_folios(s, 0, LRU_INACTIVE_FILE)).toEqual([12]);
    expect(lruvec_lru_size(s, 0, LRU_INACTIVE_FILE)).toBe(1);
  });
});
