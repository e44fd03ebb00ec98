/**
 * VFIO device cdev files /dev/vfio/devices/vfio<N> (drivers/vfio/device_cdev.c and the cdev
 * parts of vfio_main.c and iommufd.c, Linux 6.18): the path by which a device joins iommufd.
 *
 * - VFIO_DEVICE_BIND_IOMMUFD: argsz below 16 -EINVAL; non-zero bytes past the struct's known
 *   part without VFIO_DEVICE_BIND_FLAG_TOKEN -E2BIG; a negative iommufd or an unknown flag -EINVAL;
 *   the group file open -EBUSY; a second bind of this file, or a bind while another file of the
 *   device is bound, -EINVAL; a token for a device that takes none -EINVAL; a closed fd -EBADF, a
 *   fd that is no iommufd -EBADFD; then iommufd_device_bind() (-EPERM when a container owns the
 *   group). out_devid returns the device's object id.
 * - Every other ioctl before a bind is -EINVAL.
 * - VFIO_DEVICE_ATTACH_IOMMUFD_PT: argsz below 12 or unknown flags -EINVAL, a PASID attach
 *   -EINVAL (the simulated device has no PASID capability); attach (or replace, once attached)
 *   to the IOAS or HWPT pt_id, which returns the HWPT's id.
 * - VFIO_DEVICE_DETACH_IOMMUFD_PT: argsz below 8 or flags -EINVAL; detaching a device that is
 *   not attached does nothing.
 * - Closing the file detaches and unbinds (an automatic HWPT goes, unpinning its IOAS's pages).
 * The device's own ioctls (vfio-pci's regions, IRQs, features) are not modelled (-ENOTTY).
 */
import { Errno } from '@cocosim/core';
import { File, Inode, S_IFCHR, open_fmode, type FileOperations, type FileOwner, type Task } from '@cocosim/mm';
import { vfio_device_block_group, vfio_device_unblock_group } from './group.js';
import { iommufd_device_attach, iommufd_device_bind, iommufd_device_detach, iommufd_device_replace, iommufd_device_unbind } from './iommufd/device.js';
import { iommufd_ctx_from_file } from './iommufd/main.js';
import type { IommufdCtx } from './iommufd/iommufd_private.js';
import { copy_fields, get_s32, user_struct } from './uaccess.js';
import {
  VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT_MINSZ,
  VFIO_DEVICE_ATTACH_PASID,
  VFIO_DEVICE_BIND_FLAG_TOKEN,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_BIND_IOMMUFD_MINSZ,
  VFIO_DEVICE_DETACH_IOMMUFD_PT,
  VFIO_DEVICE_DETACH_IOMMUFD_PT_MINSZ,
  VFIO_DEVICE_DETACH_PASID,
} from './uapi.js';
import type { VfioDevice } from './vfio_main.js';

/** struct vfio_device_file: one open file of a device. */
export class VfioDeviceFile {
  access_granted = false;
  iommufd: IommufdCtx | null = null;
  devid = 0;

  constructor(readonly device: VfioDevice) {}
}

/** vfio_df_open() for a cdev file: the device opens once, binding to the file's iommufd. */
function vfio_df_open(df: VfioDeviceFile): number {
  const device = df.device;
  /* Only the group path allows the device to be opened multiple times. */
  if (device.open_count !== 0) return -Errno.EINVAL;
  /* vfio_iommufd_physical_bind() */
  const idev = iommufd_device_bind(df.iommufd!, device.dev, device.module.type1_params.allow_unsafe_interrupts);
  if (typeof idev === 'number') return idev;
  device.iommufd_device = idev;
  df.devid = idev.id;
  device.open_count++;
  return 0;
}

/** vfio_df_close(): detach (vfio_iommufd_physical_unbind()) and unbind. */
function vfio_df_close(df: VfioDeviceFile): void {
  const device = df.device;
  const idev = device.iommufd_device!;
  if (device.iommufd_attached) {
    iommufd_device_detach(idev);
    device.iommufd_attached = false;
  }
  iommufd_device_unbind(idev);
  device.iommufd_device = null;
  device.open_count--;
}

/** VFIO_DEVICE_BIND_IOMMUFD (vfio_df_ioctl_bind_iommufd()). */
function vfio_df_ioctl_bind_iommufd(df: VfioDeviceFile, arg: unknown, current: Task): number {
  const s = user_struct(arg);
  if (s === undefined) return -Errno.EFAULT;
  const bind = copy_fields(s, ['argsz', 'flags'], []);
  const iommufd = get_s32(s, 'iommufd');
  if (bind === undefined || iommufd === undefined) return -Errno.EFAULT;
  if (bind.argsz < VFIO_DEVICE_BIND_IOMMUFD_MINSZ) return -Errno.EINVAL;
  /* copy_struct_from_user(&bind, minsz, ...): the token pointer lies past minsz */
  if (bind.argsz > VFIO_DEVICE_BIND_IOMMUFD_MINSZ) {
    for (const [k, v] of Object.entries(s)) {
      if (['argsz', 'flags', 'iommufd', 'out_devid'].includes(k)) continue;
      if (!(v === undefined || v === 0 || v === 0n || v === null)) return -Errno.E2BIG;
    }
  }
  if (iommufd < 0 || bind.flags & ~VFIO_DEVICE_BIND_FLAG_TOKEN) return -Errno.EINVAL;
  let ret = vfio_device_block_group(df.device.group);
  if (ret) return ret;
  fail: {
    /* one device cannot be bound twice */
    if (df.access_granted) {
      ret = -Errno.EINVAL;
      break fail;
    }
    /* vfio_df_check_token(): vfio-pci takes a VF token only for SR-IOV PFs and VFs */
    if (bind.flags & VFIO_DEVICE_BIND_FLAG_TOKEN) {
      ret = -Errno.EINVAL;
      break fail;
    }
    /* iommufd_ctx_from_fd() */
    const file = current.files.lookup(iommufd);
    if (file === undefined) {
      ret = -Errno.EBADF;
      break fail;
    }
    const ictx = iommufd_ctx_from_file(file);
    if (typeof ictx === 'number') {
      ret = ictx;
      break fail;
    }
    df.iommufd = ictx;
    ret = vfio_df_open(df);
    if (ret) {
      df.iommufd = null;
      break fail;
    }
    s.out_devid = df.devid;
    df.access_granted = true;
    return 0;
  }
  vfio_device_unblock_group(df.device.group);
  return ret;
}

