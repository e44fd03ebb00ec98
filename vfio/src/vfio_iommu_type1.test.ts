import { describe, expect, test } from 'vitest';
import { Errno, U64_MAX, createRootContainer } from '@cocosim/core';
import {
  Kernel,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
  Process,
  folio_maybe_dma_pinned,
  folio_test_dirty,
  mmRegistrar,
  page_folio,
  pagemap_pfn,
} from '@cocosim/mm';
import { vfio_container_iommu } from './container.js';
import { dma_read, dma_write, isDmaError } from './device_dma.js';
import { iommu_domain_leaf } from './iommu.js';
import {
  VFIO_CHECK_EXTENSION,
  VFIO_DMA_CC_IOMMU,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_VADDR,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
  VFIO_DMA_UNMAP_FLAG_VADDR,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_IOMMU_DIRTY_PAGES,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_INFO_CAPS,
  VFIO_IOMMU_INFO_PGSIZES,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_SET_IOMMU,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  VFIO_UNMAP_ALL,
  VFIO_UPDATE_VADDR,
} from './uapi.js';
import { vfioRegistrar, type VfioHostOptions } from './vfio.js';
import { vfio_sim_device_add, type VfioDevice } from './vfio_main.js';
import { vfio_iommu_type1_dmas, vfio_iommu_type1_domain, type VfioIommu } from './vfio_iommu_type1.js';

const PG = 4096;
const RW = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
/** An IOVA in the usable range, 2 MiB aligned. */
const IOVA = 0x4000_0000n;

interface Setup {
  p: Process;
  container: number;
  device: VfioDevice;
  iommu: () => VfioIommu;
  buf: bigint;
}

