/**
 * The VFIO core's devices (drivers/vfio/vfio_main.c, include/linux/vfio.h) and the simulated
 * PCI devices they drive.
 *
 * A simulated device is what a test or scenario plugs in (vfio_sim_device_add()): a PCI
 * function bound to vfio-pci, alone in a new IOMMU group, so that it appears as the group node
 * /dev/vfio/<group id> (group.ts: the type1 container path) and as the device node
 * /dev/vfio/devices/vfio<N> (device_cdev.ts: the iommufd path). Its DMA is simulated hardware
 * (device_dma.ts: dma_read/dma_write on vfio_device.dev).
 *
 * VfioModule holds the host's VFIO state: the IOMMU, the groups and devices, and the
 * vfio_iommu_type1 module parameters.
 */
import { BUG_ON } from '@cocosim/core';
import type { Kernel } from '@cocosim/mm';
import { Device, iommu_group_add_device, type Iommu } from './iommu.js';
import type { VfioType1Params } from './vfio_iommu_type1.js';
import { VfioGroup, vfio_group_register } from './group.js';
import { vfio_device_cdev_register } from './device_cdev.js';
import type { IommufdDevice } from './iommufd/device.js';

/** The VFIO state of one simulated host. */
export class VfioModule {
  /** Groups by iommu group id. */
  readonly groups = new Map<number, VfioGroup>();
  readonly devices: VfioDevice[] = [];
  /** vfio_device_set_ida-like index of /dev/vfio/devices/vfioN. */
  next_device_index = 0;

  constructor(
    readonly kernel: Kernel,
    readonly iommu: Iommu,
    /** vfio_iommu_type1's module parameters (dma_entry_limit, disable_hugepages, allow_unsafe_interrupts). */
    readonly type1_params: VfioType1Params,
  ) {}
}

const modules = new WeakMap<Kernel, VfioModule>();

/** The host's VFIO state (registered by vfioRegistrar()); undefined on a host without VFIO. */
export function vfio_module(kernel: Kernel): VfioModule | undefined {
  return modules.get(kernel);
}

/** Bind `module` to its kernel (vfioRegistrar()). */
export function vfio_module_register(module: VfioModule): void {
  BUG_ON(modules.has(module.kernel), 'VFIO registered twice on one host');
  modules.set(module.kernel, module);
}

/** struct vfio_device: a device driven through VFIO. */
export class VfioDevice {
  /** Opens of the device (vfio_df_open()). */
  open_count = 0;
  /** iommufd binding of the cdev path (vfio_iommufd_physical_bind()). */
  iommufd_device: IommufdDevice | null = null;
  iommufd_attached = false;

  constructor(
    readonly module: VfioModule,
    /** The struct device: its DMA goes through dev.iommu_group.domain. */
    readonly dev: Device,
    readonly group: VfioGroup,
    /** N of /dev/vfio/devices/vfioN. */
    readonly index: number,
  ) {}

  /** /dev/vfio/<group id>. */
  get group_path(): string {
    return `/dev/vfio/${this.group.iommu_group.id}`;
  }

  /** /dev/vfio/devices/vfio<N>. */
  get cdev_path(): string {
    return `/dev/vfio/devices/vfio${this.index}`;
  }
}

export interface SimDeviceOptions {
  /** dev_name(): a PCI address (default 0000:00:NN.0, NN from 01 up). */
  readonly name?: string;
}

/**
 * Plug in a simulated PCI device bound to vfio-pci (vfio_pci_core_register_device() ->
 * vfio_register_group_dev()): a new IOMMU group with its group node, and the device's cdev.
 */
export function vfio_sim_device_add(kernel: Kernel, opts: SimDeviceOptions = {}): VfioDevice {
  const module = vfio_module(kernel);
  BUG_ON(module === undefined, 'vfio_sim_device_add() on a host without vfioRegistrar()');
  const index = module!.next_device_index++;
  const name = opts.name ?? `0000:00:${(index + 1).toString(16).padStart(2, '0')}.0`;
  const dev = new Device(name, module!.iommu, 'vfio-pci');
  const iommu_group = iommu_group_add_device(module!.iommu, dev);
  const group = vfio_group_register(module!, iommu_group);
  const vdev = new VfioDevice(module!, dev, group, index);
  group.device_list.push(vdev);
  module!.devices.push(vdev);
  vfio_device_cdev_register(vdev);
  return vdev;
}
