/**
 * guest_memfd in-place conversion (virt/kvm/guest_memfd.c of "guest_memfd: In-place conversion
 * support" v8, 2026-06-18; designs.md D10, kernel-uapi.md §10): guest_memfd tracks shared vs
 * private per file page, in a maple tree on the inode that covers every index, and converts a
 * range in place with KVM_SET_MEMORY_ATTRIBUTES2 on the guest_memfd fd. Host user space can
 * mmap() every page, but an access to a private one is SIGBUS; KVM's kvm_mem_is_private() asks
 * guest_memfd (a gfn with no guest_memfd memslot is shared).
 *
 * Conversion (__kvm_gmem_set_attributes()), under the filemap invalidate lock:
 *   - nothing to do if the range already has the attributes;
 *   - to private: unmap the range from every host page table (every process, fork children too),
 *     then every allocated folio must hold only the page cache's references (plus the lookup's);
 *     otherwise -EAGAIN with error_offset at the first page in use, and nothing changed;
 *   - zap the guests' mappings of the range (filter from the attributes it has now);
 *   - to shared: kvm_arch_gmem_invalidate() of the folios (SNP: RMP back to the hypervisor);
 *   - store the attributes.
 * "KVM does not directly manipulate the memory contents of pages during attribute updates": the
 * page keeps its bytes both ways (what the hardware does to them is the vendor's). RFC v4/v5's
 * content modes (ZERO, PRESERVE, UNSPECIFIED) are an option of the design (x86.ts).
 *
 * A guest fault prepares a private page every time (kvm_gmem_inplace_prepare_folio(): "Only prepare
 * folios for private pages", the vendor tracking what it prepared), and conversion to shared
 * undoes the preparation (kvm_gmem_invalidate()), so a page can go round shared <-> private on
 * SNP (RMPUPDATE each way).
 *
 * Not modelled: the ENOMEM of mas_preallocate() (the simulator's maple tree does not fail).
 */
import { Errno, MapleTree, PAGE_SHIFT, PAGE_SIZE, type PgOff, type Pfn } from '@cocosim/core';
import {
  FolioBatch, filemap_get_folios, folio_batch_count, folio_batch_release, folio_mark_uptodate, folio_nr_pages, folio_order,
  folio_ref_count, mapping_make_private, pr_warn, type File, type FileOwner, type Folio, type Inode, type Kernel,
} from '@cocosim/mm';
import { KVM_FILTER_PRIVATE, KVM_FILTER_SHARED, kvm_arch_has_private_mem, type Kvm, type KvmMemorySlot } from '../../kvm_host.js';
import { ENOIOCTLCMD } from '../../kvm_hooks.js';
import { GMEM_I, file_is_kvm_gmem, kvm_gmem_get_index, kvm_gmem_invalidate_begin, kvm_gmem_invalidate_end, type GmemFile } from '../../guest_memfd.js';
import { gfn_to_memslot, user_struct_field } from '../../kvm_memslots.js';
import { GUEST_MEMFD_FLAG_INIT_SHARED, KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_SET_MEMORY_ATTRIBUTES2 } from '../../uapi.js';
import {
  KVM_MEMORY_ATTRIBUTES2_NR_RESERVED, KVM_SET_MEMORY_ATTRIBUTES2_MODE_UNSPECIFIED, KVM_SET_MEMORY_ATTRIBUTES2_PRESERVE,
  KVM_SET_MEMORY_ATTRIBUTES2_ZERO,
} from './uapi.js';
import {
  kvm_arch_gmem_apply_content_mode_preserve, kvm_arch_gmem_apply_content_mode_unspecified, kvm_arch_gmem_apply_content_mode_zero,
  kvm_arch_gmem_supported_content_modes, type ContentModesVersion,
} from './x86.js';

declare module '@cocosim/core' {
  interface TraceEventMap {
    /** __kvm_gmem_set_attributes(): file pages [start, start + nr_pages) set to `attributes` (0 or -errno, error_offset). */
    cocosim_kvm_gmem_set_attributes: { ino: number; start: PgOff; nr_pages: number; attributes: number; flags: number; ret: number; error_offset: bigint };
  }
}

