/**
 * virt/kvm/guest_memfd.c of "1G page support for guest_memfd" (RFC v2, 2025-05-14,
 * cover.1747264138.git.ackerleytng@google.com; designs.md D11), on top of the in-place conversion
 * of D10 (gmem_inplace, whose attributes and KVM_SET_MEMORY_ATTRIBUTES2 it reuses), with the
 * restructuring rules of the series' rebase on in-place conversion (intel/tdx
 * virt/kvm/guest_memfd.c, 2026: __maybe_split_fresh_folio(), kvm_gmem_restructure(),
 * merge_truncate_range()):
 *   - kvm_gmem_create(): GUEST_MEMFD_FLAG_HUGETLB makes the allocator bits valid; HUGETLB with
 *     INIT_SHARED is -EINVAL (a shared page must be a 4 KiB folio); then guestmem_hugetlb_setup()
 *     (-EINVAL for a size with no hstate or a file size not aligned to it, -ENOMEM when the pool
 *     cannot reserve the file's pages);
 *   - kvm_gmem_get_folio(): a huge folio from the pool at the huge page's first index, split at
 *     once into 4 KiB folios unless every page of it is private;
 *   - KVM_SET_MEMORY_ATTRIBUTES2: after the conversion, each huge page it touched is merged when
 *     all of it is private and split otherwise, so KVM maps a uniformly private huge page with one
 *     1 GiB (2 MiB) SPTE (kvm_gmem_get_pfn()'s max_order is the folio's order) and the rest 4 KiB;
 *   - fallocate(): offset and length aligned to the huge page (-EINVAL); a punch merges each huge
 *     page back (-EAGAIN when a piece is still referenced beyond the page cache: a pin) before
 *     the base frees it, so whole huge pages return to the pool, uptodate cleared
 *     (kvm_gmem_free_folio(): "Clear PG_uptodate for HugeTLB folios to reset page");
 *   - the inode's eviction merges what it can and gives back the unused reservation.
 */
import { ERR_PTR, Errno, IS_ERR, PAGE_SIZE, type ErrPtr } from '@cocosim/core';
import {
  FALLOC_FL_PUNCH_HOLE, PG_uptodate, __filemap_add_folio, __folio_clear_locked, __folio_set_locked, filemap_lock_folio, folio_get,
  folio_nr_pages, folio_put, folio_ref_count, folio_test_large, unmap_mapping_range, type File, type FileOwner, type Folio, type Inode,
  type Kernel,
} from '@cocosim/mm';
import { kvm_gmem_create, kvm_gmem_get_supported_flags } from '../../guest_memfd.js';
import { ENOIOCTLCMD, type KvmHooks } from '../../kvm_hooks.js';
import type { Kvm } from '../../kvm_host.js';
import { user_struct_field } from '../../kvm_memslots.js';
import { GUEST_MEMFD_FLAG_INIT_SHARED, KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_SET_MEMORY_ATTRIBUTES2 } from '../../uapi.js';
import { kvm_gmem_attributes, kvm_gmem_set_attributes, type GmemInplace } from '../gmem_inplace/guest_memfd.js';
import {
  guestmem_hugetlb_alloc_folio, guestmem_hugetlb_setup, guestmem_hugetlb_teardown, gmem_hugetlb_restructure_folio, type GuestmemHugetlb,
} from './guestmem_hugetlb.js';
import { GUESTMEM_HUGETLB_FLAG_MASK, GUESTMEM_HUGETLB_FLAG_SHIFT, GUEST_MEMFD_FLAG_HUGETLB } from './uapi.js';

const PAGE = BigInt(PAGE_SIZE);
const HUGETLB = BigInt(GUEST_MEMFD_FLAG_HUGETLB);
/** SUPPORTED_CUSTOM_ALLOCATOR_MASK: "bits belonging to allocators and are opaque to guest_memfd". */
const ALLOCATOR_MASK = BigInt(GUESTMEM_HUGETLB_FLAG_MASK) << BigInt(GUESTMEM_HUGETLB_FLAG_SHIFT);

