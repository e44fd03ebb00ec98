/**
 * struct io_pagetable (drivers/iommu/iommufd/io_pagetable.c, Linux 6.18): the IOVA -> pages map
 * of an IOAS, and the IOMMU domains that mirror it.
 *
 * - Areas (struct iopt_area) are the mapped IOVA ranges, each a slice of an IoptPages; they never
 *   overlap, never split (an unmap must cover whole areas: a range that cuts one is -ENOENT), and
 *   may not cover reserved IOVA (a domain's outside-aperture ranges and its devices' reserved
 *   regions: the x86 MSI window) or fall outside the allowed ranges when IOMMU_IOAS_ALLOW_IOVAS set
 *   some.
 * - iova_alignment is 1 without domains and the smallest IOPTE size (4 KiB) with one; it rules
 *   IOVA, length and the offset of user_va in its page.
 * - Filling: mapping an area into an IOAS with domains pins its pages and maps them into every
 *   domain (iopt_area_fill_domains()); attaching the first domain to an IOAS that has areas pins
 *   them all (iopt_fill_domain()); the last domain leaving unpins them. Runs of contiguous frames
 *   are mapped with one iommu_map() each (huge IOPTEs where aligned) unless
 *   IOMMU_OPTION_HUGE_PAGES is 0 (batch_iommu_map_small(): one PAGE_SIZE IOPTE per page).
 * - IOVA allocation (iopt_alloc_iova()) when IOMMU_IOAS_MAP_FIXED_IOVA is clear: the lowest hole
 *   of the allowed ranges (or of [PAGE_SIZE, ULONG_MAX - PAGE_SIZE]) outside reserved ranges and
 *   areas, aligned to the length's power of two capped at the alignment of the address and at
 *   2 MiB, keeping the address's offset in its page; never IOVA 0.
 */
import { BUG_ON, Errno, U64_MAX } from '@cocosim/core';
import {
  IOMMU_WRITE,
  iommu_get_resv_regions,
  iommu_map,
  iommu_unmap,
  type Device,
  type IommuDomain,
} from '../iommu.js';
import { IOMMU_RESV_DIRECT_RELAXABLE, IOMMU_RESV_MSI, IOMMU_RESV_SW_MSI } from '../iommu_vendor_ops.js';
import { IOPT_ADDRESS_USER, IOPT_PAGES_ACCOUNT_MM, IOPT_PAGES_ACCOUNT_USER, IoptPages, iopt_pages_fill, iopt_pages_runs, iopt_pages_unfill, iopt_put_pages } from './pages.js';

/** ULONG_MAX on 64-bit. */
export const ULONG_MAX = U64_MAX;
const PAGE_SIZE_N = 4096n;
/** HPAGE_SIZE (CONFIG_TRANSPARENT_HUGEPAGE): the largest alignment iopt_alloc_iova() gives. */
const HPAGE_SIZE = 1n << 21n;

/** iopt_alloc_area_pages() flag: choose the IOVA. */
export const IOPT_ALLOC_IOVA = 1 << 0;

/** struct iopt_area: the IOVA range [iova, last] mapping pages [pages_index, pages_last] of `pages`. */
export class IoptArea {
  /** NULL while the area is being set up or torn down. */
  pages: IoptPages | null = null;
  iommu_prot = 0;
  /** Offset of the first byte in its page. */
  page_offset = 0;
  pages_index = 0;
  pages_last = 0;
  /** The domain whose page table stored the pins (the first domain when it was filled). */
  storage_domain: IommuDomain | null = null;
  num_accesses = 0;
  num_locks = 0;

  constructor(readonly iopt: IoPagetable, public iova: bigint, public last: bigint) {}
}

/** A reserved or allowed IOVA range [start, last]. */
export interface IoptRange {
  readonly start: bigint;
  readonly last: bigint;
  /** Who reserved it (a domain, a device); null for allowed ranges and test reservations. */
  readonly owner: unknown;
}

/** struct io_pagetable. */
export class IoPagetable {
  /** The areas, sorted by iova (the area interval tree). */
  readonly areas: IoptArea[] = [];
  reserved: IoptRange[] = [];
  allowed: IoptRange[] = [];
  /** The domains filled from this table (the domains xarray, in insertion order). */
  readonly domains: IommuDomain[] = [];
  iova_alignment = 1n;
  disable_large_pages = false;
}

