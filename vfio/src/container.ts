/**
 * The VFIO container, /dev/vfio/vfio (drivers/vfio/container.c, Linux 6.18): the groups that
 * share one IOMMU context, and the IOMMU driver (here the only one registered: type1, as on a
 * host without CONFIG_VFIO_NOIOMMU) that serves them.
 *
 * - VFIO_GET_API_VERSION: VFIO_API_VERSION (0).
 * - VFIO_CHECK_EXTENSION: before VFIO_SET_IOMMU every registered driver is asked (no IOMMU
 *   state: VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU and VFIO_UNMAP_ALL are 1, anything else 0), after
 *   it the container's driver.
 * - VFIO_SET_IOMMU: -EINVAL without a group or with a driver already set; a type no driver
 *   supports -ENODEV; otherwise the driver opens and attaches every group of the container
 *   (its error, e.g. -EINVAL or -EBUSY, if that fails).
 * - Any other ioctl goes to the driver once set (VFIO_IOMMU_MAP_DMA...), and is -EINVAL before.
 * Groups hold the container: it stays alive, and its mappings pinned, until the last group
 * leaves (VFIO_GROUP_UNSET_CONTAINER or closing the group file), which releases the driver.
 */
import { BUG_ON, Errno } from '@cocosim/core';
import { File, Inode, S_IFCHR, open_fmode, type FileOperations, type FileOwner, type Kernel, type Task } from '@cocosim/mm';
import { iommu_group_claim_dma_owner, iommu_group_release_dma_owner, type IommuGroup } from './iommu.js';
import { VFIO_IOMMU, type VfioGroup } from './group.js';
import { VFIO_API_VERSION, VFIO_CHECK_EXTENSION, VFIO_GET_API_VERSION, VFIO_SET_IOMMU } from './uapi.js';
import {
  ioctl_ulong,
  vfio_iommu_type1_attach_group,
  vfio_iommu_type1_check_extension,
  vfio_iommu_type1_detach_group,
  vfio_iommu_type1_ioctl,
  vfio_iommu_type1_open,
  vfio_iommu_type1_release,
  type VfioIommu,
  type VfioType1Params,
} from './vfio_iommu_type1.js';
import type { VfioModule } from './vfio_main.js';

/** struct vfio_iommu_driver_ops: an IOMMU backend of the container. */
export interface VfioIommuDriverOps {
  readonly name: string;
  open(arg: bigint, params: Readonly<VfioType1Params>): VfioIommu | number;
  release(data: VfioIommu): void;
  ioctl(data: VfioIommu | null, cmd: number, arg: unknown, current: Task): number;
  attach_group(data: VfioIommu, group: IommuGroup, type: number): number;
  detach_group(data: VfioIommu, group: IommuGroup): void;
}

/** vfio_iommu_driver_ops_type1. */
export const vfio_iommu_driver_ops_type1: VfioIommuDriverOps = {
  name: 'vfio-iommu-type1',
  open: (arg, params) => vfio_iommu_type1_open(arg > 0x7fffffffn ? -1 : Number(arg), params),
  release: vfio_iommu_type1_release,
  ioctl: (data, cmd, arg, current) => (data === null ? (cmd === VFIO_CHECK_EXTENSION ? vfio_iommu_type1_check_extension(null, ioctl_ulong(arg)) : -Errno.ENOTTY) : vfio_iommu_type1_ioctl(data, cmd, arg, current)),
  attach_group: (data, group) => vfio_iommu_type1_attach_group(data, group),
  detach_group: vfio_iommu_type1_detach_group,
};

/** vfio.iommu_drivers_list: the registered IOMMU drivers. */
const IOMMU_DRIVERS: readonly VfioIommuDriverOps[] = [vfio_iommu_driver_ops_type1];

/** struct vfio_container. */
export class VfioContainer {
  readonly group_list: VfioGroup[] = [];
  iommu_driver: VfioIommuDriverOps | null = null;
  iommu_data: VfioIommu | null = null;
  noiommu = false;
  /** kref: the file and each group. */
  kref = 1;

  constructor(readonly module: VfioModule) {}
}

/** vfio_container_put(). */
function vfio_container_put(container: VfioContainer): void {
  BUG_ON(container.kref <= 0, 'vfio_container_put() of a released container');
  if (--container.kref === 0) container.module.kernel.warn.WARN_ON(container.iommu_driver !== null, 'vfio_container_release with a driver');
}

/** vfio_container_ioctl_check_extension(). */
function vfio_container_ioctl_check_extension(container: VfioContainer, arg: unknown, current: Task): number {
  const driver = container.iommu_driver;
  if (driver === null) {
    /* If no driver is set, poll all registered drivers for extensions and return the first positive result. */
    let ret = 0;
    for (const d of IOMMU_DRIVERS) {
      ret = d.ioctl(null, VFIO_CHECK_EXTENSION, arg, current);
      if (ret > 0) break;
    }
    return ret;
  }
  return driver.ioctl(container.iommu_data, VFIO_CHECK_EXTENSION, arg, current);
}

