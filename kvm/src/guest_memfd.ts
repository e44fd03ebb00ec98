/**
 * guest_memfd (virt/kvm/guest_memfd.c, Linux 6.18): KVM_CREATE_GUEST_MEMFD files, whose page
 * cache is the memory KVM maps into a guest for the memslots bound to them.
 *
 * A guest_memfd inode is the physical storage (GmemInode: its creation flags and the files open
 * on it); each file is one VM's view of it (GmemFile: the VM and the memslot bindings, by file
 * page index). The inode is a fresh anonymous inode ("[kvm-gmem]" on anon_inodefs, which is
 * noexec), S_IFREG with a size fixed at creation, and its mapping is inaccessible (no direct CPU
 * access, no migration) and unevictable. Pages are allocated by fallocate(), by a host fault of an mmap()ed file
 * (GUEST_MEMFD_FLAG_MMAP) or by a guest fault (kvm_gmem_get_pfn()), and zeroed on first use
 * through the uptodate flag: a folio that is not uptodate has never been handed out.
 *
 * The file pins the VM (kvm_get_kvm()), a memslot does not pin the file: closing the file zaps
 * the guest's mappings of it and leaves its memslots without backing (kvm_gmem_get_pfn(): -EFAULT),
 * while the memory lives on with the inode until the last file reference (an mmap too) goes.
 *
 * 6.18 keeps "preparation" state in the uptodate flag: kvm_gmem_get_pfn() zeroes a folio that is
 * not uptodate, lets the vendor prepare it (kvm_arch_gmem_prepare(), SNP's RMPUPDATE) and marks it
 * uptodate; a page the host faulted in first is zeroed there and never prepared.
 *
 * Not modelled: NUMA policies (mbind on a mapping), the EINTR of a signal during fallocate or
 * populate, mtime updates (file_modified()), and the filemap invalidate lock (one call runs at a
 * time, so there is no race for it to close).
 */
import { Errno, IS_ERR, MT_MAX, PTR_ERR, MapleTree, PAGE_SHIFT, PAGE_SIZE, costId, type ErrPtr, type Gfn, type PgOff, type Pfn } from '@cocosim/core';
import {
  FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FGP_ACCESSED, FGP_CREAT, FGP_LOCK, GFP_HIGHUSER, Inode, MF_DELAYED,
  O_LARGEFILE, O_RDWR, S_IFREG, SB_I_NODEV, SB_I_NOEXEC, S_ANON_INODE, VM_FAULT_LOCKED, VM_FAULT_OOM, VM_FAULT_RETRY,
  VM_FAULT_SIGBUS, VM_MAYSHARE, VM_SHARED, __filemap_get_folio, alloc_file_pseudo, folio_file_page,
  folio_mark_uptodate, folio_nr_pages, folio_order, folio_put, folio_test_hwpoison, folio_test_large,
  folio_test_uptodate, folio_unlock, for_each_process, iput, pr_warn, registerMapping, task_mm,
  truncate_inode_pages_final, truncate_inode_pages_range, ulong_arg, unregisterMapping,
  type AddressSpace, type AddressSpaceOperations, type File, type FileOperations, type FileOwner, type Folio,
  type Iattr, type InodeOperations, type Kernel, type Task, type VmAreaStruct, type VmFault, type VmOperationsStruct,
} from '@cocosim/mm';
import {
  KVM_FILTER_PRIVATE, KVM_FILTER_SHARED, KVM_MEMSLOT_GMEM_ONLY, kvm_arch_has_private_mem, kvm_slot_has_gmem,
  type Kvm, type KvmGfnRange, type KvmMemorySlot,
} from './kvm_host.js';
import { kvm_get_kvm, kvm_put_kvm } from './kvm_main.js';
import { gfn_to_memslot } from './kvm_memslots.js';
import { kvm_range_has_memory_attributes } from './kvm_mem_attributes.js';
import { kvm_flush_remote_tlbs, kvm_mmu_invalidate_begin, kvm_mmu_invalidate_end, kvm_mmu_unmap_gfn_range } from './mmu/mmu.js';
import { GUEST_MEMFD_FLAG_INIT_SHARED, GUEST_MEMFD_FLAG_MMAP, KVM_MEMORY_ATTRIBUTE_PRIVATE } from './uapi.js';
import { ENOIOCTLCMD, KVM_HOOK_DEFAULT, call_kvm_hook, kvm_hook_gmem_get_folio, kvm_hook_gmem_ioctl, kvm_private_store } from './kvm_hooks.js';

/** S_IRUSR | S_IWUSR: alloc_anon_inode()'s permission bits. */
const GMEM_INODE_PERM = 0o600;

/* ---- the inode and file private structures ---- */

/**
 * What 6.18 keeps per guest_memfd inode (the flags in inode->i_private, the files in
 * mapping->i_private_list; later kernels' struct gmem_inode): the storage, shared by every file
 * open on it.
 */
export class GmemInode {
  /** The files (one per VM view) open on the inode, as kvm_gmem_for_each_file() walks them. */
  readonly gmem_file_list = new Set<GmemFile>();

  constructor(
    readonly kernel: Kernel,
    /** GMEM_I(inode)->flags: the GUEST_MEMFD_FLAG_* given to KVM_CREATE_GUEST_MEMFD. */
    readonly flags: number,
    /**
     * The VM that created the inode. kvm_arch_gmem_invalidate() takes no VM; cocosim's vendor hook
     * does, and gets this one (possibly destroyed by then, as the folios outlive the VM file).
     */
    readonly kvm: Kvm,
  ) {}
}