/** An interval overlap test on inclusive ranges. */
function overlaps(a_start: bigint, a_last: bigint, b_start: bigint, b_last: bigint): boolean {
  return a_start <= b_last && b_start <= a_last;
}

/** iopt_area_iter_first(): the lowest area intersecting [start, last]. */
export function iopt_area_iter_first(iopt: IoPagetable, start: bigint, last: bigint): IoptArea | undefined {
  const list = iopt.areas;
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid].last < start) lo = mid + 1;
    else hi = mid;
  }
  const area = list[lo];
  return area !== undefined && area.iova <= last ? area : undefined;
}

/** iopt_reserved_iter_first(). */
function iopt_reserved_iter_first(iopt: IoPagetable, start: bigint, last: bigint): IoptRange | undefined {
  return iopt.reserved.find((r) => overlaps(r.start, r.last, start, last));
}

/** iopt_allowed_iter_first(). */
function iopt_allowed_iter_first(iopt: IoPagetable, start: bigint, last: bigint): IoptRange | undefined {
  return iopt.allowed.find((r) => overlaps(r.start, r.last, start, last));
}

/** roundup_pow_of_two(). */
function roundup_pow_of_two(x: bigint): bigint {
  let p = 1n;
  while (p < x) p <<= 1n;
  return p;
}

/** The merged spans of a set of inclusive ranges, clipped to [a, b] (interval_tree_for_each_span's used spans). */
function used_spans(ranges: readonly { start: bigint; last: bigint }[], a: bigint, b: bigint): { start: bigint; last: bigint }[] {
  const sorted = ranges.filter((r) => overlaps(r.start, r.last, a, b)).sort((x, y) => (x.start < y.start ? -1 : x.start > y.start ? 1 : 0));
  const out: { start: bigint; last: bigint }[] = [];
  for (const r of sorted) {
    const s = r.start < a ? a : r.start;
    const l = r.last > b ? b : r.last;
    const top = out[out.length - 1];
    if (top !== undefined && s <= top.last + 1n) {
      if (l > top.last) top.last = l;
    } else {
      out.push({ start: s, last: l });
    }
  }
  return out;
}

/** __alloc_iova_check_range(): the aligned start inside [start, last] with room for `length`, if any. */
function __alloc_iova_check_range(start: bigint, last: bigint, length: bigint, iova_alignment: bigint, page_offset: bigint): bigint | undefined {
  /* ALIGN_UP() */
  if (start + iova_alignment - 1n > ULONG_MAX) return undefined;
  let aligned_start = (start + iova_alignment - 1n) & ~(iova_alignment - 1n);
  aligned_start |= page_offset;
  if (aligned_start >= last || last - aligned_start < length - 1n) return undefined;
  return aligned_start;
}

/**
 * iopt_alloc_iova(): automatically find a block of IOVA that is not being used and not reserved.
 * Does not return a 0 IOVA even if it is valid. -EOVERFLOW for length 0 or >= ULONG_MAX / 2,
 * -EINVAL when the alignment the address allows is below the table's, -ENOSPC when no hole fits.
 */
function iopt_alloc_iova(iopt: IoPagetable, addr: bigint, length: bigint): bigint | number {
  const page_offset = addr % PAGE_SIZE_N;
  /* Protect roundup_pow-of_two() from overflow */
  if (length === 0n || length >= ULONG_MAX / 2n) return -Errno.EOVERFLOW;
  /* Keep alignment present in addr when building the IOVA, which increases the chance we can map a THP. */
  let iova_alignment = roundup_pow_of_two(length);
  if (addr) {
    const ffs = addr & -addr;
    if (ffs < iova_alignment) iova_alignment = ffs;
  }
  /* Protect against ALIGN() overflow */
  if (iova_alignment >= HPAGE_SIZE) iova_alignment = HPAGE_SIZE;
  if (iova_alignment < iopt.iova_alignment) return -Errno.EINVAL;
  const lo = PAGE_SIZE_N;
  const hi = ULONG_MAX - PAGE_SIZE_N;
  const allowed = iopt.allowed.length ? used_spans(iopt.allowed, lo, hi) : [{ start: lo, last: hi }];
  const busy = [...iopt.reserved, ...iopt.areas.map((a) => ({ start: a.iova, last: a.last }))];
  for (const span of allowed) {
    const span_start = __alloc_iova_check_range(span.start, span.last, length, iova_alignment, page_offset);
    if (span_start === undefined) continue;
    /* The holes between reserved ranges and areas, from the aligned start of the allowed span */
    let hole_start = span_start;
    for (const u of used_spans(busy, span_start, span.last)) {
      if (u.start > hole_start) {
        const iova = __alloc_iova_check_range(hole_start, u.start - 1n, length, iova_alignment, page_offset);
        if (iova !== undefined) return iova;
      }
      hole_start = u.last + 1n;
    }
    if (hole_start <= span.last) {
      const iova = __alloc_iova_check_range(hole_start, span.last, length, iova_alignment, page_offset);
      if (iova !== undefined) return iova;
    }
  }
  return -Errno.ENOSPC;
}

