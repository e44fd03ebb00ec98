/**
 * The fault side of the page cache (mm/filemap.c filemap_map_pages()): fault-around maps the
 * page-cache pages near a read fault that are ready, without calling ->fault. Kept apart from
 * filemap.ts because it installs PTEs through memory.ts, which itself sits above the page cache.
 *
 * Only uptodate, unlocked, unpoisoned folios within i_size are mapped, so a shmem folio that
 * fallocate() left !uptodate is left to shmem_fault(), which clears it. PMD mappings are left to
 * the fault path (finish_fault()): cocosim's shmem has only order-0 folios.
 */
import { PAGE_SIZE, XaState, type PgOff, type XArray } from '@cocosim/core';
import { folio_nr_pages, folio_put, folio_try_get, folio_unlock, type Folio } from './folio.js';
import { mm_counter_file, set_pte_range } from './memory.js';
import { VM_FAULT_NOPAGE, type VmFault } from './mm_types.js';
import { PG_head, PG_hwpoison, PG_locked, PG_readahead, PG_uptodate } from './page-flags.js';
import { PTRS_PER_PTE, pmd_index_of, pte_alloc, pte_index, pte_offset_map, type PteTable } from './pgtable.js';
import { xa_is_value } from './swapops.js';

/** DIV_ROUND_UP(i_size, PAGE_SIZE), exactly: in numbers up to 2^53 bytes, in bigints beyond. */
function size_in_pages(i_size: bigint): number {
  const n = Number(i_size);
  return n <= Number.MAX_SAFE_INTEGER ? Math.ceil(n / PAGE_SIZE) : Number((i_size + BigInt(PAGE_SIZE - 1)) / BigInt(PAGE_SIZE));
}

/**
 * The xa_state of each page cache's fault-around, kept between calls (xas_set() starts it
 * afresh): every read fault makes one walk. A walk that starts while another is running (a
 * nested fault) gets its own.
 */
const fault_around_xas = new WeakMap<XArray<Folio>, XaState<Folio>>();
let fault_around_depth = 0;

/**
 * filemap_map_pages(): map the ready page-cache pages of file pages [start_pgoff, end_pgoff]
 * (one PTE table's worth at most, as do_fault_around() asks) that have no PTE yet. Each mapped
 * page takes a folio reference and counts in the mm's file RSS. The folios come from one walk of
 * the page cache (next_uptodate_folio(): xas_next_entry(), then a reference and the lock).
 * @returns VM_FAULT_NOPAGE if the faulting page itself got mapped, else 0
 */
export function filemap_map_pages(vmf: VmFault, start_pgoff: PgOff, end_pgoff: PgOff): number {
  const xa = vmf.vma.vm_file!.f_mapping.i_pages;
  let xas = fault_around_depth === 0 ? fault_around_xas.get(xa) : undefined;
  if (xas === undefined) {
    xas = new XaState(xa, start_pgoff);
    if (fault_around_depth === 0) fault_around_xas.set(xa, xas);
  } else {
    xas.xas_set(start_pgoff);
  }
  fault_around_depth++;
  try {
    return map_pages(vmf, start_pgoff, end_pgoff, xas);
  } finally {
    fault_around_depth--;
  }
}

/** The walk of filemap_map_pages() with its xa_state at start_pgoff. */
function map_pages(vmf: VmFault, start_pgoff: PgOff, end_pgoff: PgOff, xas: XaState<Folio>): number {
  const vma = vmf.vma;
  const file = vma.vm_file!;
  const mapping = file.f_mapping;
  const mm = vma.vm_mm;
  const kernel = mm.kernel;
  const store = kernel.store;
  const flags = store.flags;
  const base = store.base_pfn;
  /* file_end = DIV_ROUND_UP(i_size, PAGE_SIZE) - 1 */
  const end = Math.min(end_pgoff, size_in_pages(mapping.host.i_size) - 1);
  let ret = 0;
  let rss = 0;
  let folio_type = -1;
  let t: PteTable | undefined;
  let t_pmd = -1;
  /*
   * The walk passes over a folio whose pages in the window all have PTEs, untouched (below), so
   * it may as well start at the first page without one: a fault in a file read in order finds
   * the pages before it mapped, and then looks up nothing it will not map.
   */
  let from = start_pgoff;
  if (from <= end) {
    const vpn = vma.start_vpn + (from - vma.vm_pgoff);
    t_pmd = pmd_index_of(vpn);
    t = pte_offset_map(mm.pgd, vpn);
    if (t !== undefined) {
      /* do_fault_around()'s window is within one PTE table: the scan stops at its end anyway */
      const pte_flags = t.flags;
      for (let pi = pte_index(vpn); from <= end && pi < PTRS_PER_PTE && pte_flags[pi] !== 0; pi++) from++;
    }
  }
  if (from !== start_pgoff) xas.xas_set(from);
  let folio = from <= end ? xas.xas_find(end) : undefined;
  while (folio !== undefined) {
    if (xa_is_value(folio)) {
      /* a shmem swap entry: next_uptodate_folio() passes over it, the fault reads it back */
      folio = xas.xas_next_entry(end);
      continue;
    }
    const index = xas.xa_index;
    const fi = folio - base;
    /* a small folio sits at its own index alone: folio->index is where the walk found it */
    const large = (flags[fi] & (1 << PG_head)) !== 0;
    const first = large ? store.index[fi] : index;
    const next = first + (large ? folio_nr_pages(store, folio) : 1);
    const last = Math.min(next - 1, end);
    /*
     * next_uptodate_folio(): referenced, uptodate, not readahead, not poisoned, and locked. A
     * folio whose pages here all have PTEs already would be taken, skipped page by page and put
     * back, which changes nothing: it is passed over untouched.
     */
    let unmapped = false;
    for (let k = index; k <= last && !unmapped; k++) {
      const vpn = vma.start_vpn + (k - vma.vm_pgoff);
      if (pmd_index_of(vpn) !== t_pmd) {
        t_pmd = pmd_index_of(vpn);
        t = pte_offset_map(mm.pgd, vpn);
      }
      unmapped = t === undefined || t.flags[pte_index(vpn)] === 0;
    }
    if (unmapped && folio_try_get(store, folio)) {
      const f = flags[fi];
      if ((f & ((1 << PG_uptodate) | (1 << PG_readahead) | (1 << PG_hwpoison) | (1 << PG_locked))) !== 1 << PG_uptodate) {
        folio_put(store, folio);
      } else {
        flags[fi] = f | (1 << PG_locked);
        if (folio_type < 0) folio_type = mm_counter_file(store, folio);
        for (let k = index; k <= last; k++) {
          const vpn = vma.start_vpn + (k - vma.vm_pgoff);
          if (pmd_index_of(vpn) !== t_pmd || t === undefined) {
            t = pte_alloc(mm.pgd, vpn);
            t_pmd = pmd_index_of(vpn);
          }
          /* PTE markers and present PTEs are left to the fault path */
          if (t!.flags[pte_index(vpn)] !== 0) continue;
          if (vpn === vmf.vpn) ret = VM_FAULT_NOPAGE;
          store._refcount[fi]++;
          set_pte_range(vmf, folio, folio + (k - first), 1, vpn);
          rss++;
        }
        folio_unlock(store, folio);
        folio_put(store, folio);
      }
    }
    if (next > index + 1) {
      /* a large folio sits at every index it covers: go on after it */
      if (next > end) break;
      xas.xas_set(next);
      folio = xas.xas_find(end);
    } else {
      folio = xas.xas_next_entry(end);
    }
  }
  if (rss) mm.add_mm_counter(folio_type, rss);
  return ret;
}