/** A container with one device, VFIO_SET_IOMMU(type), and 64 pages of anonymous memory at `buf`. */
function setup(type = VFIO_TYPE1v2_IOMMU, opts: VfioHostOptions = {}): Setup {
  const kernel = createRootContainer({}, mmRegistrar({ nr_pages: 8192 }), vfioRegistrar(opts)).resolve(Kernel);
  const p = new Process(kernel);
  const container = p.open('/dev/vfio/vfio', O_RDWR);
  const device = vfio_sim_device_add(kernel);
  const group = p.open(device.group_path, O_RDWR);
  expect(p.ioctl(group, VFIO_GROUP_SET_CONTAINER, container)).toBe(0);
  expect(p.ioctl(container, VFIO_SET_IOMMU, type)).toBe(0);
  const buf = p.mmap(0, 64 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return { p, container, device, buf, iommu: () => vfio_container_iommu(p.task.files.lookup(container)!)! };
}

function map(s: Setup, iova: bigint, vaddr: bigint, size: number | bigint, flags = RW): number {
  return s.p.ioctl(s.container, VFIO_IOMMU_MAP_DMA, { argsz: 32, flags, vaddr, iova, size });
}

/** The errno of a failed call (-1 checked). */
function err(s: Setup, ret: number): number {
  expect(ret).toBe(-1);
  return s.p.errno;
}

describe('VFIO_IOMMU_MAP_DMA: validation in the kernel\'s order', () => {
  test('bad pointer, argsz, flags, no READ/WRITE, VADDR with READ', () => {
    const s = setup();
    expect(err(s, s.p.ioctl(s.container, VFIO_IOMMU_MAP_DMA, 0))).toBe(Errno.EFAULT);
    expect(err(s, s.p.ioctl(s.container, VFIO_IOMMU_MAP_DMA, { argsz: 31, flags: RW, vaddr: s.buf, iova: IOVA, size: PG }))).toBe(Errno.EINVAL);
    expect(err(s, map(s, IOVA, s.buf, PG, RW | 8))).toBe(Errno.EINVAL);
    expect(err(s, map(s, IOVA, s.buf, PG, 0))).toBe(Errno.EINVAL);
    expect(err(s, map(s, IOVA, s.buf, PG, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_VADDR))).toBe(Errno.EINVAL);
    /* a field C memory cannot hold: the copy faults */
    expect(err(s, map(s, IOVA, s.buf, 0.5))).toBe(Errno.EFAULT);
    expect(vfio_iommu_type1_dmas(s.iommu())).toHaveLength(0);
  });

  test('size 0, unaligned iova/vaddr/size, IOVA or vaddr wrap: -EINVAL', () => {
    const s = setup();
    expect(err(s, map(s, IOVA, s.buf, 0))).toBe(Errno.EINVAL);
    expect(err(s, map(s, IOVA + 0x800n, s.buf, PG))).toBe(Errno.EINVAL);
    expect(err(s, map(s, IOVA, s.buf + 0x10n, PG))).toBe(Errno.EINVAL);
    expect(err(s, map(s, IOVA, s.buf, PG + 1))).toBe(Errno.EINVAL);
    expect(err(s, map(s, U64_MAX - 0xfffn, s.buf, 2 * PG))).toBe(Errno.EINVAL);
    expect(err(s, map(s, IOVA, U64_MAX - 0xfffn, 2 * PG))).toBe(Errno.EINVAL);
    /* ending exactly at 2^64 does not wrap; it fails the usable-IOVA check instead */
    expect(err(s, map(s, U64_MAX - 0xfffn, s.buf, PG))).toBe(Errno.EINVAL);
  });

  test('overlap is -EEXIST before the entry limit (-ENOSPC), which comes before the IOVA range check', () => {
    const s = setup(VFIO_TYPE1v2_IOMMU, { dma_entry_limit: 2 });
    expect(map(s, IOVA, s.buf, 2 * PG)).toBe(0);
    expect(err(s, map(s, IOVA + BigInt(PG), s.buf, 2 * PG))).toBe(Errno.EEXIST);
    expect(err(s, map(s, IOVA - BigInt(PG), s.buf, 2 * PG))).toBe(Errno.EEXIST);
    expect(map(s, IOVA + 2n * BigInt(PG), s.buf, PG)).toBe(0);
    expect(err(s, map(s, IOVA + BigInt(PG), s.buf, PG))).toBe(Errno.EEXIST);
    expect(err(s, map(s, 0xfee00000n, s.buf, PG))).toBe(Errno.ENOSPC);
    expect(s.iommu().dma_avail).toBe(0);
  });

  test('IOVA in the MSI window or past the 48-bit aperture: -EINVAL', () => {
    const s = setup();
    expect(err(s, map(s, 0xfee00000n, s.buf, PG))).toBe(Errno.EINVAL);
    expect(err(s, map(s, 0xfedff000n, s.buf, 2 * PG))).toBe(Errno.EINVAL);
    expect(err(s, map(s, 1n << 48n, s.buf, PG))).toBe(Errno.EINVAL);
    expect(map(s, 0xfedff000n, s.buf, PG)).toBe(0);
    expect(map(s, 0xfef00000n, s.buf + BigInt(PG), PG)).toBe(0);
    expect(map(s, (1n << 48n) - BigInt(PG), s.buf + 2n * BigInt(PG), PG)).toBe(0);
  });

  test('unmapped user memory: -EFAULT; nothing of the call stays mapped, pinned or accounted', () => {
    const s = setup();
    const mm = s.p.mm;
    const store = s.p.kernel.store;
    expect(s.p.munmap(s.buf + 32n * BigInt(PG), 32 * PG)).toBe(0);
    for (let i = 0; i < 32; i++) s.p.store(s.buf + BigInt(i * PG), new Uint8Array([i]));
    const pfn = pagemap_pfn(mm, s.buf)!;
    expect(err(s, map(s, IOVA, s.buf, 64 * PG))).toBe(Errno.EFAULT);
    expect(vfio_iommu_type1_dmas(s.iommu())).toHaveLength(0);
    expect(s.iommu().dma_avail).toBe(65535);
    expect(mm.locked_vm).toBe(0);
    expect(folio_maybe_dma_pinned(store, page_folio(store, pfn))).toBe(false);
    expect(iommu_domain_leaf(vfio_iommu_type1_domain(s.iommu())!, IOVA)).toBe(undefined);
  });

  test('a read-only DMA mapping of read-only memory pins without FOLL_WRITE; a writable one is -EFAULT', () => {
    const s = setup();
    const ro = s.p.mmap(0, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(err(s, map(s, IOVA, ro, PG))).toBe(Errno.EFAULT);
    expect(map(s, IOVA, ro, PG, VFIO_DMA_MAP_FLAG_READ)).toBe(0);
    expect(dma_read(s.device.dev, IOVA, 4)).toEqual(new Uint8Array(4));
    const w = dma_write(s.device.dev, IOVA, new Uint8Array([1]));
    expect(isDmaError(w) && w.reason).toBe('read-only');
  });
});

describe('RLIMIT_MEMLOCK without CAP_IPC_LOCK', () => {
  test('pins count in mm->locked_vm; past the limit -ENOMEM and the run is unpinned; unmap credits', () => {
    const s = setup();
    const store = s.p.kernel.store;
    s.p.task.cap_ipc_lock = false;
    s.p.task.rlimit_memlock = 16n * BigInt(PG);
    for (let i = 0; i < 24; i++) s.p.store(s.buf + BigInt(i * PG), new Uint8Array([1]));
    expect(map(s, IOVA, s.buf, 16 * PG)).toBe(0);
    expect(s.p.mm.locked_vm).toBe(16);
    const pfn = pagemap_pfn(s.p.mm, s.buf + 16n * BigInt(PG))!;
    expect(err(s, map(s, IOVA + 0x100000n, s.buf + 16n * BigInt(PG), 8 * PG))).toBe(Errno.ENOMEM);
    expect(s.p.mm.locked_vm).toBe(16);
    expect(folio_maybe_dma_pinned(store, page_folio(store, pfn))).toBe(false);
    expect(vfio_iommu_type1_dmas(s.iommu())).toHaveLength(1);
    expect(s.p.ioctl(s.container, VFIO_IOMMU_UNMAP_DMA, { argsz: 24, flags: 0, iova: IOVA, size: 16 * PG })).toBe(0);
    expect(s.p.mm.locked_vm).toBe(0);
    /* CAP_IPC_LOCK bypasses the limit, and the pins are not charged against it */
    s.p.task.cap_ipc_lock = true;
    expect(map(s, IOVA, s.buf, 24 * PG)).toBe(0);
    expect(s.p.mm.locked_vm).toBe(24);
  });
});

describe('VFIO_IOMMU_UNMAP_DMA', () => {
  test('validation: bad pointer, argsz, flags, DIRTY_BITMAP rules, alignment, size 0, wrap, UNMAP_ALL with a range', () => {
    const s = setup();
    const un = (a: Record<string, unknown>): number => s.p.ioctl(s.container, VFIO_IOMMU_UNMAP_DMA, a);
    expect(err(s, un(undefined as unknown as Record<string, unknown>))).toBe(Errno.EFAULT);
    expect(err(s, un({ argsz: 23, iova: IOVA, size: PG }))).toBe(Errno.EINVAL);
    expect(err(s, un({ argsz: 24, flags: 8, iova: IOVA, size: PG }))).toBe(Errno.EINVAL);
    expect(err(s, un({ argsz: 48, flags: VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_ALL }))).toBe(Errno.EINVAL);
    expect(err(s, un({ argsz: 24, flags: VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, iova: IOVA, size: PG }))).toBe(Errno.EINVAL);
    expect(err(s, un({ argsz: 48, flags: VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, iova: IOVA, size: PG }))).toBe(Errno.EFAULT);
    /* a well-formed bitmap: dirty tracking is off */
    expect(err(s, un({ argsz: 48, flags: VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, iova: IOVA, size: PG, bitmap: { pgsize: PG, size: 8 } }))).toBe(Errno.EINVAL);
    expect(err(s, un({ argsz: 24, iova: IOVA + 1n, size: PG }))).toBe(Errno.EINVAL);
    expect(err(s, un({ argsz: 24, iova: IOVA, size: 0 }))).toBe(Errno.EINVAL);
    expect(err(s, un({ argsz: 24, iova: IOVA, size: PG + 1 }))).toBe(Errno.EINVAL);
    expect(err(s, un({ argsz: 24, iova: U64_MAX - 0xfffn, size: 2 * PG }))).toBe(Errno.EINVAL);
    expect(err(s, un({ argsz: 24, flags: VFIO_DMA_UNMAP_FLAG_ALL, iova: 0, size: PG }))).toBe(Errno.EINVAL);
  });

  test('type1v2 refuses to split a mapping (-EINVAL, size not written back, mapping intact); whole mappings go', () => {
    const s = setup();
    expect(map(s, IOVA, s.buf, 4 * PG)).toBe(0);
    expect(map(s, IOVA + 0x10000n, s.buf, 2 * PG)).toBe(0);
    const a = { argsz: 24, flags: 0, iova: IOVA, size: 2 * PG };
    expect(err(s, s.p.ioctl(s.container, VFIO_IOMMU_UNMAP_DMA, a))).toBe(Errno.EINVAL);
    expect(a.size).toBe(2 * PG);
    expect(err(s, s.p.ioctl(s.container, VFIO_IOMMU_UNMAP_DMA, { argsz: 24, iova: IOVA + BigInt(PG), size: 0x10000n }))).toBe(Errno.EINVAL);
    expect(vfio_iommu_type1_dmas(s.iommu())).toHaveLength(2);
    /* a range with no mapping: success, size 0 */
    const none = { argsz: 24, flags: 0, iova: IOVA + 0x100000n, size: PG };
    expect(s.p.ioctl(s.container, VFIO_IOMMU_UNMAP_DMA, none)).toBe(0);
    expect(none.size).toBe(0n);
    /* both mappings at once, holes included */
    const both = { argsz: 24, flags: 0, iova: IOVA, size: 0x20000 };
    expect(s.p.ioctl(s.container, VFIO_IOMMU_UNMAP_DMA, both)).toBe(0);
    expect(both.size).toBe(6n * BigInt(PG));
    expect(vfio_iommu_type1_dmas(s.iommu())).toHaveLength(0);
    expect(s.iommu().dma_avail).toBe(65535);
  });

  test('type1 (v1): an unmap offset into a mapping unmaps nothing, one covering its first IOVA unmaps it all', () => {
    const s = setup(VFIO_TYPE1_IOMMU);
    expect(map(s, IOVA, s.buf, 4 * PG)).toBe(0);
    const mid = { argsz: 24, flags: 0, iova: IOVA + BigInt(PG), size: PG };
    expect(s.p.ioctl(s.container, VFIO_IOMMU_UNMAP_DMA, mid)).toBe(0);
    expect(mid.size).toBe(0n);
    const first = { argsz: 24, flags: 0, iova: IOVA, size: PG };
    expect(s.p.ioctl(s.container, VFIO_IOMMU_UNMAP_DMA, first)).toBe(0);
    expect(first.size).toBe(4n * BigInt(PG));
  });

  test('VFIO_DMA_UNMAP_FLAG_ALL unmaps everything; the pins go and written pages are dirty', () => {
    const s = setup();
    const store = s.p.kernel.store;
    s.p.store(s.buf, new Uint8Array([7]));
    const pfn = pagemap_pfn(s.p.mm, s.buf)!;
    expect(map(s, IOVA, s.buf, 8 * PG)).toBe(0);
    expect(map(s, IOVA + 0x100000n, s.buf, 8 * PG, VFIO_DMA_MAP_FLAG_READ)).toBe(0);
    expect(folio_maybe_dma_pinned(store, page_folio(store, pfn))).toBe(true);
    const all = { argsz: 24, flags: VFIO_DMA_UNMAP_FLAG_ALL, iova: 0, size: 0 };
    expect(s.p.ioctl(s.container, VFIO_IOMMU_UNMAP_DMA, all)).toBe(0);
    expect(all.size).toBe(16n * BigInt(PG));
    expect(folio_maybe_dma_pinned(store, page_folio(store, pfn))).toBe(false);
    expect(folio_test_dirty(store, page_folio(store, pfn))).toBe(true);
    expect(isDmaError(dma_read(s.device.dev, IOVA, 1))).toBe(true);
  });
});

describe('VFIO_UPDATE_VADDR', () => {
  test('unmap with VFIO_DMA_UNMAP_FLAG_VADDR invalidates the vaddr, keeps the IOMMU mapping; map with the flag restores it', () => {
    const s = setup();
    expect(s.p.ioctl(s.container, VFIO_CHECK_EXTENSION, VFIO_UPDATE_VADDR)).toBe(1);
    expect(map(s, IOVA, s.buf, 2 * PG)).toBe(0);
    expect(dma_write(s.device.dev, IOVA, new Uint8Array([5]))).toBe(0);
    const inv = { argsz: 24, flags: VFIO_DMA_UNMAP_FLAG_VADDR, iova: IOVA, size: 2 * PG };
    expect(s.p.ioctl(s.container, VFIO_IOMMU_UNMAP_DMA, inv)).toBe(0);
    expect(inv.size).toBe(2n * BigInt(PG));
    expect(s.iommu().vaddr_invalid_count).toBe(1);
    expect(dma_read(s.device.dev, IOVA, 1)).toEqual(new Uint8Array([5]));
    /* invalidating an invalid vaddr again: -EINVAL */
    expect(err(s, s.p.ioctl(s.container, VFIO_IOMMU_UNMAP_DMA, { ...inv }))).toBe(Errno.EINVAL);
    /* attaching another group needs pinning: -EBUSY while a vaddr is invalid */
    const dev2 = vfio_sim_device_add(s.p.kernel);
    const g2 = s.p.open(dev2.group_path, O_RDWR);
    expect(err(s, s.p.ioctl(g2, VFIO_GROUP_SET_CONTAINER, s.container))).toBe(Errno.EBUSY);
    const upd = (iova: bigint, size: number): number => s.p.ioctl(s.container, VFIO_IOMMU_MAP_DMA, { argsz: 32, flags: VFIO_DMA_MAP_FLAG_VADDR, vaddr: s.buf, iova, size });
    expect(err(s, upd(IOVA + 0x100000n, PG))).toBe(Errno.ENOENT);
    expect(err(s, upd(IOVA, PG))).toBe(Errno.EINVAL);
    expect(upd(IOVA, 2 * PG)).toBe(0);
    expect(s.iommu().vaddr_invalid_count).toBe(0);
    expect(err(s, upd(IOVA, 2 * PG))).toBe(Errno.EINVAL);
    expect(s.p.ioctl(g2, VFIO_GROUP_SET_CONTAINER, s.container)).toBe(0);
  });
});

describe('VFIO_IOMMU_GET_INFO and VFIO_CHECK_EXTENSION', () => {
  test('a 16-byte argsz gets the page sizes and the argsz the capability chain needs', () => {
    const s = setup();
    const info: Record<string, unknown> = { argsz: 16 };
    expect(s.p.ioctl(s.container, VFIO_IOMMU_GET_INFO, info)).toBe(0);
    /* two usable IOVA ranges (below and above the MSI window): 24 + 32 + 16 + 16 + 2 * 16 */
    expect(info).toEqual({ argsz: 120, flags: VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS, iova_pgsizes: (1n << 12n) | (1n << 21n) | (1n << 30n) });
    expect(err(s, s.p.ioctl(s.container, VFIO_IOMMU_GET_INFO, { argsz: 15 }))).toBe(Errno.EINVAL);
  });

  test('with room, the chain: migration, DMA available, IOVA ranges, linked by offsets from the struct', () => {
    const s = setup();
    expect(map(s, IOVA, s.buf, PG)).toBe(0);
    const info: Record<string, unknown> = { argsz: 120 };
    expect(s.p.ioctl(s.container, VFIO_IOMMU_GET_INFO, info)).toBe(0);
    expect(info.cap_offset).toBe(24);
    expect(info.caps).toEqual([
      { id: 2, version: 1, next: 56, flags: 0, pgsize_bitmap: 4096n, max_dirty_bitmap_size: 1n << 28n },
      { id: 3, version: 1, next: 72, avail: 65534 },
      { id: 1, version: 1, next: 0, nr_iovas: 2, iova_ranges: [{ start: 0n, end: 0xfedfffffn }, { start: 0xfef00000n, end: (1n << 48n) - 1n }] },
    ]);
  });

  test('extensions: what the driver answers, with and without its state; unknown ioctls -ENOTTY once set', () => {
    const kernel = createRootContainer({}, mmRegistrar({ nr_pages: 4096 }), vfioRegistrar()).resolve(Kernel);
    const p = new Process(kernel);
    const c = p.open('/dev/vfio/vfio', O_RDWR);
    const ask = (ext: unknown): number => p.ioctl(c, VFIO_CHECK_EXTENSION, ext);
    expect([ask(VFIO_TYPE1_IOMMU), ask(VFIO_TYPE1v2_IOMMU), ask(VFIO_UNMAP_ALL), ask(VFIO_UPDATE_VADDR), ask(VFIO_DMA_CC_IOMMU), ask(6), ask(-1), ask('x')]).toEqual([1, 1, 1, 0, 0, 0, 0, 0]);
    expect(p.ioctl(c, VFIO_IOMMU_MAP_DMA, { argsz: 32 })).toBe(-1);
    expect(p.errno).toBe(Errno.EINVAL);
    const dev = vfio_sim_device_add(kernel);
    const g = p.open(dev.group_path, O_RDWR);
    expect(p.ioctl(g, VFIO_GROUP_SET_CONTAINER, c)).toBe(0);
    expect(p.ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)).toBe(0);
    expect([ask(VFIO_UPDATE_VADDR), ask(VFIO_DMA_CC_IOMMU)]).toEqual([1, 1]);
    expect(p.ioctl(c, VFIO_IOMMU_DIRTY_PAGES, { argsz: 8 })).toBe(-1);
    expect(p.errno).toBe(Errno.ENOTTY);
  });
});
