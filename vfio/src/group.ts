/**
 * VFIO group files /dev/vfio/<group id> (drivers/vfio/group.c, Linux 6.18): the legacy path
 * that puts a device's group into a type1 container.
 *
 * - open: one open file per group (-EBUSY for a second, and while a device of the group is open
 *   through its cdev).
 * - VFIO_GROUP_GET_STATUS: argsz < 8 -EINVAL; VIABLE when nobody else owns the group's DMA,
 *   VIABLE | CONTAINER_SET once in a container.
 * - VFIO_GROUP_SET_CONTAINER (the argument is the int the C pointer points to: the container
 *   fd): a non-number -EFAULT, a closed fd -EBADF, a group already in a container -EINVAL, a fd
 *   that is no container -EBADFD (cocosim does not model a group on an iommufd); then the
 *   container attaches it (container.ts).
 * - VFIO_GROUP_UNSET_CONTAINER: -EINVAL when in none; detaching the container's last group
 *   releases its IOMMU driver (every mapping unmapped and unpinned).
 * - close: leaves the container as UNSET does.
 * Other group ioctls (VFIO_GROUP_GET_DEVICE_FD) are not modelled (-ENOTTY): devices are reached
 * by their cdev.
 */
import { Errno } from '@cocosim/core';
import { File, Inode, S_IFCHR, open_fmode, type FileOperations, type FileOwner, type Task } from '@cocosim/mm';
import { iommu_group_dma_owner_claimed, type IommuGroup } from './iommu.js';
import { vfio_container_attach_group, vfio_container_from_file, vfio_group_detach_container, type VfioContainer } from './container.js';
import { copy_fields, user_struct } from './uaccess.js';
import { VFIO_GROUP_FLAGS_CONTAINER_SET, VFIO_GROUP_FLAGS_VIABLE, VFIO_GROUP_GET_STATUS, VFIO_GROUP_SET_CONTAINER, VFIO_GROUP_UNSET_CONTAINER } from './uapi.js';
import type { VfioDevice, VfioModule } from './vfio_main.js';

/* enum vfio_group_type */
export const VFIO_IOMMU = 0;
export const VFIO_EMULATED_IOMMU = 1;
export const VFIO_NO_IOMMU = 2;

/** struct vfio_group. */
export class VfioGroup {
  container: VfioContainer | null = null;
  container_users = 0;
  opened_file: File | null = null;
  /** Devices of the group open through their cdev (they block the group file). */
  cdev_device_open_cnt = 0;
  readonly device_list: VfioDevice[] = [];
  readonly type = VFIO_IOMMU;
  readonly inode: Inode;

  constructor(readonly module: VfioModule, readonly iommu_group: IommuGroup) {
    const kernel = module.kernel;
    this.inode = new Inode(kernel.get_next_ino(), S_IFCHR | 0o600, {}, vfio_group_fops, kernel.next_mapping_id());
  }
}

/** vfio_group_has_iommu(): the group is in a container (or on an iommufd, not modelled). */
function vfio_group_has_iommu(group: VfioGroup): boolean {
  return group.container !== null;
}

/** VFIO_GROUP_GET_STATUS (vfio_group_ioctl_get_status()). */
function vfio_group_ioctl_get_status(group: VfioGroup, arg: unknown): number {
  const s = user_struct(arg);
  if (s === undefined) return -Errno.EFAULT;
  const status = copy_fields(s, ['argsz'], []);
  if (status === undefined) return -Errno.EFAULT;
  if (status.argsz < 8) return -Errno.EINVAL;
  let flags = 0;
  if (vfio_group_has_iommu(group)) flags |= VFIO_GROUP_FLAGS_CONTAINER_SET | VFIO_GROUP_FLAGS_VIABLE;
  else if (!iommu_group_dma_owner_claimed(group.iommu_group)) flags |= VFIO_GROUP_FLAGS_VIABLE;
  s.flags = flags;
  return 0;
}

/** VFIO_GROUP_SET_CONTAINER (vfio_group_ioctl_set_container()). */
function vfio_group_ioctl_set_container(group: VfioGroup, arg: unknown, current: Task): number {
  /* get_user(fd, arg) */
  if (typeof arg !== 'number' || !Number.isSafeInteger(arg)) return -Errno.EFAULT;
  const f = current.files.lookup(arg | 0);
  if (f === undefined) return -Errno.EBADF;
  if (vfio_group_has_iommu(group)) return -Errno.EINVAL;
  const container = vfio_container_from_file(f);
  if (container !== undefined) return vfio_container_attach_group(container, group);
  /* The FD passed is not recognized. */
  return -Errno.EBADFD;
}

/** VFIO_GROUP_UNSET_CONTAINER (vfio_group_ioctl_unset_container()). */
function vfio_group_ioctl_unset_container(group: VfioGroup): number {
  if (!vfio_group_has_iommu(group)) return -Errno.EINVAL;
  if (group.container_users !== 1) return -Errno.EBUSY;
  vfio_group_detach_container(group);
  return 0;
}

/** vfio_group_fops_unl_ioctl(). */
function vfio_group_fops_unl_ioctl(file: File, cmd: number, arg: unknown, current: FileOwner): number {
  const group = file.private_data as VfioGroup;
  switch (cmd) {
    case VFIO_GROUP_GET_STATUS:
      return vfio_group_ioctl_get_status(group, arg);
    case VFIO_GROUP_SET_CONTAINER:
      return vfio_group_ioctl_set_container(group, arg, current as Task);
    case VFIO_GROUP_UNSET_CONTAINER:
      return vfio_group_ioctl_unset_container(group);
    default:
      return -Errno.ENOTTY;
  }
}

/** vfio_group_fops_release(): leave the container; the group may be opened again. */
function vfio_group_fops_release(_inode: Inode, file: File): void {
  const group = file.private_data as VfioGroup;
  if (group.container !== null) vfio_group_detach_container(group);
  group.opened_file = null;
}

export const vfio_group_fops: FileOperations = {
  unlocked_ioctl: vfio_group_fops_unl_ioctl,
  release: vfio_group_fops_release,
};

/** vfio_group_fops_open(): -EBUSY while the group is open or a device of it is open by cdev. */
function vfio_group_fops_open(group: VfioGroup, flags: number): File | number {
  if (group.cdev_device_open_cnt) return -Errno.EBUSY;
  /* Do we need multiple instances of the group open?  Seems not. */
  if (group.opened_file !== null) return -Errno.EBUSY;
  const file = new File(group.inode, vfio_group_fops, flags, open_fmode(flags));
  file.private_data = group;
  group.opened_file = file;
  return file;
}

/** vfio_create_group() + cdev_device_add(): the group of a new device, at /dev/vfio/<id>. */
export function vfio_group_register(module: VfioModule, iommu_group: IommuGroup): VfioGroup {
  const group = new VfioGroup(module, iommu_group);
  module.groups.set(iommu_group.id, group);
  module.kernel.register_device(`/dev/vfio/${iommu_group.id}`, (_k, flags) => vfio_group_fops_open(group, flags));
  return group;
}

/** vfio_device_block_group(): a device opened through its cdev keeps the group file closed. */
export function vfio_device_block_group(group: VfioGroup): number {
  if (group.opened_file !== null) return -Errno.EBUSY;
  group.cdev_device_open_cnt++;
  return 0;
}

/** vfio_device_unblock_group(). */
export function vfio_device_unblock_group(group: VfioGroup): void {
  group.cdev_device_open_cnt--;
}
