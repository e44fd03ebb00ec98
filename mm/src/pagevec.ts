/**
 * struct folio_batch (include/linux/pagevec.h, mm/swap.c): up to PAGEVEC_SIZE folios gathered by
 * a page-cache lookup so that the work on them (locking, removal, the final folio_put) is done a
 * batch at a time, as truncation and hole punching do. A batch is reused across the whole
 * operation: the hot paths allocate one, not one object per folio.
 */
import type { PageStore } from './page_store.js';
import { folio_put, type Folio } from './folio.js';

/** PAGEVEC_SIZE: 31 folios, so that struct folio_batch fits in 256 bytes. */
export const PAGEVEC_SIZE = 31;

export class FolioBatch {
  /** Number of folios held. */
  nr = 0;
  /** Iteration cursor of folio_batch_next(). */
  i = 0;
  readonly folios: Folio[] = new Array<Folio>(PAGEVEC_SIZE).fill(0 as Folio);
  /** The page-cache index each folio was found at (the `indices` array the lookups fill). */
  readonly indices: number[] = new Array<number>(PAGEVEC_SIZE).fill(0);
}

/** folio_batch_init(). */
export function folio_batch_init(fbatch: FolioBatch): void {
  fbatch.nr = 0;
  fbatch.i = 0;
}

/** folio_batch_reinit(). */
export const folio_batch_reinit = folio_batch_init;

/** folio_batch_count(). */
export function folio_batch_count(fbatch: FolioBatch): number {
  return fbatch.nr;
}

/** folio_batch_space(): free slots. */
export function folio_batch_space(fbatch: FolioBatch): number {
  return PAGEVEC_SIZE - fbatch.nr;
}

/**
 * folio_batch_add(): append a folio (found at `index`); returns the slots left, so that 0 means
 * "full, process it now".
 */
export function folio_batch_add(fbatch: FolioBatch, folio: Folio, index = 0): number {
  fbatch.indices[fbatch.nr] = index;
  fbatch.folios[fbatch.nr++] = folio;
  return folio_batch_space(fbatch);
}

/**
 * folio_batch_release() (release_pages()): drop the batch's reference on every folio, then empty
 * it. A reference that is not the last is dropped on the refcount array directly.
 * @returns how many folios that freed (the callers charge page_free for them)
 */
export function folio_batch_release(store: PageStore, fbatch: FolioBatch): number {
  const refcount = store._refcount;
  const base = store.base_pfn;
  let freed = 0;
  for (let k = 0; k < fbatch.nr; k++) {
    const folio = fbatch.folios[k];
    const i = folio - base;
    if (refcount[i] > 1) {
      refcount[i]--;
    } else {
      folio_put(store, folio);
      freed++;
    }
  }
  folio_batch_init(fbatch);
  return freed;
}
