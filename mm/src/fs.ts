/**
 * The VFS objects that mm and KVM hang off (include/linux/fs.h): struct inode, struct
 * address_space, struct file and their ops tables. Only what memory management needs: the page
 * cache, mappings, seals' writable-mapping count, file refcounts (a guest_memfd file keeps its VM
 * alive), and the ops that shmem, memfd, guest_memfd and /dev/kvm implement.
 *
 * Ops tables are the kernel's: a file type fills the hooks it has; a missing hook answers as the
 * VFS does without it (vfs_fallocate() gives -EOPNOTSUPP, vfs_ioctl() -ENOTTY, mmap -ENODEV).
 */
import { locks_remove_file, type FileLock } from './locks.js';
import { BUG_ON, Errno, XArray, type PgOff } from '@cocosim/core';
import type { Folio } from './folio.js';
import type { FilesStruct } from './fdtable.js';
import type { SigInfo } from './fault.js';
import type { VmAreaStruct } from './mm_types.js';
import type { FileKattr } from './file_attr.js';

/* include/uapi/asm-generic/fcntl.h (x86-64 and arm64 values) */

/** What an ioctl needs of the calling task: its fd table (avoids a type cycle with process.ts). */
export interface FileOwner {
  readonly files: FilesStruct;
}
export const O_ACCMODE = 0o3;
export const O_RDONLY = 0o0;
export const O_WRONLY = 0o1;
export const O_RDWR = 0o2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_NOCTTY = 0o400;
export const O_TRUNC = 0o1000;
export const O_APPEND = 0o2000;
export const O_NONBLOCK = 0o4000;
export const O_DSYNC = 0o10000;
/** O_SYNC: __O_SYNC (0o4000000) with O_DSYNC. */
export const O_SYNC = 0o4010000;
export const O_DIRECT = 0o40000;
export const O_LARGEFILE = 0o100000;
/** open(2) a path only: no I/O, no device open (do_dentry_open()). */
export const O_PATH = 0o10000000;
export const O_DIRECTORY = 0o200000;
export const O_NOFOLLOW = 0o400000;
export const O_NOATIME = 0o1000000;
export const O_CLOEXEC = 0o2000000;

/* include/linux/fs.h: file->f_mode */
export const FMODE_READ = 0x1;
export const FMODE_WRITE = 0x2;
export const FMODE_LSEEK = 0x4;
export const FMODE_PREAD = 0x8;
export const FMODE_PWRITE = 0x10;
export const FMODE_EXEC = 0x20;
/** An O_PATH file: a reference to a path, not open for I/O (fdget() refuses it). */
export const FMODE_PATH = 0x4000;
export const FMODE_CAN_READ = 0x20000;
export const FMODE_CAN_WRITE = 0x40000;

/* include/uapi/linux/stat.h */
export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFCHR = 0o20000;
export const S_IFDIR = 0o40000;
export const S_IXUGO = 0o111;

/* include/linux/pagemap.h: enum mapping_flags (the bits mm and guest_memfd use) */
export const AS_EIO = 0;
export const AS_ENOSPC = 1;
export const AS_MM_ALL_LOCKS = 2;
export const AS_UNEVICTABLE = 3;
export const AS_EXITING = 4;
export const AS_NO_WRITEBACK_TAGS = 5;
export const AS_RELEASE_ALWAYS = 6;
export const AS_STABLE_WRITES = 7;
export const AS_INACCESSIBLE = 8;
export const AS_WRITEBACK_MAY_DEADLOCK_ON_RECLAIM = 9;

/** struct iattr, the subset ftruncate needs (include/linux/fs.h). */
export const ATTR_SIZE = 1 << 3;
export interface Iattr {
  ia_valid: number;
  ia_size: bigint;
}

/** struct kstat, the fields fstat reports that cocosim models (include/linux/stat.h). */
export interface Kstat {
  mode: number;
  ino: number;
  nlink: number;
  size: bigint;
  /** 512-byte blocks allocated. */
  blocks: bigint;
  blksize: number;
}

/** A file position passed by reference (`loff_t *ppos`). */
export interface Loff {
  pos: bigint;
}

/**
 * struct address_space_operations, the hooks page-cache users call (include/linux/fs.h).
 * Results are 0 | -errno.
 */
export interface AddressSpaceOperations {
  dirty_folio?(mapping: AddressSpace, folio: Folio): boolean;
  /** Called when a folio leaves the page cache (guest_memfd's free_folio hands it back to the vendor). */
  free_folio?(folio: Folio): void;
  migrate_folio?(mapping: AddressSpace, dst: Folio, src: Folio, mode: number): number;
  /** memory-failure on a page-cache folio (shmem_error_remove_folio, kvm_gmem_error_folio). */
  error_remove_folio?(mapping: AddressSpace, folio: Folio): number;
}

