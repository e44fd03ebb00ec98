import { describe, expect, test } from 'vitest';
import { Errno, U64_MAX, createRootContainer } from '@cocosim/core';
import { Kernel, MAP_ANONYMOUS, MAP_PRIVATE, O_RDWR, PROT_READ, PROT_WRITE, Process, mmRegistrar } from '@cocosim/mm';
import {
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_ALLOC_SIZE,
  IOMMU_IOAS_ALLOW_IOVAS,
  IOMMU_IOAS_ALLOW_IOVAS_SIZE,
  IOMMU_IOAS_COPY,
  IOMMU_IOAS_COPY_SIZE,
  IOMMU_IOAS_IOVA_RANGES,
  IOMMU_IOAS_IOVA_RANGES_SIZE,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_FILE,
  IOMMU_IOAS_MAP_FILE_SIZE,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_SIZE,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_IOAS_UNMAP,
  IOMMU_IOAS_UNMAP_SIZE,
} from '../uapi.js';
import { vfioRegistrar } from '../vfio.js';

const PG = 4096n;
const RW = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
const FIXED = IOMMU_IOAS_MAP_FIXED_IOVA | RW;

function open(): { p: Process; fd: number; ioas: number; buf: bigint } {
  const p = new Process(createRootContainer({}, mmRegistrar({ nr_pages: 4096 }), vfioRegistrar()).resolve(Kernel));
  const fd = p.open('/dev/iommu', O_RDWR);
  const cmd = { size: IOMMU_IOAS_ALLOC_SIZE, flags: 0, out_ioas_id: 0 };
  expect(p.ioctl(fd, IOMMU_IOAS_ALLOC, cmd)).toBe(0);
  const buf = p.mmap(0, 16n * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return { p, fd, ioas: cmd.out_ioas_id, buf };
}

function errno(p: Process, ret: number): number {
  expect(ret).toBe(-1);
  return p.errno;
}

type Cmd = Record<string, unknown>;

describe('IOMMU_IOAS_MAP', () => {
  test('validation order: flags/__reserved -EOPNOTSUPP, ULONG_MAX -EOVERFLOW, no access -EINVAL, no IOAS -ENOENT', () => {
    const { p, fd, ioas, buf } = open();
    const map = (c: Cmd): number => p.ioctl(fd, IOMMU_IOAS_MAP, { size: IOMMU_IOAS_MAP_SIZE, ioas_id: ioas, user_va: buf, length: PG, flags: RW, ...c });
    expect(errno(p, map({ flags: 8, iova: U64_MAX, ioas_id: 99 }))).toBe(Errno.EOPNOTSUPP);
    expect(errno(p, map({ __reserved: 1, iova: U64_MAX }))).toBe(Errno.EOPNOTSUPP);
    expect(errno(p, map({ flags: 0, length: U64_MAX }))).toBe(Errno.EOVERFLOW);
    expect(errno(p, map({ flags: IOMMU_IOAS_MAP_FIXED_IOVA, ioas_id: 99 }))).toBe(Errno.EINVAL);
    expect(errno(p, map({ ioas_id: 99 }))).toBe(Errno.ENOENT);
    expect(errno(p, map({ user_va: U64_MAX - PG + 1n, length: 2n * PG }))).toBe(Errno.EOVERFLOW);
    expect(errno(p, map({ length: 0 }))).toBe(Errno.EINVAL);
    /* the IOVA allocator refuses lengths of half the space or more */
    expect(errno(p, map({ length: 1n << 63n }))).toBe(Errno.EOVERFLOW);
  });

  test('FIXED_IOVA: an overlap -EEXIST, a wrapping range -EOVERFLOW; without a device nothing is pinned, so unmapped memory maps', () => {
    const { p, fd, ioas, buf } = open();
    const map = (c: Cmd): number => p.ioctl(fd, IOMMU_IOAS_MAP, { size: IOMMU_IOAS_MAP_SIZE, ioas_id: ioas, user_va: buf, length: PG, flags: FIXED, ...c });
    expect(map({ iova: 0x10000n, length: 2n * PG })).toBe(0);
    expect(errno(p, map({ iova: 0x11000n }))).toBe(Errno.EEXIST);
    expect(errno(p, map({ iova: 0xf000n, length: 2n * PG }))).toBe(Errno.EEXIST);
    expect(errno(p, map({ iova: U64_MAX - PG, length: 2n * PG }))).toBe(Errno.EOVERFLOW);
    expect(map({ iova: 0x20000n, user_va: 1n << 40n, length: 1n << 30n })).toBe(0);
    expect(p.mm.pinned_vm).toBe(0);
    /* sub-page offsets are allowed while the IOAS has no domain */
    expect(map({ iova: (1n << 32n) + 1n, user_va: buf + 1n, length: 10n })).toBe(0);
  });

  test('automatic IOVA: returned in iova, never 0, aligned to the length (capped at 2 MiB) and to the address', () => {
    const { p, fd, ioas, buf } = open();
    const got: bigint[] = [];
    for (const [va, len] of [[buf, PG], [1n << 31n, 3n * PG], [1n << 31n, 1n << 22n], [buf + PG, 8n * PG]] as const) {
      const cmd = { size: IOMMU_IOAS_MAP_SIZE, ioas_id: ioas, user_va: va, length: len, flags: RW, iova: 0n };
      expect(p.ioctl(fd, IOMMU_IOAS_MAP, cmd)).toBe(0);
      got.push(cmd.iova);
    }
    expect(got[0]).toBe(PG);
    expect(got[1] % (4n * PG)).toBe(0n);
    expect(got[2] % (1n << 21n)).toBe(0n);
    expect(got[3] % PG).toBe(0n);
    expect(new Set(got).size).toBe(4);
  });
});

describe('IOMMU_IOAS_MAP_FILE', () => {
  test('flags -EOPNOTSUPP, no IOAS -ENOENT before a bad fd -EBADF; start + length wrapping -EOVERFLOW', () => {
    const { p, fd, ioas } = open();
    const memfd = p.memfd_create('m', 0);
    expect(p.ftruncate(memfd, 4n * PG)).toBe(0);
    const mapf = (c: Cmd): number => p.ioctl(fd, IOMMU_IOAS_MAP_FILE, { size: IOMMU_IOAS_MAP_FILE_SIZE, ioas_id: ioas, fd: memfd, start: 0, length: PG, flags: RW, ...c });
    expect(errno(p, mapf({ flags: 16 }))).toBe(Errno.EOPNOTSUPP);
    expect(errno(p, mapf({ flags: 0 }))).toBe(Errno.EINVAL);
    expect(errno(p, mapf({ ioas_id: 9, fd: 77 }))).toBe(Errno.ENOENT);
    expect(errno(p, mapf({ fd: 77 }))).toBe(Errno.EBADF);
    expect(errno(p, mapf({ fd: -1 }))).toBe(Errno.EBADF);
    expect(errno(p, mapf({ start: U64_MAX - 10n, length: 20n }))).toBe(Errno.EOVERFLOW);
    const cmd = { size: IOMMU_IOAS_MAP_FILE_SIZE, ioas_id: ioas, fd: memfd, start: PG, length: 2n * PG, flags: RW, iova: 0n };
    expect(p.ioctl(fd, IOMMU_IOAS_MAP_FILE, cmd)).toBe(0);
    expect(cmd.iova).not.toBe(0n);
    /* the mapping holds the file: closing the fd does not free it */
    expect(p.close(memfd)).toBe(0);
    expect(p.task.files.lookup(memfd)).toBe(undefined);
  });
});

describe('IOMMU_IOAS_UNMAP', () => {
  test('no IOAS -ENOENT first; unmap-all of an empty IOAS succeeds; ULONG_MAX -EOVERFLOW; length 0 -EINVAL; wrap -EOVERFLOW; nothing mapped -ENOENT', () => {
    const { p, fd, ioas } = open();
    const unmap = (c: Cmd): number => p.ioctl(fd, IOMMU_IOAS_UNMAP, { size: IOMMU_IOAS_UNMAP_SIZE, ioas_id: ioas, ...c });
    expect(errno(p, unmap({ ioas_id: 5, iova: U64_MAX, length: 1 }))).toBe(Errno.ENOENT);
    const all = { size: IOMMU_IOAS_UNMAP_SIZE, ioas_id: ioas, iova: 0, length: U64_MAX };
    expect(p.ioctl(fd, IOMMU_IOAS_UNMAP, all)).toBe(0);
    expect(all.length).toBe(0n);
    expect(errno(p, unmap({ iova: U64_MAX, length: 1 }))).toBe(Errno.EOVERFLOW);
    expect(errno(p, unmap({ iova: 1, length: U64_MAX }))).toBe(Errno.EOVERFLOW);
    expect(errno(p, unmap({ iova: 0x1000, length: 0 }))).toBe(Errno.EINVAL);
    expect(errno(p, unmap({ iova: U64_MAX - 1n, length: 4 }))).toBe(Errno.EOVERFLOW);
    expect(errno(p, unmap({ iova: 0x1000, length: PG }))).toBe(Errno.ENOENT);
  });

  test('an area sticking out of the range -ENOENT, the areas below it already gone; length returns the bytes', () => {
    const { p, fd, ioas, buf } = open();
    const map = (iova: bigint, len: bigint): void => {
      expect(p.ioctl(fd, IOMMU_IOAS_MAP, { size: IOMMU_IOAS_MAP_SIZE, ioas_id: ioas, user_va: buf, length: len, flags: FIXED, iova })).toBe(0);
    };
    map(0x10000n, PG);
    map(0x20000n, 2n * PG);
    const part = { size: IOMMU_IOAS_UNMAP_SIZE, ioas_id: ioas, iova: 0x10000n, length: 0x11000n };
    expect(errno(p, p.ioctl(fd, IOMMU_IOAS_UNMAP, part))).toBe(Errno.ENOENT);
    expect(part.length).toBe(0x11000n);
    /* the first area went, the second stayed */
    expect(errno(p, p.ioctl(fd, IOMMU_IOAS_UNMAP, { size: IOMMU_IOAS_UNMAP_SIZE, ioas_id: ioas, iova: 0x10000n, length: PG }))).toBe(Errno.ENOENT);
    const rest = { size: IOMMU_IOAS_UNMAP_SIZE, ioas_id: ioas, iova: 0n, length: U64_MAX };
    expect(p.ioctl(fd, IOMMU_IOAS_UNMAP, rest)).toBe(0);
    expect(rest.length).toBe(2n * PG);
  });
});

describe('IOMMU_IOAS_COPY, IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_ALLOW_IOVAS', () => {
  test('COPY: flags, ULONG_MAX, no access, no source IOAS, a source range not fully mapped (-ENOENT), no destination IOAS', () => {
    const { p, fd, ioas, buf } = open();
    expect(p.ioctl(fd, IOMMU_IOAS_MAP, { size: IOMMU_IOAS_MAP_SIZE, ioas_id: ioas, user_va: buf, length: 2n * PG, flags: FIXED, iova: 0x10000n })).toBe(0);
    const copy = (c: Cmd): number => p.ioctl(fd, IOMMU_IOAS_COPY, { size: IOMMU_IOAS_COPY_SIZE, flags: FIXED, dst_ioas_id: ioas, src_ioas_id: ioas, length: PG, src_iova: 0x10000n, dst_iova: 0x40000n, ...c });
    expect(errno(p, copy({ flags: 8 }))).toBe(Errno.EOPNOTSUPP);
    expect(errno(p, copy({ dst_iova: U64_MAX }))).toBe(Errno.EOVERFLOW);
    expect(errno(p, copy({ flags: IOMMU_IOAS_MAP_FIXED_IOVA }))).toBe(Errno.EINVAL);
    expect(errno(p, copy({ src_ioas_id: 3 }))).toBe(Errno.ENOENT);
    expect(errno(p, copy({ length: 3n * PG }))).toBe(Errno.ENOENT);
    expect(errno(p, copy({ src_iova: 0x11000n, length: 0 }))).toBe(Errno.EINVAL);
    expect(errno(p, copy({ dst_ioas_id: 3 }))).toBe(Errno.ENOENT);
    expect(copy({ src_iova: 0x11000n })).toBe(0);
    expect(errno(p, copy({ src_iova: 0x11000n }))).toBe(Errno.EEXIST);
  });

  test('IOVA_RANGES: one range [0, ULONG_MAX] and alignment 1 without a device; too small an array -EMSGSIZE with the count', () => {
    const { p, fd, ioas } = open();
    const ranges: unknown[] = [];
    const cmd = { size: IOMMU_IOAS_IOVA_RANGES_SIZE, ioas_id: ioas, num_iovas: 4, allowed_iovas: ranges, out_iova_alignment: 0n };
    expect(p.ioctl(fd, IOMMU_IOAS_IOVA_RANGES, cmd)).toBe(0);
    expect([cmd.num_iovas, ranges, cmd.out_iova_alignment]).toEqual([1, [{ start: 0n, last: U64_MAX }], 1n]);
    const small = { size: IOMMU_IOAS_IOVA_RANGES_SIZE, ioas_id: ioas, num_iovas: 0, allowed_iovas: [] };
    expect(errno(p, p.ioctl(fd, IOMMU_IOAS_IOVA_RANGES, small))).toBe(Errno.EMSGSIZE);
    expect(small.num_iovas).toBe(1);
    expect(errno(p, p.ioctl(fd, IOMMU_IOAS_IOVA_RANGES, { ...cmd, __reserved: 1 }))).toBe(Errno.EOPNOTSUPP);
    expect(errno(p, p.ioctl(fd, IOMMU_IOAS_IOVA_RANGES, { ...cmd, allowed_iovas: 0 }))).toBe(Errno.EFAULT);
  });

  test('ALLOW_IOVAS: start >= last or overlapping ranges -EINVAL, a missing array -EFAULT; automatic IOVAs then come from the allowed ranges', () => {
    const { p, fd, ioas, buf } = open();
    const allow = (r: unknown[]): number => p.ioctl(fd, IOMMU_IOAS_ALLOW_IOVAS, { size: IOMMU_IOAS_ALLOW_IOVAS_SIZE, ioas_id: ioas, num_iovas: r.length, allowed_iovas: r });
    expect(errno(p, allow([{ start: 0x2000n, last: 0x2000n }]))).toBe(Errno.EINVAL);
    expect(errno(p, allow([{ start: 0x2000n, last: 0x5fffn }, { start: 0x5000n, last: 0x8fffn }]))).toBe(Errno.EINVAL);
    expect(errno(p, p.ioctl(fd, IOMMU_IOAS_ALLOW_IOVAS, { size: IOMMU_IOAS_ALLOW_IOVAS_SIZE, ioas_id: ioas, num_iovas: 1 }))).toBe(Errno.EFAULT);
    expect(allow([{ start: 200n * PG, last: 600n * PG - 1n }])).toBe(0);
    for (let i = 1n; i <= 10n; i++) {
      const cmd = { size: IOMMU_IOAS_MAP_SIZE, ioas_id: ioas, user_va: buf, length: PG * i, flags: RW, iova: 0n };
      expect(p.ioctl(fd, IOMMU_IOAS_MAP, cmd)).toBe(0);
      expect(cmd.iova >= 200n * PG && cmd.iova + PG * i <= 600n * PG).toBe(true);
    }
  });
});