/** struct gmem_file (6.18: struct kvm_gmem), file->private_data: one VM's view of the inode. */
export class GmemFile {
  /**
   * f->bindings: file page index -> the memslot bound there. The kernel's xarray holds one entry
   * per index; bound ranges are whole slots, so a range tree holds one entry per slot.
   */
  readonly bindings = new MapleTree<KvmMemorySlot>();

  constructor(readonly kvm: Kvm, readonly inode: Inode) {}
}

/** GMEM_I(): the gmem_inode of a guest_memfd inode. */
export function GMEM_I(inode: Inode): GmemInode {
  return inode.i_private as GmemInode;
}

/** kvm_gmem_for_each_file(). */
function kvm_gmem_for_each_file(inode: Inode): Iterable<GmemFile> {
  return GMEM_I(inode).gmem_file_list;
}

/* ---- folios ---- */

/** folio_file_pfn(): the pfn of the page of `folio` that holds file index `index`. */
function folio_file_pfn(kernel: Kernel, folio: Folio, index: number): number {
  return folio + (index % folio_nr_pages(kernel.store, folio));
}

/** kvm_gmem_get_index(): the file page index behind `gfn` of a bound slot. */
export function kvm_gmem_get_index(slot: KvmMemorySlot, gfn: number): number {
  return gfn - slot.base_gfn + slot.gmem.pgoff;
}

const PAGE_ZERO_4K = costId('page_zero_4k');

/** clear_highpage() of every page of the folio, charged as page_zero_4k each. */
function kvm_gmem_clear_folio(kernel: Kernel, folio: Folio): void {
  const nr = folio_nr_pages(kernel.store, folio);
  for (let i = 0; i < nr; i++) kernel.phys.clear((folio + i) as Pfn);
  kernel.cost.chargeId(PAGE_ZERO_4K, nr);
}

/**
 * __kvm_gmem_prepare_folio(): kvm_arch_gmem_prepare() (x86: kvm_x86_ops.gmem_prepare) for the
 * folio holding file index `index`; an error is reported and returned.
 */
function __kvm_gmem_prepare_folio(kvm: Kvm, slot: KvmMemorySlot, index: number, folio: Folio): number {
  const kernel = kvm.kernel;
  const pfn = folio_file_pfn(kernel, folio, index);
  const gfn = slot.base_gfn + index - slot.gmem.pgoff;
  const rc = kvm.x86_ops.gmem_prepare(kvm, pfn, gfn, folio_order(kernel.store, folio));
  if (rc) {
    pr_warn(kernel, `gmem: Failed to prepare folio for index ${index.toString(16)} GFN ${gfn.toString(16)} PFN ${pfn.toString(16)} error ${rc}.`);
    return rc;
  }
  return 0;
}

/**
 * kvm_gmem_prepare_folio() (6.18): the guest sees a zero page, prepared by the vendor, and the
 * folio is marked uptodate (kvm_gmem_mark_prepared()) only if that succeeded.
 */
function kvm_gmem_prepare_folio(kvm: Kvm, slot: KvmMemorySlot, gfn: number, folio: Folio): number {
  const kernel = kvm.kernel;
  const nr = folio_nr_pages(kernel.store, folio);
  kvm_gmem_clear_folio(kernel, folio);
  kernel.warn.WARN_ON(slot.gmem.pgoff % nr !== 0, 'kvm_gmem_prepare_folio: slot pgoff not aligned to the folio');
  let index = kvm_gmem_get_index(slot, gfn);
  index -= index % nr;
  const r = __kvm_gmem_prepare_folio(kvm, slot, index, folio);
  if (!r) folio_mark_uptodate(kernel.store, folio);
  return r;
}

/**
 * kvm_gmem_get_folio() (6.18: filemap_grab_folio()): the folio at `index`, marked accessed, or a
 * new one (not zeroed, not uptodate) if absent.
 * @returns the folio, locked and with a reference, or ERR_PTR(-ENOMEM).
 */
export function kvm_gmem_get_folio(inode: Inode, index: number): Folio | ErrPtr {
  const kernel = GMEM_I(inode).kernel;
  const design = kvm_hook_gmem_get_folio(kernel, inode, index);
  if (design !== undefined) return design;
  return __filemap_get_folio(kernel, inode.i_mapping, index, FGP_LOCK | FGP_ACCESSED | FGP_CREAT, inode.i_mapping.gfp_mask);
}

/* ---- invalidation of the guest's mappings ---- */

/**
 * kvm_gmem_get_invalidate_filter(): memory created shared (INIT_SHARED) is mapped by shared
 * SPTEs, the rest by private ones; a design tracking attributes per page answers for file pages
 * [start, end) (the in-place conversion series' filter "from memory attributes").
 */
function kvm_gmem_get_invalidate_filter(inode: Inode, start: number, end: number): number {
  const design = call_kvm_hook(GMEM_I(inode).kernel, 'gmem_invalidate_filter', 0, inode, start, end);
  if (design) return design;
  return GMEM_I(inode).flags & GUEST_MEMFD_FLAG_INIT_SHARED ? KVM_FILTER_SHARED : KVM_FILTER_PRIVATE;
}

/**
 * __kvm_gmem_invalidate_begin(): zap the guest mappings of every slot bound to file pages
 * [start, end) of this file, inside an MMU invalidation (begun only if some slot is bound there).
 */