/** struct address_space: a file's page cache and the mappings of it. */
export class AddressSpace {
  /** i_pages: pgoff -> folio head pfn. A large folio is stored at each index it covers. */
  readonly i_pages = new XArray<Folio>();
  /** Pages (not folios) in the cache (mapping->nrpages). */
  nrpages = 0;
  /**
   * i_mmap_writable: > 0 counts VM_SHARED writable mappings, < 0 means new ones are denied
   * (mapping_deny_writable, F_SEAL_WRITE). include/linux/fs.h.
   */
  i_mmap_writable = 0;
  /** i_mmap: the VMAs that map the file (rmap.ts vma_interval_tree_insert() and _remove()). */
  readonly i_mmap = new Set<VmAreaStruct>();
  /** AS_* bits. */
  flags = 0;
  /** Default GFP of page-cache allocations (mapping_gfp_mask). */
  gfp_mask = 0;

  constructor(
    /** The inode whose page cache this is. */
    readonly host: Inode,
    /** Id tagged into folio->mapping (a multiple of 4, page_store.ts). */
    readonly id: number,
    public a_ops: AddressSpaceOperations = {},
  ) {
    BUG_ON(id <= 0 || id % 4 !== 0, 'address_space id must be a positive multiple of 4');
  }

  mapping_set_unevictable(): void {
    this.flags |= 1 << AS_UNEVICTABLE;
  }
  mapping_unevictable(): boolean {
    return (this.flags & (1 << AS_UNEVICTABLE)) !== 0;
  }
  /**
   * mapping_set_inaccessible() (6.18 include/linux/pagemap.h): no direct CPU access to the
   * contents, and so no migration; "inaccessible mappings are also unevictable" (AS_UNEVICTABLE).
   */
  mapping_set_inaccessible(): void {
    this.flags |= (1 << AS_UNEVICTABLE) | (1 << AS_INACCESSIBLE);
  }
  mapping_inaccessible(): boolean {
    return (this.flags & (1 << AS_INACCESSIBLE)) !== 0;
  }

  /** mapping_map_writable(): a new writable shared mapping; -EPERM while writes are denied. */
  mapping_map_writable(): number {
    if (this.i_mmap_writable < 0) return -Errno.EPERM;
    this.i_mmap_writable++;
    return 0;
  }
  mapping_unmap_writable(): void {
    this.i_mmap_writable--;
  }
  /** mapping_deny_writable(): -EBUSY while writable shared mappings exist. */
  mapping_deny_writable(): number {
    if (this.i_mmap_writable > 0) return -Errno.EBUSY;
    this.i_mmap_writable--;
    return 0;
  }
  mapping_allow_writable(): void {
    this.i_mmap_writable++;
  }
  mapping_writably_mapped(): boolean {
    return this.i_mmap_writable > 0;
  }

  /** filemap_get_folio's lookup without side effects: the folio at `index`, if cached. */
  folio_at(index: PgOff): Folio | undefined {
    return this.i_pages.xa_load(index);
  }
}

/** struct inode_operations: the hooks of the attribute paths (ftruncate, fstat). */
export interface InodeOperations {
  setattr?(inode: Inode, attr: Iattr): number;
  getattr?(inode: Inode, stat: Kstat): number;
  /** ->fileattr_get (FS_IOC_GETFLAGS, FS_IOC_FSGETXATTR): 0 or -errno; file_attr.ts. */
  fileattr_get?(inode: Inode, fa: FileKattr): number;
  /** ->fileattr_set (FS_IOC_SETFLAGS, FS_IOC_FSSETXATTR): 0 or -errno. */
  fileattr_set?(inode: Inode, fa: FileKattr): number;
}

/**
 * struct file_operations. Each hook returns what the kernel's does: a count or -errno. A file
 * type implements the hooks it supports; the VFS callers (fs/read_write.c, fs/open.c,
 * fs/ioctl.c, mm/mmap.c) apply the kernel's answer for a missing one.
 */
