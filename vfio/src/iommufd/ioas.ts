/**
 * The IOAS object and its ioctls (drivers/iommu/iommufd/ioas.c, Linux 6.18): an I/O address
 * space, the io_pagetable (io_pagetable.ts) that devices attached to it translate through.
 *
 * Validation order, as the kernel's handlers do it:
 * - IOMMU_IOAS_ALLOC: flags -EOPNOTSUPP.
 * - IOMMU_IOAS_MAP / IOMMU_IOAS_MAP_FILE: unknown flags (or __reserved, for MAP) -EOPNOTSUPP;
 *   iova or length equal to ULONG_MAX -EOVERFLOW; neither READABLE nor WRITEABLE -EINVAL; no such
 *   IOAS -ENOENT; (MAP_FILE: a closed fd -EBADF); user_va + length past 2^64 -EOVERFLOW; length 0
 *   -EINVAL; then the io_pagetable's checks (alignment -EINVAL, reserved -EINVAL, overlap -EEXIST,
 *   no room -ENOSPC) and, with a device attached, the pinning's errors (-EFAULT for unmapped
 *   memory, -ENOMEM beyond RLIMIT_MEMLOCK, -EINVAL for a file type that cannot be pinned or a
 *   range past its end). A writable mapping of user memory pins with FOLL_WRITE.
 * - IOMMU_IOAS_UNMAP: no such IOAS -ENOENT; iova 0 with length U64_MAX unmaps everything (an
 *   empty IOAS included); otherwise iova or length ULONG_MAX -EOVERFLOW, length 0 -EINVAL, a
 *   wrapping range -EOVERFLOW, an area sticking out of the range -ENOENT, nothing mapped in it
 *   -ENOENT; `length` returns the bytes unmapped.
 * - IOMMU_IOAS_COPY, IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_ALLOW_IOVAS, IOMMU_OPTION
 *   (IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_HUGE_PAGES) as the kernel's.
 * Pointer fields (allowed_iovas) are JS arrays of { start, last }.
 */
import { BUG_ON, Errno, U64_MAX } from '@cocosim/core';
import { task_mm } from '@cocosim/mm';
import { IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE } from '../iommu.js';
import { copy_fields, get_s32, get_u16, user_struct } from '../uaccess.js';
import {
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_OPTION_HUGE_PAGES,
  IOMMU_OPTION_OP_GET,
  IOMMU_OPTION_OP_SET,
  IOMMU_OPTION_RLIMIT_MODE,
} from '../uapi.js';
import {
  IOPT_ALLOC_IOVA,
  IoPagetable,
  ULONG_MAX,
  iopt_disable_large_pages,
  iopt_enable_large_pages,
  iopt_get_pages,
  iopt_map_common,
  iopt_map_pages,
  iopt_set_allow_iova,
  iopt_unmap_all,
  iopt_unmap_iova,
  type IoptPagesElm,
  type IoptRange,
} from './io_pagetable.js';
import { IOMMUFD_OBJ_IOAS, IommufdObject, iommufd_get_object, iommufd_object_alloc, type IommufdCtx, type IommufdUcmd } from './iommufd_private.js';
import { IOPT_PAGES_ACCOUNT_MM, IOPT_PAGES_ACCOUNT_USER, iopt_alloc_file_pages, iopt_alloc_user_pages } from './pages.js';

/** struct iommufd_ioas. */
export class IommufdIoas extends IommufdObject {
  readonly type = IOMMUFD_OBJ_IOAS;
  readonly iopt = new IoPagetable();
  /** The HWPTs built on this IOAS (struct iommufd_hwpt_paging, device.ts). */
  readonly hwpt_list: unknown[] = [];

  /** iommufd_ioas_destroy(): unmap everything left. */
  destroy(): void {
    const unmapped = { value: 0n };
    const rc = iopt_unmap_all(this.iopt, unmapped);
    this.hwpt_list.length = 0;
    BUG_ON(rc !== 0 && rc !== -Errno.ENOENT, `iommufd_ioas_destroy: iopt_unmap_all ${rc}`);
  }
}

/** iommufd_get_ioas(): the IOAS `id`, or -ENOENT. */
export function iommufd_get_ioas(ictx: IommufdCtx, id: number): IommufdIoas | number {
  const obj = iommufd_get_object(ictx, id, IOMMUFD_OBJ_IOAS);
  return typeof obj === 'number' ? obj : (obj as IommufdIoas);
}

/** IOMMU_IOAS_ALLOC: a new, empty IOAS; its id in out_ioas_id. */
export function iommufd_ioas_alloc_ioctl(ucmd: IommufdUcmd): number {
  const cmd = copy_fields(ucmd.cmd, ['flags'], []);
  if (cmd === undefined) return -Errno.EFAULT;
  if (cmd.flags) return -Errno.EOPNOTSUPP;
  const ioas = iommufd_object_alloc(ucmd.ictx, new IommufdIoas());
  ucmd.cmd.out_ioas_id = ioas.id;
  return 0;
}

