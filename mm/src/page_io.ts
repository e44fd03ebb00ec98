/**
 * Swap I/O (mm/page_io.c, Linux 6.18): writing a swap-cache folio to its slots and reading it
 * back. The simulated swap device completes each I/O within the call (as a synchronous device
 * does), so no folio is ever left under writeback.
 *
 * Contents go through PhysMem copies between the folio's frames and the slots' frames
 * (swapfile.ts): what comes back is exactly what went out. A zero-filled folio is not written:
 * its slots are marked in the zeromap (here: a zero slot) and read back as zeros, as the kernel
 * does since 6.12. A page with poisoned lines writes out its poison: the slot's lines are
 * poisoned, and reading it back fails (the folio stays !uptodate, which the callers turn into
 * SIGBUS or -EIO).
 *
 * Costs: swap_out_4k per page written, swap_zero_check_4k per page found zero-filled (the scan
 * is_folio_zero_filled() does instead of the write), swap_in_4k per page read, page_zero_4k per
 * page filled from the zeromap.
 */
import { PAGE_SIZE, type Pfn } from '@cocosim/core';
import { folio_nr_pages, folio_unlock, type Folio } from './folio.js';
import type { Kernel } from './kernel.js';
import { folio_mark_uptodate } from './page-flags.js';
import { folio_free_swap, folio_swap_slot_pfns } from './swap_state.js';
import { get_swap_device, swap_slot_pfn } from './swapfile.js';
import { swp_offset, type SwpEntry } from './swapops.js';
import { mm_host_access_key } from './mm_hooks.js';

/** AOP_WRITEPAGE_ACTIVATE (include/linux/fs.h): "keep the folio locked and activate it". */
export const AOP_WRITEPAGE_ACTIVATE = 0x80000;

/** is_folio_zero_filled() for one page: every byte reads as zero. */
function page_zero_filled(kernel: Kernel, pfn: Pfn): boolean {
  const phys = kernel.phys;
  const kind = phys.state(pfn);
  if (kind === 'zero') return true;
  if (kind !== 'bytes' && kind !== 'fill') return false;
  const data = phys.read(pfn, 0, PAGE_SIZE);
  if (!(data instanceof Uint8Array)) return false;
  for (let k = 0; k < PAGE_SIZE; k++) if (data[k] !== 0) return false;
  return true;
}

/**
 * swap_writeout(): write a locked swap-cache folio to its slots, then unlock it. A folio whose
 * slots nothing references any more is just dropped from the swap cache (folio_free_swap()).
 * @returns 0
 */
export function swap_writeout(kernel: Kernel, folio: Folio): number {
  const store = kernel.store;
  const phys = kernel.phys;
  if (folio_free_swap(kernel, folio)) {
    folio_unlock(store, folio);
    return 0;
  }
  const { si, first, nr } = folio_swap_slot_pfns(kernel, folio);
  let zero = true;
  for (let k = 0; k < nr && zero; k++) zero = page_zero_filled(kernel, (folio + k) as Pfn);
  kernel.cost.charge('swap_zero_check_4k', nr);
  for (let k = 0; k < nr; k++) {
    const slot = swap_slot_pfn(si, first + k);
    const page = (folio + k) as Pfn;
    if (zero) {
      /* swap_zeromap_folio_set(): no I/O */
      phys.clear(slot);
      continue;
    }
    if (phys.copy(slot, page, mm_host_access_key(kernel, page), 0) !== 0) {
      /* The device stores the poison it was given: the read back will fail. */
      phys.free(slot);
      for (const line of phys.poisonedLines(page)) phys.poison(slot, line);
    }
  }
  if (!zero) kernel.cost.charge('swap_out_4k', nr);
  folio_unlock(store, folio);
  return 0;
}

/**
 * swap_read_folio(): fill a locked new swap-cache folio from the slots from `entry`, and mark it
 * uptodate unless a slot fails to read (poison).
 */
export function swap_read_folio(kernel: Kernel, folio: Folio, entry: SwpEntry): void {
  const phys = kernel.phys;
  const si = get_swap_device(kernel, entry);
  if (si === undefined) return;
  const first = swp_offset(entry);
  const nr = folio_nr_pages(kernel.store, folio);
  let ok = true;
  for (let k = 0; k < nr; k++) {
    const slot = swap_slot_pfn(si, first + k);
    const page = (folio + k) as Pfn;
    if (phys.state(slot) === 'zero') {
      /* swap_read_folio_zeromap() */
      phys.clear(page);
      kernel.cost.charge('page_zero_4k');
      continue;
    }
    if (phys.copy(page, slot) !== 0) ok = false;
    kernel.cost.charge('swap_in_4k');
  }
  if (ok) folio_mark_uptodate(kernel.store, folio);
}