export interface FileOperations {
  /** Read into `buf` (its length is the count) at *ppos; bytes read or -errno. */
  read?(file: File, buf: Uint8Array, ppos: Loff): number;
  /** Write `buf` at *ppos; bytes written or -errno. */
  write?(file: File, buf: Uint8Array, ppos: Loff): number;
  /** Set up `vma` (vm_ops, flags); 0 or -errno. The VmAreaStruct type lives in mm_types. */
  mmap?(file: File, vma: unknown): number;
  fallocate?(file: File, mode: number, offset: bigint, len: bigint): number;
  /** ioctl; `arg` is the user's argument (a number or a struct object whose out-fields the call fills). */
  /**
   * ioctl; the result or -errno. `current` is the calling task, as `current` is in the kernel:
   * an ioctl that creates a file (KVM_CREATE_VM) installs its fd in current->files.
   */
  unlocked_ioctl?(file: File, cmd: number, arg: unknown, current: FileOwner): number;
  /** The last reference to the file went away (fput -> __fput). */
  release?(inode: Inode, file: File): void;
  /** lseek; the new position or -errno. */
  llseek?(file: File, offset: bigint, whence: number): bigint | number;
  /**
   * cocosim seam, no kernel hook: memfd_pin_folios() (mm/gup.c) for this file type, the way a
   * device user (iommufd's IOMMU_IOAS_MAP_FILE, udmabuf) pins the folios backing bytes
   * [start, end] of the file. Linux 6.18 takes only shmem and hugetlbfs files there, so those two
   * implement it with memfd_pin_folios() and any other file answers -EINVAL; a file type that
   * hands its pages to devices (guest_memfd's shared ranges) implements it for its own folios.
   * @returns the number of folios pinned into `folios`, with `offset.value` the byte offset of
   * `start` in the first one, or -errno
   */
  pin_folios?(file: File, start: bigint, end: bigint, folios: number[], max_folios: number, offset: { value: number }): number;
  /**
   * cocosim: make the vCPU of this file perform a guest access (Process.guest_load/guest_store,
   * the trace ops of docs/trace-format.md): `access` is the length of a load or the bytes of a
   * store. Only KVM's vCPU files have it.
   */
  guest_access?(file: File, gpa: unknown, access: unknown, current: FileOwner): GuestAccessResult;
}

/** empty_fops (fs/open.c): an O_PATH file's operations, none. */
export const empty_fops: FileOperations = {};

/** struct kvm_run's exit in kernel names: `{reason: 'KVM_EXIT_MMIO', mmio: {phys_addr, len, ...}}`. */
export type GuestAccessExit = Readonly<Record<string, unknown>>;

/**
 * What a guest access on a vCPU file gives: a load's bytes; 0 for a completed store; -errno when
 * KVM_RUN failed; the exit when KVM_RUN returned to user space for another reason than the access
 * completing; `{ret: -errno, exit}` when it failed with struct kvm_run filled in
 * (KVM_EXIT_MEMORY_FAULT); or the signal the vCPU's thread took (a machine check's SIGBUS).
 */
export type GuestAccessResult =
  | Uint8Array
  | number
  | GuestAccessExit
  | { readonly ret: number; readonly exit: GuestAccessExit }
  | SigInfo;

/* include/linux/fs.h: sb->s_iflags */
/** The file system's files cannot be executed (mmap with PROT_EXEC: -EPERM); also MNT_NOEXEC. */
export const SB_I_NOEXEC = 0x00000002;
/** Device nodes on it cannot be opened. */
export const SB_I_NODEV = 0x00000004;

/** struct inode. */
export class Inode {
  i_size = 0n;
  /**
   * inode->i_sb->s_iflags, together with the mount's MNT_NOEXEC (cocosim has no mounts): what
   * path_noexec() reads. Pseudo file systems mounted noexec (guest_memfd) set SB_I_NOEXEC.
   */
  i_sb_iflags = 0;
  /**
   * i_blocks in a number: every page a shmem fault allocates adds to it, and a bigint sum would
   * be an allocation per fault. Exact below 2^53 blocks (4 EiB).
   */
  private nr_blocks = 0;
  i_flags = 0;
  i_nlink = 1;
  /** i_write_hint (F_SET_RW_HINT): an RWH_WRITE_LIFE_* value. */
  i_write_hint = 0;
  /** i_flctx's POSIX and OFD record locks (locks.ts), null while there are none. */
  i_flctx: FileLock[] | null = null;
  /** File-type private data (shmem_inode_info, gmem_inode...). */
  i_private: unknown = undefined;
  i_mapping: AddressSpace;

  /** 512-byte blocks (i_blocks), as fstat reports. */
  get i_blocks(): bigint {
    return BigInt(this.nr_blocks);
  }
  set i_blocks(blocks: bigint) {
    this.nr_blocks = Number(blocks);
  }

  /** inode_add_bytes() / inode_sub_bytes() (fs/stat.c) in 512-byte blocks: i_blocks += `blocks`. */
  add_blocks(blocks: number): void {
    this.nr_blocks += blocks;
  }

  constructor(
    readonly i_ino: number,
    public i_mode: number,
    public i_op: InodeOperations,
    public i_fop: FileOperations,
    mapping_id: number,
  ) {
    this.i_mapping = new AddressSpace(this, mapping_id);
  }
}

