/**
 * Port of the IOAS cases of tools/testing/selftests/iommu/iommufd.c (FIXTURE iommufd_ioas) that
 * need no mock driver, in the selftest's variants: no_domain, and with one or two simulated
 * devices attached standing in for mock_domain / two_mock_domain (the mock's 2 KiB pages and
 * aperture become the simulated IOMMU's 4 KiB pages and 48-bit aperture less the MSI window).
 * The buffer is the selftest's: 16 pages of MAP_SHARED anonymous memory.
 */
import { describe, expect, test } from 'vitest';
import { Errno, U64_MAX } from '@cocosim/core';
import { MAP_ANONYMOUS, MAP_FAILED, MAP_FIXED, MAP_SHARED, O_RDWR, PROT_READ, PROT_WRITE, type Process } from '@cocosim/mm';
import {
  IOMMU_DESTROY, IOMMU_DESTROY_SIZE, IOMMU_IOAS_ALLOW_IOVAS, IOMMU_IOAS_ALLOW_IOVAS_SIZE, IOMMU_IOAS_COPY, IOMMU_IOAS_COPY_SIZE,
  IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_IOVA_RANGES_SIZE, IOMMU_IOAS_MAP, IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_SIZE, IOMMU_IOAS_MAP_WRITEABLE, IOMMU_IOAS_UNMAP, IOMMU_IOAS_UNMAP_SIZE,
} from '@cocosim/vfio';
import type { SimHost } from '../lib/fixtures.js';
import { device_attach, device_bind, ioas_alloc, vfioHost } from './vfio_util.js';

const PAGE_SIZE = 4096n;
const BUFFER_SIZE = PAGE_SIZE * 16n;
const HUGEPAGE_SIZE = 1n << 21n;
/** Where the domain variants start mapping (the selftest's MOCK_APERTURE_START). */
const APERTURE_START = 1n << 24n;

interface Self {
  host: SimHost;
  p: Process;
  fd: number;
  ioas_id: number;
  stdev: boolean;
  hwpt_id: number;
  base_iova: bigint;
  buffer: bigint;
}

const VARIANTS = [
  { name: 'no_domain', domains: 0 },
  { name: 'sim_domain', domains: 1 },
  { name: 'two_sim_domain', domains: 2 },
] as const;

