/**
 * Devices bound to iommufd and their page tables (drivers/iommu/iommufd/device.c and
 * hw_pagetable.c, Linux 6.18), as the VFIO device cdev drives them (device_cdev.ts).
 *
 * - iommufd_device_bind(): the device's group DMA becomes the context's (iommu_device_claim_dma_owner:
 *   -EPERM when a VFIO container or another context owns it); a device object, held by the VFIO
 *   driver until iommufd_device_unbind() (so IOMMU_DESTROY of it is -EBUSY), which also keeps the
 *   context's file open.
 * - Attaching to an IOAS id (iommufd_device_auto_get_domain()): reuse an automatic HWPT of that
 *   IOAS, else allocate one (iommufd_hwpt_paging_alloc(): a paging domain of the device's IOMMU,
 *   the device attached, then iopt_table_add_domain(), which pins and maps every area of the
 *   IOAS); the device's reserved regions become reserved IOVA of the IOAS (-EADDRINUSE when an area
 *   is there). Attaching to an HWPT id uses it; any other object is -EINVAL, no object -ENOENT.
 *   The HWPT holds its IOAS (IOMMU_DESTROY of the IOAS: -EBUSY) and each attached device holds
 *   the HWPT; an automatic HWPT goes away with its last device, unmapping and unpinning.
 * - Replacing moves an attached device to another HWPT or IOAS; the same one is a no-op.
 */
import { BUG_ON, Errno } from '@cocosim/core';
import {
  iommu_attach_group,
  iommu_detach_group,
  iommu_device_claim_dma_owner,
  iommu_device_release_dma_owner,
  iommu_domain_free,
  iommu_enforce_cache_coherency,
  iommu_group_has_isolated_msi,
  iommu_paging_domain_alloc,
  type Device,
  type IommuDomain,
  type IommuGroup,
} from '../iommu.js';
import { iopt_remove_reserved_iova, iopt_table_add_domain, iopt_table_enforce_dev_resv_regions, iopt_table_remove_domain } from './io_pagetable.js';
import { IommufdIoas } from './ioas.js';
import {
  IOMMUFD_OBJ_ANY,
  IOMMUFD_OBJ_DEVICE,
  IOMMUFD_OBJ_HWPT_PAGING,
  IOMMUFD_OBJ_IOAS,
  IommufdObject,
  iommufd_get_object,
  iommufd_object_abort,
  iommufd_object_alloc,
  iommufd_object_destroy_user,
  iommufd_object_remove,
  type IommufdCtx,
} from './iommufd_private.js';

/** struct iommufd_group: the context's view of one iommu_group. */
export class IommufdGroup {
  ref = 1;
  hwpt: IommufdHwptPaging | null = null;
  readonly device_list: IommufdDevice[] = [];

  constructor(readonly ictx: IommufdCtx, readonly group: IommuGroup) {}
}

/** iommufd_get_group(): the context's group object for `dev`, created on first use. */
function iommufd_get_group(ictx: IommufdCtx, dev: Device): IommufdGroup {
  const id = dev.iommu_group.id;
  const cur = ictx.groups.get(id) as IommufdGroup | undefined;
  if (cur !== undefined) {
    cur.ref++;
    return cur;
  }
  const igroup = new IommufdGroup(ictx, dev.iommu_group);
  ictx.groups.set(id, igroup);
  return igroup;
}

/** iommufd_put_group(). */
function iommufd_put_group(igroup: IommufdGroup): void {
  if (--igroup.ref) return;
  BUG_ON(igroup.hwpt !== null || igroup.device_list.length !== 0, 'iommufd_group_release() of a group in use');
  igroup.ictx.groups.delete(igroup.group.id);
}

/** struct iommufd_device. */
export class IommufdDevice extends IommufdObject {
  readonly type = IOMMUFD_OBJ_DEVICE;
  /** device_iommu_capable(dev, IOMMU_CAP_ENFORCE_CACHE_COHERENCY). */
  readonly enforce_cache_coherency = true;

