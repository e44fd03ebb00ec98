/**
 * Invariants of the LRU lists and of swap, for the random-call tests (mm_invariants): every
 * folio with PG_lru is linked on exactly the list its flags name (mm_inline.ts), every linked
 * one has PG_lru, the per-list page counts add up; the swap areas' counters agree with their
 * swap_map, every swap PTE refers to a slot in use, and MM_SWAPENTS counts the swap PTEs.
 */
import {
  LRU_NAMES,
  NR_LRU_LISTS,
  PG_head,
  PG_lru,
  lru_list_of_flags,
  lru_lists_if_any,
  pte_swp_type,
  swap_check_consistency,
  swap_map_of,
  swp_entry,
  is_swap_pte,
  MAX_SWAPFILES,
  type Kernel,
  type MmStruct,
} from '@cocosim/mm';
import { TEST_ASSERT, TEST_ASSERT_EQ } from '../lib/test_util.js';

/** The LRU lists of `kernel` against the page flags. Cheap checks first; messages only on failure. */
export function check_lru(kernel: Kernel, step: string): void {
  const store = kernel.store;
  const l = lru_lists_if_any(store);
  if (l === undefined) return;
  const flags = store.flags;
  const pages = new Float64Array(l.nr_pages.length);
  let linked = 0;
  for (let id = 0; id < l.head.length; id++) {
    let prev = -1;
    for (let i = l.head[id]; i !== -1; i = l.next[i]) {
      const f = flags[i];
      if (l.prev[i] !== prev || l.on[i] !== id || !(f & (1 << PG_lru)) || store.node[i] * NR_LRU_LISTS + lru_list_of_flags(f) !== id) {
        const pfn = store.base_pfn + i;
        TEST_ASSERT(false, `${step}: pfn 0x${pfn.toString(16)} on ${LRU_NAMES[id % NR_LRU_LISTS]} of node ${Math.floor(id / NR_LRU_LISTS)}: ` +
          `prev ${l.prev[i]} (want ${prev}), on ${l.on[i]}, flags 0x${f.toString(16)}`);
      }
      pages[id] += f & (1 << PG_head) ? 2 ** store.order[i] : 1;
      linked++;
      prev = i;
    }
    TEST_ASSERT_EQ(l.tail[id], prev, `${step}: LRU list ${id} tail`);
  }
  TEST_ASSERT_EQ([...l.nr_pages], [...pages], `${step}: LRU page counts`);
  /* a local constant: imported bindings are property reads in the test runner's modules */
  const lru_bit = 1 << PG_lru;
  let with_lru = 0;
  for (let i = 0; i < flags.length; i++) if (flags[i] & lru_bit) with_lru++;
  TEST_ASSERT_EQ(with_lru, linked, `${step}: folios with PG_lru vs folios on the lists`);
}

/** The swap PTEs of `mm`: each refers to a slot in use. @returns how many there are. */
export function count_swap_ptes(kernel: Kernel, mm: MmStruct, step: string): number {
  let n = 0;
  for (const t of mm.pgd.ptes.values()) {
    for (let i = 0; i < 512; i++) {
      const f = t.flags[i];
      if (!is_swap_pte(f) || pte_swp_type(f) >= MAX_SWAPFILES) continue;
      n++;
      if (swap_map_of(kernel, swp_entry(pte_swp_type(f), t.val[i])) === 0) TEST_ASSERT(false, `${step}: a swap PTE to free slot ${t.val[i]}`);
    }
  }
  return n;
}

/** Every swap area's counters against its swap_map and swap cache. */
export function check_swap(kernel: Kernel, step: string): void {
  TEST_ASSERT_EQ(swap_check_consistency(kernel), [], `${step}: swap areas`);
}
