/**
 * VFIO and iommufd in the trace format (docs/trace-format.md, "Ops outside the generic part").
 *
 * The VFIO type1 and iommufd requests go through the generic `ioctl` op by their uapi names
 * (include/uapi/linux/vfio.h, include/uapi/linux/iommufd.h; names.ts registers them), with
 * structs in the kernel's field names:
 *
 *   {"op": "ioctl", "fd": "$c", "req": "VFIO_IOMMU_MAP_DMA",
 *    "arg": {"argsz": 32, "flags": "VFIO_DMA_MAP_FLAG_READ|VFIO_DMA_MAP_FLAG_WRITE", "vaddr": "$m", "iova": 1048576, "size": 4096}}
 *
 * This file lists the fields each request writes back (they come back in the result's "arg"),
 * and adds the simulated PCI device, which is hardware and so no system call (not generic):
 *
 * | op | arguments | returns (`ret`) |
 * |---|---|---|
 * | `vfio_device_add` | (none) | the device's index N, with `"arg": {"name", "group", "cdev", "iommu_group"}` |
 * | `dma_read` | device, iova, len | 0 with `data`; or -1, errno `EFAULT` (IOMMU fault) or `EIO` (poisoned read), `"arg": {"error", "iova", "write", "reason"}` |
 * | `dma_write` | device, iova, data | 0; or -1 as for `dma_read` |
 *
 * `vfio_device_add` plugs in a PCI function bound to vfio-pci, alone in a new IOMMU group
 * (vfio/src/vfio_main.ts vfio_sim_device_add()): `group` is its group node /dev/vfio/GROUP (the
 * type1 path) and `cdev` its device node /dev/vfio/devices/vfioN (the iommufd path), both for
 * the `open` op. The first device of a host is index 0 in group 0, the next 1 in group 1, and
 * so on. Its ret is the device's handle: bind it with "as" and pass it as `device`.
 *
 * `dma_read` / `dma_write` are the device's memory requests at a bus address (IOVA), translated
 * by the IOMMU through the domain of the device's group (vfio/src/device_dma.ts). A request the
 * IOMMU refuses is an I/O page fault: the transfer stops there, the pages before it having been
 * transferred, as on a bus; `reason` says what refused it ("blocked", "unmapped", "read-only",
 * "write-only", or the platform's reason). Errnos here are the ops' own convention, as there is
 * no system call: EFAULT for an I/O page fault, EIO for a poisoned completion, ENODEV for an
 * index no device has, EINVAL for an argument no C program could pass (not an integer, or a
 * length beyond what the replayer allocates), ENOSYS on a host without VFIO.
 */
import { Errno } from '@cocosim/core';
import { ulong_arg } from '@cocosim/mm';
import {
  IOMMU_IOAS_ALLOC, IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_MAP, IOMMU_IOAS_MAP_FILE, IOMMU_IOAS_UNMAP, VFIO_CHECK_EXTENSION,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_BIND_IOMMUFD, VFIO_GET_API_VERSION, VFIO_GROUP_GET_STATUS, VFIO_GROUP_SET_CONTAINER,
  VFIO_GROUP_UNSET_CONTAINER, VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA, VFIO_SET_IOMMU,
  dma_read, dma_write, isDmaError, vfio_module, vfio_sim_device_add, type DmaError, type VfioDevice,
} from '@cocosim/vfio';
import { registerIoctl, registerOp, type OpContext } from './ops.js';
import type { OpResult } from './results.js';
import { MAX_DATA_LEN } from './values.js';

/** The device with that index, or the errno of the op. */
function deviceArg(ctx: OpContext, index: unknown): VfioDevice | number {
  const module = vfio_module(ctx.process.kernel);
  if (module === undefined) return Errno.ENOSYS;
  const i = ulong_arg(index);
  if (i === undefined) return Errno.EINVAL;
  return module.devices.find((d) => BigInt(d.index) === i) ?? Errno.ENODEV;
}

/** A DMA's error as a result: -1 with the op's errno, and the fault in "arg". */
function dmaErrorResult(e: DmaError): OpResult {
  return {
    ret: -1,
    errno: e.error === 'poison' ? Errno.EIO : Errno.EFAULT,
    arg: { error: e.error, iova: e.iova, write: e.write, reason: e.reason },
  };
}

