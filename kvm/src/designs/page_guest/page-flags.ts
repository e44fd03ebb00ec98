/**
 * PG_guest (include/linux/page-flags.h of "mm: Introduce guest-only pages", Kirill A. Shutemov,
 * https://lore.kernel.org/all/20210521123148.a3t4uh4iezm6ax47@box/): PAGEFLAG(Guest, arch_2,
 * PF_HEAD) and TESTSCFLAG(Guest, arch_2, PF_HEAD): one bit per compound head, so a shmem THP is
 * guest-only as a whole.
 */
import { compound_head, type PageStore } from '@cocosim/mm';
import { PG_guest } from './uapi.js';

/** PageGuest(): the page's compound head has PG_guest. */
export function PageGuest(store: PageStore, page: number): boolean {
  /* a PFNMAP entry's pfn has no struct page */
  if (!store.pfn_valid(page)) return false;
  return (store.flags[store.idx(compound_head(store, page))]! & (1 << PG_guest)) !== 0;
}

/** TestSetPageGuest(): set PG_guest on the compound head, returning whether it was set before. */
export function TestSetPageGuest(store: PageStore, page: number): boolean {
  const i = store.idx(compound_head(store, page));
  const old = (store.flags[i]! & (1 << PG_guest)) !== 0;
  store.flags[i] = store.flags[i]! | (1 << PG_guest);
  return old;
}
