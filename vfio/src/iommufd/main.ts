/**
 * /dev/iommu (drivers/iommu/iommufd/main.c, Linux 6.18): the iommufd context, its objects and
 * the ioctl dispatch.
 *
 * Objects (IOAS, HWPT, device) live in the context's table under ids from 1 up, the lowest free
 * one first (xa_alloc with XA_FLAGS_ALLOC1). `users` counts what depends on an object: an HWPT
 * holds its IOAS, a device attached to an HWPT holds it, a bound device is held by its VFIO
 * driver; IOMMU_DESTROY removes an object only while nothing else uses it (-EBUSY), and an id
 * that names nothing is -ENOENT. Closing the file destroys what is left, leaves first (a bound
 * device keeps the context open until it is unbound).
 *
 * Every iommufd ioctl takes a struct whose first u32 is its size (iommufd_fops_ioctl()): a bad
 * pointer is -EFAULT; a command number inside the iommufd range whose full value is not the
 * command's (other direction/size bits) is -ENOTTY; a size below the command's minimum is
 * -EINVAL; a size beyond the kernel's struct with non-zero bytes past it is -E2BIG (cocosim: the
 * struct's fields it does not have, non-zero). Numbers outside the range go to the VFIO
 * compatibility ioctls (drivers/iommu/iommufd/vfio_compat.c), which cocosim does not model
 * (-ENOTTY), nor the commands of the range outside IOAS management (HWPT_ALLOC, GET_HW_INFO,
 * VFIO_IOAS, dirty tracking, fault queues, vIOMMU...: -ENOTTY, as from a kernel without them).
 */
import { Errno } from '@cocosim/core';
import { File, Inode, S_IFCHR, open_fmode, type FileOperations, type FileOwner, type Kernel, type Task } from '@cocosim/mm';
import { get_u32, user_struct } from '../uaccess.js';
import {
  IOMMUFD_CMD_BASE,
  IOMMUFD_CMD_DESTROY,
  IOMMUFD_CMD_HW_QUEUE_ALLOC,
  IOMMUFD_CMD_IOAS_ALLOC,
  IOMMUFD_CMD_IOAS_ALLOW_IOVAS,
  IOMMUFD_CMD_IOAS_COPY,
  IOMMUFD_CMD_IOAS_IOVA_RANGES,
  IOMMUFD_CMD_IOAS_MAP,
  IOMMUFD_CMD_IOAS_MAP_FILE,
  IOMMUFD_CMD_IOAS_UNMAP,
  IOMMUFD_CMD_OPTION,
  IOMMUFD_TYPE,
  IOMMU_DESTROY_SIZE,
  IOMMU_IOAS_ALLOC_SIZE,
  IOMMU_IOAS_ALLOW_IOVAS_SIZE,
  IOMMU_IOAS_COPY_SIZE,
  IOMMU_IOAS_IOVA_RANGES_SIZE,
  IOMMU_IOAS_MAP_FILE_SIZE,
  IOMMU_IOAS_MAP_SIZE,
  IOMMU_IOAS_UNMAP_SIZE,
  IOMMU_OPTION_SIZE,
} from '../uapi.js';
import { IommufdCtx, iommufd_object_remove, type IommufdUcmd } from './iommufd_private.js';
import {
  iommufd_ioas_alloc_ioctl,
  iommufd_ioas_allow_iovas,
  iommufd_ioas_copy,
  iommufd_ioas_iova_ranges,
  iommufd_ioas_map,
  iommufd_ioas_map_file,
  iommufd_ioas_unmap,
  iommufd_option,
} from './ioas.js';

/** struct iommufd_ioctl_op: the struct's size, its minimum, its fields, and the handler. */
interface IommufdIoctlOp {
  readonly size: number;
  readonly min_size: number;
  readonly fields: readonly string[];
  readonly execute: (ucmd: IommufdUcmd) => number;
}

/** iommufd_destroy(): IOMMU_DESTROY of any object nothing else uses. */
function iommufd_destroy(ucmd: IommufdUcmd): number {
  const id = get_u32(ucmd.cmd, 'id');
  if (id === undefined) return -Errno.EFAULT;
  return iommufd_object_remove(ucmd.ictx, null, id);
}