  constructor(readonly ictx: IommufdCtx, readonly dev: Device, readonly igroup: IommufdGroup) {
    super();
  }

  /** iommufd_device_destroy(). */
  destroy(): void {
    iommu_device_release_dma_owner(this.dev);
    iommufd_put_group(this.igroup);
    this.ictx.file.fput();
  }
}

/** struct iommufd_hwpt_paging: an HWPT whose domain mirrors an IOAS. */
export class IommufdHwptPaging extends IommufdObject {
  readonly type = IOMMUFD_OBJ_HWPT_PAGING;
  auto_domain = false;
  enforce_cache_coherency = false;
  /** The domain was added to the IOAS's io_pagetable. */
  in_iopt = false;

  constructor(readonly ictx: IommufdCtx, readonly ioas: IommufdIoas, readonly domain: IommuDomain) {
    super();
  }

  /** iommufd_hwpt_paging_destroy(). */
  destroy(): void {
    const i = this.ioas.hwpt_list.indexOf(this);
    if (i >= 0) this.ioas.hwpt_list.splice(i, 1);
    if (this.in_iopt) iopt_table_remove_domain(this.ioas.iopt, this.domain);
    iommu_domain_free(this.domain);
    this.ioas.users--;
  }
}

/**
 * iommufd_device_bind(): bind `dev` to the context (see the file comment).
 * @returns the device object, or -errno
 */
export function iommufd_device_bind(ictx: IommufdCtx, dev: Device, allow_unsafe_interrupts: boolean): IommufdDevice | number {
  const igroup = iommufd_get_group(ictx, dev);
  /* For historical compat with VFIO the insecure interrupt path is allowed if the module parameter is set. */
  if (!iommu_group_has_isolated_msi(igroup.group) && !allow_unsafe_interrupts) {
    iommufd_put_group(igroup);
    return -Errno.EPERM;
  }
  const rc = iommu_device_claim_dma_owner(dev, ictx);
  if (rc) {
    iommufd_put_group(igroup);
    return rc;
  }
  const idev = iommufd_object_alloc(ictx, new IommufdDevice(ictx, dev, igroup));
  ictx.file.get_file();
  /* The calling driver is a user until iommufd_device_unbind() */
  idev.users++;
  return idev;
}

/** iommufd_device_unbind(): the VFIO driver lets go; the device object is destroyed. */
export function iommufd_device_unbind(idev: IommufdDevice): void {
  iommufd_object_destroy_user(idev.ictx, idev);
}

/**
 * iommufd_hw_pagetable_attach(): attach a device to an HWPT (its group, for the group's first
 * device). -EINVAL when the group is on another HWPT; the reserved-region errors.
 */
function iommufd_hw_pagetable_attach(hwpt: IommufdHwptPaging, idev: IommufdDevice): number {
  const igroup = idev.igroup;
  if (igroup.hwpt !== null && igroup.hwpt !== hwpt) return -Errno.EINVAL;
  let rc = iopt_table_enforce_dev_resv_regions(hwpt.ioas.iopt, idev.dev);
  if (rc) return rc;
  /* Only attach to the group once for the first device that is in the group. */
  if (igroup.device_list.length === 0) {
    rc = iommu_attach_group(hwpt.domain, igroup.group);
    if (rc) {
      iopt_remove_reserved_iova(hwpt.ioas.iopt, idev.dev);
      return rc;
    }
    igroup.hwpt = hwpt;
  }
  hwpt.users++;
  igroup.device_list.push(idev);
  return 0;
}

/** iommufd_hw_pagetable_detach(): the device leaves its HWPT, which the caller puts. */
function iommufd_hw_pagetable_detach(idev: IommufdDevice): IommufdHwptPaging {
  const igroup = idev.igroup;
  const hwpt = igroup.hwpt!;
  igroup.device_list.splice(igroup.device_list.indexOf(idev), 1);
  if (igroup.device_list.length === 0) {
    iommu_detach_group(hwpt.domain, igroup.group);
    igroup.hwpt = null;
  }
  iopt_remove_reserved_iova(hwpt.ioas.iopt, idev.dev);
  return hwpt;
}