function __kvm_gmem_invalidate_begin(f: GmemFile, start: number, end: number, attr_filter: number): void {
  const kvm = f.kvm;
  const tracer = kvm.kernel.tracer;
  let flush = false;
  let found_memslot = false;
  f.bindings.mt_for_each(start, end - 1, (slot) => {
    const pgoff = slot.gmem.pgoff;
    const range: KvmGfnRange = {
      start: slot.base_gfn + Math.max(pgoff, start) - pgoff,
      end: slot.base_gfn + Math.min(pgoff + slot.npages, end) - pgoff,
      slot,
      may_block: true,
      attr_filter,
    };
    if (!found_memslot) {
      found_memslot = true;
      kvm_mmu_invalidate_begin(kvm);
    }
    if (tracer.enabled('cocosim_kvm_gmem_invalidate')) {
      tracer.emit('cocosim_kvm_gmem_invalidate', {
        ino: f.inode.i_ino, slot: slot.id, start: range.start as Gfn, end: range.end as Gfn, attr_filter,
      });
    }
    flush = kvm_mmu_unmap_gfn_range(kvm, range) || flush;
  });
  if (flush) kvm_flush_remote_tlbs(kvm);
}

/**
 * kvm_gmem_invalidate_begin(): file pages [start, end) of the inode are going away (or poisoned):
 * every VM's file unmaps them from its guest.
 */
export function kvm_gmem_invalidate_begin(inode: Inode, start: number, end: number): void {
  const attr_filter = kvm_gmem_get_invalidate_filter(inode, start, end);
  for (const f of kvm_gmem_for_each_file(inode)) __kvm_gmem_invalidate_begin(f, start, end, attr_filter);
}

/** __kvm_gmem_invalidate_end(): close the MMU invalidation if begin opened one (a binding is there). */
function __kvm_gmem_invalidate_end(f: GmemFile, start: number, end: number): void {
  if (f.bindings.mt_find(start, end - 1) !== undefined) kvm_mmu_invalidate_end(f.kvm);
}

/** kvm_gmem_invalidate_end(). */
export function kvm_gmem_invalidate_end(inode: Inode, start: number, end: number): void {
  for (const f of kvm_gmem_for_each_file(inode)) __kvm_gmem_invalidate_end(f, start, end);
}

/* ---- fallocate ---- */

/** An exclusive end index for a byte end that may lie beyond any index (end >> PAGE_SHIFT, capped). */
function pos_to_end_index(pos: bigint): number {
  const index = pos >> BigInt(PAGE_SHIFT);
  return index > BigInt(MT_MAX) ? MT_MAX : Number(index);
}

/**
 * kvm_gmem_punch_hole(): unmap [offset, offset + len) from every guest, then free the folios
 * (host user mappings of them go with them: truncation unmaps a mapped folio). Always 0, even
 * wholly beyond i_size. The memory read afterwards is new, zeroed, memory.
 */
function kvm_gmem_punch_hole(inode: Inode, offset: bigint, len: bigint): number {
  const kernel = GMEM_I(inode).kernel;
  const start = pos_to_end_index(offset);
  const end = pos_to_end_index(offset + len);
  kvm_gmem_invalidate_begin(inode, start, end);
  truncate_inode_pages_range(kernel, inode.i_mapping, offset, offset + len - 1n);
  kvm_gmem_invalidate_end(inode, start, end);
  return 0;
}

/**
 * kvm_gmem_allocate(): allocate (not zero) every page of [offset, offset + len), which must lie
 * within i_size (-EINVAL: "Dedicated guest is immutable by default"). An allocation failure stops
 * the loop with -ENOMEM and keeps the pages allocated so far, as the kernel does.
 */
function kvm_gmem_allocate(inode: Inode, offset: bigint, len: bigint): number {
  const store = GMEM_I(inode).kernel.store;
  if (offset + len > inode.i_size) return -Errno.EINVAL;
  const end = Number((offset + len) >> BigInt(PAGE_SHIFT));
  let r = 0;
  for (let index = Number(offset >> BigInt(PAGE_SHIFT)); index < end;) {
    const folio = kvm_gmem_get_folio(inode, index);
    if (IS_ERR(folio)) {
      r = PTR_ERR(folio);
      break;
    }
    index = store.index[store.idx(folio)] + folio_nr_pages(store, folio);
    folio_unlock(store, folio);
    folio_put(store, folio);
  }
  return r;
}

/**
 * kvm_gmem_fallocate(), after vfs_fallocate()'s checks: FALLOC_FL_KEEP_SIZE is required, and
 * PUNCH_HOLE is the only other mode (-EOPNOTSUPP), on page-aligned offset and length (-EINVAL).
 */
function kvm_gmem_fallocate(file: File, mode: number, offset: bigint, len: bigint): number {
  if (!(mode & FALLOC_FL_KEEP_SIZE)) return -Errno.EOPNOTSUPP;
  if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)) return -Errno.EOPNOTSUPP;
  if (offset % BigInt(PAGE_SIZE) !== 0n || len % BigInt(PAGE_SIZE) !== 0n) return -Errno.EINVAL;
  const design = call_kvm_hook(GMEM_I(file.f_inode).kernel, 'gmem_fallocate', 0, file, mode, offset, len);
  if (design) return design;
  if (mode & FALLOC_FL_PUNCH_HOLE) return kvm_gmem_punch_hole(file.f_inode, offset, len);
  return kvm_gmem_allocate(file.f_inode, offset, len);
}

/* ---- release ---- */

/**
 * kvm_gmem_release(): the last reference to the file went. Every memslot bound through it loses
 * its file (a later guest fault there is -EFAULT), the guest's mappings of it are zapped, and the
 * file's VM reference goes; the memory stays with the inode, which goes with its last file.
 */
