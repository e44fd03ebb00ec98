import { describe, expect, test } from 'vitest';
import { Errno, U64_MAX, createRootContainer, type PgOff } from '@cocosim/core';
import {
  Kernel,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MFD_HUGETLB,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
  Process,
  folio_maybe_dma_pinned,
  folio_pincount,
  hugetlb_pool,
  mmRegistrar,
  page_folio,
  pagemap_pfn,
  set_max_huge_pages,
} from '@cocosim/mm';
import {
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_ALLOC_SIZE,
  IOMMU_IOAS_COPY,
  IOMMU_IOAS_COPY_SIZE,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_FILE,
  IOMMU_IOAS_MAP_FILE_SIZE,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_SIZE,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_IOAS_UNMAP,
  IOMMU_IOAS_UNMAP_SIZE,
  IOMMU_OPTION,
  IOMMU_OPTION_OP_SET,
  IOMMU_OPTION_RLIMIT_MODE,
  IOMMU_OPTION_SIZE,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_DEVICE_BIND_IOMMUFD,
} from '../uapi.js';
import { vfioRegistrar } from '../vfio.js';
import { vfio_sim_device_add } from '../vfio_main.js';
import { current_user } from './pages.js';

const PG = 4096n;
const FIXED = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;

/** An iommufd with an IOAS and a device attached to it; `mm_mode` sets IOMMU_OPTION_RLIMIT_MODE 1 first. */
function setup(mm_mode = false): { p: Process; ictx: number; ioas: number; map: (iova: bigint, va: bigint, len: bigint) => number; unmap: (iova: bigint, len: bigint) => number } {
  const p = new Process(createRootContainer({}, mmRegistrar({ nr_pages: 16384 }), vfioRegistrar()).resolve(Kernel));
  const ictx = p.open('/dev/iommu', O_RDWR);
  if (mm_mode) expect(p.ioctl(ictx, IOMMU_OPTION, { size: IOMMU_OPTION_SIZE, option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_SET, val64: 1 })).toBe(0);
  const a = { size: IOMMU_IOAS_ALLOC_SIZE, flags: 0, out_ioas_id: 0 };
  expect(p.ioctl(ictx, IOMMU_IOAS_ALLOC, a)).toBe(0);
  const dev = vfio_sim_device_add(p.kernel);
  const fd = p.open(dev.cdev_path, O_RDWR);
  expect(p.ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, { argsz: 16, iommufd: ictx })).toBe(0);
  expect(p.ioctl(fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, { argsz: 12, pt_id: a.out_ioas_id })).toBe(0);
  return {
    p,
    ictx,
    ioas: a.out_ioas_id,
    map: (iova, va, len) => p.ioctl(ictx, IOMMU_IOAS_MAP, { size: IOMMU_IOAS_MAP_SIZE, flags: FIXED, ioas_id: a.out_ioas_id, user_va: va, length: len, iova }),
    unmap: (iova, len) => p.ioctl(ictx, IOMMU_IOAS_UNMAP, { size: IOMMU_IOAS_UNMAP_SIZE, ioas_id: a.out_ioas_id, iova, length: len }),
  };
}

