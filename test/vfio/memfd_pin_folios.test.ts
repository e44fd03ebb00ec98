/**
 * memfd_pin_folios() (mm/gup.c), the pinning behind IOMMU_IOAS_MAP_FILE, through the
 * FileOperations.pin_folios seam shmem and hugetlbfs implement: its argument checks, the folios it
 * allocates, and the long-term migration out of ZONE_MOVABLE it does like FOLL_LONGTERM GUP.
 */
import { describe, expect, test } from 'vitest';
import { Errno, type PgOff } from '@cocosim/core';
import { O_RDWR, ZONE_MOVABLE, folio_maybe_dma_pinned, memfd_pin_folios, page_zonenum, unpin_folio } from '@cocosim/mm';
import { vfioHost } from './vfio_util.js';

const PG = 4096n;

describe('memfd_pin_folios()', () => {
  test('-EINVAL for start > end, max_folios 0, end at or past i_size, and a file that is no memfd', async () => {
    const host = vfioHost({ nr_pages: 4096 });
    const p = host.process();
    const fd = p.memfd_create('m', 0);
    expect(p.ftruncate(fd, 4n * PG)).toBe(0);
    const file = p.task.files.lookup(fd)!;
    const folios: number[] = [];
    const off = { value: 0 };
    expect(memfd_pin_folios(file, 2n * PG, PG, folios, 4, off)).toBe(-Errno.EINVAL);
    expect(memfd_pin_folios(file, 0n, PG, folios, 0, off)).toBe(-Errno.EINVAL);
    expect(memfd_pin_folios(file, 0n, 4n * PG, folios, 8, off)).toBe(-Errno.EINVAL);
    const zero = p.task.files.lookup(p.open('/dev/zero', O_RDWR))!;
    expect(memfd_pin_folios(zero, 0n, PG, folios, 1, off)).toBe(-Errno.EINVAL);
    expect(zero.f_op.pin_folios).toBe(undefined);
    expect(folios).toEqual([]);
    await host.container.dispose();
  });

  test('pins one folio per page-cache folio from start, allocating the missing ones; offset is start\'s offset in the first', async () => {
    const host = vfioHost({ nr_pages: 4096 });
    const p = host.process();
    const fd = p.memfd_create('m', 0);
    expect(p.ftruncate(fd, 4n * PG)).toBe(0);
    expect(p.pwrite(fd, new Uint8Array([7]), 4096)).toBe(1);
    const file = p.task.files.lookup(fd)!;
    const folios: number[] = [];
    const off = { value: -1 };
    expect(file.f_op.pin_folios!(file, PG + 100n, 3n * PG - 1n, folios, 4, off)).toBe(2);
    expect(off.value).toBe(100);
    expect(folios).toEqual([file.f_mapping.folio_at(1 as PgOff), file.f_mapping.folio_at(2 as PgOff)]);
    for (const f of folios) expect(folio_maybe_dma_pinned(host.kernel.store, f)).toBe(true);
    for (const f of folios) unpin_folio(host.kernel.store, f);
    await host.container.dispose();
  });

  test('a folio in ZONE_MOVABLE is migrated before it stays pinned: the page cache holds the copy', async () => {
    const host = vfioHost({ nr_pages: 8192, movable: true });
    const p = host.process();
    const store = host.kernel.store;
    const fd = p.memfd_create('m', 0);
    expect(p.ftruncate(fd, PG)).toBe(0);
    expect(p.pwrite(fd, new Uint8Array([1, 2, 3]), 0)).toBe(3);
    const file = p.task.files.lookup(fd)!;
    const before = file.f_mapping.folio_at(0 as PgOff)!;
    expect(page_zonenum(store, before)).toBe(ZONE_MOVABLE);
    const folios: number[] = [];
    expect(memfd_pin_folios(file, 0n, PG - 1n, folios, 1, { value: 0 })).toBe(1);
    expect(folios[0]).not.toBe(before);
    expect(page_zonenum(store, folios[0])).not.toBe(ZONE_MOVABLE);
    expect(file.f_mapping.folio_at(0 as PgOff)).toBe(folios[0]);
    const back = new Uint8Array(3);
    expect(p.pread(fd, back, 0)).toBe(3);
    expect(back).toEqual(new Uint8Array([1, 2, 3]));
    await host.container.dispose();
  });
});