/** struct file: an open file description, refcounted (f_count) by fds, mappings and the kernel. */
export class File {
  f_count = 1;
  f_pos = 0n;
  private_data: unknown = undefined;
  /** f_owner (F_SETOWN, F_SETOWN_EX): the pid or process group SIGIO goes to, 0 for none. */
  f_owner_pid = 0;
  /**
   * f_owner.pid_type as the F_OWNER_* type F_GETOWN_EX reports (F_OWNER_PID: PIDTYPE_TGID). A file
   * no F_SETOWN* touched has no f_owner, and f_getown_ex() reports its default PIDTYPE_PID, which is
   * F_OWNER_TID (0), as Linux 6.18.44 does.
   */
  f_owner_type = 0;
  /** f_owner.signum (F_SETSIG): 0 is SIGIO. */
  f_owner_signum = 0;
  /** The lease this open file holds (F_SETLEASE): F_RDLCK, F_WRLCK, or F_UNLCK (2) for none. */
  f_lease = 2;
  readonly f_mapping: AddressSpace;

  constructor(
    readonly f_inode: Inode,
    public f_op: FileOperations,
    /** O_* flags given at open (status flags can change with F_SETFL; the access mode cannot). */
    public f_flags: number,
    public f_mode: number,
  ) {
    this.f_mapping = f_inode.i_mapping;
  }

  /** get_file(): one more reference (a new fd, a mapping, a kernel user). */
  get_file(): File {
    BUG_ON(this.f_count <= 0, 'get_file on a released file');
    this.f_count++;
    return this;
  }

  /** fput(): drop a reference; the last one calls f_op->release (__fput). */
  fput(): void {
    BUG_ON(this.f_count <= 0, 'fput on a released file');
    if (--this.f_count !== 0) return;
    locks_remove_file(this);
    this.f_op.release?.(this.f_inode, this);
  }
}

/* inode->i_flags (include/linux/fs.h) */
export const S_NOATIME = 1 << 1;
export const S_APPEND = 1 << 2;
export const S_IMMUTABLE = 1 << 3;
/** The inode of an anonymous file (alloc_anon_inode()): S_IFREG inside, but no regular file. */
export const S_ANON_INODE = 1 << 19;

/** IS_APPEND(): only appending writes (FS_APPEND_FL). */
export function IS_APPEND(inode: Inode): boolean {
  return (inode.i_flags & S_APPEND) !== 0;
}

/** IS_IMMUTABLE(): FS_IMMUTABLE_FL. */
export function IS_IMMUTABLE(inode: Inode): boolean {
  return (inode.i_flags & S_IMMUTABLE) !== 0;
}

/** IS_ANON_FILE(). */
export function IS_ANON_FILE(inode: Inode): boolean {
  return (inode.i_flags & S_ANON_INODE) !== 0;
}

/**
 * A regular file as do_vfs_ioctl() and the remap paths see one: S_IFREG and not an anonymous inode
 * (a guest_memfd inode is S_IFREG and S_ANON_INODE; Linux 6.18.44 treats it as no regular file).
 */
export function regular_file(inode: Inode): boolean {
  return (inode.i_mode & S_IFMT) === S_IFREG && !IS_ANON_FILE(inode);
}

/** The devtmpfs every device node lives on (inode_sb()). */
const DEVTMPFS = Object.freeze({ name: 'devtmpfs' });

/**
 * inode->i_sb, and with it the one mount of that file system: cocosim has neither, so a device
 * node is on devtmpfs and any other inode on the file system its inode operations belong to
 * (shmem for memfds, the guest_memfd and anonymous-inode pseudo file systems, hugetlbfs). What
 * FICLONE's -EXDEV compares.
 */
export function inode_sb(inode: Inode): object {
  return (inode.i_mode & S_IFMT) === S_IFCHR ? DEVTMPFS : inode.i_op;
}

/** path_noexec() (fs/exec.c): the file's mount or file system forbids executing its contents. */
export function path_noexec(file: File): boolean {
  return (file.f_inode.i_sb_iflags & SB_I_NOEXEC) !== 0;
}

/** OPEN_FMODE(flags) with the FMODE_* capabilities a regular seekable file gets. */
export function open_fmode(flags: number): number {
  const acc = flags & O_ACCMODE;
  let mode = FMODE_LSEEK | FMODE_PREAD | FMODE_PWRITE;
  if (acc === O_RDONLY || acc === O_RDWR) mode |= FMODE_READ | FMODE_CAN_READ;
  if (acc === O_WRONLY || acc === O_RDWR) mode |= FMODE_WRITE | FMODE_CAN_WRITE;
  return mode;
}