/** The knobs of the series: a Kconfig, a module parameter and the RFCs' content modes. */
export interface GmemInplaceConfig {
  /** CONFIG_KVM_VM_MEMORY_ATTRIBUTES: per-VM KVM_SET_MEMORY_ATTRIBUTES is compiled in (v8 default: n). */
  readonly vm_memory_attributes: boolean;
  /** kvm.gmem_in_place_conversion (0444; v8 default: !CONFIG_KVM_VM_MEMORY_ATTRIBUTES). */
  readonly gmem_in_place_conversion: boolean;
  /** RFC v4/v5 content modes in struct kvm_memory_attributes2's flags, or null (v6 and later). */
  readonly content_modes: ContentModesVersion | null;
}

/** The design's state on one host: the configuration and each inode's attributes. */
export class GmemInplace {
  /** gmem_inode->attributes: every page index of the inode, equal neighbours merged. */
  readonly attributes = new WeakMap<Inode, MapleTree<number>>();

  constructor(readonly kernel: Kernel, readonly cfg: GmemInplaceConfig) {}
}

/* ---- per-inode attributes ---- */

/** kvm_gmem_get_default_attributes(): shared if created INIT_SHARED, else private. */
function kvm_gmem_get_default_attributes(inode: Inode): number {
  return GMEM_I(inode).flags & GUEST_MEMFD_FLAG_INIT_SHARED ? 0 : KVM_MEMORY_ATTRIBUTE_PRIVATE;
}

/** The number of page indexes of a guest_memfd inode (i_size is page aligned and never changes). */
function gmem_nr_pages(inode: Inode): number {
  return Number(inode.i_size >> BigInt(PAGE_SHIFT));
}

/**
 * gmem_inode->attributes, as kvm_gmem_init_inode() stores it at creation: the default
 * attributes for every index of the file. Built on first use (the inode may predate nothing the
 * tree could observe: no conversion happens before the first lookup).
 */
export function kvm_gmem_attributes(st: GmemInplace, inode: Inode): MapleTree<number> {
  let mt = st.attributes.get(inode);
  if (mt === undefined) {
    mt = new MapleTree<number>();
    mt.mtree_store_range(0, gmem_nr_pages(inode) - 1, kvm_gmem_get_default_attributes(inode));
    st.attributes.set(inode, mt);
  }
  return mt;
}

/** kvm_gmem_get_attributes(): the attributes of file page `index` (WARN and the default past i_size). */
export function kvm_gmem_get_attributes(st: GmemInplace, inode: Inode, index: number): number {
  const entry = kvm_gmem_attributes(st, inode).mtree_load(index);
  if (st.kernel.warn.WARN_ON_ONCE(entry === undefined, 'kvm_gmem_get_attributes: index beyond the inode')) return kvm_gmem_get_default_attributes(inode);
  return entry!;
}

/** kvm_gmem_is_private_mem(). */
export function kvm_gmem_is_private_mem(st: GmemInplace, inode: Inode, index: number): boolean {
  return (kvm_gmem_get_attributes(st, inode, index) & KVM_MEMORY_ATTRIBUTE_PRIVATE) !== 0;
}

/** kvm_gmem_range_has_attributes(): every index of [index, index + nr_pages) has exactly `attributes`. */
function kvm_gmem_range_has_attributes(mt: MapleTree<number>, index: number, nr_pages: number, attributes: number): boolean {
  return mt.mt_range_is(index, index + nr_pages - 1, (e) => e === attributes);
}

/**
 * kvm_gmem_get_invalidate_filter() of the series ("Determine invalidation filter from memory
 * attributes"): PRIVATE and/or SHARED as the pages of [start, end) are now.
 */
export function kvm_gmem_get_invalidate_filter(st: GmemInplace, inode: Inode, start: number, end: number): number {
  const last = Math.min(end, gmem_nr_pages(inode)) - 1;
  let filter = 0;
  if (last < start) return KVM_FILTER_SHARED | KVM_FILTER_PRIVATE;
  kvm_gmem_attributes(st, inode).mt_for_each(start, last, (entry) => {
    filter |= entry & KVM_MEMORY_ATTRIBUTE_PRIVATE ? KVM_FILTER_PRIVATE : KVM_FILTER_SHARED;
    return filter !== (KVM_FILTER_PRIVATE | KVM_FILTER_SHARED);
  });
  return filter;
}