/** iopt_check_iova(): a fixed IOVA: aligned, not wrapping, not reserved (-EINVAL), not mapped (-EEXIST). */
function iopt_check_iova(iopt: IoPagetable, iova: bigint, length: bigint): number {
  if (iova & (iopt.iova_alignment - 1n)) return -Errno.EINVAL;
  if (iova + length - 1n > ULONG_MAX) return -Errno.EOVERFLOW;
  const last = iova + length - 1n;
  /* No reserved IOVA intersects the range */
  if (iopt_reserved_iter_first(iopt, iova, last)) return -Errno.EINVAL;
  /* Check that there is not already a mapping in the range */
  if (iopt_area_iter_first(iopt, iova, last)) return -Errno.EEXIST;
  return 0;
}

/** One slice of pages to map (struct iopt_pages_list). */
export interface IoptPagesElm {
  pages: IoptPages | null;
  area: IoptArea | null;
  start_byte: bigint;
  length: bigint;
}

/** Insert an area into the sorted list. */
function area_link(iopt: IoPagetable, area: IoptArea): void {
  let i = iopt.areas.length;
  while (i > 0 && iopt.areas[i - 1].iova > area.iova) i--;
  iopt.areas.splice(i, 0, area);
}

/** iopt_abort_area(): take an area out of the table. */
function iopt_abort_area(area: IoptArea): void {
  const i = area.iopt.areas.indexOf(area);
  if (i >= 0) area.iopt.areas.splice(i, 1);
}

/**
 * iopt_insert_area(): set up `area` as bytes [start_byte, start_byte + length) of `pages` at
 * `iova`. -EPERM for a writable mapping of read-only pages, -EINVAL when the first byte's offset
 * in its page breaks the table's alignment, -EOVERFLOW for a range that wraps.
 */
function iopt_insert_area(iopt: IoPagetable, area: IoptArea, pages: IoptPages, iova: bigint, start_byte: bigint, length: bigint, iommu_prot: number): number {
  if (iommu_prot & IOMMU_WRITE && !pages.writable) return -Errno.EPERM;
  area.iommu_prot = iommu_prot;
  area.page_offset = Number(start_byte % PAGE_SIZE_N);
  if (BigInt(area.page_offset) & (iopt.iova_alignment - 1n)) return -Errno.EINVAL;
  if (iova + length - 1n > ULONG_MAX) return -Errno.EOVERFLOW;
  area.iova = iova;
  area.last = iova + length - 1n;
  area.pages_index = Number(start_byte / PAGE_SIZE_N);
  area.pages_last = Number((start_byte + length - 1n) / PAGE_SIZE_N);
  BUG_ON(area.pages_last >= pages.npages, 'iopt_insert_area: the area passes the end of its pages');
  area_link(iopt, area);
  return 0;
}

/** iopt_alloc_area_pages(): check and place every slice of the list (areas without pages yet). */
function iopt_alloc_area_pages(iopt: IoPagetable, list: IoptPagesElm[], length: bigint, dst_iova: { value: bigint }, iommu_prot: number, flags: number): number {
  for (const elm of list) elm.area = new IoptArea(iopt, 0n, 0n);
  if (length & (iopt.iova_alignment - 1n) || !length) return -Errno.EINVAL;
  let rc: number;
  if (flags & IOPT_ALLOC_IOVA) {
    /* Use the first entry to guess the ideal IOVA alignment */
    const first = list[0];
    const p = first.pages!;
    const start = first.start_byte + (p.type === IOPT_ADDRESS_USER ? p.uptr : p.start);
    const iova = iopt_alloc_iova(iopt, start, length);
    if (typeof iova === 'number') return iova;
    dst_iova.value = iova;
  } else {
    rc = iopt_check_iova(iopt, dst_iova.value, length);
    if (rc) return rc;
  }
  /* Areas are created with a NULL pages so that the IOVA space is reserved */
  let iova = dst_iova.value;
  for (const elm of list) {
    rc = iopt_insert_area(iopt, elm.area!, elm.pages!, iova, elm.start_byte, elm.length, iommu_prot);
    if (rc) return rc;
    iova += elm.length;
  }
  return 0;
}