/** iommufd_hw_pagetable_put(): an automatic HWPT is destroyed with its last user. */
function iommufd_hw_pagetable_put(ictx: IommufdCtx, hwpt: IommufdHwptPaging): void {
  if (hwpt.auto_domain) {
    iommufd_object_remove(ictx, hwpt, hwpt.id);
    return;
  }
  hwpt.users--;
}

/**
 * iommufd_hwpt_paging_alloc(): a new HWPT on `ioas` with a fresh paging domain of the device's
 * IOMMU; with immediate_attach the device is attached before the domain is filled. On failure
 * nothing is left.
 */
function iommufd_hwpt_paging_alloc(ictx: IommufdCtx, ioas: IommufdIoas, idev: IommufdDevice, immediate_attach: boolean): IommufdHwptPaging | number {
  const hwpt = iommufd_object_alloc(ictx, new IommufdHwptPaging(ictx, ioas, iommu_paging_domain_alloc(idev.dev)));
  /* Pairs with iommufd_hw_pagetable_destroy() */
  ioas.users++;
  /* Set the coherency mode before we do iopt_table_add_domain() */
  if (idev.enforce_cache_coherency) hwpt.enforce_cache_coherency = iommu_enforce_cache_coherency(hwpt.domain);
  const abort = (rc: number): number => {
    iommufd_object_abort(ictx, hwpt);
    hwpt.destroy();
    return rc;
  };
  if (immediate_attach) {
    const rc = iommufd_hw_pagetable_attach(hwpt, idev);
    if (rc) return abort(rc);
  }
  const rc = iopt_table_add_domain(ioas.iopt, hwpt.domain);
  if (rc) {
    if (immediate_attach) {
      iommufd_hw_pagetable_detach(idev);
      hwpt.users--;
    }
    return abort(rc);
  }
  hwpt.in_iopt = true;
  ioas.hwpt_list.push(hwpt);
  return hwpt;
}

/** What an attach or replace leaves for the caller to put (the replaced HWPT), or -errno. */
type AttachResult = { readonly destroy: IommufdHwptPaging | null } | number;
type AttachFn = (idev: IommufdDevice, hwpt: IommufdHwptPaging) => AttachResult;

/** iommufd_device_do_attach(). */
function iommufd_device_do_attach(idev: IommufdDevice, hwpt: IommufdHwptPaging): AttachResult {
  const rc = iommufd_hw_pagetable_attach(hwpt, idev);
  return rc ? rc : { destroy: null };
}

/**
 * iommufd_device_do_replace(): move the attached device's group to `hwpt` (same: nothing);
 * -EINVAL when the group is not attached. The old HWPT is returned for the caller to put.
 */
function iommufd_device_do_replace(idev: IommufdDevice, hwpt: IommufdHwptPaging): AttachResult {
  const igroup = idev.igroup;
  if (igroup.hwpt === null) return -Errno.EINVAL;
  if (hwpt === igroup.hwpt) return { destroy: null };
  const old_hwpt = igroup.hwpt;
  if (hwpt.ioas !== old_hwpt.ioas) {
    for (const cur of igroup.device_list) {
      const rc = iopt_table_enforce_dev_resv_regions(hwpt.ioas.iopt, cur.dev);
      if (rc) {
        for (const d of igroup.device_list) iopt_remove_reserved_iova(hwpt.ioas.iopt, d.dev);
        return rc;
      }
    }
  }
  /* iommu_group_replace_domain() */
  iommu_detach_group(old_hwpt.domain, igroup.group);
  const rc = iommu_attach_group(hwpt.domain, igroup.group);
  BUG_ON(rc !== 0, 'iommu_group_replace_domain() failed');
  if (hwpt.ioas !== old_hwpt.ioas) for (const d of igroup.device_list) iopt_remove_reserved_iova(old_hwpt.ioas.iopt, d.dev);
  igroup.hwpt = hwpt;
  /* Move the refcounts held by the device_list to the new hwpt. Retain a refcount for this thread as the caller will free it. */
  const num_devices = igroup.device_list.length;
  hwpt.users += num_devices;
  if (num_devices > 1) old_hwpt.users -= num_devices - 1;
  return { destroy: old_hwpt };
}