function kvm_gmem_release(inode: Inode, file: File): void {
  const f = file.private_data as GmemFile;
  const kvm = f.kvm;
  let nr_bindings = 0;
  f.bindings.mt_for_each(0, MT_MAX, (slot) => {
    slot.gmem.file = null;
    nr_bindings++;
  });
  const tracer = kvm.kernel.tracer;
  if (tracer.enabled('cocosim_kvm_gmem_release')) tracer.emit('cocosim_kvm_gmem_release', { ino: inode.i_ino, nr_bindings });
  /* "Zap all SPTEs pointed at by this file. Do not free the backing memory..." */
  __kvm_gmem_invalidate_begin(f, 0, MT_MAX, kvm_gmem_get_invalidate_filter(inode, 0, MT_MAX));
  __kvm_gmem_invalidate_end(f, 0, MT_MAX);
  GMEM_I(inode).gmem_file_list.delete(f);
  f.bindings.mtree_destroy();
  kvm_put_kvm(kvm);
  /* __fput(): dput() -> iput() of the file's inode */
  iput(inode, kvm_gmem_evict_inode);
}

/**
 * evict(): the last reference to the inode went: its page cache is freed (each folio through
 * kvm_gmem_free_folio()).
 */
function kvm_gmem_evict_inode(inode: Inode): void {
  const kernel = GMEM_I(inode).kernel;
  call_kvm_hook(kernel, 'gmem_evict_inode', 0, inode);
  truncate_inode_pages_final(kernel, inode.i_mapping);
  unregisterMapping(kernel.store, inode.i_mapping);
}

/**
 * kvm_gmem_get_file(): the slot's file if it is still open (get_file_active(): a file whose last
 * reference went is gone even before kvm_gmem_release() clears the slot's pointer).
 */
function kvm_gmem_get_file(slot: KvmMemorySlot): File | null {
  const file = slot.gmem.file;
  return file !== null && file.f_count > 0 ? file : null;
}

/* ---- mmap ---- */

/** kvm_gmem_supports_mmap(). */
function kvm_gmem_supports_mmap(inode: Inode): boolean {
  return (GMEM_I(inode).flags & GUEST_MEMFD_FLAG_MMAP) !== 0;
}

/** vmf_error() (include/linux/mm.h). */
function vmf_error(err: number): number {
  return err === -Errno.ENOMEM ? VM_FAULT_OOM : VM_FAULT_SIGBUS;
}

const MAX_SAFE_SIZE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * (pgoff << PAGE_SHIFT) >= i_size, in number arithmetic while the size is exact as a number (any
 * real one): bigints would be allocated on every fault of the mapping.
 */
function pgoff_beyond_size(pgoff: number, i_size: bigint): boolean {
  return i_size <= MAX_SAFE_SIZE ? pgoff * PAGE_SIZE >= Number(i_size) : BigInt(pgoff) << BigInt(PAGE_SHIFT) >= i_size;
}

/**
 * kvm_gmem_fault_user_mapping(): a host fault on an mmap()ed guest_memfd. SIGBUS beyond i_size
 * and for private memory (kvm_gmem_get_attributes(): in 6.18, memory not created INIT_SHARED);
 * otherwise the folio, allocated and zeroed on first touch, is mapped.
 */
function kvm_gmem_fault_user_mapping(vmf: VmFault): number {
  const inode = vmf.vma.vm_file!.f_inode;
  const gi = GMEM_I(inode);
  const store = gi.kernel.store;
  if (pgoff_beyond_size(vmf.pgoff, inode.i_size)) return VM_FAULT_SIGBUS;
  if (kvm_gmem_get_attributes(inode, vmf.pgoff) & KVM_MEMORY_ATTRIBUTE_PRIVATE) return VM_FAULT_SIGBUS;
  const folio = kvm_gmem_get_folio(inode, vmf.pgoff);
  if (IS_ERR(folio)) return PTR_ERR(folio) === -Errno.EAGAIN ? VM_FAULT_RETRY : vmf_error(PTR_ERR(folio));
  if (gi.kernel.warn.WARN_ON_ONCE(folio_test_large(store, folio), 'kvm_gmem_fault_user_mapping')) {
    folio_unlock(store, folio);
    folio_put(store, folio);
    return VM_FAULT_SIGBUS;
  }
  if (!folio_test_uptodate(store, folio)) {
    kvm_gmem_clear_folio(gi.kernel, folio);
    folio_mark_uptodate(store, folio);
  }
  vmf.page = folio_file_page(store, folio, vmf.pgoff) as Pfn;
  return VM_FAULT_LOCKED;
}

/**
 * The memory attributes of page `index` of a guest_memfd inode, as its host fault handler sees
 * them: in 6.18 a guest_memfd is all shared (INIT_SHARED) or all private; a design may track
 * them per page (the in-place conversion series' kvm_gmem_get_attributes()).
 */
export function kvm_gmem_get_attributes(inode: Inode, index: number): number {
  const gi = GMEM_I(inode);
  const design = call_kvm_hook(gi.kernel, 'gmem_get_attributes', KVM_HOOK_DEFAULT, inode, index);
  if (design !== KVM_HOOK_DEFAULT) return design;
  return gi.flags & GUEST_MEMFD_FLAG_INIT_SHARED ? 0 : KVM_MEMORY_ATTRIBUTE_PRIVATE;
}

