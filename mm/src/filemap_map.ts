/**
 * The fault side of the page cache (mm/filemap.c filemap_map_pages()): fault-around maps the
 * page-cache pages near a read fault that are ready, without calling ->fault. Kept apart from
 * filemap.ts because it installs PTEs through memory.ts, which itself sits above the page cache.
 *
 * Only uptodate, unlocked, unpoisoned folios within i_size are mapped, so a shmem folio that
 * fallocate() left !uptodate is left to shmem_fault(), which clears it. PMD mappings are left to
 * the fault path (finish_fault()): cocosim's shmem has only order-0 folios.
 */
import type { PgOff } from '@cocosim/core';
import { filemap_get_entry } from './filemap.js';
import { folio_nr_pages, folio_put, folio_ref_inc, folio_trylock, folio_unlock, type Folio } from './folio.js';
import { mm_counter_file, set_pte_range } from './memory.js';
import { VM_FAULT_NOPAGE, type VmFault } from './mm_types.js';
import { folio_test_hwpoison, folio_test_readahead, folio_test_uptodate } from './page-flags.js';
import { pte_alloc, pte_index } from './pgtable.js';

/**
 * filemap_map_pages(): map the ready page-cache pages of file pages [start_pgoff, end_pgoff]
 * (one PTE table's worth at most, as do_fault_around() asks) that have no PTE yet. Each mapped
 * page takes a folio reference and counts in the mm's file RSS.
 * @returns VM_FAULT_NOPAGE if the faulting page itself got mapped, else 0
 */
export function filemap_map_pages(vmf: VmFault, start_pgoff: PgOff, end_pgoff: PgOff): number {
  const vma = vmf.vma;
  const file = vma.vm_file!;
  const mapping = file.f_mapping;
  const mm = vma.vm_mm;
  const kernel = mm.kernel;
  const store = kernel.store;
  const i_size = mapping.host.i_size;
  /* file_end = DIV_ROUND_UP(i_size, PAGE_SIZE) - 1 */
  const max_idx = Number((i_size + 4095n) / 4096n);
  const end = Math.min(end_pgoff, max_idx - 1);
  let ret = 0;
  let rss = 0;
  let folio_type = -1;
  for (let index = start_pgoff as number; index <= end; ) {
    const e = mapping.i_pages.xa_find(index, end);
    if (e === undefined) break;
    index = e.index;
    /* next_uptodate_folio() */
    const folio: Folio | undefined = filemap_get_entry(kernel, mapping, index);
    if (folio === undefined) {
      index++;
      continue;
    }
    const first = store.index[store.idx(folio)];
    const next = first + folio_nr_pages(store, folio);
    if (
      !folio_test_uptodate(store, folio) ||
      folio_test_readahead(store, folio) ||
      folio_test_hwpoison(store, folio) ||
      !folio_trylock(store, folio)
    ) {
      folio_put(store, folio);
      index = next;
      continue;
    }
    if (folio_type < 0) folio_type = mm_counter_file(store, folio);
    const last = Math.min(next - 1, end);
    for (; index <= last; index++) {
      const vpn = vma.start_vpn + (index - vma.vm_pgoff);
      const t = pte_alloc(mm.pgd, vpn);
      const i = pte_index(vpn);
      /* PTE markers and present PTEs are left to the fault path */
      if (t.flags[i] !== 0) continue;
      if (vpn === vmf.vpn) ret = VM_FAULT_NOPAGE;
      folio_ref_inc(store, folio);
      set_pte_range(vmf, folio, folio + (index - first), 1, vpn);
      rss++;
    }
    folio_unlock(store, folio);
    folio_put(store, folio);
    index = next;
  }
  if (rss) mm.add_mm_counter(folio_type, rss);
  return ret;
}