/** iommufd_device_auto_get_domain(): attach to an automatic HWPT of `ioas`, creating one if none fits. */
function iommufd_device_auto_get_domain(idev: IommufdDevice, ioas: IommufdIoas, pt_id: { value: number }, do_attach: AttachFn): AttachResult {
  const immediate_attach = do_attach === iommufd_device_do_attach;
  /* There is no differentiation when domains are allocated, so any domain that is willing to attach to the device is interchangeable with any other. */
  for (const h of ioas.hwpt_list) {
    const hwpt = h as IommufdHwptPaging;
    if (!hwpt.auto_domain) continue;
    const r = do_attach(idev, hwpt);
    if (typeof r === 'number') {
      /* -EINVAL means the domain is incompatible with the device. */
      if (r === -Errno.EINVAL) continue;
      return r;
    }
    pt_id.value = hwpt.id;
    return r;
  }
  const hwpt = iommufd_hwpt_paging_alloc(idev.ictx, ioas, idev, immediate_attach);
  if (typeof hwpt === 'number') return hwpt;
  let destroy: IommufdHwptPaging | null = null;
  if (!immediate_attach) {
    const r = do_attach(idev, hwpt);
    if (typeof r === 'number') {
      iommufd_object_abort(idev.ictx, hwpt);
      hwpt.destroy();
      return r;
    }
    destroy = r.destroy;
  }
  hwpt.auto_domain = true;
  pt_id.value = hwpt.id;
  return { destroy };
}

/** iommufd_device_change_pt(): attach or replace to the object `pt_id` names (IOAS or HWPT). */
function iommufd_device_change_pt(idev: IommufdDevice, pt_id: { value: number }, do_attach: AttachFn): number {
  const pt_obj = iommufd_get_object(idev.ictx, pt_id.value, IOMMUFD_OBJ_ANY);
  if (typeof pt_obj === 'number') return pt_obj;
  let r: AttachResult;
  switch (pt_obj.type) {
    case IOMMUFD_OBJ_HWPT_PAGING:
      r = do_attach(idev, pt_obj as IommufdHwptPaging);
      break;
    case IOMMUFD_OBJ_IOAS:
      r = iommufd_device_auto_get_domain(idev, pt_obj as IommufdIoas, pt_id, do_attach);
      break;
    default:
      r = -Errno.EINVAL;
  }
  if (typeof r === 'number') return r;
  if (r.destroy !== null) iommufd_hw_pagetable_put(idev.ictx, r.destroy);
  return 0;
}

/**
 * iommufd_device_attach(): attach the bound device to the IOAS or HWPT `pt_id`; on success
 * pt_id.value is the HWPT's id.
 */
export function iommufd_device_attach(idev: IommufdDevice, pt_id: { value: number }): number {
  return iommufd_device_change_pt(idev, pt_id, iommufd_device_do_attach);
}

/** iommufd_device_replace(): move the attached device to the IOAS or HWPT `pt_id`. */
export function iommufd_device_replace(idev: IommufdDevice, pt_id: { value: number }): number {
  return iommufd_device_change_pt(idev, pt_id, iommufd_device_do_replace);
}

/** iommufd_device_detach(): the device leaves its HWPT (an automatic one goes with its last device). */
export function iommufd_device_detach(idev: IommufdDevice): void {
  const hwpt = iommufd_hw_pagetable_detach(idev);
  iommufd_hw_pagetable_put(idev.ictx, hwpt);
}