/** The IOVA of page `index` of an area's pages (the area is page aligned once domains exist). */
function index_to_iova(area: IoptArea, index: number): bigint {
  return area.iova - BigInt(area.page_offset) + (BigInt(index - area.pages_index) << 12n);
}

/**
 * Map an area's pinned pages into one domain: a run of contiguous frames per iommu_map()
 * (batch_to_domain()), or PAGE_SIZE at a time when large pages are disabled
 * (batch_iommu_map_small()); undone on failure.
 */
function iopt_area_map_domain(area: IoptArea, pages: IoptPages, domain: IommuDomain): number {
  const done: [bigint, bigint][] = [];
  for (const [index, pfn, n] of iopt_pages_runs(pages, area.pages_index, area.pages_last)) {
    const step = area.iopt.disable_large_pages ? 1 : n;
    for (let k = 0; k < n; k += step) {
      const iova = index_to_iova(area, index + k);
      const size = BigInt(Math.min(step, n - k)) << 12n;
      const rc = iommu_map(domain, iova, BigInt(pfn + k) << 12n, size, area.iommu_prot);
      if (rc) {
        for (const [i, s] of done) iommu_unmap(domain, i, s);
        return rc;
      }
      done.push([iova, size]);
    }
  }
  return 0;
}

/** iopt_area_unmap_domain(): take the area's IOVA out of one domain. */
function iopt_area_unmap_domain(area: IoptArea, domain: IommuDomain): void {
  const start = index_to_iova(area, area.pages_index);
  iommu_unmap(domain, start, BigInt(area.pages_last - area.pages_index + 1) << 12n);
}

/**
 * iopt_area_fill_domain() for an area nobody filled yet, or iopt_area_fill_domains() for a new
 * area: pin its pages (the first domain stores them) and map them into `domains`. Undone on
 * failure.
 */
function iopt_area_fill(area: IoptArea, pages: IoptPages, domains: readonly IommuDomain[]): number {
  let rc = iopt_pages_fill(pages, area.pages_index, area.pages_last);
  if (rc) return rc;
  for (let i = 0; i < domains.length; i++) {
    rc = iopt_area_map_domain(area, pages, domains[i]);
    if (rc) {
      for (let j = 0; j < i; j++) iopt_area_unmap_domain(area, domains[j]);
      iopt_pages_unfill(pages, area.pages_index, area.pages_last);
      return rc;
    }
  }
  area.storage_domain = domains[0];
  return 0;
}

/** iopt_area_fill_domains(): a new area into every domain of the table (none: nothing is pinned). */
function iopt_area_fill_domains(area: IoptArea, pages: IoptPages): number {
  if (!area.iopt.domains.length) return 0;
  return iopt_area_fill(area, pages, area.iopt.domains);
}

/** iopt_area_unfill_domains(): an area leaving: unmap it from every domain, then unpin. */
function iopt_area_unfill_domains(area: IoptArea, pages: IoptPages): void {
  if (area.storage_domain === null) return;
  for (const domain of area.iopt.domains) if (domain !== area.storage_domain) iopt_area_unmap_domain(area, domain);
  iopt_area_unmap_domain(area, area.storage_domain);
  iopt_pages_unfill(pages, area.pages_index, area.pages_last);
  area.storage_domain = null;
}

/**
 * iopt_map_pages(): place every slice, fill them into the domains, then publish them (area->pages
 * set). On failure nothing of the call stays.
 */