function setup(domains: number): Self {
  const host = vfioHost({ nr_pages: 2 ** 14 });
  const p = host.process();
  const fd = p.open('/dev/iommu', O_RDWR);
  const ioas_id = ioas_alloc(p, fd);
  let hwpt_id = 0;
  for (let i = 0; i < domains; i++) {
    const { devfd } = device_bind(host, p, fd);
    hwpt_id = device_attach(p, devfd, ioas_id);
  }
  /* setup_sizes(): the buffer is aligned to HUGEPAGE_SIZE (posix_memalign), then mapped shared over */
  const raw = p.mmap(0, 2n * HUGEPAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  const buffer = p.mmap((raw + HUGEPAGE_SIZE - 1n) & ~(HUGEPAGE_SIZE - 1n), BUFFER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  expect(buffer).not.toBe(MAP_FAILED);
  return { host, p, fd, ioas_id, stdev: domains > 0, hwpt_id, base_iova: domains ? APERTURE_START : 0n, buffer };
}

const FIXED = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;

function map_fixed(s: Self, va: bigint, len: bigint, iova: bigint): number {
  return s.p.ioctl(s.fd, IOMMU_IOAS_MAP, { size: IOMMU_IOAS_MAP_SIZE, flags: FIXED, ioas_id: s.ioas_id, user_va: va, length: len, iova }) === 0 ? 0 : s.p.errno;
}

function map_auto(s: Self, va: bigint, len: bigint): bigint {
  const cmd = { size: IOMMU_IOAS_MAP_SIZE, flags: IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE, ioas_id: s.ioas_id, user_va: va, length: len, iova: 0n };
  expect(s.p.ioctl(s.fd, IOMMU_IOAS_MAP, cmd)).toBe(0);
  return cmd.iova;
}

function unmap(s: Self, iova: bigint, len: bigint): { errno: number; length: bigint } {
  const cmd = { size: IOMMU_IOAS_UNMAP_SIZE, ioas_id: s.ioas_id, iova, length: len };
  const rc = s.p.ioctl(s.fd, IOMMU_IOAS_UNMAP, cmd);
  return { errno: rc === 0 ? 0 : s.p.errno, length: BigInt(cmd.length) };
}

function destroy(s: Self, id: number): number {
  return s.p.ioctl(s.fd, IOMMU_DESTROY, { size: IOMMU_DESTROY_SIZE, id }) === 0 ? 0 : s.p.errno;
}

/** 1 << (ffs(length) - 1): the lowest set bit. */
function lowbit(x: bigint): bigint {
  return x & -x;
}

for (const variant of VARIANTS) {
  describe(`iommufd_ioas (${variant.name})`, () => {
    const run = (name: string, fn: (s: Self) => void): void => {
      test(name, async () => {
        const s = setup(variant.domains);
        try {
          fn(s);
        } finally {
          s.p.close(s.fd);
          await s.host.container.dispose();
        }
      });
    };

    run('ioas_auto_destroy', () => undefined);

    run('ioas_destroy', (s) => {
      /* IOAS cannot be freed while a device has a HWPT using it */
      expect(destroy(s, s.ioas_id)).toBe(s.stdev ? Errno.EBUSY : 0);
    });

    run('ioas_area_destroy', (s) => {
      /* Adding an area does not change ability to destroy */
      expect(map_fixed(s, s.buffer, PAGE_SIZE, s.base_iova)).toBe(0);
      expect(destroy(s, s.ioas_id)).toBe(s.stdev ? Errno.EBUSY : 0);
    });

    run('ioas_area_auto_destroy', (s) => {
      /* Can allocate and automatically free an IOAS table with many areas */
      for (let i = 0n; i < 10n; i++) expect(map_fixed(s, s.buffer, PAGE_SIZE, s.base_iova + i * PAGE_SIZE)).toBe(0);
    });

    run('area', (s) => {
      /* Unmap fails if nothing is mapped */
      for (let i = 0n; i < 10n; i++) expect(unmap(s, i * PAGE_SIZE, PAGE_SIZE).errno).toBe(Errno.ENOENT);
      /* Unmap works */
      for (let i = 0n; i < 10n; i++) expect(map_fixed(s, s.buffer, PAGE_SIZE, s.base_iova + i * PAGE_SIZE)).toBe(0);
      for (let i = 0n; i < 10n; i++) expect(unmap(s, s.base_iova + i * PAGE_SIZE, PAGE_SIZE).errno).toBe(0);
      /* Split fails */
      expect(map_fixed(s, s.buffer, PAGE_SIZE * 2n, s.base_iova + 16n * PAGE_SIZE)).toBe(0);
      expect(unmap(s, s.base_iova + 16n * PAGE_SIZE, PAGE_SIZE).errno).toBe(Errno.ENOENT);
      expect(unmap(s, s.base_iova + 17n * PAGE_SIZE, PAGE_SIZE).errno).toBe(Errno.ENOENT);
      /* Over map fails */
      expect(map_fixed(s, s.buffer, PAGE_SIZE * 2n, s.base_iova + 16n * PAGE_SIZE)).toBe(Errno.EEXIST);
      expect(map_fixed(s, s.buffer, PAGE_SIZE, s.base_iova + 16n * PAGE_SIZE)).toBe(Errno.EEXIST);
      expect(map_fixed(s, s.buffer, PAGE_SIZE, s.base_iova + 17n * PAGE_SIZE)).toBe(Errno.EEXIST);
      expect(map_fixed(s, s.buffer, PAGE_SIZE * 2n, s.base_iova + 15n * PAGE_SIZE)).toBe(Errno.EEXIST);
      expect(map_fixed(s, s.buffer, PAGE_SIZE * 3n, s.base_iova + 15n * PAGE_SIZE)).toBe(Errno.EEXIST);
      /* unmap all works */
      expect(unmap(s, 0n, U64_MAX).errno).toBe(0);
      /* Unmap all succeeds on an empty IOAS */
      expect(unmap(s, 0n, U64_MAX).errno).toBe(0);
    });

    run('unmap_fully_contained_areas', (s) => {
      /* Give no_domain some space to rewind base_iova */
      s.base_iova += 4n * PAGE_SIZE;
      for (let i = 0n; i < 4n; i++) expect(map_fixed(s, s.buffer, 8n * PAGE_SIZE, s.base_iova + i * 16n * PAGE_SIZE)).toBe(0);
      /* Unmap not fully contained area doesn't work */
      expect(unmap(s, s.base_iova - 4n * PAGE_SIZE, 8n * PAGE_SIZE).errno).toBe(Errno.ENOENT);
      expect(unmap(s, s.base_iova + 3n * 16n * PAGE_SIZE + 8n * PAGE_SIZE - 4n * PAGE_SIZE, 8n * PAGE_SIZE).errno).toBe(Errno.ENOENT);
      /* Unmap fully contained areas works */
      const r = unmap(s, s.base_iova - 4n * PAGE_SIZE, 3n * 16n * PAGE_SIZE + 8n * PAGE_SIZE + 4n * PAGE_SIZE);
      expect(r).toEqual({ errno: 0, length: 32n * PAGE_SIZE });
    });

    run('area_auto_iova', (s) => {
      const iovas: bigint[] = [];
      /* Simple 4k pages */
      for (let i = 0; i < 10; i++) iovas[i] = map_auto(s, s.buffer, PAGE_SIZE);
      for (let i = 0; i < 10; i++) expect(unmap(s, iovas[i], PAGE_SIZE).errno).toBe(0);
      /* Kernel automatically aligns IOVAs properly */
      for (let i = 0; i < 10; i++) {
        const length = PAGE_SIZE * BigInt(i + 1);
        iovas[i] = map_auto(s, s.stdev ? s.buffer : 1n << 31n, length);
        expect(iovas[i] % lowbit(length)).toBe(0n);
      }
      for (let i = 0; i < 10; i++) expect(unmap(s, iovas[i], PAGE_SIZE * BigInt(i + 1)).errno).toBe(0);
      /* Avoids a reserved region: with a device, the MSI window */
      if (s.stdev) {
        const ranges = [{ start: 0xfee00000n - 8n * PAGE_SIZE, last: 0xfef00000n + 64n * PAGE_SIZE - 1n }];
        expect(s.p.ioctl(s.fd, IOMMU_IOAS_ALLOW_IOVAS, { size: IOMMU_IOAS_ALLOW_IOVAS_SIZE, ioas_id: s.ioas_id, num_iovas: 1, allowed_iovas: ranges })).toBe(-1);
        expect(s.p.errno).toBe(Errno.EADDRINUSE);
      }
      /* Allocate from an allowed region */
      const allowed = s.stdev ? { start: APERTURE_START + PAGE_SIZE, last: APERTURE_START + PAGE_SIZE * 600n - 1n } : { start: PAGE_SIZE * 200n, last: PAGE_SIZE * 600n - 1n };
      expect(s.p.ioctl(s.fd, IOMMU_IOAS_ALLOW_IOVAS, { size: IOMMU_IOAS_ALLOW_IOVAS_SIZE, ioas_id: s.ioas_id, num_iovas: 1, allowed_iovas: [allowed] })).toBe(0);
      for (let i = 0; i < 10; i++) {
        const length = PAGE_SIZE * BigInt(i + 1);
        iovas[i] = map_auto(s, s.buffer, length);
        expect(iovas[i] % lowbit(length)).toBe(0n);
        expect(iovas[i] >= allowed.start && iovas[i] + length <= allowed.last + 1n).toBe(true);
      }
    });

    run('copy_area', (s) => {
      expect(map_fixed(s, s.buffer, PAGE_SIZE, s.base_iova)).toBe(0);
      /* Copy inside a single IOAS */
      const copy = { size: IOMMU_IOAS_COPY_SIZE, flags: FIXED, dst_ioas_id: s.ioas_id, src_ioas_id: s.ioas_id, length: PAGE_SIZE, src_iova: s.base_iova, dst_iova: s.base_iova + PAGE_SIZE };
      expect(s.p.ioctl(s.fd, IOMMU_IOAS_COPY, copy)).toBe(0);
      /* Copy between IOAS's */
      copy.dst_iova = 0n;
      copy.dst_ioas_id = ioas_alloc(s.p, s.fd);
      expect(s.p.ioctl(s.fd, IOMMU_IOAS_COPY, copy)).toBe(0);
    });

    run('iova_ranges', (s) => {
      const ranges: { start: bigint; last: bigint }[] = [];
      const cmd = { size: IOMMU_IOAS_IOVA_RANGES_SIZE, ioas_id: s.ioas_id, num_iovas: 8, allowed_iovas: ranges, out_iova_alignment: 0n };
      /* Range can be read */
      expect(s.p.ioctl(s.fd, IOMMU_IOAS_IOVA_RANGES, cmd)).toBe(0);
      if (!s.stdev) {
        expect(cmd.num_iovas).toBe(1);
        expect(ranges[0]).toEqual({ start: 0n, last: U64_MAX });
        expect(cmd.out_iova_alignment).toBe(1n);
      } else {
        /* the aperture less the MSI window */
        expect(cmd.num_iovas).toBe(2);
        expect(ranges.slice(0, 2)).toEqual([{ start: 0n, last: 0xfedfffffn }, { start: 0xfef00000n, last: (1n << 48n) - 1n }]);
        expect(cmd.out_iova_alignment).toBe(PAGE_SIZE);
      }
      /* Buffer too small */
      const small: { start: bigint; last: bigint }[] = [];
      const c2 = { size: IOMMU_IOAS_IOVA_RANGES_SIZE, ioas_id: s.ioas_id, num_iovas: 0, allowed_iovas: small };
      expect(s.p.ioctl(s.fd, IOMMU_IOAS_IOVA_RANGES, c2)).toBe(-1);
      expect(s.p.errno).toBe(Errno.EMSGSIZE);
      expect(c2.num_iovas).toBe(s.stdev ? 2 : 1);
      expect(small).toEqual([]);
    });
  });
}