/** kvm_gmem_vm_ops (without CONFIG_NUMA's get_policy/set_policy). */
const kvm_gmem_vm_ops: VmOperationsStruct = {
  fault: kvm_gmem_fault_user_mapping,
};

/**
 * kvm_gmem_mmap(): only a file created with GUEST_MEMFD_FLAG_MMAP (-ENODEV), only shared
 * (-EINVAL: "Copy-on-write not allowed by guest_memfd"). Mapping past i_size is allowed; faults
 * there SIGBUS.
 */
function kvm_gmem_mmap(file: File, v: unknown): number {
  const vma = v as VmAreaStruct;
  if (!kvm_gmem_supports_mmap(file.f_inode)) return -Errno.ENODEV;
  if ((vma.vm_flags & (VM_SHARED | VM_MAYSHARE)) !== (VM_SHARED | VM_MAYSHARE)) return -Errno.EINVAL;
  vma.vm_ops = kvm_gmem_vm_ops;
  return 0;
}

/**
 * kvm_gmem_ioctl(): 6.18's guest_memfd has no ioctl (vfs_ioctl()'s -ENOTTY); a design adds its
 * own through the gmem_ioctl hook (the in-place conversion series' KVM_SET_MEMORY_ATTRIBUTES2).
 */
function kvm_gmem_ioctl(file: File, cmd: number, arg: unknown, current: FileOwner): number {
  return kvm_hook_gmem_ioctl(GMEM_I(file.f_inode).kernel, file, cmd, arg, current);
}

/**
 * kvm_gmem_fops: no read, write or llseek, so read/write are -EINVAL, pread/pwrite and lseek
 * -ESPIPE (alloc_file_pseudo() gives no FMODE_PREAD/FMODE_LSEEK); ioctl is kvm_gmem_ioctl().
 */
export const kvm_gmem_fops: FileOperations = {
  mmap: kvm_gmem_mmap,
  release: kvm_gmem_release,
  fallocate: kvm_gmem_fallocate,
  unlocked_ioctl: kvm_gmem_ioctl,
};

/** file_is_kvm_gmem(): `file` is a guest_memfd. */
export function file_is_kvm_gmem(file: File): boolean {
  return file.f_op === kvm_gmem_fops;
}

/* ---- address_space and inode operations ---- */

/** kvm_gmem_migrate_folio(): never called (the mapping is inaccessible, hence unmovable). */
function kvm_gmem_migrate_folio(mapping: AddressSpace): number {
  GMEM_I(mapping.host).kernel.warn.WARN_ON_ONCE(true, 'kvm_gmem_migrate_folio');
  return -Errno.EINVAL;
}

/**
 * kvm_gmem_error_folio(): memory-failure hit a guest_memfd folio. The guest's mappings of it are
 * zapped but the folio stays (userspace decides; the guest's next fault is -EHWPOISON). Returns
 * MF_DELAYED, which truncate_error_folio() reports as a failed punch.
 */
function kvm_gmem_error_folio(mapping: AddressSpace, folio: Folio): number {
  const store = GMEM_I(mapping.host).kernel.store;
  const start = store.index[store.idx(folio)];
  const end = start + folio_nr_pages(store, folio);
  kvm_gmem_invalidate_begin(mapping.host, start, end);
  kvm_gmem_invalidate_end(mapping.host, start, end);
  return MF_DELAYED;
}

/**
 * kvm_gmem_aops. free_folio (CONFIG_HAVE_KVM_ARCH_GMEM_INVALIDATE): a folio leaving the page
 * cache goes back to the vendor first (kvm_gmem_free_folio() -> kvm_arch_gmem_invalidate()).
 */
function kvm_gmem_aops(inode: Inode): AddressSpaceOperations {
  return {
    dirty_folio: () => false,
    migrate_folio: (mapping) => kvm_gmem_migrate_folio(mapping),
    error_remove_folio: kvm_gmem_error_folio,
    free_folio: (folio) => kvm_gmem_free_folio(inode, folio),
  };
}

/** kvm_gmem_free_folio(): kvm_arch_gmem_invalidate(pfn, pfn + nr) for the folio's pages. */
function kvm_gmem_free_folio(inode: Inode, folio: Folio): void {
  const gi = GMEM_I(inode);
  gi.kvm.x86_ops.gmem_invalidate(gi.kvm, folio, folio + folio_nr_pages(gi.kernel.store, folio));
}

/** kvm_gmem_setattr(): the size (and mode, owner...) never changes: ftruncate, fchmod are -EINVAL. */
function kvm_gmem_setattr(_inode: Inode, _attr: Iattr): number {
  return -Errno.EINVAL;
}

/** kvm_gmem_iops: no getattr, so fstat is generic_fillattr(): st_blocks stays 0 (nothing accounts it). */
const kvm_gmem_iops: InodeOperations = {
  setattr: kvm_gmem_setattr,
};

/* ---- KVM_CREATE_GUEST_MEMFD ---- */

/**
 * kvm_gmem_get_supported_flags(): MMAP always; INIT_SHARED on /dev/kvm and where
 * kvm_arch_supports_gmem_init_shared() (x86: VMs without private memory).
 */
export function kvm_gmem_get_supported_flags(kvm: Kvm | undefined): number {
  let flags = GUEST_MEMFD_FLAG_MMAP;
  if (kvm !== undefined) flags |= call_kvm_hook(kvm.kernel, 'gmem_supported_flags', 0, kvm);
  if (kvm === undefined || !kvm_arch_has_private_mem(kvm)) flags |= GUEST_MEMFD_FLAG_INIT_SHARED;
  return flags;
}