export function iopt_map_pages(iopt: IoPagetable, list: IoptPagesElm[], length: bigint, dst_iova: { value: bigint }, iommu_prot: number, flags: number): number {
  let rc = iopt_alloc_area_pages(iopt, list, length, dst_iova, iommu_prot, flags);
  if (rc) {
    iopt_free_pages_list(list);
    return rc;
  }
  for (let i = 0; i < list.length; i++) {
    rc = iopt_area_fill_domains(list[i].area!, list[i].pages!);
    if (rc) {
      for (let j = 0; j < i; j++) iopt_area_unfill_domains(list[j].area!, list[j].pages!);
      iopt_free_pages_list(list);
      return rc;
    }
  }
  for (const elm of list) {
    /* area->pages must be set inside the domains_rwsem to ensure any newly added domains will get filled. Moves the reference in from the list. */
    elm.area!.pages = elm.pages;
    elm.pages = null;
    elm.area = null;
  }
  return 0;
}

/** iopt_free_pages_list(): drop what a failed map left in its list. */
function iopt_free_pages_list(list: IoptPagesElm[]): void {
  for (const elm of list) {
    if (elm.area) iopt_abort_area(elm.area);
    if (elm.pages) iopt_put_pages(elm.pages);
    elm.area = null;
    elm.pages = null;
  }
}

/**
 * iopt_map_common(): map one pages object; an IOMMU_OPTION_RLIMIT_MODE 1 context switches its
 * user accounting to the mm's.
 */
export function iopt_map_common(account_mm: boolean, iopt: IoPagetable, pages: IoptPages, iova: { value: bigint }, length: bigint, start_byte: bigint, iommu_prot: number, flags: number): number {
  if (account_mm && pages.account_mode === IOPT_PAGES_ACCOUNT_USER) pages.account_mode = IOPT_PAGES_ACCOUNT_MM;
  return iopt_map_pages(iopt, [{ pages, area: null, start_byte, length }], length, iova, iommu_prot, flags);
}

/**
 * iopt_get_pages(): the slices of pages behind [iova, iova + length), each with a reference, for
 * IOMMU_IOAS_COPY. -EINVAL for length 0, -EOVERFLOW for a range that wraps, -ENOENT unless areas
 * cover the whole range contiguously.
 */
export function iopt_get_pages(iopt: IoPagetable, iova: bigint, length: bigint, list: IoptPagesElm[]): number {
  if (!length) return -Errno.EINVAL;
  if (iova + length - 1n > ULONG_MAX) return -Errno.EOVERFLOW;
  const last_iova = iova + length - 1n;
  let cur = iova;
  let area = iopt_area_iter_first(iopt, iova, iova);
  while (area !== undefined && area.pages !== null && area.iova <= cur) {
    const last = last_iova < area.last ? last_iova : area.last;
    const pages = area.pages;
    pages.kref++;
    list.push({ pages, area: null, start_byte: BigInt(area.page_offset) + (BigInt(area.pages_index) << 12n) + (cur - area.iova), length: last - cur + 1n });
    if (last === last_iova) return 0;
    cur = last + 1n;
    area = iopt_area_iter_first(iopt, cur, cur);
    if (area !== undefined && area.iova !== cur) break;
  }
  for (const elm of list) iopt_put_pages(elm.pages!);
  list.length = 0;
  return -Errno.ENOENT;
}

/**
 * iopt_unmap_iova_range(): unmap every area inside [start, last], lowest first: an area that
 * sticks out of the range is -ENOENT (areas before it are already gone), one being set up is
 * -EBUSY. `unmapped` gets the bytes unmapped, also on failure.
 */
function iopt_unmap_iova_range(iopt: IoPagetable, start: bigint, last: bigint, unmapped: { value: bigint }): number {
  let unmapped_bytes = 0n;
  /* If there are no mapped entries then success */
  let rc = 0;
  let area: IoptArea | undefined;
  while ((area = iopt_area_iter_first(iopt, start, last)) !== undefined) {
    /* Userspace should not race map/unmap's of the same area */
    if (area.pages === null || area.num_locks) {
      rc = -Errno.EBUSY;
      break;
    }
    if (area.iova < start || area.last > last) {
      rc = -Errno.ENOENT;
      break;
    }
    const pages = area.pages;
    area.pages = null;
    iopt_area_unfill_domains(area, pages);
    iopt_abort_area(area);
    iopt_put_pages(pages);
    unmapped_bytes += area.last - area.iova + 1n;
  }
  unmapped.value = unmapped_bytes;
  return rc;
}