/** __vfio_container_attach_groups(): attach every group to a freshly opened driver, or none. */
function __vfio_container_attach_groups(container: VfioContainer, driver: VfioIommuDriverOps, data: VfioIommu): number {
  for (let i = 0; i < container.group_list.length; i++) {
    const group = container.group_list[i];
    const ret = driver.attach_group(data, group.iommu_group, group.type);
    if (ret) {
      for (let j = 0; j < i; j++) driver.detach_group(data, container.group_list[j].iommu_group);
      return ret;
    }
  }
  return 0;
}

/** vfio_ioctl_set_iommu(). */
function vfio_ioctl_set_iommu(container: VfioContainer, arg: unknown, current: Task): number {
  /* only by adding a group to a container does the user get the privilege of enabling the iommu */
  if (container.group_list.length === 0 || container.iommu_driver !== null) return -Errno.EINVAL;
  let ret = -Errno.ENODEV;
  const type = ioctl_ulong(arg);
  for (const driver of IOMMU_DRIVERS) {
    /* The arg magic for SET_IOMMU is the same as CHECK_EXTENSION */
    if (driver.ioctl(null, VFIO_CHECK_EXTENSION, arg, current) <= 0) continue;
    const data = driver.open(type, container.module.type1_params);
    if (typeof data === 'number') {
      ret = data;
      continue;
    }
    ret = __vfio_container_attach_groups(container, driver, data);
    if (ret) {
      driver.release(data);
      continue;
    }
    container.iommu_driver = driver;
    container.iommu_data = data;
    break;
  }
  return ret;
}

/** vfio_fops_unl_ioctl(). */
function vfio_fops_unl_ioctl(file: File, cmd: number, arg: unknown, current: FileOwner): number {
  const container = file.private_data as VfioContainer;
  const task = current as Task;
  switch (cmd) {
    case VFIO_GET_API_VERSION:
      return VFIO_API_VERSION;
    case VFIO_CHECK_EXTENSION:
      return vfio_container_ioctl_check_extension(container, arg, task);
    case VFIO_SET_IOMMU:
      return vfio_ioctl_set_iommu(container, arg, task);
    default:
      /* passthrough all unrecognized ioctls */
      if (container.iommu_driver !== null) return container.iommu_driver.ioctl(container.iommu_data, cmd, arg, task);
      return -Errno.EINVAL;
  }
}

/** vfio_fops_release(): the file's reference goes (groups keep the container alive). */
function vfio_fops_release(_inode: Inode, file: File): void {
  vfio_container_put(file.private_data as VfioContainer);
}

export const vfio_fops: FileOperations = {
  unlocked_ioctl: vfio_fops_unl_ioctl,
  release: vfio_fops_release,
};

const container_inodes = new WeakMap<Kernel, Inode>();

/** vfio_fops_open(): a new, empty container. */
export function vfio_fops_open(module: VfioModule, flags: number): File {
  const kernel = module.kernel;
  let inode = container_inodes.get(kernel);
  if (inode === undefined) container_inodes.set(kernel, (inode = new Inode(kernel.get_next_ino(), S_IFCHR | 0o666, {}, vfio_fops, kernel.next_mapping_id())));
  const file = new File(inode, vfio_fops, flags, open_fmode(flags));
  file.private_data = new VfioContainer(module);
  return file;
}

/** vfio_container_from_file(): the container of a /dev/vfio/vfio file. */
export function vfio_container_from_file(file: File): VfioContainer | undefined {
  return file.f_op === vfio_fops ? (file.private_data as VfioContainer) : undefined;
}

/**
 * vfio_container_attach_group(): the group's DMA becomes the container's
 * (iommu_group_claim_dma_owner: -EPERM when someone else owns it, e.g. an iommufd through a
 * device cdev); with a driver set the group is attached to its domain at once.
 */
export function vfio_container_attach_group(container: VfioContainer, group: VfioGroup): number {
  let ret = iommu_group_claim_dma_owner(group.iommu_group, group);
  if (ret) return ret;
  const driver = container.iommu_driver;
  if (driver !== null) {
    ret = driver.attach_group(container.iommu_data!, group.iommu_group, group.type);
    if (ret) {
      if (group.type === VFIO_IOMMU) iommu_group_release_dma_owner(group.iommu_group);
      return ret;
    }
  }
  group.container = container;
  group.container_users = 1;
  container.noiommu = false;
  container.group_list.push(group);
  /* Get a reference on the container and mark a user within the group */
  container.kref++;
  return 0;
}

/** vfio_group_detach_container(): detaching the last group deprivileges a container, remove iommu. */
export function vfio_group_detach_container(group: VfioGroup): void {
  const container = group.container!;
  container.module.kernel.warn.WARN_ON(group.container_users !== 1, 'vfio_group_detach_container: container_users != 1');
  const driver = container.iommu_driver;
  if (driver !== null) driver.detach_group(container.iommu_data!, group.iommu_group);
  if (group.type === VFIO_IOMMU) iommu_group_release_dma_owner(group.iommu_group);
  group.container = null;
  group.container_users = 0;
  container.group_list.splice(container.group_list.indexOf(group), 1);
  if (driver !== null && container.group_list.length === 0) {
    driver.release(container.iommu_data!);
    container.iommu_driver = null;
    container.iommu_data = null;
  }
  vfio_container_put(container);
}

/** cocosim inspection: the type1 state of a container file (after VFIO_SET_IOMMU). */
export function vfio_container_iommu(file: File): VfioIommu | null {
  return vfio_container_from_file(file)?.iommu_data ?? null;
}
