/**
 * vfio: mapping a GiB of guest RAM for device DMA and unmapping it, the work a VMM does for each
 * assigned device at boot and teardown, through VFIO type1 (VFIO_IOMMU_MAP_DMA /
 * VFIO_IOMMU_UNMAP_DMA on a container) and iommufd (IOMMU_IOAS_MAP / IOMMU_IOAS_MAP_FILE /
 * IOMMU_IOAS_UNMAP on an IOAS a device is attached to). Each case times one call over 1 GiB.
 *
 * Memory comes in 4 KiB pages (anonymous, MADV_NOHUGEPAGE) or in 2 MiB pages (anonymous THP
 * with MADV_HUGEPAGE, or a hugetlb memfd for MAP_FILE), populated before the timed call, so that
 * the call's work is pinning (FOLL_LONGTERM GUP), RLIMIT accounting and IOMMU page-table writes,
 * and for unmap the IOMMU clears, IOTLB syncs and unpins. The simulated host has 2 GiB of RAM and
 * tracepoints off. There is no real-kernel side: this machine has no VFIO or iommufd
 * (test/vfio/c/vfio_uapi.out).
 */
import { createRootContainer } from '@cocosim/core';
import {
  Kernel,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MAP_ANONYMOUS,
  MAP_FAILED,
  MAP_POPULATE,
  MAP_PRIVATE,
  MFD_HUGETLB,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
  Process,
  hugetlb_pool,
  mmRegistrar,
  set_max_huge_pages,
} from '@cocosim/mm';
import {
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_ALLOC_SIZE,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_FILE,
  IOMMU_IOAS_MAP_FILE_SIZE,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_SIZE,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_IOAS_UNMAP,
  IOMMU_IOAS_UNMAP_SIZE,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_SET_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  vfioRegistrar,
  vfio_sim_device_add,
} from '@cocosim/vfio';
import type { BenchCase, BenchSuite } from '../harness.js';

const GIB = 1n << 30n;
const SZ_2M = 1n << 21n;
/** The IOVA every case maps at (1 GiB aligned, below the MSI window). */
const IOVA = 1n << 30n;

function check(ok: boolean, what: string, p: Process): void {
  if (!ok) throw new Error(`vfio bench: ${what} failed (errno ${p.errno})`);
}

/** A process on a fresh host with 2 GiB of RAM and VFIO, tracing off. */
function freshProcess(): Process {
  const root = createRootContainer({ seed: 0 }, mmRegistrar({ nr_pages: 2 ** 19 }), vfioRegistrar());
  return new Process(root.resolve(Kernel));
}

/** 1 GiB of populated anonymous memory: 4 KiB pages, or THPs (2 MiB aligned). */
function guest_ram(p: Process, huge: boolean): bigint {
  const raw = p.mmap(0, GIB + SZ_2M, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | (huge ? 0 : MAP_POPULATE), -1, 0);
  check(raw !== MAP_FAILED, 'mmap', p);
  const va = (raw + SZ_2M - 1n) & ~(SZ_2M - 1n);
  check(p.madvise(va, GIB, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) === 0, 'madvise', p);
  if (huge) for (let off = 0n; off < GIB; off += SZ_2M) check(p.store(va + off, new Uint8Array([1])) === 0, 'touch', p);
  return va;
}

/** A type1 container with one device: the container fd. */
function container_of(p: Process): number {
  const c = p.open('/dev/vfio/vfio', O_RDWR);
  const dev = vfio_sim_device_add(p.kernel);
  const g = p.open(dev.group_path, O_RDWR);
  check(p.ioctl(g, VFIO_GROUP_SET_CONTAINER, c) === 0, 'VFIO_GROUP_SET_CONTAINER', p);
  check(p.ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) === 0, 'VFIO_SET_IOMMU', p);
  return c;
}