/**
 * IOMMU_IOAS_IOVA_RANGES: the holes between reserved ranges, as many as num_iovas allows into
 * allowed_iovas; num_iovas returns how many there are (-EMSGSIZE, after writing the struct back,
 * when more than given), out_iova_alignment the IOAS's alignment.
 */
export function iommufd_ioas_iova_ranges(ucmd: IommufdUcmd): number {
  const cmd = copy_fields(ucmd.cmd, ['ioas_id', 'num_iovas', '__reserved'], []);
  if (cmd === undefined) return -Errno.EFAULT;
  if (cmd.__reserved) return -Errno.EOPNOTSUPP;
  const ioas = iommufd_get_ioas(ucmd.ictx, cmd.ioas_id);
  if (typeof ioas === 'number') return ioas;
  const max_iovas = cmd.num_iovas;
  const ranges = ucmd.cmd.allowed_iovas;
  const reserved = [...ioas.iopt.reserved].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const holes: { start: bigint; last: bigint }[] = [];
  let next = 0n;
  let done = false;
  for (const r of reserved) {
    if (r.start > next) holes.push({ start: next, last: r.start - 1n });
    if (r.last >= ULONG_MAX) {
      done = true;
      break;
    }
    if (r.last + 1n > next) next = r.last + 1n;
  }
  if (!done) holes.push({ start: next, last: ULONG_MAX });
  for (let i = 0; i < holes.length && i < max_iovas; i++) {
    if (!Array.isArray(ranges)) return -Errno.EFAULT;
    ranges[i] = { start: holes[i].start, last: holes[i].last };
  }
  ucmd.cmd.num_iovas = holes.length;
  ucmd.cmd.out_iova_alignment = ioas.iopt.iova_alignment;
  return holes.length > max_iovas ? -Errno.EMSGSIZE : 0;
}

/**
 * IOMMU_IOAS_ALLOW_IOVAS: replace the allowed ranges with num_iovas ranges from allowed_iovas;
 * a range with start >= last or overlapping an earlier one -EINVAL, one on a reserved range
 * -EADDRINUSE.
 */
export function iommufd_ioas_allow_iovas(ucmd: IommufdUcmd): number {
  const cmd = copy_fields(ucmd.cmd, ['ioas_id', 'num_iovas', '__reserved'], []);
  if (cmd === undefined) return -Errno.EFAULT;
  if (cmd.__reserved) return -Errno.EOPNOTSUPP;
  const ioas = iommufd_get_ioas(ucmd.ictx, cmd.ioas_id);
  if (typeof ioas === 'number') return ioas;
  /* iommufd_ioas_load_iovas() */
  const allowed: IoptRange[] = [];
  const ranges = ucmd.cmd.allowed_iovas;
  for (let i = 0; i < cmd.num_iovas; i++) {
    const r = Array.isArray(ranges) ? user_struct(ranges[i]) : undefined;
    const range = r === undefined ? undefined : copy_fields(r, [], ['start', 'last']);
    if (range === undefined) return -Errno.EFAULT;
    if (range.start >= range.last) return -Errno.EINVAL;
    if (allowed.some((a) => a.start <= range.last && range.start <= a.last)) return -Errno.EINVAL;
    allowed.push({ start: range.start, last: range.last, owner: null });
  }
  return iopt_set_allow_iova(ioas.iopt, allowed);
}

/** conv_iommu_prot(): IOMMU_CACHE always (iommufd requires coherent IOMMUs), plus READ/WRITE. */
function conv_iommu_prot(map_flags: number): number {
  let iommu_prot = IOMMU_CACHE;
  if (map_flags & IOMMU_IOAS_MAP_WRITEABLE) iommu_prot |= IOMMU_WRITE;
  if (map_flags & IOMMU_IOAS_MAP_READABLE) iommu_prot |= IOMMU_READ;
  return iommu_prot;
}

const MAP_FLAGS = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE;

