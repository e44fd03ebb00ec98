/**
 * mm/restrictedmem.c (designs.md D7): memfd_restricted(), a new system call of the fd-based
 * series v9/v10 (Chao Peng, Kirill A. Shutemov; Oct/Dec 2022), as in googleprodkernel/linux-cc
 * after v10 (exclusive range bindings). The fd is a file of its own pseudo file system
 * ("memfd:restrictedmem", noexec) wrapping an unlinked shmem file: no read, write or mmap ("the
 * only way to use it is passing it to a third kernel module like KVM"), a size set once, and
 * fallocate() forwarded to the shmem file, a punch notifying the bound users around it.
 *
 * The in-kernel API: restrictedmem_bind() of a file range to a notifier (exclusive, -EINVAL on an
 * overlap), restrictedmem_unbind(), restrictedmem_get_page(). The latter asks shmem with
 * SGP_WRITE, which leaves a new page uncleared, then marks it uptodate: the "SGP_WRITE zeroing
 * bug" Sean Christopherson cites (19 Apr 2023) — a new private page shows what the page allocator
 * left in it.
 */
import { Errno, IS_ERR, MapleTree, PAGE_SIZE, type Pfn } from '@cocosim/core';
import {
  ATTR_SIZE, FALLOC_FL_PUNCH_HOLE, FMODE_LSEEK, FMODE_PREAD, FMODE_PWRITE, Inode, O_LARGEFILE, O_RDWR, SB_I_NOEXEC, S_IFREG, SGP_WRITE,
  VM_NORESERVE, __GFP_MOVABLE, alloc_file_pseudo, folio_file_page, folio_mark_uptodate, folio_put, folio_unlock, int_arg, shmem_file_setup,
  shmem_get_folio, type File, type FileOperations, type FileOwner, type FolioRef, type Iattr, type InodeOperations, type Kernel,
  type Kstat,
} from '@cocosim/mm';

/** struct restrictedmem_notifier_ops: what restrictedmem calls on a bound user. */
export interface RestrictedmemNotifierOps {
  invalidate_start(start: number, end: number): void;
  invalidate_end(start: number, end: number): void;
}

/** struct restrictedmem_notifier. */
export interface RestrictedmemNotifier {
  readonly ops: RestrictedmemNotifierOps;
}

/** struct restrictedmem: the shmem file and the bindings of its ranges, inode->i_mapping->private_data. */
export class Restrictedmem {
  readonly bindings = new MapleTree<RestrictedmemNotifier>();
  exclusive = false;

  constructor(readonly kernel: Kernel, readonly memfd: File) {}
}

const restrictedmem_of = new WeakMap<Inode, Restrictedmem>();

/** The restrictedmem of a restrictedmem file, or undefined (file_is_restrictedmem()). */
export function restrictedmem(file: File): Restrictedmem | undefined {
  return restrictedmem_of.get(file.f_inode);
}

/** restrictedmem_release(): the bindings and the shmem file go with the last reference. */
function restrictedmem_release(inode: Inode, _file: File): void {
  const rm = restrictedmem_of.get(inode)!;
  rm.bindings.mtree_destroy();
  rm.memfd.fput();
}

/**
 * restrictedmem_punch_hole(): page aligned (-EINVAL); every notifier bound in [start, end]
 * hears invalidate_start, the shmem file punches, then invalidate_end.
 */
function restrictedmem_punch_hole(rm: Restrictedmem, mode: number, offset: bigint, len: bigint): number {
  const P = BigInt(PAGE_SIZE);
  if (offset % P !== 0n || len % P !== 0n) return -Errno.EINVAL;
  const start = Number(offset / P);
  const end = Number((offset + len) / P);
  const notified: RestrictedmemNotifier[] = [];
  // xa_for_each_range(&rm->bindings, index, notifier, start, end): one call per bound index.
  rm.bindings.mt_for_each(start, end, (n, first, last) => {
    for (let i = Math.max(first, start); i <= Math.min(last, end); i++) notified.push(n);
  });
  for (const n of notified) n.ops.invalidate_start(start, end);
  const memfd = rm.memfd;
  const ret = memfd.f_op.fallocate!(memfd, mode, offset, len);
  for (const n of notified) n.ops.invalidate_end(start, end);
  return ret;
}

/** restrictedmem_fallocate(): a punch notifies; anything else goes to the shmem file. */
function restrictedmem_fallocate(file: File, mode: number, offset: bigint, len: bigint): number {
  const rm = restrictedmem(file)!;
  if (mode & FALLOC_FL_PUNCH_HOLE) return restrictedmem_punch_hole(rm, mode, offset, len);
  return rm.memfd.f_op.fallocate!(rm.memfd, mode, offset, len);
}

/** restrictedmem_fops: release and fallocate only (read/write -EINVAL, mmap -ENODEV, ioctl -ENOTTY). */
const restrictedmem_fops: FileOperations = {
  release: restrictedmem_release,
  fallocate: restrictedmem_fallocate,
};

/** restrictedmem_getattr(): the shmem file's attributes. */
function restrictedmem_getattr(inode: Inode, stat: Kstat): number {
  const memfd = restrictedmem_of.get(inode)!.memfd;
  return memfd.f_inode.i_op.getattr!(memfd.f_inode, stat);
}

/**
 * restrictedmem_setattr(): a size is set once (-EPERM when the shmem file has one) and page
 * aligned (-EINVAL), on the shmem file.
 */