/** Registers the requests' out-fields and the device's ops (called once, by ops.ts). */
export function registerVfioOps(): void {
  /*
   * What each request copies back to user space (drivers/vfio/container.c, group.c,
   * vfio_iommu_type1.c, device_cdev.c; drivers/iommu/iommufd/ioas.c, iommufd_ucmd_respond()).
   * An empty list: the request writes nothing back.
   */
  for (const req of [VFIO_GET_API_VERSION, VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU, VFIO_GROUP_SET_CONTAINER, VFIO_GROUP_UNSET_CONTAINER, VFIO_IOMMU_MAP_DMA]) {
    registerIoctl(req, { outFields: [] });
  }
  // vfio_group_ioctl_get_status(): copy_to_user() of the whole minsz struct, flags set.
  registerIoctl(VFIO_GROUP_GET_STATUS, { outFields: ['flags'] });
  // vfio_iommu_type1_get_info(): argsz grows when the capability chain does not fit; the chain follows the struct.
  registerIoctl(VFIO_IOMMU_GET_INFO, { outFields: ['argsz', 'flags', 'iova_pgsizes', 'cap_offset', 'caps'] });
  // vfio_iommu_type1_unmap_dma(): size becomes the bytes unmapped.
  registerIoctl(VFIO_IOMMU_UNMAP_DMA, { outFields: ['size'] });
  // vfio_df_ioctl_bind_iommufd(): copy_to_user(&arg->out_devid).
  registerIoctl(VFIO_DEVICE_BIND_IOMMUFD, { outFields: ['out_devid'] });
  // vfio_df_ioctl_attach_pt(): pt_id becomes the HWPT the device attached to.
  registerIoctl(VFIO_DEVICE_ATTACH_IOMMUFD_PT, { outFields: ['pt_id'] });
  registerIoctl(IOMMU_IOAS_ALLOC, { outFields: ['out_ioas_id'] });
  // iommufd_ioas_map(), iommufd_ioas_map_file(): the IOVA chosen (or the fixed one).
  registerIoctl(IOMMU_IOAS_MAP, { outFields: ['iova'] });
  registerIoctl(IOMMU_IOAS_MAP_FILE, { outFields: ['iova'] });
  // iommufd_ioas_unmap(): length becomes the bytes unmapped.
  registerIoctl(IOMMU_IOAS_UNMAP, { outFields: ['length'] });
  // iommufd_ioas_iova_ranges(): the count, the alignment, and the ranges written at allowed_iovas.
  registerIoctl(IOMMU_IOAS_IOVA_RANGES, { outFields: ['num_iovas', 'out_iova_alignment', 'allowed_iovas'] });

  registerOp({
    name: 'vfio_device_add',
    args: [],
    returns: 'the device\'s index N, with `"arg": {"name", "group", "cdev", "iommu_group"}`',
    doc: 'Plugs in a simulated PCI device bound to vfio-pci, alone in a new IOMMU group: open its group node (type1) or its cdev (iommufd); bind ret with "as" for dma_read/dma_write.',
    generic: false,
    run: (_args, ctx) => {
      const kernel = ctx.process.kernel;
      if (vfio_module(kernel) === undefined) return { ret: -1, errno: Errno.ENOSYS };
      const dev = vfio_sim_device_add(kernel);
      return { ret: dev.index, arg: { name: dev.dev.name, group: dev.group_path, cdev: dev.cdev_path, iommu_group: dev.group.iommu_group.id } };
    },
  });
  registerOp({
    name: 'dma_read',
    args: [{ name: 'device', kind: 'int' }, { name: 'iova', kind: 'u64' }, { name: 'len', kind: 'u64', max: MAX_DATA_LEN }],
    returns: '0 with `data`; or -1, errno EFAULT (I/O page fault) or EIO (poison), the fault in `"arg"`',
    doc: 'The device reads `len` bytes at bus address `iova` through the IOMMU; a fault stops the transfer (the `arg` says where and why).',
    generic: false,
    run: ([device, iova, len], ctx) => {
      const dev = deviceArg(ctx, device);
      if (typeof dev === 'number') return { ret: -1, errno: dev };
      const a = ulong_arg(iova);
      const n = ulong_arg(len);
      if (a === undefined || n === undefined || n > BigInt(MAX_DATA_LEN)) return { ret: -1, errno: Errno.EINVAL };
      const r = dma_read(dev.dev, a, Number(n));
      return isDmaError(r) ? dmaErrorResult(r) : { ret: 0, data: r };
    },
  });
  registerOp({
    name: 'dma_write',
    args: [{ name: 'device', kind: 'int' }, { name: 'iova', kind: 'u64' }, { name: 'data', kind: 'data' }],
    returns: '0; or -1, errno EFAULT (I/O page fault), the fault in `"arg"`',
    doc: 'The device writes `data` at bus address `iova` through the IOMMU; a fault stops the transfer, the pages before it written.',
    generic: false,
    run: ([device, iova, data], ctx) => {
      const dev = deviceArg(ctx, device);
      if (typeof dev === 'number') return { ret: -1, errno: dev };
      const a = ulong_arg(iova);
      if (a === undefined || !(data instanceof Uint8Array)) return { ret: -1, errno: Errno.EINVAL };
      const r = dma_write(dev.dev, a, data);
      return isDmaError(r) ? dmaErrorResult(r) : { ret: 0 };
    },
  });
}