/** IOMMU_IOAS_MAP: map user memory [user_va, user_va + length) at iova (chosen unless FIXED_IOVA). */
export function iommufd_ioas_map(ucmd: IommufdUcmd): number {
  const cmd = copy_fields(ucmd.cmd, ['flags', 'ioas_id', '__reserved'], ['user_va', 'length', 'iova']);
  if (cmd === undefined) return -Errno.EFAULT;
  if (cmd.flags & ~MAP_FLAGS || cmd.__reserved) return -Errno.EOPNOTSUPP;
  if (cmd.iova >= ULONG_MAX || cmd.length >= ULONG_MAX) return -Errno.EOVERFLOW;
  if (!(cmd.flags & (IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE))) return -Errno.EINVAL;
  const ioas = iommufd_get_ioas(ucmd.ictx, cmd.ioas_id);
  if (typeof ioas === 'number') return ioas;
  const flags = cmd.flags & IOMMU_IOAS_MAP_FIXED_IOVA ? 0 : IOPT_ALLOC_IOVA;
  const prot = conv_iommu_prot(cmd.flags);
  /* iopt_map_user_pages() */
  const pages = iopt_alloc_user_pages(ucmd.current, task_mm(ucmd.current), cmd.user_va, cmd.length, (prot & IOMMU_WRITE) !== 0);
  if (typeof pages === 'number') return pages;
  const iova = { value: cmd.iova };
  const rc = iopt_map_common(ucmd.ictx.account_mode === IOPT_PAGES_ACCOUNT_MM, ioas.iopt, pages, iova, cmd.length, cmd.user_va - pages.uptr, prot, flags);
  if (rc) return rc;
  ucmd.cmd.iova = iova.value;
  return 0;
}

/** IOMMU_IOAS_MAP_FILE: map bytes [start, start + length) of the file `fd` at iova. */
export function iommufd_ioas_map_file(ucmd: IommufdUcmd): number {
  const cmd = copy_fields(ucmd.cmd, ['flags', 'ioas_id'], ['start', 'length', 'iova']);
  const fd = get_s32(ucmd.cmd, 'fd');
  if (cmd === undefined || fd === undefined) return -Errno.EFAULT;
  if (cmd.flags & ~MAP_FLAGS) return -Errno.EOPNOTSUPP;
  if (cmd.iova >= ULONG_MAX || cmd.length >= ULONG_MAX) return -Errno.EOVERFLOW;
  if (!(cmd.flags & (IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE))) return -Errno.EINVAL;
  const ioas = iommufd_get_ioas(ucmd.ictx, cmd.ioas_id);
  if (typeof ioas === 'number') return ioas;
  const flags = cmd.flags & IOMMU_IOAS_MAP_FIXED_IOVA ? 0 : IOPT_ALLOC_IOVA;
  const file = ucmd.current.files.lookup(fd);
  if (file === undefined) return -Errno.EBADF;
  const prot = conv_iommu_prot(cmd.flags);
  /* iopt_map_file_pages() */
  const pages = iopt_alloc_file_pages(ucmd.current, task_mm(ucmd.current), file, cmd.start, cmd.length, (prot & IOMMU_WRITE) !== 0);
  if (typeof pages === 'number') return pages;
  const iova = { value: cmd.iova };
  const rc = iopt_map_common(ucmd.ictx.account_mode === IOPT_PAGES_ACCOUNT_MM, ioas.iopt, pages, iova, cmd.length, cmd.start - pages.start, prot, flags);
  if (rc) return rc;
  ucmd.cmd.iova = iova.value;
  return 0;
}

/**
 * IOMMU_IOAS_COPY: map at dst_iova of dst_ioas the pages behind [src_iova, src_iova + length) of
 * src_ioas, sharing their pins.
 */
export function iommufd_ioas_copy(ucmd: IommufdUcmd): number {
  const cmd = copy_fields(ucmd.cmd, ['flags', 'dst_ioas_id', 'src_ioas_id'], ['length', 'dst_iova', 'src_iova']);
  if (cmd === undefined) return -Errno.EFAULT;
  if (cmd.flags & ~MAP_FLAGS) return -Errno.EOPNOTSUPP;
  if (cmd.length >= ULONG_MAX || cmd.src_iova >= ULONG_MAX || cmd.dst_iova >= ULONG_MAX) return -Errno.EOVERFLOW;
  if (!(cmd.flags & (IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE))) return -Errno.EINVAL;
  const src_ioas = iommufd_get_ioas(ucmd.ictx, cmd.src_ioas_id);
  if (typeof src_ioas === 'number') return src_ioas;
  const list: IoptPagesElm[] = [];
  let rc = iopt_get_pages(src_ioas.iopt, cmd.src_iova, cmd.length, list);
  if (rc) return rc;
  const dst_ioas = iommufd_get_ioas(ucmd.ictx, cmd.dst_ioas_id);
  if (typeof dst_ioas === 'number') {
    iopt_map_pages_abort(list);
    return dst_ioas;
  }
  const flags = cmd.flags & IOMMU_IOAS_MAP_FIXED_IOVA ? 0 : IOPT_ALLOC_IOVA;
  const iova = { value: cmd.dst_iova };
  rc = iopt_map_pages(dst_ioas.iopt, list, cmd.length, iova, conv_iommu_prot(cmd.flags), flags);
  if (rc) return rc;
  ucmd.cmd.dst_iova = iova.value;
  return 0;
}