/**
 * __kvm_gmem_create(): a new anonymous inode (anon_inode_create_getfile("[kvm-gmem]"): its own
 * inode, on a noexec file system), S_IFREG, i_size fixed, GFP_HIGHUSER, inaccessible and unevictable; its file O_RDWR |
 * O_LARGEFILE at a new fd without O_CLOEXEC (-EMFILE first), holding a VM reference.
 */
function __kvm_gmem_create(kvm: Kvm, size: bigint, flags: number, current: FileOwner): number {
  const kernel = kvm.kernel;
  const fd = current.files.get_unused_fd();
  if (fd < 0) return fd;
  const inode = new Inode(kernel.get_next_ino(), S_IFREG | GMEM_INODE_PERM, kvm_gmem_iops, {}, kernel.next_mapping_id());
  inode.i_sb_iflags = SB_I_NOEXEC | SB_I_NODEV;
  /* anon_inode_make_secure_inode() -> alloc_anon_inode(): S_PRIVATE | S_ANON_INODE */
  inode.i_flags |= S_ANON_INODE;
  inode.i_nlink = 0;
  inode.i_size = size;
  inode.i_private = new GmemInode(kernel, flags, kvm);
  const mapping = inode.i_mapping;
  mapping.a_ops = kvm_gmem_aops(inode);
  mapping.gfp_mask = GFP_HIGHUSER;
  mapping.mapping_set_inaccessible();
  /* "Unmovable mappings are supposed to be marked unevictable as well." */
  kernel.warn.WARN_ON_ONCE(!mapping.mapping_unevictable(), '__kvm_gmem_create');
  registerMapping(kernel.store, mapping);
  const file = alloc_file_pseudo(inode, O_RDWR, kvm_gmem_fops);
  file.f_flags |= O_LARGEFILE;
  const f = new GmemFile(kvm, inode);
  file.private_data = f;
  kvm_get_kvm(kvm);
  GMEM_I(inode).gmem_file_list.add(f);
  current.files.fd_install(fd, file, false);
  if (kernel.tracer.enabled('cocosim_kvm_gmem_create')) kernel.tracer.emit('cocosim_kvm_gmem_create', { ino: inode.i_ino, size, flags, fd });
  return fd;
}

/** A __u64 field of an ioctl struct as C holds it; a missing field is 0 (the struct was zeroed). */
function u64_field(arg: object, name: string): bigint | undefined {
  const v = (arg as Record<string, unknown>)[name];
  return v === undefined ? 0n : ulong_arg(v);
}

/**
 * kvm_gmem_create(): KVM_CREATE_GUEST_MEMFD (struct kvm_create_guest_memfd). -EFAULT for an
 * argument that is no struct, -EINVAL for flags outside kvm_gmem_get_supported_flags(), then for a
 * size (a loff_t) that is not positive and page aligned; reserved[] is not checked.
 * @returns the new fd or -errno
 */
export function kvm_gmem_create(kvm: Kvm, arg: unknown, current: FileOwner): number {
  if (typeof arg !== 'object' || arg === null) return -Errno.EFAULT;
  const design = call_kvm_hook(kvm.kernel, 'gmem_create', -ENOIOCTLCMD, kvm, arg, current);
  if (design !== -ENOIOCTLCMD) return design;
  const flags = u64_field(arg, 'flags');
  if (flags === undefined || (flags & ~BigInt(kvm_gmem_get_supported_flags(kvm))) !== 0n) return -Errno.EINVAL;
  const u_size = u64_field(arg, 'size');
  if (u_size === undefined) return -Errno.EINVAL;
  const size = BigInt.asIntN(64, u_size);
  if (size <= 0n || size % BigInt(PAGE_SIZE) !== 0n) return -Errno.EINVAL;
  return __kvm_gmem_create(kvm, size, Number(flags), current);
}

/* ---- memslot bindings ---- */

/**
 * The task whose fd table a bind looks the fd up in, when the caller has not passed `current`:
 * the VM ioctl runs in a task of kvm->mm (kvm_vm_ioctl() refuses any other), the first such.
 */
function kvm_current(kvm: Kvm): FileOwner | undefined {
  return for_each_process(kvm.kernel).find((t: Task) => task_mm(t) === kvm.mm);
}

/**
 * kvm_gmem_bind(): bind a new memslot to file pages [offset >> PAGE_SHIFT, + npages). In the
 * kernel's order: -EBADF for an fd that is not open, -EINVAL for a file that is no guest_memfd,
 * one of another VM, an offset that is negative (as a loff_t), unaligned or puts the slot past
 * i_size, or a range that overlaps another binding of the file. The slot does not hold the file;
 * an MMAP file makes the slot KVM_MEMSLOT_GMEM_ONLY (shared faults use guest_memfd too).
 * @param fd the __u32 guest_memfd field; @param offset guest_memfd_offset (a __u64, read as loff_t)
 */