/**
 * kvm_gmem_is_private(): whether `gfn` is private, for kvm_mem_is_private(): no memslot, or a
 * memslot whose guest_memfd is closed (or that has none), is shared; otherwise the attribute of
 * the file page behind the gfn.
 */
export function kvm_gmem_is_private(st: GmemInplace, kvm: Kvm, gfn: number): boolean {
  const slot = gfn_to_memslot(kvm, gfn);
  if (slot === undefined) return false;
  const file = slot.gmem.file;
  // CLASS(gmem_get_file): a file whose last reference went is gone.
  if (file === null || file.f_count <= 0 || !file_is_kvm_gmem(file)) return false;
  return kvm_gmem_is_private_mem(st, file.f_inode, kvm_gmem_get_index(slot, gfn));
}

/* ---- preparation (kvm_gmem_get_pfn()) ---- */

/**
 * kvm_gmem_get_pfn()'s zeroing and preparation with the series, for the kvm_hooks
 * gmem_prepare_folio seam. v8 sits on a base that no longer tracks preparation in guest_memfd
 * ("Remove kvm_gmem_populate()'s preparation tracking ... rely on SNP (the only user of the
 * tracking) to do its own tracking via the RMP", KVM guest_memfd changes for 6.20):
 *   - "KVM: guest_memfd: Zero page while getting pfn" (v8): a folio that is not uptodate is
 *     zeroed and marked uptodate, shared or private;
 *   - "KVM: guest_memfd: Only prepare folios for private pages" (v6 08/43,
 *     20260507-gmem-inplace-conversion-v6-8-91ab5a8b19a4@google.com, kept in v8):
 *     kvm_gmem_prepare_folio() runs on every fault of a private page ("Preparation will be undone
 *     on freeing ... and on conversion to shared"), so a page the host faulted in while shared,
 *     or converted back from shared (kvm_gmem_invalidate() gave it back to the hypervisor), is
 *     prepared again when the guest next faults it private (SNP: RMPUPDATE to assigned).
 * Without in-place conversion the base's 6.18 logic stays (-ENOIOCTLCMD).
 * @returns 0 or kvm_arch_gmem_prepare()'s error
 */
export function kvm_gmem_inplace_prepare_folio(st: GmemInplace, kvm: Kvm, slot: KvmMemorySlot, gfn: number, folio: Folio, is_prepared: boolean): number {
  if (!st.cfg.gmem_in_place_conversion) return -ENOIOCTLCMD;
  const kernel = st.kernel;
  const store = kernel.store;
  const inode = slot.gmem.file!.f_inode;
  const nr = folio_nr_pages(store, folio);
  if (!is_prepared) {
    for (let i = 0; i < nr; i++) kernel.phys.clear((folio + i) as Pfn);
    kernel.cost.charge('page_zero_4k', nr);
    folio_mark_uptodate(store, folio);
  }
  const index = kvm_gmem_get_index(slot, gfn);
  if (!kvm_gmem_is_private_mem(st, inode, index)) return 0;
  // kvm_gmem_prepare_folio() -> __kvm_gmem_prepare_folio() for the folio's first index.
  kernel.warn.WARN_ON(slot.gmem.pgoff % nr !== 0, 'kvm_gmem_prepare_folio: slot pgoff not aligned to the folio');
  const first = index - (index % nr);
  const pfn = folio + (first % nr);
  const first_gfn = slot.base_gfn + first - slot.gmem.pgoff;
  const rc = kvm.x86_ops.gmem_prepare(kvm, pfn, first_gfn, folio_order(store, folio));
  if (rc) pr_warn(kernel, `gmem: Failed to prepare folio for index ${first.toString(16)} GFN ${first_gfn.toString(16)} PFN ${pfn.toString(16)} error ${rc}.`);
  return rc;
}

/* ---- the folios of a range ---- */

/**
 * filemap_get_folios() over file pages [start, end) of a guest_memfd inode, a batch at a time:
 * fn(folio, first index in range, end index in range) for each folio, the batch's reference
 * held. fn's non-zero answer stops the walk and is returned.
 */