/** An iommufd with an IOAS and a device attached to it. */
function ioas_of(p: Process): { fd: number; ioas: number } {
  const fd = p.open('/dev/iommu', O_RDWR);
  const a = { size: IOMMU_IOAS_ALLOC_SIZE, flags: 0, out_ioas_id: 0 };
  check(p.ioctl(fd, IOMMU_IOAS_ALLOC, a) === 0, 'IOMMU_IOAS_ALLOC', p);
  const dev = vfio_sim_device_add(p.kernel);
  const devfd = p.open(dev.cdev_path, O_RDWR);
  check(p.ioctl(devfd, VFIO_DEVICE_BIND_IOMMUFD, { argsz: 16, flags: 0, iommufd: fd }) === 0, 'VFIO_DEVICE_BIND_IOMMUFD', p);
  check(p.ioctl(devfd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, { argsz: 12, flags: 0, pt_id: a.out_ioas_id }) === 0, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', p);
  return { fd, ioas: a.out_ioas_id };
}

/** A 1 GiB hugetlb memfd, all 512 pages allocated. */
function hugetlb_memfd(p: Process): number {
  check(set_max_huge_pages(p.kernel, hugetlb_pool(p.kernel).default_hstate, 512) === 512, 'nr_hugepages', p);
  const fd = p.memfd_create('guest', MFD_HUGETLB);
  check(p.ftruncate(fd, GIB) === 0, 'ftruncate', p);
  check(p.fallocate(fd, 0, 0, GIB) === 0, 'fallocate', p);
  return fd;
}

const type1_map = (p: Process, c: number, va: bigint): void =>
  check(p.ioctl(c, VFIO_IOMMU_MAP_DMA, { argsz: 32, flags: VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE, vaddr: va, iova: IOVA, size: GIB }) === 0, 'VFIO_IOMMU_MAP_DMA', p);
const type1_unmap = (p: Process, c: number): void =>
  check(p.ioctl(c, VFIO_IOMMU_UNMAP_DMA, { argsz: 24, flags: 0, iova: IOVA, size: GIB }) === 0, 'VFIO_IOMMU_UNMAP_DMA', p);
const FIXED_RW = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
const ioas_map = (p: Process, s: { fd: number; ioas: number }, va: bigint): void =>
  check(p.ioctl(s.fd, IOMMU_IOAS_MAP, { size: IOMMU_IOAS_MAP_SIZE, flags: FIXED_RW, ioas_id: s.ioas, user_va: va, length: GIB, iova: IOVA }) === 0, 'IOMMU_IOAS_MAP', p);
const ioas_map_file = (p: Process, s: { fd: number; ioas: number }, memfd: number): void =>
  check(p.ioctl(s.fd, IOMMU_IOAS_MAP_FILE, { size: IOMMU_IOAS_MAP_FILE_SIZE, flags: FIXED_RW, ioas_id: s.ioas, fd: memfd, start: 0, length: GIB, iova: IOVA }) === 0, 'IOMMU_IOAS_MAP_FILE', p);
const ioas_unmap = (p: Process, s: { fd: number; ioas: number }): void =>
  check(p.ioctl(s.fd, IOMMU_IOAS_UNMAP, { size: IOMMU_IOAS_UNMAP_SIZE, ioas_id: s.ioas, iova: IOVA, length: GIB }) === 0, 'IOMMU_IOAS_UNMAP', p);

const cases: BenchCase[] = [];
for (const huge of [false, true]) {
  const pages = huge ? '2 MiB pages (THP)' : '4 KiB pages';
  cases.push(
    {
      name: `type1 VFIO_IOMMU_MAP_DMA: 1 GiB of ${pages}`,
      samples: 5,
      prepare: () => {
        const p = freshProcess();
        const c = container_of(p);
        const va = guest_ram(p, huge);
        return () => type1_map(p, c, va);
      },
    },
    {
      name: `type1 VFIO_IOMMU_UNMAP_DMA: 1 GiB of ${pages}`,
      samples: 5,
      prepare: () => {
        const p = freshProcess();
        const c = container_of(p);
        type1_map(p, c, guest_ram(p, huge));
        return () => type1_unmap(p, c);
      },
    },
    {
      name: `iommufd IOMMU_IOAS_MAP: 1 GiB of ${pages}`,
      samples: 5,
      prepare: () => {
        const p = freshProcess();
        const s = ioas_of(p);
        const va = guest_ram(p, huge);
        return () => ioas_map(p, s, va);
      },
    },
    {
      name: `iommufd IOMMU_IOAS_UNMAP: 1 GiB of ${pages}`,
      samples: 5,
      prepare: () => {
        const p = freshProcess();
        const s = ioas_of(p);
        ioas_map(p, s, guest_ram(p, huge));
        return () => ioas_unmap(p, s);
      },
    },
  );
}
cases.push(
  {
    name: 'iommufd IOMMU_IOAS_MAP_FILE: 1 GiB hugetlb memfd (2 MiB pages)',
    samples: 5,
    prepare: () => {
      const p = freshProcess();
      const s = ioas_of(p);
      const memfd = hugetlb_memfd(p);
      return () => ioas_map_file(p, s, memfd);
    },
  },
  {
    name: 'iommufd IOMMU_IOAS_UNMAP: 1 GiB hugetlb memfd (2 MiB pages)',
    samples: 5,
    prepare: () => {
      const p = freshProcess();
      const s = ioas_of(p);
      ioas_map_file(p, s, hugetlb_memfd(p));
      return () => ioas_unmap(p, s);
    },
  },
);

export const vfioSuite: BenchSuite = {
  name: 'vfio',
  description: 'VFIO type1 and iommufd map/unmap of 1 GiB for device DMA, in 4 KiB and 2 MiB pages (time per 1 GiB call)',
  cases,
};
