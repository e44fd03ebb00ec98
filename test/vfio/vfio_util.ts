/**
 * Helpers of the VFIO and iommufd tests, in the style of tools/testing/selftests/vfio/lib and
 * tools/testing/selftests/iommu/iommufd_utils.h: a host with VFIO, a type1 container with one
 * simulated device, an iommufd with an IOAS and a device attached to it.
 */
import { WarnSink, type HostRegistrar } from '@cocosim/core';
import {
  Kernel, MAP_ANONYMOUS, MAP_FAILED, MAP_PRIVATE, O_RDWR, PageAllocator, PageStore, PROT_READ, PROT_WRITE,
  mmRegistrar, type Process,
} from '@cocosim/mm';
import {
  IOMMU_IOAS_ALLOC, IOMMU_IOAS_ALLOC_SIZE, VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_BIND_IOMMUFD, VFIO_GROUP_SET_CONTAINER,
  VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU, vfioRegistrar, vfio_sim_device_add, type VfioDevice, type VfioHostOptions,
} from '@cocosim/vfio';
import { createSimHost, type SimHost } from '../lib/fixtures.js';
import { TEST_ASSERT } from '../lib/test_util.js';

export interface VfioTestHostOptions extends VfioHostOptions {
  /** Pages of RAM (default 2^18: 1 GiB). */
  readonly nr_pages?: number;
  /** Make the upper half of RAM ZONE_MOVABLE (movablecore=). */
  readonly movable?: boolean;
}

/** A host with mm and VFIO (no KVM); dispose its container after. */
export function vfioHost(opts: VfioTestHostOptions = {}): SimHost {
  const nr_pages = opts.nr_pages ?? 2 ** 18;
  const mm: HostRegistrar = opts.movable
    ? (root) => {
        const warn = root.resolve(WarnSink);
        const store = new PageStore(nr_pages, { warn, movable: [{ start_pfn: nr_pages / 2, nr_pages: nr_pages / 2 }] });
        root.registerInstance(PageStore, store);
        root.registerInstance(PageAllocator, new PageAllocator(store));
        root.registerInstance(Kernel, root.resolve(Kernel));
      }
    : mmRegistrar({ nr_pages });
  return createSimHost({ seed: 0 }, [mm, vfioRegistrar(opts)]);
}

/** An anonymous private read-write mapping of `size` bytes: its address. */
export function anon_map(p: Process, size: number | bigint, flags = 0): bigint {
  const addr = p.mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0);
  TEST_ASSERT(addr !== MAP_FAILED, `mmap: errno ${p.errno}`);
  return addr;
}

/** A type1 container holding one new simulated device's group: the fds and the device. */
export interface Type1Setup {
  readonly container: number;
  readonly group: number;
  readonly device: VfioDevice;
}

/** Open /dev/vfio/vfio, plug in a device, put its group in the container, VFIO_SET_IOMMU(type1v2). */
export function type1_setup(host: SimHost, p: Process, iommu_type = VFIO_TYPE1v2_IOMMU): Type1Setup {
  const container = p.open('/dev/vfio/vfio', O_RDWR);
  TEST_ASSERT(container >= 0, `open /dev/vfio/vfio: errno ${p.errno}`);
  const device = vfio_sim_device_add(host.kernel);
  const group = p.open(device.group_path, O_RDWR);
  TEST_ASSERT(group >= 0, `open ${device.group_path}: errno ${p.errno}`);
  TEST_ASSERT(p.ioctl(group, VFIO_GROUP_SET_CONTAINER, container) === 0, `VFIO_GROUP_SET_CONTAINER: errno ${p.errno}`);
  TEST_ASSERT(p.ioctl(container, VFIO_SET_IOMMU, iommu_type) === 0, `VFIO_SET_IOMMU: errno ${p.errno}`);
  return { container, group, device };
}

/** test_ioctl_ioas_alloc(): a new IOAS of iommufd `fd`. */
export function ioas_alloc(p: Process, fd: number): number {
  const cmd = { size: IOMMU_IOAS_ALLOC_SIZE, flags: 0, out_ioas_id: 0 };
  TEST_ASSERT(p.ioctl(fd, IOMMU_IOAS_ALLOC, cmd) === 0, `IOMMU_IOAS_ALLOC: errno ${p.errno}`);
  return cmd.out_ioas_id;
}

/** A simulated device opened by its cdev and bound to iommufd `fd`: the cdev fd, the device id. */
export function device_bind(host: SimHost, p: Process, fd: number, device?: VfioDevice): { devfd: number; devid: number; device: VfioDevice } {
  const dev = device ?? vfio_sim_device_add(host.kernel);
  const devfd = p.open(dev.cdev_path, O_RDWR);
  TEST_ASSERT(devfd >= 0, `open ${dev.cdev_path}: errno ${p.errno}`);
  const bind = { argsz: 16, flags: 0, iommufd: fd, out_devid: 0 };
  TEST_ASSERT(p.ioctl(devfd, VFIO_DEVICE_BIND_IOMMUFD, bind) === 0, `VFIO_DEVICE_BIND_IOMMUFD: errno ${p.errno}`);
  return { devfd, devid: bind.out_devid, device: dev };
}

/** VFIO_DEVICE_ATTACH_IOMMUFD_PT of a bound device to `pt_id`: the HWPT id. */
export function device_attach(p: Process, devfd: number, pt_id: number): number {
  const attach = { argsz: 12, flags: 0, pt_id };
  TEST_ASSERT(p.ioctl(devfd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, attach) === 0, `VFIO_DEVICE_ATTACH_IOMMUFD_PT: errno ${p.errno}`);
  return attach.pt_id;
}
