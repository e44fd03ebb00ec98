import { describe, expect, test } from 'vitest';
import { createRootContainer, stateDigestDiff } from '@cocosim/core';
import {
  Kernel, MAP_ANONYMOUS, MAP_PRIVATE, O_RDWR, PROT_READ, PROT_WRITE, Process, check_vm, mm_state_digest, mmRegistrar,
  unpin_user_page_range_dirty_lock,
} from '@cocosim/mm';
import { vfio_container_iommu } from './container.js';
import { iommu_domain_leaf } from './iommu.js';
import {
  IOMMU_IOAS_ALLOC, IOMMU_IOAS_ALLOC_SIZE, IOMMU_IOAS_MAP, IOMMU_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_SIZE, IOMMU_IOAS_MAP_WRITEABLE,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_BIND_IOMMUFD, VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_WRITE, VFIO_GROUP_SET_CONTAINER, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA,
  VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU,
} from './uapi.js';
import { vfioRegistrar } from './vfio.js';
import { vfio_iommu_type1_domain } from './vfio_iommu_type1.js';
import { vfio_sim_device_add } from './vfio_main.js';

const PG = 4096;
const IOVA = 0x4000_0000n;
const RW = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;

interface Setup {
  kernel: Kernel;
  p: Process;
  container: number;
  buf: bigint;
}

/** A type1 container with one device and 16 pages of anonymous memory mapped for DMA at IOVA. */
function setup(): Setup {
  const kernel = createRootContainer({}, mmRegistrar({ nr_pages: 8192 }), vfioRegistrar()).resolve(Kernel);
  const p = new Process(kernel);
  const container = p.open('/dev/vfio/vfio', O_RDWR);
  const device = vfio_sim_device_add(kernel);
  const group = p.open(device.group_path, O_RDWR);
  expect(p.ioctl(group, VFIO_GROUP_SET_CONTAINER, container)).toBe(0);
  expect(p.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)).toBe(0);
  const buf = p.mmap(0, 64 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  expect(p.ioctl(container, VFIO_IOMMU_MAP_DMA, { argsz: 32, flags: RW, vaddr: buf, iova: IOVA, size: 16 * PG })).toBe(0);
  return { kernel, p, container, buf };
}

describe('VFIO DEBUG_VM rule iommu_pin', () => {
  test('a DMA map, a partial unmap and a second map break no rule', () => {
    const s = setup();
    expect(s.p.ioctl(s.container, VFIO_IOMMU_UNMAP_DMA, { argsz: 32, flags: 0, iova: IOVA, size: 16 * PG })).toBe(0);
    expect(s.p.ioctl(s.container, VFIO_IOMMU_MAP_DMA, { argsz: 32, flags: RW, vaddr: s.buf + 16n * BigInt(PG), iova: IOVA, size: 8 * PG })).toBe(0);
    expect(check_vm(s.kernel)).toEqual([]);
  });

  test('a leaf whose page was unpinned behind the IOMMU\'s back is named with its IOVA and pfn', () => {
    const s = setup();
    const domain = vfio_iommu_type1_domain(vfio_container_iommu(s.p.task.files.lookup(s.container)!)!)!;
    const pfn = iommu_domain_leaf(domain, IOVA + 3n * BigInt(PG))!.pfn;
    unpin_user_page_range_dirty_lock(s.kernel, pfn, 1, false);
    const hits = check_vm(s.kernel, { limit: 1000 }).filter((v) => v.rule.startsWith('vfio:'));
    expect(hits).toEqual([{
      rule: 'vfio:iommu_pin', pfn, message: `domain 0: IOVA 0x40003000 (order 0 leaf) maps pfn 0x${pfn.toString(16)}, whose folio is not pinned`,
    }]);
  });
});