/** iopt_unmap_iova(): -EINVAL for length 0, -EOVERFLOW for a wrapping range. */
export function iopt_unmap_iova(iopt: IoPagetable, iova: bigint, length: bigint, unmapped: { value: bigint }): number {
  if (!length) return -Errno.EINVAL;
  if (iova + length - 1n > ULONG_MAX) return -Errno.EOVERFLOW;
  return iopt_unmap_iova_range(iopt, iova, iova + length - 1n, unmapped);
}

/** iopt_unmap_all(): if the IOVAs are empty then unmap all succeeds. */
export function iopt_unmap_all(iopt: IoPagetable, unmapped: { value: bigint }): number {
  return iopt_unmap_iova_range(iopt, 0n, ULONG_MAX, unmapped);
}

/**
 * iopt_set_allow_iova(): replace the allowed ranges; -EADDRINUSE (old ranges kept) when one
 * intersects a reserved range.
 */
export function iopt_set_allow_iova(iopt: IoPagetable, allowed: IoptRange[]): number {
  const old = iopt.allowed;
  iopt.allowed = allowed;
  for (const a of allowed) {
    if (iopt_reserved_iter_first(iopt, a.start, a.last)) {
      iopt.allowed = old;
      return -Errno.EADDRINUSE;
    }
  }
  return 0;
}

/** iopt_reserve_iova(): -EADDRINUSE when an area or an allowed range intersects [start, last]. */
export function iopt_reserve_iova(iopt: IoPagetable, start: bigint, last: bigint, owner: unknown): number {
  if (iopt_area_iter_first(iopt, start, last) || iopt_allowed_iter_first(iopt, start, last)) return -Errno.EADDRINUSE;
  iopt.reserved.push({ start, last, owner });
  return 0;
}

/** iopt_remove_reserved_iova(): drop everything `owner` reserved. */
export function iopt_remove_reserved_iova(iopt: IoPagetable, owner: unknown): void {
  iopt.reserved = iopt.reserved.filter((r) => r.owner !== owner);
}

/**
 * iopt_table_enforce_dev_resv_regions(): reserve the device's reserved regions (owner: the
 * device); -EADDRINUSE (nothing reserved) when one holds an area.
 */
export function iopt_table_enforce_dev_resv_regions(iopt: IoPagetable, dev: Device): number {
  let num_hw_msi = 0;
  let num_sw_msi = 0;
  for (const resv of iommu_get_resv_regions(dev)) {
    if (resv.type === IOMMU_RESV_DIRECT_RELAXABLE) continue;
    if (resv.type === IOMMU_RESV_MSI) num_hw_msi++;
    if (resv.type === IOMMU_RESV_SW_MSI) num_sw_msi++;
    const rc = iopt_reserve_iova(iopt, resv.start, resv.start + resv.length - 1n, dev);
    if (rc) {
      iopt_remove_reserved_iova(iopt, dev);
      return rc;
    }
  }
  /* Drivers must offer sane combinations of regions */
  if (dev.iommu.kernel.warn.WARN_ON((num_sw_msi && num_hw_msi) || num_sw_msi > 1, 'iommufd: bad reserved MSI regions')) {
    iopt_remove_reserved_iova(iopt, dev);
    return -Errno.EINVAL;
  }
  return 0;
}

/** iopt_check_iova_alignment(): every area conforms to a larger alignment, else -EADDRINUSE. */
function iopt_check_iova_alignment(iopt: IoPagetable, new_iova_alignment: bigint): number {
  const mask = new_iova_alignment - 1n;
  for (const area of iopt.areas) {
    if (area.iova & mask || (area.last - area.iova + 1n) & mask || BigInt(area.page_offset) & mask) return -Errno.EADDRINUSE;
  }
  return 0;
}

/**
 * iopt_table_add_domain(): a new domain mirrors the table: its aperture's outside is reserved
 * (-EADDRINUSE when an area is there), the alignment rises to its smallest page (-EADDRINUSE for
 * a misaligned area), and every area is filled into it (pinning them if it is the first domain).
 * On failure the table is unchanged.
 */