export function kvm_gmem_bind(kvm: Kvm, slot: KvmMemorySlot, fd: number | bigint, offset: bigint, current?: FileOwner): number {
  const size = BigInt(slot.npages) << BigInt(PAGE_SHIFT);
  const ufd = ulong_arg(fd);
  const owner = current ?? kvm_current(kvm);
  /* fget(unsigned int fd) */
  const file = ufd === undefined || owner === undefined ? undefined : owner.files.lookup(Number(BigInt.asUintN(32, ufd)));
  if (file === undefined) return -Errno.EBADF;
  const pstore = kvm_private_store(file);
  if (pstore !== undefined) return pstore.bind(kvm, slot, file, offset);
  if (!file_is_kvm_gmem(file)) return -Errno.EINVAL;
  const f = file.private_data as GmemFile;
  if (f.kvm !== kvm) return -Errno.EINVAL;
  const inode = file.f_inode;
  const loff = BigInt.asIntN(64, offset);
  if (loff < 0n || loff % BigInt(PAGE_SIZE) !== 0n || loff + size > inode.i_size) return -Errno.EINVAL;
  const start = Number(loff >> BigInt(PAGE_SHIFT));
  const end = start + slot.npages;
  if (f.bindings.mt_find(start, end - 1) !== undefined) return -Errno.EINVAL;
  slot.gmem.file = file;
  slot.gmem.pgoff = start;
  if (kvm_gmem_supports_mmap(inode)) slot.flags |= KVM_MEMSLOT_GMEM_ONLY;
  f.bindings.mtree_store_range(start, end - 1, slot);
  const tracer = kvm.kernel.tracer;
  if (tracer.enabled('cocosim_kvm_gmem_bind')) {
    tracer.emit('cocosim_kvm_gmem_bind', { ino: inode.i_ino, slot: slot.id, base_gfn: slot.base_gfn as Gfn, npages: slot.npages, pgoff: start as PgOff });
  }
  return 0;
}

/**
 * kvm_gmem_unbind(): the slot is being deleted; its file range can be bound again. Nothing to do
 * if the file was closed already (kvm_gmem_release() dropped every binding).
 */
export function kvm_gmem_unbind(slot: KvmMemorySlot): void {
  const file = slot.gmem.file;
  if (file === null) return;
  const pstore = kvm_private_store(file);
  if (pstore !== undefined) return pstore.unbind(slot);
  const f = file.private_data as GmemFile;
  const start = slot.gmem.pgoff;
  f.bindings.mtree_store_range(start, start + slot.npages - 1, null);
  slot.gmem.file = null;
  const tracer = f.kvm.kernel.tracer;
  if (tracer.enabled('cocosim_kvm_gmem_unbind')) {
    tracer.emit('cocosim_kvm_gmem_unbind', { ino: file.f_inode.i_ino, slot: slot.id, pgoff: start as PgOff, npages: slot.npages });
  }
}

/* ---- the guest's pfns ---- */

/** What kvm_gmem_get_pfn() hands the MMU: the pfn and the largest mapping order it allows. */
export interface KvmGmemPfn {
  readonly pfn: number;
  readonly max_order: number;
}

/** A locked, referenced folio and the pfn for `index`, or the error of __kvm_gmem_get_pfn(). */
interface GmemFolio {
  readonly folio: Folio;
  readonly pfn: number;
  readonly is_prepared: boolean;
}

/**
 * __kvm_gmem_get_pfn(): -EFAULT if `file` is not the slot's, -EIO if the slot is not the one
 * bound at `index` (a WARN if another is), the folio's allocation error, -EHWPOISON for a
 * poisoned folio. is_prepared: the folio is uptodate.
 */
function __kvm_gmem_get_pfn(file: File, slot: KvmMemorySlot, index: number): GmemFolio | number {
  const f = file.private_data as GmemFile;
  const kernel = f.kvm.kernel;
  const store = kernel.store;
  if (file !== slot.gmem.file) {
    kernel.warn.WARN_ON_ONCE(slot.gmem.file !== null, '__kvm_gmem_get_pfn: file');
    return -Errno.EFAULT;
  }
  const bound = f.bindings.mtree_load(index);
  if (bound !== slot) {
    kernel.warn.WARN_ON_ONCE(bound !== undefined, '__kvm_gmem_get_pfn: binding');
    return -Errno.EIO;
  }
  const folio = kvm_gmem_get_folio(file.f_inode, index);
  if (IS_ERR(folio)) return PTR_ERR(folio);
  if (folio_test_hwpoison(store, folio)) {
    folio_unlock(store, folio);
    folio_put(store, folio);
    return -Errno.EHWPOISON;
  }
  return { folio, pfn: folio_file_pfn(kernel, folio, index), is_prepared: folio_test_uptodate(store, folio) };
}

/**
 * kvm_gmem_get_pfn(): the pfn backing `gfn` of a guest_memfd slot, for a guest fault. -EFAULT when
 * the slot's file is closed, else __kvm_gmem_get_pfn()'s errors; a folio not yet uptodate is
 * zeroed, prepared by the vendor (its error is returned) and marked uptodate. max_order is the
 * folio's order (0 for the base's order-0 folios). The kernel hands the page back referenced until the SPTE is installed
 * (kvm_release_faultin_page()); that reference is dropped here, since nothing runs in between.
 */