/** The design's state on one host: the in-place conversion's, and each HugeTLB inode's allocator. */
export class GmemHugetlb {
  /** gmem_inode->allocator_private of the inodes created with GUEST_MEMFD_FLAG_HUGETLB. */
  readonly inodes = new WeakMap<Inode, GuestmemHugetlb>();

  constructor(readonly kernel: Kernel, readonly inplace: GmemInplace) {}
}

/** The HugeTLB allocator of a guest_memfd inode, or undefined for an order-0 one. */
export function gmem_hugetlb_of(st: GmemHugetlb, inode: Inode): GuestmemHugetlb | undefined {
  return st.inodes.get(inode);
}

/** The huge page's pages are all private (kvm_gmem_range_has_attributes(..., PRIVATE)). */
function huge_page_is_private(st: GmemHugetlb, inode: Inode, g: GuestmemHugetlb, index: number): boolean {
  return kvm_gmem_attributes(st.inplace, inode).mt_range_is(index, index + g.nr_pages - 1, (e) => e === KVM_MEMORY_ATTRIBUTE_PRIVATE);
}

/**
 * kvm_gmem_create() with GUEST_MEMFD_FLAG_HUGETLB or allocator bits (see the file comment): the
 * checks, guestmem_hugetlb_setup(), then the base's creation of the file with the rest of the
 * flags; the setup is undone if that fails.
 * @returns the fd, -errno, or -ENOIOCTLCMD for a creation without HugeTLB
 */
function kvm_gmem_create_hugetlb(st: GmemHugetlb, kvm: Kvm, arg: object, current: FileOwner): number {
  const o = arg as Record<string, unknown>;
  const flags = user_struct_field(o, 'flags', 64);
  if (flags === undefined || !(flags & (HUGETLB | ALLOCATOR_MASK))) return -ENOIOCTLCMD;
  let valid_flags = BigInt(kvm_gmem_get_supported_flags(kvm));
  if (flags & HUGETLB) valid_flags |= HUGETLB | ALLOCATOR_MASK;
  if (flags & ~valid_flags) return -Errno.EINVAL;
  if (flags & BigInt(GUEST_MEMFD_FLAG_INIT_SHARED)) return -Errno.EINVAL;
  const u_size = user_struct_field(o, 'size', 64);
  if (u_size === undefined) return -Errno.EINVAL;
  const size = BigInt.asIntN(64, u_size);
  if (size <= 0n || size % PAGE !== 0n) return -Errno.EINVAL;
  const g = guestmem_hugetlb_setup(st.kernel, size, Number((flags >> BigInt(GUESTMEM_HUGETLB_FLAG_SHIFT)) & BigInt(GUESTMEM_HUGETLB_FLAG_MASK)));
  if (typeof g === 'number') return g;
  const fd = kvm_gmem_create(kvm, { ...o, flags: flags & ~(HUGETLB | ALLOCATOR_MASK) }, current);
  if (fd < 0) {
    guestmem_hugetlb_teardown(st.kernel, g);
    return fd;
  }
  st.inodes.set(current.files.lookup(fd)!.f_inode, g);
  return fd;
}

/**
 * __maybe_split_fresh_folio(): a new huge folio (locked, referenced) stays whole when every page
 * of it is private; otherwise only the page cache's references are left on it, it is split, and
 * the 4 KiB folio of `index` is returned locked and referenced.
 */
function __maybe_split_fresh_folio(st: GmemHugetlb, inode: Inode, g: GuestmemHugetlb, folio: Folio, index: number): Folio {
  const store = st.kernel.store;
  const floor = index - (index % g.nr_pages);
  if (huge_page_is_private(st, inode, g, floor)) return folio;
  __folio_clear_locked(store, folio);
  folio_put(store, folio);
  st.kernel.warn.WARN_ON(gmem_hugetlb_restructure_folio(st.kernel, inode.i_mapping, g, floor, 0) !== 0, '__maybe_split_fresh_folio');
  const piece = (folio + (index - floor)) as Folio;
  __folio_set_locked(store, piece);
  folio_get(store, piece);
  return piece;
}