export function for_each_gmem_folio(inode: Inode, start: number, end: number, fn: (folio: Folio, first: number, last: number) => number): number {
  const kernel = GMEM_I(inode).kernel;
  const store = kernel.store;
  const fbatch = new FolioBatch();
  const next = { index: start };
  let ret = 0;
  while (ret === 0 && next.index < end && filemap_get_folios(kernel, inode.i_mapping, next, end - 1, fbatch)) {
    for (let i = 0; ret === 0 && i < folio_batch_count(fbatch); i++) {
      const folio = fbatch.folios[i]!;
      const index = store.index[store.idx(folio)];
      ret = fn(folio, Math.max(start, index), Math.min(end, index + folio_nr_pages(store, folio)));
    }
    folio_batch_release(store, fbatch);
  }
  return ret;
}

/**
 * kvm_gmem_is_safe_for_conversion(): every folio of [start, start + nr_pages) holds only the page
 * cache's references and the lookup's (folio_nr_pages() + 1). An extra reference (a GUP pin, a
 * host mapping that survived the unmap) makes it unsafe: the index of the first such page.
 * The kernel drains every CPU's lru_add batches once before giving up; the simulator's batches
 * are always drained (mm/src/filemap.ts), so the first answer is final.
 * @returns -1 when safe, else the error index
 */
function kvm_gmem_is_safe_for_conversion(inode: Inode, start: number, nr_pages: number): number {
  const store = GMEM_I(inode).kernel.store;
  let err_index = -1;
  for_each_gmem_folio(inode, start, start + nr_pages, (folio, first) => {
    if (folio_ref_count(store, folio) === folio_nr_pages(store, folio) + 1) return 0;
    err_index = first;
    return 1;
  });
  return err_index;
}

/**
 * kvm_gmem_invalidate(): kvm_arch_gmem_invalidate() (kvm_x86_ops.gmem_invalidate) for the pfns of
 * every allocated page of [start, end), which is becoming shared.
 */
function kvm_gmem_invalidate(inode: Inode, start: number, end: number): void {
  const gi = GMEM_I(inode);
  const store = gi.kernel.store;
  for_each_gmem_folio(inode, start, end, (folio, first, last) => {
    const start_pfn = folio + (first - store.index[store.idx(folio)]);
    gi.kvm.x86_ops.gmem_invalidate(gi.kvm, start_pfn, start_pfn + last - first);
    return 0;
  });
}

/* ---- content modes (RFC v4/v5) ---- */

/** kvm_gmem_content_mode_is_supported(): UNSPECIFIED always; ZERO never to private; else the arch's. */
function kvm_gmem_content_mode_is_supported(version: ContentModesVersion, kvm: Kvm, content_mode: number, to_private: boolean): boolean {
  if (content_mode === KVM_SET_MEMORY_ATTRIBUTES2_MODE_UNSPECIFIED) return true;
  if (content_mode === KVM_SET_MEMORY_ATTRIBUTES2_ZERO && to_private) return false;
  return (kvm_arch_gmem_supported_content_modes(version, kvm, to_private, false) & content_mode) !== 0;
}

/** kvm_gmem_apply_content_mode(): the arch's handler of the mode, over [start, end). */
function kvm_gmem_apply_content_mode(version: ContentModesVersion, kvm: Kvm, content_mode: number, inode: Inode, start: number, end: number): number {
  switch (content_mode) {
    case KVM_SET_MEMORY_ATTRIBUTES2_MODE_UNSPECIFIED:
      return kvm_arch_gmem_apply_content_mode_unspecified(kvm, inode, start, end);
    case KVM_SET_MEMORY_ATTRIBUTES2_ZERO:
      return kvm_arch_gmem_apply_content_mode_zero(kvm, inode, start, end);
    case KVM_SET_MEMORY_ATTRIBUTES2_PRESERVE:
      return kvm_arch_gmem_apply_content_mode_preserve(version, kvm);
    default:
      kvm.kernel.warn.WARN_ON_ONCE(true, 'kvm_gmem_apply_content_mode', 'Unexpected policy requested.');
      return -Errno.EOPNOTSUPP;
  }
}

/* ---- KVM_SET_MEMORY_ATTRIBUTES2 ---- */

/** The outcome of __kvm_gmem_set_attributes(): 0 or -errno, and the failing index. */
interface SetAttributesResult {
  readonly r: number;
  readonly err_index: number;
}

