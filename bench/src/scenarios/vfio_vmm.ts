/**
 * The VMM's device assignment (QEMU's vfio listener): a type1 container with one simulated
 * device, and guest memory mapped for DMA at IOVA = GPA through VFIO_IOMMU_MAP_DMA of the VMM's
 * mapping (vfio_listener_region_add -> vfio_dma_map). Used by the device scenarios S7 and S8.
 */
import { O_RDWR } from '@cocosim/mm';
import type { CvmPolicy, CvmVm } from '@cocosim/kvm';
import {
  VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_WRITE, VFIO_GROUP_SET_CONTAINER, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA, VFIO_SET_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  dma_read, dma_write, isDmaError, vfio_sim_device_add, type VfioDevice,
} from '@cocosim/vfio';
import type { Outcome } from './scenario.js';

export interface VmmVfio {
  readonly container: number;
  readonly device: VfioDevice;
}

/** Container, device, group, VFIO_SET_IOMMU(type1v2): -1 with errno at the first call that fails. */
export function vmm_vfio_open(vm: CvmVm): VmmVfio | number {
  const { p } = vm;
  const container = p.open('/dev/vfio/vfio', O_RDWR);
  if (container < 0) return -1;
  const device = vfio_sim_device_add(vm.p.mm.kernel);
  const group = p.open(device.group_path, O_RDWR);
  if (group < 0) return -1;
  if (p.ioctl(group, VFIO_GROUP_SET_CONTAINER, container) < 0) return -1;
  if (p.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0) return -1;
  return { container, device };
}

/** VFIO_IOMMU_MAP_DMA of the VMM's mapping at `hva` for [gpa, gpa + len), IOVA = GPA. */
export function vmm_vfio_map(vm: CvmVm, v: VmmVfio, gpa: bigint, hva: bigint, len: bigint): number {
  return vm.p.ioctl(v.container, VFIO_IOMMU_MAP_DMA, {
    argsz: 32, flags: VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE, vaddr: hva, iova: gpa, size: len,
  });
}

/** The pfn the IOMMU maps at `iova`, undefined when nothing is mapped. */
export function iommu_pfn(v: VmmVfio, iova: bigint): number | undefined {
  return v.device.dev.iommu_group.domain?.lookup(Number(iova / 4096n))?.pfn;
}

/** A device write of `data` at `iova`: '0', or the IOMMU's fault. */
export function device_write(v: VmmVfio, iova: bigint, data: Uint8Array): Outcome {
  const r = dma_write(v.device.dev, iova, data);
  return isDmaError(r) ? `${r.error}: ${r.reason}` : '0';
}

/** A device read at `iova`: the bytes as hex, or the IOMMU's fault. */
export function device_read(v: VmmVfio, iova: bigint, len: number): Outcome {
  const r = dma_read(v.device.dev, iova, len);
  return isDmaError(r) ? `${r.error}: ${r.reason}` : Buffer.from(r).toString('hex');
}

/** VFIO_IOMMU_UNMAP_DMA of [gpa, gpa + len) (IOVA = GPA). */
export function vmm_vfio_unmap(vm: CvmVm, v: VmmVfio, gpa: bigint, len: bigint): number {
  return vm.p.ioctl(v.container, VFIO_IOMMU_UNMAP_DMA, { argsz: 24, flags: 0, iova: gpa, size: len });
}

/**
 * QEMU's RamDiscardManager coordination for a VFIO device (hw/vfio/listener.c
 * vfio_ram_discard_notify_discard / vfio_ram_discard_notify_populate, as the guest_memfd series
 * wires it): before a range goes private its DMA mapping is removed, so no pin holds the shared
 * page; after a range became shared it is mapped again from the VMM's mapping.
 */
export function vmm_vfio_ram_discard_listener(v: VmmVfio): NonNullable<CvmPolicy['listener']> {
  return {
    before: (vm, gpa, len, to_private) => (to_private ? vmm_vfio_unmap(vm, v, gpa, len) : 0),
    after(vm, gpa, len, to_private) {
      const hva = vm.design.hva(vm, gpa);
      return to_private || hva === undefined ? 0 : vmm_vfio_map(vm, v, gpa, hva, len);
    },
  };
}