/** iommufd_ioctl_ops[]: the commands cocosim models, by number. */
const IOCTL_OPS: ReadonlyMap<number, IommufdIoctlOp> = new Map([
  [IOMMUFD_CMD_DESTROY, { size: IOMMU_DESTROY_SIZE, min_size: IOMMU_DESTROY_SIZE, fields: ['id'], execute: iommufd_destroy }],
  [IOMMUFD_CMD_IOAS_ALLOC, { size: IOMMU_IOAS_ALLOC_SIZE, min_size: IOMMU_IOAS_ALLOC_SIZE, fields: ['flags', 'out_ioas_id'], execute: iommufd_ioas_alloc_ioctl }],
  [IOMMUFD_CMD_IOAS_ALLOW_IOVAS, { size: IOMMU_IOAS_ALLOW_IOVAS_SIZE, min_size: IOMMU_IOAS_ALLOW_IOVAS_SIZE, fields: ['ioas_id', 'num_iovas', '__reserved', 'allowed_iovas'], execute: iommufd_ioas_allow_iovas }],
  [IOMMUFD_CMD_IOAS_COPY, { size: IOMMU_IOAS_COPY_SIZE, min_size: IOMMU_IOAS_COPY_SIZE, fields: ['flags', 'dst_ioas_id', 'src_ioas_id', 'length', 'dst_iova', 'src_iova'], execute: iommufd_ioas_copy }],
  [IOMMUFD_CMD_IOAS_IOVA_RANGES, { size: IOMMU_IOAS_IOVA_RANGES_SIZE, min_size: IOMMU_IOAS_IOVA_RANGES_SIZE, fields: ['ioas_id', 'num_iovas', '__reserved', 'allowed_iovas', 'out_iova_alignment'], execute: iommufd_ioas_iova_ranges }],
  [IOMMUFD_CMD_IOAS_MAP, { size: IOMMU_IOAS_MAP_SIZE, min_size: IOMMU_IOAS_MAP_SIZE, fields: ['flags', 'ioas_id', '__reserved', 'user_va', 'length', 'iova'], execute: iommufd_ioas_map }],
  [IOMMUFD_CMD_IOAS_UNMAP, { size: IOMMU_IOAS_UNMAP_SIZE, min_size: IOMMU_IOAS_UNMAP_SIZE, fields: ['ioas_id', 'iova', 'length'], execute: iommufd_ioas_unmap }],
  [IOMMUFD_CMD_OPTION, { size: IOMMU_OPTION_SIZE, min_size: IOMMU_OPTION_SIZE, fields: ['option_id', 'op', '__reserved', 'object_id', 'val64'], execute: iommufd_option }],
  [IOMMUFD_CMD_IOAS_MAP_FILE, { size: IOMMU_IOAS_MAP_FILE_SIZE, min_size: IOMMU_IOAS_MAP_FILE_SIZE, fields: ['flags', 'ioas_id', 'fd', 'start', 'length', 'iova'], execute: iommufd_ioas_map_file }],
]);

/** True for a struct field C would hold as non-zero. */
function nonzero(v: unknown): boolean {
  return !(v === undefined || v === 0 || v === 0n || v === null);
}

/** iommufd_fops_ioctl(): see the file comment. */
export function iommufd_fops_ioctl(file: File, cmd: number, arg: unknown, current: FileOwner): number {
  const ictx = file.private_data as IommufdCtx;
  const nr = cmd & 0xff;
  if (nr < IOMMUFD_CMD_BASE || nr > IOMMUFD_CMD_HW_QUEUE_ALLOC) return -Errno.ENOTTY;
  const s = user_struct(arg);
  if (s === undefined) return -Errno.EFAULT;
  const user_size = get_u32(s, 'size');
  if (user_size === undefined) return -Errno.EFAULT;
  if (cmd !== ((IOMMUFD_TYPE << 8) | nr)) return -Errno.ENOTTY;
  const op = IOCTL_OPS.get(nr);
  if (op === undefined) return -Errno.ENOTTY;
  if (user_size < op.min_size) return -Errno.EINVAL;
  /* copy_struct_from_user(): bytes past the kernel's struct must be zero */
  if (user_size > op.size) {
    for (const [k, v] of Object.entries(s)) if (k !== 'size' && !op.fields.includes(k) && nonzero(v)) return -Errno.E2BIG;
  }
  return op.execute({ ictx, cmd: s, user_size, current: current as Task });
}

/**
 * iommufd_fops_release(): destroy every object, repeatedly those nothing else uses, until the
 * table is empty.
 */
function iommufd_fops_release(_inode: Inode, file: File): void {
  const ictx = file.private_data as IommufdCtx;
  while (ictx.objects.size) {
    let destroyed = 0;
    for (const [id, obj] of [...ictx.objects]) {
      if (obj.users !== 1) continue;
      obj.users = 0;
      ictx.objects.delete(id);
      obj.destroy();
      destroyed++;
    }
    /* Bug related to users refcount */
    if (ictx.kernel.warn.WARN_ON(!destroyed, 'iommufd_fops_release: objects left that cannot be destroyed')) break;
  }
}

export const iommufd_fops: FileOperations = {
  unlocked_ioctl: iommufd_fops_ioctl,
  release: iommufd_fops_release,
};

const iommufd_inodes = new WeakMap<Kernel, Inode>();

/** iommufd_fops_open(): a new context with user-based RLIMIT_MEMLOCK accounting. */
export function iommufd_fops_open(kernel: Kernel, flags: number): File {
  let inode = iommufd_inodes.get(kernel);
  if (inode === undefined) iommufd_inodes.set(kernel, (inode = new Inode(kernel.get_next_ino(), S_IFCHR | 0o660, {}, iommufd_fops, kernel.next_mapping_id())));
  const ictx = new IommufdCtx(kernel);
  const file = new File(inode, iommufd_fops, flags, open_fmode(flags));
  file.private_data = ictx;
  ictx.file = file;
  return file;
}

/** iommufd_ctx_from_file(): the context of an iommufd file, or -EBADFD for any other file. */
export function iommufd_ctx_from_file(file: File): IommufdCtx | number {
  if (file.f_op !== iommufd_fops) return -Errno.EBADFD;
  return file.private_data as IommufdCtx;
}