function restrictedmem_setattr(inode: Inode, attr: Iattr): number {
  const memfd = restrictedmem_of.get(inode)!.memfd;
  if (attr.ia_valid & ATTR_SIZE) {
    if (memfd.f_inode.i_size) return -Errno.EPERM;
    if (attr.ia_size % BigInt(PAGE_SIZE) !== 0n) return -Errno.EINVAL;
  }
  return memfd.f_inode.i_op.setattr!(memfd.f_inode, attr);
}

const restrictedmem_iops: InodeOperations = {
  getattr: restrictedmem_getattr,
  setattr: restrictedmem_setattr,
};

/**
 * restrictedmem_file_create(): an anonymous S_IFREG inode of the noexec restrictedmem file
 * system whose mapping's private data is the restrictedmem, and its O_RDWR | O_LARGEFILE file.
 * The shmem file's pages become unevictable and unmovable ("currently unmovable so don't place
 * them into movable pageblocks").
 */
function restrictedmem_file_create(kernel: Kernel, memfd: File): File {
  const rm = new Restrictedmem(kernel, memfd);
  const inode = new Inode(kernel.get_next_ino(), S_IFREG | 0o600, restrictedmem_iops, restrictedmem_fops, kernel.next_mapping_id());
  inode.i_sb_iflags = SB_I_NOEXEC;
  inode.i_nlink = 0;
  restrictedmem_of.set(inode, rm);
  const file = alloc_file_pseudo(inode, O_RDWR, restrictedmem_fops);
  file.f_flags |= O_LARGEFILE;
  const mapping = memfd.f_mapping;
  // Unevictable, and never migrated: designs.md §1 D7 "migrate_folio -EBUSY", the pages KVM maps
  // cannot move under it. 6.18's inaccessible flag is that pair (its move_to_new_folio() answers
  // -EOPNOTSUPP where the series' migrate_folio answered -EBUSY: either way the page stays).
  mapping.mapping_set_inaccessible();
  mapping.gfp_mask &= ~__GFP_MOVABLE;
  return file;
}

/**
 * SYSCALL_DEFINE1(memfd_restricted, unsigned int, flags): flags must be 0 (-EINVAL), then a free
 * fd (-EMFILE), the shmem file (-ENOMEM), the restrictedmem file; the fd is not O_CLOEXEC
 * (get_unused_fd_flags(0), which Christian Brauner questioned). `on_create` lets the design
 * register the new file as a private-memory store.
 * @returns the fd or -errno
 */
export function sys_memfd_restricted(task: FileOwner & { kernel: Kernel }, uflags: unknown, on_create: (file: File) => void): number {
  const flags = int_arg(uflags);
  if (flags === undefined || flags >>> 0 !== 0) return -Errno.EINVAL;
  const fd = task.files.get_unused_fd();
  if (fd < 0) return fd;
  const memfd = shmem_file_setup(task.kernel, 'memfd:restrictedmem', 0n, VM_NORESERVE);
  if (IS_ERR(memfd)) return memfd.errno;
  memfd.f_mode |= FMODE_LSEEK | FMODE_PREAD | FMODE_PWRITE;
  memfd.f_flags |= O_LARGEFILE;
  const file = restrictedmem_file_create(task.kernel, memfd);
  on_create(file);
  task.files.fd_install(fd, file, false);
  return fd;
}

/**
 * restrictedmem_bind(): bind file pages [start, end] to `notifier`. Only exclusive bindings
 * exist (-EINVAL otherwise), and an exclusive one may not overlap another (-EINVAL).
 */
export function restrictedmem_bind(file: File, start: number, end: number, notifier: RestrictedmemNotifier, exclusive: boolean): number {
  const rm = restrictedmem(file)!;
  // "Non-exclusive mappings are not yet implemented."
  if (!exclusive) return -Errno.EINVAL;
  if (rm.bindings.size) {
    if (exclusive !== rm.exclusive) return -Errno.EINVAL;
    if (rm.bindings.mt_find(start, end) !== undefined) return -Errno.EINVAL;
  }
  rm.bindings.mtree_store_range(start, end, notifier);
  rm.exclusive = exclusive;
  return 0;
}

/** restrictedmem_unbind(). */
export function restrictedmem_unbind(file: File, start: number, end: number): void {
  restrictedmem(file)!.bindings.mtree_erase_range(start, end);
}

/**
 * restrictedmem_get_page(): the page at file page `offset` of the shmem file, allocated if
 * absent (SGP_WRITE: not cleared) and marked uptodate; a WARN if nobody bound the offset
 * (-EINVAL). The caller's reference is dropped here, as KVM drops it once the SPTE is set.
 */
export function restrictedmem_get_page(file: File, offset: number): { pfn: number; max_order: number } | number {
  const rm = restrictedmem(file)!;
  const kernel = rm.kernel;
  if (kernel.warn.WARN_ON_ONCE(rm.bindings.mtree_load(offset) === undefined, 'restrictedmem_get_page')) return -Errno.EINVAL;
  const ref: FolioRef = { folio: null };
  const r = shmem_get_folio(rm.memfd.f_inode, offset, 0n, ref, SGP_WRITE);
  if (r) return r;
  const folio = ref.folio!;
  const store = kernel.store;
  const pfn = folio_file_page(store, folio, offset) as Pfn;
  folio_mark_uptodate(store, folio);
  folio_unlock(store, folio);
  folio_put(store, folio);
  // v10 returned thp_order() of the page; KVM maps these 4 KiB here (see memfd_seal/memfile_notifier.ts).
  return { pfn, max_order: 0 };
}