/**
 * __kvm_gmem_set_attributes(): set `attrs` on file pages [start, start + nr_pages) (see the
 * file comment). `content_mode` is null without the RFC content modes.
 */
export function __kvm_gmem_set_attributes(st: GmemInplace, inode: Inode, start: number, nr_pages: number, attrs: number, kvm: Kvm, content_mode: number | null): SetAttributesResult {
  const to_private = (attrs & KVM_MEMORY_ATTRIBUTE_PRIVATE) !== 0;
  const end = start + nr_pages;
  const mt = kvm_gmem_attributes(st, inode);
  const version = st.cfg.content_modes;
  const kernel = st.kernel;

  if (version !== null && content_mode !== null && !kvm_gmem_content_mode_is_supported(version, kvm, content_mode, to_private)) {
    return { r: -Errno.EOPNOTSUPP, err_index: start };
  }

  if (kvm_gmem_range_has_attributes(mt, start, nr_pages, attrs)) {
    // RFC v4: "Even if no update is required to attributes, the requested content mode is applied."
    if (version !== null && content_mode !== null) kernel.warn.WARN_ON(kvm_gmem_apply_content_mode(version, kvm, content_mode, inode, start, end) !== 0, '__kvm_gmem_set_attributes: content mode');
    return { r: 0, err_index: 0 };
  }

  if (to_private) {
    // "Forcefully unmap the pages from all userspace page tables, and then verify there are no
    // outstanding references, e.g. acquired via GUP or similar."
    mapping_make_private(kernel, inode.i_mapping, start, nr_pages);
    const err_index = kvm_gmem_is_safe_for_conversion(inode, start, nr_pages);
    if (err_index >= 0) return { r: -Errno.EAGAIN, err_index };
  }

  // From this point on guest_memfd has performed necessary checks and can proceed to do
  // guest-breaking changes.
  kvm_gmem_invalidate_begin(inode, start, end);
  if (!to_private) kvm_gmem_invalidate(inode, start, end);
  if (version !== null && content_mode !== null) kernel.warn.WARN_ON(kvm_gmem_apply_content_mode(version, kvm, content_mode, inode, start, end) !== 0, '__kvm_gmem_set_attributes: content mode');
  mt.mtree_store_range(start, end - 1, attrs);
  kvm_gmem_invalidate_end(inode, start, end);
  return { r: 0, err_index: 0 };
}

const TWO64 = 2n ** 64n;
const PAGE = BigInt(PAGE_SIZE);

/** struct kvm_memory_attributes2 as copy_from_user() reads it, or -EFAULT. */
interface KvmMemoryAttributes2 {
  readonly offset: bigint;
  readonly size: bigint;
  readonly attributes: bigint;
  readonly flags: bigint;
  readonly error_offset: bigint;
  readonly reserved_set: boolean;
}

/**
 * copy_from_user() of struct kvm_memory_attributes2: `offset` (or the union's other name,
 * `address`), size, attributes, flags, error_offset, reserved[11]. A missing field is 0; a field
 * no C program can write (a non-integer, both union names with different values, a reserved[]
 * that is no array of at most 11 words) is the stand-in for an unreadable pointer: -EFAULT.
 */
function copy_kvm_memory_attributes2(arg: unknown): KvmMemoryAttributes2 | number {
  if (typeof arg !== 'object' || arg === null) return -Errno.EFAULT;
  const o = arg as Record<string, unknown>;
  const offset = user_struct_field(o, 'offset', 64);
  const address = user_struct_field(o, 'address', 64);
  const size = user_struct_field(o, 'size', 64);
  const attributes = user_struct_field(o, 'attributes', 64);
  const flags = user_struct_field(o, 'flags', 64);
  const error_offset = user_struct_field(o, 'error_offset', 64);
  if (offset === undefined || address === undefined || size === undefined || attributes === undefined || flags === undefined || error_offset === undefined) {
    return -Errno.EFAULT;
  }
  if (o.offset !== undefined && o.address !== undefined && offset !== address) return -Errno.EFAULT;
  let reserved_set = false;
  const reserved = o.reserved;
  if (reserved !== undefined && reserved !== null) {
    if (!Array.isArray(reserved) || reserved.length > KVM_MEMORY_ATTRIBUTES2_NR_RESERVED) return -Errno.EFAULT;
    for (let i = 0; i < reserved.length; i++) {
      const w = user_struct_field(reserved as unknown as Record<string, unknown>, String(i), 64);
      if (w === undefined) return -Errno.EFAULT;
      if (w !== 0n) reserved_set = true;
    }
  }
  return { offset: o.offset !== undefined ? offset : address, size, attributes, flags, error_offset, reserved_set };
}