/**
 * kvm_gmem_get_folio() of a HugeTLB inode: the folio in the page cache, else a huge folio from
 * the pool added at the huge page's first index (the pool's -ENOSPC when it has none), split as
 * __maybe_split_fresh_folio() decides.
 */
function kvm_gmem_get_folio_hugetlb(st: GmemHugetlb, inode: Inode, index: number): Folio | ErrPtr | undefined {
  const g = st.inodes.get(inode);
  if (g === undefined) return undefined;
  const kernel = st.kernel;
  const store = kernel.store;
  const mapping = inode.i_mapping;
  const cached = filemap_lock_folio(kernel, mapping, index);
  if (!IS_ERR(cached)) return cached;
  const folio = guestmem_hugetlb_alloc_folio(kernel, g);
  if (IS_ERR(folio)) return folio;
  __folio_set_locked(store, folio as Folio);
  const err = __filemap_add_folio(kernel, mapping, folio as Folio, index - (index % g.nr_pages), mapping.gfp_mask);
  if (err) {
    __folio_clear_locked(store, folio as Folio);
    folio_put(store, folio as Folio);
    return ERR_PTR(err);
  }
  return __maybe_split_fresh_folio(st, inode, g, folio as Folio, index);
}

/**
 * kvm_gmem_restructure() after a conversion of file pages [start, end): each huge page the range
 * touches becomes one folio of the file's order when all of it is private, 4 KiB folios
 * otherwise. Neither can fail here: the conversion unmapped and checked the range, and the rest of
 * a huge page that is private has no host mapping or pin.
 */
function kvm_gmem_restructure(st: GmemHugetlb, inode: Inode, g: GuestmemHugetlb, start: number, end: number): void {
  for (let index = start - (start % g.nr_pages); index < end; index += g.nr_pages) {
    const to_order = huge_page_is_private(st, inode, g, index) ? g.order : 0;
    st.kernel.warn.WARN_ON(gmem_hugetlb_restructure_folio(st.kernel, inode.i_mapping, g, index, to_order) !== 0, 'kvm_gmem_restructure');
  }
}

/**
 * kvm_gmem_ioctl() of a HugeTLB inode: KVM_SET_MEMORY_ATTRIBUTES2 as in-place conversion does it
 * (its checks, errors and error_offset), then kvm_gmem_restructure() of the range.
 * @returns -ENOTTY for anything else (in-place conversion's hook answers then)
 */
function kvm_gmem_ioctl_hugetlb(st: GmemHugetlb, file: File, cmd: number, arg: unknown): number {
  const g = st.inodes.get(file.f_inode);
  if (cmd !== KVM_SET_MEMORY_ATTRIBUTES2 || g === undefined || !st.inplace.cfg.gmem_in_place_conversion) return -Errno.ENOTTY;
  const r = kvm_gmem_set_attributes(st.inplace, file, arg);
  if (r) return r;
  const o = arg as Record<string, unknown>;
  const offset = user_struct_field(o, o.offset !== undefined ? 'offset' : 'address', 64)!;
  const size = user_struct_field(o, 'size', 64)!;
  kvm_gmem_restructure(st, file.f_inode, g, Number(offset / PAGE), Number((offset + size) / PAGE));
  return 0;
}

/**
 * kvm_gmem_has_safe_refcount() over the huge pages of [start, end): a huge folio referenced by
 * the page cache alone, or 4 KiB pieces referenced once each.
 */
function kvm_gmem_has_safe_refcount(st: GmemHugetlb, inode: Inode, start: number, end: number): boolean {
  const store = st.kernel.store;
  const i_pages = inode.i_mapping.i_pages;
  for (let index = start; index < end;) {
    const folio = i_pages.xa_load(index);
    if (folio === undefined) {
      index++;
      continue;
    }
    const nr = folio_nr_pages(store, folio);
    if (folio_ref_count(store, folio) !== nr) return false;
    index += nr;
  }
  return true;
}