describe('VFIO state digest (vfio)', () => {
  test('two runs digest alike; a map and an unmap change the vfio part; a failed map changes nothing', () => {
    const a = setup();
    const d = mm_state_digest(a.kernel);
    expect(d.parts['vfio']).toBeDefined();
    expect(mm_state_digest(setup().kernel)).toEqual(d);
    expect(a.p.ioctl(a.container, VFIO_IOMMU_MAP_DMA, { argsz: 32, flags: RW, vaddr: a.buf, iova: IOVA, size: PG })).toBe(-1);
    expect(stateDigestDiff(d, mm_state_digest(a.kernel))).toEqual([]);
    expect(a.p.ioctl(a.container, VFIO_IOMMU_UNMAP_DMA, { argsz: 32, flags: 0, iova: IOVA, size: 16 * PG })).toBe(0);
    const d1 = mm_state_digest(a.kernel);
    expect(stateDigestDiff(d, d1)).toContain('vfio');
    expect(a.p.ioctl(a.container, VFIO_IOMMU_MAP_DMA, { argsz: 32, flags: RW, vaddr: a.buf, iova: IOVA + 0x200000n, size: 16 * PG })).toBe(0);
    expect(stateDigestDiff(d1, mm_state_digest(a.kernel))).toContain('vfio');
  });

  test('an iommufd IOAS and its areas are in the digest', () => {
    const kernel = createRootContainer({}, mmRegistrar({ nr_pages: 4096 }), vfioRegistrar()).resolve(Kernel);
    const p = new Process(kernel);
    const fd = p.open('/dev/iommu', O_RDWR);
    const d0 = mm_state_digest(kernel).parts['vfio'];
    const cmd = { size: IOMMU_IOAS_ALLOC_SIZE, flags: 0, out_ioas_id: 0 };
    expect(p.ioctl(fd, IOMMU_IOAS_ALLOC, cmd)).toBe(0);
    const d1 = mm_state_digest(kernel).parts['vfio'];
    expect(d1).not.toBe(d0);
    const buf = p.mmap(0, 16 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    const map = { size: IOMMU_IOAS_MAP_SIZE, ioas_id: cmd.out_ioas_id, user_va: buf, length: 4 * PG, flags: IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE, iova: 0n };
    expect(p.ioctl(fd, IOMMU_IOAS_MAP, map)).toBe(0);
    expect(mm_state_digest(kernel).parts['vfio']).not.toBe(d1);
    expect(check_vm(kernel)).toEqual([]);
  });

  test('iommufd: a device attached to an IOAS pins what the IOAS maps; an unpinned leaf of its domain is named', () => {
    const kernel = createRootContainer({}, mmRegistrar({ nr_pages: 4096 }), vfioRegistrar()).resolve(Kernel);
    const p = new Process(kernel);
    const dev = vfio_sim_device_add(kernel);
    const ictx = p.open('/dev/iommu', O_RDWR);
    const cmd = { size: IOMMU_IOAS_ALLOC_SIZE, flags: 0, out_ioas_id: 0 };
    expect(p.ioctl(ictx, IOMMU_IOAS_ALLOC, cmd)).toBe(0);
    const fd = p.open(dev.cdev_path, O_RDWR);
    expect(p.ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, { argsz: 16, flags: 0, iommufd: ictx })).toBe(0);
    expect(p.ioctl(fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, { argsz: 12, flags: 0, pt_id: cmd.out_ioas_id })).toBe(0);
    const buf = p.mmap(0, 16 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    const map = { size: IOMMU_IOAS_MAP_SIZE, ioas_id: cmd.out_ioas_id, user_va: buf, length: 4 * PG, flags: IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE, iova: 0n };
    expect(p.ioctl(ictx, IOMMU_IOAS_MAP, map)).toBe(0);
    expect(check_vm(kernel)).toEqual([]);
    const domain = dev.dev.iommu_group.domain!;
    const pfn = iommu_domain_leaf(domain, map.iova + BigInt(PG))!.pfn;
    unpin_user_page_range_dirty_lock(kernel, pfn, 1, false);
    expect(check_vm(kernel, { limit: 1000 }).filter((v) => v.rule.startsWith('vfio:')).map((v) => v.pfn)).toEqual([pfn]);
  });
});