export function iopt_table_add_domain(iopt: IoPagetable, domain: IommuDomain): number {
  BUG_ON(iopt.domains.includes(domain), 'iopt_table_add_domain() of a domain already in');
  const pgsize = domain.pgsize_bitmap & -domain.pgsize_bitmap;
  const new_iova_alignment = pgsize > iopt.iova_alignment ? pgsize : iopt.iova_alignment;
  if (new_iova_alignment > PAGE_SIZE_N) return -Errno.EINVAL;
  let rc: number;
  if (new_iova_alignment !== iopt.iova_alignment) {
    rc = iopt_check_iova_alignment(iopt, new_iova_alignment);
    if (rc) return rc;
  }
  /* No area exists that is outside the allowed domain aperture */
  if (domain.aperture_start !== 0n) {
    rc = iopt_reserve_iova(iopt, 0n, domain.aperture_start - 1n, domain);
    if (rc) {
      iopt_remove_reserved_iova(iopt, domain);
      return rc;
    }
  }
  if (domain.aperture_end !== ULONG_MAX) {
    rc = iopt_reserve_iova(iopt, domain.aperture_end + 1n, ULONG_MAX, domain);
    if (rc) {
      iopt_remove_reserved_iova(iopt, domain);
      return rc;
    }
  }
  /* iopt_fill_domain() */
  const filled: IoptArea[] = [];
  for (const area of iopt.areas) {
    const pages = area.pages;
    if (pages === null) continue;
    if (area.storage_domain !== null) {
      rc = iopt_area_map_domain(area, pages, domain);
    } else {
      rc = iopt_area_fill(area, pages, [domain]);
    }
    if (rc) {
      for (const a of filled) {
        if (a.storage_domain === domain) {
          iopt_area_unmap_domain(a, domain);
          iopt_pages_unfill(a.pages!, a.pages_index, a.pages_last);
          a.storage_domain = null;
        } else {
          iopt_area_unmap_domain(a, domain);
        }
      }
      iopt_remove_reserved_iova(iopt, domain);
      return rc;
    }
    filled.push(area);
  }
  iopt.iova_alignment = new_iova_alignment;
  iopt.domains.push(domain);
  return 0;
}

/** iopt_calculate_iova_alignment(): the largest smallest-page of the domains (PAGE_SIZE with large pages disabled). */
function iopt_calculate_iova_alignment(iopt: IoPagetable): number {
  let new_iova_alignment = iopt.disable_large_pages ? PAGE_SIZE_N : 1n;
  for (const d of iopt.domains) {
    const p = d.pgsize_bitmap & -d.pgsize_bitmap;
    if (p > new_iova_alignment) new_iova_alignment = p;
  }
  if (new_iova_alignment > iopt.iova_alignment) {
    const rc = iopt_check_iova_alignment(iopt, new_iova_alignment);
    if (rc) return rc;
  }
  iopt.iova_alignment = new_iova_alignment;
  return 0;
}

/**
 * iopt_table_remove_domain(): the domain stops mirroring the table: its mappings go, and when it
 * was the last domain every area's pages are unpinned; its reservations go and the alignment
 * drops back.
 */
export function iopt_table_remove_domain(iopt: IoPagetable, domain: IommuDomain): void {
  const i = iopt.domains.indexOf(domain);
  BUG_ON(i < 0, 'iopt_table_remove_domain() of a domain not in the table');
  iopt.domains.splice(i, 1);
  /* iopt_unfill_domain() */
  for (const area of iopt.areas) {
    if (area.pages === null) continue;
    iopt_area_unmap_domain(area, domain);
    if (iopt.domains.length) {
      if (area.storage_domain === domain) area.storage_domain = iopt.domains[0];
      continue;
    }
    iopt_pages_unfill(area.pages, area.pages_index, area.pages_last);
    area.storage_domain = null;
  }
  iopt_remove_reserved_iova(iopt, domain);
  iopt_calculate_iova_alignment(iopt);
}

/**
 * iopt_disable_large_pages(): map with PAGE_SIZE IOPTEs only; -EINVAL once domains hold
 * mappings.
 */
export function iopt_disable_large_pages(iopt: IoPagetable): number {
  if (iopt.disable_large_pages) return 0;
  /* Won't do it if domains already have pages mapped in them */
  if (iopt.domains.length && iopt.areas.length) return -Errno.EINVAL;
  iopt.disable_large_pages = true;
  const rc = iopt_calculate_iova_alignment(iopt);
  if (rc) iopt.disable_large_pages = false;
  return rc;
}

/** iopt_enable_large_pages(). */
export function iopt_enable_large_pages(iopt: IoPagetable): void {
  iopt.disable_large_pages = false;
  const rc = iopt_calculate_iova_alignment(iopt);
  BUG_ON(rc !== 0, 'iopt_enable_large_pages(): a smaller alignment cannot fail');
}