/** VFIO_DEVICE_ATTACH_IOMMUFD_PT (vfio_df_ioctl_attach_pt()). */
function vfio_df_ioctl_attach_pt(df: VfioDeviceFile, arg: unknown): number {
  const s = user_struct(arg);
  if (s === undefined) return -Errno.EFAULT;
  const attach = copy_fields(s, ['argsz', 'flags', 'pt_id'], []);
  if (attach === undefined) return -Errno.EFAULT;
  if (attach.argsz < VFIO_DEVICE_ATTACH_IOMMUFD_PT_MINSZ) return -Errno.EINVAL;
  if (attach.flags & ~VFIO_DEVICE_ATTACH_PASID) return -Errno.EINVAL;
  /* iommufd_device_attach() with a PASID: the device has none */
  if (attach.flags & VFIO_DEVICE_ATTACH_PASID) return -Errno.EINVAL;
  /* vfio_iommufd_physical_attach_ioas() */
  const device = df.device;
  const pt_id = { value: attach.pt_id };
  const rc = device.iommufd_attached ? iommufd_device_replace(device.iommufd_device!, pt_id) : iommufd_device_attach(device.iommufd_device!, pt_id);
  if (rc) return rc;
  device.iommufd_attached = true;
  s.pt_id = pt_id.value;
  return 0;
}

/** VFIO_DEVICE_DETACH_IOMMUFD_PT (vfio_df_ioctl_detach_pt()). */
function vfio_df_ioctl_detach_pt(df: VfioDeviceFile, arg: unknown): number {
  const s = user_struct(arg);
  if (s === undefined) return -Errno.EFAULT;
  const detach = copy_fields(s, ['argsz', 'flags'], []);
  if (detach === undefined) return -Errno.EFAULT;
  if (detach.argsz < VFIO_DEVICE_DETACH_IOMMUFD_PT_MINSZ) return -Errno.EINVAL;
  if (detach.flags & ~VFIO_DEVICE_DETACH_PASID) return -Errno.EINVAL;
  if (detach.flags & VFIO_DEVICE_DETACH_PASID) return -Errno.EINVAL;
  /* vfio_iommufd_physical_detach_ioas() */
  const device = df.device;
  if (!device.iommufd_attached) return 0;
  iommufd_device_detach(device.iommufd_device!);
  device.iommufd_attached = false;
  return 0;
}

/** vfio_device_fops_unl_ioctl() for a cdev file. */
function vfio_device_fops_unl_ioctl(file: File, cmd: number, arg: unknown, current: FileOwner): number {
  const df = file.private_data as VfioDeviceFile;
  if (cmd === VFIO_DEVICE_BIND_IOMMUFD) return vfio_df_ioctl_bind_iommufd(df, arg, current as Task);
  if (!df.access_granted) return -Errno.EINVAL;
  switch (cmd) {
    case VFIO_DEVICE_ATTACH_IOMMUFD_PT:
      return vfio_df_ioctl_attach_pt(df, arg);
    case VFIO_DEVICE_DETACH_IOMMUFD_PT:
      return vfio_df_ioctl_detach_pt(df, arg);
    default:
      return -Errno.ENOTTY;
  }
}

/** vfio_device_fops_release(): a bound file unbinds. */
function vfio_device_fops_release(_inode: Inode, file: File): void {
  const df = file.private_data as VfioDeviceFile;
  if (!df.access_granted) return;
  vfio_df_close(df);
  df.iommufd = null;
  df.access_granted = false;
  vfio_device_unblock_group(df.device.group);
}

export const vfio_device_fops: FileOperations = {
  unlocked_ioctl: vfio_device_fops_unl_ioctl,
  release: vfio_device_fops_release,
};

/** vfio_device_add() with CONFIG_VFIO_DEVICE_CDEV: the device node /dev/vfio/devices/vfio<N>. */
export function vfio_device_cdev_register(vdev: VfioDevice): void {
  const kernel = vdev.module.kernel;
  const inode = new Inode(kernel.get_next_ino(), S_IFCHR | 0o600, {}, vfio_device_fops, kernel.next_mapping_id());
  kernel.register_device(vdev.cdev_path, (_k, flags) => {
    /* vfio_device_fops_cdev_open() */
    const file = new File(inode, vfio_device_fops, flags, open_fmode(flags));
    file.private_data = new VfioDeviceFile(vdev);
    return file;
  });
}