/** iopt_free_pages_list() of a list nothing was mapped from yet. */
function iopt_map_pages_abort(list: IoptPagesElm[]): void {
  for (const elm of list) if (elm.pages) elm.pages.kref--;
  list.length = 0;
}

/** IOMMU_IOAS_UNMAP (see the file comment); `length` returns the bytes unmapped. */
export function iommufd_ioas_unmap(ucmd: IommufdUcmd): number {
  const cmd = copy_fields(ucmd.cmd, ['ioas_id'], ['iova', 'length']);
  if (cmd === undefined) return -Errno.EFAULT;
  const ioas = iommufd_get_ioas(ucmd.ictx, cmd.ioas_id);
  if (typeof ioas === 'number') return ioas;
  const unmapped = { value: 0n };
  if (cmd.iova === 0n && cmd.length === U64_MAX) {
    const rc = iopt_unmap_all(ioas.iopt, unmapped);
    if (rc) return rc;
  } else {
    if (cmd.iova >= ULONG_MAX || cmd.length >= ULONG_MAX) return -Errno.EOVERFLOW;
    const rc = iopt_unmap_iova(ioas.iopt, cmd.iova, cmd.length, unmapped);
    if (rc) return rc;
    if (!unmapped.value) return -Errno.ENOENT;
  }
  ucmd.cmd.length = unmapped.value;
  return 0;
}

/**
 * iommufd_option_rlimit_mode(): global (object_id must be 0); GET reports 1 for mm-based
 * accounting; SET (root: CAP_SYS_RESOURCE) only while the context has no objects (-EBUSY), to 0
 * or 1 (-EINVAL otherwise).
 */
function iommufd_option_rlimit_mode(cmd: { op: number; object_id: number; val64: bigint }, ictx: IommufdCtx): number {
  if (cmd.object_id) return -Errno.EOPNOTSUPP;
  if (cmd.op === IOMMU_OPTION_OP_GET) {
    cmd.val64 = ictx.account_mode === IOPT_PAGES_ACCOUNT_MM ? 1n : 0n;
    return 0;
  }
  if (cmd.op === IOMMU_OPTION_OP_SET) {
    if (ictx.objects.size) return -Errno.EBUSY;
    if (cmd.val64 === 0n) ictx.account_mode = IOPT_PAGES_ACCOUNT_USER;
    else if (cmd.val64 === 1n) ictx.account_mode = IOPT_PAGES_ACCOUNT_MM;
    else return -Errno.EINVAL;
    return 0;
  }
  return -Errno.EOPNOTSUPP;
}

/** iommufd_ioas_option(): IOMMU_OPTION_HUGE_PAGES of the IOAS object_id. */
function iommufd_ioas_option(cmd: { op: number; object_id: number; val64: bigint }, ictx: IommufdCtx): number {
  const ioas = iommufd_get_ioas(ictx, cmd.object_id);
  if (typeof ioas === 'number') return ioas;
  if (cmd.op === IOMMU_OPTION_OP_GET) {
    cmd.val64 = ioas.iopt.disable_large_pages ? 0n : 1n;
    return 0;
  }
  if (cmd.op === IOMMU_OPTION_OP_SET) {
    if (cmd.val64 === 0n) return iopt_disable_large_pages(ioas.iopt);
    if (cmd.val64 === 1n) {
      iopt_enable_large_pages(ioas.iopt);
      return 0;
    }
    return -Errno.EINVAL;
  }
  return -Errno.EOPNOTSUPP;
}

/** IOMMU_OPTION: __reserved -EOPNOTSUPP, an unknown option -EOPNOTSUPP; val64 written back on success. */
export function iommufd_option(ucmd: IommufdUcmd): number {
  const f = copy_fields(ucmd.cmd, ['option_id', 'object_id'], ['val64']);
  const op = get_u16(ucmd.cmd, 'op');
  const reserved = get_u16(ucmd.cmd, '__reserved');
  if (f === undefined || op === undefined || reserved === undefined) return -Errno.EFAULT;
  if (reserved) return -Errno.EOPNOTSUPP;
  const cmd = { op, object_id: f.object_id, val64: f.val64 };
  let rc: number;
  switch (f.option_id) {
    case IOMMU_OPTION_RLIMIT_MODE:
      rc = iommufd_option_rlimit_mode(cmd, ucmd.ictx);
      break;
    case IOMMU_OPTION_HUGE_PAGES:
      rc = iommufd_ioas_option(cmd, ucmd.ictx);
      break;
    default:
      return -Errno.EOPNOTSUPP;
  }
  if (rc) return rc;
  ucmd.cmd.val64 = cmd.val64;
  return 0;
}