/** copy_to_user() of error_offset into the caller's struct (a number stays a number while exact). */
function put_error_offset(arg: object, v: bigint): void {
  const rec = arg as Record<string, unknown>;
  rec.error_offset = typeof rec.error_offset === 'number' && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/**
 * kvm_gmem_set_attributes(): KVM_SET_MEMORY_ATTRIBUTES2 on a guest_memfd. In v8's order: -EFAULT
 * (copy_from_user), -EINVAL for flags (RFC v4/v5: unknown mode bits, ZERO with PRESERVE, a
 * non-zero error_offset), reserved words, a VM without private memory, attributes other than
 * PRIVATE, a zero size or a range that wraps, an unaligned offset or size, a range beyond i_size;
 * then __kvm_gmem_set_attributes(), whose error writes error_offset back.
 */
export function kvm_gmem_set_attributes(st: GmemInplace, file: File, arg: unknown): number {
  const f = file.private_data as GmemFile;
  const inode = file.f_inode;
  const attrs = copy_kvm_memory_attributes2(arg);
  if (typeof attrs === 'number') return attrs;

  const rfc = st.cfg.content_modes !== null;
  if (rfc) {
    if (attrs.flags & ~BigInt(KVM_SET_MEMORY_ATTRIBUTES2_ZERO | KVM_SET_MEMORY_ATTRIBUTES2_PRESERVE)) return -Errno.EINVAL;
    if (attrs.flags & BigInt(KVM_SET_MEMORY_ATTRIBUTES2_ZERO) && attrs.flags & BigInt(KVM_SET_MEMORY_ATTRIBUTES2_PRESERVE)) return -Errno.EINVAL;
    if (attrs.error_offset) return -Errno.EINVAL;
  } else if (attrs.flags) {
    return -Errno.EINVAL;
  }
  if (attrs.reserved_set) return -Errno.EINVAL;
  if (!kvm_arch_has_private_mem(f.kvm)) return -Errno.EINVAL;
  if (attrs.attributes & ~BigInt(KVM_MEMORY_ATTRIBUTE_PRIVATE)) return -Errno.EINVAL;
  if (attrs.size === 0n || attrs.offset + attrs.size >= TWO64) return -Errno.EINVAL;
  if (attrs.offset % PAGE !== 0n || attrs.size % PAGE !== 0n) return -Errno.EINVAL;
  if (attrs.offset >= inode.i_size || attrs.offset + attrs.size > inode.i_size) return -Errno.EINVAL;

  const nr_pages = Number(attrs.size / PAGE);
  const index = Number(attrs.offset / PAGE);
  const { r, err_index } = __kvm_gmem_set_attributes(st, inode, index, nr_pages, Number(attrs.attributes), f.kvm, rfc ? Number(attrs.flags) : null);
  const error_offset = BigInt(err_index) << BigInt(PAGE_SHIFT);
  if (r) put_error_offset(arg as object, error_offset);
  const tracer = st.kernel.tracer;
  if (tracer.enabled('cocosim_kvm_gmem_set_attributes')) {
    tracer.emit('cocosim_kvm_gmem_set_attributes', {
      ino: inode.i_ino, start: index as PgOff, nr_pages, attributes: Number(attrs.attributes), flags: Number(attrs.flags), ret: r,
      error_offset: r ? error_offset : 0n,
    });
  }
  return r;
}

/** kvm_gmem_ioctl(): KVM_SET_MEMORY_ATTRIBUTES2 while in-place conversion is on; -ENOTTY otherwise. */
export function kvm_gmem_ioctl(st: GmemInplace, file: File, cmd: number, arg: unknown, _current: FileOwner): number {
  if (cmd === KVM_SET_MEMORY_ATTRIBUTES2 && st.cfg.gmem_in_place_conversion) return kvm_gmem_set_attributes(st, file, arg);
  return -Errno.ENOTTY;
}