function anon(p: Process, len: bigint): bigint {
  return p.mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

describe('RLIMIT_MEMLOCK accounting of pinned pages', () => {
  test('with CAP_IPC_LOCK nothing is charged; mm->pinned_vm counts the pins anyway', () => {
    const s = setup();
    s.p.task.rlimit_memlock = 0n;
    expect(s.map(0x100000n, anon(s.p, 8n * PG), 8n * PG)).toBe(0);
    expect([s.p.mm.pinned_vm, s.p.mm.locked_vm, current_user(s.p.kernel).locked_vm]).toEqual([8, 0, 0]);
  });

  test('without it, the user\'s locked_vm (IOPT_PAGES_ACCOUNT_USER): -ENOMEM past the limit, the pins just taken released', () => {
    const s = setup();
    s.p.task.cap_ipc_lock = false;
    s.p.task.rlimit_memlock = 8n * PG;
    const va = anon(s.p, 12n * PG);
    expect(s.map(0x100000n, va, 6n * PG)).toBe(0);
    expect(current_user(s.p.kernel).locked_vm).toBe(6);
    expect(s.map(0x200000n, va + 6n * PG, 4n * PG)).toBe(-1);
    expect(s.p.errno).toBe(Errno.ENOMEM);
    expect([s.p.mm.pinned_vm, current_user(s.p.kernel).locked_vm, s.p.mm.locked_vm]).toEqual([6, 6, 0]);
    const store = s.p.kernel.store;
    expect(folio_maybe_dma_pinned(store, page_folio(store, pagemap_pfn(s.p.mm, va + 6n * PG)!))).toBe(false);
    expect(s.unmap(0n, U64_MAX)).toBe(0);
    expect([s.p.mm.pinned_vm, current_user(s.p.kernel).locked_vm]).toEqual([0, 0]);
  });

  test('IOMMU_OPTION_RLIMIT_MODE 1 charges the mm\'s locked_vm, as VFIO type1 does', () => {
    const s = setup(true);
    s.p.task.cap_ipc_lock = false;
    s.p.task.rlimit_memlock = 4n * PG;
    expect(s.map(0x100000n, anon(s.p, 4n * PG), 4n * PG)).toBe(0);
    expect([s.p.mm.locked_vm, current_user(s.p.kernel).locked_vm]).toEqual([4, 0]);
    expect(s.map(0x200000n, anon(s.p, PG), PG)).toBe(-1);
    expect(s.p.errno).toBe(Errno.ENOMEM);
    expect(s.unmap(0x100000n, 4n * PG)).toBe(0);
    expect(s.p.mm.locked_vm).toBe(0);
  });
});

describe('pins are per page of the source, shared by copies', () => {
  test('IOMMU_IOAS_COPY pins nothing more; the pages stay pinned until the last area using them goes', () => {
    const s = setup();
    const va = anon(s.p, 4n * PG);
    expect(s.map(0x100000n, va, 4n * PG)).toBe(0);
    const copy = { size: IOMMU_IOAS_COPY_SIZE, flags: FIXED, dst_ioas_id: s.ioas, src_ioas_id: s.ioas, length: 2n * PG, src_iova: 0x101000n, dst_iova: 0x800000n };
    expect(s.p.ioctl(s.ictx, IOMMU_IOAS_COPY, copy)).toBe(0);
    expect(s.p.mm.pinned_vm).toBe(4);
    expect(s.unmap(0x100000n, 4n * PG)).toBe(0);
    expect(s.p.mm.pinned_vm).toBe(2);
    expect(s.unmap(0x800000n, 2n * PG)).toBe(0);
    expect(s.p.mm.pinned_vm).toBe(0);
  });

  test('a hugetlb memfd: memfd_pin_folios() pins the 2 MiB folio, then one pin per page mapped', () => {
    const s = setup();
    const h = hugetlb_pool(s.p.kernel).default_hstate;
    expect(set_max_huge_pages(s.p.kernel, h, 2)).toBe(2);
    const memfd = s.p.memfd_create('huge', MFD_HUGETLB);
    expect(s.p.ftruncate(memfd, 1n << 22n)).toBe(0);
    const cmd = { size: IOMMU_IOAS_MAP_FILE_SIZE, flags: FIXED, ioas_id: s.ioas, fd: memfd, start: 1n << 21n, length: 1n << 21n, iova: 1n << 30n };
    expect(s.p.ioctl(s.ictx, IOMMU_IOAS_MAP_FILE, cmd)).toBe(0);
    const folio = s.p.task.files.lookup(memfd)!.f_mapping.folio_at(512 as PgOff)!;
    expect(folio_pincount(s.p.kernel.store, folio)).toBe(512);
    expect(s.unmap(1n << 30n, 1n << 21n)).toBe(0);
    expect(folio_pincount(s.p.kernel.store, folio)).toBe(0);
  });
});