export function kvm_gmem_get_pfn(kvm: Kvm, slot: KvmMemorySlot, gfn: number): KvmGmemPfn | number {
  const pstore = kvm_private_store(slot.gmem.file);
  if (pstore !== undefined) return pstore.get_pfn(kvm, slot, gfn);
  const store = kvm.kernel.store;
  const index = kvm_gmem_get_index(slot, gfn);
  const file = kvm_gmem_get_file(slot);
  let r: number;
  let got: GmemFolio | number = -Errno.EFAULT;
  if (file === null) {
    r = -Errno.EFAULT;
  } else {
    got = __kvm_gmem_get_pfn(file, slot, index);
    if (typeof got === 'number') {
      r = got;
    } else {
      const design = call_kvm_hook(kvm.kernel, 'gmem_prepare_folio', -ENOIOCTLCMD, kvm, slot, gfn, got.folio, got.is_prepared);
      r = design !== -ENOIOCTLCMD ? design : got.is_prepared ? 0 : kvm_gmem_prepare_folio(kvm, slot, gfn, got.folio);
      folio_unlock(store, got.folio);
      folio_put(store, got.folio);
    }
  }
  const tracer = kvm.kernel.tracer;
  if (tracer.enabled('cocosim_kvm_gmem_get_pfn')) {
    tracer.emit('cocosim_kvm_gmem_get_pfn', {
      gfn: gfn as Gfn, index: index as PgOff, pfn: typeof got === 'number' || r ? -1 : got.pfn,
      prepared: typeof got !== 'number' && !got.is_prepared && r === 0, ret: r,
    });
  }
  if (r) return r;
  return { pfn: (got as GmemFolio).pfn, max_order: folio_order(store, (got as GmemFolio).folio) };
}

/**
 * The post_populate callback of kvm_gmem_populate() (kvm_gmem_populate_cb): the vendor fills the
 * page at `pfn` for `gfn`, from `src` (one page of the user's source buffer; shorter if the buffer
 * ended there, which the vendor's copy_from_user() turns into -EFAULT) or from nothing.
 * Returns 0 or -errno.
 */
export type KvmGmemPopulateCb = (kvm: Kvm, gfn: number, pfn: number, src: Uint8Array | null, order: number) => number;

/**
 * kvm_gmem_populate() (CONFIG_HAVE_KVM_ARCH_GMEM_POPULATE: SNP and TDX launch flows): hand each
 * page of [start_gfn, start_gfn + npages), clipped to the slot, to `post_populate`, which fills
 * it; it is then uptodate (prepared). -EINVAL for npages < 0 or a gfn not in a guest_memfd slot,
 * -EFAULT if the slot's file is closed; per page: __kvm_gmem_get_pfn()'s errors, -EEXIST for a
 * page already prepared, -EINVAL for a gfn that is not private, the callback's error.
 * @returns the number of pages populated, or the error if the first one failed
 */
export function kvm_gmem_populate(kvm: Kvm, start_gfn: number, src: Uint8Array | null, npages: number, post_populate: KvmGmemPopulateCb): number {
  const r = __kvm_gmem_populate(kvm, start_gfn, src, npages, post_populate);
  const tracer = kvm.kernel.tracer;
  if (tracer.enabled('cocosim_kvm_gmem_populate')) tracer.emit('cocosim_kvm_gmem_populate', { start_gfn: start_gfn as Gfn, npages, ret: r });
  return r;
}

/**
 * kvm_gmem_range_is_private() (the in-place conversion series): whether the `nr_pages` pages
 * from `gfn` (file pages from `index`) are private, as a populate needs them: the VM's memory
 * attributes in 6.18; a design tracking them per file page answers from the file.
 */
function kvm_gmem_range_is_private(file: File, index: number, nr_pages: number, kvm: Kvm, gfn: number): boolean {
  const design = call_kvm_hook(kvm.kernel, 'gmem_range_is_private', KVM_HOOK_DEFAULT, file.f_inode, index, nr_pages);
  if (design !== KVM_HOOK_DEFAULT) return design !== 0;
  return kvm_range_has_memory_attributes(kvm, gfn, gfn + nr_pages, KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_MEMORY_ATTRIBUTE_PRIVATE);
}

function __kvm_gmem_populate(kvm: Kvm, start_gfn: number, src: Uint8Array | null, npages: number, post_populate: KvmGmemPopulateCb): number {
  const store = kvm.kernel.store;
  if (npages < 0) return -Errno.EINVAL;
  const slot = gfn_to_memslot(kvm, start_gfn);
  if (slot === undefined || !kvm_slot_has_gmem(slot)) return -Errno.EINVAL;
  const file = kvm_gmem_get_file(slot);
  if (file === null) return -Errno.EFAULT;
  /* The memfd stores (D5-D7) predate kvm_gmem_populate(): their slots have no guest_memfd to populate. */
  if (kvm_private_store(file) !== undefined) return -Errno.EINVAL;
  npages = Math.min(slot.npages - (start_gfn - slot.base_gfn), npages);
  let ret = 0;
  let i = 0;
  let max_order = 0;
  for (; i < npages; i += 2 ** max_order) {
    const gfn = start_gfn + i;
    const got = __kvm_gmem_get_pfn(file, slot, kvm_gmem_get_index(slot, gfn));
    if (typeof got === 'number') {
      ret = got;
      break;
    }
    max_order = 0;
    if (got.is_prepared) {
      folio_unlock(store, got.folio);
      folio_put(store, got.folio);
      ret = -Errno.EEXIST;
      break;
    }
    folio_unlock(store, got.folio);
    ret = -Errno.EINVAL;
    let private_range = kvm_gmem_range_is_private(file, kvm_gmem_get_index(slot, gfn), 2 ** max_order, kvm, gfn);
    while (!private_range && max_order > 0) {
      max_order--;
      private_range = kvm_gmem_range_is_private(file, kvm_gmem_get_index(slot, gfn), 2 ** max_order, kvm, gfn);
    }
    if (private_range) {
      const p = src === null ? null : src.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE);
      ret = post_populate(kvm, gfn, got.pfn, p, max_order);
      if (!ret) folio_mark_uptodate(store, got.folio);
    }
    folio_put(store, got.folio);
    if (ret) break;
  }
  return ret && !i ? ret : i;
}