/** folio_clear_uptodate() of the huge folios of [start, end), about to be freed. */
function clear_uptodate_range(st: GmemHugetlb, inode: Inode, g: GuestmemHugetlb, start: number, end: number): void {
  const store = st.kernel.store;
  for (let index = start; index < end; index += g.nr_pages) {
    const folio = inode.i_mapping.i_pages.xa_load(index);
    if (folio !== undefined && folio_test_large(store, folio)) store.flags[store.idx(folio)] &= ~(1 << PG_uptodate);
  }
}

/**
 * kvm_gmem_fallocate() of a HugeTLB inode: huge page alignment (-EINVAL), and for a punch
 * merge_truncate_range(require_merge = true)'s first half: the user mappings of the range go,
 * a piece referenced beyond the page cache fails the punch (-EAGAIN), the huge pages are merged.
 */
function kvm_gmem_fallocate_hugetlb(st: GmemHugetlb, file: File, mode: number, offset: bigint, len: bigint): number {
  const inode = file.f_inode;
  const g = st.inodes.get(inode);
  if (g === undefined) return 0;
  const page_size = PAGE * BigInt(g.nr_pages);
  if (offset % page_size !== 0n || len % page_size !== 0n) return -Errno.EINVAL;
  if (!(mode & FALLOC_FL_PUNCH_HOLE)) return 0;
  const i_pages = Number(inode.i_size / PAGE);
  const start = Math.min(Number(offset / PAGE), i_pages);
  const end = Math.min(Number((offset + len) / PAGE), i_pages);
  if (start >= end) return 0;
  unmap_mapping_range(st.kernel, inode.i_mapping, offset, len, false);
  if (!kvm_gmem_has_safe_refcount(st, inode, start, end)) return -Errno.EAGAIN;
  for (let index = start; index < end; index += g.nr_pages) {
    st.kernel.warn.WARN_ON(gmem_hugetlb_restructure_folio(st.kernel, inode.i_mapping, g, index, g.order) !== 0, 'merge_folios_in_range');
  }
  clear_uptodate_range(st, inode, g, start, end);
  return 0;
}

/**
 * kvm_gmem_evict_inode() of a HugeTLB inode: merge_truncate_range(require_merge = false) of the
 * whole file (a piece still pinned stays split and is freed as a 4 KiB page, as the RFC's
 * truncation does), then guestmem_hugetlb_teardown().
 */
function kvm_gmem_evict_inode_hugetlb(st: GmemHugetlb, inode: Inode): number {
  const g = st.inodes.get(inode);
  if (g === undefined) return 0;
  const end = Number(inode.i_size / PAGE);
  for (let index = 0; index < end; index += g.nr_pages) gmem_hugetlb_restructure_folio(st.kernel, inode.i_mapping, g, index, g.order);
  clear_uptodate_range(st, inode, g, 0, end);
  guestmem_hugetlb_teardown(st.kernel, g);
  st.inodes.delete(inode);
  return 0;
}

/** The design's own KVM hooks (registered before in-place conversion's). */
export function gmem_hugetlb_kvm_hooks(st: GmemHugetlb): KvmHooks {
  return {
    name: 'gmem_hugetlb',
    gmem_create: (kvm, arg, current) => kvm_gmem_create_hugetlb(st, kvm, arg, current),
    gmem_get_folio: (inode, index) => kvm_gmem_get_folio_hugetlb(st, inode, index),
    gmem_ioctl: (file, cmd, arg) => kvm_gmem_ioctl_hugetlb(st, file, cmd, arg),
    gmem_fallocate: (file, mode, offset, len) => kvm_gmem_fallocate_hugetlb(st, file, mode, offset, len),
    gmem_evict_inode: (inode) => kvm_gmem_evict_inode_hugetlb(st, inode),
  };
}

